"""The start of every exec'd plugin (stdlib only, a few ms): forward the CNI call to the node
daemon over its unix socket when it answers, else run the plugin in-process.

What it knows of the product comes from the caller's `profile` (netmeta's: delegates/registry.py
SHIM): its name for messages, the default socket, the prefix P of its environment variables, the
config keys for the mode and the socket, and which plugins' configs carry a mode.

mode (config key `profile.mode_key`, in `profile.modal` plugins only): auto (default) = daemon
if its socket answers, else in-process; daemon = the daemon or error 11 (try again later);
thin = always in-process (also P+MODE=thin). The socket is `profile.socket_key` from the config,
or P+SOCKET, or `profile.socket`.

Time budget (P+SHIM_TIMEOUT, default 90 s): the kubelet gives a CRI call 2 minutes
(`runtimeRequestTimeout`, default 2m0s) and the runtime calls us inside it, so every wait here
ends well before that: the request carries the deadline now + 90 s (P+DEADLINE; a call made
by a plugin the daemon exec'd inherits the earlier deadline of its operation), the daemon answers
by then, the shim waits GRACE seconds more for that answer, then the auto fallback waits at most
LOCK_WAIT seconds for the container lock (cni/oplock.py): 90 + 2 + 15 = 107 s, leaving the
in-process call ~13 s before the kubelet gives up. The native shim (shim/netmeta-shim.c) uses
the same numbers.
"""
import gc
import os
import sys
import time

from . import jsonlite, wire

FORWARD = ("CNI_COMMAND", "CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME", "CNI_ARGS", "CNI_PATH")   # + P+OP
BUDGET = 90.0      # seconds the daemon gets (see above)
GRACE = 2.0        # seconds past the deadline the shim still waits for the daemon's answer
LOCK_WAIT = 15.0   # seconds the in-process fallback waits for the container lock


def config_string(stdin: bytes, key: bytes):
    """A top-level string value of the config (a delegate's own "mode" must not count)."""
    try:
        v = jsonlite.loads(stdin).get(key.decode())
    except (ValueError, AttributeError, UnicodeDecodeError, RecursionError):
        return None
    return v if isinstance(v, str) else None


def forward(path: str, env: dict, stdin: bytes, timeout: float):
    """(exit code, stdout) from the daemon; None when it does not answer the connect;
    raises EOFError/OSError when it broke off after accepting or did not answer within
    `timeout` seconds in all (not per read)."""
    import _socket
    s = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    end = time.monotonic() + timeout

    def recv(n):
        left = end - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"no answer within {timeout:.0f}s")
        s.settimeout(left)
        return s.recv(n)
    try:
        s.settimeout(1.0)
        try:
            s.connect(path)
        except OSError:
            return None
        s.settimeout(max(0.1, end - time.monotonic()))
        s.sendall(wire.encode_request(env, stdin))
        return wire.decode_response(recv)
    finally:
        s.close()


def _budget(environ, prefix: str) -> float:
    try:
        return float(environ.get(prefix + "SHIM_TIMEOUT", BUDGET))
    except ValueError:
        return BUDGET


def lock_wait(environ, prefix: str) -> float:
    """LOCK_WAIT, shorter with a shorter budget (a third of it, at least a second)."""
    return min(LOCK_WAIT, max(1.0, _budget(environ, prefix) / 3))


def deadline_for(environ, prefix: str) -> float:
    """now + the budget, or the earlier deadline inherited from the operation that exec'd us."""
    own = time.time() + _budget(environ, prefix)
    try:
        inherited = float(environ.get(prefix + "DEADLINE", "inf"))
    except ValueError:
        inherited = float("inf")
    return min(own, inherited) if inherited == inherited else own


def _write(data: bytes) -> None:
    while data:
        data = data[os.write(1, data):]


# the same answer cni/version.py gives; asserted equal in tests/test_cni_core.py
VERSION_REPLY = b'{"cniVersion": "1.1.0", "supportedVersions": ["0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"]}\n'


def leave(rc: int):
    """End an exec'd entry with exit code `rc` (the generated scripts' last line).

    An interpreter's orderly shutdown tears every module down: ~3 ms of a ~17 ms fixipam call
    here. When nothing asked for that shutdown (no module imported `atexit`, as logging,
    weakref.finalize or the kubernetes client's temp files do, and no `threading`, whose
    shutdown joins threads) the answer is flushed and the process ends at once (os._exit).
    Our files are written with os-level writes and fsync (cni/files.py), never left in a
    Python buffer. Otherwise, or when flushing fails (the reader went away), sys.exit as ever."""
    if not isinstance(rc, int):   # None or a message: sys.exit's meaning
        sys.exit(rc)
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (OSError, ValueError):
        sys.exit(rc)
    if "atexit" in sys.modules or "threading" in sys.modules:
        sys.exit(rc)
    os._exit(rc)


def run(plugin: str, in_process, profile) -> int:
    """Entry of the `plugin` executable; `in_process(stdin) -> exit code` is the fallback;
    `profile` names the product (see the module's docstring)."""
    # A plugin call lives well under a second and makes no garbage cycles worth collecting: the
    # cyclic collector's passes over what its imports and work create were 1-6 ms of an exec'd
    # call here (~1.7 ms of a thin ADD, 3-6 ms of an sriov ADD on a sim VF). Reference counting
    # frees the rest; locks, sockets and files are closed by their context managers.
    gc.disable()
    stdin = b"" if sys.stdin is None or sys.stdin.isatty() else sys.stdin.buffer.read()
    if os.environ.get("CNI_COMMAND") == "VERSION":   # answered here: no daemon, no imports
        _write(VERSION_REPLY)
        return 0
    P, product = profile.env_prefix, profile.product
    mode = config_string(stdin, profile.mode_key.encode()) if plugin in profile.modal else None
    path = config_string(stdin, profile.socket_key.encode()) or os.environ.get(P + "SOCKET") or profile.socket
    if mode != "thin" and os.environ.get(P + "MODE") != "thin":
        env = {k: os.environ[k] for k in FORWARD + (P + "OP",) if k in os.environ}
        env[P + "PLUGIN"] = plugin
        if P + "DAEMON_FAULT" in os.environ:   # tests: crash the daemon (not this process)
            env[P + "FAULT"] = os.environ[P + "DAEMON_FAULT"]
        deadline = deadline_for(os.environ, P)
        env[P + "DEADLINE"] = f"{deadline:.3f}"
        try:
            answer = forward(path, env, stdin, deadline - time.time() + GRACE)
        except (OSError, EOFError, ValueError) as e:
            answer = None
            sys.stderr.write(f"{product} shim: daemon at {path} broke off: {e}\n")
            if mode == "daemon":
                return _try_again(profile, stdin, f"the {product} daemon broke off the request: {e}")
        if answer is not None:
            _write(answer[1])
            return answer[0]
        if mode == "daemon":
            return _try_again(profile, stdin, f"the {product} daemon is not running (no answer on {path})")
    from . import fault, log  # this process runs the plugin: the product's log root and fault variable
    log.name_root(product, P + "LOG_LEVEL")
    fault.watch(P + "FAULT")
    return run_locked(in_process, stdin, path, profile)


def run_locked(in_process, stdin: bytes, socket_path: str, profile) -> int:
    """The in-process call under the container's lock (cni/oplock.py), shared with the daemon,
    so two calls for one container never interleave, in whichever processes they run. A call
    made by a plugin of the operation holding the lock (it presents that operation's token)
    runs without it: waiting would deadlock on our own caller."""
    cid, cmd = os.environ.get("CNI_CONTAINERID", ""), os.environ.get("CNI_COMMAND", "")
    if cmd not in ("ADD", "DEL", "CHECK") or not cid:
        return in_process(stdin)

    from . import operation, oplock
    from .errors import CNIError
    names = operation.EnvNames(profile.env_prefix)
    directory = oplock.lock_dir(socket_path)
    token = os.environ.get(names.op, "")
    if oplock.held_by(directory, cid, token):
        with operation.running(operation.Op(token, cid, socket=socket_path, env=names)):
            return in_process(stdin)
    try:
        lock = oplock.ContainerLock(directory, cid, profile.product)
        token = os.urandom(16).hex()
        fd = lock.acquire(token, time.time() + lock_wait(os.environ, profile.env_prefix))
    except CNIError as e:
        if cmd != "DEL" or e.code != 11:
            return _try_again(profile, stdin, e.msg, e.code, e.details)
        # A DEL is never blocked for good by a hung holder (a stopped ADD the runtime gave up on):
        # past the bound it runs anyway; the records' owner checks keep it to what it owns.
        sys.stderr.write(f"{profile.product}: {e.msg}; DEL goes ahead without the lock\n")
        with operation.running(operation.Op(token, cid, socket=socket_path, env=names)):
            return in_process(stdin)
    try:
        with operation.running(operation.Op(token, cid, lock_fd=fd, socket=socket_path, env=names)):
            return in_process(stdin)
    finally:
        lock.release()


def _try_again(profile, stdin: bytes, msg: str, code: int = 11, details: str | None = None) -> int:
    v = config_string(stdin, b"cniVersion") or "1.1.0"
    details = profile.daemon_hint if details is None else details
    _write(jsonlite.dumps({"cniVersion": v[:16], "code": code, "msg": msg, "details": details}).encode() + b"\n")
    sys.stderr.write(f"{profile.product}: {msg}\n")
    return 1
