"""fixipam through the CNI protocol: alone, and as the `ipam` of Debian's real `bridge`
plugin in real network namespaces."""
import os
import stat
import subprocess

import pytest

from tests.cnirun import cni, ip_json

pytestmark = pytest.mark.skipif(not os.path.exists("/usr/lib/cni/bridge"),
                                reason="Debian containernetworking-plugins not installed")


def ipam_conf(data_dir, name="fxnet", version="1.0.0", **extra):
    ipam = {"type": "fixipam", "ranges": [[{"subnet": "10.77.0.0/24", "gateway": "10.77.0.1"}],
                                          [{"subnet": "fd77::/64", "gateway": "fd77::1"}]],
            "routes": [{"dst": "0.0.0.0/0"}, {"dst": "::/0"}],
            "dns": {"nameservers": ["10.77.0.53"]}, "dataDir": data_dir}
    ipam.update(extra)
    return {"cniVersion": version, "name": name, "ipam": ipam}


def bridge_conf(data_dir, bridge, version):
    c = ipam_conf(data_dir, version=version)
    c.update({"type": "bridge", "bridge": bridge, "isGateway": True})
    return c


@pytest.mark.parametrize("version", ["0.3.1", "0.4.0", "1.0.0"])
def test_bridge_with_fixipam_in_netns(netns, uid, data_dir, version):
    ns = netns()
    bridge = f"nmbr{uid}"
    conf = bridge_conf(data_dir, bridge, version)
    args = "IgnoreUnknown=1;K8S_POD_NAME=p;IP=10.77.0.7/24,fd77::7/64"
    try:
        r = cni("bridge", "ADD", conf, netns=f"/var/run/netns/{ns}", args=args, container_id=f"c{uid}")
        assert r.ok, r.stdout + r.stderr.encode()
        assert r.out["cniVersion"] == version
        addrs = {ip["address"]: ip for ip in r.out["ips"]}
        assert set(addrs) == {"10.77.0.7/24", "fd77::7/64"}
        assert addrs["10.77.0.7/24"]["gateway"] == "10.77.0.1"
        if version < "1.0.0":
            assert addrs["10.77.0.7/24"]["version"] == "4" and addrs["fd77::7/64"]["version"] == "6"
        else:
            assert "version" not in addrs["10.77.0.7/24"]
        eth0 = r.out["interfaces"][addrs["10.77.0.7/24"]["interface"]]
        assert eth0["name"] == "eth0" and eth0["sandbox"].endswith(ns)
        # independent check of the kernel state with iproute2
        link = ip_json("addr", "show", "dev", "eth0", netns=ns)[0]
        got = {f"{a['local']}/{a['prefixlen']}" for a in link["addr_info"] if a["scope"] == "global"}
        assert got == {"10.77.0.7/24", "fd77::7/64"}
        routes = ip_json("route", "show", "default", netns=ns)
        assert routes and routes[0]["gateway"] == "10.77.0.1"
        # the reservation files: one per address, 0600
        d = os.path.join(data_dir, "fxnet")
        for f in ("10.77.0.7", "fd77::7"):
            assert stat.S_IMODE(os.stat(os.path.join(d, f)).st_mode) == 0o600
        if version >= "0.4.0":
            chk = dict(conf, prevResult=r.out)
            c = cni("bridge", "CHECK", chk, netns=f"/var/run/netns/{ns}", args=args, container_id=f"c{uid}")
            assert c.ok, c.stdout
        # a second pod asking for the same IP before the first DEL is refused, nothing leaks
        ns2 = netns()
        r2 = cni("bridge", "ADD", conf, netns=f"/var/run/netns/{ns2}", args="IgnoreUnknown=1;IP=10.77.0.7",
                 container_id=f"d{uid}")
        assert r2.rc != 0 and r2.out["code"] == 111 and "already reserved" in r2.out["msg"]
        assert sorted(os.listdir(d)) == [".lock", "10.77.0.7", "fd77::7"]
        cni("bridge", "DEL", conf, netns=f"/var/run/netns/{ns2}", container_id=f"d{uid}")
        # DEL frees; a second DEL succeeds
        for _ in range(2):
            dr = cni("bridge", "DEL", conf, netns=f"/var/run/netns/{ns}", args=args, container_id=f"c{uid}")
            assert dr.ok and dr.out is None, dr.stdout
        assert sorted(os.listdir(d)) == [".lock"]
        r3 = cni("bridge", "ADD", conf, netns=f"/var/run/netns/{ns2}", args="IgnoreUnknown=1;IP=10.77.0.7",
                 container_id=f"d{uid}")
        assert r3.ok, r3.stdout
        cni("bridge", "DEL", conf, netns=f"/var/run/netns/{ns2}", container_id=f"d{uid}")
    finally:
        subprocess.run(["ip", "link", "del", bridge], capture_output=True)


def _shape(x):
    """The structure of a JSON value: keys and types, not the values."""
    if isinstance(x, dict):
        return {k: _shape(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_shape(v) for v in x]
    return type(x).__name__


@pytest.mark.parametrize("version", ["0.3.1", "0.4.0", "1.0.0"])
def test_result_shape_matches_debian_static(data_dir, version):
    ours = ipam_conf(data_dir, version=version)
    theirs = {"cniVersion": version, "name": "fxnet",
              "ipam": {"type": "static", "routes": [{"dst": "0.0.0.0/0"}, {"dst": "::/0"}],
                       "dns": {"nameservers": ["10.77.0.53"]}}}
    args = "IgnoreUnknown=1;IP=10.77.0.9/24,fd77::9/64"
    a = cni("fixipam", "ADD", ours, args=args, netns="/x")
    b = cni("static", "ADD", theirs, args=args, netns="/x")
    assert a.ok and b.ok, (a.stdout, b.stdout)
    # static takes no gateway unless told per address; ours comes from the subnet
    for ip in b.out["ips"]:
        ip["gateway"] = "x"
    assert _shape(a.out) == _shape(b.out)
    assert [i["address"] for i in a.out["ips"]] == [i["address"] for i in b.out["ips"]]
    assert a.out["routes"] == b.out["routes"] and a.out["dns"] == b.out["dns"]
    cni("fixipam", "DEL", ours, netns="/x")


@pytest.mark.parametrize("source", ["runtimeConfig", "args", "cni_args"])
def test_address_sources(data_dir, source):
    conf = ipam_conf(data_dir)
    args = "IgnoreUnknown=1"
    if source == "runtimeConfig":
        conf["runtimeConfig"] = {"ips": ["10.77.0.20/24"]}
        args += ";IP=10.77.0.99"  # lower precedence, ignored
    elif source == "args":
        conf["args"] = {"cni": {"ips": ["10.77.0.20"]}}
    else:
        args += ";IP=10.77.0.20"
    r = cni("fixipam", "ADD", conf, args=args, netns="/x")
    assert r.ok and r.out["ips"][0]["address"] == "10.77.0.20/24", r.stdout
    assert sorted(os.listdir(os.path.join(data_dir, "fxnet"))) == [".lock", "10.77.0.20"]
    assert cni("fixipam", "DEL", conf, netns="/x").ok


@pytest.mark.parametrize("ip,code,words", [
    ("", 112, "no IP address"),
    ("10.78.0.5", 110, "outside"),
    ("10.77.0.0", 110, "network address"),
    ("10.77.0.255", 110, "broadcast"),
    ("10.77.0.1", 110, "gateway"),
    ("fd77::", 110, "network address"),
    ("fd77::1", 110, "gateway"),
    ("10.77.0.5/16", 110, "prefix"),
    ("10.77.0.500", 110, "invalid address"),
    ("10.77.0.5,10.77.0.5", 110, "twice"),
    ("hello", 110, "invalid address"),
])
def test_rejected_addresses(data_dir, ip, code, words):
    conf = ipam_conf(data_dir)
    r = cni("fixipam", "ADD", conf, args=f"IP={ip}" if ip else "", netns="/x")
    assert r.rc != 0 and r.out["code"] == code and words in r.out["msg"], r.stdout
    assert r.stderr  # a log line
    d = os.path.join(data_dir, "fxnet")
    assert not os.path.exists(d) or sorted(os.listdir(d)) == [".lock"]  # nothing reserved


@pytest.mark.parametrize("ipam,field", [
    ({"subnet": "10.0.0.1/24"}, "ipam.subnet"),           # host bits set
    ({"subnet": "10.0.0.0/24", "gateway": "10.1.0.1"}, "ipam.gateway"),
    ({"gateway": "10.1.0.1"}, "ipam.gateway"),
    ({}, "ipam.subnet"),
    ({"subnet": "10.0.0.0/24", "bogus": 1}, "ipam"),
    ({"ranges": [[{"subnet": "10.0.0.0/24"}], [{"subnet": "10.0.0.0/16"}]]}, "ipam.ranges"),
    ({"subnet": "10.0.0.0/24", "routes": [{"dst": "x"}]}, "ipam.routes[0]"),
    ({"subnet": "10.0.0.0/24", "dns": {"nameservers": ["nope"]}}, "ipam.dns.nameservers"),
    ({"subnet": "10.0.0.0/24", "dataDir": "relative"}, "ipam.dataDir"),
    # JSON numbers are not addresses (Python's ipaddress reads 167772161 as 10.0.0.1, True as
    # 0.0.0.1; Go's net.ParseCIDR/ParseIP, which host-local and static use, take text only)
    ({"subnet": 167772160}, "ipam.subnet"),
    ({"subnet": True}, "ipam.subnet"),
    ({"subnet": "10.0.0.0/24", "gateway": 167772161}, "ipam.gateway"),
    ({"subnet": "10.0.0.0/24", "routes": [{"dst": 0}]}, "ipam.routes[0]"),
    ({"subnet": "10.0.0.0/24", "routes": [{"dst": "0.0.0.0/0", "gw": 167772161}]}, "ipam.routes[0]"),
])
def test_invalid_config_names_field(data_dir, ipam, field):
    conf = {"cniVersion": "1.0.0", "name": "fxnet", "ipam": dict({"type": "fixipam"}, **ipam)}
    r = cni("fixipam", "ADD", conf, args="IP=10.0.0.5", netns="/x")
    assert r.rc != 0 and r.out["code"] == 7 and f"'{field}'" in r.out["msg"], r.stdout


def test_same_owner_retry_is_idempotent(data_dir):
    conf = ipam_conf(data_dir)
    a = cni("fixipam", "ADD", conf, args="IP=10.77.0.30", netns="/x")
    b = cni("fixipam", "ADD", conf, args="IP=10.77.0.30", netns="/x")
    assert a.ok and b.ok and a.out == b.out
    other_if = cni("fixipam", "ADD", conf, args="IP=10.77.0.30", netns="/x", ifname="net1")
    assert other_if.out["code"] == 111
    assert cni("fixipam", "DEL", conf, netns="/x").ok


def test_partial_conflict_reserves_nothing(data_dir):
    conf = ipam_conf(data_dir)
    assert cni("fixipam", "ADD", conf, args="IP=fd77::40", netns="/x", container_id="a").ok
    r = cni("fixipam", "ADD", conf, args="IP=10.77.0.40,fd77::40", netns="/x", container_id="b")
    assert r.out["code"] == 111
    assert sorted(os.listdir(os.path.join(data_dir, "fxnet"))) == [".lock", "fd77::40"]


def test_check_verifies_reservation(data_dir):
    conf = ipam_conf(data_dir)
    assert cni("fixipam", "ADD", conf, args="IP=10.77.0.50", netns="/x").ok
    assert cni("fixipam", "CHECK", conf, args="IP=10.77.0.50", netns="/x").ok
    bad = cni("fixipam", "CHECK", conf, args="IP=10.77.0.51", netns="/x")
    assert bad.rc != 0 and "not reserved" in bad.out["msg"]
    assert cni("fixipam", "DEL", conf, netns="/x").ok
    gone = cni("fixipam", "CHECK", conf, args="IP=10.77.0.50", netns="/x")
    assert gone.rc != 0 and "no reservation" in gone.out["msg"]


def test_gc_keeps_only_valid_attachments(data_dir):
    conf = ipam_conf(data_dir, version="1.1.0")
    for i, cid in enumerate(["keep", "drop1", "drop2"]):
        assert cni("fixipam", "ADD", conf, args=f"IP=10.77.0.{60 + i}", netns="/x", container_id=cid).ok
    gc = dict(conf, **{"cni.dev/valid-attachments": [{"containerID": "keep", "ifname": "eth0"}]})
    r = cni("fixipam", "GC", gc)
    assert r.ok, r.stdout
    assert sorted(os.listdir(os.path.join(data_dir, "fxnet"))) == [".lock", "10.77.0.60"]
    assert cni("fixipam", "STATUS", conf).ok


def test_gc_and_status_need_1_1(data_dir):
    r = cni("fixipam", "GC", ipam_conf(data_dir, version="1.0.0"))
    assert r.out["code"] == 1


def test_version_verb():
    r = cni("fixipam", "VERSION", b"")
    assert r.ok and r.out["supportedVersions"] == ["0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"]
