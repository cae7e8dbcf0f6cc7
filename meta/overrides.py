"""Per-pod SR-IOV override policy (`podOverrides`): shared with the stand-alone sriov plugin,
so it lives in delegates/sriov/podoverrides.py (delegates never import meta)."""
from delegates.sriov.podoverrides import TXRATE_ANNOT, VLAN_ANNOT, apply, parse_ranges, policy_of

__all__ = ["TXRATE_ANNOT", "VLAN_ANNOT", "apply", "parse_ranges", "policy_of"]
