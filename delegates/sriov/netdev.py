"""Netdev side of a VF (or PF) over rtnetlink (cni/rtnl.py): read its state, move it between
the host and a pod netns, rename, set MAC/MTU/admin state, and configure addresses and routes.

Kernel facts relied on:
- IFLA_NET_NS_FD together with IFLA_IFNAME moves AND renames in one RTM_NEWLINK, so the device
  never appears in the target netns under a name that could clash there.
- a device must be down to be renamed.
- a netlink socket opened in a pod netns (cni/netns.py: setns in a throw-away thread, no fork)
  works there for life; a vanished netns is an error (FileNotFoundError), never re-created.
"""
import contextlib
import errno
import os

from cni.errors import DEVICE_NOT_FOUND, VF_CONFIG_FAILED, CNIError
from cni.rtnl import NetlinkError, Rtnl


def ipr(netns: str | None = None) -> Rtnl:
    """rtnetlink in `netns` (host when None)."""
    return Rtnl(netns)


def lookup(name: str, netns: str | None = None) -> dict | None:
    """{index, name, mac, mtu, up} of `name` in `netns` (host when None), or None."""
    with ipr(netns) as nl:
        return nl.get_link(name)


def _fail(what: str, e: Exception) -> CNIError:
    return CNIError(VF_CONFIG_FAILED, f"failed to {what}", str(e))


def move(name: str, dest_netns: str | None, new_name: str, src_netns: str | None = None) -> None:
    """Move `name` from src (host if None) to dest (host if None), renamed to `new_name`."""
    with ipr(src_netns) as nl:
        st = nl.get_link(name)
        if st is None:
            raise CNIError(DEVICE_NOT_FOUND, f"failed to find device {name}",
                           f"not in netns {src_netns or 'host'}")
        try:
            if st["up"]:   # a device must be down to be renamed; one already down is left so
                nl.set_link(st["index"], up=False)
            fd = os.open(dest_netns or "/proc/thread-self/ns/net", os.O_RDONLY)
            try:
                nl.set_link(st["index"], netns_fd=fd, ifname=new_name)
            finally:
                os.close(fd)
        except NetlinkError as e:
            raise _fail(f"move {name} to netns {dest_netns or 'host'} as {new_name}", e) from None


def setup(name: str, netns: str | None, *, new_name: str | None = None, mac: str | None = None,
          mtu: int | None = None, up: bool | None = None) -> dict:
    """Rename (while down), set MAC/MTU, then admin state; returns the resulting state."""
    with ipr(netns) as nl:
        st = nl.get_link(name)
        if st is None:
            raise CNIError(DEVICE_NOT_FOUND, f"failed to find device {name}", f"netns {netns or 'host'}")
        i = st["index"]
        try:
            if new_name and new_name != name:
                if st["up"]:
                    nl.set_link(i, up=False)
                nl.set_link(i, ifname=new_name)
            if mac:
                nl.set_link(i, mac=mac)
            if mtu:
                nl.set_link(i, mtu=mtu)
            if up is not None:
                nl.set_link(i, up=up)
        except NetlinkError as e:
            raise _fail(f"configure {name} in netns {netns or 'host'}", e) from None
        return nl.get_link(index=i) or {}


def configure_ips(netns: str, name: str, result) -> None:
    """Addresses and routes of an IPAM result on `name` inside `netns`."""
    with ipr(netns) as nl:
        st = nl.get_link(name)
        if st is None:   # (as before: an internal error; setup() made it a moment ago)
            raise IndexError(f"no link {name} in netns {netns}")
        i = st["index"]
        try:
            for c in result.ips:
                addr, _, plen = c.address.partition("/")
                with contextlib.suppress(NetlinkError):  # EEXIST on a retried ADD
                    nl.add_addr(i, addr, int(plen))
            for r in result.routes:
                gw = r.gw or next((c.gateway for c in result.ips
                                   if c.gateway and (":" in c.gateway) == (":" in r.dst)), None)
                try:
                    nl.add_route(i, r.dst, gateway=gw or None)
                except NetlinkError as e:
                    if e.code != errno.EEXIST:
                        raise
        except NetlinkError as e:
            raise _fail(f"configure addresses on {name}", e) from None


def netns_exists(path: str) -> bool:
    return bool(path) and os.path.exists(path)
