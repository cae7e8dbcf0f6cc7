"""Free/total VFs per PF: what node availability (the `sriov/vfCount` annotation and the
`sriov/freeVFAvailable` label) is computed from. A VF is free when it exists (index <
sriov_numvfs), has no allocation record, its netdev is in the host netns, and the kubelet's
device plugin does not own it (reserved.py)."""
import contextlib

from . import reserved
from .device import Device
from .records import Records


class PFCount:
    """One PF's VFs: `total`, `free`, `allocated`; `pf_attached`: the PF itself is in a pod
    (pfOnly), none of its VFs is usable; `pods`: the UIDs of the pods holding its VFs (records
    carrying K8S_POD_UID), sorted."""
    __slots__ = ("pf", "total", "free", "allocated", "pf_attached", "pods")

    def __init__(self, pf: str, total: int, free: int, allocated: int, pf_attached: bool, pods: tuple = ()):
        self.pf = pf
        self.total = total
        self.free = free
        self.allocated = allocated
        self.pf_attached = pf_attached
        self.pods = pods

    def to_dict(self) -> dict:
        return {"pf": self.pf, "total": self.total, "free": self.free, "allocated": self.allocated,
                "pfAttached": self.pf_attached}


def pf_count(pf: str, sysfs_root: str = "/sys", backend: str = "netlink",
             state_dir: str = "/var/lib/cni/netmeta/sriov") -> PFCount:
    dev = Device(sysfs_root, backend)
    recs = Records(state_dir)
    pf_rec = recs.read(pf, None)
    if pf_rec:  # the PF (and its sysfs view) is inside a pod
        return PFCount(pf, 0, 0, 0, True)
    dev.require_pf(pf)
    records = recs.of_pf(pf)
    taken = {r["vf"] for r in records}
    vfs = dev.topo.vfs(pf)
    kubelet = reserved.load(state_dir)   # the device plugin's VFs: not netmeta's to hand out
    free = sum(1 for v in vfs if v.index not in taken and v.netdev and v.pci not in kubelet)
    pods = sorted({r["podUID"] for r in records if isinstance(r.get("podUID"), str) and r["podUID"]})
    return PFCount(pf, len(vfs), free, len(taken & {v.index for v in vfs}), False, tuple(pods))


# PFs this process has attached VFs of: the node daemon subscribes (`on_pf_used`), so it counts
# the PFs its networks use (NADs, the cluster network, stand-alone calls) without a hand-made list
_watchers: list = []


def on_pf_used(fn) -> None:
    _watchers.append(fn)


def pf_used(master: str, sysfs_root: str, backend: str, state_dir: str) -> None:
    entry = {"master": master, "sysfsRoot": sysfs_root, "backend": backend, "stateDir": state_dir}
    for fn in list(_watchers):
        with contextlib.suppress(Exception):   # availability must never fail an ADD
            fn(entry)


def pfs_with_records(state_dir: str = "/var/lib/cni/netmeta/sriov") -> list:
    """The PFs that allocation records in `state_dir` name (one entry per PF), e.g. for a daemon
    that restarts while VFs are attached: it keeps counting their PFs."""
    seen: dict = {}
    for rec in Records(state_dir).all():
        if isinstance(rec.get("pf"), str) and rec["pf"] not in seen:
            seen[rec["pf"]] = {"master": rec["pf"], "sysfsRoot": rec.get("sysfsRoot", "/sys"),
                               "backend": rec.get("backend", "netlink"), "stateDir": rec.get("stateDir", state_dir)}
    return list(seen.values())


def discover_pfs(sysfs_root: str = "/sys", include=("*",), exclude=(), backend: str = "netlink",
                 state_dir: str = "/var/lib/cni/netmeta/sriov") -> list:
    """The SR-IOV PFs under `sysfs_root` (class/net/<name>/device/sriov_totalvfs > 0) whose name
    matches an `include` glob and no `exclude` glob, as PF entries for the publisher."""
    import fnmatch
    import os

    from .topology import Topology
    topo = Topology(sysfs_root)
    try:
        names = sorted(os.listdir(os.path.join(sysfs_root, "class", "net")))
    except OSError:
        return []
    out = []
    for name in names:
        if not any(fnmatch.fnmatchcase(name, p) for p in include) or any(fnmatch.fnmatchcase(name, p) for p in exclude):
            continue
        try:
            if topo.totalvfs(name) <= 0:
                continue
        except Exception:   # not a PF (a VF, a veth, no device dir): not ours to count
            continue
        out.append({"master": name, "sysfsRoot": sysfs_root, "backend": backend, "stateDir": state_dir})
    return out
