"""A node's published SR-IOV availability, as the scheduler extender reads it: the annotations
meta/daemon/availability.py writes (`sriov/vfCount` = free VFs on the node; `sriov/vfDetail` = per-PF JSON
{"<pf>": {"total", "free", "allocated", "pfAttached"[, "pods"][, "error"]}}, optional).

`pods` lists the UIDs of the pods holding the PF's VFs. When every PF of a node lists them, the
node "names its holders": the extender then knows exactly which of the pods it placed there are
already inside the published count (see meta/extender/ledger.py). The holders are kept as 8-byte
digests in one bytes object (a node with 64 busy VFs costs 512 bytes, not 64 str objects)."""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

from meta.kube.nodekeys import COUNT_ANNOTATION, DETAIL_ANNOTATION

DIGEST = 8


def digest(uid: str) -> bytes:
    """A pod UID's 8-byte digest (blake2b): 2^-64 odds that two UIDs share one."""
    return hashlib.blake2b(uid.encode(), digest_size=DIGEST).digest()


@dataclass(frozen=True, slots=True)
class Free:
    total: int | None                 # sriov/vfCount; None: not published (see `problem`)
    pfs: dict | None = None           # sriov/vfDetail: {pf: (free, total)}; None: absent/invalid
    problem: str = ""
    capacity: int | None = None       # all VFs of the node's PFs (from the detail), or None
    holders: bytes | None = None      # digests of the pods holding VFs; None: the node names none

    def holds(self, key: bytes) -> bool:
        """The node's published count includes the pod with this digest."""
        blob = self.holders
        if not blob:
            return False
        i = blob.find(key)
        while i != -1:
            if i % DIGEST == 0:
                return True
            i = blob.find(key, i + 1)
        return False


def _count(v):
    return v if isinstance(v, int) and not isinstance(v, bool) and v >= 0 else None


def parse_free(node) -> Free:
    """A node's published availability (meta/daemon/availability.py writes it)."""
    md = node.get("metadata") if isinstance(node, dict) else None
    ann = (md.get("annotations") if isinstance(md, dict) else None) or {}
    raw = ann.get(COUNT_ANNOTATION) if isinstance(ann, dict) else None
    if raw is None:
        return Free(None, None, f"node publishes no SR-IOV availability (no {COUNT_ANNOTATION} annotation)")
    if not (isinstance(raw, str) and raw.isascii() and raw.isdigit() and len(raw) < 10):
        return Free(None, None, f"invalid {COUNT_ANNOTATION} annotation {json.dumps(raw)[:40]}")
    pfs = None
    try:
        detail = json.loads(ann.get(DETAIL_ANNOTATION) or "null")
    except (TypeError, ValueError):
        detail = None
    holders: list | None = None
    if isinstance(detail, dict):
        pfs, holders = {}, []
        for pf, e in detail.items():
            free, cap = (_count(e.get("free")), _count(e.get("total"))) if isinstance(e, dict) else (None, None)
            if free is not None:
                pfs[pf] = (free, cap if cap is not None else free)
            pods = e.get("pods") if isinstance(e, dict) else None
            if holders is not None and isinstance(pods, list):
                holders.extend(digest(p) for p in pods if isinstance(p, str) and p)
            else:
                holders = None      # one PF that does not name its holders: the node does not
    return Free(int(raw), pfs, capacity=None if pfs is None else sum(cap for _, cap in pfs.values()),
                holders=None if holders is None else b"".join(sorted(set(holders))))
