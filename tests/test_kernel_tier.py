"""Kernel tier (host side): boot the QEMU guest (tests/kernel/harness.py) and run every test in
tests/kernel/guest/ inside it against a real 6.1 kernel with netdevsim SR-IOV.

Skips (with the reason printed) when the guest cannot be built here: not root and packages
missing, apt failure, no QEMU. NETMETA_KERNEL_REQUIRED=1 turns those skips into failures (CI).
The first run downloads ~300 MB of Debian packages and builds netdevsim (about a minute);
later runs reuse ${NETMETA_KERNEL_CACHE:-/var/cache/netmeta/kernel-vm}.
"""

from __future__ import annotations

import importlib.util
import os
import re
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
GUEST_TESTS = "tests/kernel/guest"
GUEST_TIMEOUT = float(os.environ.get("NETMETA_KERNEL_TIMEOUT", "900"))


def _load_harness():
    path = REPO / "tests" / "kernel" / "harness.py"
    spec = importlib.util.spec_from_file_location("netmeta_kernel_harness", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


harness = _load_harness()


def _unavailable(reason: str):
    message = f"kernel tier: {reason}"
    print(message, file=sys.stderr)
    if os.environ.get("NETMETA_KERNEL_REQUIRED") == "1":
        pytest.fail(message + " (NETMETA_KERNEL_REQUIRED=1)")
    pytest.skip(message)


def _guest_python() -> str:
    venv_python = REPO / ".venv" / "bin" / "python"
    return str(venv_python) if venv_python.exists() else sys.executable


@pytest.mark.kernel
@pytest.mark.timeout(GUEST_TIMEOUT + 1800)  # a cold setup (apt + build) comes first
def test_guest_kernel_tests():
    t0 = time.monotonic()
    try:
        harness.ensure_artifacts()
    except harness.SetupError as exc:
        if exc.unavailable:
            _unavailable(f"cannot build the guest here: {exc}")
        raise
    ok, why = harness.qemu_available()
    if not ok:
        _unavailable(why)
    t_setup = time.monotonic() - t0

    # -s: the log shows every value read back from the kernel
    command = [_guest_python(), "-m", "pytest", "-q", "-s", "-p", "no:cacheprovider", GUEST_TESTS]
    # hypothesis' pytest plugin costs ~10 s under TCG and no guest test needs its options
    env = {"PYTEST_ADDOPTS": "-p no:hypothesispytest"}
    # the repo is shared explicitly: under /tmp (where CI may clone it) the guest's own tmpfs
    # would hide it in the read-only host root
    result = harness.run_in_guest(command, timeout=GUEST_TIMEOUT, env=env, repo=REPO, share=REPO)
    print(f"\n===== kernel tier: {' '.join(command)} (in guest, cwd {REPO}) =====")
    print(result.output, end="" if result.output.endswith("\n") else "\n")
    print(f"===== kernel tier: guest rc={result.returncode}, boot+run+poweroff "
          f"{result.duration:.1f}s, setup {t_setup:.2f}s, {why} =====")

    assert result.error is None, result.describe()
    assert result.returncode == 0, result.describe()
    assert "no tests ran" not in result.output, result.describe()
    assert re.search(r"\b\d+ passed\b", result.output), result.describe()
