"""The kubelet device manager's checkpoint (kubelet_internal_checkpoint), read when the
PodResources socket is absent, as Multus v4.1.4 does (pkg/checkpoint getPodEntries /
GetPodResourceMap): entries of the pod's UID, devices per resource.

Format (pkg/kubelet/cm/devicemanager/checkpoint): {"Data": {"PodDeviceEntries": [{"PodUID",
"ContainerName", "ResourceName", "DeviceIDs": {"<NUMA node>": [ids]}, "AllocResp"}],
"RegisteredDevices": {...}}, "Checksum": n}; kubelets before 1.20 wrote DeviceIDs as a list."""
import json

from cni.errors import TRY_AGAIN, CNIError


def pod_devices(path: str, uid: str | None) -> dict:
    if not uid:
        raise CNIError(TRY_AGAIN, "cannot find the pod's devices in the kubelet checkpoint",
                       "no K8S_POD_UID in CNI_ARGS (the checkpoint is keyed by pod UID)")
    try:
        with open(path, "rb") as f:
            data = json.load(f)
        entries = data["Data"]["PodDeviceEntries"] or []
        out: dict = {}
        for e in entries:
            if e["PodUID"] != uid:
                continue
            ids = e["DeviceIDs"] or {}
            if isinstance(ids, dict):   # per NUMA node; Go's map order is random, ours is by node
                if not all(isinstance(v, (list, type(None))) for v in ids.values()):
                    raise TypeError(f"entry of pod {uid}: DeviceIDs per NUMA node are not lists")
                ids = [d for node in sorted(ids, key=_node) for d in ids[node] or []]
            res = e["ResourceName"]
            if not isinstance(res, str) or not isinstance(ids, list) or not all(isinstance(d, str) for d in ids):
                raise TypeError(f"entry of pod {uid}: not a resource name and device IDs")
            out.setdefault(res, []).extend(ids)
        return out
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
        raise CNIError(TRY_AGAIN, f"failed to read the kubelet device checkpoint {path}",
                       f"{type(e).__name__}: {e}") from None


def _node(key: str):
    try:
        return (0, int(key))
    except ValueError:
        return (1, key)
