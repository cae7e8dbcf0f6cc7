"""`fixipam` executable: forwards to the node daemon when it answers, else runs in-process."""
import sys


def _in_process(stdin: bytes) -> int:
    from cni import skel

    from .plugin import FixIPAM
    return skel.main(FixIPAM(), stdin)


def main() -> int:
    # An exec'd call lives ~20 ms and makes no garbage cycles worth collecting: the cyclic
    # collector's passes over the objects its imports create (a generation-1 pass alone ~0.7 ms)
    # were 1.5-2.5 ms of each call here. Reference counting still frees everything else.
    import gc
    gc.disable()
    from cni import shim
    from delegates.registry import SHIM
    return shim.run("fixipam", _in_process, SHIM)


if __name__ == "__main__":
    sys.exit(main())
