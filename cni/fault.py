"""Test-only fault points. With NETMETA_FAULT=<point> (or <point>:fail) in the environment the
process is killed with SIGKILL (or raises) when it reaches that point, so tests can prove that
a crash at any step leaves nothing a later DEL/GC cannot undo. Costs one dict lookup."""
import os
import signal

from .errors import CNIError, INTERNAL


def point(name: str) -> None:
    want = os.environ.get("NETMETA_FAULT")
    if not want:
        return
    target, _, mode = want.partition(":")
    if target != name:
        return
    if mode == "fail":
        raise CNIError(INTERNAL, f"injected failure at {name}")
    os.kill(os.getpid(), signal.SIGKILL)
