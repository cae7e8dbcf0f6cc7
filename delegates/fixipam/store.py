"""Per-node reservations of fixed addresses: one file per address under
<dataDir>/<network>/, named by the address, holding its owner (container ID + ifname),
written atomically (0600) under the network's flock. Owners are the unit of release (DEL)
and of garbage collection (GC)."""
import contextlib
import json
import os

from cni import files

LOCK = ".lock"


class Store:
    def __init__(self, data_dir: str, network: str):
        self.dir = os.path.join(data_dir, network)

    def lock(self):
        return files.locked(os.path.join(self.dir, LOCK))

    def _path(self, key: str) -> str:
        return os.path.join(self.dir, key)

    def owner(self, key: str) -> dict | None:
        try:
            rec = files.read_json(self._path(key))
        except ValueError:
            return {"containerID": "?", "ifname": "?", "corrupt": True}
        return rec if isinstance(rec, dict) else None

    def reserve(self, key: str, container_id: str, ifname: str) -> None:
        files.write_json(self._path(key), {"containerID": container_id, "ifname": ifname})

    def release(self, key: str) -> None:
        files.remove(self._path(key))

    def entries(self):
        """(key, owner) for every reservation of this network."""
        with contextlib.suppress(FileNotFoundError):
            for name in os.listdir(self.dir):
                if name.startswith(".") or ".tmp." in name:
                    files.stale_tmp(self.dir, name)
                    continue
                yield name, self.owner(name)

    def release_owner(self, container_id: str, ifname: str) -> list:
        gone = []
        for key, rec in list(self.entries()):
            if rec and rec.get("containerID") == container_id and rec.get("ifname") == ifname:
                self.release(key)
                gone.append(key)
        return gone

    def owned_by(self, container_id: str, ifname: str) -> list:
        return [k for k, r in self.entries()
                if r and r.get("containerID") == container_id and r.get("ifname") == ifname]


def is_owner(rec: dict | None, container_id: str, ifname: str) -> bool:
    return bool(rec) and rec.get("containerID") == container_id and rec.get("ifname") == ifname


def describe(rec: dict | None) -> str:
    return json.dumps(rec, sort_keys=True)[:200] if rec else "unknown owner"
