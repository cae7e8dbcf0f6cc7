"""A VF bound to a userspace driver (vfio-pci, as for DPDK) against a real kernel's VF table
(netdevsim PF in the QEMU guest; netdevsim VFs have no netdev, like a vfio-bound VF): sriov
given only its deviceID (an operator-made NAD: no master) applies every PF-side setting and
moves nothing; DEL restores the PF table. Read back with iproute2 (`ip -j -d link show`).
Pinned: sriov-cni v2.8.0 pkg/config LoadConf (DPDKMode), cmd/sriov cmdAdd/cmdDel."""
import json
import os
import subprocess

import pytest

from delegates.sriov.sim.sysfs import write_tree
from tests.cnirun import cni

NS = "kpodu"


@pytest.fixture
def node(guest_nsim, tmp_path):
    root = str(tmp_path / "sys")
    # no VF netdevs at all (netdevsim has none); VF 2's driver is vfio-pci
    _, vf_pcis = write_tree(root, guest_nsim.pf, guest_nsim.numvfs, vf_netdevs=[None] * guest_nsim.numvfs)
    drv = os.path.join(root, "bus", "pci", "drivers", "vfio-pci")
    os.makedirs(drv)
    link = os.path.join(root, "bus", "pci", "devices", vf_pcis[2], "driver")
    os.unlink(link)
    os.symlink("../../drivers/vfio-pci", link)
    subprocess.run(["ip", "netns", "add", NS], check=True)
    yield {"sysfsRoot": root, "backend": "netlink", "stateDir": str(tmp_path / "state")}, vf_pcis
    subprocess.run(["ip", "netns", "del", NS])


def vfinfo(pf: str) -> list:
    out = subprocess.run(["ip", "-j", "-d", "link", "show", pf], check=True, capture_output=True, text=True).stdout
    return json.loads(out)[0]["vfinfo_list"]


def test_vfio_vf_pf_side_apply_and_restore_on_netdevsim(node, guest_nsim):
    seams, vf_pcis = node
    pf = guest_nsim.pf
    before = vfinfo(pf)
    conf = dict(seams, cniVersion="1.0.0", name="kdpdk", type="sriov", deviceID=vf_pcis[2], pciBusID=vf_pcis[2],
                vlan=300, vlanQoS=5, mac="02:aa:bb:cc:dd:02", min_tx_rate=10, max_tx_rate=500, spoofchk="off",
                trust="on", link_state="disable", logLevel="info", capabilities={"ips": True})
    r = cni("sriov", "ADD", conf, netns=f"/var/run/netns/{NS}", ifname="net1", container_id="ku1", timeout=300)
    assert r.ok, r.stdout + r.stderr.encode()
    assert r.out["interfaces"][0]["mac"] == "02:aa:bb:cc:dd:02"
    vf = vfinfo(pf)[2]
    print("kernel VF 2 (vfio-pci) after ADD:", json.dumps(vf))
    assert vf["address"] == "02:aa:bb:cc:dd:02"
    assert (vf["vlan_list"][0]["vlan"], vf["vlan_list"][0]["qos"]) == (300, 5)
    assert (vf["rate"]["min_tx"], vf["rate"]["max_tx"]) == (10, 500)
    assert vf["spoofchk"] is False and vf["trust"] is True and vf["link_state"] == "disable"
    assert [v for i, v in enumerate(vfinfo(pf)) if i != 2] == [v for i, v in enumerate(before) if i != 2]
    inside = json.loads(subprocess.run(["ip", "-n", NS, "-j", "link", "show"], check=True,
                                       capture_output=True, text=True).stdout)
    assert [l["ifname"] for l in inside] == ["lo"]   # nothing moved
    d = cni("sriov", "DEL", conf, netns=f"/var/run/netns/{NS}", ifname="net1", container_id="ku1", timeout=300)
    assert d.ok, d.stdout + d.stderr.encode()
    print("kernel VF 2 after DEL:", json.dumps(vfinfo(pf)[2]))
    assert vfinfo(pf) == before
    assert not os.path.exists(os.path.join(seams["stateDir"], pf, "vf2.json"))
