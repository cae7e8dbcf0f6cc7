"""PF-side VF table: common types, the kernel's validation rules and the backend factory.

A VF table is what `ip link set <pf> vf N ...` changes: per-VF MAC, VLAN (+QoS, protocol),
tx rates, spoofchk, trust and link state, held by the PF driver. Two backends implement it:
`netlink` (the kernel, via rtnetlink: cni/rtnl.py) and `sim` (a state file for hosts without SR-IOV).
Both validate a change completely before touching anything, with the kernel's rules.
"""
from __future__ import annotations

import abc

from delegates import registry

# typing.TYPE_CHECKING without importing typing (an exec'd call needs nothing of it): mypy
# takes any `TYPE_CHECKING` as true
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, ClassVar

VLAN_PROTOS = ("802.1Q", "802.1ad")
LINK_STATES = ("auto", "enable", "disable")
ZERO_MAC = "00:00:00:00:00:00"
MAX_U32 = 0xFFFFFFFF
_HEX = frozenset("0123456789abcdefABCDEF")


class VFTableError(Exception):
    """A VF-table operation failed; `field` names the config field to blame."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field
        self.message = message


class VFState:
    """One VF's entry in the PF's table. Treated as immutable (instances are shared, e.g. one
    default for every VF): replace() gives a changed copy. Equal when every field is."""
    __slots__ = ("mac", "vlan", "qos", "proto", "min_tx_rate", "max_tx_rate", "spoofchk", "trust",
                 "link_state")
    FIELDS = __slots__

    def __init__(self, mac: str = ZERO_MAC, vlan: int = 0, qos: int = 0, proto: str = "802.1Q",
                 min_tx_rate: int = 0, max_tx_rate: int = 0, spoofchk: bool = True, trust: bool = False,
                 link_state: str = "auto"):
        self.mac = mac                   # lower-case; all-zero = unset
        self.vlan = vlan
        self.qos = qos
        self.proto = proto               # "802.1Q" | "802.1ad"
        self.min_tx_rate = min_tx_rate   # Mbps, 0 = no limit
        self.max_tx_rate = max_tx_rate
        self.spoofchk = spoofchk
        self.trust = trust
        self.link_state = link_state     # "auto" | "enable" | "disable"

    def _values(self) -> tuple:
        return tuple(getattr(self, k) for k in self.FIELDS)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, VFState):
            return NotImplemented
        return self._values() == other._values()

    def __repr__(self) -> str:
        return "VFState(" + ", ".join(f"{k}={getattr(self, k)!r}" for k in self.FIELDS) + ")"

    def replace(self, **changes: Any) -> "VFState":
        """A copy with `changes` (field names) applied."""
        return VFState(**{**self.to_dict(), **changes})

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.FIELDS}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "VFState":
        return cls(**{k: d[k] for k in cls.FIELDS if k in d})


# Field groups the kernel takes in one attribute each (IFLA_VF_VLAN[_LIST], IFLA_VF_RATE, ...).
GROUPS: dict[str, tuple[str, ...]] = {
    "mac": ("mac",),
    "vlan": ("vlan", "qos", "proto"),
    "rate": ("min_tx_rate", "max_tx_rate"),
    "spoofchk": ("spoofchk",),
    "trust": ("trust",),
    "link_state": ("link_state",),
}


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def is_mac(s: str) -> bool:
    """`s` is xx:xx:xx:xx:xx:xx, hex digits of either case (what `[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}`
    fullmatches); the config's check too (delegates/sriov/config.py)."""
    return len(s) == 17 and s[2::3] == ":::::" and _HEX.issuperset(s[0::3] + s[1::3])


def normalize_mac(mac: Any, vf: int) -> str:
    if not isinstance(mac, str) or not is_mac(mac):
        raise VFTableError("mac", f"failed to set vf {vf} mac {mac!r}: not a MAC address "
                                  "(want xx:xx:xx:xx:xx:xx)")
    mac = mac.lower()
    if int(mac[:2], 16) & 1:
        raise VFTableError("mac", f"failed to set vf {vf} mac {mac}: multicast address")
    return mac


def normalize_proto(proto: Any, vf: int) -> str:
    for p in VLAN_PROTOS:
        if isinstance(proto, str) and proto.lower() == p.lower():
            return p
    raise VFTableError("vlanProto", f"failed to set vf {vf} vlan protocol {proto!r}: "
                                    "want 802.1Q or 802.1ad")


def plan_set(current: VFState, vf: Any, numvfs: int, given: dict[str, Any]
             ) -> tuple[VFState, list[str]]:
    """Validate a change like the kernel does; return (new state, groups to apply in order).

    Missing members of a group (vlan/qos/proto; min/max rate) keep their current value, the
    way `ip link set ... max_tx_rate N` keeps the min rate. Raises VFTableError, touches nothing.
    """
    if not _is_int(vf) or vf < 0 or vf >= numvfs:
        raise VFTableError("vf", f"failed to set vf {vf}: no such VF (sriov_numvfs is {numvfs})")
    given = {k: v for k, v in given.items() if v is not None}
    new: dict[str, Any] = {}
    if "mac" in given:
        new["mac"] = normalize_mac(given["mac"], vf)
    for name, field, top in (("vlan", "vlan", 4095), ("qos", "vlanQoS", 7),
                             ("min_tx_rate", "min_tx_rate", MAX_U32),
                             ("max_tx_rate", "max_tx_rate", MAX_U32)):
        if name in given:
            v = given[name]
            if not _is_int(v) or not 0 <= v <= top:
                raise VFTableError(field, f"failed to set vf {vf} {name} {v!r}: "
                                          f"out of range 0-{top}")
            new[name] = v
    if "proto" in given:
        new["proto"] = normalize_proto(given["proto"], vf)
    for name in ("spoofchk", "trust"):
        if name in given:
            if not isinstance(given[name], bool):
                raise VFTableError(name, f"failed to set vf {vf} {name} {given[name]!r}: "
                                         "want true or false")
            new[name] = given[name]
    if "link_state" in given:
        if given["link_state"] not in LINK_STATES:
            raise VFTableError("link_state", f"failed to set vf {vf} link_state "
                                             f"{given['link_state']!r}: want auto, enable "
                                             "or disable")
        new["link_state"] = given["link_state"]
    state = current.replace(**new)
    if state.qos and not state.vlan and {"vlan", "qos", "proto"} & new.keys():
        raise VFTableError("vlanQoS", f"failed to set vf {vf} vlan qos {state.qos}: "
                                      "a QoS needs a VLAN id other than 0")
    if state.max_tx_rate and state.min_tx_rate > state.max_tx_rate and \
            {"min_tx_rate", "max_tx_rate"} & new.keys():
        field = "max_tx_rate" if "min_tx_rate" not in new else "min_tx_rate"
        raise VFTableError(field, f"failed to set vf {vf} tx rate: min_tx_rate "
                                  f"{state.min_tx_rate} exceeds max_tx_rate {state.max_tx_rate}")
    groups = [g for g, fields in GROUPS.items() if set(fields) & new.keys()]
    return state, groups


class VFTable(abc.ABC):
    """One PF's VF table. Use as a context manager; `open_vftable` builds one."""

    backend: ClassVar[str]

    def __init__(self, pf: str, sysfs_root: str):
        self.pf = pf
        self.sysfs_root = sysfs_root

    @abc.abstractmethod
    def num_vfs(self) -> int:
        """The number of enabled VFs (the kernel's range for `vf`)."""

    @abc.abstractmethod
    def get(self, vf: int) -> VFState:
        ...

    def get_all(self) -> list[VFState]:
        return [self.get(n) for n in range(self.num_vfs())]

    def set(self, vf: int, *, mac: str | None = None, vlan: int | None = None,
            qos: int | None = None, proto: str | None = None,
            min_tx_rate: int | None = None, max_tx_rate: int | None = None,
            spoofchk: bool | None = None, trust: bool | None = None,
            link_state: str | None = None) -> VFState:
        """Apply only the given fields; validate all of them first. Returns the new state."""
        given = dict(mac=mac, vlan=vlan, qos=qos, proto=proto, min_tx_rate=min_tx_rate,
                     max_tx_rate=max_tx_rate, spoofchk=spoofchk, trust=trust,
                     link_state=link_state)
        return self._set(vf, given)

    @abc.abstractmethod
    def _set(self, vf: int, given: dict[str, Any]) -> VFState:
        ...

    def close(self) -> None:  # noqa: B027 - optional hook: only netlink holds a socket
        pass

    def __enter__(self) -> "VFTable":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_vftable(backend: str, pf: str, sysfs_root: str = "/sys") -> VFTable:
    """The VF table of `pf`: backend "netlink" (the kernel) or "sim" (simulated NIC), as
    delegates/registry.py names them."""
    cls = registry.sriov_backend(backend, "table")
    if cls is None:
        raise VFTableError("backend", f"failed to open VF table of {pf}: unknown backend "
                                      f"{backend!r} (want {' or '.join(registry.SRIOV_BACKENDS)})")
    return cls(pf, sysfs_root)
