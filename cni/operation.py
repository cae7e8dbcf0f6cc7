"""The CNI operation this thread is serving: its deadline, its token and its container lock.

The environment variables it travels in are named by the caller (`EnvNames(prefix)`; netmeta's
prefix is NETMETA_, from delegates/registry.py's SHIM): cni/ names no product.

- deadline: absolute, in seconds since the epoch (time.time(), so it means the same in every
  process on the node). The shim puts it in the request (<prefix>DEADLINE); the daemon refuses a
  request whose deadline passed before it started and checks again before each delegate step of
  an ADD or CHECK (cni/invoke.py), so a request the shim gave up on (and whose work the auto
  fallback may have done meanwhile) never runs later. A DEL that has started runs to its end.
- token: a random name of the operation. Every plugin we exec gets it (<prefix>OP) with the
  deadline; a call of ours that such a plugin makes (macvlan -> fixipam) presents it, and is
  served as part of this operation instead of queueing behind its container lock.
- lock_fd: the container lock (cni/oplock.py). Exec'd delegates inherit it: if the daemon is
  killed mid-ADD, the container stays locked until the delegate it had started exits, so the
  shim's fallback never runs beside a delegate orphaned by the crash.
"""
import contextlib
import time
from _thread import _local as _thread_local  # threading.local itself, without threading (an exec'd fixipam has no thread)

from .errors import TRY_AGAIN, CNIError

_local = _thread_local()


class EnvNames:
    """The environment variables of an operation, under the product's `prefix`."""
    def __init__(self, prefix: str):
        self.op = prefix + "OP"              # the operation's token
        self.deadline = prefix + "DEADLINE"  # its deadline (time.time())
        self.socket = prefix + "SOCKET"      # the daemon socket its nested calls must reach


class Op:
    def __init__(self, token: str, container_id: str = "", deadline: float | None = None, lock_fd: int | None = None,
                 socket: str | None = None, *, env: EnvNames):
        self.token = token
        self.env = env                # the names delegate_env() passes it under
        self.socket = socket          # the daemon socket its nested calls must reach
        self.container_id = container_id
        self.deadline = deadline      # a joined retry may move it later (meta/daemon/server.py)
        self.lock_fd = lock_fd

    def check(self, what: str) -> None:
        """Raise code 11 when the deadline has passed: `what` is not started."""
        if self.deadline is not None:
            late = time.time() - self.deadline
            if late > 0:
                raise CNIError(TRY_AGAIN, f"not starting {what}: the caller's deadline passed {late:.1f}s ago",
                               "the shim gave up on this request (the runtime retries it); nothing more is done for it")

    def remaining(self) -> float:
        return float("inf") if self.deadline is None else self.deadline - time.time()


def parse_deadline(value) -> float | None:
    try:
        d = float(value)
    except (TypeError, ValueError):
        return None
    return d if d > 0 and d == d and d != float("inf") else None


def current() -> Op | None:
    return getattr(_local, "op", None)


def adopt(op: Op | None) -> None:
    """Make `op` this thread's operation (a worker thread serving part of it), or none."""
    _local.op = op


@contextlib.contextmanager
def running(op: Op):
    prev = current()
    _local.op = op
    try:
        yield op
    finally:
        _local.op = prev


def check(what: str) -> None:
    """Raise code 11 when the operation's deadline has passed: `what` is not started."""
    op = current()
    if op is not None:
        op.check(what)


def delegate_env() -> dict:
    """What a plugin exec'd for this operation gets, so its calls of ours join the operation."""
    op = current()
    if op is None:
        return {}
    env = {op.env.op: op.token}
    if op.socket:
        env[op.env.socket] = op.socket
    if op.deadline is not None:
        env[op.env.deadline] = f"{op.deadline:.3f}"
    return env


def pass_fds() -> tuple:
    op = current()
    return (op.lock_fd,) if op is not None and op.lock_fd is not None else ()
