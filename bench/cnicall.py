"""Calling a CNI plugin for the benchmarks: the same protocol as tests/cnirun.py (CNI_* env +
config on stdin, one JSON document or nothing on stdout, exit code), but the plugin runs in its
own session so a Ctrl-C reaches only the bench (see guard.py), and a failed call is an error
that names the plugin, command and CNI error code: a bench must never time an error."""
import json
import os
import subprocess

from tests.cnirun import CNI_PATH, Run, exe

# Added to every call's env. run.py points NETMETA_SOCKET at a path that cannot exist, so our
# executables (auto mode) never reach a daemon someone else left on the default socket: the
# "no daemon" cases measure what they say. The daemon hook passes its own socket per call.
ENV: dict = {}


class CNIFailed(AssertionError):
    def __init__(self, plugin: str, command: str, run: Run):
        self.plugin, self.command, self.run = plugin, command, run
        code = run.out.get("code") if isinstance(run.out, dict) else None
        msg = run.out.get("msg") if isinstance(run.out, dict) else run.stdout[:200]
        tail = run.stderr.strip().splitlines()[-3:]
        super().__init__(f"{plugin} {command} failed: rc {run.rc}, CNI code {code}: {msg}"
                         + ("\n    stderr: " + "\n    ".join(tail) if tail else ""))


def call(plugin: str, command: str, conf, *, container_id: str = "ctr1", netns: str = "",
         ifname: str = "eth0", args: str = "", path: str = CNI_PATH, timeout: float = 120,
         env: dict | None = None) -> Run:
    stdin = json.dumps(conf).encode() if isinstance(conf, dict) else conf
    full = {"PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
            "CNI_COMMAND": command, "CNI_CONTAINERID": container_id, "CNI_NETNS": netns,
            "CNI_IFNAME": ifname, "CNI_ARGS": args, "CNI_PATH": path, **ENV, **(env or {})}
    p = subprocess.run([plugin if plugin.startswith("/") else exe(plugin)], input=stdin, env=full,
                       capture_output=True, timeout=timeout, start_new_session=True)
    try:
        out = json.loads(p.stdout) if p.stdout.strip() else None
    except ValueError:   # stdout must be exactly one JSON document: treat anything else as failure
        return Run(p.returncode or 255, {"code": "bad-stdout", "msg": p.stdout[:200].decode(errors="replace")},
                   p.stdout, p.stderr.decode(errors="replace"))
    return Run(p.returncode, out, p.stdout, p.stderr.decode(errors="replace"))


def must(plugin: str, command: str, conf, *, ips: int = 0, **kw) -> Run:
    """The call, which must succeed; an ADD must return a result (with at least `ips` IPs)."""
    r = call(plugin, command, conf, **kw)
    if not r.ok:
        raise CNIFailed(plugin, command, r)
    if command == "ADD" and not (isinstance(r.out, dict) and "cniVersion" in r.out
                                 and len(r.out.get("ips") or []) >= ips):
        raise CNIFailed(plugin, command, Run(255, {"code": "bad-result", "msg": r.stdout[:300]}, r.stdout, r.stderr))
    return r


def error_code(r: Run):
    return r.out.get("code") if isinstance(r.out, dict) else f"rc{r.rc}"
