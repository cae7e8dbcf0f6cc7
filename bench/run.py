"""netmeta benchmarks, side by side with the Debian reference plugins in one run.
Usage: .venv/bin/python bench/run.py [--runs N]"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench import ipam  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=60)
    a = ap.parse_args()
    print(ipam.run(a.runs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
