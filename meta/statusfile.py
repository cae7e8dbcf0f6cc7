"""Kubernetes-free network-status: one file per pod sandbox,

  <statusDir>/<namespace>/<pod name>/<pod UID>_<container ID>.json

keyed by the pod's UID and the sandbox's container ID, not by the pod's name alone: a pod
deleted and re-created under the same name (a StatefulSet's web-0), or a sandbox re-created for
the same pod, overlaps its predecessor, whose late DEL must remove only its own file. The live
pod's file is the one with its UID (the newest one when the runtime passed no UID). Namespace
and name go through podref.filename (podman passes any container name as K8S_POD_NAME)."""
import contextlib
import os

from cni import files

from .podref import filename

# Kubernetes UIDs are UUIDs; never a path: 1..64 of these (as re.fullmatch(r"[A-Za-z0-9-]{1,64}"))
_UID_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-")


def path(status_dir: str, pod: dict, container_id: str) -> str:
    uid = pod.get("uid") or ""
    uid = uid if 0 < len(uid) <= 64 and _UID_CHARS.issuperset(uid) else "-"
    return os.path.join(status_dir, filename(pod["namespace"]), filename(pod["name"]), f"{uid}_{container_id}.json")


def remove(status_dir: str, pod: dict, container_id: str) -> None:
    p = path(status_dir, pod, container_id)
    files.remove(p)
    with contextlib.suppress(OSError):   # the pod's directory, once its last sandbox is gone
        os.rmdir(os.path.dirname(p))
