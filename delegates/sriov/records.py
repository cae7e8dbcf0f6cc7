"""VF allocation records: one file per allocated VF (or PF for pfOnly) under
<stateDir>/<pf>/, written atomically (0600) while holding the node-wide lock. A record is
written BEFORE anything on the device changes and holds the device's original state, so a
DEL, GC or reclaim after a crash at any later step can put everything back.

Every record is validated on read. A damaged one (not a record, wrong fields, a stray name
such as `vf3.old.json`) is set aside — renamed `<name>.damaged.<ns>` — by a reader holding
the node lock, so the rest of the PF keeps working; `netmeta status` and the daemon's
metrics report the files set aside (`aside()`)."""
import contextlib
import os
import re
import time

from cni import files, log

from . import owner

LOCK = ".lock"
NAME_RE = re.compile(r"(?:vf(0|[1-9][0-9]{0,3})|pf)\.json")
ASIDE_RE = re.compile(r"(?P<name>.+)\.(?P<kind>damaged|vanished|reclaimed)\.(?P<ns>[0-9]+)")
STATES = ("allocated", "ready")
KEEP_ASIDE = 20   # per PF: the newest files set aside are kept for the operator


def validate(rec, pf: str, vf: int | None) -> str | None:
    """Why `rec` (parsed JSON of <pf>/<vf>) is not a usable record; None when it is."""
    if not isinstance(rec, dict):
        return f"not a JSON object but {type(rec).__name__}"
    if rec.get("pf") != pf:
        return f"pf is {rec.get('pf')!r}, not {pf!r}"
    if rec.get("vf") != vf or (vf is not None and type(rec["vf"]) is not int):   # not 2.0, not True
        return f"vf is {rec.get('vf')!r}, not {vf!r}"
    for k in ("containerID", "ifname", "netns", "tmpName"):
        if not isinstance(rec.get(k), str) or not rec[k]:
            return f"{k} is {rec.get(k)!r}"
    if rec.get("state") not in STATES:
        return f"state is {rec.get('state')!r}"
    saved = rec.get("saved")
    nd = saved.get("netdev") if isinstance(saved, dict) else None
    if rec.get("userspace") is not None:   # a VF bound to a userspace driver (DPDK) has no netdev
        if not isinstance(rec["userspace"], str) or nd is not None or vf is None:
            return "userspace is malformed"
    elif not isinstance(nd, dict) or not isinstance(nd.get("name"), str) or type(nd.get("mtu")) is not int:
        return "saved.netdev is missing or malformed"
    if vf is not None and not (isinstance(saved, dict) and isinstance(saved.get("table"), dict)):
        return "saved.table is missing or malformed"
    if "owner" in rec and not (isinstance(rec["owner"], dict) and isinstance(rec["owner"].get("token"), str)):
        return "owner is malformed"
    if rec.get("ipam") is not None and not isinstance(rec["ipam"], dict):
        return "ipam is malformed"
    return None


def same(a: dict | None, b: dict | None) -> bool:
    """`a` and `b` are the same allocation (the same operation's record, maybe a later state)."""
    if not a or not b:
        return False
    ta, tb = (a.get("owner") or {}).get("token"), (b.get("owner") or {}).get("token")
    if ta or tb:
        return ta == tb
    return all(a.get(k) == b.get(k) for k in ("containerID", "ifname", "created"))   # older records


class Records:
    def __init__(self, state_dir: str):
        self.dir = state_dir

    def lock(self):
        return files.locked(os.path.join(self.dir, LOCK))

    def path(self, pf: str, vf: int | None) -> str:
        return os.path.join(self.dir, pf, "pf.json" if vf is None else f"vf{vf}.json")

    def read(self, pf: str, vf: int | None, fix: bool = False) -> dict | None:
        """The record, or None when there is none or it is damaged (set aside when `fix`: the
        caller holds the node lock, so no writer is between its read and the rename)."""
        path = self.path(pf, vf)
        try:
            rec = files.read_json(path)
            if rec is None and not os.path.lexists(path):
                return None
            why = validate(rec, pf, vf)   # (a file holding `null` is damaged, not absent)
        except (ValueError, UnicodeDecodeError) as e:
            why = f"not JSON: {e}"
        except OSError as e:
            why = f"unreadable: {e}"
        if why is None:
            return rec
        if fix:
            self.set_aside(pf, os.path.basename(path), "damaged", why)
        return None

    def write(self, rec: dict, durable: bool = True) -> None:
        """`durable=False`: see files.atomic_write (the caller argues why a lost or empty
        record after a power loss is recovered)."""
        rec = dict(rec, updated=time.time())
        files.write_json(self.path(rec["pf"], rec["vf"]), rec, durable=durable)

    def remove(self, pf: str, vf: int | None) -> None:
        files.remove(self.path(pf, vf))

    def set_aside(self, pf: str, name: str, kind: str, why: str) -> str | None:
        """Rename <pf>/<name> to <name>.<kind>.<ns> (kept for the operator, reported by
        `netmeta status`); returns the new name."""
        d = os.path.join(self.dir, pf)
        new = f"{name}.{kind}.{time.time_ns()}"
        try:
            os.rename(os.path.join(d, name), os.path.join(d, new))
        except FileNotFoundError:
            return None
        log.get("sriov").error("VF record %s/%s set aside as %s: %s", pf, name, new, why)
        old = sorted((n for n in os.listdir(d) if ASIDE_RE.fullmatch(n)), key=lambda n: int(n.rsplit(".", 1)[1]))
        for n in old[:-KEEP_ASIDE]:
            files.remove(os.path.join(d, n))
        return new

    def rename_aside(self, pf: str, name: str, new: str) -> None:
        d = os.path.join(self.dir, pf)
        os.rename(os.path.join(d, name), os.path.join(d, new))

    def aside(self, pf: str) -> list:
        """Files set aside on `pf`, oldest first: {file, kind, vf, why}."""
        out = []
        d = os.path.join(self.dir, pf)
        with contextlib.suppress(FileNotFoundError, NotADirectoryError):
            for n in os.listdir(d):
                m = ASIDE_RE.fullmatch(n)
                if not m:
                    continue
                vm = NAME_RE.fullmatch(m["name"])
                vf = int(vm[1]) if vm and vm[1] is not None else None
                why = None
                if m["kind"] == "damaged":
                    try:
                        rec = files.read_json(os.path.join(d, n))
                        why = validate(rec, pf, vf) if vm else "not a record file name"
                    except (ValueError, UnicodeDecodeError) as e:
                        why = f"not JSON: {e}"
                    except OSError as e:
                        why = f"unreadable: {e}"
                out.append({"file": n, "kind": m["kind"], "vf": vf, "why": why, "ns": int(m["ns"])})
        return sorted(out, key=lambda a: a["ns"])

    def report(self, pf: str) -> list:
        """For the operator: the files set aside, then damaged files not set aside yet (`ns` 0;
        the next CNI call or reconcile on the PF sets them aside)."""
        out = self.aside(pf)
        d = os.path.join(self.dir, pf)
        with contextlib.suppress(FileNotFoundError, NotADirectoryError):
            for name in sorted(os.listdir(d)):
                if not name.endswith(".json"):
                    continue
                m = NAME_RE.fullmatch(name)
                vf = None if m is None or m[1] is None else int(m[1])
                why = "not a record file name" if m is None else None
                if m is not None:
                    try:
                        why = validate(files.read_json(os.path.join(d, name)), pf, vf)
                    except (ValueError, UnicodeDecodeError) as e:
                        why = f"not JSON: {e}"
                    except OSError as e:
                        why = f"unreadable: {e}"
                if why:
                    out.append({"file": name, "kind": "damaged", "vf": vf, "why": why, "ns": 0})
        return out

    def of_pf(self, pf: str, fix: bool = False) -> list:
        """The valid records of `pf`. With `fix` (the caller holds the node lock) damaged files
        are set aside and temp files removed: every writer holds the lock, so a temp file seen
        under it is a crashed writer's (no PID check: it would be wrong across PID namespaces)."""
        out = []
        d = os.path.join(self.dir, pf)
        with contextlib.suppress(FileNotFoundError, NotADirectoryError):
            for name in sorted(os.listdir(d)):
                if ".tmp." in name:
                    if fix:
                        files.remove(os.path.join(d, name))
                    continue
                if not name.endswith(".json"):
                    continue
                m = NAME_RE.fullmatch(name)
                if m is None:
                    if fix:
                        self.set_aside(pf, name, "damaged", "not a record file name")
                    continue
                rec = self.read(pf, None if m[1] is None else int(m[1]), fix=fix)
                if rec is not None:
                    out.append(rec)
        return out

    def pfs(self) -> list:
        with contextlib.suppress(FileNotFoundError):
            return sorted(p for p in os.listdir(self.dir)
                          if not p.startswith(".") and os.path.isdir(os.path.join(self.dir, p)))
        return []

    def all(self, fix: bool = False) -> list:
        return [r for pf in self.pfs() for r in self.of_pf(pf, fix)]

    def find(self, container_id: str, ifname: str, fix: bool = False) -> list:
        return [r for r in self.all(fix)
                if r.get("containerID") == container_id and r.get("ifname") == ifname]


def netns_alive(rec: dict) -> bool:
    """A record's pod netns still exists: its path is there and, when the record knows the
    netns identity, it is the same netns (a name reused for a new netns is not)."""
    ns = rec.get("netns")
    if not ns:
        return False
    ident = owner.netns_identity(ns)
    if ident is None:
        return False
    known = (rec.get("owner") or {}).get("netns")
    return not known or known == ident
