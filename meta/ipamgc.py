"""GC reaches fixipam: the meta plugin's CNI GC and `netmeta gc` pass a GC to every fixipam
network its DEL caches name, with the valid attachments translated to the delegates' level
(a pod's attachment (containerID, eth0) owns its delegates' (containerID, net1), ...).
Without this a reservation nobody's DEL can release (a damaged file, whose owner cannot be
read; a lost cache) would hold its address for ever.

Only networks named by some DEL cache are visited, and only fixipam sections (our own state
format): stand-alone fixipam users' networks are reached by their own plugin's GC."""
from delegates.fixipam import config as fixipam_config
from delegates.fixipam import gc as fixipam_gc

from .attachments import Attachment


def _fixipam_sections(entry: dict):
    for a in entry.get("attachments") or ():
        try:
            att = Attachment.from_dict(a)
            plugins = att.plugins
        except (TypeError, AttributeError):
            continue
        for p in plugins:
            ipam = p.get("ipam") if isinstance(p, dict) else None
            if isinstance(ipam, dict) and ipam.get("type") == "fixipam" and isinstance(p.get("name"), str):
                data_dir = ipam.get("dataDir", fixipam_config.DEFAULT_DATA_DIR)
                if isinstance(data_dir, str) and data_dir.startswith("/"):
                    yield data_dir, p["name"], att.ifname


def networks(entries: list) -> set:
    """{(dataDir, network)} of every fixipam IPAM named in these cache entries."""
    return {(d, n) for e in entries if isinstance(e, dict) for d, n, _ in _fixipam_sections(e)}


def owners(entries: list) -> set:
    """{(containerID, delegate ifname)} of these (valid) cache entries' attachments."""
    out = set()
    for e in entries:
        if isinstance(e, dict) and e.get("containerID"):
            for a in e.get("attachments") or ():
                if isinstance(a, dict) and isinstance(a.get("ifname"), str):
                    out.add((e["containerID"], a["ifname"]))
    return out


def collect(nets: set, keep: set, before: float, containers=frozenset()) -> dict:
    """GC each network; {network: [released addresses]} of those that released any. Every
    reservation of a container in `containers` is kept, whatever its ifname: a valid pod whose
    DEL cache is corrupt cannot say which interfaces it has."""
    out = {}
    for data_dir, network in sorted(nets):
        gone = fixipam_gc.collect(data_dir, network, keep, before, containers)
        if gone:
            out[network] = gone
    return out


def report(entries: list) -> list:
    """[{network, dataDir, damaged: [addresses]}] of the networks these caches name that hold a
    quarantined reservation (`netmeta status`)."""
    out = []
    for data_dir, network in sorted(networks(entries)):
        bad = fixipam_gc.damaged(data_dir, network)
        if bad:
            out.append({"network": network, "dataDir": data_dir, "damaged": bad})
    return out
