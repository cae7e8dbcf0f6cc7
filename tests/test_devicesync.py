"""Coexistence with the SR-IOV device plugin: the netmeta daemon learns from the kubelet's
PodResources API (the stand-in: GetAllocatableResources = the device plugin's pool, List = the
devices allocated to pods) and its config's device-plugin pool which VFs are not netmeta's;
sriov's own allocator never takes one and node `sriov/vfCount` does not count them.
The daemon is a real `netmeta daemon` process; sriov runs through the CNI protocol."""
import json
import os
import subprocess
import time

import pytest

from delegates.sriov.topology import Topology
from meta.daemon import config as daemonconfig
from tests.cnirun import VENV_BIN, cni
from tests.daemonproc import DaemonProc
from tests.podresources_standin import PodResourcesServer
from tests.simnic import records

RES = "intel.com/sriov_netdevice"


def poll(fn, timeout=60.0):
    deadline = time.monotonic() + timeout
    while True:
        v = fn()
        if v or time.monotonic() > deadline:
            return v
        time.sleep(0.1)


def count(path):
    try:
        with open(path) as f:
            return json.load(f)["annotations"]["sriov/vfCount"]
    except (OSError, ValueError, KeyError):
        return None


def test_vfs_of_the_device_plugin_are_never_auto_allocated(nic, netns, uid, tmp_path):
    pci = [Topology(nic["sysfsRoot"]).vf_pci(nic["master"], n) for n in range(8)]
    kubelet = PodResourcesServer(str(tmp_path / "kubelet.sock")).start()
    kubelet.allocatable = {RES: [pci[0], pci[1]]}                       # the device plugin's pool
    kubelet.set_pod("telco", "other-pod", {"app": {RES: [pci[1]], "other.com/gpu": ["GPU-7"]}})
    kubelet.set_pod("telco", "legacy", {"app": {"old.com/vf": [pci[2]]}})   # allocated, not in the pool
    pf = {"master": nic["master"], "sysfsRoot": nic["sysfsRoot"], "backend": "sim", "stateDir": nic["stateDir"],
          "devicePluginVFs": [3]}                                       # a pool named in the config
    status = str(tmp_path / "node-status.json")
    d = DaemonProc(tmp_path / "d", pfs=[pf], statusFile=status, podResourcesSocket=kubelet.path,
                   reconcilePeriod=0.5, coalesceWindow=0.05, minPublishInterval=0)
    added = []
    try:
        d.start()
        assert poll(lambda: count(status) == "4"), (count(status), d.log()[-2000:])
        with open(os.path.join(nic["stateDir"], "kubelet-devices.json")) as f:
            assert json.load(f)["devices"] == sorted(pci[:4])
        assert "GetAllocatableResources" in kubelet.calls and "List" in kubelet.calls
        c = {"cniVersion": "1.0.0", "name": "own", "type": "sriov", **nic}
        for i in range(5):
            ns = netns()
            r = cni("sriov", "ADD", c, netns=f"/var/run/netns/{ns}", ifname="net1", container_id=f"a{uid}{i}")
            added.append((ns, f"a{uid}{i}", r))
        assert [r.ok for _, _, r in added] == [True] * 4 + [False]
        assert added[4][2].out["code"] == 120 and "device plugin" in added[4][2].out["details"]
        assert records(nic) == [f"vf{n}.json" for n in range(4, 8)]
        # `netmeta status` tells the operator whose each VF is
        st = json.loads(subprocess.run([f"{VENV_BIN}/netmeta", "status", "--config", d.cfg_path, "-o", "json"],
                                       check=True, capture_output=True, text=True).stdout)
        vfs = st["pfs"][0]["vfs"]
        assert [v["devicePlugin"] for v in vfs] == [True] * 4 + [False] * 4
        assert all(v["container"] for v in vfs[4:]) and not any(v["container"] for v in vfs[:4])
        table = subprocess.run([f"{VENV_BIN}/netmeta", "status", "--config", d.cfg_path], check=True,
                               capture_output=True, text=True).stdout
        assert table.count("(device plugin)") == 4
        # pods end: a VF of the plugin's pool stays the plugin's; one outside any pool is free again
        kubelet.set_pod("telco", "other-pod", {})
        kubelet.set_pod("telco", "legacy", {})

        def view():
            with open(os.path.join(nic["stateDir"], "kubelet-devices.json")) as f:
                return json.load(f)["devices"]
        assert poll(lambda: view() == sorted([pci[0], pci[1], pci[3]])), view()
        assert poll(lambda: count(status) == "1"), count(status)   # VF 2 is netmeta's again
    finally:
        for ns, cid, r in added:
            if r.ok:
                cni("sriov", "DEL", {"cniVersion": "1.0.0", "name": "own", "type": "sriov", **nic},
                    netns=f"/var/run/netns/{ns}", ifname="net1", container_id=cid)
        d.stop()
        kubelet.stop()
    assert records(nic) == []


def test_daemon_config_device_plugin_pool_is_validated(tmp_path):
    p = tmp_path / "d.json"
    p.write_text(json.dumps({"pfs": [{"master": "p0", "devicePluginVFs": "0-3"}]}))
    with pytest.raises(Exception) as ei:
        daemonconfig.load(str(p))
    assert "devicePluginVFs" in str(ei.value)
    p.write_text(json.dumps({"pfs": [{"master": "p0", "devicePluginVFs": [0, 3]}], "podResourcesSocket": "/k.sock"}))
    cfg = daemonconfig.load(str(p))
    assert cfg.pfs[0]["devicePluginVFs"] == [0, 3] and cfg.podresources_socket == "/k.sock"
