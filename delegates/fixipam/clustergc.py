"""The node daemon's garbage collection of cluster-wide fixed-IP reservations, every `period`:

- this node's reservations whose pod is gone (GET 404) or is another pod of the same name
  (its UID differs) are deleted; one whose pod exists with that UID is never touched, nor one
  whose pod cannot be read (API error: try again next period), nor one without a pod identity
  (a non-Kubernetes runtime: only DEL and CNI GC release those);
- reservations held by nodes that no longer exist (GET node 404) are deleted by whichever
  daemon sees them first (the DELETE carries the object's UID as precondition, so two daemons
  racing, or a reservation re-created meanwhile, are harmless).

Costs per period and node: one LIST of the reservations (label-selected for this node) plus
one pod GET each. The deleted-node sweep (one LIST of all reservations plus one node GET per
distinct other node) runs every NODE_SWEEP_EVERY passes only, from a random phase: every daemon
does it, so its cost grows with nodes x reservations; deleted nodes are rare and nothing waits
on them but other pods wanting their addresses.
"""
import random
import threading
from urllib.parse import quote

from cni import log
from cni.errors import API_FAILED, CNIError

from . import cluster

_log = log.get("fixipam")
NODE_SWEEP_EVERY = 10


def _get(api, path: str):
    """The object, or None on 404. Raises Unavailable / CNIError."""
    try:
        return api.call("get", "GET", path)
    except cluster.Unavailable:
        raise
    except Exception as e:
        if getattr(e, "status", None) == 404:
            return None
        raise CNIError(API_FAILED, f"failed to get {path}", str(e)[:300]) from None


def _pod_gone(api, spec: dict) -> bool:
    ns, name, uid = spec.get("podNamespace"), spec.get("podName"), spec.get("podUID")
    if not ns or not name:
        return False
    pod = _get(api, f"/api/v1/namespaces/{quote(ns, safe='')}/pods/{quote(name, safe='')}")
    if pod is None:
        return True
    return bool(uid) and (pod.get("metadata") or {}).get("uid") != uid


def sweep(api, deleted_nodes: bool = True) -> int:
    """One GC pass; returns how many reservations were released."""
    if api.served is not True:   # not known yet, or not served: a CRD installed later is picked up
        api.probe()
    if not api.served:
        return 0
    released = 0
    for obj in cluster.list_reservations(api, node=api.node):
        spec = obj.get("spec") or {}
        if spec.get("node") != api.node:
            continue
        try:
            gone = _pod_gone(api, spec)
        except CNIError as e:
            _log.warning("gc: pod of %s unreadable, kept: %s", cluster.holder(obj), e)
            continue
        if gone:
            cluster.delete(api, obj)
            released += 1
            _log.info("gc released %s on %s cluster-wide (%s: pod gone)", spec.get("address"),
                      spec.get("network"), cluster.holder(obj))
    if deleted_nodes:
        released += _sweep_deleted_nodes(api)
    return released


def _sweep_deleted_nodes(api) -> int:
    released, nodes = 0, {}
    for obj in cluster.list_reservations(api):
        node = (obj.get("spec") or {}).get("node")
        if not node or node == api.node:
            continue
        if node not in nodes:
            try:
                nodes[node] = _get(api, f"/api/v1/nodes/{quote(node, safe='')}") is not None
            except CNIError as e:
                _log.warning("gc: node %s unreadable: %s", node, e)
                nodes[node] = True
        if not nodes[node]:
            cluster.delete(api, obj)
            released += 1
            _log.info("gc released %s (%s: node deleted)", obj["metadata"].get("name"), cluster.holder(obj))
    return released


class ClusterGC:
    def __init__(self, api, period: float):
        self.api, self.period = api, period
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> "ClusterGC":
        self._thread = threading.Thread(target=self._loop, name="fixipam-gc", daemon=True)
        self._thread.start()
        return self

    def _loop(self) -> None:
        try:
            self.api.probe()   # at start: is the kind served? (an ADD before this probes itself)
        except cluster.Unavailable as e:
            _log.warning("fixipam: API unreachable at start-up (%s); the first ADD probes again", e)
        n = random.randrange(NODE_SWEEP_EVERY)
        while not self._stop.wait(self.period):
            n += 1
            try:
                sweep(self.api, deleted_nodes=n % NODE_SWEEP_EVERY == 0)
            except (cluster.Unavailable, CNIError) as e:
                _log.warning("fixipam cluster GC pass skipped: %s", e)
            except Exception:   # never let the loop die: the next period tries again
                _log.exception("fixipam cluster GC pass failed")

    def stop(self) -> None:
        self._stop.set()
