"""Rebinding a simulated VF to another driver, as `echo <pci> > .../unbind; echo <pci> >
/sys/bus/pci/drivers/vfio-pci/bind` (after `driver_override`) does on real hardware:
`netmeta sim bind --pf P --vf N --driver vfio-pci|uio_pci_generic|igb_uio|net`.

Bound to a userspace driver the VF has no netdev: the sysfs `driver` link points at
`bus/pci/drivers/<driver>` and `<vf pci>/net/` is empty; its veth host end is parked (renamed
`bnd<N>`) in the NIC's private netns, where refresh leaves it alone. `net` gives the VF back
to the sim's own netdev driver: the netdev returns to this netns as `<P>v<N>`, down, with the
PF table's MAC (a real VF driver probes with the admin MAC). Only a VF in this netns (not in a
pod) can be rebound, and not while netmeta holds it."""
from __future__ import annotations

import os

from cni.rtnl import Rtnl
from delegates.sriov.vftable import VFTableError

from .names import SimError
from .ports import SELF_NETNS, ifindex, netns_path
from .sysfs import DRIVER, PCI_DIR, replace_symlink, set_netdev_name, tree_lock
from .vftable import SimVFTable, flocked

USERSPACE = ("vfio-pci", "uio_pci_generic", "igb_uio")
PARKED = "bnd"


def bind(root: str, meta: dict, vf: int, driver: str) -> dict:
    """Caller holds the NIC lock and saves `meta` afterwards. Returns {"vf", "pci", "driver", "netdev"}."""
    pf, ns = meta["pf"], meta["netns"]
    port = meta["ports"].get(str(vf)) if isinstance(vf, int) and not isinstance(vf, bool) else None
    if port is None:
        raise SimError(f"failed to bind VF {vf!r} of sim NIC {pf}: no such VF")
    if driver not in USERSPACE + ("net",):
        raise SimError(f"failed to bind VF {vf} of {pf}: driver {driver!r} is not one of "
                       f"{', '.join(USERSPACE)} or net")
    now = port.get("driver") or "net"
    pci = port["pci"]
    if now == driver:
        return {"vf": vf, "pci": pci, "driver": driver, "netdev": None if driver != "net" else port["name"]}
    if now != "net" and driver != "net":   # vfio-pci -> igb_uio: the netdev stays parked
        _set_driver_link(root, pci, driver)
        port["driver"] = driver
        return {"vf": vf, "pci": pci, "driver": driver, "netdev": None}
    with Rtnl() as nl, Rtnl(netns_path(ns)) as nsl:
        if driver != "net":
            idx = ifindex(nl, port["name"]) if not port.get("away") else None
            if idx is None:
                raise SimError(f"failed to bind VF {vf} of {pf}: its netdev {port['name']} is not in "
                               "this network namespace (in a pod?)")
            nl.set_link(idx, up=False)
            _move(nl, idx, f"{PARKED}{vf}", netns_path(ns))
            port["driver"], port["ifindex"] = driver, idx
            name = None
        else:
            idx = ifindex(nsl, f"{PARKED}{vf}")
            if idx is None:
                raise SimError(f"failed to bind VF {vf} of {pf} to net: no parked netdev {PARKED}{vf}")
            name = f"{pf}v{vf}"
            if ifindex(nl, name) is not None:
                raise SimError(f"failed to bind VF {vf} of {pf} to net: netdev {name} exists")
            mac = None
            try:
                mac = SimVFTable(pf, root).get(vf).mac
            except (VFTableError, IndexError):
                pass
            if mac and mac != "00:00:00:00:00:00":
                nsl.set_link(idx, mac=mac)
            _move(nsl, idx, name, SELF_NETNS)
            port.update({"driver": None, "name": name, "ifindex": ifindex(nl, name), "away": None})
        _set_driver_link(root, pci, driver)
    with flocked(tree_lock(root)):
        set_netdev_name(root, pci, name)
    return {"vf": vf, "pci": pci, "driver": driver, "netdev": name}


def _move(nl: Rtnl, index: int, name: str, dest: str) -> None:
    """Link `index` into the netns at path `dest`, renamed `name` there (one RTM_NEWLINK)."""
    fd = os.open(dest, os.O_RDONLY | os.O_CLOEXEC)
    try:
        nl.set_link(index, netns_fd=fd, ifname=name)
    finally:
        os.close(fd)


def _set_driver_link(root: str, pci: str, driver: str) -> None:
    drv = DRIVER if driver == "net" else driver
    os.makedirs(os.path.join(root, *PCI_DIR[:2], "drivers", drv), mode=0o755, exist_ok=True)
    replace_symlink(f"../../drivers/{drv}", os.path.join(root, *PCI_DIR, pci, "driver"))
