"""The sim NIC's refresh rewrites only what changed (issue 19: 64 concurrent ADDs each refresh
under the node lock), and a refresh that died between writing the fake sysfs tree and saving
its records is repaired by the next one. Behaviour of refresh itself (revival, renames, moves)
is pinned in tests/test_sriov_sim.py."""
import os
import subprocess

from delegates.sriov.sim import nic as simnic
from delegates.sriov.topology import Topology


def _tree_state(root: str) -> dict:
    """Every net/ directory's and class/net's (inode, mtime) and the NIC records' inode."""
    out = {}
    for dirpath, _dirs, _ in os.walk(os.path.join(root, "bus")):
        if os.path.basename(dirpath) == "net":
            st = os.stat(dirpath)
            out[dirpath] = (st.st_ino, st.st_mtime_ns, tuple(sorted(os.listdir(dirpath))))
    st = os.stat(os.path.join(root, "class", "net"))
    out["class/net"] = (st.st_ino, st.st_mtime_ns)
    return out


def test_refresh_with_nothing_changed_writes_nothing(nic):
    root, pf = nic["sysfsRoot"], nic["master"]
    simnic.refresh(root, pf)
    meta = os.path.join(root, "netmeta-sim", f"{pf}.nic.json")
    before, meta_ino = _tree_state(root), os.stat(meta).st_ino
    names = simnic.refresh(root, pf)
    assert names["pf"] == pf and all(names[str(n)] for n in range(8))
    assert _tree_state(root) == before and os.stat(meta).st_ino == meta_ino


def test_refresh_that_died_mid_tree_write_is_repaired(nic):
    """A refresh killed after writing the tree, before saving the records, leaves its marker:
    the next refresh rewrites every port from the netdevs, not only what the records say moved."""
    root, pf = nic["sysfsRoot"], nic["master"]
    topo = Topology(root)
    vf2 = topo.vf_netdev(pf, 2)
    pci = topo.vf_pci(pf, 2)
    # what the dead refresh left: VF 2 shown under a name it does not have, records unchanged
    assert simnic.set_netdev_name(root, pci, "ghost2")
    marker = os.path.join(root, "netmeta-sim", f"{pf}.nic.json.tree-dirty")
    open(marker, "w").close()
    assert simnic.refresh(root, pf)["2"] == vf2
    assert topo.vf_netdev(pf, 2) == vf2 and topo.vf_of_netdev(vf2) == (pf, 2)
    assert not os.path.lexists(os.path.join(root, "class", "net", "ghost2"))
    assert not os.path.exists(marker)


def test_moved_vf_rewrites_only_its_port(nic, netns):
    root, pf = nic["sysfsRoot"], nic["master"]
    topo = Topology(root)
    simnic.refresh(root, pf)
    before = _tree_state(root)
    vf4, pci4 = topo.vf_netdev(pf, 4), topo.vf_pci(pf, 4)
    ns = netns()
    subprocess.run(["ip", "link", "set", vf4, "netns", ns], check=True)
    assert simnic.refresh(root, pf)["4"] is None and topo.vf_netdev(pf, 4) is None
    after = _tree_state(root)
    changed = {k for k in before if before[k] != after[k]}
    assert changed == {os.path.join(root, "bus", "pci", "devices", pci4, "net"), "class/net"}, changed
    subprocess.run(["ip", "-n", ns, "link", "set", vf4, "netns", "1"], check=True)
    assert simnic.refresh(root, pf)["4"] == vf4 and topo.vf_netdev(pf, 4) == vf4
