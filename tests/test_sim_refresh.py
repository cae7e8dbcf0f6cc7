"""The sim NIC's refresh rewrites only what changed (issue 19: 64 concurrent ADDs each refresh
under the node lock), and a refresh that died between writing the fake sysfs tree and saving
its records is repaired by the next one. Behaviour of refresh itself (revival, renames, moves)
is pinned in tests/test_sriov_sim.py."""
import json
import os
import socket
import subprocess

from cni.rtnl import RTM_GETLINK, Rtnl
from delegates.sriov.device import Device
from delegates.sriov.sim import nic as simnic
from delegates.sriov.sim.ports import F_DUMP
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


# ---------------------------------------------------------------- no RTNL on the common path
# In a burst of ADDs every refresh runs under the product's node lock while the other ADDs'
# netns moves hold the kernel's RTNL; a refresh with nothing to learn must not wait for it.

class _Requests:
    """Every netlink request this process sends through cni.rtnl (what the sim uses)."""
    def __init__(self, monkeypatch):
        self.sent: list[tuple[int, int]] = []
        real = Rtnl.request

        def request(nl, kind, flags, body):
            self.sent.append((kind, flags))
            return real(nl, kind, flags, body)
        monkeypatch.setattr(Rtnl, "request", request)

    def take(self) -> list[tuple[int, int]]:
        out, self.sent = self.sent, []
        return out


def _getlinks(sent):
    """(dumps, single) RTM_GETLINK requests among `sent`."""
    links = [flags for kind, flags in sent if kind == RTM_GETLINK]
    return sum(1 for f in links if f & F_DUMP == F_DUMP), sum(1 for f in links if not f & F_DUMP)


def _ip(*args):
    subprocess.run(["ip", *args], check=True)


def test_refresh_with_nothing_changed_sends_no_netlink(nic, netns, monkeypatch):
    """VFs here, one in a pod, one renamed: once learnt, refreshing again sends no netlink
    request at all (so takes no RTNL), and still answers the truth."""
    root, pf = nic["sysfsRoot"], nic["master"]
    topo = Topology(root)
    vf4, vf5 = topo.vf_netdev(pf, 4), topo.vf_netdev(pf, 5)
    ns = netns()
    _ip("link", "set", vf4, "netns", ns, "name", "net1")
    _ip("link", "set", vf5, "name", f"r5{pf}"[:15])
    reqs = _Requests(monkeypatch)
    first = simnic.refresh(root, pf)                 # learns both: netlink, no dump
    assert first["4"] is None and first["5"] == f"r5{pf}"[:15]
    assert _getlinks(reqs.take())[0] == 0
    for _ in range(3):
        assert simnic.refresh(root, pf) == first
        assert reqs.take() == []
    # the product's way in: the sim topology before a netdev-name read
    assert Device(root, "sim").topo.vf_netdev(pf, 5) == f"r5{pf}"[:15]
    assert reqs.take() == []
    meta = json.load(open(os.path.join(root, "netmeta-sim", f"{pf}.nic.json")))
    assert meta["ports"]["4"]["name"] == "net1"       # its pod-side name, for a revival


def test_a_moved_vf_is_asked_about_alone(nic, netns, monkeypatch):
    """A change costs single RTM_GETLINKs for the port that changed, never a dump."""
    root, pf = nic["sysfsRoot"], nic["master"]
    topo = Topology(root)
    simnic.refresh(root, pf)
    vf2 = topo.vf_netdev(pf, 2)
    ns = netns()
    reqs = _Requests(monkeypatch)
    _ip("link", "set", vf2, "netns", ns, "name", "net1")
    assert simnic.refresh(root, pf)["2"] is None
    assert _getlinks(reqs.take()) == (0, 2)           # its peer; its name in the pod
    _ip("-n", ns, "link", "set", "net1", "netns", "1", "name", vf2)
    assert simnic.refresh(root, pf)["2"] == vf2 and topo.vf_netdev(pf, 2) == vf2
    assert _getlinks(reqs.take()) == (0, 1)           # its peer
    assert simnic.refresh(root, pf)["2"] == vf2 and reqs.take() == []


def test_away_vf_whose_ifindex_is_taken_here_is_followed_back(nic, netns, uid, monkeypatch):
    """While a VF is in a pod a link here takes its ifindex; the VF comes back under a new
    one. The cheap check sees the ifindex in use and asks (every refresh while it is)."""
    root, pf = nic["sysfsRoot"], nic["master"]
    topo = Topology(root)
    vf3 = topo.vf_netdev(pf, 3)
    index = socket.if_nametoindex(vf3)
    ns = netns()
    _ip("link", "set", vf3, "netns", ns, "name", "net1")
    assert simnic.refresh(root, pf)["3"] is None
    squatter = f"nmsf{uid}"
    _ip("link", "add", squatter, "index", str(index), "type", "veth", "peer", "name", squatter + "p")
    try:
        reqs = _Requests(monkeypatch)
        assert simnic.refresh(root, pf)["3"] is None
        assert _getlinks(reqs.take()) == (0, 1)       # asked: still away
        _ip("-n", ns, "link", "set", "net1", "netns", "1", "name", vf3)
        assert socket.if_nametoindex(vf3) != index
        assert simnic.refresh(root, pf)["3"] == vf3 and topo.vf_netdev(pf, 3) == vf3
        assert _getlinks(reqs.take()) == (0, 1)       # asked: back, here under a new ifindex
        assert simnic.refresh(root, pf)["3"] == vf3 and reqs.take() == []
    finally:
        subprocess.run(["ip", "link", "del", squatter], check=False)


def test_records_without_peer_indexes_are_learnt_with_one_dump(nic, monkeypatch):
    """Records written before the peers' ifindexes were kept (or more than a few ports to ask
    about): one dump of the private netns, then nothing."""
    root, pf = nic["sysfsRoot"], nic["master"]
    path = os.path.join(root, "netmeta-sim", f"{pf}.nic.json")
    meta = json.load(open(path))
    for port in meta["ports"].values():
        port.pop("peer", None)
    with open(path, "w") as f:
        json.dump(meta, f)
    reqs = _Requests(monkeypatch)
    names = simnic.refresh(root, pf)
    assert _getlinks(reqs.take()) == (1, 0)
    assert simnic.refresh(root, pf) == names and reqs.take() == []
    assert all(isinstance(p["peer"], int) for p in json.load(open(path))["ports"].values())


def test_a_read_of_one_vf_refreshes_only_that_vf(nic, netns, monkeypatch):
    """The product's read of VF n's netdev (under its node lock) looks at VF n alone: with
    another VF just moved into a pod, reading a VF that stayed sends nothing; reading all VFs
    (vfs: the daemon's availability count) learns the moved one and its pod-side name."""
    root, pf = nic["sysfsRoot"], nic["master"]
    topo = Device(root, "sim").topo
    simnic.refresh(root, pf)
    vf1, vf6 = topo.vf_netdev(pf, 1), topo.vf_netdev(pf, 6)
    ns = netns()
    _ip("link", "set", vf1, "netns", ns, "name", "net1")
    reqs = _Requests(monkeypatch)
    assert topo.vf_netdev(pf, 6) == vf6
    assert reqs.take() == []
    assert topo.vf_netdev(pf, 1) is None                    # the moved VF: asked alone
    assert _getlinks(reqs.take()) == (0, 2)
    _ip("-n", ns, "link", "set", "net1", "netns", "1", "name", vf1)
    _ip("link", "set", vf6, "netns", ns, "name", "net6")
    assert topo.vf_netdev(pf, 1) == vf1
    assert _getlinks(reqs.take()) == (0, 1)
    assert {v.index: v.netdev for v in topo.vfs(pf)}[6] is None
    assert _getlinks(reqs.take()) == (0, 2)
    meta = json.load(open(os.path.join(root, "netmeta-sim", f"{pf}.nic.json")))
    assert meta["ports"]["6"]["name"] == "net6"
