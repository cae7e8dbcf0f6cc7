"""What a plugin's answer must look like at each CNI spec version, written from the spec and
libcni's types (containernetworking/cni v1.2.x), not from cni/result.py, so the end-to-end tests
can loop over versions as the reference plugins' tests do (containernetworking/plugins:
`for _, ver := range testutils.AllSpecVersions`).

- 0.1.0 / 0.2.0 (pkg/types/020 Result): `ip4` / `ip6` = {ip, gateway, routes} and `dns`; no
  interfaces, ips or top-level routes.
- 0.3.0 / 0.3.1 / 0.4.0 (pkg/types/040 Result): `interfaces`, `ips` (each with `version`
  "4"/"6"), `routes`, `dns`.
- 1.0.0 / 1.1.0 (pkg/types/100 Result): as 0.4.0 without `version` in the IPs; the interface
  `mtu`/`socketPath`/`pciID` and route `mtu`/`advmss`/`priority`/`table`/`scope` exist only in
  1.1.0.
- Verbs (pkg/skel): CHECK from 0.4.0 on, STATUS and GC from 1.1.0 on; an older config gets
  error 1 (incompatible CNI version). The unit-level rule is pinned in test_cni_core.py
  (`test_verb_needs_version`); these helpers let the end-to-end tests check it through the
  real executables."""
ALL = ("0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0")   # pinned == cni.version.SUPPORTED
LEGACY = ("0.1.0", "0.2.0")
INCOMPATIBLE_VERSION = 1   # spec "Error codes": 1 = incompatible CNI version (types.ErrIncompatibleCNIVersion)
IFACE_11 = {"mtu", "socketPath", "pciID"}
ROUTE_11 = {"mtu", "advmss", "priority", "table", "scope"}


def vt(v: str) -> tuple:
    return tuple(int(p) for p in v.split("."))


def allows(v: str, command: str) -> bool:
    """Whether a config of version v may carry `command` (pkg/skel)."""
    need = {"CHECK": "0.4.0", "GC": "1.1.0", "STATUS": "1.1.0"}.get(command)
    return need is None or vt(v) >= vt(need)


def assert_shape(out: dict, v: str) -> None:
    """`out` is a success result in the shape of version v."""
    assert isinstance(out, dict) and out.get("cniVersion") == v, out
    if v in LEGACY:
        assert set(out) <= {"cniVersion", "ip4", "ip6", "dns"}, out
        assert "ip4" in out or "ip6" in out, out
        for fam in ("ip4", "ip6"):
            if fam in out:
                assert set(out[fam]) <= {"ip", "gateway", "routes"} and "ip" in out[fam], out
                assert (":" in out[fam]["ip"]) == (fam == "ip6"), out
        return
    assert not {"ip4", "ip6"} & set(out), out
    assert set(out) <= {"cniVersion", "interfaces", "ips", "routes", "dns"}, out
    for ip in out.get("ips", []):
        if vt(v) < (1, 0, 0):
            assert ip.get("version") == ("6" if ":" in ip["address"] else "4"), out
        else:
            assert "version" not in ip, out
    if v != "1.1.0":
        for i in out.get("interfaces", []):
            assert not IFACE_11 & set(i), out
        for r in out.get("routes", []):
            assert not ROUTE_11 & set(r), out


def addresses(out: dict) -> list:
    """The IP addresses (CIDR form) of a result of any version, in order."""
    if out.get("cniVersion") in LEGACY or "ips" not in out:
        return [out[f]["ip"] for f in ("ip4", "ip6") if f in out]
    return [ip["address"] for ip in out["ips"]]


def routes(out: dict) -> list:
    """Every route of a result of any version."""
    if out.get("cniVersion") in LEGACY:
        return [r for f in ("ip4", "ip6") for r in out.get(f, {}).get("routes", [])]
    return out.get("routes", [])


def assert_refused_for_version(run, v: str, command: str) -> None:
    """A `command` a v config may not carry was refused with error 1 and one JSON document."""
    assert not run.ok and isinstance(run.out, dict) and run.out.get("code") == INCOMPATIBLE_VERSION, \
        (v, command, run.stdout)
