"""Sockets inside another network namespace without forking.

A socket belongs for life to the netns its creator was in at socket() time, and setns(2) with
CLONE_NEWNET changes only the calling thread. So a throw-away thread enters the target netns,
creates the socket and ends; its netns goes with it and no other thread (the daemon's workers,
the asyncio loops) ever leaves the host netns. This replaces pyroute2 0.9's way (fork a child
per socket and pass the fd back over a unix socket: ~10 ms each, and a fork of a threaded
daemon can copy a lock some other thread holds).
"""
import ctypes
import os
import socket
import threading

CLONE_NEWNET = 0x40000000
NETLINK_ROUTE = 0
_libc = None


def _setns(fd: int) -> None:
    if hasattr(os, "setns"):          # Python >= 3.12
        os.setns(fd, CLONE_NEWNET)
        return
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


def socket_in(path: str, family: int, type_: int, proto: int = 0) -> socket.socket:
    """A new socket in the netns at `path` (a bind mount under /var/run/netns, /proc/PID/ns/net).
    A missing path raises FileNotFoundError (never creates a netns); a path that is not a netns
    raises OSError(EINVAL)."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    out: dict = {}

    def run() -> None:
        try:
            _setns(fd)
            out["sock"] = socket.socket(family, type_, proto)
        except BaseException as e:   # handed to the caller's thread below
            out["err"] = e

    try:
        t = threading.Thread(target=run, name="netns-socket", daemon=True)
        t.start()
        t.join()
    finally:
        os.close(fd)
    if "err" in out:
        err = out["err"]
        if isinstance(err, OSError) and not err.filename:
            err.filename = path
        raise err
    return out["sock"]


def rtnl(path: str | None = None):
    """A pyroute2 IPRoute in the netns at `path` (the caller's netns when None)."""
    from pyroute2 import IPRoute  # lazily: only code that touches links pays for the import
    if not path:
        return IPRoute()
    return IPRoute(fileno=socket_in(path, socket.AF_NETLINK, socket.SOCK_DGRAM, NETLINK_ROUTE).detach())
