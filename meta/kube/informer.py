"""Watch caches for the daemon and the scheduler extender (a small informer): LIST (in pages),
then WATCH from the list's resourceVersion, re-LIST on 410 Gone or a broken stream, with backoff.
Reads never block on the API: a miss (not synced yet, or an object newer than the cache) falls
back to a GET.

`transform(obj)` keeps only what a user needs of each object (the extender keeps a few fields of
each Node, not the ~17 KB of Python objects a whole Node becomes); a subclass that overrides
`changed(key, old, new, obj)` hears every change (watch events and re-LISTs; `obj` is the object
as the API sent it, None for a key dropped by a re-LIST)."""
import threading

from cni import log

_log = log.get("informer")
PAGE = 500       # objects per LIST page (kube-apiserver's informers use 500 as well)


class Informer:
    def __init__(self, name: str, list_fn, watch_fn, count=None, backoff_max: float = 10.0,
                 transform=None):
        """list_fn(continue_token) -> one page of the list as a dict; watch_fn(resource_version)
        -> an iterator of watch events ({"type", "object"}) from that version (meta/k8s.Kube.lister
        makes both). Objects are kept as `transform` returns them (default: the dicts)."""
        self.name, self.list_fn, self.watch_fn, self.count = name, list_fn, watch_fn, count
        self.transform = transform
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

    def values(self) -> list:
        """A snapshot of the cached objects."""
        with self._lock:
            return list(self.items.values())

    def changed(self, key, old, new, obj) -> None:
        """Called with the informer's lock held after each change; must not call back into it."""

    @staticmethod
    def _key(obj: dict):
        m = obj.get("metadata") or {}
        return m.get("namespace", ""), m.get("name", "")

    def _keep(self, obj: dict):
        return self.transform(obj) if self.transform is not None else obj

    def _relist(self) -> str:
        """LIST page by page, keeping each object as `transform` makes it as soon as its page
        arrives (memory holds one page of whole objects, not the whole list), then swap the
        table; keys the new list lacks are reported gone."""
        items: dict = {}
        rv, token = "", ""
        while True:
            if self.count:
                self.count("list")
            resp = self.list_fn(token)
            meta = resp.get("metadata") or {}
            rv = rv or meta.get("resourceVersion", "")    # the first page's snapshot
            token = meta.get("continue") or ""
            with self._lock:
                for obj in resp.get("items") or ():
                    key = self._key(obj)
                    kept = items[key] = self._keep(obj)
                    self.changed(key, self.items.get(key), kept, obj)
            del resp
            if not token:
                break
        with self._lock:
            old, self.items = self.items, items
            for key in old.keys() - items.keys():
                self.changed(key, old[key], None, None)
        self.synced.set()
        return rv

    def _event(self, kind: str, obj: dict) -> None:
        key = self._key(obj)
        with self._lock:
            old = self.items.get(key)
            if kind == "DELETED":
                self.items.pop(key, None)
                new = None
            else:
                new = self.items[key] = self._keep(obj)
            self.changed(key, old, new, obj)

    def _run(self) -> None:
        from cni.kube.client import ApiError
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
                    self._event(kind, obj)
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
