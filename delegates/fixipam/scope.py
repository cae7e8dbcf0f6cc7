"""Which stores a fixipam call uses (node-local always; cluster-wide per `ipam.scope`) and what
an API outage does to it: at ADD `ipam.onApiUnavailable` decides (refuse with code 11, or
reserve on this node only); DEL and GC never wait for the API (the node-local store is the
source of truth for DEL; a cluster reservation left behind is released by the daemon's GC)."""
import contextlib
import ipaddress
import os

from cni import fault, files, log
from cni.errors import ADDRESS_IN_USE, TRY_AGAIN, CNIError, config_error

from . import addresses, cluster

_log = log.get("fixipam")
# In a network's node-local directory: "this network is reserved cluster-wide here". Without
# it, fixipam run in-process (the daemon down or killed mid-request: the shim falls back) could
# not tell a Kubernetes-free node from a daemon outage and would silently reserve node-locally.
MARKER = ".cluster-scope"


def _outage(policy, network: str, why: str):
    if policy.on_api_unavailable == "nodeLocal":
        _log.warning("network %s: reserving on this node only (ipam.onApiUnavailable=nodeLocal): %s", network, why)
        return None
    raise CNIError(TRY_AGAIN, f"failed to reserve cluster-wide on network {network}: Kubernetes API unavailable",
                   f"ipam.onApiUnavailable is refuse (set nodeLocal to reserve on this node only): {why[:200]}")


def for_add(policy, network: str, store_dir: str, lent: cluster.Api | None = None) -> cluster.Api | None:
    """The API to reserve through, or None for node scope. `lent`: the daemon's (FixIPAM's services)."""
    if policy.scope == "node":
        return None
    api = cluster.for_call(policy.kubeconfig, policy.node_name, lent)
    if api is None:
        if policy.scope == "cluster" or os.path.exists(os.path.join(store_dir, MARKER)):
            return _outage(policy, network, "cluster scope but this node's netmeta daemon has no Kubernetes "
                                             "client (kubeconfig + nodeName) or is not running, and "
                                             "ipam.kubeconfig is not set")
        return None
    if api.served is None:
        try:
            api.probe()
        except cluster.Unavailable as e:
            return _outage(policy, network, str(e))
    if api.served is False:
        return _not_served(policy, network)
    return api


def mark(api, store_dir: str) -> None:
    """Under the network's lock (atomic_write's temp name is per process, not per thread)."""
    marker = os.path.join(store_dir, MARKER)
    if api is not None and not os.path.exists(marker):
        files.write_json(marker, {"scope": "cluster"})


# compiled (re's cache) on its first use, a conflict in cluster scope: `re` is imported there
# only (~5 ms of an exec'd call with enum, functools ...)
_LOCAL_CONFLICT = r"^address (\S+) is already reserved on this node "


@contextlib.contextmanager
def naming_holder(api, network: str):
    """A node-local conflict names only the holder's container; in cluster scope the refusal
    also names its pod and node, from the cluster reservation."""
    try:
        yield
    except CNIError as e:
        import re
        m = re.match(_LOCAL_CONFLICT, e.msg) if api is not None and e.code == ADDRESS_IN_USE else None
        if m:
            try:
                obj = cluster.get(api, cluster.object_name(network, m.group(1)))
            except (cluster.Unavailable, CNIError):
                obj = None
            if obj:
                e.msg += f" by {cluster.holder(obj)}"
        raise


def _not_served(policy, network: str):
    if policy.scope == "cluster":
        raise config_error("ipam.scope", f"is cluster but the API does not serve {cluster.COLLECTION} "
                                         "(install conf/crd-fixed-ip-reservation.yaml)")
    _log.debug("network %s: node scope (%s not served)", network, cluster.COLLECTION)
    return None


def reserve(api, policy, network: str, keys: list, owner: cluster.Owner, undo) -> None:
    """Cluster reservations for every key; each one made registers its release on `undo`."""
    for key in keys:
        try:
            made = cluster.reserve(api, network, key, owner)
        except cluster.Unavailable as e:
            if _outage(policy, network, str(e)) is None:
                return
        except cluster.NotServed:
            _not_served(policy, network)
            return
        else:
            if made:
                undo.callback(_undo_one, api, network, key, owner)
        fault.point("fixipam.add.cluster")


def _undo_one(api, network, key, owner) -> None:
    try:
        cluster.release(api, network, key, owner.container_id, owner.ifname)
    except (cluster.Unavailable, CNIError) as e:
        _log.warning("could not undo the cluster reservation of %s on %s (GC releases it): %s", key, network, e)


def _api_for(ipam: dict, lent: cluster.Api | None):
    """DEL/GC: the daemon's client (`lent`), or fixipam's own from the raw config (never an error here)."""
    if not isinstance(ipam, dict) or ipam.get("scope") == "node":
        return None
    kc, node = ipam.get("kubeconfig"), ipam.get("nodeName")
    try:
        return cluster.for_call(kc if isinstance(kc, str) and kc.startswith("/") else None,
                                node if isinstance(node, str) else None, lent)
    except CNIError as e:
        _log.warning("no cluster client for DEL/GC (%s): cluster reservations are left to GC", e)
        return None


def release(ipam: dict, network: str, keys, container_id: str, ifname: str,
            lent: cluster.Api | None = None) -> None:
    """DEL: release this attachment's cluster reservations; an outage only logs."""
    api = _api_for(ipam, lent)
    if api is None or api.served is False or not keys:
        return
    for key in sorted(keys):
        try:
            if cluster.release(api, network, key, container_id, ifname):
                _log.info("released %s on %s cluster-wide", key, network)
        except (cluster.Unavailable, CNIError) as e:
            _log.warning("cluster reservation of %s on %s not released now (the daemon's GC will): %s",
                         key, network, e)


def requested_keys(req) -> set:
    """The addresses this DEL's config/args name (best effort): a DEL retried after the
    node-local records went (a crash, the daemon down at the first DEL) still finds the cluster
    reservations; release() deletes only those whose owner is this attachment."""
    try:
        _, texts = addresses.requested(req.config, req.args)
        return {str(ipaddress.ip_interface(t.strip()).ip) for t in texts}
    except (CNIError, ValueError, TypeError, AttributeError):
        return set()


def gc(ipam: dict, network: str, keep: set, lent: cluster.Api | None = None) -> None:
    """CNI GC: this node's reservations of `network` whose attachment is not in `keep`."""
    api = _api_for(ipam, lent)
    if api is None or api.served is False:
        return
    try:
        items = cluster.list_reservations(api, node=api.node, network=network)
        for obj in items:
            s = obj.get("spec") or {}
            if s.get("node") == api.node and s.get("network") == network and \
                    (s.get("containerID"), s.get("ifname")) not in keep:
                cluster.delete(api, obj)
                _log.info("gc released %s on %s cluster-wide (%s)", s.get("address"), network, cluster.holder(obj))
    except (cluster.Unavailable, CNIError) as e:
        _log.warning("cluster GC of %s skipped: %s", network, e)
