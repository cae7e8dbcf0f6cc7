"""fixipam: fixed-IP IPAM. The address comes from CNI_ARGS `IP=`, `runtimeConfig.ips` or the
config's `ips`, validated against the subnet, gateway and other reservations: node-local files
(store.py) or cluster-wide FixedIPReservation objects (cluster.py, clustergc.py).

May import: `cni` (including cni.kube) only."""
