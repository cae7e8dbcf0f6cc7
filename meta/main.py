"""`netmeta` executable: the CNI meta plugin when CNI_COMMAND is set, else the operator CLI."""
import os
import sys

USAGE = """usage: netmeta <command> [options]
  sim create --pf NAME --vfs N [--root DIR]   build a simulated SR-IOV NIC, print its sriov config
  sim destroy --pf NAME [--root DIR]          remove it
  daemon [--config FILE] [--socket PATH]      run the node daemon (foreground)
  status [--config FILE] [-o json]            PFs, VFs, who has them, VLAN/rate/MAC, node count
  gc [--config FILE]                          reclaim stale VF records and DEL caches now
  install [--bin-dir D] [--conf-dir D] ...     install executables + CNI config + kubeconfig
                                              (see `netmeta install --help`)
  scheduler-extender [--listen ADDR] ...       kube-scheduler extender: place SR-IOV pods
                                              only where free VFs exist (see --help)
  version                                     print the version
"""


def _cap_malloc_arenas(n: int = 2) -> None:
    """glibc gives each thread that allocates its own malloc arena (up to 8 per core); the
    daemon's ~40 pool threads then keep freed memory in many arenas. Two arenas (before any
    thread starts) measured ~3 MB less RSS growth over the first 100 pods (bench rss); Python
    objects come from pymalloc under the GIL anyway. Not glibc (or no ctypes): nothing to do."""
    if os.environ.get("MALLOC_ARENA_MAX"):
        return   # the operator chose
    try:
        import ctypes
        ctypes.CDLL(None).mallopt(-8, n)   # M_ARENA_MAX (malloc.h)
    except (ImportError, OSError, AttributeError):
        pass


def _cli(argv: list) -> int:
    if not argv or argv[0] in ("-h", "--help", "help"):
        sys.stderr.write(USAGE)
        return 0 if argv else 2
    cmd, rest = argv[0], argv[1:]
    from cni import fault, log  # the product's log root and fault variable (cni/ names no product)
    from delegates.registry import SHIM
    log.name_root(SHIM.product, SHIM.env_prefix + "LOG_LEVEL")
    fault.watch(SHIM.env_prefix + "FAULT")
    if cmd == "version":
        from importlib.metadata import version
        print(f"netmeta {version('netmeta')}")
        return 0
    if cmd in ("daemon", "netmeta-daemon"):
        # pyroute2 without its package __init__ (cni/leanimport.py): the daemon uses IPRoute,
        # NetlinkError and netns only; the rest of the library (IPDB, NDB, ...) cost ~6 MB of
        # idle RSS here and still loads on first use of any other name
        from cni.leanimport import lean_pyroute2
        lean_pyroute2()
        _cap_malloc_arenas()
        from .daemon.server import main as daemon_main
        return daemon_main(rest)
    if cmd == "status":
        from .daemon.ops import status_main
        return status_main(rest)
    if cmd == "gc":
        from .daemon.ops import gc_main
        return gc_main(rest)
    if cmd == "scheduler-extender":
        from .extender.main import main as extender_main
        return extender_main(rest)
    if cmd == "install":
        from .install.main import main as install_main
        return install_main(rest)
    if cmd == "sim":
        from delegates.sriov.sim.nic import main as sim_main
        return sim_main(rest)
    sys.stderr.write(f"netmeta: unknown command {cmd!r}\n{USAGE}")
    return 2


def _in_process(stdin: bytes) -> int:
    from cni import skel

    from .plugin import MetaPlugin
    return skel.main(MetaPlugin(), stdin)


def main() -> int:
    if os.environ.get("CNI_COMMAND"):
        from cni import shim
        from delegates.registry import SHIM
        return shim.run("netmeta", _in_process, SHIM)
    return _cli(sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())
