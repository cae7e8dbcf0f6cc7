"""Node VF availability publisher (DESIGN.md "Node VF availability"), owned by the node daemon.

What the node shows (one node, found by name; never a LIST of nodes):
  annotation `sriov/vfCount`          free VFs over all managed PFs, a decimal string ("5")
  annotation `sriov/vfDetail`         per-PF JSON, compact with sorted keys:
                                      {"<pf>":{"allocated":3,"free":5,"pfAttached":false,
                                               "pods":["<uid>",...],"total":8}}
                                      `pods`: UIDs of the pods holding its VFs (the scheduler
                                      extender reconciles its placements by them);
                                      a PF that cannot be read counts 0 and carries "error"
  label      `sriov/freeVFAvailable`  "true" only while vfCount > 0; removed (null) at 0

How it is kept right, by one background thread:
  - `notify()` (after every ADD/DEL/GC) only marks the state dirty: cheap, non-blocking. The
    first notify opens a coalescing window (default 0.2 s); at its end the VFs are counted once
    and, if the result differs from what the node is known to hold, ONE merge PATCH sends only
    the keys that differ. A burst of notifies inside the window costs one count and <= 1 PATCH.
  - start-up reconciles: one GET of the node gives what it holds (after a crash or restart
    nothing is re-sent when it is already right); then the VFs are counted.
  - every `period` seconds (default 30) the VFs are counted again, so a change made outside
    netmeta (sriov_numvfs, a VF netdev that left the host) shows up; equal counts send nothing.
    Every `node_resync` seconds (default 300; None: never) that reconcile also re-reads the
    node, so a value someone else overwrote is put back.
  - a failed write (409, 5xx, connection refused, timeout, 403 ...) is retried with exponential
    backoff and jitter until it succeeds; what the node holds is then unknown, so the retry
    sends every key. notify() never waits for any of it.

Sinks: the Kubernetes node (an object with `get_node(name) -> dict` and `patch_node(name,
body)`, i.e. `meta.kube.api.Kube`), or, Kubernetes-free, `status_file`: the same state as JSON
`{"annotations": {...}, "labels": {...}}`, written atomically (0600).
"""
from __future__ import annotations

import json
import random
import threading
import time
from typing import NotRequired, TypedDict

from cni import files, log
from delegates.sriov.availability import pf_count
from meta.kube.nodekeys import AVAILABLE_LABEL, COUNT_ANNOTATION, DETAIL_ANNOTATION

_log = log.get("nodestatus")

OWNED = {"annotations": (COUNT_ANNOTATION, DETAIL_ANNOTATION), "labels": (AVAILABLE_LABEL,)}
DEFAULT_STATE_DIR = "/var/lib/cni/netmeta/sriov"


def _dumps(obj) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"))


# ---------------------------------------------------------------- pure state functions

class PFDetail(TypedDict):
    """One PF's entry in count_pfs()'s detail (and the status file's)."""
    total: int
    free: int
    allocated: int
    pfAttached: bool
    pods: list
    error: NotRequired[str]     # the PF could not be read: it counts 0


def count_pfs(pfs: list[dict]) -> tuple[int, dict[str, PFDetail]]:
    """(free VFs over all PFs, {pf: {total, free, allocated, pfAttached[, error]}}). A PF that
    cannot be read (gone, not SR-IOV, unreadable state) counts 0 and says why."""
    free = 0
    detail: dict[str, PFDetail] = {}
    for pf in pfs:
        name = pf["master"]
        entry: PFDetail
        try:
            c = pf_count(name, pf.get("sysfsRoot", "/sys"), pf.get("backend", "netlink"),
                         pf.get("stateDir", DEFAULT_STATE_DIR))
            entry = {"total": c.total, "free": c.free, "allocated": c.allocated,
                     "pfAttached": c.pf_attached, "pods": list(c.pods)}
        except Exception as e:  # noqa: BLE001 - one broken PF must not stop the others
            entry = {"total": 0, "free": 0, "allocated": 0, "pfAttached": False, "pods": [],
                     "error": str(e)[:300] or type(e).__name__}
        free += entry["free"]
        detail[name] = entry
    return free, detail


def pfs_of_nads(nads) -> list:
    """The PFs (`master` of an sriov config or conflist plugin) the NetworkAttachmentDefinitions
    name AND this node has (NADs are cluster-wide; a PF of another node is not ours to report),
    as PF entries ({master, sysfsRoot, backend, stateDir}); unreadable configs skipped."""
    from delegates.sriov.topology import Topology
    out: dict = {}
    for nad in nads:
        try:
            conf = json.loads((nad.get("spec") or {}).get("config") or "{}")
        except (TypeError, ValueError, AttributeError):
            continue
        plugins = conf.get("plugins") if isinstance(conf, dict) else None
        if not isinstance(plugins, list):
            plugins = [conf]
        for p in plugins:
            if isinstance(p, dict) and p.get("type") == "sriov" and isinstance(p.get("master"), str) and p["master"]:
                out.setdefault(p["master"], {"master": p["master"], "sysfsRoot": p.get("sysfsRoot", "/sys"),
                                             "backend": p.get("backend", "netlink"),
                                             "stateDir": p.get("stateDir", DEFAULT_STATE_DIR)})
    return [pf for pf in out.values() if Topology(pf["sysfsRoot"]).pf_exists(pf["master"])]


def desired_state(free: int, detail: dict) -> dict:
    """What the node should hold, in the status file's form (absent label = removed)."""
    return {"annotations": {COUNT_ANNOTATION: str(free), DETAIL_ANNOTATION: _dumps(detail)},
            "labels": {AVAILABLE_LABEL: "true"} if free > 0 else {}}


def _canonical_detail(value):
    try:
        return _dumps(json.loads(value))
    except (TypeError, ValueError):
        return value            # foreign text: kept as is, so it compares unequal and is fixed


def observed_state(obj: dict) -> dict:
    """The keys we own, as a node (`metadata.annotations/labels`) or a status file holds them."""
    md = obj.get("metadata", obj) if isinstance(obj, dict) else {}
    out: dict = {"annotations": {}, "labels": {}}
    for section, keys in OWNED.items():
        held = md.get(section) or {}
        for k in keys:
            if k in held and held[k] is not None:
                out[section][k] = _canonical_detail(held[k]) if k == DETAIL_ANNOTATION else held[k]
    return out


def merge_patch(published: dict | None, desired: dict) -> dict:
    """The merge-patch body that turns `published` into `desired` on the keys we own: only the
    keys that differ (null removes one); every key when `published` is unknown (None)."""
    md = {}
    for section, keys in OWNED.items():
        part = {}
        for k in keys:
            want = desired[section].get(k)
            if published is None or published[section].get(k) != want:
                part[k] = want
        if part:
            md[section] = part
    return {"metadata": md}


# ---------------------------------------------------------------- sinks

class KubeSink:
    """The Node object, by name: GET to learn what it holds, one merge PATCH to change it."""

    def __init__(self, kube, node_name: str):
        self.kube, self.node = kube, node_name

    def read(self) -> dict:
        return observed_state(self.kube.get_node(self.node))

    def write(self, published: dict | None, desired: dict) -> None:
        self.kube.patch_node(self.node, merge_patch(published, desired))

    def __str__(self) -> str:
        return f"node {self.node}"


class FileSink:
    """A JSON file with the full state (no Kubernetes): atomic replace, 0600."""

    def __init__(self, path: str):
        self.path = path

    def read(self) -> dict | None:
        try:
            obj = files.read_json(self.path)
        except ValueError:
            return None          # corrupt: unknown, rewritten
        return observed_state(obj or {})

    def write(self, published: dict | None, desired: dict) -> None:
        files.atomic_write(self.path, _dumps(desired) + "\n", 0o600)

    def __str__(self) -> str:
        return f"status file {self.path}"


# ---------------------------------------------------------------- the publisher

class _Stats(TypedDict):
    """NodeStatusPublisher's counters (stats() returns a copy with a few more keys)."""
    patches: int
    patch_failures: int
    reads: int
    read_failures: int
    notifies: int
    counts: int
    reconciles: int
    skipped_unchanged: int
    last_publish: float | None      # epoch s
    last_count: float | None        # epoch s
    last_error: str | None
    free: int | None
    total: int | None
    allocated: int | None
    pfs: dict[str, PFDetail]


class NodeStatusPublisher:
    """Publishes this node's free-VF count. `start()`, `notify()` after every VF change,
    `flush(timeout)`, `stop(timeout)`, `stats()`. See the module docstring."""

    def __init__(self, node_name: str, pfs: list[dict], kube=None, *, status_file: str | None = None,
                 window: float = 0.2, period: float = 30.0, node_resync: float | None = 300.0,
                 min_interval: float = 2.0,
                 backoff: float = 0.2, backoff_max: float = 30.0):
        if (kube is None) == (status_file is None):
            raise ValueError("NodeStatusPublisher needs exactly one of kube, status_file")
        if kube is not None and not node_name:
            raise ValueError("NodeStatusPublisher needs the node name (NODE_NAME)")
        masters = [p.get("master") for p in pfs]
        if not all(isinstance(m, str) and m for m in masters) or len(set(masters)) != len(masters):
            raise ValueError(f"NodeStatusPublisher needs PFs with distinct 'master' names, got {masters}")
        if window < 0 or period <= 0 or backoff <= 0 or backoff_max < backoff:
            raise ValueError("NodeStatusPublisher: window >= 0, period > 0, 0 < backoff <= backoff_max")
        self.node = node_name
        self.pfs = [dict(p) for p in pfs]
        self.pf_sources: list = []   # callables -> PF entries to count too (see add_pf)
        self.sink: KubeSink | FileSink
        if kube is not None:
            self.sink = KubeSink(kube, node_name)
        else:
            assert status_file is not None      # checked above: exactly one of kube, status_file
            self.sink = FileSink(status_file)
        self.window, self.period, self.node_resync = window, period, node_resync
        # A change of the count alone waits until min_interval after the last PATCH (a burst of
        # pods costs one PATCH per min_interval, not one per window); a change of the label (free VFs
        # reaching 0, or back) is published at the end of the window: the scheduler needs it.
        self.min_interval = min_interval
        self._last_publish_mono = float("-inf")
        self._holding = False   # _retry_at was set by the rate limit, not by a failure
        self.backoff, self.backoff_max = backoff, backoff_max
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._stopping = False
        self._flushers = 0
        # notify() bookkeeping: seq counts notifies; dirty_at = first notify not yet counted
        self._seq = 1                       # start-up counts as a change
        self._dirty_at: float | None = float("-inf")
        self._desired_seq = 0               # the seq the current `_desired` includes
        self._desired: dict | None = None
        self._published: dict | None = None  # what the sink holds; None = unknown
        self._read_node = True              # start-up reconcile reads the sink first
        self._last_read = 0.0
        self._next_reconcile = 0.0
        self._retry_at: float | None = None
        self._failures_in_row = 0
        self._busy = False
        self._stats: _Stats = {"patches": 0, "patch_failures": 0, "reads": 0, "read_failures": 0,
                       "notifies": 0, "counts": 0, "reconciles": 0, "skipped_unchanged": 0,
                       "last_publish": None, "last_count": None, "last_error": None,
                       "free": None, "total": None, "allocated": None, "pfs": {}}

    # -- public API ------------------------------------------------------------------------

    def start(self) -> NodeStatusPublisher:
        with self._cond:
            if self._thread is not None:
                raise RuntimeError("NodeStatusPublisher already started")
            self._next_reconcile = time.monotonic() + self.period
            self._thread = threading.Thread(target=self._run, name=f"nodestatus-{self.node}",
                                            daemon=True)
            self._thread.start()
        return self

    def add_pf(self, pf: dict, quiet: bool = False) -> bool:
        """Count `pf` ({master, sysfsRoot, backend, stateDir}) from now on, when it is new: a PF
        learned from the networks the daemon runs (no hand-made list). True when it was added."""
        master = pf.get("master")
        if not isinstance(master, str) or not master:
            return False
        with self._cond:
            if any(p["master"] == master for p in self.pfs):
                return False
            self.pfs = self.pfs + [dict(pf)]   # a new list: a count in progress keeps its own
        _log.info("counting PF %s from now on (named by a network on this node)", master)
        if not quiet:   # (quiet: called from a count, which includes it already)
            self.notify()
        return True

    def notify(self) -> None:
        """VF usage may have changed: recount after the coalescing window. Never blocks on I/O."""
        with self._cond:
            self._seq += 1
            self._stats["notifies"] += 1
            if self._dirty_at is None:
                self._dirty_at = time.monotonic()
                self._cond.notify_all()

    def flush(self, timeout: float = 5.0) -> bool:
        """Publish what is pending now (no window; backoff still applies): True once every
        notify() made before this call is counted and the sink holds the result; False after
        `timeout` (the sink is failing) or when the publisher is not running."""
        with self._cond:
            target = self._seq
            self._flushers += 1
            self._cond.notify_all()
            try:
                return self._cond.wait_for(
                    lambda: self._in_sync(target) or not self._running(), timeout) and self._in_sync(target)
            finally:
                self._flushers -= 1

    def stop(self, timeout: float = 5.0) -> bool:
        """Flush a pending change (up to `timeout`), then end the thread. True when both worked."""
        if self._thread is None:
            return True
        deadline = time.monotonic() + timeout
        flushed = self.flush(timeout) if self._thread.is_alive() else False
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        # a little grace past the deadline: the thread may be between a wait and its check
        self._thread.join(max(0.1, deadline - time.monotonic()))
        return flushed and not self._thread.is_alive()

    def stats(self) -> dict:
        """Counters for metrics: patches (successful writes), patch_failures, reads,
        read_failures, notifies, counts, reconciles (periodic), skipped_unchanged,
        last_publish (epoch s), last_error, free/total/allocated and per-PF detail, in_sync,
        pending_retry (s until the next attempt, or None)."""
        with self._cond:
            s: dict[str, object] = dict(self._stats)
            s["pfs"] = dict(self._stats["pfs"])
            s["in_sync"] = self._desired is not None and self._desired == self._published
            s["pending_retry"] = (max(0.0, self._retry_at - time.monotonic())
                                  if self._retry_at is not None else None)
            s["node"], s["sink"] = self.node, str(self.sink)
            return s

    # -- the thread ------------------------------------------------------------------------

    def _running(self) -> bool:
        return self._thread is not None and self._thread.is_alive() and not self._stopping

    def _in_sync(self, target: int) -> bool:
        return (self._desired_seq >= target and self._desired is not None
                and self._desired == self._published and not self._busy)

    def _plan(self, now: float) -> tuple[float, dict]:
        """(when the next thing is due, what is due now). Called with the lock held."""
        window = 0.0 if self._flushers else self.window
        reconcile = now >= self._next_reconcile
        count_at = self._next_reconcile
        if self._dirty_at is not None:
            count_at = min(count_at, self._dirty_at + window)
        retry_ok = self._retry_at is None or now >= self._retry_at
        out_of_sync = self._desired is not None and self._desired != self._published
        when = count_at
        if out_of_sync:
            when = min(when, self._retry_at if self._retry_at is not None else now)
        due = {"read": self._read_node,
               "count": now >= count_at,
               "reconcile": reconcile,
               "publish": out_of_sync and retry_ok}
        if due["read"]:
            when = now
        return when, due

    def _run(self) -> None:
        _log.info("publishing VF availability of %d PF(s) to %s", len(self.pfs), self.sink)
        while True:
            with self._cond:
                while True:
                    if self._stopping:
                        return
                    now = time.monotonic()
                    when, due = self._plan(now)
                    if when <= now:
                        break
                    self._cond.wait(when - now)
                self._busy = True
            try:
                self._step(now, due)
            except Exception as e:  # noqa: BLE001 - the publisher never dies
                _log.exception("VF availability publisher: unexpected failure")
                with self._cond:
                    self._fail(e)
            finally:
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()

    def _step(self, now: float, due: dict) -> None:
        if due["reconcile"]:
            with self._cond:
                self._stats["reconciles"] += 1
                self._next_reconcile = now + self.period
                if self.node_resync is not None and now - self._last_read >= self.node_resync:
                    self._read_node = True
                    due["read"] = True
                due["count"] = True
        if due["read"]:
            self._read(startup=self._stats["reads"] == 0)
        if due["count"]:
            self._count()
        with self._cond:
            if self._desired is None or self._desired == self._published:
                return
            published, desired = self._published, self._desired
            label_change = published is None or published.get("labels") != desired.get("labels")
            now = time.monotonic()
            if self._retry_at is not None and now < self._retry_at and not (self._holding and label_change):
                return   # backing off after a failure, or a count-only change held back
            hold_until = self._last_publish_mono + self.min_interval
            if not label_change and now < hold_until and not self._flushers:
                self._retry_at, self._holding = hold_until, True   # the count alone: rate-limited
                return
            self._holding = False
        self._publish(published, desired)

    def _read(self, startup: bool) -> None:
        with self._cond:
            self._read_node = False
            self._last_read = time.monotonic()
            self._stats["reads"] += 1
        try:
            held = self.sink.read()
        except Exception as e:  # noqa: BLE001
            _log.warning("failed to read VF availability from %s: %s", self.sink, e)
            with self._cond:
                self._stats["read_failures"] += 1
                self._stats["last_error"] = str(e)[:500]
                if startup:
                    self._published = None   # unknown: the first write sends every key
            return
        with self._cond:
            if self._retry_at is None:       # a write in backoff keeps "unknown"
                self._published = held

    def _count(self) -> None:
        with self._cond:
            seq = self._seq
            self._dirty_at = None
        for source in self.pf_sources:   # e.g. the PFs the NADs in the daemon's watch cache name
            try:
                for pf in source():
                    self.add_pf(pf, quiet=True)
            except Exception as e:  # noqa: BLE001 - a bad source must not stop the count
                _log.warning("PF source failed: %s", e)
        free, detail = count_pfs(self.pfs)
        with self._cond:
            self._desired = desired_state(free, detail)
            self._desired_seq = seq
            st = self._stats
            st["counts"] += 1
            st["last_count"] = time.time()
            st["free"], st["pfs"] = free, detail
            st["total"] = sum(d["total"] for d in detail.values())
            st["allocated"] = sum(d["allocated"] for d in detail.values())
            if self._desired == self._published:
                st["skipped_unchanged"] += 1

    def _publish(self, published: dict | None, desired: dict) -> None:
        try:
            self.sink.write(published, desired)
        except Exception as e:  # noqa: BLE001 - 409/5xx/refused/timeouts/403: retried later
            with self._cond:
                delay = self._fail(e)
            _log.warning("failed to publish VF availability to %s (attempt %d, retry in %.2fs): %s",
                         self.sink, self._failures_in_row, delay, e)
            return
        with self._cond:
            self._published = desired
            self._last_publish_mono = time.monotonic()
            self._retry_at = None
            self._failures_in_row = 0
            self._stats["patches"] += 1
            self._stats["last_publish"] = time.time()
            self._stats["last_error"] = None
        _log.info("published %s=%s on %s", COUNT_ANNOTATION,
                  desired["annotations"][COUNT_ANNOTATION], self.sink)

    def _fail(self, e: Exception) -> float:
        """Record a failed write (lock held): what the sink holds is unknown; back off."""
        self._failures_in_row += 1
        self._holding = False
        self._stats["patch_failures"] += 1
        self._stats["last_error"] = str(e)[:500]
        self._published = None
        delay = min(self.backoff_max, self.backoff * 2 ** min(self._failures_in_row - 1, 30))
        delay *= 0.5 + random.random()          # jitter: nodes do not retry in lock-step
        self._retry_at = time.monotonic() + delay
        return delay
