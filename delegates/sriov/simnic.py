"""Simulated SR-IOV NIC: a fake sysfs tree + veth netdevs + the `sim` VF table.

For hosts without an SR-IOV NIC (this one, CI, the demo). `netmeta sim create --pf P --vfs N`
builds, under ROOT (default /run/netmeta/sim):

  bus/pci/devices/0000:BB:00.0/          the PF: sriov_totalvfs, sriov_numvfs, virtfn<N> ->
                                         ../<vf pci>, driver -> ../../drivers/netmeta-sim,
                                         net/<P>/device -> ../../../<pf pci>
  bus/pci/devices/<vf pci>/              VF N at devfn N+1 (0000:BB:00.1 .. 0000:BB:1f.7):
                                         physfn -> ../<pf pci>, driver, net/<ifname>/ (empty
                                         while the netdev is in another netns, like sysfs)
  bus/pci/drivers/netmeta-sim/
  class/net/<ifname> -> ../../bus/pci/devices/<pci>/net/<ifname>   (PF and host-side VFs)
  netmeta-sim/<P>.json, <P>.lock         the sim VF table (vftable_sim)
  netmeta-sim/<P>.nic.json, <P>.nic.lock this NIC: PCI addresses, netns, per-port records

Netdevs: every port (the PF and each VF) is a veth pair. The host end is the port's netdev
(`P`, `Pv0`, `Pv1`, ...; the PF is up, VFs down, like a fresh NIC) and carries IFLA_IFALIAS
`netmeta-sim:P:pf` / `netmeta-sim:P:N`, which survives renames and netns moves, so the sim can
always tell which netdev is which port. The peer ends (`pf`, `vf0`, ...) live in the private
netns `netmeta-sim-P`, enslaved to the bridge `esw` there: the NIC's embedded switch, so VFs
and the PF of one NIC reach each other. The PF end is a veth, not the bridge, because a
bridge cannot change netns (NETIF_F_NETNS_LOCAL) and pfOnly moves the PF.

`refresh(root, P)` keeps the tree true (call it before reading the topology on every CNI call;
`VFTable.sync()` does it for the sim backend) and emulates hardware: a veth dies with the
netns it is in, a real VF instead returns to the host netns when its pod netns goes away. A
port whose peer end vanished has lost its netdev that way; refresh creates it again in the host
under the name the kernel would give a returning VF: its pod-side name if free (learnt while it
was away), else dev<ifindex>, with the VF's MAC from the VF table.
"""
from __future__ import annotations

import argparse
import contextlib
import errno
import json
import logging
import os
import secrets
import shutil
import socket
import struct
import sys
from typing import Any, Iterator

from pyroute2 import IPRoute, NetlinkError, netns
from pyroute2.netlink.rtnl import RTM_GETLINK

from .topology import valid_ifname
from cni import netns as nsock
from cni.files import atomic_write

from .vftable import ZERO_MAC, VFTableError
from .vftable_sim import STATE_DIR, SimVFTable, flocked, init_state, lock_path, state_path

log = logging.getLogger(__name__)

DEFAULT_ROOT = "/run/netmeta/sim"
DRIVER = "netmeta-sim"
NETNS_PREFIX = "netmeta-sim-"
ALIAS_PREFIX = "netmeta-sim:"
BRIDGE = "esw"
MAX_VFS = 255            # devfn N+1 must fit in 8 bits
PCI_DIR = ("bus", "pci", "devices")
NSID_NONE = (-1, 0xFFFFFFFF)


class SimError(Exception):
    pass


# ---------------------------------------------------------------- names and paths

def netns_name(pf: str) -> str:
    return NETNS_PREFIX + pf


def port_alias(pf: str, key: str) -> str:
    return f"{ALIAS_PREFIX}{pf}:{key}"


def vf_netdev_name(pf: str, n: int) -> str:
    return f"{pf}v{n}"


def _port_keys(total: int) -> list[str]:
    return ["pf"] + [str(n) for n in range(total)]


def _peer_name(key: str) -> str:
    return "pf" if key == "pf" else f"vf{key}"


def _meta_path(root: str, pf: str) -> str:
    return os.path.join(root, STATE_DIR, f"{pf}.nic.json")


def _nic_lock(root: str, pf: str) -> str:
    return os.path.join(root, STATE_DIR, f"{pf}.nic.lock")


def _tree_lock(root: str) -> str:
    return os.path.join(root, STATE_DIR, ".tree.lock")


def _pci_path(root: str, pci: str) -> str:
    return os.path.join(root, *PCI_DIR, pci)


def is_sim_nic(root: str, pf: str) -> bool:
    return os.path.exists(_meta_path(os.path.abspath(root), pf))


def validate(pf: str, vfs: int) -> None:
    if not isinstance(vfs, int) or isinstance(vfs, bool) or not 1 <= vfs <= MAX_VFS:
        raise SimError(f"failed to create sim NIC {pf}: --vfs {vfs} out of range 1-{MAX_VFS}")
    longest = vf_netdev_name(pf, vfs - 1)
    if not valid_ifname(pf) or not valid_ifname(longest):
        raise SimError(f"failed to create sim NIC {pf!r}: not a valid interface name, or too "
                       f"long for VF netdev names like {longest!r} (max 15 bytes)")


# ---------------------------------------------------------------- the fake sysfs tree

def _symlink(target: str, path: str) -> None:
    """Create or atomically replace the symlink `path`."""
    tmp = f"{path}.{secrets.token_hex(4)}.tmp"
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
        _symlink(_classnet_target(pci, name), os.path.join(classnet, name))
    for o in old:
        shutil.rmtree(os.path.join(net, o))
    return True


def _classnet_target(pci: str, name: str) -> str:
    return f"../../{'/'.join(PCI_DIR)}/{pci}/net/{name}"


def _write_count(path: str, value: int) -> None:
    atomic_write(path, f"{value}\n")


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
    with flocked(_tree_lock(root)):
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


def _remove_tree(root: str, pcis: list[str]) -> None:
    classnet = os.path.join(root, "class", "net")
    for pci in pcis:
        if os.path.isdir(_pci_path(root, pci)):
            set_netdev_name(root, pci, None)
            shutil.rmtree(_pci_path(root, pci))
    # prune what is left empty, bottom-up; never the root itself
    for d in (classnet, os.path.join(root, "class"),
              os.path.join(root, *PCI_DIR[:2], "drivers", DRIVER),
              os.path.join(root, *PCI_DIR[:2], "drivers"), os.path.join(root, *PCI_DIR),
              os.path.join(root, *PCI_DIR[:2]), os.path.join(root, PCI_DIR[0])):
        with contextlib.suppress(FileNotFoundError, OSError):
            os.rmdir(d)


# ---------------------------------------------------------------- metadata

def _load_meta(root: str, pf: str) -> dict[str, Any] | None:
    try:
        with open(_meta_path(root, pf)) as f:
            return json.load(f)
    except FileNotFoundError:
        return None


def _save_meta(root: str, meta: dict[str, Any]) -> None:
    atomic_write(_meta_path(root, meta["pf"]), json.dumps(meta, indent=1) + "\n")


# ---------------------------------------------------------------- netlink helpers

def _host_ports(ipr: IPRoute, pf: str) -> tuple[dict[str, tuple[str, int]], set[str], set[int]]:
    """One dump of this netns: {port key: (name, ifindex)} by alias, all names, all indexes."""
    prefix = port_alias(pf, "")
    ports: dict[str, tuple[str, int]] = {}
    names: set[str] = set()
    indexes: set[int] = set()
    for msg in ipr.link("dump"):
        name, index = msg.get_attr("IFLA_IFNAME"), msg["index"]
        names.add(name)
        indexes.add(index)
        alias = msg.get_attr("IFLA_IFALIAS") or ""
        if alias.startswith(prefix):
            ports[alias[len(prefix):]] = (name, index)
    return ports, names, indexes


# The refresh hot path talks rtnetlink directly: pyroute2 decodes every attribute of every
# link (~0.2 ms per link here, mostly IFLA_AF_SPEC and stats), which made one dump of the
# private netns cost more than everything else in refresh together. This reads 3 attributes.
_NLMSG_ERROR, _NLMSG_DONE = 2, 3
_RTM_NEWNSID, _RTM_GETNSID = 88, 90
_NLM_F_REQUEST, _NLM_F_ACK, _NLM_F_DUMP = 0x1, 0x4, 0x300
_IFLA_IFNAME, _IFLA_LINK, _IFLA_EXT_MASK, _IFLA_LINK_NETNSID, _IFLA_TARGET_NETNSID = \
    3, 5, 29, 37, 46
_NETNSA_NSID, _NETNSA_FD = 1, 3
_RTEXT_FILTER_SKIP_STATS = 8


def _attr(kind: int, fmt: str, value: int) -> bytes:
    return struct.pack("=HH" + fmt, 4 + struct.calcsize(fmt), kind, value)


def _attrs(data: bytes, offset: int) -> Iterator[tuple[int, bytes]]:
    while offset + 4 <= len(data):
        length, kind = struct.unpack_from("=HH", data, offset)
        if length < 4:
            return
        yield kind & 0x3FFF, data[offset + 4:offset + length]   # strip NLA_F_* bits
        offset += (length + 3) & ~3


class _Rtnl:
    """A bare NETLINK_ROUTE socket: RTM_GETNSID/NEWNSID and a 3-attribute RTM_GETLINK dump."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC,
                                  socket.NETLINK_ROUTE)
        self.sock.bind((0, 0))
        self.seq = 0

    def __enter__(self) -> "_Rtnl":
        return self

    def __exit__(self, *exc: object) -> None:
        self.sock.close()

    def _request(self, kind: int, flags: int, body: bytes) -> Iterator[tuple[int, bytes]]:
        self.seq += 1
        self.sock.send(struct.pack("=LHHLL", 16 + len(body), kind, flags, self.seq, 0) + body)
        while True:
            data = self.sock.recv(1 << 16)
            off = 0
            while off + 16 <= len(data):
                length, mtype, _, seq, _ = struct.unpack_from("=LHHLL", data, off)
                payload = data[off + 16:off + length]
                off += (length + 3) & ~3
                if seq != self.seq:
                    continue
                if mtype == _NLMSG_DONE:
                    return
                if mtype == _NLMSG_ERROR:
                    code = -struct.unpack_from("=i", payload)[0]
                    if code:
                        raise OSError(code, os.strerror(code))
                    return                                  # the ACK
                yield mtype, payload
                if not flags & _NLM_F_DUMP:
                    return

    def nsid(self, path: str, assign: bool = True) -> int | None:
        """This netns's id for the netns at `path` (assigned first if it has none)."""
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            raise SimError(f"failed to find netns {path} of the sim NIC: it is gone; run "
                           "`netmeta sim destroy` and create the NIC again") from None
        try:
            for _ in range(2):
                for _, payload in self._request(_RTM_GETNSID, _NLM_F_REQUEST,
                                                b"\0" * 4 + _attr(_NETNSA_FD, "I", fd)):
                    for kind, value in _attrs(payload, 4):
                        if kind == _NETNSA_NSID and struct.unpack("=i", value)[0] >= 0:
                            return struct.unpack("=i", value)[0]
                if not assign:
                    return None
                list(self._request(_RTM_NEWNSID, _NLM_F_REQUEST | _NLM_F_ACK, b"\0" * 4
                                   + _attr(_NETNSA_FD, "I", fd) + _attr(_NETNSA_NSID, "i", -1)))
            return None
        finally:
            os.close(fd)

    def links_in(self, nsid: int) -> dict[str, tuple[int | None, int | None]]:
        """{name: (IFLA_LINK, IFLA_LINK_NETNSID)} of the netns this netns calls `nsid`.

        IFLA_TARGET_NETNSID makes the kernel dump another netns from this socket (no setns,
        no fork) and give IFLA_LINK_NETNSID relative to *this* netns, so a veth peer's
        location compares with our own id. (On RTM_NEWLINK/SETLINK the same attribute means
        "move the link there": never send it on a set.)
        """
        body = struct.pack("=BxHiII", 0, 0, 0, 0, 0) + _attr(_IFLA_TARGET_NETNSID, "i", nsid) \
            + _attr(_IFLA_EXT_MASK, "I", _RTEXT_FILTER_SKIP_STATS)
        out: dict[str, tuple[int | None, int | None]] = {}
        for _, payload in self._request(RTM_GETLINK, _NLM_F_REQUEST | _NLM_F_DUMP, body):
            name, link, link_ns = None, None, None
            for kind, value in _attrs(payload, 16):
                if kind == _IFLA_IFNAME:
                    name = value.rstrip(b"\0").decode()
                elif kind == _IFLA_LINK:
                    link = struct.unpack("=I", value)[0]
                elif kind == _IFLA_LINK_NETNSID:
                    link_ns = struct.unpack("=i", value)[0]
            if name is not None:
                out[name] = (link, link_ns)
        return out


def _name_in(ipr: IPRoute, nsid: int | None, index: int) -> str | None:
    """Name of link `index` in the netns this netns calls `nsid` (None if unknown/gone)."""
    if nsid is None or nsid in NSID_NONE:
        return None
    try:
        return ipr.link("get", index=index, if_netnsid=nsid)[0].get_attr("IFLA_IFNAME")
    except (NetlinkError, IndexError):
        return None


def _add_port(ipr: IPRoute, pf: str, key: str, name: str, ns: str,
              mac: str | None = None, up: bool = False, index: int = 0) -> int:
    """Create port `key` as a veth: `name` here (ifindex `index` if given and free), its
    peer in netns `ns`. Returns the ifindex."""
    peer = {"ifname": _peer_name(key), "net_ns_fd": ns}
    try:
        ipr.link("add", ifname=name, kind="veth", index=index, peer=dict(peer))
    except NetlinkError as e:
        if not index or e.code != errno.EEXIST:
            raise
        ipr.link("add", ifname=name, kind="veth", peer=dict(peer))   # ifindex taken: any
    index = ipr.link_lookup(ifname=name)[0]
    # IFLA_IFALIAS is ignored on RTM_NEWLINK for veth: set it afterwards
    attrs: dict[str, Any] = {"ifalias": port_alias(pf, key)}
    if mac and mac != ZERO_MAC:
        attrs["address"] = mac
    ipr.link("set", index=index, **attrs)
    if up:
        ipr.link("set", index=index, state="up")
    return index


def _in_netns(ns: str) -> IPRoute:
    """rtnetlink in the named netns, opened without a fork (see cni/netns.py)."""
    return nsock.rtnl(os.path.join(netns.NETNS_RUN_DIR, ns))


def _plug_peers(ns: str, keys: list[str]) -> None:
    """In the private netns: enslave the ports' peer ends to the bridge, set them up."""
    with _in_netns(ns) as nsr:
        br = nsr.link_lookup(ifname=BRIDGE)
        if not br:
            nsr.link("add", ifname=BRIDGE, kind="bridge")
            br = nsr.link_lookup(ifname=BRIDGE)
            nsr.link("set", index=br[0], state="up")
        for key in keys:
            idx = nsr.link_lookup(ifname=_peer_name(key))[0]
            nsr.link("set", index=idx, master=br[0], state="up")


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
                _refresh_locked(root, meta)
                return fragment
            _check_free(root, pf, vfs)
            try:
                _build(root, pf, vfs)
            except BaseException:
                log.error("failed to create sim NIC %s; removing what was built", pf)
                _destroy_locked(root, pf, _load_meta(root, pf) or {"pf": pf, "netns": ns})
                raise
    except BaseException:
        if not is_sim_nic(root, pf):      # leave no lock file or empty dir behind
            with contextlib.suppress(FileNotFoundError):
                os.unlink(_nic_lock(root, pf))
            _prune_state_dir(root)
        raise
    log.info("created sim NIC %s with %d VFs under %s (netns %s)", pf, vfs, root, ns)
    return fragment


def _check_free(root: str, pf: str, vfs: int) -> None:
    names = [pf] + [vf_netdev_name(pf, n) for n in range(vfs)]
    with IPRoute() as ipr:
        _, host_names, _ = _host_ports(ipr, pf)
    clash = sorted(set(names) & host_names)
    if clash:
        raise SimError(f"failed to create sim NIC {pf}: netdev {clash[0]} exists")
    if os.path.lexists(os.path.join(root, "class", "net", pf)):
        raise SimError(f"failed to create sim NIC {pf}: {root}/class/net/{pf} exists "
                       "(a leftover? run `netmeta sim destroy`)")
    if netns_name(pf) in netns.listnetns():
        raise SimError(f"failed to create sim NIC {pf}: netns {netns_name(pf)} exists (a "
                       "leftover? run `netmeta sim destroy`)")


def _build(root: str, pf: str, vfs: int) -> None:
    ns = netns_name(pf)
    netns.create(ns)
    ports: dict[str, Any] = {}
    with IPRoute() as ipr:
        for key in _port_keys(vfs):
            name = pf if key == "pf" else vf_netdev_name(pf, int(key))
            index = _add_port(ipr, pf, key, name, ns, up=(key == "pf"))
            ports[key] = {"ifindex": index, "name": name, "away": None}
    _plug_peers(ns, list(ports))               # creates the bridge, enslaves the peers
    pf_pci, vf_pcis = write_tree(root, pf, vfs)
    for key, pci in zip(_port_keys(vfs), [pf_pci] + vf_pcis):
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
    log.info("destroyed sim NIC %s under %s", pf, root)


def _destroy_locked(root: str, pf: str, meta: dict[str, Any]) -> None:
    ns = meta.get("netns", netns_name(pf))
    if ns in netns.listnetns():
        # deleting a veth end deletes its peer wherever it is (host, a pod): do it explicitly
        # rather than rely on the netns teardown, which runs asynchronously in the kernel
        with _in_netns(ns) as nsr:
            for msg in nsr.link("dump"):
                if msg.get_attr("IFLA_IFNAME") != "lo":
                    with contextlib.suppress(NetlinkError):
                        nsr.link("del", index=msg["index"])
        netns.remove(ns)
    with IPRoute() as ipr:                 # leftovers whose peer was already gone
        for _, index in _host_ports(ipr, pf)[0].values():
            with contextlib.suppress(NetlinkError):
                ipr.link("del", index=index)
    pcis = [p["pci"] for p in meta.get("ports", {}).values() if p.get("pci")]
    if not pcis:                           # no metadata: find the tree from class/net/<pf>
        dev = os.path.join(root, "class", "net", pf, "device")
        if os.path.isdir(dev) and os.path.islink(os.path.join(dev, "driver")) and \
                os.path.basename(os.readlink(os.path.join(dev, "driver"))) == DRIVER:
            pdir = os.path.realpath(dev)
            pcis = [os.path.basename(pdir)] + [
                os.path.basename(os.readlink(os.path.join(pdir, n)))
                for n in os.listdir(pdir) if n.startswith("virtfn")]
    _remove_tree(root, pcis)
    for path in (_meta_path(root, pf), state_path(root, pf), lock_path(root, pf)):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)


def _prune_state_dir(root: str) -> None:
    d = os.path.join(root, STATE_DIR)
    with contextlib.suppress(FileNotFoundError):
        if set(os.listdir(d)) <= {os.path.basename(_tree_lock(root))}:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(_tree_lock(root))
            os.rmdir(d)


# ---------------------------------------------------------------- refresh

def refresh(root: str, pf: str) -> dict[str, str | None]:
    """Sync the fake sysfs with the netdevs; bring back VF netdevs that died with a netns.

    Returns {port key ("pf", "0", "1", ...): its netdev name in this netns or None}.
    Common path: one RTM_GETLINK dump of the private netns and two RTM_GETNSID on a bare
    netlink socket, an ioctl (if_indextoname) and a listdir per port; nothing grows with the
    host's links; writes only what changed. A VF that moved costs one RTM_GETLINK (its name
    in the pod); a port that died costs a host dump and a veth.
    """
    root = os.path.abspath(root)
    with flocked(_nic_lock(root, pf)):
        meta = _load_meta(root, pf)
        if meta is None:
            raise SimError(f"failed to refresh sim NIC {pf}: no {_meta_path(root, pf)}")
        return _refresh_locked(root, meta)


def _refresh_locked(root: str, meta: dict[str, Any]) -> dict[str, str | None]:
    pf, ns, ports = meta["pf"], meta["netns"], meta["ports"]
    dirty = False
    dead: list[str] = []
    away: dict[str, list[int | None]] = {}
    here: dict[str, str] = {}
    with _Rtnl() as rtnl:
        peers = rtnl.links_in(rtnl.nsid(os.path.join("/run/netns", ns)))
        # our own id; valid after the dump (the kernel allocates ids while filling it)
        self_id = rtnl.nsid("/proc/thread-self/ns/net", assign=False)
    for key, rec in ports.items():
        if _peer_name(key) not in peers:  # the veth died, with the netns its end was in
            dead.append(key)
            continue
        index, where = peers[_peer_name(key)]
        name = None
        if where == self_id and index:
            with contextlib.suppress(OSError):    # ENXIO: it left after the dump
                name = socket.if_indextoname(index)
        if name:
            here[key] = name
            if (rec.get("name"), rec.get("ifindex"), rec.get("away")) != (name, index, None):
                rec.update({"name": name, "ifindex": index, "away": None})
                dirty = True
        elif rec.get("away") != [index, where]:
            away[key] = [index, where]
    if away or dead:
        with IPRoute() as ipr:
            for key, where in away.items():
                # in a pod: learn its name there once per move, to revive it under it
                ports[key].update({"name": _name_in(ipr, where[1], where[0]),
                                   "ifindex": where[0], "away": where})
            if dead:
                _, host_names, host_indexes = _host_ports(ipr, pf)
                for key in dead:
                    here[key] = _revive(ipr, root, meta, key, host_names, host_indexes)
        dirty = True
    if dead:
        _plug_peers(ns, dead)
    result: dict[str, str | None] = {}
    for key, rec in ports.items():
        set_netdev_name(root, rec["pci"], here.get(key))
        result[key] = here.get(key)
    if dirty:
        _save_meta(root, meta)
    return result


def _revive(ipr: IPRoute, root: str, meta: dict[str, Any], key: str,
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
    tmp = "nmsim" + secrets.token_hex(5)
    index = _add_port(ipr, pf, key, tmp, meta["netns"], mac=mac, up=(key == "pf"),
                      index=index or 0)
    name = rec.get("name") if rec.get("away") else None
    if not name or name in host_names or not valid_ifname(name):
        name = f"dev{index}"
        n = 0
        while name in host_names:       # the kernel's "dev%d" fallback
            name, n = f"dev{n}", n + 1
    ipr.link("set", index=index, ifname=name)
    host_names.add(name)
    host_indexes.add(index)
    log.info("sim NIC %s: port %s lost its netdev with its netns; back as %s", pf, key, name)
    rec.update({"name": name, "ifindex": index, "away": None})
    return name


# ---------------------------------------------------------------- CLI

def main(argv: list[str] | None = None) -> int:
    """`netmeta sim create --pf NAME --vfs N [--root DIR]` | `destroy --pf NAME [--root DIR]`
    | `refresh --pf NAME [--root DIR]`. stdout: one JSON object (create, refresh) or nothing;
    logs and errors go to stderr."""
    args_in = list(sys.argv[1:] if argv is None else argv)
    if args_in[:1] == ["sim"]:
        args_in = args_in[1:]
    parser = argparse.ArgumentParser(prog="netmeta sim", description="simulated SR-IOV NIC")
    sub = parser.add_subparsers(dest="cmd", required=True)
    for cmd in ("create", "destroy", "refresh"):
        p = sub.add_parser(cmd)
        p.add_argument("--pf", required=True, help="PF netdev name")
        if cmd == "create":
            p.add_argument("--vfs", type=int, required=True, help="number of VFs")
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
            out = refresh(args.root, args.pf)
        else:
            destroy(args.pf, args.root)
            return 0
    except (SimError, VFTableError, NetlinkError, OSError) as e:
        print(f"netmeta sim {args.cmd}: {e}", file=sys.stderr)
        return 1
    sys.stdout.write(json.dumps(out) + "\n")
    sys.stdout.flush()
    return 0
