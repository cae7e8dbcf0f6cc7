"""The start of every netmeta executable (stdlib only, a few ms): forward the CNI call to the
node daemon over its unix socket when it answers, else run the plugin in-process.

`mode` (netmeta config): auto (default) = daemon if its socket answers, else in-process;
daemon = the daemon or error 11 (try again later); thin = always in-process. The socket is
`socketPath` from the config, or /run/netmeta/netmeta.sock.
"""
import os
import sys

from . import wire

DEFAULT_SOCKET = "/run/netmeta/netmeta.sock"
FORWARD = ("CNI_COMMAND", "CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME", "CNI_ARGS", "CNI_PATH")


def config_string(stdin: bytes, key: bytes):
    """A top-level string value of the config (a delegate's own "mode" must not count). This
    Python shim is the fallback path (the native shim is the fast one), so json is fine."""
    import json
    try:
        v = json.loads(stdin).get(key.decode())
    except (ValueError, AttributeError, UnicodeDecodeError, RecursionError):
        return None
    return v if isinstance(v, str) else None


def forward(path: str, env: dict, stdin: bytes, timeout: float):
    """(exit code, stdout) from the daemon; None when it does not answer the connect;
    raises EOFError/OSError when it broke off after accepting."""
    import _socket
    s = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    try:
        s.settimeout(1.0)
        try:
            s.connect(path)
        except OSError:
            return None
        s.settimeout(timeout)
        s.sendall(wire.encode_request(env, stdin))
        return wire.decode_response(s.recv)
    finally:
        s.close()


def _write(data: bytes) -> None:
    while data:
        data = data[os.write(1, data):]


# the same answer cni/version.py gives; asserted equal in tests/test_cni_core.py
VERSION_REPLY = b'{"cniVersion": "1.1.0", "supportedVersions": ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"]}\n'


def run(plugin: str, in_process) -> int:
    """Entry of the `plugin` executable; `in_process(stdin) -> exit code` is the fallback."""
    stdin = b"" if sys.stdin is None or sys.stdin.isatty() else sys.stdin.buffer.read()
    if os.environ.get("CNI_COMMAND") == "VERSION":   # answered here: no daemon, no imports
        _write(VERSION_REPLY)
        return 0
    mode = config_string(stdin, b"mode") if plugin == "netmeta" else None
    if mode != "thin" and os.environ.get("NETMETA_MODE") != "thin":
        path = config_string(stdin, b"socketPath") or os.environ.get("NETMETA_SOCKET") or DEFAULT_SOCKET
        env = {k: os.environ[k] for k in FORWARD if k in os.environ}
        env["NETMETA_PLUGIN"] = plugin
        if "NETMETA_DAEMON_FAULT" in os.environ:   # tests: crash the daemon (not this process)
            env["NETMETA_FAULT"] = os.environ["NETMETA_DAEMON_FAULT"]
        try:
            answer = forward(path, env, stdin, float(os.environ.get("NETMETA_SHIM_TIMEOUT", "330")))
        except (OSError, EOFError, ValueError) as e:
            answer = None
            sys.stderr.write(f"netmeta shim: daemon at {path} broke off: {e}\n")
            if mode == "daemon":
                return _try_again(stdin, f"the netmeta daemon broke off the request: {e}")
        if answer is not None:
            _write(answer[1])
            return answer[0]
        if mode == "daemon":
            return _try_again(stdin, f"the netmeta daemon is not running (no answer on {path})")
    return in_process(stdin)


def _try_again(stdin: bytes, msg: str) -> int:
    v = config_string(stdin, b"cniVersion") or "1.1.0"
    msg = msg.replace("\\", "\\\\").replace('"', '\\"')
    _write(b'{"cniVersion": "' + v.encode()[:16] + b'", "code": 11, "msg": "' + msg.encode() +
           b'", "details": "start the daemon (netmeta daemon) or set mode auto to run in-process"}\n')
    sys.stderr.write(f"netmeta: {msg}\n")
    return 1
