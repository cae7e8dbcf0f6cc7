"""What the sections share: a scratch directory, fresh pod netns, the cluster default network
(Debian bridge + host-local), a simulated SR-IOV NIC, CRI-like pod identities. Each helper
registers its own undo on the section's ExitStack."""
import itertools
import json
import os
import shutil
import tempfile
import uuid
from contextlib import ExitStack

from bench import guard
from tests.cnirun import VENV_BIN

POD_NS = "bench"
_seq = itertools.count()


def scratch(stack: ExitStack, tag: str) -> str:
    d = tempfile.mkdtemp(prefix=f"nmbench-{tag}-")
    stack.callback(shutil.rmtree, d, True)
    return d


class Pod:
    """One pod sandbox: its own fresh netns (made outside timed code), container id, CNI_ARGS as
    CRI passes them (no annotations unless the runtime hands them over in runtimeConfig)."""

    def __init__(self):
        n = next(_seq)
        self.netns = guard.name(f"n{n}")
        self.path = f"/var/run/netns/{self.netns}"
        self.cid = uuid.uuid4().hex
        self.args = (f"IgnoreUnknown=1;K8S_POD_NAMESPACE={POD_NS};K8S_POD_NAME=pod-{n};"
                     f"K8S_POD_INFRA_CONTAINER_ID={self.cid};K8S_POD_UID={uuid.uuid4()}")
        self.undo = []   # best-effort DELs to run if the timed part did not finish

    def kw(self, ifname: str = "eth0") -> dict:
        return {"container_id": self.cid, "netns": self.path, "ifname": ifname, "args": self.args}

    def add(self, plugin: str, conf: dict, ifname: str = "eth0", ips: int = 0, env: dict | None = None):
        """ADD that must succeed; its DEL is owed (run by release()) until delete() succeeds."""
        from bench.cnicall import must
        kw = dict(self.kw(ifname), env=env)
        self.undo.append((plugin, conf, kw))   # before the call: a half-done ADD is DEL'd too
        return must(plugin, "ADD", conf, ips=ips, **kw)

    def delete(self, plugin: str, conf: dict, ifname: str = "eth0", env: dict | None = None):
        from bench.cnicall import must
        kw = dict(self.kw(ifname), env=env)
        r = must(plugin, "DEL", conf, **kw)
        self.undo.remove((plugin, conf, kw))
        return r


def pods(n: int) -> list:
    ps = [Pod() for _ in range(n)]
    guard.netns_add([p.netns for p in ps])
    return ps


def release(ps: list) -> None:
    """Undo what a pod still holds (its pending DELs, newest first), then delete its netns."""
    from bench.cnicall import call
    for p in ps:
        for plugin, conf, kw in reversed(p.undo):
            call(plugin, "DEL", conf, **kw)
        p.undo.clear()
    guard.netns_del([p.netns for p in ps])


def bridge_conf(work: str, bridge: str, subnet: str = "10.244.9.0/24") -> dict:
    return {"cniVersion": "1.0.0", "name": "cluster-net", "type": "bridge", "bridge": bridge,
            "isGateway": True, "ipam": {"type": "host-local", "subnet": subnet,
                                        "dataDir": os.path.join(work, "hostlocal")}}


def bridge(stack: ExitStack, suffix: str = "br") -> str:
    name = guard.name(suffix)
    stack.callback(guard.sh, "ip", "link", "del", name, check=False)   # the plugin makes it on first ADD
    return name


def sim_nic(stack: ExitStack, work: str, suffix: str, vfs: int) -> dict:
    """A simulated PF with `vfs` VFs via `netmeta sim create` (as tests/simnic.py does, but in
    its own session so a Ctrl-C cannot kill a destroy half-way); returns the sriov fragment
    (master, sysfsRoot, backend, stateDir) and destroys it when the section ends."""
    pf, root = guard.name(suffix), os.path.join(work, "sys")
    stack.callback(guard.sh, f"{VENV_BIN}/netmeta", "sim", "destroy", "--pf", pf, "--root", root, check=False)
    out = guard.sh(f"{VENV_BIN}/netmeta", "sim", "create", "--pf", pf, "--vfs", str(vfs), "--root", root).stdout
    return dict(json.loads(out), stateDir=os.path.join(work, "sriov-state"))


def fixipam(work: str, net: int) -> dict:
    """fixipam on 10.<net>.0.0/24 (gateway .1), its reservations under the section's scratch."""
    return {"type": "fixipam", "subnet": f"10.{net}.0.0/24", "gateway": f"10.{net}.0.1",
            "dataDir": os.path.join(work, "fixipam")}


def sriov_conf(frag: dict, work: str, net: int, **extra) -> dict:
    """An sriov netconf on the sim NIC `frag`, fixed IPs from fixipam (see fixipam()), the `ips`
    capability declared; `extra` adds or overrides keys (name, vf, runtimeConfig, ...)."""
    return dict(frag, cniVersion="1.0.0", type="sriov", capabilities={"ips": True}, ipam=fixipam(work, net),
                **extra)


def vf_netdev(frag: dict, n: int) -> str:
    """VF n's netdev name in the host, from the sim's topology (not guessed), after the sim's
    refresh (its contract: the fake sysfs is synced with the netdevs only by refresh)."""
    from delegates.sriov.sim.nic import refresh
    from delegates.sriov.topology import Topology
    refresh(frag["sysfsRoot"], frag["master"])
    for info in Topology(frag["sysfsRoot"]).vfs(frag["master"]):
        if info.index == n:
            if not info.netdev:
                raise RuntimeError(f"VF {n} of {frag['master']} has no netdev in the host netns")
            return info.netdev
    raise RuntimeError(f"no VF {n} on {frag['master']}")


def restore_sim_aliases(frag: dict, netdevs: dict) -> None:
    """Debian host-device (1.1.1) overwrites IFLA_IFALIAS with the device's own name on ADD and
    leaves it so after DEL; the sim NIC identifies its ports by that alias. Put it back
    (untimed) so the sim stays consistent for the sriov cases. netdevs: {vf index: name}."""
    guard.ip_batch([f"link set dev {name} alias netmeta-sim:{frag['master']}:{n}" for n, name in netdevs.items()])


def sriov_records(frag: dict) -> list:
    d = os.path.join(frag["stateDir"], frag["master"])
    return sorted(f for f in os.listdir(d) if f.endswith(".json")) if os.path.isdir(d) else []
