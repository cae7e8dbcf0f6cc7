"""VF allocation records: one file per allocated VF (or PF for pfOnly) under
<stateDir>/<pf>/, written atomically (0600) while holding the node-wide lock. A record is
written BEFORE anything on the device changes and holds the device's original state, so a
DEL, GC or reclaim after a crash at any later step can put everything back.

Every record is validated on read. A damaged one (not a record, wrong fields, a stray name
such as `vf3.old.json`) is set aside — renamed `<name>.damaged.<ns>` — by a reader holding
the node lock, so the rest of the PF keeps working; `netmeta status` and the daemon's
metrics report the files set aside (`aside()`).

Parsed records are cached per process (see `_Cache`): a long-lived process (the node daemon)
re-reads only the files that changed since it last read them."""
import _thread
import collections
import contextlib
import os
import time

from cni import files, jsonlite, log

from . import owner

LOCK = ".lock"
ASIDE_KINDS = ("damaged", "vanished", "reclaimed")
STATES = ("allocated", "ready")
KEEP_ASIDE = 20   # per PF: the newest files set aside are kept for the operator


def parse_name(name: str) -> tuple | None:
    """(VF index, or None for the PF's own record,) of a record file name: `vf<N>.json` (N:
    0..9999, no leading zero) or `pf.json`; None for any other name."""
    if name == "pf.json":
        return (None,)
    n = name[2:-5] if name.startswith("vf") and name.endswith(".json") else ""
    if 0 < len(n) <= 4 and n.isascii() and n.isdigit() and (n == "0" or n[0] != "0"):
        return (int(n),)
    return None


def parse_aside(name: str) -> tuple | None:
    """(file name, kind, ns) of a file set aside, `<name>.<kind>.<ns>` (kind: ASIDE_KINDS, ns:
    decimal digits, no newline anywhere); None for any other name."""
    parts = name.rsplit(".", 2)
    if (len(parts) == 3 and parts[0] and parts[1] in ASIDE_KINDS and parts[2].isascii() and parts[2].isdigit()
            and "\n" not in parts[0]):
        return parts[0], parts[1], parts[2]
    return None


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


class Frozen(dict):
    """A JSON object of a record as read from disk: shared by every reader of the cache, so it
    is read-only (copy it, e.g. `dict(rec, state=...)`, to change it). A deep copy or a pickle
    gives plain dicts."""
    def _read_only(self, *_a, **_k):
        raise TypeError("a VF record read from disk is read-only: change a copy (dict(rec))")

    __setitem__ = __delitem__ = __ior__ = _read_only
    update = pop = popitem = clear = setdefault = _read_only

    def __deepcopy__(self, memo):
        import copy
        return {k: copy.deepcopy(v, memo) for k, v in self.items()}

    def __reduce__(self):
        return dict, (dict(self),)


_set = dict.__setitem__   # (a Frozen's own __setitem__ refuses)


def _frozen(v):
    """`v` (parsed JSON) with every object a Frozen, as json's object_hook=Frozen gives (only
    objects and arrays are walked: with cni/jsonlite's parse, ~9 us a record, the hook's ~7)."""
    if type(v) is dict:
        f = Frozen(v)
        for k, x in v.items():
            if type(x) is dict or type(x) is list:
                _set(f, k, _frozen(x))
        return f
    if type(v) is list:
        return [_frozen(x) if type(x) is dict or type(x) is list else x for x in v]
    return v


def _key(st: os.stat_result) -> tuple:
    return st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns


class _Cache:
    """Parsed, valid records by file: {PF dir: {file name: (stat key, record)}}, shared by every
    Records of this process (the daemon serves each request with a new one).

    Why it can be trusted across processes: every read of a PF lists its directory (so a record
    another process created or removed is seen at once) and stats each record file; a cached
    record is used only while the file's (device, inode, size, mtime, ctime) are those of the
    file it was parsed from (opened once: fstat and read on one descriptor). Writers replace a
    record by rename (a new inode) and an operator's in-place edit changes mtime and ctime, so
    any write after the cache entry was made changes the key -- with one gap, which
    the racy-timestamp rule closes: file times come from a clock that ticks (the kernel's
    coarse clock, a few ms; 1 s on some file systems), so a second write within the same tick
    as the one we parsed could leave every field of the key equal (an in-place edit of the same
    size, or a rename whose new file reuses the freed inode). So a file is cached only once
    its times are older than one tick at the moment it was read (RACY_NS; 2 s when the
    times have no sub-second part): any later write then gets a later time. A file written
    just now is simply read again next time. (A wall clock stepped backwards past a record's
    time could in theory recreate an equal key; ctime cannot be set by user space.)
    Damaged files are never cached."""
    RACY_NS = 50_000_000          # > the kernel's coarse clock tick (HZ >= 100: <= 10 ms)
    COARSE_RACY_NS = 2_000_000_000   # file systems with 1 s (or FAT's 2 s) times
    MAX_DIRS = 32                 # PF directories kept (LRU); a daemon manages a few PFs

    def __init__(self):
        self._dirs: collections.OrderedDict = collections.OrderedDict()
        self._lock = _thread.allocate_lock()
        self.hits = self.misses = 0

    def get(self, d: str) -> dict:
        with self._lock:
            entries = self._dirs.get(d)
            if entries is not None:
                self._dirs.move_to_end(d)
            return dict(entries or {})

    def put(self, d: str, entries: dict) -> None:
        """Replace the entries of `d` (a reader's complete view of it: names gone are dropped).
        Concurrent readers may store views of different ages; every entry is checked against
        its file before use, so an older view is only less complete, never wrong."""
        with self._lock:
            self._dirs[d] = entries
            self._dirs.move_to_end(d)
            while len(self._dirs) > self.MAX_DIRS:
                self._dirs.popitem(last=False)

    @classmethod
    def settled(cls, st: os.stat_result, now_ns: int) -> bool:
        """The file's times are older than one clock tick at `now_ns`: a later write changes them."""
        t = max(st.st_mtime_ns, st.st_ctime_ns)
        racy = cls.COARSE_RACY_NS if t % 1_000_000_000 == 0 else cls.RACY_NS
        return now_ns - t > racy


CACHE = _Cache()


class Records:
    def __init__(self, state_dir: str):
        self.dir = state_dir

    def lock(self):
        return files.locked(os.path.join(self.dir, LOCK))

    def path(self, pf: str, vf: int | None) -> str:
        return os.path.join(self.dir, pf, "pf.json" if vf is None else f"vf{vf}.json")

    def read(self, pf: str, vf: int | None, fix: bool = False) -> dict | None:
        """The record (read-only, see Frozen), or None when there is none or it is damaged (set
        aside when `fix`: the caller holds the node lock, so no writer is between its read and
        the rename). Always read from the file (the cache serves of_pf)."""
        return self._read(pf, vf, fix)[0]

    def _read(self, pf: str, vf: int | None, fix: bool) -> tuple:
        """(record or None, (stat key, read at) of the file it was parsed from, or None)."""
        path = self.path(pf, vf)
        seen = None
        try:
            try:
                fd = files.open_state(path, os.O_RDONLY)
            except FileNotFoundError:
                return None, None
            with os.fdopen(fd, "rb") as f:
                st = os.fstat(fd)
                seen = (_key(st), st, time.time_ns())
                rec = _frozen(jsonlite.loads(f.read()))
            why = validate(rec, pf, vf)   # (a file holding `null` is damaged, not absent)
        except (ValueError, UnicodeDecodeError) as e:
            why = f"not JSON: {e}"
        except OSError as e:
            why = f"unreadable: {e}"
        if why is None:
            return rec, seen
        if fix:
            self.set_aside(pf, os.path.basename(path), "damaged", why)
        return None, None

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
        old = sorted((n for n in os.listdir(d) if parse_aside(n)), key=lambda n: int(n.rsplit(".", 1)[1]))
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
                m = parse_aside(n)
                if not m:
                    continue
                base, kind, ns = m
                vm = parse_name(base)
                vf = vm[0] if vm else None
                why = None
                if kind == "damaged":
                    try:
                        rec = files.read_json(os.path.join(d, n))
                        why = validate(rec, pf, vf) if vm else "not a record file name"
                    except (ValueError, UnicodeDecodeError) as e:
                        why = f"not JSON: {e}"
                    except OSError as e:
                        why = f"unreadable: {e}"
                out.append({"file": n, "kind": kind, "vf": vf, "why": why, "ns": int(ns)})
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
                m = parse_name(name)
                vf = None if m is None else m[0]
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
            names = sorted(os.listdir(d))   # listed every time: see _Cache
            known, fresh = CACHE.get(d), {}
            for name in names:
                if ".tmp." in name:
                    if fix:
                        files.remove(os.path.join(d, name))
                    continue
                if not name.endswith(".json"):
                    continue
                m = parse_name(name)
                if m is None:
                    if fix:
                        self.set_aside(pf, name, "damaged", "not a record file name")
                    continue
                hit = known.get(name)
                if hit is not None:
                    try:
                        same_file = _key(os.stat(os.path.join(d, name), follow_symlinks=False)) == hit[0]
                    except FileNotFoundError:   # removed since the listing (a DEL not under our lock)
                        continue
                    except OSError:
                        same_file = False
                    if same_file:
                        CACHE.hits += 1
                        fresh[name] = hit
                        out.append(hit[1])
                        continue
                CACHE.misses += 1
                rec, seen = self._read(pf, m[0], fix)
                if rec is not None:
                    out.append(rec)
                    if seen is not None and _Cache.settled(seen[1], seen[2]):
                        fresh[name] = (seen[0], rec)
            CACHE.put(d, fresh)
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
