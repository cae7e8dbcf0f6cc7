"""`sim` VF-table backend: the PF's VF table as a JSON file inside the fake sysfs tree.

State file <root>/netmeta-sim/<pf>.json (0600, replaced atomically), serialized by flock on
<root>/netmeta-sim/<pf>.lock (the state file itself is replaced on each write, so it cannot
carry the lock). Entries exist for sriov_totalvfs VFs; the valid range is sriov_numvfs, read
from the tree like the kernel reads the driver's count. Initial entries are what a freshly
enabled VF has: zero MAC, no VLAN, no rate limit, spoofchk on, trust off, link state auto.
"""
from __future__ import annotations

import contextlib
import os

from cni import jsonlite
from cni.files import atomic_write, locked, read_json
from delegates.sriov.topology import Topology, TopologyError
from delegates.sriov.vftable import VFState, VFTable, VFTableError, plan_set

# typing.TYPE_CHECKING without importing typing (an exec'd call needs nothing of it): mypy
# takes any `TYPE_CHECKING` as true
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

STATE_DIR = "netmeta-sim"


def state_path(root: str, pf: str) -> str:
    return os.path.join(root, STATE_DIR, f"{pf}.json")


def lock_path(root: str, pf: str) -> str:
    return os.path.join(root, STATE_DIR, f"{pf}.lock")


def flocked(path: str, exclusive: bool = True):
    return locked(path, shared=not exclusive)


def init_state(root: str, pf: str, totalvfs: int) -> None:
    """(Re)write the state file with `totalvfs` fresh VFs."""
    os.makedirs(os.path.join(root, STATE_DIR), mode=0o700, exist_ok=True)
    with flocked(lock_path(root, pf)):
        _write(root, pf, [VFState()] * totalvfs)


def _write(root: str, pf: str, vfs: list[VFState]) -> None:
    doc = {"pf": pf, "vfs": [s.to_dict() for s in vfs]}
    # the NIC's registers: hardware keeps them in no file, and a power loss takes the sim's
    # veths and netns with it (the sim is created again): atomic, not fsync'd
    atomic_write(state_path(root, pf), jsonlite.dumps(doc) + "\n", durable=False)


class SimVFTable(VFTable):
    backend = "sim"

    def __init__(self, pf: str, sysfs_root: str):
        # Nothing is read here: the table must open while the PF netdev is away (pfOnly moved it
        # into a pod), which is exactly when the fake tree needs refreshing.
        super().__init__(pf, os.path.abspath(sysfs_root))
        self._topo = Topology(self.sysfs_root)

    def _count(self, name: str) -> int:
        try:
            return self._topo.totalvfs(self.pf) if name == "total" else self._topo.numvfs(self.pf)
        except TopologyError as e:
            raise VFTableError("master", f"failed to read VF table of {self.pf}: "
                                         f"{e.message}") from None

    def num_vfs(self) -> int:
        return self._count("num")

    def _load(self) -> list[VFState]:
        total = self._count("total")
        path = state_path(self.sysfs_root, self.pf)
        if not os.path.exists(path):
            # a fake tree built without `netmeta sim create` (unit tests): fresh VFs
            return [VFState()] * total
        try:
            doc: dict[str, Any] = read_json(path)
            vfs = [VFState.from_dict(d) for d in doc["vfs"]]
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise VFTableError("master", f"failed to read VF table of {self.pf}: {e}") from None
        # VFs beyond the stored ones (tree grown by hand) read as fresh VFs
        return vfs + [VFState()] * max(0, total - len(vfs))

    def _lock(self, exclusive: bool = True) -> contextlib.AbstractContextManager[None]:
        os.makedirs(os.path.join(self.sysfs_root, STATE_DIR), mode=0o700, exist_ok=True)
        return flocked(lock_path(self.sysfs_root, self.pf), exclusive)

    def get(self, vf: int) -> VFState:
        numvfs = self.num_vfs()
        if isinstance(vf, bool) or not isinstance(vf, int) or not 0 <= vf < numvfs:
            raise VFTableError("vf", f"failed to get vf {vf}: no such VF "
                                     f"(sriov_numvfs is {numvfs})")
        with self._lock(exclusive=False):
            return self._load()[vf]

    def get_all(self) -> list[VFState]:
        with self._lock(exclusive=False):
            return self._load()[:self.num_vfs()]

    def _set(self, vf: int, given: dict[str, Any]) -> VFState:
        with self._lock():
            vfs = self._load()
            numvfs = self.num_vfs()
            current = vfs[vf] if isinstance(vf, int) and 0 <= vf < len(vfs) else VFState()
            state, groups = plan_set(current, vf, min(numvfs, len(vfs)), given)
            if groups:
                vfs[vf] = state
                _write(self.sysfs_root, self.pf, vfs)
            return state
