"""fixipam configuration: parsed once into plain objects (read, never changed), validated
before anything is touched. Accepts Debian `static`-style and host-local-style subnet declarations:
  "subnet": "10.1.0.0/24", "gateway": "10.1.0.1"
  "ranges": [[{"subnet": ..., "gateway": ...}], ...]   (or a flat list of range objects)
"""
import ipaddress

from cni.errors import config_error

from . import policy as _policy

KNOWN_KEYS = {"type", "subnet", "gateway", "ranges", "routes", "dns", "dataDir"} | _policy.KEYS
DEFAULT_DATA_DIR = "/var/lib/cni/netmeta/fixipam"


class Subnet:
    """A configured subnet and its gateway (None: none)."""
    __slots__ = ("network", "gateway")

    def __init__(self, network: ipaddress.IPv4Network | ipaddress.IPv6Network,
                 gateway: ipaddress.IPv4Address | ipaddress.IPv6Address | None):
        self.network = network
        self.gateway = gateway


_NO_POLICY = _policy.Policy(None, "refuse", None, None)


class IPAMConfig:
    """The validated `ipam` object of one network."""
    __slots__ = ("network_name", "subnets", "routes", "dns", "data_dir", "policy")

    def __init__(self, network_name: str, subnets: tuple, routes: tuple, dns: dict, data_dir: str,
                 policy: _policy.Policy = _NO_POLICY):
        self.network_name = network_name
        self.subnets = subnets      # (Subnet, ...)
        self.routes = routes        # ((dst, gw or ""), ...)
        self.dns = dns
        self.data_dir = data_dir
        self.policy = policy


def _text(value, what: str) -> str:
    """A JSON string, as Go's net.ParseCIDR/ParseIP take: `ipaddress` would also read an integer
    (or a bool) as an address (167772161 -> 10.0.0.1)."""
    if not isinstance(value, str):
        raise TypeError(f"{what} must be a string, not {type(value).__name__}")
    return value


def _net(value, field):
    try:
        return ipaddress.ip_network(_text(value, "a subnet"), strict=True)
    except (ValueError, TypeError) as e:
        raise config_error(field, f"{str(value)[:60]!r} is not a subnet in CIDR form: {e}") from None


def _gateway(value, net, field):
    if value in (None, ""):
        return None
    try:
        gw = ipaddress.ip_address(_text(value, "a gateway"))
    except (ValueError, TypeError):
        raise config_error(field, f"{str(value)[:60]!r} is not an IP address") from None
    if gw not in net:
        raise config_error(field, f"gateway {gw} is outside subnet {net}")
    return gw


def _subnets(ipam: dict) -> tuple:
    out = []
    if "subnet" in ipam:
        net = _net(ipam["subnet"], "ipam.subnet")
        out.append(Subnet(net, _gateway(ipam.get("gateway"), net, "ipam.gateway")))
    elif "gateway" in ipam:
        raise config_error("ipam.gateway", "a gateway needs ipam.subnet")
    ranges = ipam.get("ranges", [])
    if not isinstance(ranges, list):
        raise config_error("ipam.ranges", "must be a list")
    for i, rs in enumerate(ranges):
        for j, r in enumerate(rs if isinstance(rs, list) else [rs]):
            f = f"ipam.ranges[{i}]" + (f"[{j}]" if isinstance(rs, list) else "")
            if not isinstance(r, dict) or "subnet" not in r:
                raise config_error(f, "each range needs a subnet")
            net = _net(r["subnet"], f + ".subnet")
            out.append(Subnet(net, _gateway(r.get("gateway"), net, f + ".gateway")))
    if not out:
        raise config_error("ipam.subnet", "no subnet configured (set ipam.subnet or ipam.ranges)")
    nets = [s.network for s in out]
    for a in range(len(nets)):
        for b in range(a + 1, len(nets)):
            if nets[a].version == nets[b].version and nets[a].overlaps(nets[b]):
                raise config_error("ipam.ranges", f"subnets {nets[a]} and {nets[b]} overlap")
    return tuple(out)


def _routes(ipam: dict) -> tuple:
    routes = ipam.get("routes", [])
    if not isinstance(routes, list):
        raise config_error("ipam.routes", "must be a list")
    out = []
    for i, r in enumerate(routes):
        if not isinstance(r, dict) or "dst" not in r:
            raise config_error(f"ipam.routes[{i}]", "each route needs dst")
        try:
            dst = ipaddress.ip_network(_text(r["dst"], "dst"), strict=False)
            gw = ipaddress.ip_address(_text(r["gw"], "gw")) if r.get("gw") else None
        except (ValueError, TypeError) as e:
            raise config_error(f"ipam.routes[{i}]", str(e)) from None
        if gw is not None and gw.version != dst.version:
            raise config_error(f"ipam.routes[{i}]", "dst and gw are of different IP families")
        out.append((str(dst), str(gw) if gw else ""))
    return tuple(out)


def _dns(ipam: dict) -> dict:
    dns = ipam.get("dns", {})
    if not isinstance(dns, dict):
        raise config_error("ipam.dns", "must be an object")
    out: dict[str, list[str] | str] = {}
    for key in ("nameservers", "search", "options"):
        val = dns.get(key)
        if val is not None:
            if not isinstance(val, list) or not all(isinstance(x, str) for x in val):
                raise config_error(f"ipam.dns.{key}", "must be a list of strings")
            if key == "nameservers":
                for ns in val:
                    try:
                        ipaddress.ip_address(ns)
                    except ValueError:
                        raise config_error("ipam.dns.nameservers", f"{ns[:60]!r} is not an IP address") from None
            out[key] = list(val)
    if dns.get("domain") is not None:
        if not isinstance(dns["domain"], str):
            raise config_error("ipam.dns.domain", "must be a string")
        out["domain"] = dns["domain"]
    unknown = set(dns) - {"nameservers", "search", "options", "domain"}
    if unknown:
        raise config_error("ipam.dns", f"unknown key(s) {sorted(unknown)}")
    return out


def load(conf: dict) -> IPAMConfig:
    ipam = conf.get("ipam")
    if not isinstance(ipam, dict):
        raise config_error("ipam", "missing or not an object")
    unknown = set(ipam) - KNOWN_KEYS
    if unknown:
        raise config_error("ipam", f"unknown key(s) {sorted(unknown)[:5]}")
    data_dir = ipam.get("dataDir", DEFAULT_DATA_DIR)
    if not isinstance(data_dir, str) or not data_dir.startswith("/"):
        raise config_error("ipam.dataDir", "must be an absolute path")
    return IPAMConfig(network_name=conf["name"], subnets=_subnets(ipam), routes=_routes(ipam),
                      dns=_dns(ipam), data_dir=data_dir, policy=_policy.load(ipam))
