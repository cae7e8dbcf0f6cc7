"""Per-node reservations of fixed addresses: one file per address under
<dataDir>/<network>/, named by the address, holding its owner (container ID + ifname),
written atomically (0600) under the network's flock. Owners are the unit of release (DEL)
and of garbage collection (GC).

A reservation is validated on every read. A damaged one (not JSON, not an object naming its
owner's containerID and ifname) is moved aside to <network>/.quarantine/<address>, logged, and
reads as a `damaged` owner: the address stays held (its real owner may still use it) until GC
(CNI GC, or `netmeta gc`) releases it, instead of blocking it for ever."""
import contextlib
import os

from cni import files, jsonlite, log

LOCK = ".lock"
QUARANTINE = ".quarantine"
_log = log.get("fixipam")


def valid(rec) -> bool:
    return (isinstance(rec, dict) and isinstance(rec.get("containerID"), str) and bool(rec["containerID"])
            and isinstance(rec.get("ifname"), str) and bool(rec["ifname"]))


class Store:
    def __init__(self, data_dir: str, network: str):
        self.dir = os.path.join(data_dir, network)

    def lock(self):
        return files.locked(os.path.join(self.dir, LOCK))

    def _path(self, key: str) -> str:
        return os.path.join(self.dir, key)

    def _quarantined(self, key: str) -> str:
        return os.path.join(self.dir, QUARANTINE, key)

    def owner(self, key: str) -> dict | None:
        """The reservation's owner; None when free; {"damaged": <where>, ...} when damaged."""
        q = self._quarantined(key)
        if os.path.lexists(q):
            return _damaged(q)
        try:
            rec = files.read_json(self._path(key))
        except ValueError as e:
            return self._quarantine(key, f"not JSON ({e})")
        if rec is None or valid(rec):
            return rec
        return self._quarantine(key, "not a reservation object with containerID and ifname")

    def _quarantine(self, key: str, why: str) -> dict:
        """Move a damaged reservation aside (kept for the operator) and report it."""
        q = self._quarantined(key)
        files.makedirs(os.path.dirname(q))
        try:
            os.replace(self._path(key), q)
        except FileNotFoundError:   # moved by a concurrent reader (CHECK reads without the lock)
            pass
        _log.error("reservation %s is damaged (%s): moved to %s; the address stays held until GC "
                   "(CNI GC or `netmeta gc`) finds no valid attachment for it", self._path(key), why, q)
        return _damaged(q)

    def reserve(self, key: str, container_id: str, ifname: str) -> None:
        files.write_json(self._path(key), {"containerID": container_id, "ifname": ifname})

    def release(self, key: str) -> None:
        files.remove(self._path(key))
        files.remove(self._quarantined(key))

    def mtime(self, key: str) -> float | None:
        """When the reservation (or its quarantined copy) was written; None when gone."""
        for p in (self._path(key), self._quarantined(key)):
            with contextlib.suppress(FileNotFoundError):
                return os.lstat(p).st_mtime
        return None

    def entries(self):
        """(key, owner) for every reservation of this network, quarantined ones included."""
        seen = set()
        with contextlib.suppress(FileNotFoundError):
            for name in os.listdir(self.dir):
                if name.startswith(".") or ".tmp." in name:
                    files.stale_tmp(self.dir, name)
                    continue
                seen.add(name)
                yield name, self.owner(name)
        with contextlib.suppress(FileNotFoundError):
            for name in os.listdir(os.path.join(self.dir, QUARANTINE)):
                if name not in seen:
                    yield name, _damaged(self._quarantined(name))

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


def _damaged(where: str) -> dict:
    return {"containerID": "?", "ifname": "?", "damaged": where}


def is_owner(rec: dict | None, container_id: str, ifname: str) -> bool:
    if not rec:
        return False
    return rec.get("containerID") == container_id and rec.get("ifname") == ifname


def describe(rec: dict | None) -> str:
    return jsonlite.dumps(rec, sort_keys=True)[:200] if rec else "unknown owner"
