"""State files: atomic writes (tmp + fsync + rename, 0600) and node-wide locks (flock).

Every state or lock file is opened through `open_state`: never through a symlink (O_NOFOLLOW),
and only in a directory that is a real directory (not a symlink), owned by us (root) and not
group/world-writable. Otherwise a user who can write the directory could plant `.lock` ->
/etc/something and have root create or truncate the target."""
import contextlib
import errno
import fcntl
import os
import stat

from . import fault, jsonlite
from .errors import IO_FAILURE, CNIError


def check_dir(d: str) -> None:
    """Refuse (code 5) a state directory another user could write or redirect."""
    try:
        st = os.lstat(d)
    except FileNotFoundError:
        return
    why = None
    if stat.S_ISLNK(st.st_mode):
        why = "it is a symbolic link"
    elif not stat.S_ISDIR(st.st_mode):
        why = "it is not a directory"
    elif st.st_uid != os.geteuid():
        why = f"it is owned by uid {st.st_uid}, not {os.geteuid()}"
    elif st.st_mode & 0o022:
        why = f"it is group/world-writable (mode {stat.S_IMODE(st.st_mode):04o})"
    if why:
        raise CNIError(IO_FAILURE, f"refusing state directory {d}: {why}",
                       "state directories must be real directories owned by root, mode 0700 or 0755")


def open_state(path: str, flags: int, mode: int = 0o600) -> int:
    """os.open for a state or lock file: the directory checked (check_dir), never through a
    symlink, close-on-exec. A planted link fails with code 5 naming the path."""
    check_dir(os.path.dirname(os.path.abspath(path)))
    try:
        return os.open(path, flags | os.O_NOFOLLOW | os.O_CLOEXEC, mode)
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise CNIError(IO_FAILURE, f"refusing state file {path}: it is a symbolic link",
                           "state files are never opened through links") from None
        raise


def makedirs(d: str) -> None:
    """Create `d` and every missing parent 0700 (os.makedirs gives only the last one `mode`)."""
    if not d or os.path.isdir(d):
        check_dir(d)
        return
    makedirs(os.path.dirname(os.path.abspath(d)))
    try:
        os.mkdir(d, 0o700)
    except FileExistsError:
        pass


def atomic_write(path: str, data: bytes | str, mode: int = 0o600, durable: bool = True,
                 sync_dir: bool = True) -> None:
    """Write `data` so a reader sees the old file or the new one, never a torn one, even after a
    crash: write a temp file in the same directory, fsync it, rename over, fsync the directory.
    Any failure (a full disk included) raises and leaves the old file and no temp file.
    `sync_dir=False` skips the directory's fsync: after a power loss the file holds the old
    version or the new one, both whole (the data was synced before the rename), but the rename
    itself may be lost; for replacing a file whose older version is as good after a crash.
    `durable=False` skips both fsyncs: readers still see the old file or the new one (rename is
    atomic; a killed process loses nothing, the page cache has it), but after a power loss or
    kernel crash the file may hold either version or, on some file systems, be empty. Only for
    writes whose caller has argued that the state every such outcome leaves is recovered."""
    if isinstance(data, str):
        data = data.encode()
    d = os.path.dirname(path) or "."
    makedirs(d)
    tmp = f"{path}.tmp.{os.getpid()}"
    fd = open_state(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        try:
            os.fchmod(fd, mode)  # umask must not widen or narrow what we asked for
            _write_all(fd, data, tmp)
            if durable:
                os.fsync(fd)
        finally:
            os.close(fd)
        fault.point("files.atomic-write")   # written, not yet renamed: the old file stays
        os.rename(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    if not (durable and sync_dir):
        return
    dfd = os.open(d, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


def _write_all(fd: int, data: bytes, path: str) -> None:
    """os.write may write less than asked (a nearly full disk writes what fits and returns the
    count): loop, and turn "no progress" into ENOSPC rather than a silently truncated file."""
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        if n <= 0:
            raise OSError(errno.ENOSPC, f"short write to {path}: {len(data) - len(view)} of {len(data)} bytes")
        view = view[n:]


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


def write_json(path: str, obj, durable: bool = True, sync_dir: bool = True) -> None:
    atomic_write(path, jsonlite.dumps(obj, sort_keys=True, separators=(",", ":")), durable=durable, sync_dir=sync_dir)


def read_json(path: str):
    """The parsed file, or None when it does not exist. Corrupt JSON raises ValueError."""
    try:
        fd = open_state(path, os.O_RDONLY)
    except FileNotFoundError:
        return None
    with os.fdopen(fd, "rb") as f:
        return jsonlite.loads(f.read())


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
    fd = open_state(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH if shared else fcntl.LOCK_EX)
        yield
    finally:
        # unlock explicitly: a forked child holding a copy of the fd would otherwise keep the
        # lock for as long as it lives
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
