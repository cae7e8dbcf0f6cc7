"""`sriov` executable: forwards to the node daemon when it answers, else runs in-process."""
import sys


def _in_process(stdin: bytes) -> int:
    from cni.leanimport import lean_pyroute2
    lean_pyroute2()
    from cni import skel

    from .plugin import SRIOVPlugin
    return skel.main(SRIOVPlugin(), stdin)


def main() -> int:
    from cni import shim
    from delegates.registry import SHIM
    return shim.run("sriov", _in_process, SHIM)


if __name__ == "__main__":
    sys.exit(main())
