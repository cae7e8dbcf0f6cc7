"""Netdev side of a VF (or PF) with pyroute2: read its state, move it between the host and a
pod netns, rename, set MAC/MTU/admin state, and configure addresses and routes.

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

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from cni import netns as nsock
from cni.errors import DEVICE_NOT_FOUND, VF_CONFIG_FAILED, CNIError


def ipr(netns: str | None = None) -> IPRoute:
    """rtnetlink in `netns` (host when None)."""
    return nsock.rtnl(netns)


def _state(msg) -> dict:
    return {"index": msg["index"], "name": msg.get_attr("IFLA_IFNAME"),
            "mac": (msg.get_attr("IFLA_ADDRESS") or "").lower(), "mtu": msg.get_attr("IFLA_MTU"),
            "up": bool(msg["flags"] & 1)}


def lookup(name: str, netns: str | None = None) -> dict | None:
    """{index, name, mac, mtu, up} of `name` in `netns` (host when None), or None."""
    with ipr(netns) as ip:
        return _get(ip, name)


def _get(ip, name: str) -> dict | None:
    """One RTM_GETLINK by name (link_lookup + get by index was two round trips, ~1 ms each
    through pyroute2): ENODEV, or a name no netdev can have (ERANGE), is None."""
    try:
        return _state(ip.link("get", ifname=name)[0])
    except NetlinkError as e:
        if e.code in (errno.ENODEV, errno.ERANGE):
            return None
        raise


def _fail(what: str, e: Exception) -> CNIError:
    return CNIError(VF_CONFIG_FAILED, f"failed to {what}", str(e))


def move(name: str, dest_netns: str | None, new_name: str, src_netns: str | None = None) -> None:
    """Move `name` from src (host if None) to dest (host if None), renamed to `new_name`."""
    with ipr(src_netns) as ip:
        st = _get(ip, name)
        if st is None:
            raise CNIError(DEVICE_NOT_FOUND, f"failed to find device {name}",
                           f"not in netns {src_netns or 'host'}")
        try:
            if st["up"]:   # a device must be down to be renamed; one already down is left so
                ip.link("set", index=st["index"], state="down")
            fd = os.open(dest_netns or "/proc/thread-self/ns/net", os.O_RDONLY)
            try:
                ip.link("set", index=st["index"], net_ns_fd=fd, ifname=new_name)
            finally:
                os.close(fd)
        except NetlinkError as e:
            raise _fail(f"move {name} to netns {dest_netns or 'host'} as {new_name}", e) from None


def setup(name: str, netns: str | None, *, new_name: str | None = None, mac: str | None = None,
          mtu: int | None = None, up: bool | None = None) -> dict:
    """Rename (while down), set MAC/MTU, then admin state; returns the resulting state."""
    with ipr(netns) as ip:
        st = _get(ip, name)
        if st is None:
            raise CNIError(DEVICE_NOT_FOUND, f"failed to find device {name}", f"netns {netns or 'host'}")
        i = st["index"]
        try:
            if new_name and new_name != name:
                if st["up"]:
                    ip.link("set", index=i, state="down")
                ip.link("set", index=i, ifname=new_name)
            if mac:
                ip.link("set", index=i, address=mac)
            if mtu:
                ip.link("set", index=i, mtu=mtu)
            if up is not None:
                ip.link("set", index=i, state="up" if up else "down")
        except NetlinkError as e:
            raise _fail(f"configure {name} in netns {netns or 'host'}", e) from None
        return _state(ip.link("get", index=i)[0])


def configure_ips(netns: str, name: str, result) -> None:
    """Addresses and routes of an IPAM result on `name` inside `netns`."""
    with ipr(netns) as ip:
        i = ip.link_lookup(ifname=name)[0]
        try:
            for c in result.ips:
                addr, _, plen = c.address.partition("/")
                with contextlib.suppress(NetlinkError):  # EEXIST on a retried ADD
                    ip.addr("add", index=i, address=addr, prefixlen=int(plen))
            for r in result.routes:
                gw = r.gw or next((c.gateway for c in result.ips
                                   if c.gateway and (":" in c.gateway) == (":" in r.dst)), None)
                kw = {"dst": r.dst, "oif": i}
                if gw:
                    kw["gateway"] = gw
                try:
                    ip.route("add", **kw)
                except NetlinkError as e:
                    if e.code != errno.EEXIST:
                        raise
        except NetlinkError as e:
            raise _fail(f"configure addresses on {name}", e) from None


def netns_exists(path: str) -> bool:
    return bool(path) and os.path.exists(path)
