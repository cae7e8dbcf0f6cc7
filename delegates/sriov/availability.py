"""Free/total VFs per PF: what node availability (the `sriov/vfCount` annotation and the
`sriov/freeVFAvailable` label) is computed from. A VF is free when it exists (index <
sriov_numvfs), has no allocation record, and its netdev is in the host netns."""
from dataclasses import dataclass

from .device import Device
from .records import Records


@dataclass(frozen=True)
class PFCount:
    pf: str
    total: int
    free: int
    allocated: int
    pf_attached: bool   # the PF itself is in a pod (pfOnly): none of its VFs is usable
    pods: tuple = ()    # UIDs of the pods holding its VFs (records carrying K8S_POD_UID), sorted

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
    dev.sync(pf)
    records = recs.of_pf(pf)
    taken = {r["vf"] for r in records}
    vfs = dev.topo.vfs(pf)
    free = sum(1 for v in vfs if v.index not in taken and v.netdev)
    pods = sorted({r["podUID"] for r in records if isinstance(r.get("podUID"), str) and r["podUID"]})
    return PFCount(pf, len(vfs), free, len(taken & {v.index for v in vfs}), False, tuple(pods))
