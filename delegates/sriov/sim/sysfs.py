"""The fake sysfs tree of a simulated SR-IOV NIC (see simnic.py).

Laid out the way the kernel lays out /sys, so Topology reads it like the real one. For a PF `P`
under ROOT (default /run/netmeta/sim):

  bus/pci/devices/0000:BB:00.0/          the PF: sriov_totalvfs, sriov_numvfs, virtfn<N> ->
                                         ../<vf pci>, driver -> ../../drivers/netmeta-sim,
                                         net/<P>/device -> ../../../<pf pci>
  bus/pci/devices/<vf pci>/              VF N at devfn N+1 (0000:BB:00.1 .. 0000:BB:1f.7):
                                         physfn -> ../<pf pci>, driver, net/<ifname>/ (empty
                                         while the netdev is in another netns, like sysfs)
  bus/pci/drivers/netmeta-sim/
  class/net/<ifname> -> ../../bus/pci/devices/<pci>/net/<ifname>   (PF and host-side VFs)

`write_tree` needs no netdevs and no privileges (unit tests use it alone); `set_netdev_name`
keeps a port's net/ and class/net entries in step with where its netdev is. Trees of several
PFs share ROOT; writers serialize on netmeta-sim/.tree.lock.
"""
from __future__ import annotations

import contextlib
import os

from cni.files import atomic_write

from .names import SimError, validate, vf_netdev_name
from .vftable import STATE_DIR, flocked

DRIVER = "netmeta-sim"
PCI_DIR = ("bus", "pci", "devices")


def tree_lock(root: str) -> str:
    return os.path.join(root, STATE_DIR, ".tree.lock")


def _pci_path(root: str, pci: str) -> str:
    return os.path.join(root, *PCI_DIR, pci)


def replace_symlink(target: str, path: str) -> None:
    """Create or atomically replace the symlink `path`."""
    tmp = f"{path}.{os.urandom(4).hex()}.tmp"
    os.symlink(target, tmp)
    os.replace(tmp, path)


def _makedirs(*parts: str) -> str:
    path = os.path.join(*parts)
    os.makedirs(path, mode=0o755, exist_ok=True)
    return path


def set_netdev_name(root: str, pci: str, name: str | None) -> bool:
    """Make `<pci>/net/` and `class/net/` show netdev `name` (None: not in this netns).
    Returns whether anything changed. Readers never see a half-written entry: the net/
    entry is renamed in place and class/net symlinks are replaced atomically."""
    net = _makedirs(_pci_path(root, pci), "net")
    old = sorted(n for n in os.listdir(net) if not n.startswith("."))
    if old == ([name] if name else []):
        return False
    classnet = _makedirs(root, "class", "net")
    for o in old:
        c = os.path.join(classnet, o)
        if os.path.islink(c) and os.readlink(c) == _classnet_target(pci, o):
            os.unlink(c)
    if name:
        if name in old:
            old.remove(name)
        elif old:
            os.rename(os.path.join(net, old.pop(0)), os.path.join(net, name))
        else:
            os.mkdir(os.path.join(net, name))
            os.symlink(f"../../../{pci}", os.path.join(net, name, "device"))
        replace_symlink(_classnet_target(pci, name), os.path.join(classnet, name))
    for o in old:
        import shutil  # rarely: a name left over by a refresh that died
        shutil.rmtree(os.path.join(net, o))
    return True


def _classnet_target(pci: str, name: str) -> str:
    return f"../../{'/'.join(PCI_DIR)}/{pci}/net/{name}"


def _write_count(path: str, value: int) -> None:
    atomic_write(path, f"{value}\n", durable=False)   # sysfs itself is no file on disk


def _alloc_bus(root: str) -> int:
    for bus in range(1, 256):
        if not os.path.exists(_pci_path(root, f"0000:{bus:02x}:00.0")):
            return bus
    raise SimError("failed to allocate a PCI bus for the sim NIC: all 255 in use")


def _pci(bus: int, devfn: int) -> str:
    return f"0000:{bus:02x}:{devfn >> 3:02x}.{devfn & 7}"


def write_tree(root: str, pf: str, vfs: int,
               vf_netdevs: list[str | None] | None = None) -> tuple[str, list[str]]:
    """Write the fake sysfs tree of one PF (no netdevs, no privileges needed).

    Used by `create`, and by unit tests that want a tree without netdevs. `vf_netdevs[n]` is
    VF n's netdev name (default `<pf>v<n>`; None = in another netns). Returns (pf pci, vf pcis).
    """
    validate(pf, vfs)
    root = os.path.abspath(root)
    _makedirs(root, STATE_DIR)
    os.chmod(os.path.join(root, STATE_DIR), 0o700)
    names = vf_netdevs if vf_netdevs is not None else [vf_netdev_name(pf, n) for n in range(vfs)]
    with flocked(tree_lock(root)):
        if os.path.exists(os.path.join(root, "class", "net", pf)):
            raise SimError(f"failed to create sim NIC {pf}: {root}/class/net/{pf} exists")
        bus = _alloc_bus(root)
        pf_pci = _pci(bus, 0)
        vf_pcis = [_pci(bus, n + 1) for n in range(vfs)]
        _makedirs(root, *PCI_DIR[:2], "drivers", DRIVER)
        for pci in [pf_pci] + vf_pcis:
            d = _makedirs(_pci_path(root, pci), "net")
            os.symlink(f"../../drivers/{DRIVER}", os.path.join(os.path.dirname(d), "driver"))
        pdir = _pci_path(root, pf_pci)
        for n, pci in enumerate(vf_pcis):
            os.symlink(f"../{pf_pci}", os.path.join(_pci_path(root, pci), "physfn"))
            os.symlink(f"../{pci}", os.path.join(pdir, f"virtfn{n}"))
            set_netdev_name(root, pci, names[n])
        _write_count(os.path.join(pdir, "sriov_totalvfs"), vfs)
        _write_count(os.path.join(pdir, "sriov_numvfs"), vfs)
        set_netdev_name(root, pf_pci, pf)      # last: class/net/<pf> makes the PF visible
    return pf_pci, vf_pcis


def remove_tree(root: str, pcis: list[str]) -> None:
    import shutil  # lazily: destroying a NIC only (shutil brings bz2, lzma, ...)
    classnet = os.path.join(root, "class", "net")
    for pci in pcis:
        if os.path.isdir(_pci_path(root, pci)):
            set_netdev_name(root, pci, None)
            shutil.rmtree(_pci_path(root, pci))
    # prune what is left empty, bottom-up; never the root itself (drivers/<d>: sim bind's too)
    drivers = os.path.join(root, *PCI_DIR[:2], "drivers")
    with contextlib.suppress(FileNotFoundError, NotADirectoryError):
        for name in os.listdir(drivers):
            with contextlib.suppress(OSError):
                os.rmdir(os.path.join(drivers, name))
    for d in (classnet, os.path.join(root, "class"),
              os.path.join(root, *PCI_DIR[:2], "drivers", DRIVER),
              os.path.join(root, *PCI_DIR[:2], "drivers"), os.path.join(root, *PCI_DIR),
              os.path.join(root, *PCI_DIR[:2]), os.path.join(root, PCI_DIR[0])):
        with contextlib.suppress(FileNotFoundError, OSError):
            os.rmdir(d)
