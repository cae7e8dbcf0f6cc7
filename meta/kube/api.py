"""The Kubernetes API as netmeta uses it: GET a pod, GET a NetworkAttachmentDefinition, PATCH
one pod annotation, GET and merge-PATCH this node (VF availability), through the small JSON
client in cni/kube/client.py (why not the `kubernetes` package: see there). The daemon keeps
one warm; the thin path pays only when it really talks to the API.

Every call is counted by verb (for metrics and for the tests that count API requests)."""
import random
import threading
import time

from cni import fault, log
from cni.errors import API_FAILED, NETWORK_NOT_FOUND, TRY_AGAIN, CNIError
from cni.kube import client as kubeclient
from delegates.registry import SHIM

from .informer import PAGE, Informer

_log = log.get("k8s")
NAD_GROUP, NAD_VERSION, NAD_PLURAL = "k8s.cni.cncf.io", "v1", "network-attachment-definitions"
RETRYABLE = {409, 429, 500, 502, 503, 504}
POD_POLL, POD_WAIT = 0.25, 2.5   # Multus pkg/multus/multus.go shortPollDuration, shortPollTimeout
MIRROR_ANNOT, SOURCE_ANNOT = "kubernetes.io/config.mirror", "kubernetes.io/config.source"


def is_static_pod(pod: dict) -> bool:
    """Multus v4.1.4 pkg/k8sclient/k8sclient.go IsStaticPod: config.source present and not
    "api". A mirror pod (config.mirror) is the API's copy of one: its UID is not the kubelet's."""
    a = (pod.get("metadata") or {}).get("annotations") or {}
    return MIRROR_ANNOT in a or (SOURCE_ANNOT in a and a[SOURCE_ANNOT] != "api")


class Kube:
    def __init__(self, kubeconfig: str | None, timeout: float = 10.0):
        """kubeconfig None = the pod's service account (in-cluster)."""
        try:
            ep = (kubeclient.from_kubeconfig(kubeconfig, product=SHIM.product) if kubeconfig
                  else kubeclient.in_cluster())
        except kubeclient.ConfigError as e:
            from cni.errors import config_error
            raise config_error("kubeconfig", f"cannot load {kubeconfig or 'the in-cluster config'}: {str(e)[:200]}") from None
        self.http = kubeclient.Client(ep, timeout, user_agent=SHIM.product)
        self.exc = kubeclient.ApiError
        self.timeout = timeout
        self.calls: dict = {}
        self.errors: dict = {}    # (verb, HTTP status | "unreachable") -> failed attempts
        self._lock = threading.Lock()
        self.nad_cache: Informer | None = None   # Informers the daemon attaches (watch caches); None = always GET
        self.pod_cache: Informer | None = None

    def lister(self, path: str, **query):
        """(list_fn, watch_fn) of a collection for an Informer."""
        def list_fn(cont: str = ""):
            page = dict(query, limit=str(PAGE), **({"continue": cont} if cont else {}))
            return self.http.request("GET", path, page, timeout=max(self.timeout, 60))

        def watch_fn(resource_version: str, timeout_seconds: int = 300):
            return self.http.watch(path, dict(query, resourceVersion=resource_version, allowWatchBookmarks="true",
                                              timeoutSeconds=str(timeout_seconds)), timeout=timeout_seconds + 30)
        return list_fn, watch_fn

    def start_caches(self, node_name: str | None) -> None:
        """Daemon only: watch NADs cluster-wide and the pods of this node."""
        list_fn, watch_fn = self.lister(kubeclient.path(NAD_GROUP, NAD_VERSION, NAD_PLURAL))
        self.nad_cache = Informer("nads", list_fn, watch_fn, self.count_call).start()
        if node_name:
            list_fn, watch_fn = self.lister("/api/v1/pods", fieldSelector=f"spec.nodeName={node_name}")
            self.pod_cache = Informer("pods", list_fn, watch_fn, self.count_call).start()

    def count_call(self, verb: str) -> None:
        """One API request made (the daemon's metrics); also lent to the daemon's other API
        users (fixipam's cluster scope, the informers) so every request is counted here."""
        with self._lock:
            self.calls[verb] = self.calls.get(verb, 0) + 1

    def count_error(self, verb: str, code) -> None:
        with self._lock:
            self.errors[(verb, code)] = self.errors.get((verb, code), 0) + 1

    def _call(self, verb: str, what: str, fn, attempts: int = 4):
        delay = 0.05
        for attempt in range(attempts):
            self.count_call(verb)
            fault.point(f"k8s.{verb}")
            try:
                return fn()
            except self.exc as e:
                self.count_error(verb, e.status)
                if e.status in RETRYABLE and attempt + 1 < attempts:
                    time.sleep(delay * (1 + random.random()))
                    delay *= 2
                    continue
                raise
            except OSError as e:  # refused / reset / timed out / TLS: the API is away
                self.count_error(verb, "unreachable")
                if attempt + 1 < attempts:
                    time.sleep(delay)
                    delay *= 2
                    continue
                raise CNIError(TRY_AGAIN, f"failed to {verb} {what}: Kubernetes API unreachable", str(e)[:300]) from None

    def _get(self, path: str) -> dict:
        return self.http.request("GET", path)

    def _merge_patch(self, path: str, body: dict) -> dict:
        return self.http.request("PATCH", path, body=body, content_type="application/merge-patch+json")

    def get_pod(self, namespace: str, name: str, uid: str | None = None) -> dict:
        cached = self.pod_cache.get(namespace, name) if self.pod_cache else None
        if cached and (not uid or (cached.get("metadata") or {}).get("uid") == uid):
            return cached
        p = kubeclient.path("", "v1", "pods", namespace, name)
        try:
            return self._call("get", f"pod {namespace}/{name}", lambda: self._get(p))
        except self.exc as e:
            raise CNIError(API_FAILED, f"failed to get pod {namespace}/{name}", f"HTTP {e.status}: {e.reason}") from None

    def wait_pod(self, namespace: str, name: str, uid: str | None, is_del: bool) -> dict | None:
        """The pod as Multus v4.1.4 reads it (pkg/multus/multus.go GetPod): polled every 250 ms
        for up to 2.5 s through API errors worth retrying and, on ADD, NotFound (the pod can
        reach the node before the watch cache or the API replica serving us has it). On DEL a
        pod that is gone is None. One more try after the deadline, as Multus."""
        deadline = time.monotonic() + POD_WAIT
        while True:
            try:
                return self.get_pod(namespace, name, uid)
            except CNIError as e:
                not_found = "HTTP 404" in (e.details or "")
                if is_del and not_found:
                    return None
                if time.monotonic() >= deadline or not (not_found or e.code == TRY_AGAIN):
                    if time.monotonic() >= deadline and not_found and not is_del:
                        _log.warning("pod %s/%s still not found after %.1f s", namespace, name, POD_WAIT)
                    raise
            time.sleep(POD_POLL)

    def get_nad(self, namespace: str, name: str) -> dict:
        cached = self.nad_cache.get(namespace, name) if self.nad_cache else None
        if cached:
            return cached
        p = kubeclient.path(NAD_GROUP, NAD_VERSION, NAD_PLURAL, namespace, name)
        try:
            return self._call("get", f"network-attachment-definition {namespace}/{name}", lambda: self._get(p))
        except self.exc as e:
            if e.status == 404:
                raise CNIError(NETWORK_NOT_FOUND, f"cannot find a network-attachment-definition ({name}) "
                               f"in namespace ({namespace})", "HTTP 404") from None
            raise CNIError(API_FAILED, f"failed to get network-attachment-definition {namespace}/{name}",
                           f"HTTP {e.status}: {e.reason}") from None

    def patch_pod_annotations(self, namespace: str, name: str, annotations: dict, uid: str | None = None,
                              attempts: int = 6) -> None:
        """Merge-patch only the given annotations (never a whole-object update); retried with
        backoff on conflicts and server errors. With `uid`, a recreated pod of the same name is
        not touched (metadata.uid in a patch is a precondition on a real API server)."""
        body: dict = {"metadata": {"annotations": annotations}}
        if uid:
            body["metadata"]["uid"] = uid
        p = kubeclient.path("", "v1", "pods", namespace, name)
        try:
            self._call("patch", f"pod {namespace}/{name}", lambda: self._merge_patch(p, body), attempts=attempts)
        except self.exc as e:
            raise CNIError(API_FAILED, f"failed to patch pod {namespace}/{name}", f"HTTP {e.status}: {e.reason}") from None

    def create_event(self, namespace: str, body: dict, timeout: float | None = None) -> None:
        """POST one core/v1 Event (meta/events.py owns rate limiting and retries)."""
        p = kubeclient.path("", "v1", "events", namespace, None)
        try:
            self._call("create", f"event in {namespace}",
                       lambda: self.http.request("POST", p, body=body, timeout=timeout), attempts=1)
        except self.exc as e:
            raise CNIError(API_FAILED, f"failed to create event in {namespace}", f"HTTP {e.status}: {e.reason}") from None

    def get_node(self, name: str, attempts: int = 1) -> dict:
        """GET one node by name (never a LIST). One attempt by default: the availability
        publisher (meta/daemon/availability.py) owns retry and backoff."""
        p = kubeclient.path("", "v1", "nodes", None, name)
        try:
            return self._call("get", f"node {name}", lambda: self._get(p), attempts=attempts)
        except self.exc as e:
            raise CNIError(API_FAILED, f"failed to get node {name}", f"HTTP {e.status}: {e.reason}") from None

    def patch_node(self, name: str, body: dict, attempts: int = 1) -> dict:
        """Merge-patch a node (application/merge-patch+json: maps merge, null deletes a key);
        returns the node as the server answered. One attempt by default: the availability
        publisher owns retry and backoff (pass `attempts` for this client's own retries)."""
        p = kubeclient.path("", "v1", "nodes", None, name)
        try:
            return self._call("patch", f"node {name}", lambda: self._merge_patch(p, body), attempts=attempts)
        except self.exc as e:
            raise CNIError(API_FAILED, f"failed to patch node {name}", f"HTTP {e.status}: {e.reason}") from None


_clients: dict = {}


def client(kubeconfig: str) -> Kube:
    """One warm client per kubeconfig. (The daemon's engines take its node client instead,
    whatever kubeconfig a CNI config names: meta/engine.py Services.kube.)"""
    if kubeconfig not in _clients:
        _clients[kubeconfig] = Kube(kubeconfig)
    return _clients[kubeconfig]

