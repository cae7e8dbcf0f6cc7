"""Per-container locks shared by the daemon and in-process calls: one CNI operation at a time per
container on the node, whichever process serves it (the daemon, the shim's auto fallback, thin
mode). An flock on <dir>/<containerID>.lock, where <dir> is `locks/` beside the daemon socket
(root-only, 0700, never a symlink); the file is opened O_NOFOLLOW, 0600, and holds the token of
the operation that holds it, so a call made by one of that operation's delegates can prove it
belongs to it (meta/daemon/server.py serves such a call without taking the lock again).

Waits are bounded: past the deadline the caller gets code 11 naming the holder's pid."""
import fcntl
import os
import stat
import time

from .errors import IO_FAILURE, TRY_AGAIN, CNIError
from .request import validate_container_id


def lock_dir(socket_path: str) -> str:
    return os.path.join(os.path.dirname(socket_path) or "/", "locks")


def _safe_dir(d: str) -> None:
    from .files import makedirs
    makedirs(d)
    st = os.lstat(d)
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.geteuid() or st.st_mode & 0o022:
        raise CNIError(IO_FAILURE, f"refusing lock directory {d}",
                       "it must be a directory owned by this user and writable by no one else")


def _open(path: str) -> int:
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    except OSError as e:   # ELOOP: a symlink planted where the lock goes
        raise CNIError(IO_FAILURE, f"failed to open lock file {path}: {e.strerror}") from None
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode) or st.st_uid != os.geteuid():
        os.close(fd)
        raise CNIError(IO_FAILURE, f"refusing lock file {path}", "not a regular file of this user")
    return fd


def _holder(fd: int) -> str:
    try:
        return os.pread(fd, 200, 0).decode(errors="replace").strip()
    except OSError:
        return ""


class ContainerLock:
    def __init__(self, directory: str, container_id: str, product: str = ""):
        validate_container_id(container_id)
        self.who = f"{product} call" if product else "call"   # in the message when it waits too long
        self.dir = directory
        self.path = os.path.join(directory, f"{container_id}.lock")
        self.container_id = container_id
        self.fd: int | None = None

    def acquire(self, token: str, deadline: float) -> int:
        """Lock (polling, so the wait is bounded by `deadline`, time.time()); returns the fd."""
        _safe_dir(self.dir)
        pause, holder = 0.002, ""
        while True:
            fd = _open(self.path)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = _holder(fd) or holder
                os.close(fd)
                if time.time() >= deadline:
                    pid = holder.split(" ")[1] if " " in holder else "?"
                    raise CNIError(TRY_AGAIN, f"container {self.container_id[:12]} is locked by another {self.who} "
                                   f"(pid {pid}) that did not finish in time: it may be hung",
                                   f"lock {self.path}; the runtime retries this call") from None
                time.sleep(min(pause, max(0.0, deadline - time.time())))
                pause = min(pause * 2, 0.05)
                continue
            # the releaser unlinks the file while holding it: ours must still be the one at path
            try:
                same = os.stat(self.path, follow_symlinks=False).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if not same:
                os.close(fd)
                continue
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{token} {os.getpid()}\n".encode(), 0)
            self.fd = fd
            return fd

    def release(self, close: bool = True) -> None:
        """Unlock (the next caller may start at once); close the file too unless `close` is
        False, for a caller that answers first and calls close() after (the daemon)."""
        if self.fd is None:
            return
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass
        fcntl.flock(self.fd, fcntl.LOCK_UN)   # a fork or delegate holding a copy must not keep it
        if close:
            self.close()

    def close(self) -> None:
        """Close the (unlinked) file. Measured in the daemon on ext4: 3-4 ms after an ADD,
        ~0.6 ms after a DEL, against ~15 us for the same open/pwrite/unlink/close in a
        quiet process; not pinned down (the last close frees the inode; the thread then
        takes the GIL back), so the daemon does it after answering."""
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


def held_by(directory: str, container_id: str, token: str) -> bool:
    """True when `token` is the token of the operation holding this container's lock now."""
    if not token:
        return False
    try:
        validate_container_id(container_id)
        fd = os.open(os.path.join(directory, f"{container_id}.lock"), os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except (OSError, CNIError):
        return False
    try:
        if _holder(fd).split(" ")[0] != token:
            return False
        try:   # written by a holder that has gone since: not held
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            fcntl.flock(fd, fcntl.LOCK_UN)
            return False
        except BlockingIOError:
            return True
    finally:
        os.close(fd)
