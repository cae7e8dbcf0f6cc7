"""Test-only fault points. With P+FAULT=<point> (or <point>:fail) in the environment the
process is killed with SIGKILL (or raises, or stops itself with SIGSTOP for a test to resume
with SIGCONT) when it reaches that point, so tests can prove that
a crash at any step leaves nothing a later DEL/GC cannot undo. Costs one dict lookup.

The variable's name (P+FAULT; netmeta's NETMETA_FAULT) comes from the process's entry
(`watch`: cni/shim.py run with its profile, meta/main.py); unnamed, only the daemon's
per-request value (for_request) counts."""
import os
from _thread import _local, allocate_lock

from .errors import INTERNAL, CNIError

_request = _local()   # threading.local, without importing threading
_env = {"name": ""}   # the process's fault variable, named by its entry (watch)


def watch(env_name: str) -> None:
    """Read the fault point from environment variable `env_name` (the entry's profile's)."""
    _env["name"] = env_name


def for_request(value: str | None) -> None:
    """The daemon passes a request's fault variable here (only when started with
    P+ALLOW_FAULTS=1), so a test can crash the daemon at a chosen step."""
    _request.value = value


def current_request() -> str | None:
    """This thread's per-request value (a worker thread takes it over: meta/parallel.py)."""
    return getattr(_request, "value", None)


_hits: dict = {}
_hits_lock = allocate_lock()   # threading.Lock; a pod's attachments reach the same delegate's points in parallel


def point(name: str) -> None:
    """P+FAULT=<name>[#N][:fail|:stop]: at the Nth time (default 1st) this process reaches it."""
    want = getattr(_request, "value", None) or (os.environ.get(_env["name"]) if _env["name"] else None)
    if not want:
        return
    target, _, mode = want.partition(":")
    target, _, nth = target.partition("#")
    if target != name:
        return
    with _hits_lock:
        _hits[name] = n = _hits.get(name, 0) + 1
    if n != int(nth or 1):
        return
    if mode == "fail":
        raise CNIError(INTERNAL, f"injected failure at {name}")
    import signal
    if mode == "stop":   # a hung process (until the test sends SIGCONT)
        os.kill(os.getpid(), signal.SIGSTOP)
        return
    os.kill(os.getpid(), signal.SIGKILL)
