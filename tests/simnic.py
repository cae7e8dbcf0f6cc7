"""The simulated SR-IOV NIC as tests use it: built and destroyed with the product's own
`netmeta sim` CLI, and a snapshot of everything a DEL must restore."""
import json
import os
import subprocess

from delegates.sriov.device import Device
from delegates.sriov.vftable import open_vftable
from tests.cnirun import VENV_BIN, ip_json


def create(pf: str, vfs: int, root: str, state_dir: str) -> dict:
    p = subprocess.run([f"{VENV_BIN}/netmeta", "sim", "create", "--pf", pf, "--vfs", str(vfs), "--root", root],
                       capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    return dict(json.loads(p.stdout), stateDir=state_dir)


def destroy(frag: dict) -> None:
    subprocess.run([f"{VENV_BIN}/netmeta", "sim", "destroy", "--pf", frag["master"], "--root", frag["sysfsRoot"]],
                   capture_output=True)


def bind(frag: dict, vf: int, driver: str) -> dict:
    """`netmeta sim bind`: VF `vf` to a userspace driver (no netdev) or back to `net`."""
    p = subprocess.run([f"{VENV_BIN}/netmeta", "sim", "bind", "--pf", frag["master"], "--vf", str(vf),
                        "--driver", driver, "--root", frag["sysfsRoot"]], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)


def snapshot(frag) -> dict:
    """PF table, and each VF netdev's host name + MAC + MTU."""
    topo = Device(frag["sysfsRoot"], frag["backend"]).topo   # the sim's refreshes itself
    with open_vftable(frag["backend"], frag["master"], frag["sysfsRoot"]) as t:
        table = [s.to_dict() for s in t.get_all()]
    links = {l["ifname"]: l for l in ip_json("link", "show")}
    vfs = []
    for info in topo.vfs(frag["master"]):
        l = links.get(info.netdev) if info.netdev else None
        vfs.append((info.index, info.netdev, l and l["address"], l and l["mtu"]))
    return {"table": table, "vfs": vfs}


def records(frag) -> list:
    d = os.path.join(frag["stateDir"], frag["master"])
    return sorted(f for f in os.listdir(d) if f.endswith(".json")) if os.path.isdir(d) else []
