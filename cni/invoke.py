"""Calling another CNI plugin the way libcni does: find `type` in CNI_PATH (plain names only),
exec it with an argv (never a shell) and the CNI env, the config on stdin with `name` and a
its own `cniVersion` (unchanged, as libcni), a timeout, and its stdout parsed as a result or error.

A caller's own plugin types run in-process instead (no exec, warm imports) when it passes
`own` (for netmeta: delegates/registry.py's OWN; cni/ names no plugin) and the executable
CNI_PATH would find is one of its own (its head holds one of `own.markers`), or CNI_PATH has
none: so a foreign plugin of the same name (e.g. upstream sriov-cni installed as `sriov`) is
always exec'd, never shadowed.

With a host root (the daemon's `hostRoot`, cni/hostroot.py, lent as `own.host_root`) CNI_PATH
is searched and plugins run in the host's filesystem view; paths returned by find() are host paths.
"""
import os

from . import childproc, hostroot, jsonlite, log, operation, version
from .errors import DECODE_FAILURE, DELEGATE_FAILED, DELEGATE_NOT_FOUND, DELEGATE_TIMEOUT, INVALID_CONFIG, CNIError
from .plugin import dispatch
from .request import Request, from_env, is_plain_name
from .result import Result

_log = log.get("invoke")
DEFAULT_TIMEOUT = 60.0
_version_cache: dict = {}
_own_cache: dict = {}


def validate_type(t) -> str:
    if not isinstance(t, str) or not (len(t) <= 64 and is_plain_name(t)) or t in (".", ".."):
        raise CNIError(INVALID_CONFIG, f"invalid plugin type {str(t)[:80]!r}",
                       "a plugin type is a plain file name: no '/', no '..'")
    return t


def find(plugin_type: str, path: list, view: hostroot.HostRoot = hostroot.OWN_VIEW) -> str | None:
    validate_type(plugin_type)
    for d in path:
        p = os.path.join(d, plugin_type)
        mine = view.local(p)
        if os.path.isfile(mine) and os.access(mine, os.X_OK):
            return p
    return None


def _is_own(exe: str, markers: tuple, view: hostroot.HostRoot = hostroot.OWN_VIEW) -> bool:
    """True when `exe` holds one of `markers` (bytes): in a script's first 4 KiB, anywhere in
    a small ELF binary (a native shim). Cached by path+mtime+size."""
    exe = view.local(exe)
    try:
        st = os.stat(exe)
    except OSError:
        return False
    key = (exe, st.st_mtime_ns, st.st_size, markers)
    if key not in _own_cache:
        own = False
        if st.st_size < 2 * 1024 * 1024:   # our scripts, and the native shim (~0.9 MB static)
            with open(exe, "rb") as f:
                data = f.read()
            if data.startswith(b"#!"):
                own = any(m in data[:4096] for m in markers)
            elif data.startswith(b"\x7fELF"):
                own = any(m in data for m in markers)   # e.g. shim/netmeta-shim.c embeds one
        _own_cache[key] = own
    return _own_cache[key]


def _run(exe: str, env: dict, stdin: bytes, timeout: float,
         view: hostroot.HostRoot = hostroot.OWN_VIEW) -> tuple[int, bytes, bytes]:
    full_env = dict(os.environ)
    full_env.update(env)
    full_env.update(operation.delegate_env())   # its calls of ours join this operation
    try:
        return childproc.run(view.argv(exe), stdin, full_env, timeout, operation.pass_fds())
    except childproc.Timeout:
        raise CNIError(DELEGATE_TIMEOUT, f"plugin {os.path.basename(exe)} timed out",
                       f"no answer after {timeout:.0f}s") from None
    except OSError as e:
        raise CNIError(DELEGATE_FAILED, f"failed to execute plugin {exe}", str(e)) from None


def plugin_versions(exe: str, timeout: float = 10.0, view: hostroot.HostRoot = hostroot.OWN_VIEW) -> list:
    """The versions a plugin supports (its VERSION answer), cached per binary."""
    st = os.stat(view.local(exe))
    key = (view.root, exe, st.st_mtime_ns, st.st_size)
    if key not in _version_cache:
        rc, out, err = _run(exe, {"CNI_COMMAND": "VERSION"},
                            jsonlite.dumps({"cniVersion": version.CURRENT}).encode(), timeout, view)
        try:
            info = jsonlite.loads(out)
            vers = list(info.get("supportedVersions") or [info["cniVersion"]])
        except Exception:
            raise CNIError(DELEGATE_FAILED, f"plugin {os.path.basename(exe)} answered VERSION badly",
                           (out or err)[:300].decode(errors="replace")) from None
        _version_cache[key] = vers
    return _version_cache[key]


def _delegate_error(plugin_type: str, rc: int, out: bytes, err: bytes) -> CNIError:
    try:
        e = jsonlite.loads(out)
        code = int(e["code"])
        return CNIError(code, f"plugin {plugin_type} failed: {e.get('msg', '')}", str(e.get("details", "")))
    except Exception:
        tail = (out or err).decode(errors="replace").strip()[-500:]
        return CNIError(DELEGATE_FAILED, f"plugin {plugin_type} failed with exit code {rc}", tail)


def delegate(plugin_type: str, command: str, netconf: dict, req: Request,
             timeout: float = DEFAULT_TIMEOUT, ifname: str | None = None,
             netns: str | None = None, cni_args: str | None = None, own=None) -> Result | None:
    """Run `plugin_type` for `command` with `netconf` on behalf of `req` (env from req, with
    overrides). Returns the ADD result converted to netconf's cniVersion; None for others.
    `own`: the caller's plugins: `.in_process` (the types it may run here), `.plugin(type)` (a
    new instance of one, made with whatever the caller lends its plugins), `.markers`, and
    `.host_root` (a cni/hostroot.py HostRoot to exec plugins in; None: our own view)."""
    validate_type(plugin_type)
    if command in ("ADD", "CHECK"):   # a request its caller gave up on goes no further
        operation.check(f"{command} of {plugin_type}")
    env = req.env(CNI_COMMAND=command)
    if ifname is not None:
        env["CNI_IFNAME"] = ifname
    if netns is not None:
        env["CNI_NETNS"] = netns
    if cni_args is not None:
        env["CNI_ARGS"] = cni_args
    want = str(netconf.get("cniVersion") or req.cni_version)
    conf = dict(netconf)
    conf.setdefault("name", req.name)
    conf.setdefault("cniVersion", want)
    view = (own.host_root if own is not None else None) or hostroot.OWN_VIEW
    exe = find(plugin_type, req.path, view)
    if own is not None and plugin_type in own.in_process and (exe is None or _is_own(exe, own.markers, view)):
        return _in_process(own.plugin(plugin_type), conf, env)
    if exe is None:
        raise CNIError(DELEGATE_NOT_FOUND, f"failed to find plugin {plugin_type!r} in path",
                       f"CNI_PATH={env.get('CNI_PATH', '')}" + (f" in host root {view.root}" if view.root else ""))
    # the delegate's own cniVersion, unchanged, as libcni and Multus v4.1.4 pass it (libcni
    # AddNetwork execs the config's bytes; pkg/multus/multus.go confAdd/conflistAdd): a plugin
    # that does not speak it answers with its own error (code 1)
    use = conf["cniVersion"]
    if isinstance(conf.get("prevResult"), dict) and use in version.SUPPORTED:
        conf["prevResult"] = Result.from_dict(conf["prevResult"]).to_dict(use)
    _log.debug("exec %s %s (cniVersion %s)", exe, command, use)
    rc, out, err = _run(exe, env, jsonlite.dumps(conf).encode(), timeout, view)
    if err:
        _log.debug("%s stderr: %s", plugin_type, err.decode(errors="replace").strip()[:2000])
    if rc != 0:
        raise _delegate_error(plugin_type, rc, out, err)
    if command != "ADD":
        return None
    try:
        parsed = jsonlite.loads(out)
    except ValueError as e:
        raise CNIError(DECODE_FAILURE, f"plugin {plugin_type} returned invalid JSON", str(e)) from None
    return Result.from_dict(parsed)


def _in_process(plugin, conf: dict, env: dict) -> Result | None:
    sub = from_env(env, jsonlite.dumps(conf).encode())
    if sub.command == "ADD":  # keep the Result object: no lossy round trip through JSON
        from . import log as _l
        _l.set_container(sub.container_id)
        return plugin.add(sub)
    dispatch(plugin, sub)
    return None
