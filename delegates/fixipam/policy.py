"""Per-network scope and address policy of fixipam (keys of the `ipam` object):

  scope: node | cluster          where a reservation must be unique (default: cluster when the
                                 node daemon reaches the API and serves FixedIPReservations)
  onApiUnavailable: refuse | nodeLocal   cluster scope with the API down at ADD: refuse with
                                 code 11 (try again later; the default) or reserve on this node only
  exclude: ["10.1.0.1", "10.1.0.200-10.1.0.254", "10.1.0.64/28"]   never handed out
  allowed: [...same forms...]    the only addresses pods may request (default: the usable
                                 addresses of the subnets)
  kubeconfig: /etc/cni/net.d/netmeta.d/netmeta.kubeconfig   fixipam's own API access when it
                                 runs without the node daemon (the daemon's client wins when it
                                 serves the call: one identity per node)
  nodeName: node1                with kubeconfig: this node's name (default $NODE_NAME)

Address sets are netaddr IPSets: CIDRs, single addresses and `a-b` ranges mix, IPv4 and IPv6
alike, and membership is a log-time lookup however many ranges an operator lists. netaddr is
imported only by a network that sets one (~20 ms on the no-daemon path otherwise).
"""
from cni.errors import POLICY_DENIED, CNIError, config_error

# typing.TYPE_CHECKING without importing typing (~3 ms of an exec'd call): mypy takes any
# `TYPE_CHECKING` as true
TYPE_CHECKING = False
if TYPE_CHECKING:
    import netaddr

SCOPES = ("node", "cluster")
ON_API_UNAVAILABLE = ("refuse", "nodeLocal")
KEYS = {"scope", "onApiUnavailable", "exclude", "allowed", "kubeconfig", "nodeName"}


class Policy:
    """scope (None: not set, cluster when the daemon offers it), onApiUnavailable, the exclude
    and allowed address sets (None: not set), fixipam's own kubeconfig and node name."""
    __slots__ = ("scope", "on_api_unavailable", "exclude", "allowed", "kubeconfig", "node_name")

    def __init__(self, scope: str | None, on_api_unavailable: str, exclude: "netaddr.IPSet | None",
                 allowed: "netaddr.IPSet | None", kubeconfig: str | None = None, node_name: str | None = None):
        self.scope = scope
        self.on_api_unavailable = on_api_unavailable
        self.exclude = exclude
        self.allowed = allowed
        self.kubeconfig = kubeconfig
        self.node_name = node_name

    def check(self, ip) -> None:
        """Refuse an address outside `allowed` or inside `exclude`, naming the setting."""
        if self.exclude is None and self.allowed is None:
            return
        import netaddr
        addr = netaddr.IPAddress(str(ip))
        if self.exclude is not None and addr in self.exclude:
            raise CNIError(POLICY_DENIED, f"address {ip} is excluded by ipam.exclude",
                           "ipam.exclude lists addresses this network never hands out")
        if self.allowed is not None and addr not in self.allowed:
            raise CNIError(POLICY_DENIED, f"address {ip} is not in ipam.allowed",
                           "ipam.allowed lists the only addresses pods may request on this network")


def ip_set(value, field: str) -> "netaddr.IPSet":
    import netaddr
    if not isinstance(value, list) or not all(isinstance(x, str) for x in value):
        raise config_error(field, "must be a list of addresses, CIDRs or a-b ranges")
    out = netaddr.IPSet()
    for i, text in enumerate(value):
        t = text.strip()
        try:
            if "-" in t:
                lo, _, hi = t.partition("-")
                rng = netaddr.IPRange(lo.strip(), hi.strip())
                if netaddr.IPAddress(lo.strip()).version != netaddr.IPAddress(hi.strip()).version:
                    raise ValueError("ends are of different IP families")
                out.update(netaddr.IPSet(rng))
            else:
                out.add(netaddr.IPNetwork(t) if "/" in t else netaddr.IPAddress(t))
        except (netaddr.AddrFormatError, ValueError, TypeError) as e:
            raise config_error(f"{field}[{i}]", f"{t[:60]!r} is not an address, CIDR or a-b range: {e}") from None
    return out


def load(ipam: dict) -> Policy:
    scope = ipam.get("scope")
    if scope is not None and scope not in SCOPES:
        raise config_error("ipam.scope", f"must be one of {', '.join(SCOPES)}")
    oau = ipam.get("onApiUnavailable", "refuse")
    if oau not in ON_API_UNAVAILABLE:
        raise config_error("ipam.onApiUnavailable", f"must be one of {', '.join(ON_API_UNAVAILABLE)}")
    exclude = ip_set(ipam["exclude"], "ipam.exclude") if "exclude" in ipam else None
    allowed = ip_set(ipam["allowed"], "ipam.allowed") if "allowed" in ipam else None
    kc = ipam.get("kubeconfig")
    if kc is not None and (not isinstance(kc, str) or not kc.startswith("/")):
        raise config_error("ipam.kubeconfig", "must be an absolute path")
    node = ipam.get("nodeName")
    if node is not None and (not isinstance(node, str) or not node or len(node) > 253):
        raise config_error("ipam.nodeName", "must be a node name")
    return Policy(scope, oau, exclude, allowed, kc, node)
