"""`default-route` (Multus semantics, see meta/annotations.gateway_filters): once any attachment
asks for a default route, every attachment loses the default routes of the families it did not
name itself (removed from the pod netns and from its result), and the requested gateway becomes
the default route on the asking attachment's interface."""
from cni.errors import VF_CONFIG_FAILED, CNIError

DEFAULT_DST = {"4": "0.0.0.0/0", "6": "::/0"}


def apply(netns: str, atts: list, results: list) -> None:
    if not any(a.drop_default or a.gateways for a in atts):
        return
    from pyroute2.netlink.exceptions import NetlinkError  # lazily: most pods never need it

    from cni.netns import rtnl
    with rtnl(netns) as ip:
        for att, res in zip(atts, results):
            idx = ip.link_lookup(ifname=att.ifname)
            if not idx:
                continue
            for fam in att.drop_default:
                for r in ip.get_routes(family=10 if fam == "6" else 2, table=254, oif=idx[0]):
                    if r["dst_len"] == 0:
                        ip.route("del", dst=DEFAULT_DST[fam], oif=idx[0], gateway=r.get_attr("RTA_GATEWAY"))
                res.routes = [r for r in res.routes if r.dst != DEFAULT_DST[fam]]
        for att in atts:
            for gw in att.gateways:
                fam = "6" if ":" in gw else "4"
                try:
                    ip.route("replace", dst=DEFAULT_DST[fam], gateway=gw, oif=ip.link_lookup(ifname=att.ifname)[0])
                except (NetlinkError, IndexError) as e:
                    raise CNIError(VF_CONFIG_FAILED, f"failed to set default route via {gw} on {att.ifname}",
                                   str(e)) from None
