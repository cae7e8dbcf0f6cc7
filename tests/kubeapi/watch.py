"""WATCH streams, with the semantics of kube-apiserver's watch cache (cacher).

- no resourceVersion: synthetic ADDED events for the current state, then changes ("Get State and
  Start at Most Recent"); "0": the same ("Start at Any"); "N": every change after N;
- N older than the retained history: an ERROR event carrying a 410 `Expired` Status
  ("too old resource version: N (M)"), which the Python client turns into ApiException(410);
- N newer than the store: wait up to 3 s for it, then 504 `Timeout: Too large resource version`;
- label/field selectors filter events; an object that starts / stops matching on update is sent
  as ADDED / DELETED, as the cacher does;
- `timeoutSeconds` (default: the server's watch timeout) ends the stream cleanly; server stop or an
  outage ends it at once; a watch whose resource type disappears (its CRD deleted) ends.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from . import errors

TOO_LARGE_WAIT = 3.0


@dataclass
class WatchSpec:
    rt: object
    namespace: str
    label_selector: object
    field_selector: object
    since: int | None            # None: "start at most recent" (with the current state first)
    timeout: float
    bookmarks: bool = False      # allowWatchBookmarks
    send_initial: bool = False   # sendInitialEvents (WatchList)
    version: str | None = None


def _matches(rt, obj, label_selector, field_selector):
    if obj is None:
        return False
    if label_selector and not label_selector.matches(obj["metadata"].get("labels")):
        return False
    if field_selector and not field_selector.matches(rt.field_getter(obj)):
        return False
    return True


def _translate(rt, ev, label_selector, field_selector):
    new_ok = _matches(rt, ev.obj, label_selector, field_selector)
    if ev.type == "MODIFIED":
        old_ok = _matches(rt, ev.old, label_selector, field_selector)
        if new_ok and old_ok:
            return "MODIFIED"
        if new_ok:
            return "ADDED"
        if old_ok:
            return "DELETED"
        return None
    return ev.type if new_ok else None


def parse_rv(value):
    if value in (None, ""):
        return None
    try:
        rv = int(value)
        if rv < 0:
            raise ValueError
        return rv
    except ValueError:
        raise errors.bad_request(f'invalid resource version "{value}"') from None


def start(store, spec):
    """Validate the start point before any byte is sent; returns (initial objects, start rv).
    With send_initial (sendInitialEvents=true, the WatchList protocol) the current state is sent
    whatever the resourceVersion."""
    since = spec.since
    with store.lock:
        if since is not None and since > store.rv:
            deadline = time.monotonic() + TOO_LARGE_WAIT
            while since > store.rv and not store.closed:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise errors.timeout(f"Too large resource version: {since}, current: {store.rv}")
                store.cond.wait(left)
        if since and not spec.send_initial:
            return [], since
        return store.list(spec.rt, spec.namespace, version=spec.version)


def bookmark(rt, rv, version=None, initial_end=False):
    md = {"resourceVersion": str(rv)}
    if initial_end:
        md["annotations"] = {"k8s.io/initial-events-end": "true"}
    return {"type": "BOOKMARK", "object": {"kind": rt.kind, "apiVersion": rt.api_version(version),
                                           "metadata": md}}


def stream(store, spec, initial, last, deadline, cancelled):
    """Yield watch events (dicts) after `start()` until deadline / cancelled() / store closed.

    With `bookmarks` (allowWatchBookmarks=true) a BOOKMARK with the last resourceVersion is sent
    before the stream ends at its timeout, as the cacher does; with send_initial too, a BOOKMARK
    annotated `k8s.io/initial-events-end: "true"` follows the initial events.
    """
    rt, ns, version = spec.rt, spec.namespace, spec.version
    label_selector, field_selector = spec.label_selector, spec.field_selector
    for obj in initial:
        if _matches(rt, obj, label_selector, field_selector):
            yield {"type": "ADDED", "object": obj}
    if spec.send_initial and spec.bookmarks:
        yield bookmark(rt, last, version, initial_end=True)
    while True:
        expired, timed_out, batch = None, False, []
        with store.lock:
            while True:
                if store.closed or cancelled() or store.registry.by_key(*rt.key) is None:
                    return
                if last < store.compacted_rv:
                    oldest = store.history[0].rv if store.history else store.rv + 1
                    expired = errors.expired(f"too old resource version: {last} ({oldest - 1})")
                    break
                if store.history and store.history[-1].rv > last:
                    for ev in reversed(store.history):
                        if ev.rv <= last:
                            break
                        batch.append(ev)
                    last = store.history[-1].rv
                    break
                left = deadline - time.monotonic()
                if left <= 0:
                    timed_out = True
                    break
                store.cond.wait(min(left, 0.25))
        if expired is not None:
            yield {"type": "ERROR", "object": expired.status()}
            return
        if timed_out:
            if spec.bookmarks:
                yield bookmark(rt, last, version)
            return
        for ev in reversed(batch):
            if ev.key != rt.key or (ns and ev.namespace != ns):
                continue
            kind = _translate(rt, ev, label_selector, field_selector)
            if kind:
                yield {"type": kind, "object": store.render(rt, ev.obj, version)}
