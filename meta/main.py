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


def _cli(argv: list) -> int:
    if not argv or argv[0] in ("-h", "--help", "help"):
        sys.stderr.write(USAGE)
        return 0 if argv else 2
    cmd, rest = argv[0], argv[1:]
    if cmd == "version":
        from importlib.metadata import version
        print(f"netmeta {version('netmeta')}")
        return 0
    if cmd in ("daemon", "netmeta-daemon"):
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
        return shim.run("netmeta", _in_process)
    return _cli(sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())
