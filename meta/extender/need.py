"""What SR-IOV VFs a pod asks for (the scheduler extender's view of a pod).

A pod's need = its network selections (`k8s.v1.cni.cncf.io/networks`, and a
`v1.multus-cni.io/default-network` replacement, both with Multus semantics: meta/annotations/parse.py)
whose NetworkAttachmentDefinition is of type `sriov` (a conf, or a conflist whose first plugin is
sriov), one VF each, grouped by PF when the NAD's sriov config names its `master`.
Not counted: NADs of other types, NADs without `spec.config` (Multus reads those from files on
the node, which the extender cannot see) and `pfOnly` networks (they take the PF, not a VF).
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from cni.errors import INVALID_CONFIG, NETWORK_NOT_FOUND, CNIError
from meta.annotations.parse import (
    DEFAULT_NETWORK_ANNOTATION,
    NETWORKS_ANNOTATION,
    AnnotationError,
    parse_default_network,
    parse_networks,
)
from meta.networks import from_nad

SRIOV_TYPE = "sriov"
MULTUS_NAMESPACE = "kube-system"   # Multus resolves a pod's default-network there (its default)
NO_CONF_DIR = "/nonexistent/netmeta-extender"


@dataclass(frozen=True)
class Need:
    total: int = 0
    pfs: tuple = ()        # ((pf, count), ...), sorted: the part of `total` whose NAD names its PF
    networks: tuple = ()   # "namespace/name" of each SR-IOV attachment, for messages

    def __bool__(self) -> bool:
        return self.total > 0

    def describe(self) -> str:
        per_pf = ", ".join(f"{n} on PF {pf}" for pf, n in self.pfs)
        return f"{self.total} VF(s)" + (f" ({per_pf})" if per_pf else "")


class PodError(Exception):
    """The pod cannot run anywhere as it is (invalid annotation, missing or invalid NAD):
    every node fails, unresolvably (preemption cannot help)."""


class LookupFailed(Exception):
    """A NAD could not be read now (API down, 403, ...): retry later (the result's Error)."""


class NeedResolver:
    """`need(pod)` -> Need. `nads` is anything with get_nad(namespace, name) -> dict that raises
    CNIError (meta.kube.api.Kube: watch cache first, GET on a miss). Parsed NADs are cached by
    (namespace, name, resourceVersion)."""

    MISSING_TTL = 5.0     # a NAD found missing is not asked for again for this long

    def __init__(self, nads, clock=time.monotonic):
        self.nads, self.clock = nads, clock
        self._kinds: dict = {}
        self._missing: dict = {}      # (namespace, name) -> when the miss stops counting
        self._lock = threading.Lock()

    def need(self, pod) -> Need:
        meta = pod.get("metadata") if isinstance(pod, dict) else None
        ann = meta.get("annotations") if isinstance(meta, dict) else None
        if not isinstance(meta, dict) or not isinstance(ann, dict):
            return Need()
        namespace = meta.get("namespace") or "default"
        networks, default = ann.get(NETWORKS_ANNOTATION), ann.get(DEFAULT_NETWORK_ANNOTATION)
        for key, value in ((NETWORKS_ANNOTATION, networks), (DEFAULT_NETWORK_ANNOTATION, default)):
            if value is not None and not isinstance(value, str):
                raise PodError(f"failed to parse {key}: annotation: must be a string")
        try:
            selections = parse_networks(networks, namespace)
            if default:
                selections.insert(0, parse_default_network(default, MULTUS_NAMESPACE))
        except AnnotationError as e:
            raise PodError(str(e)) from None
        total, names = 0, []
        pfs: dict[str, int] = {}
        for sel in selections:
            vf, pf = self._kind(sel.namespace, sel.name)
            if not vf:
                continue
            total += 1
            names.append(f"{sel.namespace}/{sel.name}")
            if pf:
                pfs[pf] = pfs.get(pf, 0) + 1
        return Need(total, tuple(sorted(pfs.items())), tuple(names))

    def _kind(self, namespace: str, name: str) -> tuple[bool, str | None]:
        """(takes a VF, its PF or None) for one NAD."""
        missing = f"network-attachment-definition {namespace}/{name} not found"
        with self._lock:
            until = self._missing.get((namespace, name))
        if until is not None and until > self.clock():     # negative cache: no GET per decision
            raise PodError(missing)
        try:
            nad = self.nads.get_nad(namespace, name)
        except CNIError as e:
            if e.code == NETWORK_NOT_FOUND:
                with self._lock:
                    if len(self._missing) > 4096:
                        self._missing.clear()
                    self._missing[(namespace, name)] = self.clock() + self.MISSING_TTL
                raise PodError(missing) from None
            raise LookupFailed(f"failed to get network-attachment-definition {namespace}/{name}: {e}") from None
        rv = ((nad.get("metadata") or {}).get("resourceVersion") or "") if isinstance(nad, dict) else ""
        key = (namespace, name, rv)
        with self._lock:
            hit = self._kinds.get(key)
        if hit is not None and rv:
            return hit
        kind = _classify(nad, namespace, name)
        with self._lock:
            if len(self._kinds) > 4096:
                self._kinds.clear()
            self._kinds[key] = kind
        return kind


def _classify(nad, namespace: str, name: str) -> tuple[bool, str | None]:
    if not isinstance(nad, dict) or not (nad.get("spec") or {}).get("config"):
        return False, None     # config lives in files on the node: not knowable here
    try:
        net = from_nad(nad, NO_CONF_DIR)
    except CNIError as e:
        if e.code in (INVALID_CONFIG, NETWORK_NOT_FOUND):
            raise PodError(f"network-attachment-definition {namespace}/{name}: {e}") from None
        raise
    if net.main_type != SRIOV_TYPE:
        return False, None
    plugin = net.conf["plugins"][0] if net.is_list else net.conf
    if plugin.get("pfOnly") is True:
        return False, None
    master = plugin.get("master")
    return True, master if isinstance(master, str) and master else None
