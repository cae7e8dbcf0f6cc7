"""The netdevs of a simulated SR-IOV NIC (see nic.py): ports as veth pairs, over rtnetlink.

Every port (the PF and each VF) is a veth pair. The host end is the port's netdev (`P`, `Pv0`,
`Pv1`, ...; the PF is up, VFs down, like a fresh NIC) and carries IFLA_IFALIAS
`netmeta-sim:P:pf` / `netmeta-sim:P:N`, which survives renames and netns moves, so the sim can
always tell which netdev is which port. The peer ends (`pf`, `vf0`, ...) live in the private
netns `netmeta-sim-P`, enslaved to the bridge `esw` there: the NIC's embedded switch, so VFs
and the PF of one NIC reach each other. The PF end is a veth, not the bridge, because a
bridge cannot change netns (NETIF_F_NETNS_LOCAL) and pfOnly moves the PF.

Here: creating a port (`add_port`) and plugging peers into the bridge (`plug_peers`), finding
ports by alias (`host_ports`), links and names in another netns by its id (`nsid`,
`links_in`, `name_in`), deleting links, and the RTNL-free interface ioctls refresh checks
ports by (`ioctl_socket`, `name_of`, `index_of`). All of it runs on every call that refreshes the NIC
(sim/topology.py, before each read of netdev names), so it is built on the product's bare
rtnetlink client (cni/rtnl.py `Rtnl.request`, `attr`, `attrs`): pyroute2's IPRoute costs an
exec'd call ~200 modules (asyncio among them) and decodes every attribute of every link.
Errors are what Rtnl raises: pyroute2's NetlinkError(code).
"""
from __future__ import annotations

import errno
import fcntl
import os
import socket
import struct

from pyroute2.netlink.exceptions import NetlinkError  # what cni.rtnl raises: 3 small modules

from cni import netns as nsock
from cni.rtnl import (
    F_ACK,
    F_REQUEST,
    IFINFO,
    IFLA_EXT_MASK,
    IFLA_IFNAME,
    IFLA_NET_NS_FD,
    RTEXT_FILTER_SKIP_STATS,
    RTM_GETLINK,
    RTM_NEWLINK,
    Rtnl,
    attr,
    attrs,
)
from delegates.sriov.vftable import ZERO_MAC

from .names import SimError, peer_name, port_alias

# typing.TYPE_CHECKING without importing typing (an exec'd call needs nothing of it): mypy
# takes any `TYPE_CHECKING` as true
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Iterator

BRIDGE = "esw"
NSID_NONE = (-1, 0xFFFFFFFF)
NETNS_RUN_DIR = "/var/run/netns"      # where `ip netns` and pyroute2's netns.create bind-mount them
SELF_NETNS = "/proc/thread-self/ns/net"

# what cni/rtnl.py does not name (yet)
RTM_DELLINK, RTM_NEWNSID, RTM_GETNSID = 17, 88, 90
F_EXCL, F_CREATE, F_DUMP = 0x200, 0x400, 0x300
IFLA_LINK, IFLA_LINKINFO, IFLA_IFALIAS = 5, 18, 20
IFLA_LINK_NETNSID, IFLA_TARGET_NETNSID = 37, 46
IFLA_INFO_KIND, IFLA_INFO_DATA, VETH_INFO_PEER = 1, 2, 1
NETNSA_NSID, NETNSA_FD = 1, 3
_SKIP_STATS = attr(IFLA_EXT_MASK, struct.pack("=I", RTEXT_FILTER_SKIP_STATS))
# interface ioctls (linux/sockios.h): answered under RCU, never RTNL
SIOCGIFNAME, SIOCGIFINDEX = 0x8910, 0x8933
_IFREQ = struct.Struct("=16si20x")        # struct ifreq: ifr_name, ifr_ifindex (40 bytes)


def netns_path(ns: str) -> str:
    return os.path.join(NETNS_RUN_DIR, ns)


def _ifinfo(index: int = 0, flags: int = 0, change: int = 0) -> bytes:
    return IFINFO.pack(socket.AF_UNSPEC, 0, index, flags, change)


def _name(value: bytes) -> str:
    return value.split(b"\0", 1)[0].decode(errors="replace")


# ---------------------------------------------------------------- ioctls (no RTNL)

def ioctl_socket(path: str | None = None) -> socket.socket:
    """A socket for the interface ioctls below, in the netns at `path` (this thread's when
    None). AF_UNIX: the cheapest socket there is; its ioctls fall through to dev_ioctl of
    the netns it was made in."""
    if path is None:
        return socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    try:
        return nsock.socket_in(path, socket.AF_UNIX, socket.SOCK_DGRAM)
    except FileNotFoundError:
        raise SimError(f"failed to find netns {path} of the sim NIC: it is gone; run "
                       "`netmeta sim destroy` and create the NIC again") from None


def name_of(sock: socket.socket, index: object) -> str | None:
    """SIOCGIFNAME: the name of link `index` in the socket's netns, None if there is none."""
    if not isinstance(index, int) or isinstance(index, bool) or not 0 < index < 2**31:
        return None
    try:
        out = fcntl.ioctl(sock.fileno(), SIOCGIFNAME, _IFREQ.pack(b"", index))
    except OSError as e:
        if e.errno in (errno.ENODEV, errno.ENXIO):
            return None
        raise
    return _name(_IFREQ.unpack(out)[0])


def index_of(sock: socket.socket, name: str) -> int | None:
    """SIOCGIFINDEX: the ifindex of link `name` in the socket's netns, None if there is none.
    (On a miss the kernel may ask modprobe for `netdev-<name>`: not for the common path.)"""
    try:
        out = fcntl.ioctl(sock.fileno(), SIOCGIFINDEX, _IFREQ.pack(name.encode(), 0))
    except OSError as e:
        if e.errno in (errno.ENODEV, errno.ENXIO):
            return None
        raise
    return int(_IFREQ.unpack(out)[1])


# ---------------------------------------------------------------- reading links

def links(nl: Rtnl) -> Iterator[tuple[int, str, str]]:
    """(ifindex, name, alias) of every link in the socket's netns (one dump, no stats)."""
    for payload in nl.request(RTM_GETLINK, F_REQUEST | F_DUMP, _ifinfo() + _SKIP_STATS):
        index = IFINFO.unpack_from(payload)[2]
        name = alias = ""
        for kind, value in attrs(payload, IFINFO.size):
            if kind == IFLA_IFNAME:
                name = _name(value)
            elif kind == IFLA_IFALIAS:
                alias = _name(value)
        yield index, name, alias


def host_ports(nl: Rtnl, pf: str) -> tuple[dict[str, tuple[str, int]], set[str], set[int]]:
    """One dump of this netns: {port key: (name, ifindex)} by alias, all names, all indexes."""
    prefix = port_alias(pf, "")
    ports: dict[str, tuple[str, int]] = {}
    names: set[str] = set()
    indexes: set[int] = set()
    for index, name, alias in links(nl):
        names.add(name)
        indexes.add(index)
        if alias.startswith(prefix):
            ports[alias[len(prefix):]] = (name, index)
    return ports, names, indexes


def nsid(nl: Rtnl, path: str, assign: bool = True) -> int | None:
    """The socket's netns's id for the netns at `path` (assigned first if it has none and
    `assign`): RTM_GETNSID, RTM_NEWNSID with NETNSA_NSID -1 (the kernel picks)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        raise SimError(f"failed to find netns {path} of the sim NIC: it is gone; run "
                       "`netmeta sim destroy` and create the NIC again") from None
    try:
        by_fd = attr(NETNSA_FD, struct.pack("=I", fd))
        for _ in range(2):
            for payload in nl.request(RTM_GETNSID, F_REQUEST, b"\0" * 4 + by_fd):
                for kind, value in attrs(payload, 4):
                    if kind == NETNSA_NSID and struct.unpack("=i", value[:4])[0] >= 0:
                        return struct.unpack("=i", value[:4])[0]
            if not assign:
                return None
            nl.request(RTM_NEWNSID, F_REQUEST | F_ACK,
                       b"\0" * 4 + by_fd + attr(NETNSA_NSID, struct.pack("=i", -1)))
        return None
    finally:
        os.close(fd)


def _peer_link(payload: bytes) -> tuple[str | None, tuple[int, int | None, int | None]]:
    """(IFLA_IFNAME, (ifindex, IFLA_LINK, IFLA_LINK_NETNSID)) of one RTM_NEWLINK payload."""
    # attrs() inlined, values sliced only for the 3 we read: ~45 attributes a link
    name, link, link_ns = None, None, None
    unpack = struct.unpack_from
    off, end = IFINFO.size, len(payload)
    while off + 4 <= end:
        length, kind = unpack("=HH", payload, off)
        if length < 4:
            break
        kind &= 0x3FFF
        if kind == IFLA_IFNAME:
            name = payload[off + 4:off + length].split(b"\0", 1)[0].decode()
        elif kind == IFLA_LINK:
            link = unpack("=I", payload, off + 4)[0]
        elif kind == IFLA_LINK_NETNSID:
            link_ns = unpack("=i", payload, off + 4)[0]
        off += (length + 3) & ~3
    return name, (IFINFO.unpack_from(payload)[2], link, link_ns)


def links_in(nl: Rtnl, ns_id: int, names: list[str] | None = None
             ) -> dict[str, tuple[int, int | None, int | None]]:
    """{name: (ifindex, IFLA_LINK, IFLA_LINK_NETNSID)} of the links of the netns this netns
    calls `ns_id`: all of them (one dump) or only `names` (one RTM_GETLINK each; a missing one
    is left out).

    IFLA_TARGET_NETNSID makes the kernel read another netns from this socket (no setns,
    no fork) and give IFLA_LINK_NETNSID relative to *this* netns, so a veth peer's
    location compares with our own id. (On RTM_NEWLINK/SETLINK the same attribute means
    "move the link there": never send it on a set.) Both take RTNL in the kernel: refresh
    asks only about ports whose cheap ioctl check failed (nic.py).
    """
    target = attr(IFLA_TARGET_NETNSID, struct.pack("=i", ns_id)) + _SKIP_STATS
    answers: list[bytes] = []
    if names is None:
        answers = nl.request(RTM_GETLINK, F_REQUEST | F_DUMP, _ifinfo() + target)
    else:
        for name in names:
            try:
                answers += nl.request(RTM_GETLINK, F_REQUEST,
                                      _ifinfo() + attr(IFLA_IFNAME, name.encode() + b"\0") + target)
            except NetlinkError as e:
                if e.code not in (errno.ENODEV, errno.ERANGE):
                    raise
    out: dict[str, tuple[int, int | None, int | None]] = {}
    for payload in answers:
        found, link = _peer_link(payload)
        if found is not None:
            out[found] = link
    return out


def name_in(nl: Rtnl, ns_id: int | None, index: int | None) -> str | None:
    """Name of link `index` in the netns this netns calls `ns_id` (None if unknown/gone)."""
    if ns_id is None or ns_id in NSID_NONE or index is None:   # (a veth always has IFLA_LINK)
        return None
    body = _ifinfo(index) + attr(IFLA_TARGET_NETNSID, struct.pack("=i", ns_id)) + _SKIP_STATS
    try:
        answer = nl.request(RTM_GETLINK, F_REQUEST, body)
    except NetlinkError:
        return None
    for payload in answer:
        for kind, value in attrs(payload, IFINFO.size):
            if kind == IFLA_IFNAME:
                return _name(value)
    return None


# ---------------------------------------------------------------- changing links

def add_link(nl: Rtnl, name: str, kind: str, data: bytes = b"", index: int = 0) -> None:
    """RTM_NEWLINK create+exclusive (as `ip link add` and pyroute2's link("add") send it: with
    an `index` that is taken, EEXIST, never a change of that link), IFLA_LINKINFO kind/data."""
    info = attr(IFLA_INFO_KIND, kind.encode()) + (attr(IFLA_INFO_DATA, data) if data else b"")
    nl.request(RTM_NEWLINK, F_REQUEST | F_ACK | F_CREATE | F_EXCL,
               _ifinfo(index) + attr(IFLA_IFNAME, name.encode() + b"\0") + attr(IFLA_LINKINFO, info))


def add_veth(nl: Rtnl, name: str, peer: str, peer_netns: str, index: int = 0) -> None:
    """A veth pair: `name` in the socket's netns (ifindex `index` if not 0), `peer` in the netns
    at path `peer_netns` (VETH_INFO_PEER: an ifinfomsg and the peer's own attributes)."""
    fd = os.open(peer_netns, os.O_RDONLY | os.O_CLOEXEC)
    try:
        peer_msg = _ifinfo() + attr(IFLA_IFNAME, peer.encode() + b"\0") \
            + attr(IFLA_NET_NS_FD, struct.pack("=I", fd))
        add_link(nl, name, "veth", attr(VETH_INFO_PEER, peer_msg), index)
    finally:
        os.close(fd)


def del_link(nl: Rtnl, index: int) -> None:
    nl.request(RTM_DELLINK, F_REQUEST | F_ACK, _ifinfo(index))


def ifindex(nl: Rtnl, name: str) -> int | None:
    st = nl.get_link(name)
    return st["index"] if st else None


def add_port(nl: Rtnl, pf: str, key: str, name: str, ns: str,
             mac: str | None = None, up: bool = False, index: int = 0) -> int:
    """Create port `key` as a veth: `name` here (ifindex `index` if given and free), its
    peer in netns `ns`. Returns the ifindex."""
    try:
        add_veth(nl, name, peer_name(key), netns_path(ns), index)
    except NetlinkError as e:
        if not index or e.code != errno.EEXIST:
            raise
        add_veth(nl, name, peer_name(key), netns_path(ns))   # ifindex taken: any
    new = ifindex(nl, name)
    if new is None:
        raise SimError(f"failed to create port {key} of sim NIC {pf}: veth {name} vanished")
    # IFLA_IFALIAS is ignored on RTM_NEWLINK for veth: set it afterwards
    nl.set_link(new, alias=port_alias(pf, key), mac=mac if mac and mac != ZERO_MAC else None)
    if up:
        nl.set_link(new, up=True)
    return new


def plug_peers(ns: str, keys: list[str]) -> None:
    """In the private netns: enslave the ports' peer ends to the bridge, set them up."""
    with Rtnl(netns_path(ns)) as nl:
        br = ifindex(nl, BRIDGE)
        if br is None:
            add_link(nl, BRIDGE, "bridge")
            br = ifindex(nl, BRIDGE)
            if br is None:
                raise SimError(f"failed to create the bridge {BRIDGE} in netns {ns}: it vanished")
            nl.set_link(br, up=True)
        for key in keys:
            idx = ifindex(nl, peer_name(key))
            if idx is None:
                raise SimError(f"failed to plug port {key} into {BRIDGE} in netns {ns}: "
                               f"no {peer_name(key)}")
            nl.set_link(idx, up=True, master=br)
