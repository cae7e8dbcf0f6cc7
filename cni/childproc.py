"""Run a plugin executable to completion: stdin in, stdout/stderr out, bounded by a timeout.

Not subprocess, for two measured costs:
- `import subprocess` is ~10 ms of an exec'd plugin call here (it imports locale -> re -> enum,
  threading, selectors, signal...), and threading then rules out the entries' fast exit
  (cni/shim.py leave);
- subprocess.run(timeout=...) ends with Popen.wait(timeout), which polls waitpid with sleeps of
  0.5 ms doubling: ~1 ms lost per delegate that exits just after closing its output.

So: os.posix_spawn (glibc: clone(CLONE_VM|CLONE_VFORK) + exec, errors such as ENOENT reported
back as OSError), one poll loop for the three pipes, and the exit awaited on a pidfd (Linux
5.3+; else a blocking waitpid once the output is closed, bounded by the deadline in steps).
What subprocess.run(close_fds=True, pass_fds=...) gives the child, it gets here too:
- stdin/stdout/stderr are our pipes; every other fd of ours is closed at exec: Python opens
  everything close-on-exec (PEP 446), and an inheritable fd we were handed is made
  close-on-exec before the spawn (_cloexec_strays); `pass_fds` stay open in the child (dup2 of
  an fd onto itself clears its close-on-exec flag: POSIX, glibc >= 2.29);
- SIGPIPE and SIGXFSZ back to their defaults (Python ignores them), as restore_signals does.
A timeout (or any error on our side) kills the child and reaps it, as subprocess.run does."""
import _signal  # the C module: `signal` would import enum for its IntEnums
import fcntl
import os
import select
import time

_CHUNK = select.PIPE_BUF   # a pipe reported writable takes this much without blocking
_DEFAULT_SIGNALS = (_signal.SIGPIPE, _signal.SIGXFSZ)


class Timeout(Exception):
    """The child did not finish within its timeout (it has been killed and reaped)."""


def run(argv: list, stdin: bytes, env: dict, timeout: float, pass_fds: tuple = ()) -> tuple[int, bytes, bytes]:
    """(exit code, or -signal if killed by one, stdout, stderr). Timeout past `timeout`;
    OSError when it cannot be started (no such file, not executable...)."""
    deadline = time.monotonic() + timeout
    _cloexec_strays(pass_fds)
    fds: list = []
    try:
        for _ in range(3):
            for fd in os.pipe():
                fds.append(_above_stdio(fd))
        in_r, in_w, out_r, out_w, err_r, err_w = fds
        actions = [(os.POSIX_SPAWN_DUP2, in_r, 0), (os.POSIX_SPAWN_DUP2, out_w, 1), (os.POSIX_SPAWN_DUP2, err_w, 2)]
        actions += [(os.POSIX_SPAWN_DUP2, fd, fd) for fd in pass_fds]
        pid = os.posix_spawn(argv[0], argv, env, file_actions=actions, setsigdef=_DEFAULT_SIGNALS)
    except BaseException:
        for fd in fds:
            os.close(fd)
        raise
    for fd in (in_r, out_w, err_w):
        os.close(fd)
    ours = [in_w, out_r, err_r]
    try:
        out, err = _exchange(pid, ours, stdin, deadline)
        status = _wait_exit(pid, deadline)
    except BaseException:   # the timeout, or anything else: never leave the child behind
        _kill_and_reap(pid)
        raise
    finally:
        for fd in ours:
            if fd >= 0:
                os.close(fd)
    return os.waitstatus_to_exitcode(status), out, err


def _above_stdio(fd: int) -> int:
    """`fd`, or a copy of it numbered 3 or more: with our own stdio closed (a daemon), a pipe
    could be fd 0-2, and the child's dup2s onto 0, 1, 2 would overwrite one another."""
    if fd > 2:
        return fd
    new = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 3)
    os.close(fd)
    return new


def _cloexec_strays(keep: tuple) -> None:
    """Make every inheritable fd above 2 (one we were handed, or made inheritable) close-on-exec,
    but those in `keep`: what close_fds=True does in the child, done here since posix_spawn
    has no such action in Python 3.11."""
    try:
        names = os.listdir("/proc/self/fd")
    except OSError:
        return
    for name in names:
        fd = int(name)
        if fd > 2 and fd not in keep:
            try:
                if os.get_inheritable(fd):
                    os.set_inheritable(fd, False)
            except OSError:   # the listing's own fd, or closed since
                pass


def _exchange(pid: int, fds: list, data: bytes, deadline: float) -> tuple[bytes, bytes]:
    """Write `data` to the child's stdin (then close it) while reading its stdout and stderr
    until both reach EOF; Timeout at `deadline`. Closed fds are set to -1 in `fds`."""
    wfd, ofd, efd = fds
    chunks: dict[int, list] = {ofd: [], efd: []}
    view = memoryview(data)
    poller = select.poll()
    poller.register(ofd, select.POLLIN)
    poller.register(efd, select.POLLIN)
    if view:
        poller.register(wfd, select.POLLOUT)
    else:
        os.close(wfd)
        fds[0] = -1
    reading = 2
    while reading or fds[0] >= 0:
        left = deadline - time.monotonic()
        if left <= 0:
            raise Timeout(f"pid {pid}")
        for fd, _ev in poller.poll(left * 1000.0):
            if fd == wfd:
                try:
                    view = view[os.write(wfd, view[:_CHUNK]):]
                except BrokenPipeError:   # it stopped reading: what it wrote still counts
                    view = view[:0]
                if not view:
                    poller.unregister(wfd)
                    os.close(wfd)
                    fds[0] = -1
                continue
            block = os.read(fd, 32768)   # readable, or hung up: b"" at EOF
            if block:
                chunks[fd].append(block)
            else:
                poller.unregister(fd)
                reading -= 1
    return b"".join(chunks[ofd]), b"".join(chunks[efd])


def _wait_exit(pid: int, deadline: float) -> int:
    """The wait status of `pid`, which has closed its output; Timeout at `deadline`."""
    done, status = os.waitpid(pid, os.WNOHANG)
    if done:
        return status
    try:
        pidfd = os.pidfd_open(pid)   # ours until reaped: nobody else waits for this child
    except (AttributeError, OSError):   # no pidfd: a blocking wait, in steps to keep the bound
        while True:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                return status
            if time.monotonic() >= deadline:
                raise Timeout(f"pid {pid}") from None
            time.sleep(0.001)
    try:
        poller = select.poll()
        poller.register(pidfd, select.POLLIN)
        if not poller.poll(max(0.0, deadline - time.monotonic()) * 1000.0):
            raise Timeout(f"pid {pid}")
    finally:
        os.close(pidfd)
    return os.waitpid(pid, 0)[1]   # readable pidfd: it has exited, this reaps without a wait


def _kill_and_reap(pid: int) -> None:
    try:
        os.kill(pid, _signal.SIGKILL)
    except ProcessLookupError:
        pass
    try:
        os.waitpid(pid, 0)
    except ChildProcessError:
        pass
