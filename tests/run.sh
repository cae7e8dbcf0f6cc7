#!/usr/bin/env bash
# The test command behind `make test`: every tier this machine can run. The kernel tier sets
# itself up (QEMU + netdevsim, cached) or skips with the reason printed; it runs with -s so the
# log shows the values read back from the kernel.
set -uo pipefail
cd "$(dirname "$0")/.."
py=.venv/bin/python
# lint and type check first (seconds): a finding fails the run, after the tests have run too
.venv/bin/ruff check .
rc0=$?
.venv/bin/mypy      # [tool.mypy] in pyproject.toml: cni, meta, delegates
rcm=$?
$py -m pytest -ra -p no:cacheprovider -m "not kernel" "$@"
rc1=$?
$py -m pytest -ra -s -p no:cacheprovider -m kernel "$@"
rc2=$?
# pytest's exit 5 means no test ran: a failure for the main run; the kernel run may be
# deselected by the caller's own -m/-k.
[ "$rc1" -eq 5 ] && { echo "no tests ran" >&2; exit 1; }
[ "$rc2" -eq 5 ] && rc2=0
[ "$rc1" -ne 0 ] && exit "$rc1"
[ "$rc0" -ne 0 ] && { echo "lint failed (ruff check .)" >&2; exit "$rc0"; }
[ "$rcm" -ne 0 ] && { echo "type check failed (mypy)" >&2; exit "$rcm"; }
exit "$rc2"
