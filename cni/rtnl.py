"""A bare rtnetlink client for the few link/address/route requests a plugin makes per call.

pyroute2 0.9 runs every request through an asyncio event loop and decodes every attribute of
the answer: ~0.5-1 ms of Python per request here, and `from pyroute2 import IPRoute` imports
~200 modules (asyncio among them, ~110 ms in an exec'd plugin). The requests below are the same
messages pyroute2 sends (checked side by side in tests/test_rtnl.py: the kernel ends in the
same state), answered from the 5 link attributes callers read. Errors are pyroute2's own
`NetlinkError(code)` (its message is strerror(code), as pyroute2 gives it without ext_ack), so
callers keep catching what they caught.

    with Rtnl(netns_path_or_None) as nl:
        st = nl.get_link("eth0")                 # {index, name, mac, mtu, up} or None
        nl.set_link(st["index"], up=False, ifname="x", netns_fd=fd, mac=..., mtu=...)
        nl.add_addr(index, "10.0.0.2", 24); nl.add_route(index, "0.0.0.0/0", gateway="10.0.0.1")
"""
import errno
import ipaddress
import socket
import struct

from pyroute2.netlink.exceptions import NetlinkError  # 3 small modules, not the library

from . import netns as nsock

_NLMSG_ERROR, _NLMSG_DONE = 2, 3
RTM_NEWLINK, RTM_GETLINK, RTM_NEWADDR, RTM_NEWROUTE = 16, 18, 20, 24
F_REQUEST, F_ACK = 0x1, 0x4                     # nlmsg_flags
_F_EXCL, _F_CREATE = 0x200, 0x400
IFLA_ADDRESS, IFLA_IFNAME, IFLA_MTU, IFLA_NET_NS_FD, IFLA_EXT_MASK = 1, 3, 4, 28, 29
IFLA_MASTER, IFLA_IFALIAS = 10, 20
IFA_ADDRESS, IFA_LOCAL = 1, 2
RTA_DST, RTA_OIF, RTA_GATEWAY = 1, 4, 5
IFF_UP = 1
RTEXT_FILTER_VF, RTEXT_FILTER_SKIP_STATS = 1, 8  # IFLA_EXT_MASK bits
# what pyroute2 0.9's route("add") fills in (ip -d route: "unicast ... table main proto static
# scope global")
_RT_TABLE_MAIN, _RTPROT_STATIC, _RT_SCOPE_UNIVERSE, _RTN_UNICAST = 254, 4, 0, 1
IFINFO = struct.Struct("=BxHiII")      # family, type, index, flags, change
_HDR = struct.Struct("=LHHLL")          # len, type, flags, seq, pid


def attr(kind: int, data: bytes) -> bytes:
    n = 4 + len(data)
    return struct.pack("=HH", n, kind) + data + b"\0" * ((4 - n % 4) % 4)


def attrs(data: bytes, offset: int):
    while offset + 4 <= len(data):
        length, kind = struct.unpack_from("=HH", data, offset)
        if length < 4:
            return
        yield kind & 0x3FFF, data[offset + 4:offset + length]
        offset += (length + 3) & ~3


class Rtnl:
    """One NETLINK_ROUTE socket in the netns at `path` (the caller's when None; a missing path
    raises FileNotFoundError, never creates a netns: cni/netns.py)."""

    def __init__(self, path: str | None = None):
        if path:
            self.sock = nsock.socket_in(path, socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE)
        else:
            self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE)
        self.sock.bind((0, 0))
        self.seq = 0
        self._peek = bytearray(16)

    def __enter__(self) -> "Rtnl":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self.sock.close()

    def request(self, kind: int, flags: int, body: bytes) -> list:
        """Send one request; the payloads of its answer (none for an ACK). NLMSG_ERROR raises
        NetlinkError(code)."""
        self.seq += 1
        seq = self.seq
        self.sock.send(_HDR.pack(16 + len(body), kind, flags, seq, 0) + body)
        out: list[bytes] = []
        while True:
            data = self._recv()
            off = 0
            while off + 16 <= len(data):
                length, mtype, _, mseq, _ = _HDR.unpack_from(data, off)
                if length < 16:
                    break
                payload = data[off + 16:off + length]
                off += (length + 3) & ~3
                if mseq != seq:
                    continue
                if mtype == _NLMSG_ERROR:
                    code = -struct.unpack_from("=i", payload)[0]
                    if code:
                        raise NetlinkError(code)
                    return out                  # the ACK
                if mtype == _NLMSG_DONE:
                    return out
                out.append(payload)
                if not flags & 0x300:           # not a dump: one answer
                    return out

    def _recv(self) -> bytes:
        """One whole datagram, however long. The kernel answers a non-dump request with one
        message sized for its content: a PF's VF list (RTEXT_FILTER_VF) grows ~170-300 bytes
        per VF, so 256 VFs outgrow any fixed buffer, and recv() on a datagram socket silently
        drops what does not fit. MSG_PEEK|MSG_TRUNC makes the kernel return the datagram's
        real length without consuming it; it is then read with a buffer of that size."""
        n = self.sock.recv_into(self._peek, 16, socket.MSG_PEEK | socket.MSG_TRUNC)
        return self.sock.recv(max(n, 16))

    # ---------------- links ----------------
    def get_link(self, name: str | None = None, index: int = 0) -> dict | None:
        """{index, name, mac, mtu, up} of the link called `name` (or with `index`), or None
        (ENODEV, or ERANGE: a name no link can have)."""
        body = IFINFO.pack(socket.AF_UNSPEC, 0, index, 0, 0) \
            + (attr(IFLA_IFNAME, name.encode() + b"\0") if name is not None else b"") \
            + attr(IFLA_EXT_MASK, struct.pack("=I", RTEXT_FILTER_SKIP_STATS))
        try:
            answer = self.request(RTM_GETLINK, F_REQUEST, body)
        except NetlinkError as e:
            if e.code in (errno.ENODEV, errno.ERANGE):
                return None
            raise
        return _link_state(answer[0]) if answer else None

    def set_link(self, index: int, *, up: bool | None = None, ifname: str | None = None,
                 netns_fd: int | None = None, mac: str | None = None, mtu: int | None = None,
                 alias: str | None = None, master: int | None = None) -> None:
        """One RTM_NEWLINK for link `index` with the given changes (as pyroute2's
        link("set", index=..., state=/ifname=/net_ns_fd=/address=/mtu=) sends them)."""
        flags = change = 0
        if up is not None:
            flags, change = (IFF_UP if up else 0), IFF_UP
        body = IFINFO.pack(socket.AF_UNSPEC, 0, index, flags, change)
        if netns_fd is not None:
            body += attr(IFLA_NET_NS_FD, struct.pack("=I", netns_fd))
        if ifname is not None:
            body += attr(IFLA_IFNAME, ifname.encode() + b"\0")
        if mac is not None:
            body += attr(IFLA_ADDRESS, bytes.fromhex(mac.replace(":", "")))
        if mtu is not None:
            body += attr(IFLA_MTU, struct.pack("=I", mtu))
        if alias is not None:
            body += attr(IFLA_IFALIAS, alias.encode())
        if master is not None:
            body += attr(IFLA_MASTER, struct.pack("=I", master))
        self.request(RTM_NEWLINK, F_REQUEST | F_ACK, body)

    # ---------------- addresses and routes ----------------
    def add_addr(self, index: int, address: str, prefixlen: int) -> None:
        """RTM_NEWADDR (create, exclusive: EEXIST when it is there), IFA_LOCAL + IFA_ADDRESS,
        scope global, no broadcast: what pyroute2's addr("add", index, address, prefixlen) sends."""
        ip = ipaddress.ip_address(address)
        fam = socket.AF_INET6 if ip.version == 6 else socket.AF_INET
        body = struct.pack("=BBBBI", fam, prefixlen, 0, 0, index)
        if fam == socket.AF_INET:
            body += attr(IFA_LOCAL, ip.packed)
        body += attr(IFA_ADDRESS, ip.packed)
        self.request(RTM_NEWADDR, F_REQUEST | F_ACK | _F_CREATE | _F_EXCL, body)

    def add_route(self, index: int, dst: str, gateway: str | None = None) -> None:
        """RTM_NEWROUTE (create, exclusive) in table main, proto static, scope global, unicast,
        out of `index`: what pyroute2's route("add", dst=, oif=, gateway=) sends (`dst` as
        given: host bits set under the prefix are the kernel's EINVAL, as with pyroute2)."""
        addr, _, plen = dst.partition("/")
        ip = ipaddress.ip_address(addr)
        fam = socket.AF_INET6 if ip.version == 6 else socket.AF_INET
        prefixlen = int(plen) if plen else ip.max_prefixlen
        body = struct.pack("=BBBBBBBBI", fam, prefixlen, 0, 0, _RT_TABLE_MAIN, _RTPROT_STATIC,
                           _RT_SCOPE_UNIVERSE, _RTN_UNICAST, 0)
        if prefixlen:
            body += attr(RTA_DST, ip.packed)
        body += attr(RTA_OIF, struct.pack("=I", index))
        if gateway:
            body += attr(RTA_GATEWAY, ipaddress.ip_address(gateway).packed)
        self.request(RTM_NEWROUTE, F_REQUEST | F_ACK | _F_CREATE | _F_EXCL, body)


def _link_state(payload: bytes) -> dict:
    _, _, index, flags, _ = IFINFO.unpack_from(payload)
    st = {"index": index, "name": None, "mac": "", "mtu": None, "up": bool(flags & IFF_UP)}
    for kind, value in attrs(payload, IFINFO.size):
        if kind == IFLA_IFNAME:
            st["name"] = value.split(b"\0", 1)[0].decode()
        elif kind == IFLA_ADDRESS:
            st["mac"] = ":".join(f"{b:02x}" for b in value)
        elif kind == IFLA_MTU:
            st["mtu"] = struct.unpack("=I", value[:4])[0]
    return st

