"""The netdevs of a simulated SR-IOV NIC (see simnic.py): ports as veth pairs, over netlink.

Every port (the PF and each VF) is a veth pair. The host end is the port's netdev (`P`, `Pv0`,
`Pv1`, ...; the PF is up, VFs down, like a fresh NIC) and carries IFLA_IFALIAS
`netmeta-sim:P:pf` / `netmeta-sim:P:N`, which survives renames and netns moves, so the sim can
always tell which netdev is which port. The peer ends (`pf`, `vf0`, ...) live in the private
netns `netmeta-sim-P`, enslaved to the bridge `esw` there: the NIC's embedded switch, so VFs
and the PF of one NIC reach each other. The PF end is a veth, not the bridge, because a
bridge cannot change netns (NETIF_F_NETNS_LOCAL) and pfOnly moves the PF.

Here: creating a port (`add_port`) and plugging peers into the bridge (`plug_peers`), finding
ports by alias (`host_ports`), and `Rtnl`, the bare rtnetlink socket refresh reads the
private netns with.
"""
from __future__ import annotations

import errno
import os
import socket
import struct
from typing import Any, Iterator

from pyroute2 import IPRoute, NetlinkError, netns
from pyroute2.netlink.rtnl import RTM_GETLINK

from cni import netns as nsock
from delegates.sriov.vftable import ZERO_MAC

from .names import SimError, peer_name, port_alias

BRIDGE = "esw"
NSID_NONE = (-1, 0xFFFFFFFF)


def host_ports(ipr: IPRoute, pf: str) -> tuple[dict[str, tuple[str, int]], set[str], set[int]]:
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


class Rtnl:
    """A bare NETLINK_ROUTE socket: RTM_GETNSID/NEWNSID and a 3-attribute RTM_GETLINK dump."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC,
                                  socket.NETLINK_ROUTE)
        self.sock.bind((0, 0))
        self.seq = 0

    def __enter__(self) -> "Rtnl":
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
        unpack = struct.unpack_from
        for _, payload in self._request(RTM_GETLINK, _NLM_F_REQUEST | _NLM_F_DUMP, body):
            # _attrs() inlined, values sliced only for the 3 we read: ~45 attributes a link,
            # and every concurrent ADD's refresh parses all links of the NIC
            name, link, link_ns = None, None, None
            off, end = 16, len(payload)
            while off + 4 <= end:
                length, kind = unpack("=HH", payload, off)
                if length < 4:
                    break
                kind &= 0x3FFF
                if kind == _IFLA_IFNAME:
                    name = payload[off + 4:off + length].rstrip(b"\0").decode()
                elif kind == _IFLA_LINK:
                    link = unpack("=I", payload, off + 4)[0]
                elif kind == _IFLA_LINK_NETNSID:
                    link_ns = unpack("=i", payload, off + 4)[0]
                off += (length + 3) & ~3
            if name is not None:
                out[name] = (link, link_ns)
        return out


def name_in(ipr: IPRoute, nsid: int | None, index: int | None) -> str | None:
    """Name of link `index` in the netns this netns calls `nsid` (None if unknown/gone)."""
    if nsid is None or nsid in NSID_NONE or index is None:   # (a veth always has IFLA_LINK)
        return None
    try:
        return ipr.link("get", index=index, if_netnsid=nsid)[0].get_attr("IFLA_IFNAME")
    except (NetlinkError, IndexError):
        return None


def add_port(ipr: IPRoute, pf: str, key: str, name: str, ns: str,
              mac: str | None = None, up: bool = False, index: int = 0) -> int:
    """Create port `key` as a veth: `name` here (ifindex `index` if given and free), its
    peer in netns `ns`. Returns the ifindex."""
    peer = {"ifname": peer_name(key), "net_ns_fd": ns}
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


def in_netns(ns: str) -> IPRoute:
    """rtnetlink in the named netns, opened without a fork (see cni/netns.py)."""
    return nsock.rtnl(os.path.join(netns.NETNS_RUN_DIR, ns))


def plug_peers(ns: str, keys: list[str]) -> None:
    """In the private netns: enslave the ports' peer ends to the bridge, set them up."""
    with in_netns(ns) as nsr:
        br = nsr.link_lookup(ifname=BRIDGE)
        if not br:
            nsr.link("add", ifname=BRIDGE, kind="bridge")
            br = nsr.link_lookup(ifname=BRIDGE)
            nsr.link("set", index=br[0], state="up")
        for key in keys:
            idx = nsr.link_lookup(ifname=peer_name(key))[0]
            nsr.link("set", index=idx, master=br[0], state="up")
