"""Who owns a VF record: a per-operation token, and the pod's netns identity. Never a PID: the
daemon runs in a pod without hostPID (its own PID namespace) while the in-process fallback
runs in the host's, so a PID written by one means nothing to the other.

An operation (an ADD) holds an flock on `<stateDir>/.owners/<token>.lock` while it runs. The
kernel drops the lock when the process dies, whatever its PID namespace; a stopped (SIGSTOP)
process keeps it. So "is the ADD that wrote this record still running?" is a non-blocking
flock attempt on its token's file."""
import contextlib
import fcntl
import os

from cni import files

OWNERS = ".owners"


def _path(state_dir: str, token: str) -> str:
    return os.path.join(state_dir, OWNERS, f"{token}.lock")


class Operation:
    """`with Operation(state_dir) as op:` — op.token is held (locked) until the block ends."""
    _fd: int | None     # the token file's, locked, while the block runs

    def __init__(self, state_dir: str):
        self.state_dir = state_dir
        self.token = os.urandom(8).hex()
        self._fd = None

    def __enter__(self) -> "Operation":
        files.makedirs(os.path.join(self.state_dir, OWNERS))
        self._fd = fd = files.open_state(_path(self.state_dir, self.token), os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(_path(self.state_dir, self.token))
        assert self._fd is not None     # __exit__ runs only after __enter__ opened it
        os.close(self._fd)


def alive(state_dir: str, token: str | None) -> bool:
    """The operation `token` is still running (its flock is held). A token whose holder died
    leaves its file unlocked: that file is removed here."""
    if not isinstance(token, str) or not token.isalnum():
        return False
    path = _path(state_dir, token)
    try:
        fd = files.open_state(path, os.O_RDWR)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return True
    try:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
    finally:
        os.close(fd)   # drops the lock
    return False


def netns_identity(path: str) -> dict | None:
    """(st_dev, st_ino) of a netns path: a name reused for a new netns has another inode."""
    try:
        st = os.stat(path)
    except (OSError, ValueError, TypeError):
        return None
    return {"dev": st.st_dev, "ino": st.st_ino}
