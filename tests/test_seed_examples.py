"""The seed plugin's own README examples, verbatim, on a simulated NIC: configs without
cniVersion (CNI 0.1.0), its CNI_ARGS extra arguments (VF=, VLAN=, MAC=; IP= for fixipam),
ifname eth0, one exec per config as its scripts do. The only additions are the sim's own
fragment (`netmeta sim create`: master, sysfsRoot, backend) and private state directories.

The seed documents: `name`, `type`, `master` (PF, required), `ipam` (required), `pfOnly`; extra
arguments `vf` (a free VF is allocated when absent), `vlan`, `mac` (hustcat/sriov-cni README).
"""
import os

import pytest

from tests.cnirun import cni, ip_json
from tests.simnic import records, snapshot

SEED_IPAM = {"type": "fixipam", "subnet": "10.55.206.0/26", "routes": [{"dst": "0.0.0.0/0"}],
             "gateway": "10.55.206.1"}
SEED_ARGS = "IgnoreUnknown=1;IP=10.55.206.46;VF=1;MAC=66:d8:02:77:aa:aa"
MAC = "66:d8:02:77:aa:aa"
LEGACY_RESULT = {"cniVersion": "0.1.0", "dns": {},
                 "ip4": {"ip": "10.55.206.46/26", "gateway": "10.55.206.1", "routes": [{"dst": "0.0.0.0/0"}]}}


def seed_conf(nic, data_dir, **kw):
    c = {"name": "mynet", "type": "sriov", "master": nic["master"], "ipam": dict(SEED_IPAM, dataDir=data_dir)}
    c.update(kw)
    c.update({k: v for k, v in nic.items() if k != "master"})   # the sim's fragment
    assert "cniVersion" not in c
    return c


def _pod_view(ns):
    link = ip_json("addr", "show", "dev", "eth0", netns=ns)[0]
    addrs = {f"{a['local']}/{a['prefixlen']}" for a in link["addr_info"] if a["scope"] == "global"}
    default = [r for r in ip_json("route", "show", "default", netns=ns)]
    return link["address"], addrs, default


@pytest.mark.parametrize("vlan", [None, 42])
def test_seed_vf_example(nic, netns, uid, data_dir, vlan):
    before = snapshot(nic)
    ns = netns()
    conf = seed_conf(nic, data_dir)
    args = SEED_ARGS + (f";VLAN={vlan}" if vlan is not None else "")
    r = cni("sriov", "ADD", conf, netns=f"/var/run/netns/{ns}", ifname="eth0", args=args, container_id=f"c{uid}")
    assert r.ok, r.stdout + r.stderr.encode()
    assert r.out == LEGACY_RESULT                       # the 0.1.0/0.2.0 shape, as Debian's plugins answer
    vf1_name, vf1_mac = before["vfs"][1][1], before["vfs"][1][2]
    after = snapshot(nic)
    assert after["vfs"][1][1] is None                   # VF 1 (the one asked for) left the host
    assert after["vfs"][0] == before["vfs"][0]          # VF 0 (the first free one) did not move
    mac, addrs, default = _pod_view(ns)
    assert mac == MAC and addrs == {"10.55.206.46/26"}
    assert default and default[0]["gateway"] == "10.55.206.1"
    assert after["table"][1]["mac"] == MAC               # the PF table enforces the same MAC
    assert after["table"][1]["vlan"] == (vlan or 0)
    assert records(nic) == ["vf1.json"]
    d = cni("sriov", "DEL", conf, netns=f"/var/run/netns/{ns}", ifname="eth0", args=args, container_id=f"c{uid}")
    assert d.ok, d.stdout + d.stderr.encode()
    back = snapshot(nic)
    assert back == before and back["vfs"][1][1:3] == (vf1_name, vf1_mac)   # its own name and MAC
    assert records(nic) == [] and os.listdir(os.path.join(data_dir, "mynet")) == [".lock"]


@pytest.mark.parametrize("version", ["0.1.0", "0.2.0"])
def test_seed_vf_example_at_explicit_legacy_versions(nic, netns, uid, data_dir, version):
    ns = netns()
    conf = dict(seed_conf(nic, data_dir), cniVersion=version)
    r = cni("sriov", "ADD", conf, netns=f"/var/run/netns/{ns}", ifname="eth0", args=SEED_ARGS, container_id=f"c{uid}")
    assert r.ok and r.out == dict(LEGACY_RESULT, cniVersion=version), r.stdout
    assert cni("sriov", "DEL", conf, netns=f"/var/run/netns/{ns}", ifname="eth0", container_id=f"c{uid}").ok


def test_seed_pfonly_example(nic, netns, uid, data_dir):
    pf = nic["master"]
    before = ip_json("link", "show", "dev", pf)[0]
    ns = netns()
    conf = seed_conf(nic, data_dir, pfOnly=True)
    args = "IgnoreUnknown=1;IP=10.55.206.46"
    r = cni("sriov", "ADD", conf, netns=f"/var/run/netns/{ns}", ifname="eth0", args=args, container_id=f"c{uid}")
    assert r.ok and r.out == LEGACY_RESULT, r.stdout + r.stderr.encode()
    assert not any(l["ifname"] == pf for l in ip_json("link", "show"))      # the PF itself moved
    mac, addrs, default = _pod_view(ns)
    assert mac == before["address"] and addrs == {"10.55.206.46/26"}
    assert default and default[0]["gateway"] == "10.55.206.1"
    d = cni("sriov", "DEL", conf, netns=f"/var/run/netns/{ns}", ifname="eth0", args=args, container_id=f"c{uid}")
    assert d.ok, d.stdout
    after = ip_json("link", "show", "dev", pf)[0]
    assert (after["ifname"], after["address"], after["mtu"]) == (before["ifname"], before["address"], before["mtu"])


def test_seed_example_without_a_free_choice_of_vf(nic, netns, uid, data_dir):
    """No VF=: a free VF is allocated (the seed's documented default)."""
    ns = netns()
    conf = seed_conf(nic, data_dir)
    r = cni("sriov", "ADD", conf, netns=f"/var/run/netns/{ns}", ifname="eth0",
            args="IgnoreUnknown=1;IP=10.55.206.46", container_id=f"c{uid}")
    assert r.ok, r.stdout
    assert records(nic) == ["vf0.json"]
    assert cni("sriov", "DEL", conf, netns=f"/var/run/netns/{ns}", ifname="eth0", container_id=f"c{uid}").ok


# ---- malformed or conflicting extra arguments: refused, naming the argument, nothing left

@pytest.mark.parametrize("args,extra,name", [
    ("VF=abc", {}, "VF"), ("VF=-1", {}, "VF"), ("VF=", {}, "VF"), ("VF=99999", {}, "VF"),
    ("VLAN=4096", {}, "VLAN"), ("VLAN=x", {}, "VLAN"),
    ("MAC=zz:zz", {}, "MAC"), ("MAC=01:00:5e:00:00:01", {}, "MAC"), ("MAC=", {}, "MAC"),
    ("VF=2", {"vf": 1}, "VF"), ("VLAN=7", {"vlan": 8}, "VLAN"),
    ("MAC=02:00:00:00:00:01", {"mac": "02:00:00:00:00:02"}, "MAC"),
    ("MAC=02:00:00:00:00:01", {"runtimeConfig": {"mac": "02:00:00:00:00:03"}}, "MAC"),
    ("VF=1", {"pfOnly": True}, "VF"), ("VLAN=5", {"pfOnly": True}, "VLAN"),
    ("VF=1", {"deviceID": "0000:00:00.1"}, "VF"),
])
def test_bad_extra_arguments_refused(nic, netns, uid, data_dir, args, extra, name):
    before = snapshot(nic)
    ns = netns()
    conf = seed_conf(nic, data_dir, **extra)
    r = cni("sriov", "ADD", conf, netns=f"/var/run/netns/{ns}", ifname="eth0",
            args=f"IgnoreUnknown=1;IP=10.55.206.46;{args}", container_id=f"c{uid}")
    assert r.rc != 0 and r.out["code"] == 4, r.stdout
    assert f"{name}=" in r.out["msg"] and r.out["details"].startswith(f"argument={name}")
    assert "ERROR" in r.stderr                           # logged on stderr, not stdout
    assert snapshot(nic) == before and records(nic) == []
    assert not os.path.exists(os.path.join(data_dir, "mynet", "10.55.206.46"))
    assert not any(l["ifname"] == "eth0" for l in ip_json("link", "show", netns=ns))


def test_unknown_cni_args_need_ignore_unknown(nic, netns, uid, data_dir):
    """CNI spec / Go types.LoadArgs: an argument the plugin does not know is an error unless
    IgnoreUnknown=1; IgnoreUnknown=0 is the same as absent."""
    ns = netns()
    conf = seed_conf(nic, data_dir)
    for args in ("IP=10.55.206.46;FOO=bar", "IgnoreUnknown=0;IP=10.55.206.46;FOO=bar"):
        r = cni("sriov", "ADD", conf, netns=f"/var/run/netns/{ns}", ifname="eth0", args=args, container_id=f"c{uid}")
        assert r.rc != 0 and r.out["code"] == 4 and "FOO" in r.out["msg"], r.stdout
        assert records(nic) == []
    r = cni("sriov", "ADD", conf, netns=f"/var/run/netns/{ns}", ifname="eth0",
            args="IgnoreUnknown=1;IP=10.55.206.46;FOO=bar", container_id=f"c{uid}")
    assert r.ok, r.stdout
    assert cni("sriov", "DEL", conf, netns=f"/var/run/netns/{ns}", ifname="eth0", container_id=f"c{uid}").ok


def test_seed_kubernetes_key_accepted(nic, netns, uid, data_dir):
    ns = netns()
    conf = seed_conf(nic, data_dir, kubernetes=False)
    r = cni("sriov", "ADD", conf, netns=f"/var/run/netns/{ns}", ifname="eth0", args=SEED_ARGS, container_id=f"c{uid}")
    assert r.ok, r.stdout
    assert cni("sriov", "DEL", conf, netns=f"/var/run/netns/{ns}", ifname="eth0", container_id=f"c{uid}").ok
    bad = cni("sriov", "ADD", seed_conf(nic, data_dir, kubernetes="yes"), netns=f"/var/run/netns/{ns}",
              ifname="eth0", args=SEED_ARGS, container_id=f"c{uid}")
    assert bad.out["code"] == 7 and "kubernetes" in bad.out["msg"]
