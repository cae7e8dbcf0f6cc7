"""CNI results (spec 0.1.0 - 1.1.0) and conversion between versions.

Internally a result is always the 1.1.0 shape; `to_dict(v)` writes the shape of version v:
0.3.x / 0.4.0 add `version` ("4"/"6") to each IP, 1.x drop it; fields that only exist in
1.1.0 (interface mtu/socketPath/pciID, route mtu/advmss/priority/table/scope) are written only
for 1.1.0. Everything else round-trips unchanged.

0.1.0 / 0.2.0 results have the legacy shape of containernetworking/cni pkg/types/020:
`ip4` / `ip6` objects with `ip` (CIDR), `gateway`, `routes` ([{dst, gw}]), and `dns`. They are
converted as pkg/types/040 does (convertFrom02x / convertTo02x): up, each family's IP becomes
an `ips` entry and its routes join `routes`; down, the first IP of each family is kept, each
route goes under the family of its `dst`, interfaces are dropped, and a result with no IP
cannot be written ("cannot convert: no valid IP addresses"). A legacy result therefore
round-trips through every later version unchanged.
"""
import ipaddress

from . import version as ver
from .errors import DECODE_FAILURE, INCOMPATIBLE_VERSION, CNIError

_IFACE_11 = ("mtu", "socketPath", "pciID")
_ROUTE_11 = ("mtu", "advmss", "priority", "table", "scope")


def _bad(what: str, detail: str) -> CNIError:
    return CNIError(DECODE_FAILURE, f"failed to decode result: invalid {what}", detail)


class Interface:
    """An interface of a result; `extra`: its 1.1.0 fields (mtu, socketPath, pciID)."""
    __slots__ = ("name", "mac", "sandbox", "extra")

    def __init__(self, name: str, mac: str = "", sandbox: str = "", extra: dict | None = None):
        self.name = name
        self.mac = mac
        self.sandbox = sandbox
        self.extra = {} if extra is None else extra

    def to_dict(self, v11: bool) -> dict:
        d = {"name": self.name}
        if self.mac:
            d["mac"] = self.mac
        if self.sandbox:
            d["sandbox"] = self.sandbox
        if v11:
            d.update(self.extra)
        return d


class IPConfig:
    """An address of a result: `address` in CIDR form (10.1.0.5/24), `interface` the index of
    its interface in the result's `interfaces` (None: not given)."""
    __slots__ = ("address", "gateway", "interface")

    def __init__(self, address: str, gateway: str = "", interface: int | None = None):
        self.address = address
        self.gateway = gateway
        self.interface = interface

    @property
    def family(self) -> str:
        return "6" if ":" in self.address else "4"

    def to_dict(self, legacy: bool) -> dict:
        d: dict[str, object] = {}
        if legacy:
            d["version"] = self.family
        if self.interface is not None:
            d["interface"] = self.interface
        d["address"] = self.address
        if self.gateway:
            d["gateway"] = self.gateway
        return d


class Route:
    """A route of a result; `extra`: its 1.1.0 fields (mtu, advmss, priority, table, scope)."""
    __slots__ = ("dst", "gw", "extra")

    def __init__(self, dst: str, gw: str = "", extra: dict | None = None):
        self.dst = dst
        self.gw = gw
        self.extra = {} if extra is None else extra

    def to_dict(self, v11: bool) -> dict:
        d = {"dst": self.dst}
        if self.gw:
            d["gw"] = self.gw
        if v11:
            d.update(self.extra)
        return d


class Result:
    """A result in the 1.1.0 shape (lists of Interface, IPConfig, Route; `dns` as in the spec),
    whatever version it was read from; `to_dict(v)` writes version v's shape."""
    __slots__ = ("cni_version", "interfaces", "ips", "routes", "dns")

    def __init__(self, cni_version: str = ver.CURRENT, interfaces: list | None = None,
                 ips: list | None = None, routes: list | None = None, dns: dict | None = None):
        self.cni_version = cni_version
        self.interfaces = [] if interfaces is None else interfaces
        self.ips = [] if ips is None else ips
        self.routes = [] if routes is None else routes
        self.dns = {} if dns is None else dns

    def to_dict(self, version: str | None = None) -> dict:
        v = version or self.cni_version
        ver.require_supported(v)
        if ver.is_legacy(v):
            return self._to_legacy(v)
        legacy = not ver.at_least(v, "1.0.0")
        v11 = ver.at_least(v, "1.1.0")
        d: dict = {"cniVersion": v}
        if self.interfaces:
            d["interfaces"] = [i.to_dict(v11) for i in self.interfaces]
        if self.ips:
            d["ips"] = [i.to_dict(legacy) for i in self.ips]
        if self.routes:
            d["routes"] = [r.to_dict(v11) for r in self.routes]
        dns = {k: val for k, val in self.dns.items() if val}
        if dns or legacy:
            d["dns"] = dns
        return d

    def _to_legacy(self, v: str) -> dict:
        fams: dict = {}
        for ip in self.ips:   # only the first address of each family (convertTo02x)
            fams.setdefault(ip.family, {"ip": ip.address, **({"gateway": ip.gateway} if ip.gateway else {})})
        if not fams:
            raise CNIError(INCOMPATIBLE_VERSION, f"cannot convert result to cniVersion {v}: no IP address",
                           "0.1.0 and 0.2.0 results carry at least one ip4 or ip6")
        for r in self.routes:
            fam = fams.get("6" if ":" in r.dst else "4")
            if fam is not None:
                fam.setdefault("routes", []).append({"dst": r.dst, **({"gw": r.gw} if r.gw else {})})
        d: dict = {"cniVersion": v}
        for fam in ("4", "6"):
            if fam in fams:
                d[f"ip{fam}"] = fams[fam]
        d["dns"] = {k: val for k, val in self.dns.items() if val}
        return d

    @classmethod
    def _from_legacy(cls, d: dict, v: str) -> "Result":
        res = cls(cni_version=v)
        for fam in ("4", "6"):
            c = d.get(f"ip{fam}")
            if c is None:
                continue
            if not isinstance(c, dict) or not isinstance(c.get("ip"), str):
                raise _bad(f"ip{fam}", repr(c)[:200])
            ipc = _ip({"address": c["ip"], "gateway": c.get("gateway"), "version": fam}, 0)
            res.ips.append(ipc)
            for r in _list(c, "routes"):
                res.routes.append(_route(r))
        res.dns = _dns(d)
        return res

    def add_interface(self, name: str, mac: str = "", sandbox: str = "", **extra) -> int:
        self.interfaces.append(Interface(name, mac, sandbox, {k: v for k, v in extra.items() if v}))
        return len(self.interfaces) - 1

    @classmethod
    def from_dict(cls, d) -> "Result":
        if not isinstance(d, dict):
            raise _bad("result", "not a JSON object")
        v = d.get("cniVersion")
        if v is None or v == "":
            v = ver.DEFAULT   # as Go's create.DecodeVersion
        if v not in ver.SUPPORTED:
            raise CNIError(INCOMPATIBLE_VERSION, f"unsupported result version {str(v)[:20]!r}",
                           f"supported: {list(ver.SUPPORTED)}")
        if ver.is_legacy(v):
            return cls._from_legacy(d, v)
        res = cls(cni_version=v)
        for i in _list(d, "interfaces"):
            if not isinstance(i, dict) or not isinstance(i.get("name"), str) or not i["name"]:
                raise _bad("interface", repr(i)[:200])
            res.interfaces.append(Interface(i["name"], str(i.get("mac", "")), str(i.get("sandbox", "")),
                                            {k: i[k] for k in _IFACE_11 if k in i}))
        for ip in _list(d, "ips"):
            res.ips.append(_ip(ip, len(res.interfaces)))
        for r in _list(d, "routes"):
            res.routes.append(_route(r))
        res.dns = _dns(d)
        return res


def _route(r) -> Route:
    if not isinstance(r, dict) or not isinstance(r.get("dst"), str):
        raise _bad("route", repr(r)[:200])
    _net(r["dst"], "route dst")
    if r.get("gw"):
        _addr(r["gw"], "route gw")
    return Route(r["dst"], str(r.get("gw") or ""), {k: r[k] for k in _ROUTE_11 if k in r})


def _dns(d: dict) -> dict:
    dns = d.get("dns") or {}
    if not isinstance(dns, dict):
        raise _bad("dns", repr(dns)[:200])
    return {k: dns[k] for k in ("nameservers", "domain", "search", "options") if dns.get(k)}


def _list(d: dict, key: str) -> list:
    val = d.get(key) or []
    if not isinstance(val, list):
        raise _bad(key, "not a list")
    return val


def _ip(ip, n_ifaces: int) -> IPConfig:
    if not isinstance(ip, dict) or not isinstance(ip.get("address"), str):
        raise _bad("ip", repr(ip)[:200])
    iface = _interface_index(ip.get("interface"), n_ifaces)
    try:
        addr = ipaddress.ip_interface(ip["address"])
    except ValueError as e:
        raise _bad("ip address", str(e)) from None
    if "/" not in ip["address"]:
        raise _bad("ip address", f"{ip['address']!r} has no prefix length")
    gw = ip.get("gateway") or ""
    if gw:
        _addr(gw, "gateway")
    legacy_family = ip.get("version")
    if legacy_family and str(legacy_family) != str(addr.version):
        raise _bad("ip version", f"{legacy_family!r} does not match {ip['address']}")
    return IPConfig(ip["address"], gw, iface)


def _interface_index(iface, n_ifaces: int):
    if iface is None:
        return None
    if isinstance(iface, bool) or not isinstance(iface, int) or not 0 <= iface < max(n_ifaces, 1):
        raise _bad("ip interface index", f"{iface!r} with {n_ifaces} interfaces")
    return iface


def _addr(s, what):
    try:
        if not isinstance(s, str):   # ipaddress reads an int or bool as an address; Go wants text
            raise TypeError(f"want a string, not {type(s).__name__}")
        return ipaddress.ip_address(s)
    except (ValueError, TypeError) as e:
        raise _bad(what, str(e)) from None


def _net(s, what):
    try:
        if not isinstance(s, str):
            raise TypeError(f"want a string, not {type(s).__name__}")
        return ipaddress.ip_network(s, strict=False)
    except (ValueError, TypeError) as e:
        raise _bad(what, str(e)) from None


def convert(d: dict, to_version: str) -> dict:
    """Convert a result dict of any supported version to `to_version`."""
    return Result.from_dict(d).to_dict(to_version)
