"""The small JSON Kubernetes client lives in cni/kubeclient.py: fixipam uses it too (its own
`kubeconfig` key) and delegates never import `meta`. This name stays for meta's modules and the
tests: it is the same module object, so patching either name patches both."""
import sys

from cni import kubeclient as _kubeclient

sys.modules[__name__] = _kubeclient
