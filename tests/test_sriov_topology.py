"""Tier 1: SR-IOV topology from a fake sysfs tree (no root).

The hand-built tree copies the real kernel layout (devices/pci0000:00/..., class/net and
bus/pci/devices as symlinks), independently of simnic's tree writer, which is read in a second
set of tests.
"""
from __future__ import annotations

import os
import shutil
import string
import tempfile

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from delegates.sriov.sim import nic as simnic
from delegates.sriov.topology import Topology, TopologyError, VFInfo, parse_count, parse_pci, valid_ifname
from delegates.sriov.vftable import VFTableError

PF_PCI = "0000:3b:00.0"


def vf_pci(n: int, bus: str = "3b") -> str:
    devfn = 0x10 + n            # VF offset 16, stride 1, like many Intel NICs
    return f"0000:{bus}:{devfn >> 3:02x}.{devfn & 7}"


def build_real_layout(root: str, pf: str = "ens1f0", numvfs: int = 4, totalvfs: int = 8,
                      netdevs: dict[int, str | None] | None = None, vfio: set[int] = frozenset(),
                      bus: str = "3b") -> None:
    """A tree shaped like real sysfs: device dirs under devices/, everything else symlinks."""
    pf_pci = f"0000:{bus}:00.0"
    parent = os.path.join(root, "devices", "pci0000:00", "0000:00:02.0")

    def device(pci: str, driver: str) -> str:
        d = os.path.join(parent, pci)
        os.makedirs(d)
        os.makedirs(os.path.join(root, "bus", "pci", "drivers", driver), exist_ok=True)
        os.symlink(f"../../../../bus/pci/drivers/{driver}", os.path.join(d, "driver"))
        os.makedirs(os.path.join(root, "bus", "pci", "devices"), exist_ok=True)
        os.symlink(f"../../../devices/pci0000:00/0000:00:02.0/{pci}",
                   os.path.join(root, "bus", "pci", "devices", pci))
        return d

    def netdev(d: str, pci: str, name: str) -> None:
        os.makedirs(os.path.join(d, "net", name))
        os.symlink(f"../../../{pci}", os.path.join(d, "net", name, "device"))
        os.makedirs(os.path.join(root, "class", "net"), exist_ok=True)
        os.symlink(f"../../devices/pci0000:00/0000:00:02.0/{pci}/net/{name}",
                   os.path.join(root, "class", "net", name))

    pdir = device(pf_pci, "ice")
    netdev(pdir, pf_pci, pf)
    with open(os.path.join(pdir, "sriov_numvfs"), "w") as f:
        f.write(f"{numvfs}\n")
    with open(os.path.join(pdir, "sriov_totalvfs"), "w") as f:
        f.write(f"{totalvfs}\n")
    netdevs = netdevs if netdevs is not None else {}
    for n in range(numvfs):
        pci = vf_pci(n, bus)
        d = device(pci, "vfio-pci" if n in vfio else "iavf")
        os.symlink(f"../{pf_pci}", os.path.join(d, "physfn"))
        os.symlink(f"../{pci}", os.path.join(pdir, f"virtfn{n}"))
        if n in vfio:
            continue                        # a vfio-bound VF has no net/ at all
        name = netdevs.get(n, f"{pf}v{n}")
        if name is None:
            os.makedirs(os.path.join(d, "net"))   # netdev in another netns: net/ is empty
        else:
            netdev(d, pci, name)


@pytest.fixture
def real(tmp_path):
    build_real_layout(str(tmp_path), netdevs={2: None}, vfio={3})
    return Topology(str(tmp_path))


def test_pf_facts(real):
    assert real.pf_exists("ens1f0")
    assert not real.pf_exists("ens9")
    assert not real.pf_exists("../../etc")
    assert real.numvfs("ens1f0") == 4
    assert real.totalvfs("ens1f0") == 8
    assert real.pf_pci("ens1f0") == PF_PCI
    assert real.driver(PF_PCI) == "ice"
    assert real.driver(vf_pci(3)) == "vfio-pci"


def test_vfs(real):
    assert real.vfs("ens1f0") == [
        VFInfo(0, vf_pci(0), "ens1f0v0"),
        VFInfo(1, vf_pci(1), "ens1f0v1"),
        VFInfo(2, vf_pci(2), None),          # in a pod
        VFInfo(3, vf_pci(3), None),          # bound to vfio-pci
    ]
    assert real.vf_pci("ens1f0", 1) == "0000:3b:02.1"     # devfn 0x11
    assert real.vf_netdev("ens1f0", 0) == "ens1f0v0"
    assert real.vf_netdev("ens1f0", 2) is None


def test_vf_from_pci_and_netdev(real):
    for n in range(4):
        assert real.vf_from_pci(vf_pci(n)) == ("ens1f0", n)
    assert real.vf_from_pci(vf_pci(1).upper()) == ("ens1f0", 1)
    assert real.vf_of_netdev("ens1f0v1") == ("ens1f0", 1)
    assert real.pf_of_netdev("ens1f0v0") == "ens1f0"


@pytest.mark.parametrize("call, field, text", [
    (lambda t: t.vf_from_pci(PF_PCI), "deviceID", "not a VF"),
    (lambda t: t.vf_from_pci("0000:99:00.1"), "deviceID", "no "),
    (lambda t: t.vf_from_pci("../../../etc"), "deviceID", "failed to parse PCI address"),
    (lambda t: t.numvfs("ens9"), "master", "failed to find PF ens9"),
    (lambda t: t.numvfs("a/b"), "master", "not an interface name"),
    (lambda t: t.vf_pci("ens1f0", 4), "vf", "sriov_numvfs is 4"),
    (lambda t: t.vf_netdev("ens1f0", -1), "vf", "not a VF index"),
    (lambda t: t.pf_of_netdev("ens1f0"), "deviceID", "not a VF"),
    (lambda t: t.pf_of_netdev("nosuch"), "master", "failed to find VF nosuch"),
])
def test_errors(real, call, field, text):
    with pytest.raises(TopologyError) as e:
        call(real)
    assert e.value.field == field
    assert text in str(e.value)
    assert str(e.value).startswith("failed to ")
    assert isinstance(e.value, VFTableError)


def test_not_sriov_pf(tmp_path):
    build_real_layout(str(tmp_path))
    os.unlink(tmp_path / "devices/pci0000:00/0000:00:02.0" / PF_PCI / "sriov_numvfs")
    with pytest.raises(TopologyError, match="not an SR-IOV PF"):
        Topology(str(tmp_path)).numvfs("ens1f0")


def test_pf_without_netdev_here(tmp_path):
    build_real_layout(str(tmp_path))
    pdir = tmp_path / "devices/pci0000:00/0000:00:02.0" / PF_PCI
    os.unlink(tmp_path / "class/net/ens1f0")
    shutil.rmtree(pdir / "net/ens1f0")          # PF moved to a pod (pfOnly): net/ empty
    topo = Topology(str(tmp_path))
    assert not topo.pf_exists("ens1f0")
    with pytest.raises(TopologyError, match="has no netdev in this network namespace"):
        topo.vf_from_pci(vf_pci(0))


def test_two_pfs(tmp_path):
    build_real_layout(str(tmp_path), pf="ens1f0", bus="3b")
    build_real_layout(str(tmp_path), pf="ens2f0", bus="5e", numvfs=2)
    topo = Topology(str(tmp_path))
    assert topo.vf_from_pci(vf_pci(1, "5e")) == ("ens2f0", 1)
    assert topo.vf_from_pci(vf_pci(1, "3b")) == ("ens1f0", 1)
    assert [v.index for v in topo.vfs("ens2f0")] == [0, 1]


# ---------------------------------------------------------------- simnic's tree layout

def test_reads_simnic_tree(tmp_path):
    root = str(tmp_path)
    pf_pci, vf_pcis = simnic.write_tree(root, "sim0", 8, vf_netdevs=[
        "sim0v0", None, "net7", "sim0v3", "sim0v4", "sim0v5", "sim0v6", "sim0v7"])
    topo = Topology(root)
    assert topo.pf_exists("sim0") and topo.numvfs("sim0") == topo.totalvfs("sim0") == 8
    assert topo.pf_pci("sim0") == pf_pci == "0000:01:00.0"
    assert vf_pcis[7] == "0000:01:01.0"                 # devfn 8 -> slot 1, function 0
    assert topo.driver(pf_pci) == topo.driver(vf_pcis[0]) == simnic.DRIVER
    vfs = topo.vfs("sim0")
    assert [v.pci for v in vfs] == vf_pcis
    assert [v.netdev for v in vfs][:3] == ["sim0v0", None, "net7"]
    assert all(topo.vf_from_pci(p) == ("sim0", n) for n, p in enumerate(vf_pcis))
    assert topo.vf_of_netdev("net7") == ("sim0", 2)
    # a second PF in the same root gets the next bus
    pf2, vfs2 = simnic.write_tree(root, "sim1", 2)
    assert pf2 == "0000:02:00.0" and topo.vf_from_pci(vfs2[1]) == ("sim1", 1)


def test_simnic_tree_rename_and_hide(tmp_path):
    root = str(tmp_path)
    _, vf_pcis = simnic.write_tree(root, "sim0", 2)
    topo = Topology(root)
    assert simnic.set_netdev_name(root, vf_pcis[1], "net1")
    assert topo.vf_netdev("sim0", 1) == "net1"
    assert not os.path.lexists(tmp_path / "class/net/sim0v1")
    assert topo.vf_of_netdev("net1") == ("sim0", 1)
    assert not simnic.set_netdev_name(root, vf_pcis[1], "net1")      # no change, no write
    assert simnic.set_netdev_name(root, vf_pcis[1], None)
    assert topo.vf_netdev("sim0", 1) is None
    assert not os.path.lexists(tmp_path / "class/net/net1")


@pytest.mark.parametrize("pf, vfs, ok", [
    ("abcdefghijkl", 8, True),          # abcdefghijklv7: 14 bytes
    ("abcdefghijklm", 10, True),        # abcdefghijklmv9: 15 bytes, the limit
    ("abcdefghijklm", 11, False),       # abcdefghijklmv10: 16
    ("abcdefghijklmn", 1, False),       # abcdefghijklmnv0: 16
    ("a/b", 1, False), ("a:b", 1, False), ("", 1, False),
    ("p", 0, False), ("p", 256, False),
])
def test_write_tree_validates_names(tmp_path, pf, vfs, ok):
    if ok:
        simnic.write_tree(str(tmp_path), pf, vfs)
        assert Topology(str(tmp_path)).numvfs(pf) == vfs
    else:
        with pytest.raises(simnic.SimError, match="failed to create sim NIC"):
            simnic.write_tree(str(tmp_path), pf, vfs)
        assert not (tmp_path / "bus").exists()


# ---------------------------------------------------------------- parsers (hypothesis)

hexd = st.sampled_from("0123456789abcdefABCDEF")


@st.composite
def pci_addrs(draw):
    dom = draw(st.text(hexd, min_size=4, max_size=4))
    bus = draw(st.text(hexd, min_size=2, max_size=2))
    slot = draw(st.integers(0, 31))
    fn = draw(st.integers(0, 7))
    return f"{dom}:{bus}:{slot:02x}.{fn}"


@given(pci_addrs())
def test_parse_pci_accepts_valid(addr):
    assert parse_pci(addr) == addr.lower()


@pytest.mark.parametrize("bad", ["0000:3b:00.0\n", " 0000:3b:00.0", "0000:3b:20.0", "0000:3b:00.8",
                                 "000:3b:00.0", "0000:3b:00.0/../x", "0000:3b:00", None, 5])
def test_parse_pci_rejects(bad):
    with pytest.raises(TopologyError):
        parse_pci(bad)


@given(st.text())
def test_parse_pci_only_accepts_plain_addresses(text):
    try:
        out = parse_pci(text)
    except TopologyError as e:
        assert e.field == "deviceID"
        return
    # whatever is accepted is safe to join into a path
    assert "/" not in out and ".." not in out and out == out.strip()
    assert len(out.split(":")) == 3


@given(st.integers(0, 10**6), st.sampled_from(["", "\n", " \n", "\t"]))
def test_parse_count(n, tail):
    assert parse_count(f"{n}{tail}", "x") == n


@given(st.text())
def test_parse_count_rejects_garbage(text):
    try:
        n = parse_count(text, "x")
    except TopologyError:
        return
    assert n == int(text.strip()) and n >= 0


@given(st.text(max_size=20))
def test_valid_ifname_matches_kernel_rules(name):
    expected = (0 < len(name.encode("utf-8", "surrogatepass")) <= 15
                and name not in (".", "..")
                and not any(c in name for c in "/:\0") and not any(c.isspace() for c in name))
    try:
        name.encode()
    except UnicodeEncodeError:
        expected = False
    assert valid_ifname(name) == expected


@settings(max_examples=30, deadline=None)
@given(numvfs=st.integers(0, 20), moved=st.sets(st.integers(0, 19)),
       pf=st.text(string.ascii_lowercase + string.digits, min_size=1, max_size=10))
def test_generated_tree_round_trip(numvfs, moved, pf):
    with tempfile.TemporaryDirectory() as root:
        build_real_layout(root, pf=pf, numvfs=numvfs, totalvfs=max(numvfs, 1),
                          netdevs={n: None for n in moved})
        topo = Topology(root)
        vfs = topo.vfs(pf)
        assert [v.index for v in vfs] == list(range(numvfs))
        for v in vfs:
            assert topo.vf_from_pci(v.pci) == (pf, v.index)
            assert (v.netdev is None) == (v.index in moved)
