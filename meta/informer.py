"""Watch caches for the daemon (a small informer): LIST, then WATCH from the list's
resourceVersion, re-LIST on 410 Gone or a broken stream, with backoff. Reads never block on
the API: a miss (not synced yet, or an object newer than the cache) falls back to a GET."""
import threading

from cni import log

_log = log.get("informer")


class Informer:
    def __init__(self, name: str, list_fn, watch_fn, count=None, backoff_max: float = 10.0):
        """list_fn() -> the list as a dict; watch_fn(resource_version) -> an iterator of watch
        events ({"type", "object"}) from that version (meta/k8s.Kube.lister makes both).
        Objects are kept as dicts."""
        self.name, self.list_fn, self.watch_fn, self.count = name, list_fn, watch_fn, count
        self.items: dict = {}
        self.synced = threading.Event()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._backoff_max = backoff_max
        self._thread = threading.Thread(target=self._run, name=f"informer-{name}", daemon=True)

    def start(self) -> "Informer":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()

    def get(self, namespace: str, name: str):
        with self._lock:
            return self.items.get((namespace, name))

    @staticmethod
    def _key(obj: dict):
        m = obj.get("metadata") or {}
        return m.get("namespace", ""), m.get("name", "")

    def _relist(self) -> str:
        if self.count:
            self.count("list")
        resp = self.list_fn()
        items = resp.get("items") or []
        with self._lock:
            self.items = {self._key(o): o for o in items}
        self.synced.set()
        return (resp.get("metadata") or {}).get("resourceVersion", "")

    def _run(self) -> None:
        from .kubeclient import ApiError
        delay = 0.2
        rv = ""
        while not self._stop.is_set():
            try:
                if not rv:
                    rv = self._relist()
                if self.count:
                    self.count("watch")
                for ev in self.watch_fn(rv):
                    if self._stop.is_set():
                        return
                    obj, kind = ev.get("object") or {}, ev.get("type")
                    if kind == "ERROR":   # 410 Expired (or another Status) as an event: start over
                        rv = ""
                        break
                    rv = (obj.get("metadata") or {}).get("resourceVersion", rv)
                    if kind == "BOOKMARK":
                        continue
                    with self._lock:
                        if kind == "DELETED":
                            self.items.pop(self._key(obj), None)
                        else:
                            self.items[self._key(obj)] = obj
                delay = 0.2
            except ApiError as e:
                if e.status == 410:
                    rv = ""
                    continue
                _log.warning("%s watch failed: HTTP %s; retrying in %.1fs", self.name, e.status, delay)
                self._stop.wait(delay)
                delay = min(delay * 2, self._backoff_max)
            except Exception as e:   # connection refused/reset, API outage, a garbled stream
                _log.warning("%s watch broke: %s; retrying in %.1fs", self.name, str(e)[:200], delay)
                rv = rv if self.synced.is_set() else ""
                self._stop.wait(delay)
                delay = min(delay * 2, self._backoff_max)
