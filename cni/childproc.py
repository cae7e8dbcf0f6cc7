"""Run a plugin executable to completion: stdin in, stdout/stderr out, bounded by a timeout.

subprocess.run(timeout=...) and Popen.communicate(timeout=...) end with Popen.wait(timeout),
which on POSIX polls waitpid with sleeps of 0.5 ms doubling (subprocess._wait): a plugin that
closes its output and exits a moment later costs its caller ~1 ms of sleep (measured in the
daemon: one such sleep per DEL). Here the pipes are served by one poll loop and the exit is
awaited on a pidfd (Linux 5.3+), which wakes at the exit; without pidfds Popen.wait is the
fallback. A timeout kills the child and reaps it, as subprocess.run does."""
import os
import select
import subprocess
import time

_CHUNK = select.PIPE_BUF   # a pipe reported writable takes this much without blocking


def run(argv: list, stdin: bytes, env: dict, timeout: float, pass_fds: tuple = ()) -> tuple[int, bytes, bytes]:
    """(exit code, stdout, stderr); subprocess.TimeoutExpired past `timeout` (the child is
    killed and reaped), OSError when it cannot be started."""
    deadline = time.monotonic() + timeout
    with subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          env=env, close_fds=True, pass_fds=pass_fds) as p:
        try:
            out, err = _exchange(p, stdin, deadline)
            _wait_exit(p, deadline)
        except BaseException:   # the timeout, or anything else: never leave the child behind
            p.kill()
            p.wait()
            raise
        return p.returncode, out, err


def _exchange(p: subprocess.Popen, data: bytes, deadline: float) -> tuple[bytes, bytes]:
    """Write `data` to the child's stdin (then close it) while reading its stdout and stderr
    until both reach EOF; TimeoutExpired at `deadline`."""
    assert p.stdin is not None and p.stdout is not None and p.stderr is not None
    wfd, ofd, efd = p.stdin.fileno(), p.stdout.fileno(), p.stderr.fileno()
    chunks: dict[int, list] = {ofd: [], efd: []}
    view = memoryview(data)
    poller = select.poll()
    for fd in (ofd, efd):
        poller.register(fd, select.POLLIN)
    if view:
        poller.register(wfd, select.POLLOUT)
    else:
        p.stdin.close()
    reading = 2
    while reading or not p.stdin.closed:
        left = deadline - time.monotonic()
        if left <= 0:
            raise subprocess.TimeoutExpired(p.args, 0.0)
        for fd, _ev in poller.poll(left * 1000.0):
            if fd == wfd:
                try:
                    view = view[os.write(wfd, view[:_CHUNK]):]
                except BrokenPipeError:   # it stopped reading: what it wrote still counts
                    view = view[:0]
                if not view:
                    poller.unregister(wfd)
                    p.stdin.close()
                continue
            block = os.read(fd, 32768)   # readable, or hung up: b"" at EOF
            if block:
                chunks[fd].append(block)
            else:
                poller.unregister(fd)
                reading -= 1
    return b"".join(chunks[ofd]), b"".join(chunks[efd])


def _wait_exit(p: subprocess.Popen, deadline: float) -> None:
    """Reap `p`, which has closed its output: at its exit, or TimeoutExpired at `deadline`."""
    if p.poll() is not None:
        return
    try:
        fd = os.pidfd_open(p.pid)   # still ours to open: nobody else reaps this child
    except (AttributeError, OSError):   # no pidfd (old kernel, non-Linux)
        p.wait(max(0.0, deadline - time.monotonic()))
        return
    try:
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        if not poller.poll(max(0.0, deadline - time.monotonic()) * 1000.0):
            raise subprocess.TimeoutExpired(p.args, 0.0)
    finally:
        os.close(fd)
    p.wait()   # readable pidfd: it has exited, this reaps without a sleep
