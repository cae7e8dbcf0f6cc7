"""The Kubernetes API as netmeta uses it: api.py (GET a pod, GET a NAD, PATCH network-status or
a node, Events, with the retries and timeouts of a CNI call), informer.py (LIST+WATCH caches for
the daemon and the extender), nodekeys.py (the node availability annotation/label names that the
daemon publishes and the extender reads).

May import: `cni` (cni.kube.client does the HTTP). Nothing else of `meta`."""
