"""The scheduler extender's view of the cluster: a Kubernetes client (a kubeconfig, or the pod's
service account in the cluster; meta.kube.api.Kube with a short time budget) and watch caches
(meta/kube/informer.py) of NADs, nodes and pending
pods, each LISTed in pages and kept as the few fields decisions need. Node and pod changes are
reported to the Ledger as the watch delivers them: a node's published availability (with the
pods it names as holding VFs), the node a pending pod was bound to, a pod's departure.

Needs get/list/watch on nodes, pods and network-attachment-definitions, and (bind mode) create on
pods/binding, nothing else."""
from __future__ import annotations

from cni import log
from cni.kube import client as kubeclient
from meta.kube.api import Kube
from meta.kube.informer import Informer

from .nodes import parse_free

_log = log.get("extender")
PENDING = "status.phase=Pending"


class ExtenderKube(Kube):
    """meta.kube.api.Kube for the extender: a kubeconfig, or the pod's service account (None); at
    most two attempts per request, so a NAD lookup that misses the watch cache stays well
    inside kube-scheduler's extender timeout (httpTimeout, 5 s by default)."""

    ATTEMPTS = 2

    def __init__(self, kubeconfig: str | None, timeout: float = 2.0):
        super().__init__(kubeconfig, timeout)

    def _call(self, verb, what, fn, attempts: int = ATTEMPTS):
        return super()._call(verb, what, fn, attempts=min(attempts, self.ATTEMPTS))

    def bind_pod(self, namespace: str, name: str, uid: str, node: str) -> None:
        """POST the pod's Binding, as kube-scheduler's DefaultBinder does
        (pkg/scheduler/framework/plugins/defaultbinder/default_binder.go: ObjectMeta namespace,
        name and UID — the UID makes the API server refuse a pod re-created under the same
        name — and Target {Kind: Node, Name}). Raises kubeclient.ApiError / CNIError."""
        body = {"apiVersion": "v1", "kind": "Binding",
                "metadata": {"namespace": namespace, "name": name, **({"uid": uid} if uid else {})},
                "target": {"apiVersion": "v1", "kind": "Node", "name": node}}
        path = kubeclient.path("", "v1", "pods", namespace, name) + "/binding"
        self._call("bind", f"pod {namespace}/{name}", lambda: self.http.request("POST", path, body=body), attempts=1)


class _Nodes(Informer):
    """Nodes, each kept as its published availability (a Free: a few ints and the holders'
    digests, not the whole Node); every change goes to the Ledger."""

    def __init__(self, kube, ledger):
        self.ledger = ledger
        list_fn, watch_fn = kube.lister("/api/v1/nodes")
        super().__init__("nodes", list_fn, watch_fn, kube.count_call, transform=parse_free)

    def changed(self, key, old, new, obj) -> None:
        if new is not old:
            self.ledger.observe_node(key[1], new)


class _PendingPods(Informer):
    """Pending pods, each kept as (uid, node name or ""); bindings and departures go to the
    Ledger. A pod that leaves the Pending selection arrives as DELETED with its new state (as
    the API server's watch cache sends it): deleted or finished ends its hold, running keeps it
    until its node names it."""

    def __init__(self, kube, ledger, need):
        self.ledger, self.need = ledger, need
        list_fn, watch_fn = kube.lister("/api/v1/pods", fieldSelector=PENDING)
        super().__init__("pending-pods", list_fn, watch_fn, kube.count_call, transform=_pod_key)

    def changed(self, key, old, new, obj) -> None:
        if new is None:
            if old and old[0]:
                self.ledger.pod_gone(old[0], deleted=_ended(obj))
            return
        uid, node = new
        if uid and node and (old is None or old[1] != node):
            self.ledger.bind(uid, node, need_fn=lambda: self._need(obj))

    def _need(self, pod):
        try:
            return self.need(pod)
        except Exception as e:     # noqa: BLE001 - an invalid pod or a NAD read failing: nothing to hold
            _log.debug("pod %s bound elsewhere: need unknown: %s", pod.get("metadata", {}).get("name"), e)
            return None


def _pod_key(pod: dict) -> tuple:
    md, spec = pod.get("metadata") or {}, pod.get("spec") or {}
    return md.get("uid") or "", spec.get("nodeName") or ""


def _ended(pod) -> bool:
    """A pod gone from the Pending pods is deleted or finished (not merely running now)."""
    if not isinstance(pod, dict):
        return False           # dropped by a re-LIST: unknown, let `settle` decide
    if (pod.get("metadata") or {}).get("deletionTimestamp"):
        return True
    return (pod.get("status") or {}).get("phase") != "Running"


class ClusterView:
    def __init__(self, kube: Kube, ledger, need=None):
        """`need(pod) -> Need` holds the VFs of pods bound by someone else (meta/extender_need)."""
        self.kube, self.ledger, self.need = kube, ledger, need
        self.nodes: Informer | None = None
        self.pods: Informer | None = None

    def start(self) -> ClusterView:
        kube = self.kube
        kube.start_caches(None)        # the NAD watch cache (get_nad falls back to a GET)
        self.nodes = _Nodes(kube, self.ledger).start()
        self.pods = _PendingPods(kube, self.ledger, self.need or (lambda pod: None)).start()
        return self

    def stop(self) -> None:
        for inf in (self.nodes, self.pods, self.kube.nad_cache):
            if inf is not None:
                inf.stop()

    def synced(self, timeout: float = 0.0) -> bool:
        """The node cache is filled (wait up to `timeout` seconds for it)."""
        return self.nodes is not None and self.nodes.synced.wait(timeout)

    def ready(self) -> bool:
        return all(i is not None and i.synced.is_set() for i in (self.nodes, self.pods, self.kube.nad_cache))
