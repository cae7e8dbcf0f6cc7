import os
import secrets
import shutil
import subprocess

import pytest


def pytest_configure(config):
    if config.pluginmanager.hasplugin("hypothesispytest"):   # (the kernel tier's guest runs without it)
        # Property tests check behaviour, never speed: on this 2-core machine shared with other
        # work, the per-example deadline and the "too slow" health check failed tests that only
        # exercise product logic (test_sriov_sim::test_plan_set_properties under load).
        # Per-test @settings inherit this profile.
        from hypothesis import HealthCheck, settings
        settings.register_profile("netmeta", deadline=None, suppress_health_check=[HealthCheck.too_slow])
        settings.load_profile("netmeta")
    os.environ.setdefault("NETMETA_LOG_LEVEL", "debug")
    # in-process tests run product code as an entry would: name the log root and fault variable
    from cni import fault, log
    from delegates.registry import SHIM
    log.name_root(SHIM.product, SHIM.env_prefix + "LOG_LEVEL")
    fault.watch(SHIM.env_prefix + "FAULT")


@pytest.fixture
def uid() -> str:
    """A short unique token for names this test creates (netns, links, networks)."""
    return secrets.token_hex(3)


def _need_root():
    if os.geteuid() != 0:
        pytest.skip("needs root for network namespaces")


@pytest.fixture
def netns(uid):
    """Factory of named network namespaces (/var/run/netns/<name>), deleted afterwards."""
    _need_root()
    made = []

    def make(suffix: str = "") -> str:
        name = f"nmt{uid}{suffix or len(made)}"
        subprocess.run(["ip", "netns", "add", name], check=True)
        made.append(name)
        return name

    yield make
    for name in made:
        subprocess.run(["ip", "netns", "del", name], check=False)


@pytest.fixture
def data_dir(tmp_path):
    d = tmp_path / "state"
    d.mkdir(mode=0o700)
    yield str(d)
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def nic(uid, tmp_path):
    """A simulated PF with 8 VFs (the product's `netmeta sim create`); its sriov config
    fragment plus a private stateDir; destroyed afterwards."""
    _need_root()
    from tests import simnic
    frag = simnic.create(f"s{uid}", 8, str(tmp_path / "sys"), str(tmp_path / "state"))
    yield frag
    simnic.destroy(frag)
