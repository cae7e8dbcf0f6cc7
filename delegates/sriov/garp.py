"""Announce a moved interface's addresses so neighbours update their caches at once: a
gratuitous ARP (request form, RFC 5227 announcement) per IPv4 address and an unsolicited
neighbour advertisement (RFC 4861 7.2.6, Override flag) per IPv6 address. Sent from an
AF_PACKET socket created inside the pod netns (cni/netns.py)."""
import contextlib
import ipaddress
import socket
import struct
import threading

from cni import netns as nsock

ETH_P_ARP, ETH_P_IPV6 = 0x0806, 0x86DD


def _mac(s: str) -> bytes:
    return bytes.fromhex(s.replace(":", ""))


def arp_announce(mac: str, ip: str) -> bytes:
    m, a = _mac(mac), ipaddress.IPv4Address(ip).packed
    eth = b"\xff" * 6 + m + struct.pack("!H", ETH_P_ARP)
    arp = struct.pack("!HHBBH", 1, 0x0800, 6, 4, 1) + m + a + b"\x00" * 6 + a
    return eth + arp


def _csum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\x00"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    s = (s >> 16) + (s & 0xFFFF)
    s += s >> 16
    return ~s & 0xFFFF


def unsolicited_na(mac: str, ip: str) -> bytes:
    m, src = _mac(mac), ipaddress.IPv6Address(ip).packed
    dst = ipaddress.IPv6Address("ff02::1").packed
    icmp = struct.pack("!BBHI", 136, 0, 0, 0x20000000) + src + struct.pack("!BB", 2, 1) + m
    pseudo = src + dst + struct.pack("!I", len(icmp)) + b"\x00\x00\x00\x3a"
    icmp = icmp[:2] + struct.pack("!H", _csum(pseudo + icmp)) + icmp[4:]
    ip6 = struct.pack("!IHBB", 0x60000000, len(icmp), 58, 255) + src + dst
    eth = b"\x33\x33\x00\x00\x00\x01" + m + struct.pack("!H", ETH_P_IPV6)
    return eth + ip6 + icmp


def announce(netns: str, ifname: str, mac: str, addresses: list) -> int:
    """Send one announcement per address; returns how many were sent. Best effort: a
    failure here never fails the attachment (the link works, caches just age out)."""
    frames = []
    for cidr in addresses:
        ip = cidr.split("/")[0]
        frames.append(unsolicited_na(mac, ip) if ":" in ip else arp_announce(mac, ip))
    if not frames or not mac:
        return 0
    sent = 0
    with contextlib.suppress(OSError):
        s = nsock.socket_in(netns, socket.AF_PACKET, socket.SOCK_RAW, 0)
        try:
            s.bind((ifname, 0))
            for f in frames:
                s.send(f)
                sent += 1
        finally:
            # closing a packet socket waits for an RCU grace period (synchronize_net() in
            # packet_release: ~15 ms); the frames are out, so nobody needs to wait for it
            threading.Thread(target=s.close, name="garp-close", daemon=True).start()
    return sent
