"""The device-info file (Network Plumbing WG device-info spec v1.1.0) sriov writes for the VF it
attached when the runtime hands it a `CNIDeviceInfoFile` (capability) and no device plugin's
copy is there already (Multus copies the device plugin's first). A userspace-bound VF (DPDK)
also names its driver (`driver`, netmeta's addition; JSON readers of the spec ignore it)."""
import os

from cni import files, jsonlite, log

_log = log.get("sriov")


def write(runtime: dict, pci: str, pf_pci: str | None, driver: str | None) -> None:
    path = runtime.get("CNIDeviceInfoFile") if isinstance(runtime, dict) else None
    if not isinstance(path, str) or not path.startswith("/") or os.path.exists(path):
        return
    info = {"pci-address": pci}
    if pf_pci:
        info["pf-pci-address"] = pf_pci
    if driver:
        info["driver"] = driver
    # 0444 like the spec's writers: the pod reads it through a host path
    files.atomic_write(path, jsonlite.dumps({"type": "pci", "version": "1.1.0", "pci": info}), mode=0o444)
    _log.info("wrote device-info %s for %s", path, pci)
