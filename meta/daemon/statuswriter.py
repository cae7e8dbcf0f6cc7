"""network-status writes in the daemon, off the CNI request's path: a request hands the value
over and returns; a background thread PATCHes it, retrying with backoff (+ jitter) through 409
storms, 5xx and API outages until it lands. Only the latest value per pod is kept, so a flood
of changes costs one PATCH per pod once the API is back. A pod that is gone (404) or was
recreated (UID precondition fails) is dropped.

Multus v4.1.4 writes network-status before CmdAdd returns (pkg/multus/multus.go CmdAdd ->
k8s.SetNetworkStatus), so whoever sees the pod Running sees its networks: `submit(wait=...)`
holds the request until this write lands, a few seconds at most; past that the write stays
pending and is also persisted (`state_dir`, one file per pod, 0600), so a daemon restart
resumes it (`load()` at start-up)."""
import hashlib
import os
import random
import threading
import time

from cni import files, log
from cni.errors import CNIError
from meta.networkstatus import ANNOTATION

_log = log.get("statuswriter")
SYNC_WAIT = 1.0   # how long an ADD waits for its network-status write before going on


class StatusWriter:
    def __init__(self, kube, backoff: float = 0.2, backoff_max: float = 5.0, state_dir: str | None = None):
        self.kube = kube
        self.state_dir = state_dir
        self.backoff, self.backoff_max = backoff, backoff_max
        self._pending: dict = {}   # (ns, name) -> [uid, value, first queued, next attempt, backoff]
        self._cond = threading.Condition()
        self._stop = False
        self.written = self.failures = 0
        self.last_convergence = None      # seconds from queueing to success of the last write
        self.on_written = None            # fn(seconds from queueing to success): metrics
        self._thread = threading.Thread(target=self._run, name="status-writer", daemon=True)

    def start(self) -> "StatusWriter":
        self._thread.start()
        return self

    def submit(self, namespace: str, name: str, uid: str | None, value: str, wait: float = 0.0) -> bool:
        """Queue the value; with `wait`, return once it is written (True) or `wait` seconds
        passed (False: persisted, still retried in the background)."""
        with self._cond:
            prev = self._pending.get((namespace, name))
            # a newer value replaces the queued one and is tried at once
            self._pending[(namespace, name)] = [uid, value, prev[2] if prev else time.monotonic(), 0.0, self.backoff]
            self._cond.notify()
            if wait <= 0:
                return False
            deadline = time.monotonic() + wait
            while self._queued(namespace, name, value) and time.monotonic() < deadline:
                self._cond.wait(deadline - time.monotonic())
            if not self._queued(namespace, name, value):
                return True
        _log.warning("network-status of %s/%s not written within %.1f s: kept pending", namespace, name, wait)
        self._persist(namespace, name, uid, value)
        return False

    def _queued(self, namespace, name, value) -> bool:
        cur = self._pending.get((namespace, name))
        return cur is not None and cur[1] == value

    # ---- pending writes that outlive the daemon ----
    def _file(self, namespace: str, name: str) -> str:
        assert self.state_dir       # callers check it: nothing is persisted without one
        return os.path.join(self.state_dir, hashlib.sha256(f"{namespace}/{name}".encode()).hexdigest()[:32] + ".json")

    def _persist(self, namespace, name, uid, value) -> None:
        if not self.state_dir:
            return
        try:
            files.write_json(self._file(namespace, name), {"namespace": namespace, "name": name, "uid": uid, "value": value})
            with self._cond:
                if not self._queued(namespace, name, value):   # landed meanwhile
                    files.remove(self._file(namespace, name))
        except OSError as e:
            _log.error("cannot persist the pending network-status of %s/%s: %s", namespace, name, e)

    def _unpersist(self, namespace, name) -> None:
        if self.state_dir:
            files.remove(self._file(namespace, name))

    def load(self) -> int:
        """Start-up: queue again the writes a previous daemon left pending."""
        if not self.state_dir or not os.path.isdir(self.state_dir):
            return 0
        n = 0
        for fname in sorted(os.listdir(self.state_dir)):
            if ".tmp." in fname:
                files.stale_tmp(self.state_dir, fname)
                continue
            try:
                d = files.read_json(os.path.join(self.state_dir, fname))
                self.submit(d["namespace"], d["name"], d.get("uid"), d["value"])
                n += 1
            except (ValueError, KeyError, TypeError, OSError) as e:
                _log.error("pending network-status %s is unreadable (%s): dropped", fname, e)
                files.remove(os.path.join(self.state_dir, fname))
        if n:
            _log.info("resuming %d pending network-status write(s)", n)
        return n

    def pending(self) -> int:
        with self._cond:
            return len(self._pending)

    def flush(self, timeout: float = 5.0) -> bool:
        deadline = time.monotonic() + timeout
        while self.pending() and time.monotonic() < deadline:
            time.sleep(0.02)
        return not self.pending()

    def stop(self, timeout: float = 5.0) -> None:
        self.flush(timeout)
        with self._cond:
            self._stop = True
            self._cond.notify()

    def _next(self):
        """The pending write due first (each pod has its own backoff: one pod the API keeps
        refusing never holds up the others), or how long to wait for one."""
        now = time.monotonic()
        key, item = min(self._pending.items(), key=lambda kv: kv[1][3])
        return (key, list(item)) if item[3] <= now else item[3] - now

    def _run(self) -> None:
        while True:
            with self._cond:
                while True:
                    if self._stop:
                        return
                    nxt = self._next() if self._pending else None
                    if isinstance(nxt, tuple):
                        break
                    self._cond.wait(nxt)
                key, (uid, value, t0, _due, delay) = nxt
            try:
                self.kube.patch_pod_annotations(key[0], key[1], {ANNOTATION: value}, uid=uid, attempts=1)
            except CNIError as e:
                gone = "HTTP 404" in (e.details or "") or (
                    "HTTP 409" in (e.details or "") and uid is not None and self._uid_changed(key, uid))
                if gone:
                    _log.info("network-status of %s/%s dropped: the pod is gone or was recreated", *key)
                    self._done(key, value)
                    continue
                self.failures += 1
                wait = delay * (0.5 + random.random())
                _log.warning("network-status of %s/%s not written yet (%s); retrying in %.1fs", key[0], key[1], e, wait)
                with self._cond:
                    cur = self._pending.get(key)
                    if cur and cur[1] == value:
                        cur[3], cur[4] = time.monotonic() + wait, min(delay * 2, self.backoff_max)
                continue
            self.written += 1
            self.last_convergence = time.monotonic() - t0
            if self.on_written is not None:
                self.on_written(self.last_convergence)
            self._done(key, value)

    def _done(self, key, value) -> None:
        with self._cond:
            cur = self._pending.get(key)
            if cur and cur[1] == value:   # a newer value queued meanwhile stays pending
                del self._pending[key]
                self._unpersist(*key)
            self._cond.notify_all()

    def _uid_changed(self, key, uid) -> bool:
        try:
            obj = self.kube.get_pod(key[0], key[1])
        except CNIError:
            return False
        return (obj.get("metadata") or {}).get("uid") not in (None, uid)
