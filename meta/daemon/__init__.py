"""`netmeta daemon`, one per node: server.py (the CNI socket and its operations), sockreader.py +
workers.py + requests.py (one selector thread, fixed pools, requests in flight), httpd.py +
metrics.py (health, readiness, Prometheus), availability.py + nodesettings.py + devicesync.py
(node VF availability and coexistence with the device plugin), statuswriter.py (network-status
off the request path), config.py (its --config), ops.py (`netmeta status` / `netmeta gc`).

May import: the engine (`meta` top level), meta.kube, meta.podresources, `cni`, `delegates`.
Nothing imports it but meta/main.py (the CLI)."""
