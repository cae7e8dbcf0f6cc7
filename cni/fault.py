"""Test-only fault points. With NETMETA_FAULT=<point> (or <point>:fail) in the environment the
process is killed with SIGKILL (or raises) when it reaches that point, so tests can prove that
a crash at any step leaves nothing a later DEL/GC cannot undo. Costs one dict lookup."""
import os
import signal
import threading

from .errors import CNIError, INTERNAL

_request = threading.local()


def for_request(value: str | None) -> None:
    """The daemon passes a request's NETMETA_FAULT here (only when started with
    NETMETA_ALLOW_FAULTS=1), so a test can crash the daemon at a chosen step."""
    _request.value = value


def point(name: str) -> None:
    want = getattr(_request, "value", None) or os.environ.get("NETMETA_FAULT")
    if not want:
        return
    target, _, mode = want.partition(":")
    if target != name:
        return
    if mode == "fail":
        raise CNIError(INTERNAL, f"injected failure at {name}")
    os.kill(os.getpid(), signal.SIGKILL)
