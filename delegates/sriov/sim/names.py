"""Names, limits and the error type of the simulated SR-IOV NIC (see simnic.py).

Shared by the sim NIC's modules: the private netns `netmeta-sim-P`, the IFLA_IFALIAS that
marks each port's netdev (`netmeta-sim:P:pf`, `netmeta-sim:P:N`), the host-side VF netdev
names (`Pv0`, `Pv1`, ...), the peer names in the private netns (`pf`, `vf0`, ...) and the
checks on a NIC's PF name and VF count.
"""
from __future__ import annotations

from delegates.sriov.topology import valid_ifname

NETNS_PREFIX = "netmeta-sim-"
ALIAS_PREFIX = "netmeta-sim:"
MAX_VFS = 255            # devfn N+1 must fit in 8 bits


class SimError(Exception):
    pass


def netns_name(pf: str) -> str:
    return NETNS_PREFIX + pf


def port_alias(pf: str, key: str) -> str:
    return f"{ALIAS_PREFIX}{pf}:{key}"


def vf_netdev_name(pf: str, n: int) -> str:
    return f"{pf}v{n}"


def port_keys(total: int) -> list[str]:
    return ["pf"] + [str(n) for n in range(total)]


def peer_name(key: str) -> str:
    return "pf" if key == "pf" else f"vf{key}"


def validate(pf: str, vfs: int) -> None:
    if not isinstance(vfs, int) or isinstance(vfs, bool) or not 1 <= vfs <= MAX_VFS:
        raise SimError(f"failed to create sim NIC {pf}: --vfs {vfs} out of range 1-{MAX_VFS}")
    longest = vf_netdev_name(pf, vfs - 1)
    if not valid_ifname(pf) or not valid_ifname(longest):
        raise SimError(f"failed to create sim NIC {pf!r}: not a valid interface name, or too "
                       f"long for VF netdev names like {longest!r} (max 15 bytes)")
