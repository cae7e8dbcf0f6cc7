"""The Kubernetes API as netmeta uses it: GET a pod, GET a NetworkAttachmentDefinition, PATCH
one pod annotation, GET and merge-PATCH this node (VF availability). The `kubernetes` client
is imported lazily (it costs ~190 ms): the daemon keeps one warm; the thin path pays only
when it really talks to the API.

Every call is counted by verb (for metrics and for the tests that count API requests)."""
import json
import random
import socket
import threading
import time

from cni import fault, log
from cni.errors import API_FAILED, NETWORK_NOT_FOUND, TRY_AGAIN, CNIError

_log = log.get("k8s")
NAD_GROUP, NAD_VERSION, NAD_PLURAL = "k8s.cni.cncf.io", "v1", "network-attachment-definitions"
RETRYABLE = {409, 429, 500, 502, 503, 504}


class Kube:
    def __init__(self, kubeconfig: str | None, timeout: float = 10.0, urllib3_retries: bool = True):
        """kubeconfig None = the pod's service account (in-cluster)."""
        from kubernetes import client, config
        cfg = client.Configuration()
        try:
            if kubeconfig:
                config.load_kube_config(config_file=kubeconfig, client_configuration=cfg)
            else:
                config.load_incluster_config(client_configuration=cfg)
        except Exception as e:   # ConfigException, YAML errors, a missing file: all a bad config
            from cni.errors import config_error
            raise config_error("kubeconfig", f"cannot load {kubeconfig or 'the in-cluster config'}: {str(e)[:200]}") from None
        if not urllib3_retries:
            cfg.retries = False
        # urllib3's default TCP_NODELAY is lost once socket_options is set: set it back, or
        # every keep-alive request waits ~40 ms for a delayed ACK (Nagle)
        cfg.socket_options = [(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1),
                              (socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)]
        self._api = client.ApiClient(cfg)
        self.core = client.CoreV1Api(self._api)
        self.custom = client.CustomObjectsApi(self._api)
        self.exc = client.exceptions.ApiException
        self.timeout = timeout
        self.calls: dict = {}
        self._lock = threading.Lock()
        self.nad_cache = None   # Informers the daemon attaches (watch caches); None = always GET
        self.pod_cache = None

    def start_caches(self, node_name: str | None) -> None:
        """Daemon only: watch NADs cluster-wide and the pods of this node."""
        import functools
        from .informer import Informer
        nads = functools.partial(self.custom.list_cluster_custom_object, NAD_GROUP, NAD_VERSION, NAD_PLURAL)
        self.nad_cache = Informer("nads", nads, nads, self._count).start()
        if node_name:
            pods = functools.partial(self.core.list_pod_for_all_namespaces, field_selector=f"spec.nodeName={node_name}")
            self.pod_cache = Informer("pods", lambda: self._api.sanitize_for_serialization(pods()), pods,
                                      self._count).start()

    def _count(self, verb: str) -> None:
        with self._lock:
            self.calls[verb] = self.calls.get(verb, 0) + 1

    def _call(self, verb: str, what: str, fn, attempts: int = 4):
        delay = 0.05
        for attempt in range(attempts):
            self._count(verb)
            fault.point(f"k8s.{verb}")
            try:
                return fn()
            except self.exc as e:
                if e.status in RETRYABLE and attempt + 1 < attempts:
                    time.sleep(delay * (1 + random.random()))
                    delay *= 2
                    continue
                raise
            except OSError as e:  # connection refused / reset / timeout: the API is away
                if attempt + 1 < attempts:
                    time.sleep(delay)
                    delay *= 2
                    continue
                raise CNIError(TRY_AGAIN, f"failed to {verb} {what}: Kubernetes API unreachable", str(e)) from None
            except Exception as e:  # urllib3 errors are not OSError
                if "urllib3" in type(e).__module__ and attempt + 1 < attempts:
                    time.sleep(delay)
                    delay *= 2
                    continue
                if "urllib3" in type(e).__module__:
                    raise CNIError(TRY_AGAIN, f"failed to {verb} {what}: Kubernetes API unreachable",
                                   str(e)[:300]) from None
                raise

    def get_pod(self, namespace: str, name: str, uid: str | None = None) -> dict:
        cached = self.pod_cache.get(namespace, name) if self.pod_cache else None
        if cached and (not uid or (cached.get("metadata") or {}).get("uid") == uid):
            return cached

        def go():
            return self._api.sanitize_for_serialization(
                self.core.read_namespaced_pod(name, namespace, _request_timeout=self.timeout))
        try:
            return self._call("get", f"pod {namespace}/{name}", go)
        except self.exc as e:
            raise CNIError(API_FAILED, f"failed to get pod {namespace}/{name}", f"HTTP {e.status}: {e.reason}") from None

    def get_nad(self, namespace: str, name: str) -> dict:
        cached = self.nad_cache.get(namespace, name) if self.nad_cache else None
        if cached:
            return cached

        def go():
            return self.custom.get_namespaced_custom_object(NAD_GROUP, NAD_VERSION, namespace, NAD_PLURAL, name,
                                                            _request_timeout=self.timeout)
        try:
            return self._call("get", f"network-attachment-definition {namespace}/{name}", go)
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
        body = {"metadata": {"annotations": annotations}}
        if uid:
            body["metadata"]["uid"] = uid

        def go():
            return self.core.patch_namespaced_pod(name, namespace, body, _request_timeout=self.timeout,
                                                  _content_type="application/merge-patch+json")
        try:
            self._call("patch", f"pod {namespace}/{name}", go, attempts=attempts)
        except self.exc as e:
            raise CNIError(API_FAILED, f"failed to patch pod {namespace}/{name}", f"HTTP {e.status}: {e.reason}") from None

    def get_node(self, name: str, attempts: int = 1) -> dict:
        """GET one node by name (never a LIST). One attempt by default: the availability
        publisher (meta/nodestatus.py) owns retry and backoff."""
        def go():
            return self._api.sanitize_for_serialization(
                self.core.read_node(name, _request_timeout=self.timeout))
        try:
            return self._call("get", f"node {name}", go, attempts=attempts)
        except self.exc as e:
            raise CNIError(API_FAILED, f"failed to get node {name}", f"HTTP {e.status}: {e.reason}") from None

    def patch_node(self, name: str, body: dict, attempts: int = 1) -> dict:
        """Merge-patch a node (application/merge-patch+json: maps merge, null deletes a key);
        returns the node as the server answered. One attempt by default: the availability
        publisher owns retry and backoff (pass `attempts` for this client's own retries)."""
        def go():
            return self._api.sanitize_for_serialization(
                self.core.patch_node(name, body, _request_timeout=self.timeout,
                                     _content_type="application/merge-patch+json"))
        try:
            return self._call("patch", f"node {name}", go, attempts=attempts)
        except self.exc as e:
            raise CNIError(API_FAILED, f"failed to patch node {name}", f"HTTP {e.status}: {e.reason}") from None


_clients: dict = {}
_node_client = None


def use_node_client(kube: Kube) -> None:
    """The daemon's client (its node identity, its watch caches) serves every request, whatever
    kubeconfig a CNI config names: one identity and one set of caches per node."""
    global _node_client
    _node_client = kube


def client(kubeconfig: str) -> Kube:
    """One warm client per kubeconfig (the daemon reuses it across requests)."""
    if _node_client is not None:
        return _node_client
    if kubeconfig not in _clients:
        _clients[kubeconfig] = Kube(kubeconfig)
    return _clients[kubeconfig]


def dumps(obj) -> str:
    return json.dumps(obj, separators=(",", ":"))
