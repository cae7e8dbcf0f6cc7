"""`netmeta install --lib-dir`: a copy of netmeta's own packages for the host, in a directory
named after their content hash, renamed into place whole (a running shim keeps its old copy).
Old copies are marked retired and removed RETIRE_AFTER seconds later.
"""
import hashlib
import os
import shutil
import time

from .files import say

LIB_MARK = ".netmeta-lib"
RETIRED = ".retired"
RETIRE_AFTER = 60.0          # seconds an old library copy outlives the scripts that used it
PACKAGES = ("cni", "meta", "delegates")


# ---------------- the library copy (--lib-dir) ----------------
def lib_sources() -> list:
    """[(relative path, bytes)] of netmeta's own packages, as imported now."""
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    out = []
    for pkg in PACKAGES:
        for d, dirs, files in os.walk(os.path.join(root, pkg)):
            dirs[:] = sorted(x for x in dirs if x != "__pycache__")
            for f in sorted(files):
                if f.endswith(".py"):
                    with open(os.path.join(d, f), "rb") as fh:
                        out.append((os.path.relpath(os.path.join(d, f), root), fh.read()))
    return out


def lib_name(sources: list) -> str:
    h = hashlib.sha256()
    for rel, data in sources:
        h.update(rel.encode() + b"\0" + len(data).to_bytes(8, "big") + data)
    return "lib-" + h.hexdigest()[:16]


def write_lib(final: str, sources: list) -> None:
    tmp = os.path.join(os.path.dirname(final), f".tmp-{os.getpid()}-{os.path.basename(final)}")
    shutil.rmtree(tmp, ignore_errors=True)
    for rel, data in sources + [(LIB_MARK, b"netmeta install\n")]:
        p = os.path.join(tmp, rel)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            os.fchmod(fd, 0o644)
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
    for d, _, _ in os.walk(tmp):
        os.chmod(d, 0o755)
    try:
        os.rename(tmp, final)
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)
        if not os.path.isfile(os.path.join(final, LIB_MARK)):   # not a concurrent install's copy
            raise
    dfd = os.open(os.path.dirname(final), os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


def retire_old(lib_dir: str, current: str, after: float | None = None) -> None:
    """Old copies are marked, and removed RETIRE_AFTER (or `after`) seconds later (shims that
    started before the switch still import from them); half-written temp copies likewise."""
    if after is None:
        after = RETIRE_AFTER
    now = time.time()
    for n in os.listdir(lib_dir):
        p = os.path.join(lib_dir, n)
        if p == current or not os.path.isdir(p):
            continue
        if n.startswith(".tmp-"):
            if now - os.stat(p).st_mtime > after:
                shutil.rmtree(p, ignore_errors=True)
            continue
        if not (n.startswith("lib-") and os.path.isfile(os.path.join(p, LIB_MARK))):
            continue
        try:
            if now - os.stat(os.path.join(p, RETIRED)).st_mtime > after:
                shutil.rmtree(p, ignore_errors=True)
                say(f"removed old library {p}")
        except FileNotFoundError:
            open(os.path.join(p, RETIRED), "w").close()
