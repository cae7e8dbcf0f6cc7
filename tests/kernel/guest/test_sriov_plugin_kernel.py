"""The whole sriov plugin against a real kernel's VF table (netdevsim PF in the QEMU guest):
fake sysfs topology + dummy VF netdevs + the `netlink` backend. Every PF-side setting is read
back from IFLA_VFINFO_LIST with iproute2 (`ip -j -d link show`), independently of our code."""
import json
import os
import subprocess

import pytest

from cni import skel
from delegates.sriov.plugin import SRIOVPlugin
from delegates.sriov.sim.nic import write_tree
from tests.cnirun import cni

NS = "kpod1"


@pytest.fixture
def node(guest_nsim, tmp_path):
    names = [f"nsv{n}" for n in range(guest_nsim.numvfs)]
    for n in names:
        subprocess.run(["ip", "link", "add", n, "type", "dummy"], check=True)
    root = str(tmp_path / "sys")
    write_tree(root, guest_nsim.pf, guest_nsim.numvfs, vf_netdevs=names)
    subprocess.run(["ip", "netns", "add", NS], check=True)
    yield {"master": guest_nsim.pf, "sysfsRoot": root, "backend": "netlink", "stateDir": str(tmp_path / "state")}
    subprocess.run(["ip", "netns", "del", NS])
    for n in names:
        subprocess.run(["ip", "link", "del", n], capture_output=True)


def vfinfo(pf: str) -> list:
    out = subprocess.run(["ip", "-j", "-d", "link", "show", pf], check=True, capture_output=True, text=True).stdout
    return json.loads(out)[0]["vfinfo_list"]


def test_full_add_del_on_netdevsim(node, guest_nsim):
    pf = guest_nsim.pf
    before = vfinfo(pf)
    conf = dict(node, cniVersion="1.0.0", name="ksriov", type="sriov", vlan=100, vlanQoS=3, vlanProto="802.1ad",
                mac="02:aa:bb:cc:dd:01", min_tx_rate=100, max_tx_rate=1000, spoofchk="off", trust="on",
                link_state="enable", mtu=1400)
    r = cni("sriov", "ADD", conf, netns=f"/var/run/netns/{NS}", ifname="net1", container_id="k1", timeout=300)
    assert r.ok, r.stdout + r.stderr.encode()
    vf = vfinfo(pf)[0]
    print("kernel VF 0 after ADD:", json.dumps(vf))
    assert vf["address"] == "02:aa:bb:cc:dd:01"
    vlan = vf["vlan_list"][0]
    assert (vlan["vlan"], vlan["qos"], vlan["protocol"]) == (100, 3, "802.1ad")
    assert (vf["rate"]["min_tx"], vf["rate"]["max_tx"]) == (100, 1000)
    assert vf["spoofchk"] is False and vf["trust"] is True and vf["link_state"] == "enable"
    inside = json.loads(subprocess.run(["ip", "-n", NS, "-j", "link", "show", "net1"], check=True,
                                       capture_output=True, text=True).stdout)[0]
    assert inside["address"] == "02:aa:bb:cc:dd:01" and inside["mtu"] == 1400
    d = cni("sriov", "DEL", conf, netns=f"/var/run/netns/{NS}", ifname="net1", container_id="k1", timeout=300)
    assert d.ok, d.stdout + d.stderr.encode()
    after = vfinfo(pf)
    print("kernel VF 0 after DEL:", json.dumps(after[0]))
    assert after == before
    host = json.loads(subprocess.run(["ip", "-j", "link", "show", "nsv0"], check=True, capture_output=True,
                                     text=True).stdout)[0]
    assert host["ifname"] == "nsv0" and host["mtu"] == 1500


def test_kernel_refusal_is_a_clear_cni_error_and_changes_nothing(node, guest_nsim):
    """The fake topology claims 8 VFs while the kernel has only 4 enabled: VF 6 exists for
    sysfs but the kernel refuses it. The error names the field; nothing changed."""
    numvfs = guest_nsim.sysfs / "sriov_numvfs"
    numvfs.write_text("0")
    numvfs.write_text("4")
    try:
        before = vfinfo(guest_nsim.pf)
        conf = dict(node, cniVersion="1.0.0", name="ksriov", type="sriov", vf=6, vlan=5)
        env = {"CNI_COMMAND": "ADD", "CNI_CONTAINERID": "k2", "CNI_NETNS": f"/var/run/netns/{NS}",
               "CNI_IFNAME": "net1", "CNI_PATH": "/nonexistent"}
        code, out = skel.handle(SRIOVPlugin(), env, json.dumps(conf).encode())
        err = json.loads(out)
        print("kernel refusal surfaced as:", err)
        assert code != 0 and err["code"] in (121, 123) and "vf" in (err["msg"] + err.get("details", ""))
        assert vfinfo(guest_nsim.pf) == before
        assert not os.path.exists(os.path.join(node["stateDir"], guest_nsim.pf, "vf6.json"))
        assert subprocess.run(["ip", "link", "show", "nsv6"], capture_output=True).returncode == 0
    finally:
        numvfs.write_text("0")
        numvfs.write_text(str(guest_nsim.numvfs))


def test_seed_cni_args_on_netdevsim(node, guest_nsim, tmp_path):
    """The seed's extra arguments (CNI_ARGS VF=, VLAN=, MAC=) with its config form (no
    cniVersion: CNI 0.1.0) reach the real kernel's VF table, and DEL resets it."""
    pf = guest_nsim.pf
    before = vfinfo(pf)
    conf = dict(node, name="mynet", type="sriov",
                ipam={"type": "fixipam", "subnet": "10.55.206.0/26", "routes": [{"dst": "0.0.0.0/0"}],
                      "gateway": "10.55.206.1", "dataDir": str(tmp_path / "ipam")})
    args = "IgnoreUnknown=1;IP=10.55.206.46;VF=1;VLAN=42;MAC=66:d8:02:77:aa:aa"
    r = cni("sriov", "ADD", conf, netns=f"/var/run/netns/{NS}", ifname="eth0", args=args, container_id="seed1",
            timeout=300)
    assert r.ok, r.stdout + r.stderr.encode()
    assert r.out["cniVersion"] == "0.1.0" and r.out["ip4"]["ip"] == "10.55.206.46/26"
    vf = vfinfo(pf)
    print("kernel VF 1 after the seed's ADD:", json.dumps(vf[1]))
    vlan = vf[1]["vlan_list"][0]["vlan"] if "vlan_list" in vf[1] else vf[1]["vlan"]
    assert vf[1]["address"] == "66:d8:02:77:aa:aa" and vlan == 42
    assert vf[0] == before[0]            # VF 1, the one asked for, not the first free one
    d = cni("sriov", "DEL", conf, netns=f"/var/run/netns/{NS}", ifname="eth0", args=args, container_id="seed1",
            timeout=300)
    assert d.ok, d.stdout + d.stderr.encode()
    assert vfinfo(pf) == before
