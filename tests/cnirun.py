"""Drive a CNI plugin executable exactly as a runtime does: CNI_* env + config on stdin,
result or error JSON on stdout, exit code. Shared by the tests and the benchmarks."""
import json
import os
import subprocess
from dataclasses import dataclass

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VENV_BIN = os.path.join(REPO, ".venv", "bin")
DEBIAN_CNI = "/usr/lib/cni"
CNI_PATH = f"{VENV_BIN}:{DEBIAN_CNI}"


@dataclass
class Run:
    rc: int
    out: dict | None
    stdout: bytes
    stderr: str

    @property
    def ok(self) -> bool:
        return self.rc == 0


def exe(name: str) -> str:
    return os.path.join(DEBIAN_CNI if name in DEBIAN_PLUGINS else VENV_BIN, name)


DEBIAN_PLUGINS = {"bridge", "host-local", "static", "host-device", "macvlan", "tuning", "loopback"}


def cni(plugin: str, command: str, conf: dict | bytes | str, *, container_id: str = "ctr1",
        netns: str = "", ifname: str = "eth0", args: str = "", path: str = CNI_PATH,
        timeout: float = 60, extra_env: dict | None = None) -> Run:
    path_exe = plugin if plugin.startswith("/") else exe(plugin)
    if isinstance(conf, dict):
        stdin = json.dumps(conf).encode()
    elif isinstance(conf, str):
        stdin = conf.encode()
    else:
        stdin = conf
    env = {"PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
           "CNI_COMMAND": command, "CNI_CONTAINERID": container_id, "CNI_NETNS": netns,
           "CNI_IFNAME": ifname, "CNI_ARGS": args, "CNI_PATH": path}
    env.update(extra_env or {})
    p = subprocess.run([path_exe], input=stdin, env=env, capture_output=True, timeout=timeout)
    out = None
    if p.stdout.strip():
        out = json.loads(p.stdout)  # stdout must always be exactly one JSON document
    return Run(p.returncode, out, p.stdout, p.stderr.decode(errors="replace"))


def ip_json(*args, netns: str | None = None):
    """An independent view of kernel state through iproute2 (`ip -j`), beside pyroute2."""
    cmd = (["ip", "-n", netns] if netns else ["ip"]) + ["-j", *args]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out or "[]")
