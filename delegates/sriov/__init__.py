"""sriov: attach a VF (or the whole PF) to a pod and restore everything on DEL. plugin.py (the
verbs), config.py + callargs.py + podoverrides.py (what to set), device.py + topology.py (sysfs)
+ vftable.py / vftable_netlink.py (the PF's VF table through rtnetlink), netdev.py (moving and
configuring the netdev), records.py + owner.py + damaged.py (allocation records), availability.py
(free VFs per PF), reserved.py (the device plugin's VFs).

May import: `cni`, `delegates.registry`. Never `meta`, and never sim/: the simulated NIC is a
VF-table backend the registry names (`backend: sim`), loaded by name like any backend."""
