"""Cluster-wide reservations of fixed addresses: one FixedIPReservation (netmeta.io/v1,
cluster-scoped, conf/crd-fixed-ip-reservation.yaml) per (network, address), named from both,
so the API server's create-if-absent is the lock: the POST that answers 201 owns the address,
every other gets 409 AlreadyExists and the holder's pod and node from one GET.

fixipam never imports `meta`: the node daemon lends its API client (one identity, one
connection pool per node) as the `fixipam_api` of the Services it builds the plugin with
(delegates/registry.py; `node_api()` makes it). The client needs one method,
    request(method, path, query=None, body=None, content_type="application/json") -> dict
raising an exception with `.status` for an HTTP error and an OSError when no answer came
(cni/kubeclient.Client is one). Without the daemon, a `kubeconfig` key in fixipam's config
gives it its own client (`for_kubeconfig`); with neither, fixipam is node-local, as before.
"""
import ipaddress
import os
import time
from _thread import allocate_lock  # threading.Lock itself, without importing threading

from cni import fault, log
from cni.errors import ADDRESS_IN_USE, API_FAILED, CNIError, config_error

_log = log.get("fixipam")
GROUP, VERSION, PLURAL, KIND = "netmeta.io", "v1", "fixedipreservations", "FixedIPReservation"
COLLECTION = f"/apis/{GROUP}/{VERSION}/{PLURAL}"
LABEL_NETWORK, LABEL_NODE = "netmeta.io/network", "netmeta.io/node"
RETRYABLE = {429, 500, 502, 503, 504}


class Unavailable(Exception):
    """No usable answer from the API (unreachable, timeouts, 5xx after retries)."""


class NotServed(Exception):
    """The API answers but does not serve FixedIPReservations (the CRD is not installed)."""


class Owner:
    """Who a cluster reservation is for: the attachment (container ID + ifname) and its pod."""
    __slots__ = ("container_id", "ifname", "pod_namespace", "pod_name", "pod_uid")

    def __init__(self, container_id: str, ifname: str, pod_namespace: str = "", pod_name: str = "",
                 pod_uid: str = ""):
        self.container_id = container_id
        self.ifname = ifname
        self.pod_namespace = pod_namespace
        self.pod_name = pod_name
        self.pod_uid = pod_uid

    @classmethod
    def from_request(cls, req) -> "Owner":
        a = req.args
        return cls(req.container_id, req.ifname, a.get("K8S_POD_NAMESPACE", ""), a.get("K8S_POD_NAME", ""),
                   a.get("K8S_POD_UID", ""))


class Api:
    """The daemon's client, this node's name, and whether the kind is served (probed once,
    again after a 404 so a CRD installed later is picked up)."""

    def __init__(self, http, node: str, count=None, attempts: int = 3, count_error=None):
        self.http, self.node, self._count, self.attempts = http, node, count, attempts
        self._count_error = count_error   # (verb, status | "unreachable"): 404/409 are answers here
        self.served: bool | None = None
        self._lock = allocate_lock()

    def call(self, verb: str, method: str, path: str, **kw) -> dict:
        """One request with a short bounded retry on 5xx/429/no answer; HTTP errors other
        than those are raised as they came (`.status`)."""
        delay = 0.05
        err: Exception      # the last attempt's failure
        for attempt in range(self.attempts):
            if self._count:
                self._count(verb)
            fault.point(f"fixipam.api.{verb}")
            try:
                return self.http.request(method, path, **kw)
            except OSError as e:
                err = e
                self._error(verb, "unreachable")
            except Exception as e:   # an ApiError of whichever client was provided
                status = getattr(e, "status", None)
                if status not in (404, 409):
                    self._error(verb, status)
                if status not in RETRYABLE:
                    raise
                err = e
            if attempt + 1 < self.attempts:
                time.sleep(delay)
                delay *= 2
        raise Unavailable(f"{method} {path}: {str(err)[:200]}")

    def _error(self, verb: str, code) -> None:
        if self._count_error:
            self._count_error(verb, code)

    def probe(self) -> bool:
        """Is the kind served? One LIST with limit=1. Raises Unavailable."""
        before = self.served
        try:
            self.call("list", "GET", COLLECTION, query={"limit": "1"})
            self.served = True
        except Unavailable:
            raise
        except Exception as e:
            if getattr(e, "status", None) != 404:
                raise Unavailable(f"probe {COLLECTION}: {e}") from None
            self.served = False
        if self.served != before:
            _log.info("fixipam cluster reservations %s", "on" if self.served else
                      f"off by default: {COLLECTION} is not served (install conf/crd-fixed-ip-reservation.yaml)")
        return self.served


def node_api(http, node: str | None, count=None, count_error=None) -> Api | None:
    """Daemon start-up: the Api fixipam reserves cluster-wide through, with the daemon's client
    as node `node` (None without a node name)."""
    if not node:
        _log.warning("fixipam cluster reservations off: the daemon has no nodeName")
        return None
    return Api(http, node, count, count_error=count_error)   # probed by the GC thread at once, or by the first ADD


_own: dict = {}


def for_kubeconfig(kubeconfig: str, node: str | None) -> Api:
    """fixipam's own client (no daemon): one per kubeconfig and node in this process.
    Raises a config error naming ipam.kubeconfig / ipam.nodeName."""
    node = node or os.environ.get("NODE_NAME")
    if not node:
        raise config_error("ipam.nodeName", "needed with ipam.kubeconfig (or set $NODE_NAME)")
    key = (kubeconfig, node)
    if key not in _own:
        from cni.kube import client as kubeclient
        from delegates.registry import SHIM
        try:
            ep = kubeclient.from_kubeconfig(kubeconfig, product=SHIM.product)
        except kubeclient.ConfigError as e:
            # the reason goes to the node's log only: it may quote the file, and a NAD author
            # (who sees CNI errors in pod events) chooses this path
            _log.error("ipam.kubeconfig %s: %s", kubeconfig, e)
            raise config_error("ipam.kubeconfig", f"cannot load {kubeconfig[:200]} (see the node's log)") from None
        _own[key] = Api(kubeclient.Client(ep, timeout=5.0, user_agent=SHIM.product), node)
    return _own[key]


def for_call(kubeconfig: str | None, node: str | None, lent: Api | None = None) -> Api | None:
    """The daemon's client (`lent`) when this runs in the daemon, else fixipam's own from `kubeconfig`."""
    if lent is not None:
        return lent
    return for_kubeconfig(kubeconfig, node) if kubeconfig else None


# ---------------- names ----------------
def network_label(network: str) -> str:
    """A label value (<= 63 chars, [a-z0-9-]) unique per network name: readable prefix + hash."""
    import hashlib  # these two here: a node-scope call (the exec'd fixipam's usual one) never needs them
    import re
    safe = re.sub(r"[^a-z0-9]+", "-", network.lower()).strip("-")[:40].strip("-") or "net"
    return f"{safe}-{hashlib.sha256(network.encode()).hexdigest()[:8]}"


def node_label(node: str) -> str:
    import re  # cluster scope only, as hashlib
    if len(node) <= 63 and re.fullmatch(r"[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?", node):
        return node
    import hashlib
    return "h-" + hashlib.sha256(node.encode()).hexdigest()[:40]


def object_name(network: str, ip: str) -> str:
    """<network label>.<address>: a DNS subdomain; IPv6 exploded with '-' (never ends in '-')."""
    addr = ipaddress.ip_address(ip)
    text = str(addr) if addr.version == 4 else addr.exploded.replace(":", "-")
    return f"{network_label(network)}.{text}"


def holder(obj: dict) -> str:
    s = obj.get("spec") or {}
    pod = f"{s.get('podNamespace')}/{s.get('podName')}" if s.get("podName") else f"container {str(s.get('containerID'))[:12]}"
    return f"pod {pod} on node {s.get('node') or '?'}"


def owned_by(obj: dict, container_id: str, ifname: str) -> bool:
    s = obj.get("spec") or {}
    return s.get("containerID") == container_id and s.get("ifname") == ifname


# ---------------- reserve / release ----------------
def _status(e) -> int | None:
    return getattr(e, "status", None)


def reserve(api: Api, network: str, ip: str, owner: Owner) -> bool:
    """Create the reservation (True), or find it already ours (False: a retried ADD). Raises
    CNIError ADDRESS_IN_USE naming the holder, Unavailable, NotServed."""
    name = object_name(network, ip)
    body = {"apiVersion": f"{GROUP}/{VERSION}", "kind": KIND,
            "metadata": {"name": name, "labels": {LABEL_NETWORK: network_label(network), LABEL_NODE: node_label(api.node)}},
            "spec": {"network": network, "address": ip, "node": api.node, "podNamespace": owner.pod_namespace,
                     "podName": owner.pod_name, "podUID": owner.pod_uid, "containerID": owner.container_id,
                     "ifname": owner.ifname}}
    for _ in range(3):
        try:
            api.call("create", "POST", COLLECTION, body=body)
            return True
        except (Unavailable, CNIError):
            raise
        except Exception as e:
            if _status(e) == 404:
                api.served = False
                raise NotServed(str(e)) from None
            if _status(e) != 409:
                raise CNIError(API_FAILED, f"failed to create {KIND} {name}", str(e)[:300]) from None
        existing = get(api, name)
        if existing is None:
            continue   # released between our POST and GET: try again
        if owned_by(existing, owner.container_id, owner.ifname):
            return False
        if owner.pod_uid and (existing.get("spec") or {}).get("podUID") == owner.pod_uid and \
                (existing.get("spec") or {}).get("ifname") == owner.ifname:
            # the same pod (UIDs are unique) in a new sandbox, whose old one's DEL could not reach
            # the API: the address is still its own; GC would never free it while the pod lives
            _log.info("%s: taking over %s from the pod's previous sandbox %s", name, ip,
                      str(existing["spec"].get("containerID"))[:12])
            delete(api, existing)
            continue
        raise CNIError(ADDRESS_IN_USE, f"address {ip} of network {network} is already reserved by {holder(existing)}",
                       f"{KIND} {name}")
    raise CNIError(ADDRESS_IN_USE, f"address {ip} of network {network} is contended", f"{KIND} {name}")


def get(api: Api, name: str) -> dict | None:
    try:
        return api.call("get", "GET", f"{COLLECTION}/{name}")
    except Unavailable:
        raise
    except Exception as e:
        if _status(e) == 404:
            return None
        raise CNIError(API_FAILED, f"failed to get {KIND} {name}", str(e)[:300]) from None


def delete(api: Api, obj: dict) -> None:
    """DELETE with the object's UID as precondition: a reservation re-created by another pod
    in the meantime is never removed (409 = not ours any more, 404 = already gone)."""
    meta = obj.get("metadata") or {}
    try:
        api.call("delete", "DELETE", f"{COLLECTION}/{meta.get('name')}",
                 body={"kind": "DeleteOptions", "apiVersion": "v1", "preconditions": {"uid": meta.get("uid")}})
    except Unavailable:
        raise
    except Exception as e:
        if _status(e) not in (404, 409):
            raise CNIError(API_FAILED, f"failed to delete {KIND} {meta.get('name')}", str(e)[:300]) from None


def release(api: Api, network: str, ip: str, container_id: str, ifname: str) -> bool:
    """Delete the reservation if it is this attachment's. Raises Unavailable."""
    obj = get(api, object_name(network, ip))
    if obj is None or not owned_by(obj, container_id, ifname):
        return False
    delete(api, obj)
    return True


def list_reservations(api: Api, node: str | None = None, network: str | None = None) -> list:
    sel = []
    if node:
        sel.append(f"{LABEL_NODE}={node_label(node)}")
    if network:
        sel.append(f"{LABEL_NETWORK}={network_label(network)}")
    q = {"labelSelector": ",".join(sel)} if sel else None
    try:
        return api.call("list", "GET", COLLECTION, query=q).get("items") or []
    except Unavailable:
        raise
    except Exception as e:
        raise CNIError(API_FAILED, f"failed to list {KIND}s", str(e)[:300]) from None
