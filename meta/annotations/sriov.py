"""Our per-pod SR-IOV override annotations, `networks-sriov-vlan` and `networks-sriov-txrate`:
their syntax (a non-negative integer for every SR-IOV attachment of the pod, or a JSON object
per network) and which value applies to one attachment. Syntax only: the limits a network allows
are applied by meta/overrides.py. The parser is shared with the stand-alone sriov plugin, so it
lives in delegates/sriov/podannotations.py (delegates never import meta)."""
from __future__ import annotations

from delegates.sriov.podannotations import SRIOV_TXRATE_ANNOTATION, SRIOV_VLAN_ANNOTATION, override_for, parse_override

__all__ = ["SRIOV_TXRATE_ANNOTATION", "SRIOV_VLAN_ANNOTATION", "override_for", "parse_override"]
