"""Which fixed addresses a call asks for, and whether the network allows them.

Sources, highest precedence first (as Debian's `static`): runtimeConfig.ips (capability
`ips`, what Multus passes from the pod's network selection), args.cni.ips, then CNI_ARGS
`IP=` (comma-separated; podman and kubelet-era tools use it). The first non-empty one wins.
An address may omit its prefix length; it then takes its subnet's.
"""
import ipaddress

from cni.errors import ADDRESS_INVALID, NO_ADDRESS, CNIError

from .config import IPAMConfig, Subnet


class Wanted:
    """One requested address: with its subnet's prefix length, the subnet, and where it came from."""
    __slots__ = ("interface", "subnet", "source")

    def __init__(self, interface: ipaddress.IPv4Interface | ipaddress.IPv6Interface, subnet: Subnet,
                 source: str):
        self.interface = interface
        self.subnet = subnet
        self.source = source

    @property
    def key(self) -> str:
        return str(self.interface.ip)


def _strings(val, field: str) -> list:
    if isinstance(val, str):
        return [val]
    if not isinstance(val, list) or not all(isinstance(x, str) for x in val):
        raise CNIError(ADDRESS_INVALID, f"invalid {field}: must be a list of address strings")
    return val


def requested(conf: dict, cni_args: dict) -> tuple[str, list]:
    """(source, [address strings]) of the highest-precedence non-empty source."""
    runtime = conf.get("runtimeConfig") or {}
    if isinstance(runtime, dict) and runtime.get("ips"):
        return "runtimeConfig.ips", _strings(runtime["ips"], "runtimeConfig.ips")
    args = conf.get("args") or {}
    cni = args.get("cni") if isinstance(args, dict) else None
    if isinstance(cni, dict) and cni.get("ips"):
        return "args.cni.ips", _strings(cni["ips"], "args.cni.ips")
    if cni_args.get("IP"):
        return "CNI_ARGS IP", [s.strip() for s in cni_args["IP"].split(",") if s.strip()]
    return "", []


def _parse(text: str, source: str):
    try:
        return ipaddress.ip_interface(text.strip())
    except ValueError:
        raise CNIError(ADDRESS_INVALID, f"invalid address {text[:64]!r} in {source}",
                       "expected an IPv4/IPv6 address, optionally with /prefix") from None


def validate(cfg: IPAMConfig, source: str, texts: list) -> list:
    """Parse and check every address against the configured subnets."""
    if not texts:
        raise CNIError(NO_ADDRESS, "no IP address given",
                       "pass one in CNI_ARGS IP=, runtimeConfig.ips or args.cni.ips")
    out, seen = [], set()
    for text in texts:
        iface = _parse(text, source)
        ip = iface.ip
        subnet = next((s for s in cfg.subnets if ip in s.network), None)
        if subnet is None:
            nets = ", ".join(str(s.network) for s in cfg.subnets)
            raise CNIError(ADDRESS_INVALID, f"address {ip} is outside the network's subnets",
                           f"{source}: subnets are {nets}")
        net = subnet.network
        if "/" in text and iface.network.prefixlen != net.prefixlen:
            raise CNIError(ADDRESS_INVALID, f"address {text.strip()} has prefix /{iface.network.prefixlen}",
                           f"subnet {net} has /{net.prefixlen}")
        # IPv4 /31 and /32 have no network/broadcast (RFC 3021); IPv6 has no broadcast but its
        # first address is the subnet-router anycast address (RFC 4291 2.6.1).
        if ip == net.network_address and net.num_addresses > 2:
            raise CNIError(ADDRESS_INVALID, f"address {ip} is the network address of {net}")
        if net.version == 4 and net.num_addresses > 2 and ip == net.broadcast_address:
            raise CNIError(ADDRESS_INVALID, f"address {ip} is the broadcast address of {net}")
        if subnet.gateway is not None and ip == subnet.gateway:
            raise CNIError(ADDRESS_INVALID, f"address {ip} is the gateway of {net}")
        if ip in seen:
            raise CNIError(ADDRESS_INVALID, f"address {ip} is requested twice")
        seen.add(ip)
        out.append(Wanted(ipaddress.ip_interface(f"{ip}/{net.prefixlen}"), subnet, source))
    return out
