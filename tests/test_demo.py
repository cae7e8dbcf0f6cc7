"""`make demo` runs to the end, shows every item the README promises, and leaves nothing
behind: no namespace, interface, process or file."""
import os
import subprocess
import sys

import pytest

from tests.cnirun import DEBIAN_CNI, REPO

pytestmark = pytest.mark.skipif(not os.path.exists(f"{DEBIAN_CNI}/bridge"), reason="needs Debian CNI plugins")


DEMO_NAMES = ("dsa", "dsb", "nmdemo", "cni-", "netmeta-sim-ds")   # what demo/demo.py creates


def _state():
    """The demo's kind of objects (other test runs on the machine may create their own)."""
    links = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True).stdout
    netns = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    return {
        "netns": {n.split()[0] for n in netns.splitlines() if n.startswith(DEMO_NAMES)},
        "links": {n for n in (line.split(":")[1].strip().split("@")[0] for line in links.splitlines())
                  if n.startswith(DEMO_NAMES)},
        "procs": set(subprocess.run(["pgrep", "-f", "netmeta-demo-"], capture_output=True, text=True).stdout.split()),
        "tmp": {f for f in os.listdir("/tmp") if f.startswith("netmeta-demo-")},
    }


def test_demo_runs_to_the_end_and_leaves_nothing():
    before = _state()
    p = subprocess.run([sys.executable, os.path.join(REPO, "demo", "demo.py")], capture_output=True, text=True,
                       timeout=300)
    out = p.stdout
    assert p.returncode == 0 and "demo done" in out, out + p.stderr
    # every item of the demo's promise
    assert "8 VFs" in out and "2 VFs" in out                                        # the simulated NICs
    assert "node daemon" in out and "status file" in out                             # Kubernetes-free daemon
    assert "eth0   10.250.0." in out                                                 # default network IPs
    assert "net1   10.56.0.7" in out and "VLAN 120" in out and "max tx 500 Mbps" in out   # VF, fixed IP, VLAN, rate
    assert "VF 0" in out and "PCI 0000:" in out                                      # which VF
    assert "the whole PF" in out                                                     # pfOnly on the second PF
    for n in ("10", "9", "7"):                                                       # availability after each step
        assert f"sriov/vfCount={n}" in out
    assert "default/pod-b" in out and "120" in out                                   # netmeta status lists the VF
    assert " 0% packet loss" in out                                                  # ping over the bridge
    assert "outside podOverrides.vlan" in out                                        # a refusal
    assert "every VF is back in the host, unallocated, VLAN 0, no rate limit" in out
    after = _state()
    assert after == before, {k: (before[k] ^ after[k]) for k in before if before[k] != after[k]}
