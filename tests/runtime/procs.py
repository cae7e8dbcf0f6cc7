"""Processes, mounts and netns the harness started, found precisely and ended one by one
(never by a broad name): a shim is recognised by its `-address <our socket>` arguments."""
import os
import signal
import subprocess
import time


def cmdline(pid: int) -> list:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return [a.decode(errors="replace") for a in f.read().split(b"\0")[:-1]]
    except OSError:
        return []


def _ppids() -> dict:
    out = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    stat = f.read()
            except OSError:
                continue
            out[int(d)] = int(stat.rpartition(")")[2].split()[1])
    return out


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rpartition(")")[2].split()[0] != "Z"
    except OSError:
        return False


def with_args(*pair: str) -> list:
    """PIDs whose argv contains these arguments consecutively (e.g. "-address", socket)."""
    n = len(pair)
    found = []
    for d in os.listdir("/proc"):
        if d.isdigit() and int(d) != os.getpid():
            argv = cmdline(int(d))
            if any(tuple(argv[i:i + n]) == pair for i in range(len(argv) - n + 1)):
                found.append(int(d))
    return found


def descendants(pid: int) -> list:
    """All descendants, children before grandchildren."""
    ppids, out, todo = _ppids(), [], [pid]
    while todo:
        p = todo.pop(0)
        kids = [c for c, pp in ppids.items() if pp == p]
        out += kids
        todo += kids
    return out


def wait_gone(pids, timeout: float) -> list:
    deadline = time.monotonic() + timeout
    left = [p for p in pids if alive(p)]
    while left and time.monotonic() < deadline:
        time.sleep(0.02)
        left = [p for p in left if alive(p)]
    return left


def kill_tree(pid: int, timeout: float = 5.0) -> None:
    """SIGKILL a process and everything below it, deepest first."""
    tree = [pid] + descendants(pid)
    for p in reversed(tree):
        try:
            os.kill(p, signal.SIGKILL)
        except ProcessLookupError:
            pass
    wait_gone(tree, timeout)


def _unescape(path: str) -> str:
    return path.encode().decode("unicode_escape") if "\\" in path else path


def mounts_under(prefix: str) -> list:
    prefix = prefix.rstrip("/") + "/"
    out = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            mp = _unescape(line.split()[4])
            if (mp + "/").startswith(prefix):
                out.append(mp)
    return out


def umount_under(prefix: str) -> list:
    """Lazily unmount every mount under prefix, deepest first; the list of what was mounted."""
    found = mounts_under(prefix)
    for mp in sorted(found, key=len, reverse=True):
        subprocess.run(["umount", "-l", mp], capture_output=True)
    return found


def remove_netns(path: str) -> bool:
    """Remove a named netns (bind mount + file) the harness saw created; True if it existed."""
    if not os.path.lexists(path):
        return False
    subprocess.run(["umount", "-l", path], capture_output=True)
    try:
        os.unlink(path)
    except OSError:
        pass
    return True
