"""The DEL cache: what an ADD attaches, written atomically (0600) BEFORE the first delegate
runs (state "adding", listing every attachment) and written again once all have succeeded
(state "ready", with their results); not per delegate: every delegate's DEL is idempotent, so
DEL can undo everything from it alone, without today's annotations, NADs or even the pod
(meta/engine.py add)."""
import os

from cni import files


def path(cni_dir: str, container_id: str, ifname: str) -> str:
    return os.path.join(cni_dir, f"{container_id}-{ifname}.json")


def write(cni_dir: str, entry: dict, replacing: bool = False) -> None:
    """`replacing`: this ADD's own earlier entry is there, synced; after a power loss either
    version is whole and DEL undoes the attachments from either, so the directory is not synced
    again (the "ready" write: one fsync fewer per ADD)."""
    files.write_json(path(cni_dir, entry["containerID"], entry["ifname"]), entry, sync_dir=not replacing)


def read(cni_dir: str, container_id: str, ifname: str):
    """The entry; None when missing; raises ValueError when corrupt."""
    return files.read_json(path(cni_dir, container_id, ifname))


def remove(cni_dir: str, container_id: str, ifname: str) -> None:
    files.remove(path(cni_dir, container_id, ifname))
    prefix = f"{container_id}-{ifname}.json.tmp."
    for name in os.listdir(cni_dir) if os.path.isdir(cni_dir) else ():   # a crash between write and rename
        if name.startswith(prefix):
            files.stale_tmp(cni_dir, name)


def entries(cni_dir: str):
    """(containerID, ifname, entry or None if corrupt) of every cache file."""
    if not os.path.isdir(cni_dir):
        return
    for name in sorted(os.listdir(cni_dir)):
        if ".tmp." in name:
            files.stale_tmp(cni_dir, name)
            continue
        if not name.endswith(".json"):
            continue
        try:
            e = files.read_json(os.path.join(cni_dir, name))
        except ValueError:
            e = None
        if isinstance(e, dict) and e.get("containerID") and e.get("ifname"):
            cid, ifname = e["containerID"], e["ifname"]   # IDs and ifnames may both contain "-"
        else:
            cid, _, ifname = name[:-5].rpartition("-")
        yield cid, ifname, e
