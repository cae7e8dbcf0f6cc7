"""`k8s.v1.cni.cncf.io/network-status`: one entry per attachment, with the field names of the
Network Plumbing WG client (name, interface, ips, mac, mtu, default, dns, gateway,
device-info)."""
from cni.result import Result

from . import deviceinfo

ANNOTATION = "k8s.v1.cni.cncf.io/network-status"


def entry(att, res: Result) -> dict:
    e = {"name": att.network, "interface": att.ifname}
    # the interface the delegate put in the sandbox under our ifname (several delegates report
    # host-side interfaces too, e.g. bridge's veth and bridge)
    idx = next((i for i, itf in enumerate(res.interfaces) if itf.name == att.ifname and itf.sandbox), None)
    if idx is None:
        idx = next((i for i, itf in enumerate(res.interfaces) if itf.sandbox), None)
    ips = [c.address.split("/")[0] for c in res.ips if c.interface is None or c.interface == idx]
    if ips:
        e["ips"] = ips
    if idx is not None:
        itf = res.interfaces[idx]
        if itf.mac:
            e["mac"] = itf.mac
        if itf.extra.get("mtu"):
            e["mtu"] = itf.extra["mtu"]
        pci = itf.extra.get("pciID")
    else:
        pci = None
    pci = pci or att.runtime_config.get("deviceID")
    e["default"] = bool(att.default)
    if res.dns:
        e["dns"] = dict(res.dns)
    if att.gateways:
        e["gateway"] = list(att.gateways)
    info = deviceinfo.after_add(att)
    if info:
        e["device-info"] = info
    elif pci:
        e["device-info"] = {"type": "pci", "version": "1.1.0", "pci": {"pci-address": pci}}
    return e


def annotation(entries: list) -> str:
    # indented as Multus writes it (json's Python encoder); not on a bare thin call's path
    import json
    return json.dumps(entries, indent=4)
