"""sriov in the device-plugin world, through the CNI protocol on the simulated NIC:
a VF bound to a userspace driver (DPDK: `netmeta sim bind --driver vfio-pci`) gets the PF-side
settings, a record, IPAM, no netdev move, and DEL restores the PF table; the operator's NAD
(no master, deviceID from the meta plugin) with every key its template emits; device-info.

Pinned: sriov-cni v2.8.0 pkg/config LoadConf (deviceID -> PF via physfn; no netdev and a driver
in pkg/utils UserspaceDrivers -> DPDKMode), cmd/sriov cmdAdd (DPDKMode: ApplyVFConfig, IPAM, no
SetupVF; result MAC from GetMacAddressForResult = the admin MAC); sriov-network-operator
bindata/manifests/cni-config/sriov/sriov-cni-config.yaml (the keys, `"vlan":0`, `"ipam":{}`)."""
import json
import os

from delegates.sriov.topology import Topology
from tests.cnirun import cni, ip_json
from tests.simnic import bind as sim_bind
from tests.simnic import records, snapshot

SETTINGS = dict(vlan=200, vlanQoS=2, vlanProto="802.1ad", mac="02:aa:bb:cc:dd:01", min_tx_rate=50,
                max_tx_rate=800, spoofchk="off", trust="on", link_state="disable")


def operator_conf(nic, device_id, **kw):
    """What the operator's template renders (no master), plus what the meta plugin injects
    (deviceID, pciBusID) and the sim's seams (sysfsRoot, backend, stateDir)."""
    c = {"cniVersion": "1.0.0", "name": "sriov-dpdk", "type": "sriov", "vlan": 0, "spoofchk": "on",
         "trust": "off", "vlanQoS": 0, "min_tx_rate": 0, "max_tx_rate": 0, "link_state": "auto",
         "capabilities": {"mac": True, "ips": True, "CNIDeviceInfoFile": True},
         "logLevel": "info", "logFile": "/dev/null", "ipam": {},
         "deviceID": device_id, "pciBusID": device_id}
    c.update({k: v for k, v in nic.items() if k != "master"})
    c.update(kw)
    return c


def test_vfio_bound_vf_gets_pf_side_settings_and_del_restores_them(nic, netns, uid, tmp_path):
    bound = sim_bind(nic, 3, "vfio-pci")
    topo = Topology(nic["sysfsRoot"])
    assert bound["netdev"] is None and topo.vf_netdev(nic["master"], 3) is None
    assert topo.driver(bound["pci"]) == "vfio-pci"
    before = snapshot(nic)
    ns = netns()
    devinfo = tmp_path / "devinfo" / "cni" / f"sriov-dpdk-c{uid}_net1"
    c = operator_conf(nic, bound["pci"], **SETTINGS,
                      ipam={"type": "fixipam", "subnet": "10.57.0.0/24", "dataDir": str(tmp_path / "fix")},
                      runtimeConfig={"ips": ["10.57.0.9/24"], "CNIDeviceInfoFile": str(devinfo)})
    r = cni("sriov", "ADD", c, netns=f"/var/run/netns/{ns}", ifname="net1", container_id=f"c{uid}")
    assert r.ok, r.stdout + r.stderr.encode()
    itf = r.out["interfaces"][0]
    # (CNI 1.1 results add "pciID"; this 1.0.0 one cannot carry it: device-info names the device)
    assert itf == {"name": "net1", "mac": "02:aa:bb:cc:dd:01", "sandbox": f"/var/run/netns/{ns}"}
    assert r.out["ips"] == [{"interface": 0, "address": "10.57.0.9/24"}]
    # the PF table has every setting; the pod got no netdev; the host's netdevs did not change
    assert snapshot(nic)["table"][3] == {"mac": "02:aa:bb:cc:dd:01", "vlan": 200, "qos": 2, "proto": "802.1ad",
                                         "min_tx_rate": 50, "max_tx_rate": 800, "spoofchk": False,
                                         "trust": True, "link_state": "disable"}
    assert [l["ifname"] for l in ip_json("link", "show", netns=ns)] == ["lo"]
    assert snapshot(nic)["vfs"] == before["vfs"]
    assert records(nic) == ["vf3.json"]
    with open(os.path.join(nic["stateDir"], nic["master"], "vf3.json")) as f:
        assert json.load(f)["userspace"] == "vfio-pci"
    info = json.loads(devinfo.read_text())
    assert info == {"type": "pci", "version": "1.1.0",
                    "pci": {"pci-address": bound["pci"], "pf-pci-address": topo.pf_pci(nic["master"]),
                            "driver": "vfio-pci"}}
    chk = cni("sriov", "CHECK", dict(c, prevResult=r.out), netns=f"/var/run/netns/{ns}", ifname="net1",
              container_id=f"c{uid}")
    assert chk.ok, chk.stdout
    # a second pod asking for the same device is refused: netmeta holds it
    busy = cni("sriov", "ADD", c, netns=f"/var/run/netns/{netns()}", ifname="net1", container_id=f"d{uid}")
    assert busy.rc != 0 and busy.out["code"] == 122
    d = cni("sriov", "DEL", c, netns=f"/var/run/netns/{ns}", ifname="net1", container_id=f"c{uid}")
    assert d.ok, d.stdout + d.stderr.encode()
    assert snapshot(nic) == before and records(nic) == []
    assert os.listdir(tmp_path / "fix" / "sriov-dpdk") == [".lock"]
    # back to the kernel driver: the netdev is back in the host under its name
    assert sim_bind(nic, 3, "net")["netdev"] == f"{nic['master']}v3"
    assert Topology(nic["sysfsRoot"]).vf_netdev(nic["master"], 3) == f"{nic['master']}v3"


def test_auto_allocation_skips_a_vfio_bound_vf(nic, netns, uid):
    for vf in range(0, 8):
        if vf != 5:
            sim_bind(nic, vf, "vfio-pci")
    ns = netns()
    c = {"cniVersion": "1.0.0", "name": "auto", "type": "sriov", **nic}
    r = cni("sriov", "ADD", c, netns=f"/var/run/netns/{ns}", ifname="net1", container_id=f"a{uid}")
    assert r.ok, r.stdout
    assert records(nic) == ["vf5.json"]
    r2 = cni("sriov", "ADD", c, netns=f"/var/run/netns/{netns()}", ifname="net1", container_id=f"b{uid}")
    assert r2.rc != 0 and r2.out["code"] == 120   # no free VF: the bound ones are not netmeta's
    assert cni("sriov", "DEL", c, netns=f"/var/run/netns/{ns}", ifname="net1", container_id=f"a{uid}").ok


def test_operator_nad_without_master_attaches_the_device_id(nic, netns, uid):
    pci = Topology(nic["sysfsRoot"]).vf_pci(nic["master"], 6)
    before = snapshot(nic)
    ns = netns()
    c = operator_conf(nic, pci)
    r = cni("sriov", "ADD", c, netns=f"/var/run/netns/{ns}", ifname="net1", container_id=f"o{uid}")
    assert r.ok, r.stdout + r.stderr.encode()
    assert not r.out.get("ips")
    assert "net1" in [l["ifname"] for l in ip_json("link", "show", netns=ns)]
    assert records(nic) == ["vf6.json"]
    assert snapshot(nic)["table"][6]["spoofchk"] is True and snapshot(nic)["table"][6]["trust"] is False
    assert cni("sriov", "DEL", c, netns=f"/var/run/netns/{ns}", ifname="net1", container_id=f"o{uid}").ok
    assert snapshot(nic) == before
