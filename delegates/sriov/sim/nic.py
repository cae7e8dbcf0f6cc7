"""Simulated SR-IOV NIC: a fake sysfs tree + veth netdevs + the `sim` VF table.

For hosts without an SR-IOV NIC (this one, CI, the demo). `netmeta sim create --pf P --vfs N`
builds, under ROOT (default /run/netmeta/sim):

  bus/pci/..., class/net/...             the fake sysfs tree of the PF and its VFs (sysfs.py)
  netmeta-sim/<P>.json, <P>.lock         the sim VF table (vftable.py)
  netmeta-sim/<P>.nic.json, <P>.nic.lock this NIC: PCI addresses, netns, per-port records

and the netdevs: a veth pair per port, host end the port's netdev, peer end in the private
netns `netmeta-sim-P` on the bridge `esw` there, the NIC's embedded switch (ports.py). Names,
limits and SimError are in names.py.

This module: create / destroy, refresh and the revival of lost VF netdevs, the per-NIC
metadata file, and the `netmeta sim` CLI. It re-exports the names callers use from it.

`refresh(root, P)` keeps the tree true (the sim backend's topology, sim/topology.py, runs it
before each read of netdev names, so the product never calls it; when nothing changed it
checks each port by two ioctls and sends no netlink, see refresh) and emulates hardware: a veth dies with the
netns it is in, a real VF instead returns to the host netns when its pod netns goes away. A
port whose peer end vanished has lost its netdev that way; refresh creates it again in the host
under the name the kernel would give a returning VF: its pod-side name if free (learnt while it
was away), else dev<ifindex>, with the VF's MAC from the VF table.

Everything a refresh (and a bind) does runs on the product's bare rtnetlink client
(cni/rtnl.py, through ports.py): it runs in every exec'd `sriov` call on a sim VF and in the
daemon, where pyroute2's IPRoute would cost ~200 modules (asyncio) and ~11 MB. pyroute2 is
imported only by create/destroy, for netns.create/remove (tests/test_startup_imports.py).
"""
from __future__ import annotations

import contextlib
import os
import socket
import sys

from pyroute2.netlink.exceptions import NetlinkError  # what cni.rtnl raises: 3 small modules

from cni import jsonlite, log
from cni.files import atomic_write, read_json
from cni.rtnl import Rtnl
from delegates.sriov.topology import valid_ifname
from delegates.sriov.vftable import VFTableError

from .names import (
    ALIAS_PREFIX,
    MAX_VFS,
    NETNS_PREFIX,
    SimError,
    netns_name,
    peer_name,
    port_alias,
    port_keys,
    validate,
    vf_netdev_name,
)
from .ports import (
    BRIDGE,
    NSID_NONE,
    SELF_NETNS,
    add_port,
    del_link,
    host_ports,
    index_of,
    ioctl_socket,
    links,
    links_in,
    name_in,
    name_of,
    netns_path,
    nsid,
    plug_peers,
)
from .sysfs import DRIVER, PCI_DIR, remove_tree, set_netdev_name, tree_lock, write_tree
from .vftable import STATE_DIR, SimVFTable, flocked, init_state, lock_path, state_path

# typing.TYPE_CHECKING without importing typing (an exec'd call needs nothing of it): mypy
# takes any `TYPE_CHECKING` as true
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

__all__ = [
    "ALIAS_PREFIX", "BRIDGE", "DEFAULT_ROOT", "DRIVER", "MAX_VFS", "NETNS_PREFIX", "NSID_NONE",
    "PCI_DIR", "SimError", "create", "destroy", "is_sim_nic", "main", "netns_name",
    "port_alias", "refresh", "refresh_port", "set_netdev_name", "validate", "vf_netdev_name", "write_tree",
]

# cni/log.py: in an exec'd plugin call it writes the product's lines without importing `logging`
_log = log.get("sim")

DEFAULT_ROOT = "/run/netmeta/sim"


# ---------------------------------------------------------------- metadata

def _meta_path(root: str, pf: str) -> str:
    return os.path.join(root, STATE_DIR, f"{pf}.nic.json")


def _nic_lock(root: str, pf: str) -> str:
    return os.path.join(root, STATE_DIR, f"{pf}.nic.lock")


def is_sim_nic(root: str, pf: str) -> bool:
    return os.path.exists(_meta_path(os.path.abspath(root), pf))


def _load_meta(root: str, pf: str) -> dict[str, Any] | None:
    return read_json(_meta_path(root, pf))


def _save_meta(root: str, meta: dict[str, Any]) -> None:
    # not fsync'd, like the VF table (sim/vftable.py _write): a power loss ends the sim NIC
    atomic_write(_meta_path(root, meta["pf"]), jsonlite.dumps(meta) + "\n", durable=False)


# ---------------------------------------------------------------- create / destroy

def create(pf: str, vfs: int, root: str = DEFAULT_ROOT) -> dict[str, Any]:
    """Build a simulated NIC; return the sriov config fragment pointing at it.
    Creating the same NIC (same VF count) again is a no-op."""
    validate(pf, vfs)
    root = os.path.abspath(root)
    ns = netns_name(pf)
    os.makedirs(os.path.join(root, STATE_DIR), mode=0o700, exist_ok=True)
    fragment = {"master": pf, "sysfsRoot": root, "backend": "sim"}
    try:
        with flocked(_nic_lock(root, pf)):
            meta = _load_meta(root, pf)
            if meta is not None:
                if meta["totalvfs"] != vfs:
                    raise SimError(f"failed to create sim NIC {pf}: it exists with "
                                   f"{meta['totalvfs']} VFs; destroy it first")
                _refresh_locked(root, meta, thorough=True)
                return fragment
            _check_free(root, pf, vfs)
            try:
                _build(root, pf, vfs)
            except BaseException:
                _log.error("failed to create sim NIC %s; removing what was built", pf)
                _destroy_locked(root, pf, _load_meta(root, pf) or {"pf": pf, "netns": ns})
                raise
    except BaseException:
        if not is_sim_nic(root, pf):      # leave no lock file or empty dir behind
            with contextlib.suppress(FileNotFoundError):
                os.unlink(_nic_lock(root, pf))
            _prune_state_dir(root)
        raise
    _log.info("created sim NIC %s with %d VFs under %s (netns %s)", pf, vfs, root, ns)
    return fragment


def _check_free(root: str, pf: str, vfs: int) -> None:
    names = [pf] + [vf_netdev_name(pf, n) for n in range(vfs)]
    with Rtnl() as nl:
        _, host_names, _ = host_ports(nl, pf)
    clash = sorted(set(names) & host_names)
    if clash:
        raise SimError(f"failed to create sim NIC {pf}: netdev {clash[0]} exists")
    if os.path.lexists(os.path.join(root, "class", "net", pf)):
        raise SimError(f"failed to create sim NIC {pf}: {root}/class/net/{pf} exists "
                       "(a leftover? run `netmeta sim destroy`)")
    if os.path.lexists(netns_path(netns_name(pf))):
        raise SimError(f"failed to create sim NIC {pf}: netns {netns_name(pf)} exists (a "
                       "leftover? run `netmeta sim destroy`)")


def _build(root: str, pf: str, vfs: int) -> None:
    from pyroute2 import netns  # lazily: only creating / destroying a NIC makes a netns
    ns = netns_name(pf)
    netns.create(ns)
    ports: dict[str, Any] = {}
    with Rtnl() as nl:
        for key in port_keys(vfs):
            name = pf if key == "pf" else vf_netdev_name(pf, int(key))
            index = add_port(nl, pf, key, name, ns, up=(key == "pf"))
            ports[key] = {"ifindex": index, "name": name, "away": None}
    plug_peers(ns, list(ports))               # creates the bridge, enslaves the peers
    with ioctl_socket(netns_path(ns)) as priv:  # what refresh checks each port by
        for key in ports:
            ports[key]["peer"] = index_of(priv, peer_name(key))
    pf_pci, vf_pcis = write_tree(root, pf, vfs)
    for key, pci in zip(port_keys(vfs), [pf_pci] + vf_pcis):
        ports[key]["pci"] = pci
    init_state(root, pf, vfs)
    _save_meta(root, {"pf": pf, "netns": ns, "pci": pf_pci, "totalvfs": vfs, "ports": ports})


def destroy(pf: str, root: str = DEFAULT_ROOT) -> None:
    """Remove a simulated NIC: netdevs (also VF netdevs inside pods), netns, files.
    Idempotent."""
    if not valid_ifname(pf):
        raise SimError(f"failed to destroy sim NIC {pf!r}: not a valid interface name")
    root = os.path.abspath(root)
    if not os.path.isdir(os.path.join(root, STATE_DIR)):
        _destroy_locked(root, pf, {"pf": pf, "netns": netns_name(pf)})
        return
    with flocked(_nic_lock(root, pf)):
        _destroy_locked(root, pf, _load_meta(root, pf) or {"pf": pf, "netns": netns_name(pf)})
    with contextlib.suppress(FileNotFoundError):
        os.unlink(_nic_lock(root, pf))
    _prune_state_dir(root)
    _log.info("destroyed sim NIC %s under %s", pf, root)


def _destroy_locked(root: str, pf: str, meta: dict[str, Any]) -> None:
    ns = meta.get("netns", netns_name(pf))
    if os.path.lexists(netns_path(ns)):
        # deleting a veth end deletes its peer wherever it is (host, a pod): do it explicitly
        # rather than rely on the netns teardown, which runs asynchronously in the kernel
        with contextlib.suppress(FileNotFoundError), Rtnl(netns_path(ns)) as nsl:
            for index, name, _ in list(links(nsl)):
                if name != "lo":
                    with contextlib.suppress(NetlinkError):
                        del_link(nsl, index)
        from pyroute2 import netns  # lazily: only creating / destroying a NIC removes a netns
        netns.remove(ns)
    with Rtnl() as nl:                 # leftovers whose peer was already gone
        for _, index in host_ports(nl, pf)[0].values():
            with contextlib.suppress(NetlinkError):
                del_link(nl, index)
    pcis = [p["pci"] for p in meta.get("ports", {}).values() if p.get("pci")]
    if not pcis:                           # no metadata: find the tree from class/net/<pf>
        dev = os.path.join(root, "class", "net", pf, "device")
        if os.path.isdir(dev) and os.path.islink(os.path.join(dev, "driver")) and \
                os.path.basename(os.readlink(os.path.join(dev, "driver"))) == DRIVER:
            pdir = os.path.realpath(dev)
            pcis = [os.path.basename(pdir)] + [
                os.path.basename(os.readlink(os.path.join(pdir, n)))
                for n in os.listdir(pdir) if n.startswith("virtfn")]
    remove_tree(root, pcis)
    for path in (_meta_path(root, pf), state_path(root, pf), lock_path(root, pf),
                 _meta_path(root, pf) + ".tree-dirty"):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)


def _prune_state_dir(root: str) -> None:
    d = os.path.join(root, STATE_DIR)
    with contextlib.suppress(FileNotFoundError):
        if set(os.listdir(d)) <= {os.path.basename(tree_lock(root))}:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tree_lock(root))
            os.rmdir(d)


# ---------------------------------------------------------------- refresh

def refresh(root: str, pf: str, thorough: bool = False) -> dict[str, str | None]:
    """Sync the fake sysfs with the netdevs; bring back VF netdevs that died with a netns.

    Returns {port key ("pf", "0", "1", ...): its netdev name in this netns or None}.

    Common path, nothing changed: no netlink at all, so no RTNL (in a burst of ADDs the other
    ADDs' netns moves hold RTNL, and every refresh runs under the product's node lock; a real
    NIC's sysfs takes none either). Each port is checked by ioctls, answered under RCU: its
    veth peer by the recorded ifindex in the private netns (SIOCGIFNAME there == `vfN`: the
    veth lives), its host end by the recorded ifindex here (== the recorded name: still here,
    same name; none: still away). Only ports that fail the check are asked over netlink (one
    RTM_GETLINK of the peer each, a dump if more than _FEW): where the host end is, its name
    in a pod (once per move, for revival), or that the veth died (revival: a host dump).
    Left: an away port that comes back under a new ifindex (its own was taken here) while
    that ifindex's holder then leaves before the next refresh looks as still away until it
    moves again; `thorough` (the CLI, create, bind) asks about every port.
    Writes only what changed; nothing grows with the host's links.
    """
    root = os.path.abspath(root)
    with flocked(_nic_lock(root, pf)):
        meta = _load_meta(root, pf)
        if meta is None:
            raise SimError(f"failed to refresh sim NIC {pf}: no {_meta_path(root, pf)}")
        return _refresh_locked(root, meta, thorough)


# a refresh asks RTNL about at most this many ports one by one; more, and it dumps the netns
_FEW = 8


def refresh_port(root: str, pf: str, key: str) -> None:
    """The refresh before a read of port `key`'s netdev name (sim/topology.py vf_netdev): when
    the records say the port is here and one ioctl confirms it (and no refresh died mid-tree),
    nothing else is looked at: no netlink, no netns socket, no write. Otherwise a refresh that
    asks netlink only about `key` and dead ports; other ports that changed are left for a later
    refresh (as if they changed just after this one: the tree is as true as the kernel's
    sysfs read a moment earlier)."""
    root = os.path.abspath(root)
    with flocked(_nic_lock(root, pf)):
        meta = _load_meta(root, pf)
        if meta is None:
            raise SimError(f"failed to refresh sim NIC {pf}: no {_meta_path(root, pf)}")
        rec = meta["ports"].get(key)
        if rec is not None and rec.get("away") is None and not rec.get("driver") \
                and not os.path.exists(_meta_path(root, pf) + ".tree-dirty"):
            with ioctl_socket() as host:
                now = name_of(host, rec.get("ifindex"))
            if now is not None and now == rec.get("name"):
                return
        _refresh_locked(root, meta, only=key)


def _refresh_locked(root: str, meta: dict[str, Any], thorough: bool = False,
                    only: str | None = None) -> dict[str, str | None]:
    pf, ns, ports = meta["pf"], meta["netns"], meta["ports"]
    dirty = False
    dead: list[str] = []
    away: dict[str, list[int | None]] = {}
    here: dict[str, str] = {}
    # what the tree shows now: written from the records at the last refresh, unless a refresh
    # died between writing the tree and saving the records (its marker is still there)
    marker = _meta_path(root, pf) + ".tree-dirty"
    full = os.path.exists(marker)
    before = {k: None if full or r.get("away") is not None else r.get("name") for k, r in ports.items()}
    with contextlib.ExitStack() as stack:
        host = stack.enter_context(ioctl_socket())
        priv = stack.enter_context(ioctl_socket(netns_path(ns)))
        # the cheap check, no RTNL: ioctls by ifindex in both netns (see refresh)
        ask: list[str] = []
        for key, rec in ports.items():
            if rec.get("driver"):   # bound to a userspace driver (sim/bind.py): no netdev, end parked
                continue
            if thorough or name_of(priv, rec.get("peer")) != peer_name(key):
                ask.append(key)                    # peer dead, or never seen: ask
            elif only is not None and key != only and not full:
                if rec.get("away") is None and rec.get("name"):   # left as the records say
                    here[key] = rec["name"]
            elif rec.get("away") is None:
                name = name_of(host, rec.get("ifindex"))
                if name is not None and name == rec.get("name"):
                    here[key] = name
                else:
                    ask.append(key)                # renamed, or left
            elif name_of(host, rec["away"][0]) is not None:
                ask.append(key)                    # its ifindex is in use here: back?
        if ask:
            dirty = _ask(root, meta, ask, host, here, away, dead)
    if dead:
        plug_peers(ns, dead)
        with ioctl_socket(netns_path(ns)) as priv:
            for key in dead:
                ports[key]["peer"] = index_of(priv, peer_name(key))
    # rewrite only the ports that changed: a refresh with nothing to do touches no file, so
    # concurrent ADDs (each refreshing under the node lock) do not listdir every VF in turn
    changed = [k for k in ports if full or before[k] != here.get(k)]
    if changed and not full:
        os.close(os.open(marker, os.O_WRONLY | os.O_CREAT, 0o600))
    for key in changed:
        set_netdev_name(root, ports[key]["pci"], here.get(key))
    if dirty:
        _save_meta(root, meta)
    if changed:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(marker)
    result: dict[str, str | None] = {key: here.get(key) for key in ports}
    return result


def _ask(root: str, meta: dict[str, Any], ask: list[str], host: socket.socket,
         here: dict[str, str], away: dict[str, list[int | None]], dead: list[str]) -> bool:
    """Netlink for the ports the ioctls could not confirm: where each veth's host end is (its
    peer's IFLA_LINK, IFLA_LINK_NETNSID), its name in a pod, revival. Fills here / away /
    dead; True if the records changed."""
    pf, ns, ports = meta["pf"], meta["netns"], meta["ports"]
    dirty = False
    with Rtnl() as nl:
        ns_id = nsid(nl, netns_path(ns))
        if ns_id is None:   # asked to assign one, the kernel gave none
            raise SimError(f"failed to get an id for netns {ns} of the sim NIC {pf}")
        peers = links_in(nl, ns_id, [peer_name(k) for k in ask] if len(ask) <= _FEW else None)
        # our own id; valid after the RTM_GETLINK (the kernel allocates ids while answering)
        self_id = nsid(nl, SELF_NETNS, assign=False)
        for key in ask:
            rec = ports[key]
            if peer_name(key) not in peers:  # the veth died, with the netns its end was in
                dead.append(key)
                continue
            peer, index, where = peers[peer_name(key)]
            if rec.get("peer") != peer:
                rec["peer"] = peer
                dirty = True
            name = name_of(host, index) if where == self_id else None
            if name:
                here[key] = name
                if (rec.get("name"), rec.get("ifindex"), rec.get("away")) != (name, index, None):
                    rec.update({"name": name, "ifindex": index, "away": None})
                    dirty = True
            elif rec.get("away") != [index, where]:
                away[key] = [index, where]
        for key, at in away.items():
            # in a pod: learn its name there once per move, to revive it under it; a netns
            # being torn down answers no name: keep the one learnt while away, if any
            port = ports[key]
            name = name_in(nl, at[1], at[0]) or (port.get("name") if port.get("away") else None)
            port.update({"name": name, "ifindex": at[0], "away": at})
        if dead:
            _, host_names, host_indexes = host_ports(nl, pf)
            for key in dead:
                here[key] = _revive(nl, root, meta, key, host_names, host_indexes)
    return dirty or bool(away or dead)


def _revive(nl: Rtnl, root: str, meta: dict[str, Any], key: str,
            host_names: set[str], host_indexes: set[int]) -> str:
    """Recreate port `key` in this netns the way the kernel returns a real VF here when its
    netns is destroyed: keep the pod-side name unless taken, else dev<ifindex>
    (net/core/dev.c default_device_exit_net)."""
    pf, rec = meta["pf"], meta["ports"][key]
    mac = None
    if key != "pf":
        with contextlib.suppress(VFTableError, IndexError):
            mac = SimVFTable(pf, root).get(int(key)).mac
    # a real VF keeps its ifindex across netns moves while it is free: reuse the last known
    index = rec.get("ifindex") if rec.get("ifindex") not in host_indexes else 0
    tmp = "nmsim" + os.urandom(5).hex()
    index = add_port(nl, pf, key, tmp, meta["netns"], mac=mac, up=(key == "pf"), index=index or 0)
    name = rec.get("name") if rec.get("away") else None
    if not name or name in host_names or not valid_ifname(name):
        name = f"dev{index}"
        n = 0
        while name in host_names:       # the kernel's "dev%d" fallback
            name, n = f"dev{n}", n + 1
    nl.set_link(index, ifname=name)
    host_names.add(name)
    host_indexes.add(index)
    _log.info("sim NIC %s: port %s lost its netdev with its netns; back as %s", pf, key, name)
    rec.update({"name": name, "ifindex": index, "away": None})
    return name


# ---------------------------------------------------------------- bind

def bind(root: str, pf: str, vf: int, driver: str) -> dict[str, Any]:
    """Bind VF `vf` to `driver` (a userspace one: its netdev goes; `net`: it comes back)."""
    from . import bind as simbind
    root = os.path.abspath(root)
    with flocked(_nic_lock(root, pf)):
        meta = _load_meta(root, pf)
        if meta is None:
            raise SimError(f"failed to bind a VF of sim NIC {pf}: no {_meta_path(root, pf)}")
        _refresh_locked(root, meta, thorough=True)
        out = simbind.bind(root, meta, vf, driver)
        _save_meta(root, meta)
    _log.info("sim NIC %s: VF %d bound to %s", pf, vf, driver)
    return out


# ---------------------------------------------------------------- CLI

def main(argv: list[str] | None = None) -> int:
    """`netmeta sim create --pf NAME --vfs N [--root DIR]` | `destroy --pf NAME [--root DIR]`
    | `refresh --pf NAME [--root DIR]` | `bind --pf NAME --vf N --driver vfio-pci|net [--root DIR]`.
    stdout: one JSON object (create, refresh) or nothing;
    logs and errors go to stderr."""
    import argparse
    import logging
    args_in = list(sys.argv[1:] if argv is None else argv)
    if args_in[:1] == ["sim"]:
        args_in = args_in[1:]
    parser = argparse.ArgumentParser(prog="netmeta sim", description="simulated SR-IOV NIC")
    sub = parser.add_subparsers(dest="cmd", required=True)
    for cmd in ("create", "destroy", "refresh", "bind"):
        p = sub.add_parser(cmd)
        p.add_argument("--pf", required=True, help="PF netdev name")
        if cmd == "create":
            p.add_argument("--vfs", type=int, required=True, help="number of VFs")
        if cmd == "bind":
            p.add_argument("--vf", type=int, required=True, help="VF index")
            p.add_argument("--driver", required=True,
                           help="vfio-pci, uio_pci_generic, igb_uio (userspace: no netdev) or net")
        p.add_argument("--root", default=DEFAULT_ROOT, help="fake sysfs root")
    try:
        args = parser.parse_args(args_in)
    except SystemExit as e:
        return int(e.code or 0)
    if not logging.getLogger().handlers:
        logging.basicConfig(stream=sys.stderr, level=logging.INFO,
                            format="netmeta sim: %(message)s")
    try:
        if args.cmd == "create":
            out: Any = create(args.pf, args.vfs, args.root)
        elif args.cmd == "refresh":
            out = refresh(args.root, args.pf, thorough=True)
        elif args.cmd == "bind":
            out = bind(args.root, args.pf, args.vf, args.driver)
        else:
            destroy(args.pf, args.root)
            return 0
    except (SimError, VFTableError, NetlinkError, OSError) as e:
        print(f"netmeta sim {args.cmd}: {e}", file=sys.stderr)
        return 1
    sys.stdout.write(jsonlite.dumps(out) + "\n")
    sys.stdout.flush()
    return 0
