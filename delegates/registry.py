"""netmeta's plugins: the one table every place that names them reads.

Readers: cni/invoke.py's in-process dispatch (handed `OWN` by its callers: cni/ names no
plugin), meta/install/entrypoints.py (the executables' scripts), meta/install/main.py (--plugins),
meta/daemon/server.py (the plugins it serves), the Makefile (`python -m delegates.registry`).
Copies it cannot read, checked equal by tests/test_architecture.py: pyproject's
[project.scripts] and shim/netmeta-shim.c's names.

It lives in `delegates/` because every reader may import it cheaply: plain strings, stdlib
only, no import of `meta` (delegates never import meta) and none of `cni` (the shim path).
"""


# name -> main: module whose main() is the executable; plugin: "module:Class" the daemon
# serves; in_process: cni.invoke runs this type in the calling process instead of exec'ing it
PLUGINS: dict[str, dict] = {
    "netmeta": {"main": "meta.main", "plugin": "meta.plugin:MetaPlugin", "in_process": False},
    "sriov": {"main": "delegates.sriov.main", "plugin": "delegates.sriov.plugin:SRIOVPlugin",
              "in_process": True},
    "fixipam": {"main": "delegates.fixipam.main", "plugin": "delegates.fixipam.plugin:FixIPAM",
                "in_process": True},
}
NAMES = tuple(PLUGINS)
MAIN = {name: p["main"] for name, p in PLUGINS.items()}
# in our entry scripts (meta/install/entrypoints.py) and the native shim's binary (shim/netmeta-shim.c)
MARKER = "netmeta-plugin"


# SHIM is a class used as a namespace (not types.SimpleNamespace: `types` is one more import on
# the exec'd entries' start-up path); Own and Services are plain classes for the same reason.

class Own:
    """What cni.invoke.delegate(own=...) needs: the types it may run in-process, `plugin(type)`
    (a new instance of one, given `services`), and the bytes that mark an executable in CNI_PATH
    as ours (our marker, or the import line of pip's console scripts)."""
    in_process = {name: p["plugin"] for name, p in PLUGINS.items() if p["in_process"]}
    markers = (MARKER.encode(),) + tuple(f"from {m} import main".encode() for m in MAIN.values())

    def __init__(self, services: "Services"):
        self.services = services

    def plugin(self, name: str):
        return load(name)(self.services)

    @property
    def host_root(self):
        return self.services.host_root


class Services:
    """What our in-process delegates (sriov, fixipam) get from the process they run in, passed
    to their constructors (SRIOVPlugin(services), FixIPAM(services)) and, through `own`, to the
    delegates they run in turn (sriov -> fixipam): no module globals. STANDALONE: an exec'd
    plugin's (nothing lent). The node daemon builds its own (meta/daemon/server.py main):
    pod_lookup: its cached pod getter, (namespace, name, uid) -> pod dict (raises CNIError),
    for the sriov plugin's pod annotations (delegates/sriov/podannotations.py);
    fixipam_api: its API client for cluster-wide reservations (delegates/fixipam/cluster.Api);
    host_root: the filesystem view (cni/hostroot.py HostRoot, its `hostRoot`) the delegates
    they exec run in; None: our own."""

    def __init__(self, pod_lookup=None, fixipam_api=None, host_root=None):
        self.pod_lookup = pod_lookup
        self.fixipam_api = fixipam_api
        self.host_root = host_root
        self.own = Own(self)


STANDALONE = Services()
OWN = STANDALONE.own


class SHIM:
    """What the protocol library's start-up and locking code (cni/shim.py, cni/operation.py,
    cni/oplock.py) needs to know about netmeta, handed to it by our entries (`shim.run(name,
    in_process, SHIM)`) and the daemon: cni/ names no product. The environment variables are
    env_prefix + OP, DEADLINE, SOCKET, MODE, PLUGIN, SHIM_TIMEOUT, FAULT, DAEMON_FAULT."""
    product = "netmeta"                    # in messages: "netmeta shim: ...", "the netmeta daemon ..."
    socket = "/run/netmeta/netmeta.sock"   # the daemon's socket unless the config or env names one
    env_prefix = "NETMETA_"
    mode_key = "mode"                      # config keys: auto | daemon | thin (only in `modal` plugins'
    socket_key = "socketPath"              # configs: a delegate's own "mode" must not count)
    modal = ("netmeta",)
    daemon_hint = "start the daemon (netmeta daemon) or set mode auto to run in-process"


# The sriov plugin's VF-table backends (its config's `backend`): the VF table's class and the
# sysfs topology that goes with it. Loaded by name, so the product path imports no backend it
# does not use, and never the simulator: the sim is a backend like the kernel's netlink one.
SRIOV_BACKENDS = {
    "netlink": {"table": "delegates.sriov.vftable_netlink:NetlinkVFTable",
                "topology": "delegates.sriov.topology:Topology"},
    "sim": {"table": "delegates.sriov.sim.vftable:SimVFTable",
            "topology": "delegates.sriov.sim.topology:SimTopology"},
}


def _load(ref: str):
    import importlib
    mod, _, name = ref.partition(":")
    return getattr(importlib.import_module(mod), name)


def load(name: str):
    """The plugin class `name` (imports its module); an in-process one takes a Services."""
    return _load(PLUGINS[name]["plugin"])


def sriov_backend(name: str, part: str):
    """The class of `part` ("table" or "topology") of sriov backend `name`; None if unknown."""
    entry = SRIOV_BACKENDS.get(name) if isinstance(name, str) else None
    return _load(entry[part]) if entry else None


if __name__ == "__main__":   # the Makefile's loop: the names, space-separated
    print(" ".join(NAMES))
