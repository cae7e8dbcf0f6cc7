"""VFs that belong to the kubelet's device plugin, not to netmeta's own allocator.

`<stateDir>/kubelet-devices.json`: {"devices": [PCI addresses], "updated": epoch seconds}, kept
by the netmeta daemon (meta/daemon/devicesync.py) from the kubelet's PodResources API (every device
a device plugin registered -- GetAllocatableResources -- and every device allocated to a pod --
List) plus the device-plugin pools its config names. sriov's allocator (no deviceID) never
takes one of them and node availability does not count them; a deviceID names its VF
explicitly (the kubelet gave it to this pod) and is not affected."""
import os

from cni import files, jsonlite

NAME = "kubelet-devices.json"


def path(state_dir: str) -> str:
    return os.path.join(state_dir, NAME)


def load(state_dir: str) -> frozenset:
    try:
        with open(path(state_dir), "rb") as f:
            data = jsonlite.loads(f.read())
        return frozenset(str(d).lower() for d in data.get("devices") or ())
    except (OSError, ValueError, AttributeError, TypeError):
        return frozenset()


def store(state_dir: str, devices, now: float) -> bool:
    """Write the set when it changed; returns whether it did."""
    devices = sorted({str(d).lower() for d in devices})
    exists = os.path.exists(path(state_dir))
    if (sorted(load(state_dir)) == devices and exists) or (not devices and not exists):
        return False
    files.atomic_write(path(state_dir), jsonlite.dumps({"devices": devices, "updated": now}))
    return True
