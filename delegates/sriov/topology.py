"""SR-IOV PF/VF topology read from sysfs (real `/sys` or a fake tree laid out the same way).

Layout read (relative to the root, as the kernel lays it out):
  class/net/<pf>/device                 -> the PF's PCI device dir
  <pf pci>/sriov_numvfs, sriov_totalvfs
  <pf pci>/virtfn<N>                    -> ../<vf pci>
  <vf pci>/physfn                       -> ../<pf pci>
  <pci>/net/<ifname>                    the netdev's current name, only while it is in the
                                        reader's netns (sysfs is netns-aware: empty otherwise)
  <pci>/driver                          -> .../drivers/<name>
  bus/pci/devices/<pci>                 the PCI device by address
Pure reads, no privileges, no netlink. The simulated NIC's subclass (sim/topology.py) refreshes
its fake tree before each read of netdev names, so it is as live as the real one.
"""
from __future__ import annotations

import os

from .vftable import VFTableError

_HEX = frozenset("0123456789abcdef")
IFNAMSIZ = 16


class TopologyError(VFTableError):
    """Topology lookup failed (a VFTableError, so callers catch one type)."""


class VFInfo:
    """One VF of a PF: its index, PCI address and netdev name in this netns (None when it is
    elsewhere or has none)."""
    __slots__ = ("index", "pci", "netdev")

    def __init__(self, index: int, pci: str, netdev: str | None):
        self.index = index
        self.pci = pci
        self.netdev = netdev

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, VFInfo):
            return NotImplemented
        return (self.index, self.pci, self.netdev) == (other.index, other.pci, other.netdev)

    def __repr__(self) -> str:
        return f"VFInfo(index={self.index!r}, pci={self.pci!r}, netdev={self.netdev!r})"


def _is_pci(s: str) -> bool:
    """`s` fullmatches `[0-9a-f]{4,8}:[0-9a-f]{2}:[0-1][0-9a-f]\\.[0-7]` (a lower-case PCI address)."""
    dom, _, rest = s.partition(":")
    return (4 <= len(dom) <= 8 and len(rest) == 7 and rest[2] == ":" and rest[5] == "."
            and rest[3] in "01" and rest[6] in "01234567" and all(c in _HEX for c in dom + rest[:2] + rest[4]))


def virtfn_index(name: str) -> int | None:
    """N of a `virtfn<N>` link name (N: 0..999999, no leading zero), else None."""
    digits = name[6:] if name.startswith("virtfn") else ""
    if 0 < len(digits) <= 6 and digits.isascii() and digits.isdigit() and (digits == "0" or digits[0] != "0"):
        return int(digits)
    return None


def parse_pci(addr: object, field: str = "deviceID") -> str:
    """Validate a PCI address `DDDD:BB:SS.F` (lower-case hex); return it lower-cased."""
    if isinstance(addr, str) and _is_pci(addr.lower()):
        return addr.lower()
    raise TopologyError(field, f"failed to parse PCI address {addr!r}: want DDDD:BB:SS.F")


def valid_ifname(name: object) -> bool:
    """The kernel's dev_valid_name(): 1..15 bytes, not . or .., no '/', ':' or whitespace."""
    if not isinstance(name, str) or name in (".", ".."):
        return False
    try:
        raw = name.encode()
    except UnicodeEncodeError:
        return False
    return (0 < len(raw) < IFNAMSIZ and not any(c in name for c in "/:\0")
            and not any(c.isspace() for c in name))


def parse_count(text: str, what: str) -> int:
    """Parse a sysfs integer file like sriov_numvfs ("8\\n")."""
    s = text.strip()
    if not s.isascii() or not s.isdigit():
        raise TopologyError("master", f"failed to parse {what}: {text!r} is not a number")
    return int(s)


class Topology:
    def __init__(self, sysfs_root: str = "/sys"):
        self.root = os.path.abspath(sysfs_root)

    # -- paths --
    def _pf_dir(self, pf: str) -> str:
        if not valid_ifname(pf):
            raise TopologyError("master", f"failed to find PF {pf!r}: not an interface name")
        d = os.path.join(self.root, "class", "net", pf, "device")
        if not os.path.isdir(d):
            raise TopologyError("master", f"failed to find PF {pf}: no {d}")
        return d

    def _pci_dir(self, pci: str) -> str:
        d = os.path.join(self.root, "bus", "pci", "devices", parse_pci(pci))
        if not os.path.isdir(d):
            raise TopologyError("deviceID", f"failed to find PCI device {pci}: no {d}")
        return d

    def _read_count(self, pf: str, name: str) -> int:
        path = os.path.join(self._pf_dir(pf), name)
        try:
            with open(path) as f:
                return parse_count(f.read(), f"{name} of {pf}")
        except FileNotFoundError:
            raise TopologyError("master", f"failed to read {name} of {pf}: "
                                          "not an SR-IOV PF") from None

    def _virtfn(self, pf: str, n: int) -> str:
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise TopologyError("vf", f"failed to find vf {n!r} of {pf}: not a VF index")
        link = os.path.join(self._pf_dir(pf), f"virtfn{n}")
        if not os.path.islink(link):
            raise TopologyError("vf", f"failed to find vf {n} of {pf}: no virtfn{n} "
                                      f"(sriov_numvfs is {self.numvfs(pf)})")
        return link

    @staticmethod
    def _link_pci(link: str) -> str:
        return parse_pci(os.path.basename(os.readlink(link)))

    @staticmethod
    def _netdev_in(dev_dir: str) -> str | None:
        try:
            names = sorted(n for n in os.listdir(os.path.join(dev_dir, "net"))
                           if not n.startswith("."))
        except (FileNotFoundError, NotADirectoryError):
            return None          # no netdev (e.g. bound to vfio-pci)
        return names[0] if names else None

    # -- PF --
    def pf_exists(self, pf: str) -> bool:
        return valid_ifname(pf) and os.path.isdir(os.path.join(self.root, "class", "net", pf,
                                                               "device"))

    def numvfs(self, pf: str) -> int:
        return self._read_count(pf, "sriov_numvfs")

    def totalvfs(self, pf: str) -> int:
        return self._read_count(pf, "sriov_totalvfs")

    def pf_pci(self, pf: str) -> str:
        return parse_pci(os.path.basename(os.path.realpath(self._pf_dir(pf))), "master")

    def driver(self, pci: str) -> str | None:
        link = os.path.join(self._pci_dir(pci), "driver")
        return os.path.basename(os.readlink(link)) if os.path.islink(link) else None

    # -- VFs --
    def vf_pci(self, pf: str, n: int) -> str:
        return self._link_pci(self._virtfn(pf, n))

    def vf_netdev(self, pf: str, n: int) -> str | None:
        return self._netdev_in(self._virtfn(pf, n))

    def vfs(self, pf: str) -> list[VFInfo]:
        out = []
        for n in range(self.numvfs(pf)):
            link = self._virtfn(pf, n)
            out.append(VFInfo(n, self._link_pci(link), self._netdev_in(link)))
        return out

    def vf_from_pci(self, pci: str) -> tuple[str, int]:
        """(PF netdev name, VF index) of the VF at PCI address `pci`, via its physfn link."""
        pci = parse_pci(pci)
        physfn = os.path.join(self._pci_dir(pci), "physfn")
        if not os.path.islink(physfn):
            raise TopologyError("deviceID", f"failed to find PF of {pci}: not a VF "
                                            "(no physfn link)")
        pf_dir = os.path.realpath(physfn)
        pf = self._netdev_in(pf_dir)
        if pf is None:
            raise TopologyError("deviceID", f"failed to find PF of {pci}: PF "
                                            f"{os.path.basename(pf_dir)} has no netdev in "
                                            "this network namespace")
        for name in os.listdir(pf_dir):
            n = virtfn_index(name)
            if n is not None and self._link_pci(os.path.join(pf_dir, name)) == pci:
                return pf, n
        raise TopologyError("deviceID", f"failed to find VF index of {pci}: no virtfn link "
                                        f"of {pf} points to it")

    def vf_of_netdev(self, netdev: str) -> tuple[str, int]:
        """(PF, VF index) of a VF netdev that is in this netns."""
        if not valid_ifname(netdev):
            raise TopologyError("master", f"failed to find VF {netdev!r}: not an interface name")
        dev = os.path.join(self.root, "class", "net", netdev, "device")
        if os.path.isdir(dev):
            return self.vf_from_pci(os.path.basename(os.path.realpath(dev)))
        raise TopologyError("master", f"failed to find VF {netdev}: no {dev}")

    def pf_of_netdev(self, netdev: str) -> str:
        """The PF netdev name of the VF netdev `netdev` (which must be in this netns)."""
        return self.vf_of_netdev(netdev)[0]
