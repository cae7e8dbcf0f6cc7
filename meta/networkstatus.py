"""`k8s.v1.cni.cncf.io/network-status`: one entry per attachment, with the field names of the
Network Plumbing WG client (name, interface, ips, mac, mtu, default, dns, gateway,
device-info)."""
from cni import jsonlite
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
    """json.dumps(entries, indent=4), as Multus writes it, on cni/jsonlite (json's indent needs
    its Python encoder: `import json`, with re and enum, ~5 ms of an exec'd call)."""
    try:
        return _indented(entries, "")
    except _NotPlain:   # a key json would convert (int, float, bool, None): json itself
        import json
        return json.dumps(entries, indent=4)


class _NotPlain(Exception):
    pass


def _indented(v, pad: str) -> str:
    """json's indent=4 layout (separators "," and ": "; empty containers as {} and []); every
    scalar and key is written by the C encoder json uses."""
    if isinstance(v, dict):
        if not v:
            return "{}"
        inner = pad + "    "
        if not all(isinstance(k, str) for k in v):
            raise _NotPlain
        items = ",\n".join(f"{inner}{jsonlite.dumps(k)}: {_indented(x, inner)}" for k, x in v.items())
        return f"{{\n{items}\n{pad}}}"
    if isinstance(v, (list, tuple)):
        if not v:
            return "[]"
        inner = pad + "    "
        items = ",\n".join(inner + _indented(x, inner) for x in v)
        return f"[\n{items}\n{pad}]"
    return jsonlite.dumps(v)
