"""The names of node VF availability on the Node object (DESIGN.md "Node VF availability"):
published by the node daemon (meta/daemon/availability.py), read by the scheduler extender
(meta/extender/nodes.py)."""
COUNT_ANNOTATION = "sriov/vfCount"
DETAIL_ANNOTATION = "sriov/vfDetail"
AVAILABLE_LABEL = "sriov/freeVFAvailable"
