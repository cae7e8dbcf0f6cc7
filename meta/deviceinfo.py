"""Device information files of the Network Plumbing WG device-info spec (v1.1.0), as the
network-attachment-definition-client utils Multus v4.1.4 vendors lay them out
(pkg/utils/cniconfig.go): a device plugin writes `<dir>/dp/<resource>-<deviceID>-device.json`
(`/` -> `-`); the meta plugin copies it to the attachment's CNIDeviceInfoFile
`<dir>/cni/<network>-<containerID>_<ifname>` before the delegate's ADD (CopyDeviceInfoForCNIFromDP),
the delegate may write that file itself when no device plugin did, network-status carries it
(`device-info`), DEL removes it (CleanDeviceInfoForCNI)."""
import os

from cni import files, jsonlite, log

_log = log.get("deviceinfo")
KEY = "CNIDeviceInfoFile"


def cni_path(devinfo_dir: str, network: str, container_id: str, ifname: str) -> str:
    return os.path.join(devinfo_dir, "cni", f"{network}-{container_id}_{ifname}".replace("/", "-"))


def dp_path(devinfo_dir: str, resource: str, device_id: str) -> str:
    return os.path.join(devinfo_dir, "dp", f"{resource.replace('/', '-')}-{device_id.replace('/', '-')}-device.json")


def load(path: str) -> dict | None:
    try:
        with open(path, "rb") as f:
            info = jsonlite.loads(f.read())
    except (OSError, ValueError):
        return None
    return info if isinstance(info, dict) else None


def before_add(att) -> None:
    """Copy the device plugin's file for this attachment's device, when there is one."""
    path = att.runtime_config.get(KEY)
    dev = att.runtime_config.get("deviceID")
    if not (path and dev and att.resource_name):
        return
    base = os.path.dirname(os.path.dirname(path))
    info = load(dp_path(base, att.resource_name, dev))
    if info is not None:
        files.atomic_write(path, jsonlite.dumps(info), mode=0o444)


def after_add(att) -> dict | None:
    """The attachment's device-info: the file (the device plugin's copy or the delegate's own),
    else ours from the PCI address, written so DPDK apps in the pod find it the same way."""
    path = att.runtime_config.get(KEY)
    if not path:
        return None
    info = load(path)
    if info is None and att.runtime_config.get("deviceID"):
        info = {"type": "pci", "version": "1.1.0", "pci": {"pci-address": att.runtime_config["deviceID"]}}
        files.atomic_write(path, jsonlite.dumps(info), mode=0o444)
    return info


def clean(att) -> None:
    path = att.runtime_config.get(KEY)
    if path:
        files.remove(path)
