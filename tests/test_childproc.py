"""cni/childproc.run: how every delegate is exec'd (cni/invoke.py). Same contract as
subprocess.run(input=, capture_output=True, timeout=) — exit code, both outputs, a timeout
kills and reaps the child — but the exit is awaited on a pidfd, not by subprocess's polling
sleeps (0.5 ms doubling: ~1 ms lost per delegate that exits just after closing its output)."""
import os
import subprocess
import sys
import time

import pytest

from cni import childproc

PY = sys.executable


def _no_sleep(monkeypatch):
    def refuse(_s):
        raise AssertionError("childproc must not poll with time.sleep")
    monkeypatch.setattr(time, "sleep", refuse)


def test_outputs_and_exit_code_as_subprocess_run(monkeypatch):
    code = "import sys; d = sys.stdin.buffer.read(); sys.stdout.buffer.write(d[::-1]); sys.stderr.write('e'); sys.exit(3)"
    want = subprocess.run([PY, "-c", code], input=b"abc", capture_output=True)
    _no_sleep(monkeypatch)
    assert childproc.run([PY, "-c", code], b"abc", dict(os.environ), 30) == (3, b"cba", b"e") == \
        (want.returncode, want.stdout, want.stderr)


def test_large_input_and_outputs_at_once_do_not_deadlock(monkeypatch):
    """2 MiB each way, stderr too, more than any pipe buffer: the loop must write and read together."""
    code = ("import sys, threading; d = sys.stdin.buffer.read(); sys.stderr.buffer.write(d[:70000]); "
            "sys.stdout.buffer.write(d)")
    data = os.urandom(2 << 20)
    _no_sleep(monkeypatch)
    assert childproc.run([PY, "-c", code], data, dict(os.environ), 60) == (0, data, data[:70000])


def test_a_child_that_does_not_read_its_input_still_answers(monkeypatch):
    code = "import os; os.close(0); os.write(1, b'ok')"
    _no_sleep(monkeypatch)
    assert childproc.run([PY, "-c", code], os.urandom(1 << 20), dict(os.environ), 30) == (0, b"ok", b"")


def test_a_child_that_closes_its_output_then_lingers_is_waited_for_without_polling(monkeypatch):
    """The case subprocess polls for: output closed, exit 0.3 s later; the exit code is its own."""
    code = "import os, time; os.write(1, b'out'); os.close(1); os.close(2); time.sleep(0.3); os._exit(7)"
    _no_sleep(monkeypatch)
    t0 = time.monotonic()
    assert childproc.run([PY, "-c", code], b"", dict(os.environ), 30) == (7, b"out", b"")
    assert time.monotonic() - t0 >= 0.3


@pytest.mark.parametrize("closes_output", [False, True])
def test_timeout_kills_and_reaps_the_child(tmp_path, closes_output):
    """Past the timeout: TimeoutExpired, and the child is gone (killed and reaped, no zombie),
    whether it still held its output (communicate times out) or not (the pidfd wait does)."""
    pidfile = tmp_path / "pid"
    close = "os.close(1); os.close(2); " if closes_output else ""
    code = f"import os, time; open({str(pidfile)!r}, 'w').write(str(os.getpid())); {close}time.sleep(60)"
    t0 = time.monotonic()
    with pytest.raises(childproc.Timeout):
        childproc.run([PY, "-c", code], b"", dict(os.environ), 1.0)
    assert time.monotonic() - t0 < 30
    pid = int(pidfile.read_text())
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)   # reaped: not even a zombie is left


def test_a_missing_executable_raises_oserror():
    with pytest.raises(OSError):
        childproc.run(["/nonexistent/plugin"], b"", {}, 5)


def test_the_child_gets_its_env_only_the_pass_fds_and_default_sigpipe(tmp_path):
    """What subprocess.run(close_fds=True, pass_fds=..., env=...) gives a child: exactly its env;
    of our fds only pass_fds (an fd we made inheritable is not leaked); SIGPIPE and SIGXFSZ at
    their defaults (Python ignores SIGPIPE; a Go plugin writing to a closed pipe must die of it)."""
    keep = os.open(tmp_path, os.O_RDONLY)          # non-inheritable, passed
    stray = os.open(tmp_path, os.O_RDONLY)
    os.set_inheritable(stray, True)                # inheritable, not passed: must not leak
    try:
        code = "import os; print(' '.join(sorted(os.listdir('/proc/self/fd'), key=int)))"
        rc, out, err = childproc.run([PY, "-I", "-S", "-c", code], b"", {}, 30, (keep,))
        assert rc == 0, err
        opened = [int(f) for f in out.split()]
        assert keep in opened and stray not in opened, (keep, stray, opened)
        assert childproc.run(["/usr/bin/env"], b"", {"ONLY": "this"}, 30) == (0, b"ONLY=this\n", b"")
        rc, out, _ = childproc.run(["/bin/cat", "/proc/self/status"], b"", {}, 30)
        ignored = int(next(ln for ln in out.decode().splitlines() if ln.startswith("SigIgn")).split()[1], 16)
        assert not ignored & (1 << (13 - 1)) and not ignored & (1 << (25 - 1)), hex(ignored)   # SIGPIPE, SIGXFSZ
    finally:
        os.close(keep)
        os.close(stray)


def test_works_with_our_own_stdio_closed(tmp_path):
    """A daemon may run with fds 0-2 closed: the pipes then get those numbers and must not be
    overwritten by the child's dup2s onto 0, 1, 2."""
    res = tmp_path / "res"
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    code = ("import os, sys; os.close(0); os.close(1); os.close(2)\n"
            f"sys.path.insert(0, {repo!r})\n"
            "from cni import childproc\n"
            "r = childproc.run(['/bin/sh', '-c', 'cat; echo err >&2'], b'in', {}, 30)\n"
            f"open({str(res)!r}, 'w').write(repr(r))\n")
    subprocess.run([PY, "-I", "-S", "-c", code], check=True, timeout=60)
    assert res.read_text() == repr((0, b"in", b"err\n"))


def test_killed_by_a_signal_is_a_negative_code_and_bad_executables_raise(tmp_path):
    assert childproc.run(["/bin/sh", "-c", "kill -TERM $$"], b"", {}, 30)[0] == -15
    f = tmp_path / "plugin"
    f.write_text("#!/bin/sh\necho hi\n")
    with pytest.raises(PermissionError):   # not executable
        childproc.run([str(f)], b"", {}, 5)
