"""Our delegate plugins, each also a stand-alone CNI plugin: sriov/ and fixipam/; registry.py is
the one table naming all our plugins.

May import: `cni` and `delegates.registry`. Never `meta` (tests/test_architecture.py)."""
