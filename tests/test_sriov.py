"""The sriov plugin through the CNI protocol on a simulated SR-IOV NIC, in real namespaces:
allocation under contention, PF-side settings, restore on DEL, crash recovery, pfOnly and
rejected input. The sim is built by the product's own `netmeta sim create`."""
import os
import subprocess
from concurrent.futures import ThreadPoolExecutor

import pytest

from delegates.sriov.topology import Topology
from tests import cniversions
from tests.cnirun import cni, ip_json
from tests.simnic import records, snapshot

NVF = 8


def conf(frag, **kw):
    c = {"cniVersion": "1.0.0", "name": "sriov-net", "type": "sriov"}
    c.update(frag)
    c.update(kw)
    return c


@pytest.mark.parametrize("ver", cniversions.ALL)
def test_add_check_del_restores_everything(nic, netns, uid, data_dir, ver):
    """At every CNI version (the reference plugins' `AllSpecVersions` loop): the result in that
    version's shape, CHECK only from 0.4.0 (refused with code 1 before, changing nothing)."""
    before = snapshot(nic)
    ns = netns()
    c = conf(nic, cniVersion=ver, vlan=100, vlanQoS=3, max_tx_rate=1000, min_tx_rate=100, spoofchk="off", trust="on",
             link_state="enable", mac="02:11:22:33:44:55", mtu=1400,
             ipam={"type": "fixipam", "subnet": "10.56.0.0/24", "gateway": "10.56.0.1",
                   "routes": [{"dst": "10.60.0.0/16"}], "dataDir": data_dir},
             runtimeConfig={"ips": ["10.56.0.7/24"]})
    r = cni("sriov", "ADD", c, netns=f"/var/run/netns/{ns}", ifname="net1", container_id=f"c{uid}")
    assert r.ok, r.stdout + r.stderr.encode()
    cniversions.assert_shape(r.out, ver)
    if ver in cniversions.LEGACY:   # 020: no interfaces, the routes under the family
        assert r.out["ip4"] == {"ip": "10.56.0.7/24", "gateway": "10.56.0.1", "routes": [{"dst": "10.60.0.0/16"}]}
    else:
        assert r.out["interfaces"][0]["name"] == "net1" and r.out["interfaces"][0]["mac"] == "02:11:22:33:44:55"
        ip = {"interface": 0, "address": "10.56.0.7/24", "gateway": "10.56.0.1"}
        assert r.out["ips"] == [ip if ver >= "1.0.0" else dict(ip, version="4")]
        assert r.out["routes"] == [{"dst": "10.60.0.0/16"}]
    # independent view of the pod netns
    link = ip_json("addr", "show", "dev", "net1", netns=ns)[0]
    assert link["address"] == "02:11:22:33:44:55" and link["mtu"] == 1400 and "UP" in link["flags"]
    assert any(a["local"] == "10.56.0.7" for a in link["addr_info"])
    assert any(rt["dst"] == "10.60.0.0/16" for rt in ip_json("route", "show", netns=ns))
    vf0 = snapshot(nic)["table"][0]
    assert vf0 == {"mac": "02:11:22:33:44:55", "vlan": 100, "qos": 3, "proto": "802.1Q", "min_tx_rate": 100,
                   "max_tx_rate": 1000, "spoofchk": False, "trust": True, "link_state": "enable"}
    assert snapshot(nic)["vfs"][0][1] is None  # VF 0's netdev left the host netns
    assert records(nic) == ["vf0.json"]
    chk = cni("sriov", "CHECK", dict(c, prevResult=r.out), netns=f"/var/run/netns/{ns}", ifname="net1",
              container_id=f"c{uid}")
    if cniversions.allows(ver, "CHECK"):
        assert chk.ok, chk.stdout
    else:
        cniversions.assert_refused_for_version(chk, ver, "CHECK")
        assert snapshot(nic)["table"][0] == vf0 and records(nic) == ["vf0.json"]
    # STATUS, and a GC that lists this attachment as valid (it must stay): 1.1.0 only
    valid = {"cni.dev/valid-attachments": [{"containerID": f"c{uid}", "ifname": "net1"}]}
    for verb, stdin in (("STATUS", c), ("GC", dict(c, **valid))):
        v = cni("sriov", verb, stdin)
        if cniversions.allows(ver, verb):
            assert v.ok and v.out is None, (verb, v.stdout)
        else:
            cniversions.assert_refused_for_version(v, ver, verb)
        assert snapshot(nic)["table"][0] == vf0 and records(nic) == ["vf0.json"]
    for _ in range(2):  # DEL, then a second DEL: both succeed
        d = cni("sriov", "DEL", c, netns=f"/var/run/netns/{ns}", ifname="net1", container_id=f"c{uid}")
        assert d.ok, d.stdout + d.stderr.encode()
    assert snapshot(nic) == before
    assert records(nic) == [] and os.listdir(os.path.join(data_dir, "sriov-net")) == [".lock"]
    assert ip_json("link", "show", netns=ns) and not any(l["ifname"] == "net1" for l in ip_json("link", "show", netns=ns))


def test_32_parallel_adds_on_8_vfs(nic, netns, uid):
    before = snapshot(nic)
    nss = [netns(f"p{i}") for i in range(32)]
    c = conf(nic, vlan=7, max_tx_rate=500)

    def add(i):
        return cni("sriov", "ADD", c, netns=f"/var/run/netns/{nss[i]}", ifname="net1", container_id=f"c{uid}{i}")

    with ThreadPoolExecutor(32) as ex:   # 32 separate plugin processes at once
        runs = list(ex.map(add, range(32)))
    ok = [i for i, r in enumerate(runs) if r.ok]
    codes = sorted(r.out["code"] for r in runs if not r.ok)
    assert len(ok) == NVF and codes == [120] * 24, [r.out for r in runs if not r.ok][:3]
    assert all("no free VF" in r.out["msg"] for r in runs if not r.ok)
    macs = set()
    for i in ok:   # each winner's netns holds exactly one VF, and no VF is in two netns
        links = [l for l in ip_json("link", "show", netns=nss[i]) if l["ifname"] == "net1"]
        assert len(links) == 1
        macs.add(runs[i].out["interfaces"][0]["mac"])
    assert len(macs) == NVF and len(records(nic)) == NVF
    for i in ok:
        assert cni("sriov", "DEL", c, netns=f"/var/run/netns/{nss[i]}", ifname="net1", container_id=f"c{uid}{i}").ok
    assert snapshot(nic) == before and records(nic) == []


def test_explicit_vf_and_device_id(nic, netns, uid):
    ns1, ns2 = netns(), netns()
    topo = Topology(nic["sysfsRoot"])
    pci5 = topo.vf_pci(nic["master"], 5)
    r = cni("sriov", "ADD", conf(nic, deviceID=pci5), netns=f"/var/run/netns/{ns1}", ifname="net1", container_id="a")
    assert r.ok and records(nic) == ["vf5.json"], r.stdout
    busy = cni("sriov", "ADD", conf(nic, vf=5), netns=f"/var/run/netns/{ns2}", ifname="net1", container_id="b")
    assert busy.out["code"] == 122 and "allocated" in busy.out["msg"]
    r2 = cni("sriov", "ADD", conf(nic, vf=2), netns=f"/var/run/netns/{ns2}", ifname="net1", container_id="b")
    assert r2.ok and records(nic) == ["vf2.json", "vf5.json"]
    for ns, cid in ((ns1, "a"), (ns2, "b")):
        assert cni("sriov", "DEL", conf(nic), netns=f"/var/run/netns/{ns}", ifname="net1", container_id=cid).ok
    assert records(nic) == []


def test_del_after_netns_is_gone_recovers_the_vf(nic, uid):
    before = snapshot(nic)
    ns = f"nmt{uid}gone"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    c = conf(nic, vlan=42)
    r = cni("sriov", "ADD", c, netns=f"/var/run/netns/{ns}", ifname="net1", container_id="g")
    assert r.ok, r.stdout
    subprocess.run(["ip", "netns", "del", ns], check=True)   # pod netns destroyed with the VF in it
    d = cni("sriov", "DEL", c, netns="", ifname="net1", container_id="g")   # CRI's second DEL: no netns
    assert d.ok, d.stdout + d.stderr.encode()
    assert snapshot(nic) == before and records(nic) == []


def test_stale_record_is_reclaimed_by_the_next_add(nic, netns, uid):
    before = snapshot(nic)
    c = conf(nic, vf=0)
    ns = f"nmt{uid}stale"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    assert cni("sriov", "ADD", c, netns=f"/var/run/netns/{ns}", ifname="net1", container_id="old").ok
    subprocess.run(["ip", "netns", "del", ns], check=True)   # no DEL ever comes
    ns2 = netns()
    r = cni("sriov", "ADD", c, netns=f"/var/run/netns/{ns2}", ifname="net1", container_id="new")
    assert r.ok, r.stdout
    assert cni("sriov", "DEL", c, netns=f"/var/run/netns/{ns2}", ifname="net1", container_id="new").ok
    assert snapshot(nic) == before


def test_pf_only_moves_the_pf_and_back(nic, netns):
    pf = nic["master"]
    before = ip_json("link", "show", "dev", pf)[0]
    ns = netns()
    c = conf(nic, pfOnly=True)
    r = cni("sriov", "ADD", c, netns=f"/var/run/netns/{ns}", ifname="net1", container_id="pfo")
    assert r.ok, r.stdout + r.stderr.encode()
    assert not any(l["ifname"] == pf for l in ip_json("link", "show"))
    inside = ip_json("link", "show", "dev", "net1", netns=ns)[0]
    assert inside["address"] == before["address"]
    vfbusy = cni("sriov", "ADD", conf(nic), netns=f"/var/run/netns/{netns()}", ifname="net1", container_id="x")
    assert vfbusy.rc != 0
    assert cni("sriov", "DEL", c, netns=f"/var/run/netns/{ns}", ifname="net1", container_id="pfo").ok
    after = ip_json("link", "show", "dev", pf)[0]
    assert (after["ifname"], after["address"], after["mtu"]) == (before["ifname"], before["address"], before["mtu"])


@pytest.mark.parametrize("extra,field,code", [
    ({"vlan": 4096}, "vlan", 7),
    ({"vlan": -1}, "vlan", 7),
    ({"vlanQoS": 3}, "vlanQoS", 7),
    ({"vlan": 5, "vlanQoS": 8}, "vlanQoS", 7),
    ({"vlan": 5, "vlanProto": "802.1x"}, "vlanProto", 7),
    ({"min_tx_rate": 200, "max_tx_rate": 100}, "min_tx_rate", 7),
    ({"bogus": 1}, "bogus", 7),
    ({"mac": "01:00:5e:00:00:01"}, "mac", 7),
    ({"vf": 8}, "vf", 7),
    ({"master": "nosuchpf0"}, "master", 121),
    ({"deviceID": "0000:99:00.0"}, "deviceID", 121),
    ({"pfOnly": True, "vlan": 5}, "vlan", 7),
    ({"spoofchk": "maybe"}, "spoofchk", 7),
])
def test_rejected_input_changes_nothing(nic, netns, extra, field, code):
    before = snapshot(nic)
    ns = netns()
    r = cni("sriov", "ADD", conf(nic, **extra), netns=f"/var/run/netns/{ns}", ifname="net1", container_id="bad")
    assert r.rc != 0 and r.out["code"] == code, r.out
    assert field in r.out["msg"] + r.out.get("details", ""), r.out
    assert r.stderr.strip() and "Traceback" not in r.stderr
    assert snapshot(nic) == before and records(nic) == []
    assert [l["ifname"] for l in ip_json("link", "show", netns=ns)] == ["lo"]


def test_device_id_of_the_pf_is_not_a_vf(nic, netns):
    pf_pci = Topology(nic["sysfsRoot"]).pf_pci(nic["master"])
    r = cni("sriov", "ADD", conf(nic, deviceID=pf_pci), netns=f"/var/run/netns/{netns()}", ifname="net1")
    assert r.rc != 0 and "not a VF" in r.out["msg"] and "deviceID" in r.out["msg"] + r.out.get("details", "")


FAULTS = ["sriov.add.recorded", "sriov.add.pf-set", "sriov.add.moved", "sriov.add.configured",
          "sriov.add.ipam", "sriov.add.addressed"]


@pytest.mark.parametrize("point", FAULTS)
@pytest.mark.parametrize("then", ["DEL", "GC"])
def test_kill_9_at_each_step_then_del_or_gc(nic, netns, data_dir, point, then, tmp_path):
    before = snapshot(nic)
    # a killed ADD leaves its container lock file (<socket dir>/locks/crash.lock): keep it in
    # this test's directory, not the node's /run/netmeta (no daemon answers there: in-process)
    env = {"NETMETA_SOCKET": str(tmp_path / "netmeta.sock")}
    ns = netns()
    c = conf(nic, vlan=9, max_tx_rate=300, mac="02:00:00:00:09:09",
             ipam={"type": "fixipam", "subnet": "10.57.0.0/24", "dataDir": data_dir},
             runtimeConfig={"ips": ["10.57.0.9"]})
    r = cni("sriov", "ADD", c, netns=f"/var/run/netns/{ns}", ifname="net1", container_id="crash",
            extra_env={"NETMETA_FAULT": point, **env})
    assert r.rc == -9 and r.out is None           # killed: nothing on stdout
    if then == "DEL":
        d = cni("sriov", "DEL", c, netns=f"/var/run/netns/{ns}", ifname="net1", container_id="crash",
                extra_env=env)
    else:
        c11 = dict(c, cniVersion="1.1.0", **{"cni.dev/valid-attachments": []})
        d = cni("sriov", "GC", c11, extra_env=env)
    assert d.ok, d.stdout + d.stderr.encode()
    assert snapshot(nic) == before and records(nic) == []
    assert sorted(os.listdir(os.path.join(data_dir, "sriov-net"))) in ([".lock"], [])
    assert [l["ifname"] for l in ip_json("link", "show", netns=ns)] == ["lo"]


def test_free_and_total_vf_counts(nic, netns):
    from delegates.sriov.availability import pf_count
    args = (nic["master"], nic["sysfsRoot"], nic["backend"], nic["stateDir"])
    assert pf_count(*args).to_dict() == {"pf": nic["master"], "total": 8, "free": 8, "allocated": 0,
                                         "pfAttached": False}
    nss = [netns() for _ in range(3)]
    for i, ns in enumerate(nss):
        assert cni("sriov", "ADD", conf(nic), netns=f"/var/run/netns/{ns}", ifname="net1", container_id=f"k{i}").ok
    assert (pf_count(*args).free, pf_count(*args).allocated) == (5, 3)
    for i, ns in enumerate(nss):
        assert cni("sriov", "DEL", conf(nic), netns=f"/var/run/netns/{ns}", ifname="net1", container_id=f"k{i}").ok
    assert pf_count(*args).free == 8


def test_gratuitous_arp_and_unsolicited_na_are_sent(nic, netns, data_dir):
    import socket
    import struct

    from pyroute2 import netns as pnetns
    ns = netns()
    # an AF_PACKET socket bound to no interface in the pod netns sees every frame there,
    # including those of an interface moved in after it was opened
    cap = pnetns.create_socket(f"/var/run/netns/{ns}", socket.AF_PACKET, socket.SOCK_RAW,
                               socket.htons(0x0003), flags=0)
    cap.settimeout(0.2)
    c = conf(nic, mac="02:00:00:00:0a:0a",
             ipam={"type": "fixipam", "ranges": [[{"subnet": "10.58.0.0/24"}], [{"subnet": "fd58::/64"}]],
                   "dataDir": data_dir},
             runtimeConfig={"ips": ["10.58.0.5/24", "fd58::5/64"]})
    try:
        assert cni("sriov", "ADD", c, netns=f"/var/run/netns/{ns}", ifname="net1", container_id="ga").ok
        arp = na = False
        for _ in range(200):
            try:
                f = cap.recv(2048)
            except socket.timeout:
                break
            etype = struct.unpack("!H", f[12:14])[0]
            if etype == 0x0806 and f[28:32] == socket.inet_aton("10.58.0.5") and f[38:42] == f[28:32]:
                arp = f[6:12] == bytes.fromhex("02000000" "0a0a")
            if etype == 0x86DD and f[20] == 58 and f[54] == 136 and \
                    f[62:78] == socket.inet_pton(socket.AF_INET6, "fd58::5"):
                na = True
        assert arp and na
    finally:
        cap.close()
        cni("sriov", "DEL", c, netns=f"/var/run/netns/{ns}", ifname="net1", container_id="ga")
