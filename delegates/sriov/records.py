"""VF allocation records: one file per allocated VF (or PF for pfOnly) under
<stateDir>/<pf>/, written atomically (0600) while holding the node-wide lock. A record is
written BEFORE anything on the device changes and holds the device's original state, so a
DEL, GC or reclaim after a crash at any later step can put everything back."""
import contextlib
import os
import time

from cni import files

LOCK = ".lock"


class Records:
    def __init__(self, state_dir: str):
        self.dir = state_dir

    def lock(self):
        return files.locked(os.path.join(self.dir, LOCK))

    def path(self, pf: str, vf: int | None) -> str:
        return os.path.join(self.dir, pf, "pf.json" if vf is None else f"vf{vf}.json")

    def read(self, pf: str, vf: int | None) -> dict | None:
        try:
            return files.read_json(self.path(pf, vf))
        except ValueError:  # torn files cannot happen (atomic writes); a corrupt one is foreign
            return {"pf": pf, "vf": vf, "corrupt": True}

    def write(self, rec: dict) -> None:
        rec = dict(rec, updated=time.time())
        files.write_json(self.path(rec["pf"], rec["vf"]), rec)

    def remove(self, pf: str, vf: int | None) -> None:
        files.remove(self.path(pf, vf))

    def of_pf(self, pf: str) -> list:
        out = []
        with contextlib.suppress(FileNotFoundError):
            d = os.path.join(self.dir, pf)
            for name in sorted(os.listdir(d)):
                if ".tmp." in name:
                    files.stale_tmp(d, name)
                elif name.endswith(".json"):
                    vf = None if name == "pf.json" else int(name[2:-5])
                    rec = self.read(pf, vf)
                    if rec is not None:
                        out.append(rec)
        return out

    def all(self) -> list:
        out = []
        with contextlib.suppress(FileNotFoundError):
            for pf in sorted(os.listdir(self.dir)):
                if os.path.isdir(os.path.join(self.dir, pf)):
                    out.extend(self.of_pf(pf))
        return out

    def find(self, container_id: str, ifname: str) -> list:
        return [r for r in self.all()
                if r.get("containerID") == container_id and r.get("ifname") == ifname]


def netns_alive(rec: dict) -> bool:
    """A record's pod netns still exists (its bind mount / path is there)."""
    ns = rec.get("netns")
    return bool(ns) and os.path.exists(ns)
