"""The scheduler extender's view of the cluster: a Kubernetes client (a kubeconfig, or the pod's
service account in the cluster; meta.k8s.Kube with a short time budget) and watch caches (meta/informer.py) of NADs, nodes and pending
pods. Node and pod changes are reported to the Ledger as the watch delivers them: a node's
published free count (assumed VFs are released when it drops by them), and the node a pending
pod was bound to (its claim stays there only) or its deletion before binding.

Needs get/list/watch on nodes, pods and network-attachment-definitions, nothing else."""
from __future__ import annotations


from cni import log

from .informer import Informer
from .k8s import Kube

_log = log.get("extender")
PENDING = "status.phase=Pending"


class ExtenderKube(Kube):
    """meta.k8s.Kube for the extender: a kubeconfig, or the pod's service account (None); at
    most two attempts per request, so a NAD lookup that misses the watch cache stays well
    inside kube-scheduler's extender timeout (httpTimeout, 5 s by default)."""

    ATTEMPTS = 2

    def __init__(self, kubeconfig: str | None, timeout: float = 2.0):
        super().__init__(kubeconfig, timeout)

    def _call(self, verb, what, fn, attempts: int = ATTEMPTS):
        return super()._call(verb, what, fn, attempts=min(attempts, self.ATTEMPTS))


class _Reporting(dict):
    """An Informer's item table that reports each change to `on_change(key, obj | None)`."""

    def __setitem__(self, key, value):
        super().__setitem__(key, value)
        self.on_change(key, value)

    def pop(self, key, *default):
        had = key in self
        value = super().pop(key, *default)
        if had:
            self.on_change(key, None)
        return value


class ReportingInformer(Informer):
    """An Informer that reports every change (watch events and re-LISTs) to on_change(key, obj |
    None). on_change runs in the watch thread with the informer's lock held, so it must not call
    back into the informer (the Ledger never does)."""

    def __init__(self, name, list_fn, watch_fn, count, on_change):
        self._on_change = on_change
        super().__init__(name, list_fn, watch_fn, count)

    @property
    def items(self) -> dict:
        return self._items

    @items.setter
    def items(self, new: dict) -> None:     # the Informer's initial {} and every re-LIST
        old = self.__dict__.get("_items") or {}
        table = _Reporting(new)
        table.on_change = self._on_change
        self._items = table
        for key in old.keys() - new.keys():
            self._on_change(key, None)
        for key, obj in new.items():
            if old.get(key) is not obj:
                self._on_change(key, obj)


class ClusterView:
    def __init__(self, kube: Kube, ledger):
        self.kube, self.ledger = kube, ledger
        self.nodes = self.pods = None
        self._pod_uids: dict = {}     # (namespace, name) -> uid of the pending pods seen

    def start(self) -> ClusterView:
        kube = self.kube
        kube.start_caches(None)        # the NAD watch cache (get_nad falls back to a GET)
        self.nodes = ReportingInformer("nodes", *kube.lister("/api/v1/nodes"),
                                       kube._count, self._node_changed).start()
        self.pods = ReportingInformer("pending-pods", *kube.lister("/api/v1/pods", fieldSelector=PENDING),
                                      kube._count, self._pod_changed).start()
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

    def _node_changed(self, key, node) -> None:
        self.ledger.observe_node(key[1], node)

    def _pod_changed(self, key, pod) -> None:
        if pod is None:      # deleted, or no longer Pending
            uid = self._pod_uids.pop(key, None)
            if uid:
                self.ledger.pod_gone(uid)
            return
        uid = (pod.get("metadata") or {}).get("uid")
        if not uid:
            return
        self._pod_uids[key] = uid
        node = (pod.get("spec") or {}).get("nodeName")
        if node:
            self.ledger.bind(uid, node)
