"""`netmeta scheduler-extender`: a kube-scheduler extender (filter, prioritize, bind) that runs
as a control-plane Deployment, never on a node. main.py (the command and its decisions),
api.py (the extender wire types), http.py (its HTTP(S) service), watch.py + nodes.py (the
cluster view: nodes' published availability), need.py (what a pod asks for), ledger.py (free
VFs per node and VFs held for placed pods).

May import: `cni`, meta.kube, meta.annotations. Never meta.daemon (it does not run there)."""
