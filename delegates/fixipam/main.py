"""`fixipam` executable: forwards to the node daemon when it answers, else runs in-process."""
import sys


def _in_process(stdin: bytes) -> int:
    from cni import skel

    from .plugin import FixIPAM
    return skel.main(FixIPAM(), stdin)


def main() -> int:
    from cni import shim
    from delegates.registry import SHIM
    return shim.run("fixipam", _in_process, SHIM)


if __name__ == "__main__":
    sys.exit(main())
