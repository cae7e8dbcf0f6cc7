"""`netmeta install`: whose file is it. The error it reports, its log, and the checks that
tell a file netmeta install wrote (or the native shim it installs) from anyone else's.

A file of the same name that netmeta install did not write is refused (nothing is written)
unless --force; these checks decide which files are ours.
"""
import json
import os
import sys

from delegates.registry import MARKER

KUBECONFIG_MARK = "# netmeta-install: generated from the pod's service account; do not edit"
ELF = b"\x7fELF"


class InstallError(Exception):
    pass


def say(msg: str) -> None:
    sys.stderr.write(f"netmeta install: {msg}\n")
    sys.stderr.flush()


def read_text(path: str) -> bytes | None:
    try:
        with open(path, "rb") as f:
            return f.read()
    except FileNotFoundError:
        return None
    except IsADirectoryError:
        raise InstallError(f"{path} is a directory, not a file") from None


# ---------------- whose file is it ----------------
def is_our_conf(data: bytes) -> bool:
    try:
        conf = json.loads(data)
    except ValueError:
        return False
    if not isinstance(conf, dict):
        return False
    plugins = conf.get("plugins")
    first = plugins[0] if isinstance(plugins, list) and plugins and isinstance(plugins[0], dict) else conf
    return first.get("type") == "netmeta"


def is_our_exe(data: bytes) -> bool:
    """A Python entry (marker in its second line) or the native shim (marker in its rodata)."""
    return MARKER.encode() in (data if data[:4] == ELF else data[:512])


def find_shim(choice: str) -> bytes | None:
    """The native shim's bytes: `none`; a path; or `auto`: this installation's (the venv's
    bin/netmeta that `make dev` builds, or libexec/netmeta-shim in the image), else none."""
    if choice == "none":
        return None
    paths = [choice] if choice != "auto" else [os.path.join(sys.prefix, "bin", "netmeta"),
                                               os.path.join(sys.prefix, "libexec", "netmeta-shim")]
    for p in paths:
        data = read_text(p)
        if data is not None and data[:4] == ELF and is_our_exe(data):
            return data
        if choice != "auto":
            raise InstallError(f"--shim {p}: not the netmeta native shim (an ELF file built from "
                               "shim/netmeta-shim.c)")
    return None


def is_our_kubeconfig(data: bytes) -> bool:
    return data.startswith(KUBECONFIG_MARK.encode())

