"""Drive a CNI plugin executable exactly as a runtime does: CNI_* env + config on stdin,
result or error JSON on stdout, exit code. Shared by the tests and the benchmarks."""
import atexit
import json
import os
import shutil
import subprocess
import tempfile
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


_SOCKET_DIR: list[str] = []


def private_socket() -> str:
    """The daemon socket a call gets unless its config or extra_env names one: in a directory of
    this process's own, where no daemon listens. A call that finds no daemon runs in-process and
    keeps its container locks in <socket dir>/locks, so a test run never writes the node's
    /run/netmeta (the hostile-input teardowns check that; another tree's tests running at the
    same time tripped them). Removed at exit."""
    if not _SOCKET_DIR:
        d = tempfile.mkdtemp(prefix="netmeta-tests-")
        atexit.register(shutil.rmtree, d, True)
        _SOCKET_DIR.append(d)
    return os.path.join(_SOCKET_DIR[0], "netmeta.sock")


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
           "CNI_IFNAME": ifname, "CNI_ARGS": args, "CNI_PATH": path, "NETMETA_SOCKET": private_socket()}
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
