"""`fixipam` executable."""
import sys


def main() -> int:
    from cni import skel
    from .plugin import FixIPAM
    return skel.main(FixIPAM())


if __name__ == "__main__":
    sys.exit(main())
