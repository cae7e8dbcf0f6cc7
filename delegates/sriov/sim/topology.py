"""The sim backend's view of sysfs: the product's Topology over the fake tree, refreshed before
every read of netdev names (where a VF's netdev is, under which name).

The kernel's sysfs is live: `<pci>/net/<name>` changes the moment a VF moves or is renamed. The
fake tree is files, so this subclass runs the NIC's refresh (nic.refresh: follow renames and
moves, revive VFs whose pod netns died) first, which is what makes the product path free of
any simulator hook. PCI layout, counts and drivers do not depend on netdevs: read as they are.

Only what is read is refreshed: `vf_netdev(pf, n)` refreshes VF n alone (nic.refresh_port:
one ioctl when it is where the records say, so the product's read under its node lock takes
no RTNL in a burst of other pods' netns moves); `vfs(pf)` reads every VF and refreshes them
all. A VF that changed and was not read is seen by the next read of it or of all: the tree is
as true as a sysfs read a moment earlier.

A VF's pod-side name is learnt by the first refresh that looks at it while it is in its pod
(`vfs`: the daemon's availability count after every ADD, `netmeta sim refresh`; or a read of
that VF); one whose netns dies before any comes back as dev<ifindex>, as a real VF whose name
is taken does. The product finds it by its PCI address either way.
"""
from __future__ import annotations

from delegates.sriov.topology import Topology, VFInfo, valid_ifname

from . import nic


class SimTopology(Topology):
    def _refresh(self, pf: str, port: str | None = None) -> None:
        # a hand-made tree (unit tests) has no NIC record and no netdevs: read as it is
        if valid_ifname(pf) and nic.is_sim_nic(self.root, pf):
            if port is None:
                nic.refresh(self.root, pf)
            else:
                nic.refresh_port(self.root, pf, port)

    def vf_netdev(self, pf: str, n: int) -> str | None:
        self._refresh(pf, str(n))      # only VF n is read: only VF n must be true
        return super().vf_netdev(pf, n)

    def vfs(self, pf: str) -> list[VFInfo]:
        self._refresh(pf)
        return super().vfs(pf)
