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
    with pytest.raises(subprocess.TimeoutExpired):
        childproc.run([PY, "-c", code], b"", dict(os.environ), 1.0)
    assert time.monotonic() - t0 < 30
    pid = int(pidfile.read_text())
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)   # reaped: not even a zombie is left


def test_a_missing_executable_raises_oserror():
    with pytest.raises(OSError):
        childproc.run(["/nonexistent/plugin"], b"", {}, 5)
