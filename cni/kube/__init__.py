"""A small Kubernetes JSON client (client.py: GET/PATCH/LIST/WATCH over urllib3, kubeconfig and
in-cluster credentials) and the `kubernetes` package's loader for the credentials it lacks
(creds.py, imported only then). In cni/ because fixipam (which never imports meta) uses it too.

May import: the standard library, urllib3, yaml, and `cni`. Nothing else of ours."""
