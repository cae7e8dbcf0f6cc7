"""The meta plugin (`netmeta`). Its top level is the CNI engine: plan.py (config + pod
annotations + NADs -> ordered attachments), engine.py (ADD/DEL/CHECK/STATUS/GC for one pod),
attachments.py + parallel.py (running the delegates), cache.py (the DEL cache), networkstatus.py
and statusfile.py (network-status), events.py, devices.py (resourceName -> deviceID), plugin.py
(the verbs), main.py (the `netmeta` executable: the plugin, or the operator CLI that dispatches
to the programs below).

Packages, one per program or concern:
  annotations/  parsing a pod's network-selection and SR-IOV annotations (Multus semantics)
  kube/         the Kubernetes API as netmeta uses it (pods, NADs, nodes) and watch caches
  podresources/ the kubelet's PodResources API / checkpoint (which devices a pod got)
  daemon/       `netmeta daemon`, the node daemon: sockets, pools, metrics, node availability
  install/      `netmeta install`: putting netmeta on a node from a DaemonSet init container
  extender/     `netmeta scheduler-extender`: a control-plane Deployment, never on the node

May import: `cni`, `delegates.registry`, the delegates' public helpers, and its own packages.
The engine (this top level, except main.py) imports none of daemon/, install/, extender/: they
build on it, not the other way round; the extender imports nothing of daemon/ either."""
