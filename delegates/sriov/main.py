"""`sriov` executable: forwards to the node daemon when it answers, else runs in-process."""
import sys


def _in_process(stdin: bytes) -> int:
    from cni.leanimport import lean_pyroute2
    lean_pyroute2()
    from cni import skel

    from .plugin import SRIOVPlugin
    return skel.main(SRIOVPlugin(), stdin)


def main() -> int:
    # An exec'd call lives ~0.1 s and makes no garbage cycles worth collecting; the cyclic
    # collector's passes over the objects its imports and calls create were 3-6 ms of each ADD
    # or DEL on a sim VF (19 passes, generations 0 and 1). Locks, sockets and files are closed
    # by their context managers, never left to the collector; reference counting frees the rest.
    import gc
    gc.disable()
    from cni import shim
    from delegates.registry import SHIM
    return shim.run("sriov", _in_process, SHIM)


if __name__ == "__main__":
    sys.exit(main())
