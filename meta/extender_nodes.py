"""A node's published SR-IOV availability, as the scheduler extender reads it: the annotations
meta/nodestatus.py writes (`sriov/vfCount` = free VFs on the node; `sriov/vfDetail` = per-PF JSON
{"<pf>": {"total", "free", "allocated", "pfAttached"[, "error"]}}, optional)."""
from __future__ import annotations

import json
from dataclasses import dataclass

from .nodestatus import COUNT_ANNOTATION, DETAIL_ANNOTATION


@dataclass(frozen=True)
class Free:
    total: int | None                 # sriov/vfCount; None: not published (see `problem`)
    pfs: dict | None = None           # sriov/vfDetail: {pf: (free, total)}; None: absent/invalid
    problem: str = ""
    capacity: int | None = None       # all VFs of the node's PFs (from the detail), or None


def _count(v):
    return v if isinstance(v, int) and not isinstance(v, bool) and v >= 0 else None


def parse_free(node) -> Free:
    """A node's published availability (meta/nodestatus.py writes it)."""
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
    if isinstance(detail, dict):
        pfs = {}
        for pf, e in detail.items():
            free, cap = (_count(e.get("free")), _count(e.get("total"))) if isinstance(e, dict) else (None, None)
            if free is not None:
                pfs[pf] = (free, cap if cap is not None else free)
    return Free(int(raw), pfs, capacity=None if pfs is None else sum(cap for _, cap in pfs.values()))
