#!/usr/bin/env bash
# The test command behind `make test`: every tier this machine can run. The kernel tier sets
# itself up (QEMU + netdevsim, cached) or skips with the reason printed.
set -uo pipefail
cd "$(dirname "$0")/.."
.venv/bin/python -m pytest -ra -p no:cacheprovider "$@"
rc=$?
# pytest's exit 5 means no test ran: that is a failure here, never a pass.
[ "$rc" -eq 5 ] && { echo "no tests ran" >&2; exit 1; }
exit "$rc"
