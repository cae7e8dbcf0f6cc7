"""Pod annotations, parsed exactly as Multus v4.1.4 parses them: the network-selection
annotation (parse.py, with Go's JSON and value rules in gojson.py / govalues.py, the result types
in selection.py, the error in errors.py) and our per-pod SR-IOV overrides (sriov.py).

May import: `cni` and `delegates.sriov.podannotations` (the same syntax the stand-alone sriov
plugin reads). Pure functions: no I/O, no Kubernetes client, nothing else of `meta`."""
