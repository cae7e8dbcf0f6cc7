"""VFs whose allocation record was damaged (set aside as `vfN.json.damaged.<ns>`, see records):
the record is lost, but its file name still says which VF it was. Such a VF is either back in
the host (its pod netns went away and the kernel returned it), and then reclaimed here — its
PF-table VLAN, QoS and rates reset so the next pod does not inherit them — or still in a pod.

A DEL that finds no record for its attachment while such a VF is away, and the pod has the
attachment's interface, identifies the VF by its netns: the interface is moved to the host and
the topology says which VF it is. Only then is the address released; a DEL never reports
success while it knows the VF may still be in the pod. Callers hold the node lock."""

import os

from cni import log
from cni.errors import CNIError

from . import netdev
from .device import Device
from .records import Records

_log = log.get("sriov")

# what a free VF must not keep from the pod that had it
NEUTRAL = {"vlan": 0, "qos": 0, "proto": "802.1Q", "min_tx_rate": 0, "max_tx_rate": 0}


def unresolved(recs: Records, pf: str) -> dict:
    """{VF index: its newest damaged-record entry} of `pf`."""
    return {a["vf"]: a for a in recs.aside(pf) if a["kind"] == "damaged" and a["vf"] is not None}


def _resolve(recs: Records, pf: str, entry: dict, how: str) -> None:
    name = entry["file"].replace(".damaged.", ".reclaimed.", 1)
    recs.rename_aside(pf, entry["file"], name)
    _log.warning("VF %s of %s (its record was damaged, set aside as %s): %s", entry["vf"], pf,
                 entry["file"], how)


def reclaim_returned(recs: Records, dev: Device, pf: str, taken: set) -> None:
    """Reclaim the VFs of `pf` with a damaged record that are back in the host (or gone)."""
    todo = unresolved(recs, pf)
    if not todo:
        return
    numvfs = dev.topo.numvfs(pf)
    for n, entry in todo.items():
        if n >= numvfs:
            _resolve(recs, pf, entry, f"gone ({pf} has {numvfs} VFs now)")
        elif n in taken:
            _resolve(recs, pf, entry, "allocated again since")
        elif dev.topo.vf_netdev(pf, n) is not None:
            with dev.table(pf) as t:
                t.set(n, **NEUTRAL)
            _resolve(recs, pf, entry, f"back in the host as {dev.topo.vf_netdev(pf, n)}: reclaimed")


def reclaim_all(recs: Records, conf: dict) -> None:
    """reclaim_returned for every PF of the state dir found under the config's sysfs root."""
    dev = _device(conf)
    for pf in recs.pfs():
        if dev is not None and unresolved(recs, pf) and dev.topo.pf_exists(pf):
            try:
                reclaim_returned(recs, dev, pf, {r["vf"] for r in recs.of_pf(pf)})
            except Exception as e:   # one PF must not fail the GC of the others
                _log.warning("could not reclaim VFs of %s with damaged records yet: %s", pf, e)


def _device(conf: dict) -> Device | None:
    root, backend = conf.get("sysfsRoot", "/sys"), conf.get("backend", "netlink")
    return Device(root, backend) if isinstance(root, str) and isinstance(backend, str) else None


def reclaim_from_pod(recs: Records, req) -> None:
    """DEL without a record: when a VF with a damaged record is away from the host and the pod
    has `req.ifname`, find out whether that interface is the VF (move it to the host, ask the
    topology) and reclaim it; an interface that is no such VF goes back unchanged."""
    ns, ifname = req.netns, req.ifname
    if not netdev.netns_exists(ns) or netdev.lookup(ifname, ns) is None:
        return
    dev = _device(req.config)
    away = {}
    for pf in recs.pfs():
        if dev is None or not unresolved(recs, pf) or not dev.topo.pf_exists(pf):
            continue
        reclaim_returned(recs, dev, pf, {r["vf"] for r in recs.of_pf(pf)})
        away.update({(pf, n): e for n, e in unresolved(recs, pf).items()})
    if not away:
        return
    tmp = f"nmv{os.urandom(4).hex()}"
    netdev.move(ifname, None, tmp, src_netns=ns)
    assert dev is not None      # `away` is filled only when there is a device
    for (pf, n), entry in away.items():
        if dev.topo.vf_netdev(pf, n) != tmp:
            continue
        host = ifname if netdev.lookup(ifname) is None else tmp   # as the kernel returns a VF
        netdev.setup(tmp, None, new_name=host, up=False)
        with dev.table(pf) as t:
            t.set(n, **NEUTRAL)
        _resolve(recs, pf, entry, f"identified as {ifname} in {ns} by container "
                                  f"{req.container_id[:12]}'s DEL, back in the host as {host}")
        return
    try:
        netdev.move(tmp, ns, ifname)   # not a VF that lost its record: put it back
    except CNIError as e:
        raise CNIError(e.code, f"failed to put {ifname} back into {ns}", str(e)) from None
    _log.info("DEL of %s: %s in %s is not a VF with a damaged record", req.container_id[:12], ifname, ns)
