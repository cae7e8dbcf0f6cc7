"""The hardware view the plugin works on: topology (sysfs) + the PF's VF table, chosen by
config (`sysfsRoot`, `backend`). Everything else in the plugin is the same for a real NIC and
for the simulated one."""
import contextlib

from cni.errors import DEVICE_NOT_FOUND, VF_CONFIG_FAILED, CNIError, config_error
from delegates import registry

from .topology import Topology
from .vftable import VFTableError, open_vftable

# drivers that leave a VF without a netdev, for DPDK: sriov-cni v2.8 pkg/utils UserspaceDrivers
USERSPACE_DRIVERS = ("vfio-pci", "uio_pci_generic", "igb_uio")


def vf_error(e: VFTableError, what: str) -> CNIError:
    """A VF-table or topology failure as a CNI error naming the config field."""
    if e.field in ("master", "deviceID", "vf") and "find" in e.message:
        return CNIError(DEVICE_NOT_FOUND, f"{what}: {e.message}", f"field={e.field}")
    return CNIError(VF_CONFIG_FAILED, f"{what}: invalid {e.field!r}: {e.message}", f"field={e.field}")


class Device:
    def __init__(self, sysfs_root: str, backend: str):
        self.root, self.backend = sysfs_root, backend
        # the backend's view of sysfs: the kernel's is always live; the sim's refreshes its
        # fake tree itself before each read of netdev names (an unknown backend fails at table())
        self.topo: Topology = (registry.sriov_backend(backend, "topology") or Topology)(sysfs_root)

    @contextlib.contextmanager
    def table(self, pf: str):
        try:
            with open_vftable(self.backend, pf, self.root) as t:
                yield t
        except VFTableError as e:
            raise vf_error(e, f"failed to configure VF table of {pf}") from None

    def require_pf(self, pf: str) -> None:
        if not self.topo.pf_exists(pf):
            raise CNIError(DEVICE_NOT_FOUND, f"failed to find PF {pf}",
                           f"no {self.root}/class/net/{pf}/device (field=master)")

    def locate(self, device_id: str, master: str | None) -> tuple[str, int]:
        try:
            pf, vf = self.topo.vf_from_pci(device_id)
        except VFTableError as e:
            raise vf_error(e, f"failed to find VF {device_id}") from None
        if master and master != pf:
            raise config_error("deviceID", f"{device_id} is a VF of {pf}, not of master {master}")
        return pf, vf

    def userspace_driver(self, pf: str, vf: int) -> str | None:
        """The VF's driver when it is a userspace one (sriov-cni HasDpdkDriver), else None."""
        try:
            drv = self.topo.driver(self.topo.vf_pci(pf, vf))
        except (VFTableError, OSError):
            return None
        return drv if drv in USERSPACE_DRIVERS else None
