"""State files: atomic writes (tmp + fsync + rename, 0600) and node-wide locks (flock)."""
import contextlib
import fcntl
import json
import os

from . import fault


def makedirs(d: str) -> None:
    """Create `d` and every missing parent 0700 (os.makedirs gives only the last one `mode`)."""
    if not d or os.path.isdir(d):
        return
    makedirs(os.path.dirname(os.path.abspath(d)))
    try:
        os.mkdir(d, 0o700)
    except FileExistsError:
        pass


def atomic_write(path: str, data: bytes | str, mode: int = 0o600) -> None:
    """Write `data` so a reader sees the old file or the new one, never a torn one, even after a
    crash: write a temp file in the same directory, fsync it, rename over, fsync the directory."""
    if isinstance(data, str):
        data = data.encode()
    d = os.path.dirname(path) or "."
    makedirs(d)
    tmp = f"{path}.tmp.{os.getpid()}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, mode)
    try:
        os.fchmod(fd, mode)  # umask must not widen or narrow what we asked for
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        fault.point("files.atomic-write")   # written, not yet renamed: the old file stays
        os.rename(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    dfd = os.open(d, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


def stale_tmp(directory: str, name: str) -> bool:
    """True for an atomic_write temp file (`<name>.tmp.<pid>`) whose writer is gone (a crash
    between write and rename); it is removed. Listings call this for every `.tmp.` name."""
    base, sep, pid = name.rpartition(".tmp.")
    if not sep or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
        return False
    except ProcessLookupError:
        pass
    except PermissionError:
        return False
    try:
        os.unlink(os.path.join(directory, name))
    except FileNotFoundError:
        pass
    return True


def write_json(path: str, obj) -> None:
    atomic_write(path, json.dumps(obj, sort_keys=True, separators=(",", ":")))


def read_json(path: str):
    """The parsed file, or None when it does not exist. Corrupt JSON raises ValueError."""
    try:
        with open(path, "rb") as f:
            return json.loads(f.read())
    except FileNotFoundError:
        return None


def remove(path: str) -> bool:
    try:
        os.unlink(path)
        return True
    except FileNotFoundError:
        return False


@contextlib.contextmanager
def locked(path: str, shared: bool = False):
    """Hold an flock on `path` (created 0600): exclusive, or shared for readers. The kernel
    drops the lock when the process dies, so a kill -9 never leaves the node locked."""
    makedirs(os.path.dirname(path) or ".")
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH if shared else fcntl.LOCK_EX)
        yield
    finally:
        # unlock explicitly: a forked child holding a copy of the fd would otherwise keep the
        # lock for as long as it lives
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
