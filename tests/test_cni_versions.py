"""Every CNI version from 0.1.0 to 1.1.0, as libcni and Go's skel speak them.

What is pinned, from containernetworking/cni (v1.2.x):
- pkg/types/create/create.go DecodeVersion: a config (or result) without `cniVersion` is 0.1.0;
- pkg/version/version.go All: a plugin built with skel supports 0.1.0 and 0.2.0 too;
- pkg/types/020/types.go Result: the legacy shape, `ip4` / `ip6` = {ip, gateway, routes}, `dns`;
- pkg/types/040/types.go convertFrom02x / convertTo02x: up, each family's IP becomes an `ips`
  entry and its routes join `routes`; down, only the first IP of each family, every route under
  the family of its dst, no interfaces, and no IP at all is an error.
Debian's reference plugins (built on those packages) are the oracle where they can be run.
"""
import ipaddress
import json
import os
import subprocess

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cni import errors, invoke, version
from cni.errors import CNIError
from cni.request import from_env
from cni.result import Result, convert
from tests import cniversions
from tests.cnirun import DEBIAN_CNI, cni

BASE = {"CNI_COMMAND": "ADD", "CNI_CONTAINERID": "c1", "CNI_NETNS": "/var/run/netns/x",
        "CNI_IFNAME": "eth0", "CNI_PATH": "/opt/cni/bin"}
ALL = ("0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0")
LEGACY = ("0.1.0", "0.2.0")
debian = pytest.mark.skipif(not os.path.exists(f"{DEBIAN_CNI}/bridge"),
                            reason="Debian containernetworking-plugins not installed")


def test_every_version_is_spoken():
    assert version.SUPPORTED == ALL
    assert version.version_info()["supportedVersions"] == list(ALL)


def test_end_to_end_loops_cover_every_version():
    # test_sriov.py and test_meta.py loop their ADD/CHECK/DEL tests over cniversions.ALL
    assert cniversions.ALL == ALL and cniversions.LEGACY == LEGACY


@pytest.mark.parametrize("conf", [{"name": "n"}, {"name": "n", "cniVersion": ""}])
def test_config_without_version_is_010(conf):
    req = from_env(BASE, json.dumps(conf).encode())
    assert req.cni_version == "0.1.0"


@pytest.mark.parametrize("exe", ["fixipam", "sriov", "netmeta"])
def test_version_answer_lists_legacy_versions(exe):
    r = cni(exe, "VERSION", b"{}")
    assert r.ok and r.out["supportedVersions"][:2] == ["0.1.0", "0.2.0"], r.stdout


@debian
def test_debian_version_answer_is_a_subset_of_ours():
    for p in ("bridge", "static", "host-device"):
        assert set(invoke.plugin_versions(f"{DEBIAN_CNI}/{p}")) <= set(version.SUPPORTED)


# ---- conversion: a legacy result survives every version; a current one loses only what 0.2.0 lacks

def _v4():
    return st.integers(1, 2**32 - 2).map(lambda n: ipaddress.IPv4Address(n))


def _v6():
    return st.integers(1, 2**128 - 2).map(lambda n: ipaddress.IPv6Address(n))


def _family(fam):
    addr = _v4() if fam == "4" else _v6()
    bits = 32 if fam == "4" else 128
    route = st.builds(lambda d, p, gw: {"dst": str(ipaddress.ip_network(f"{d}/{p}", strict=False)),
                                        **({"gw": str(gw)} if gw else {})},
                      addr, st.integers(0, bits), st.one_of(st.none(), addr))
    return st.fixed_dictionaries({"ip": st.builds(lambda a, p: f"{a}/{p}", addr, st.integers(1, bits))},
                                 optional={"gateway": addr.map(str), "routes": st.lists(route, min_size=1, max_size=3)})


DNS = st.fixed_dictionaries({}, optional={"nameservers": st.lists(_v4().map(str), min_size=1, max_size=2),
                                          "domain": st.just("example.org"),
                                          "search": st.lists(st.sampled_from(["a", "b.c"]), min_size=1, max_size=2),
                                          "options": st.just(["ndots:2"])})


@st.composite
def legacy_results(draw):
    v = draw(st.sampled_from(LEGACY))
    d = {"cniVersion": v}
    fams = draw(st.sampled_from([("4",), ("6",), ("4", "6")]))
    for f in fams:
        d[f"ip{f}"] = draw(_family(f))
    d["dns"] = draw(DNS)
    return d


@st.composite
def current_results(draw):
    """A 0.3.0+ result with nothing 1.1.0-only: any number of interfaces, IPs and routes."""
    v = draw(st.sampled_from(ALL[2:]))
    ifaces = draw(st.lists(st.fixed_dictionaries({"name": st.sampled_from(["eth0", "net1", "br0"])},
                                                 optional={"mac": st.just("0a:00:00:00:00:01"),
                                                           "sandbox": st.just("/var/run/netns/p")}),
                           max_size=2))
    ips = []
    for _ in range(draw(st.integers(1, 4))):
        f = draw(st.sampled_from("46"))
        fam = draw(_family(f))
        ip = {"address": fam["ip"]}
        if "gateway" in fam:
            ip["gateway"] = fam["gateway"]
        if ifaces and draw(st.booleans()):
            ip["interface"] = draw(st.integers(0, len(ifaces) - 1))
        if v < "1.0.0":
            ip["version"] = f
        ips.append(ip)
    d = {"cniVersion": v, "ips": ips}
    if ifaces:
        d["interfaces"] = ifaces
    routes = draw(st.lists(st.sampled_from("46").flatmap(lambda f: _family(f).map(lambda x: x.get("routes", []))),
                           max_size=2))
    routes = [r for rs in routes for r in rs]
    if routes:
        d["routes"] = routes
    d["dns"] = draw(DNS)
    if not d["dns"] and v >= "1.0.0":
        del d["dns"]
    return d


def _projection_02x(cur: dict) -> dict:
    """What convertTo02x keeps of a current result, written independently of cni/result.py."""
    out = {}
    for ip in cur["ips"]:
        f = "6" if ":" in ip["address"] else "4"
        out.setdefault(f"ip{f}", {"ip": ip["address"], **({"gateway": ip["gateway"]} if "gateway" in ip else {})})
    for r in cur.get("routes", []):
        f = "6" if ":" in r["dst"] else "4"
        if f"ip{f}" in out:
            out[f"ip{f}"].setdefault("routes", []).append(r)
    return dict(sorted(out.items()), dns=cur.get("dns", {}))


@settings(max_examples=150, deadline=None)
@given(legacy_results(), st.sampled_from(ALL), st.sampled_from(ALL))
def test_legacy_result_round_trips_through_every_version_pair(res, via1, via2):
    back = convert(convert(convert(res, via1), via2), res["cniVersion"])
    assert back == res


@settings(max_examples=150, deadline=None)
@given(legacy_results(), st.sampled_from(ALL[2:]))
def test_legacy_up_conversion_is_convertFrom02x(res, to):
    up = convert(res, to)
    fams = [f for f in ("4", "6") if f"ip{f}" in res]
    assert [ip["address"] for ip in up["ips"]] == [res[f"ip{f}"]["ip"] for f in fams]
    assert [ip.get("gateway") for ip in up["ips"]] == [res[f"ip{f}"].get("gateway") for f in fams]
    assert up.get("routes", []) == [r for f in fams for r in res[f"ip{f}"].get("routes", [])]
    assert "interfaces" not in up and up.get("dns", {}) == res["dns"]
    if to < "1.0.0":
        assert [ip["version"] for ip in up["ips"]] == fams


@settings(max_examples=150, deadline=None)
@given(current_results(), st.sampled_from(ALL[2:]), st.sampled_from(LEGACY))
def test_current_result_every_version_pair(res, other, legacy):
    # between 0.3.0+ versions nothing is lost
    assert convert(convert(res, other), res["cniVersion"]) == res
    # down to 0.1.0/0.2.0: exactly what convertTo02x keeps, and that survives the way back
    down = convert(res, legacy)
    assert down == dict(_projection_02x(res), cniVersion=legacy)
    assert convert(convert(down, res["cniVersion"]), legacy) == down


def test_no_ip_cannot_be_written_as_legacy():
    res = {"cniVersion": "1.0.0", "interfaces": [{"name": "eth0"}]}
    for v in LEGACY:
        with pytest.raises(CNIError) as e:
            convert(res, v)
        assert e.value.code == errors.INCOMPATIBLE_VERSION and "no IP" in e.value.msg


def test_result_without_version_is_legacy():
    # create.DecodeVersion: no cniVersion in a result is 0.1.0, i.e. the 020 shape
    r = Result.from_dict({"ip4": {"ip": "10.0.0.2/24", "gateway": "10.0.0.1"}})
    assert r.cni_version == "0.1.0" and r.ips[0].address == "10.0.0.2/24"


# ---- netmeta calling a legacy delegate: its prevResult and its answer in the legacy shape

LEGACY_PLUGIN = """#!/bin/sh
case "$CNI_COMMAND" in
VERSION) echo '{"cniVersion":"0.2.0","supportedVersions":["0.1.0","0.2.0"]}' ;;
ADD) cat > "SPY"; echo '{"cniVersion":"0.2.0","ip4":{"ip":"10.9.0.4/24","gateway":"10.9.0.1","routes":[{"dst":"0.0.0.0/0"}]},"dns":{}}' ;;
esac
exit 0
"""


def test_calling_a_legacy_delegate(tmp_path):
    spy = tmp_path / "stdin.json"
    (tmp_path / "old").write_text(LEGACY_PLUGIN.replace("SPY", str(spy)))
    (tmp_path / "old").chmod(0o755)
    req = from_env(dict(BASE, CNI_PATH=str(tmp_path)), b'{"cniVersion":"1.0.0","name":"n"}')
    prev = {"cniVersion": "1.0.0", "interfaces": [{"name": "eth0"}],
            "ips": [{"interface": 0, "address": "10.9.0.3/24"}], "routes": [{"dst": "10.8.0.0/16"}]}
    # the delegate gets its own config's cniVersion (libcni, Multus v4.1.4), here the legacy 0.2.0
    res = invoke.delegate("old", "ADD", {"cniVersion": "0.2.0", "type": "old", "prevResult": prev}, req)
    sent = json.loads(spy.read_text())
    assert sent["cniVersion"] == "0.2.0"
    assert sent["prevResult"] == {"cniVersion": "0.2.0", "dns": {},
                                  "ip4": {"ip": "10.9.0.3/24", "routes": [{"dst": "10.8.0.0/16"}]}}
    assert res.to_dict("1.0.0") == {"cniVersion": "1.0.0",
                                    "ips": [{"address": "10.9.0.4/24", "gateway": "10.9.0.1"}],
                                    "routes": [{"dst": "0.0.0.0/0"}]}


# ---- Debian as the oracle: fixipam answers exactly as `static` at every legacy version

SEED_FIXIPAM = {"type": "fixipam", "subnet": "10.55.206.0/26", "routes": [{"dst": "0.0.0.0/0"}],
                "gateway": "10.55.206.1", "dns": {"nameservers": ["10.55.206.2"]}}
SEED_STATIC = {"type": "static", "addresses": [{"address": "10.55.206.46/26", "gateway": "10.55.206.1"}],
               "routes": [{"dst": "0.0.0.0/0"}], "dns": {"nameservers": ["10.55.206.2"]}}
ARGS = "IgnoreUnknown=1;IP=10.55.206.46"   # the seed's form (fixipam); static takes its address from the config
STATIC_ARGS = "IgnoreUnknown=1"


def _with_version(conf: dict, v):
    return conf if v is None else dict(conf, cniVersion=v)


@debian
@pytest.mark.parametrize("v", ["0.1.0", "0.2.0", None])
def test_fixipam_answers_like_static(v, data_dir, uid):
    fix = _with_version({"name": f"seed{uid}", "ipam": dict(SEED_FIXIPAM, dataDir=data_dir)}, v)
    sta = _with_version({"name": f"seed{uid}", "ipam": SEED_STATIC}, v)
    a = cni("fixipam", "ADD", fix, args=ARGS, container_id=f"c{uid}", netns="/var/run/netns/unused")
    b = cni("static", "ADD", sta, args=STATIC_ARGS, container_id=f"c{uid}", netns="/var/run/netns/unused")
    try:
        assert a.ok and b.ok, (a.stdout, b.stdout)
        assert a.out == b.out and a.out["cniVersion"] == (v or "0.1.0") and "ip4" in a.out
    finally:
        cni("fixipam", "DEL", fix, args=ARGS, container_id=f"c{uid}")


@debian
@pytest.mark.parametrize("v", ["0.1.0", "0.2.0", None])
def test_debian_bridge_with_fixipam_like_with_static(v, netns, data_dir, uid):
    """Debian's bridge calls fixipam as a 0.1.0/0.2.0 IPAM and parses its legacy answer."""
    bridge = f"nmbr{uid}"
    outs = []
    try:
        for ipam, args in ((dict(SEED_FIXIPAM, dataDir=data_dir), ARGS), (SEED_STATIC, STATIC_ARGS)):
            ns = netns()
            conf = _with_version({"name": f"seed{uid}", "type": "bridge", "bridge": bridge, "ipam": ipam}, v)
            r = cni("bridge", "ADD", conf, netns=f"/var/run/netns/{ns}", args=args, container_id=f"c{uid}")
            assert r.ok, r.stdout + r.stderr.encode()
            outs.append(r.out)
            d = cni("bridge", "DEL", conf, netns=f"/var/run/netns/{ns}", args=args, container_id=f"c{uid}")
            assert d.ok, d.stdout
        assert outs[0] == outs[1]
        assert outs[0]["cniVersion"] == (v or "0.1.0")
        assert outs[0]["ip4"] == {"ip": "10.55.206.46/26", "gateway": "10.55.206.1",
                                  "routes": [{"dst": "0.0.0.0/0"}]}
        assert sorted(os.listdir(os.path.join(data_dir, f"seed{uid}"))) == [".lock"]   # released
    finally:
        subprocess.run(["ip", "link", "del", bridge], capture_output=True)
