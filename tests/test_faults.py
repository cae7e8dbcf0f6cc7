"""Crash and failure at every step of ADD and DEL, then the runtime's normal retry (DEL, or
GC): nothing may be left — no VF allocated or away from the host netns, no PF setting
changed, no IP reservation or lease, no cache, record or temp file, no interface in the pod.

Fault points (cni/fault.py, NETMETA_FAULT=<point>[#N][:fail]) are hit in a real pod ADD:
netmeta (in-process) -> Debian bridge + host-local (eth0) -> sriov on the simulated NIC with
a VLAN and a rate, and fixipam (net1), network-status to a status file."""
import json
import os

import pytest

from tests.cnirun import DEBIAN_CNI, cni, ip_json
from tests.simnic import snapshot

pytestmark = pytest.mark.skipif(not os.path.exists(f"{DEBIAN_CNI}/bridge"), reason="needs Debian CNI plugins")

ADD_POINTS = ["meta.add.cached", "meta.add.before-0", "meta.add.after-0", "meta.add.before-1",
              "sriov.add.recorded", "sriov.add.pf-set", "sriov.add.moved", "sriov.add.configured",
              "fixipam.add.reserved", "sriov.add.ipam", "sriov.add.addressed", "meta.add.after-1",
              "meta.add.attached", "meta.add.ready"] + [f"files.atomic-write#{n}" for n in range(1, 7)]
DEL_POINTS = ["meta.del.before-1", "sriov.del.ipam-released", "fixipam.del.locked", "sriov.del.moved-back",
              "sriov.del.netdev-restored", "sriov.del.table-restored", "meta.del.before-0", "meta.del.done"]
ANNOTS = {"k8s.v1.cni.cncf.io/networks": json.dumps([{"name": "vf-net", "ips": ["10.59.0.7/24"]}]),
          "networks-sriov-vlan": "42"}


@pytest.fixture
def pod(tmp_path, nic, netns, uid):
    nads = tmp_path / "nads" / "default"
    nads.mkdir(parents=True)
    sr = dict(nic, cniVersion="1.0.0", type="sriov", capabilities={"ips": True}, max_tx_rate=300,
              podOverrides={"vlan": "1-100"},
              ipam={"type": "fixipam", "subnet": "10.59.0.0/24", "dataDir": str(tmp_path / "fixipam")})
    (nads / "vf-net.json").write_text(json.dumps({"metadata": {"name": "vf-net"}, "spec": {"config": json.dumps(sr)}}))
    bridge = f"nmf{uid}"
    conf = {"cniVersion": "1.1.0", "name": "netmeta", "type": "netmeta", "mode": "thin",
            "cniDir": str(tmp_path / "cache"), "nadDir": str(tmp_path / "nads"), "statusDir": str(tmp_path / "status"),
            "runtimeConfig": {"io.kubernetes.cri.pod-annotations": ANNOTS},
            "delegates": [{"cniVersion": "1.0.0", "name": "cluster", "type": "bridge", "bridge": bridge,
                           "isGateway": True, "ipam": {"type": "host-local", "subnet": "10.244.7.0/24",
                                                       "dataDir": str(tmp_path / "hostlocal")}}]}
    ns = netns()
    p = {"conf": conf, "ns": ns, "nic": nic, "tmp": tmp_path, "before": snapshot(nic), "bridge": bridge}
    yield p
    import subprocess
    subprocess.run(["ip", "link", "del", bridge], capture_output=True)


def call(p, command, fault=None, conf=None):
    env = {"NETMETA_FAULT": fault} if fault else {}
    return cni("netmeta", command, conf or p["conf"], container_id="fault1", netns=f"/var/run/netns/{p['ns']}",
               args="IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=fp", extra_env=env)


def leftovers(p) -> dict:
    """Everything that must be gone; empty dict = clean."""
    t = p["tmp"]

    def files(d):
        return sorted(f for f in os.listdir(d) if f not in (".lock",)) if os.path.isdir(d) else []
    left = {
        "cache": files(t / "cache"),
        "vf records": [f for f in files(os.path.join(p["nic"]["stateDir"], p["nic"]["master"]))],
        "fixipam": files(t / "fixipam" / "vf-net"),
        "host-local": [f for f in files(t / "hostlocal" / "cluster") if f[0].isdigit()],
        "pod links": [l["ifname"] for l in ip_json("link", "show", netns=p["ns"]) if l["ifname"] != "lo"],
        "bridge ports": [l["ifname"] for l in ip_json("link", "show") if l.get("master") == p["bridge"]],
    }
    left = {k: v for k, v in left.items() if v}
    if snapshot(p["nic"]) != p["before"]:
        left["VF state"] = "differs from before the ADD"
    return left


def test_the_points_are_all_reached(pod):
    """Guards the list: every ADD point is reached by this pod's ADD (a renamed point would
    otherwise make its cases pass vacuously)."""
    for point in ADD_POINTS:
        r = call(pod, "ADD", fault=f"{point}:fail")
        assert r.rc != 0 and "injected failure at " + point.split("#")[0] in r.out["msg"], (point, r.out)
        assert call(pod, "DEL").ok and leftovers(pod) == {}, point


# a failed ADD is followed by DEL (the runtime's contract); a crash by DEL or, if the runtime
# lost track of the sandbox, by GC
CASES = [(p, m, "DEL") for p in ADD_POINTS for m in ("kill", "fail")] + [(p, "kill", "GC") for p in ADD_POINTS]


@pytest.mark.parametrize("point,mode,retry", CASES)
def test_fault_during_add_then_runtime_retry(pod, point, mode, retry):
    r = call(pod, "ADD", fault=point + (":fail" if mode == "fail" else ""))
    assert r.rc == (-9 if mode == "kill" else 1), (r.rc, r.out)
    if retry == "DEL":
        d = call(pod, "DEL")
    else:
        d = cni("netmeta", "GC", dict(pod["conf"], **{"cni.dev/valid-attachments": []}))
    assert d.ok, d.stdout + d.stderr.encode()
    assert leftovers(pod) == {}


@pytest.mark.parametrize("mode", ["kill", "fail"])
@pytest.mark.parametrize("point", DEL_POINTS)
def test_fault_during_del_then_del_again(pod, point, mode):
    assert call(pod, "ADD").ok
    r = call(pod, "DEL", fault=point + (":fail" if mode == "fail" else ""))
    assert r.rc != 0
    d = call(pod, "DEL")
    assert d.ok, d.stdout + d.stderr.encode()
    assert leftovers(pod) == {}
