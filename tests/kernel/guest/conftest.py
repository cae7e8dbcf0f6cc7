"""Tests in this directory run INSIDE the kernel-tier QEMU guest (tests/test_kernel_tier.py boots
it with tests/kernel/harness.py and runs ``python -m pytest tests/kernel/guest`` there).

Outside the guest every test collected from this directory is skipped. Inside, the guest init
has created netdevsim device NETMETA_KERNEL_NSIM_ID with NETMETA_KERNEL_NUMVFS VFs on PF
netdev NETMETA_KERNEL_PF (see harness.py for the full list of variables).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
IN_GUEST = os.environ.get("NETMETA_IN_GUEST") == "1"


def pytest_collection_modifyitems(config, items):
    if IN_GUEST:
        return
    skip = pytest.mark.skip(reason="kernel tier: runs only inside the QEMU guest "
                                   "(tests/test_kernel_tier.py)")
    for item in items:
        if HERE in Path(str(item.path)).resolve().parents:
            item.add_marker(skip)


@dataclass(frozen=True)
class GuestNetdevsim:
    pf: str            # PF netdev name, e.g. "eth0"
    pf_index: int      # its ifindex
    numvfs: int        # sriov_numvfs set by the guest init
    nsim_id: int       # netdevsim device id (10)
    sysfs: Path        # /sys/bus/netdevsim/devices/netdevsim10 (sriov_numvfs, net/)
    debugfs: Path      # /sys/kernel/debug/netdevsim/netdevsim10 (max_vfs, ...)


@pytest.fixture(scope="session")
def guest_nsim() -> GuestNetdevsim:
    """The netdevsim SR-IOV PF the guest init created."""
    if not IN_GUEST:
        pytest.skip("kernel tier: runs only inside the QEMU guest")
    env = os.environ
    return GuestNetdevsim(
        pf=env["NETMETA_KERNEL_PF"],
        pf_index=int(env["NETMETA_KERNEL_PF_IFINDEX"]),
        numvfs=int(env["NETMETA_KERNEL_NUMVFS"]),
        nsim_id=int(env["NETMETA_KERNEL_NSIM_ID"]),
        sysfs=Path(env["NETMETA_KERNEL_NSIM_SYSFS"]),
        debugfs=Path(env["NETMETA_KERNEL_NSIM_DEBUGFS"]),
    )


@pytest.fixture
def show(capsys):
    """print() that bypasses pytest's capture, so the guest log shows kernel values."""

    def _show(label, value):
        with capsys.disabled():
            print(f"\n  [{label}] {value}", flush=True)

    return _show
