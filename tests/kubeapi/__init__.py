"""A test Kubernetes API server (kube-apiserver stand-in) for netmeta's tests.

Nothing that runs a real kube-apiserver can be installed here (TESTING.md, "Kubernetes API"), so
this package serves, over HTTPS with a generated CA, what netmeta needs from a cluster: core/v1
nodes, namespaces, pods (+ /status), events, apiextensions.k8s.io/v1 CustomResourceDefinitions and any
custom resource (NetworkAttachmentDefinitions) once its CRD exists. The real `kubernetes` Python
client talks to it unchanged. Each module names the kube-apiserver behaviour it copies:

  server.py      KubeAPIServer: start/stop, kubeconfig, direct state access, faults, request log
  handler.py     HTTP/1.1 + TLS, keep-alive, chunked watch streams, filter-chain order
  routing.py     URL -> request attributes (RequestInfoFactory)
  auth.py        bearer tokens, RBAC-like rules, 401/403 Status messages
  endpoints.py   REST verbs, discovery, LIST paging, DELETE answers, media types
  store.py       global resourceVersion, optimistic concurrency, create/update/delete semantics
  watch.py       watch cache semantics: start points, 410 Expired, selector transitions
  patch.py       json-patch, merge-patch, strategic-merge-patch (built-in kinds only)
  selectors.py   label and field selectors
  validation.py  names, defaults, status subresource split, pod/CRD validation
  schema.py      CR pruning/type checks from the CRD's openAPIV3Schema
  resources.py   resource registry, CRD-backed resources, discovery documents
  errors.py      Status bodies (NotFound, AlreadyExists, Conflict, Invalid, ...)
  faults.py      fault injection and the request log (test-only)
  certs.py       CA + serving certificate
  objects.py     manifests: the NAD CRD, NADs, pods, nodes, namespaces

Usage:
    srv = KubeAPIServer(tokens={"admin-token": "*"}).start()
    srv.kubeconfig(path, token="admin-token")  # for kubernetes.config.new_client_from_config
    ...
    srv.stop()
"""

from .errors import ApiError
from .faults import Fault, RequestRecord
from .server import KubeAPIServer

__all__ = ["ApiError", "Fault", "KubeAPIServer", "RequestRecord"]
