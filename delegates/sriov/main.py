"""`sriov` executable."""
import sys


def main() -> int:
    from cni import skel
    from .plugin import SRIOVPlugin
    return skel.main(SRIOVPlugin())


if __name__ == "__main__":
    sys.exit(main())
