"""The simulated SR-IOV NIC (for this machine, tests, the demo and the bench): nic.py (create,
refresh, destroy; the `netmeta sim` CLI), sysfs.py (a fake sysfs tree laid out like the real
one), ports.py (VFs as veth pairs, over cni/rtnl.py), vftable.py (the `sim` VF-table backend: the VF
table in a JSON file; it refreshes the fake tree itself before every read the product makes),
bind.py (driver rebinding, for DPDK VFs), names.py (names, limits, errors).

May import: `cni` and the product's sriov modules it emulates (topology, vftable); of pyroute2,
NetlinkError (what cni/rtnl.py raises), the rest only inside create/destroy (netns): what runs
per call (refresh, bind) stays on cni/rtnl.py. The product never imports it; it is loaded by
name (delegates/registry.py BACKENDS)."""
