"""`netlink` VF-table backend: the PF driver's VF table through rtnetlink (cni/rtnl.py).

Read: RTM_GETLINK with IFLA_EXT_MASK = RTEXT_FILTER_VF (else the kernel omits IFLA_VFINFO_LIST)
| RTEXT_FILTER_SKIP_STATS (the kernel then leaves out every VF's IFLA_VF_STATS, ~120 of the
~290 bytes a VF takes: nothing here reads them, and IFLA_VFINFO_LIST's 16-bit length overflows
at ~225 VFs with them, ~380 without). Write: one RTM_NEWLINK per attribute group (IFLA_VF_MAC,
IFLA_VF_VLAN or IFLA_VF_VLAN_LIST, IFLA_VF_RATE, ...). The kernel applies the attributes of one
message in order and stops at the first error without undoing the earlier ones, so separate
messages let an errno be blamed on the right field, and on a failure the groups already applied
are put back.

The messages are the bytes pyroute2 0.9's ifinfmsg encoder produces for the same `vf=` spec
(with its IFLA_VF_VLAN_INFO padded to the kernel's 16 bytes), and the VF list is decoded into
the VFState pyroute2's decoder gave: tests/test_vftable_rtnl_codec.py checks both side by side.
pyroute2's IPRoute is not imported (~200 modules with asyncio, and 0.5-1.3 ms of Python per
request); errors stay pyroute2's NetlinkError(code), which cni/rtnl.py raises.
"""
from __future__ import annotations

import contextlib
import errno
import os
import socket
import struct

from cni import log
from cni.rtnl import (
    F_ACK,
    F_REQUEST,
    IFINFO,
    IFLA_EXT_MASK,
    RTEXT_FILTER_SKIP_STATS,
    RTEXT_FILTER_VF,
    RTM_GETLINK,
    RTM_NEWLINK,
    NetlinkError,
    Rtnl,
    attr,
    attrs,
)

from .vftable import GROUPS, VFState, VFTable, VFTableError, plan_set

_log = log.get("sriov")

# typing.TYPE_CHECKING without importing typing (an exec'd call needs nothing of it): mypy
# takes any `TYPE_CHECKING` as true
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

ETH_P_8021Q = 0x8100
ETH_P_8021AD = 0x88A8
_PROTO_NUM = {"802.1Q": ETH_P_8021Q, "802.1ad": ETH_P_8021AD}
_PROTO_NAME = {v: k for k, v in _PROTO_NUM.items()}
_LINK_STATE_NUM = {"auto": 0, "enable": 1, "disable": 2}      # IFLA_VF_LINK_STATE_*
_LINK_STATE_NAME = {v: k for k, v in _LINK_STATE_NUM.items()}

# include/uapi/linux/if_link.h
IFLA_NUM_VF, IFLA_VFINFO_LIST = 21, 22
IFLA_VF_INFO = 1                                               # in IFLA_VFINFO_LIST
(IFLA_VF_MAC, IFLA_VF_VLAN, IFLA_VF_TX_RATE, IFLA_VF_SPOOFCHK, IFLA_VF_LINK_STATE, IFLA_VF_RATE,
 IFLA_VF_TRUST, IFLA_VF_VLAN_LIST) = 1, 2, 3, 4, 5, 6, 9, 12   # in IFLA_VF_INFO
IFLA_VF_VLAN_INFO = 1                                          # in IFLA_VF_VLAN_LIST
EXT_MASK = RTEXT_FILTER_VF | RTEXT_FILTER_SKIP_STATS
_U32 = struct.Struct("=I")
_NLA = struct.Struct("=HH")               # struct nlattr {nla_len, nla_type}
_VF_MAC = struct.Struct("=I32s")          # struct ifla_vf_mac {__u32 vf; __u8 mac[32];}
_VF_3U32 = struct.Struct("=III")          # ifla_vf_vlan {vf, vlan, qos}; ifla_vf_rate {vf, min, max}
_VF_VLAN_INFO = struct.Struct("=III2s2x")  # ifla_vf_vlan_info {vf, vlan, qos; __be16 proto;} = 16
_VF_U32 = struct.Struct("=II")            # ifla_vf_tx_rate/spoofchk/link_state/trust {vf, value}


def _fixed(value: bytes, st: struct.Struct) -> tuple | None:
    """`value` unpacked as `st`, or None when the kernel sent fewer bytes (never from Linux)."""
    return st.unpack_from(value) if len(value) >= st.size else None


def _state_of(info: bytes) -> VFState:
    """The VFState in one IFLA_VF_INFO's payload, read as pyroute2's decoder read it: absent
    attributes are VFState's defaults, the first IFLA_VF_VLAN_INFO gives the protocol."""
    mac, vlan, qos, proto = "00:00:00:00:00:00", 0, 0, ETH_P_8021Q
    min_rate, max_rate, tx_rate = 0, None, 0
    spoofchk, trust, link_state = 1, 0, 0
    for kind, value in attrs(info, 0):
        if kind == IFLA_VF_MAC and (f := _fixed(value, _VF_MAC)):
            mac = f[1][:6].hex(":")
        elif kind == IFLA_VF_VLAN and (f := _fixed(value, _VF_3U32)):
            vlan, qos = f[1], f[2]
        elif kind == IFLA_VF_VLAN_LIST:
            for k, entry in attrs(value, 0):
                if k == IFLA_VF_VLAN_INFO:
                    if len(entry) >= 14:
                        # some drivers (netdevsim) report 0 for a VF never given a VLAN: that
                        # is 802.1Q, as rtnetlink's own default and ip(8) have it
                        proto = int.from_bytes(entry[12:14], "big") or ETH_P_8021Q
                    break
        elif kind == IFLA_VF_RATE and (f := _fixed(value, _VF_3U32)):
            min_rate, max_rate = f[1], f[2]
        elif kind == IFLA_VF_TX_RATE and (f := _fixed(value, _VF_U32)):
            tx_rate = f[1]
        elif kind == IFLA_VF_SPOOFCHK and (f := _fixed(value, _VF_U32)):
            spoofchk = f[1]
        elif kind == IFLA_VF_TRUST and (f := _fixed(value, _VF_U32)):
            trust = f[1]
        elif kind == IFLA_VF_LINK_STATE and (f := _fixed(value, _VF_U32)):
            link_state = f[1]
    return VFState(
        mac=mac, vlan=vlan, qos=qos,
        proto=_PROTO_NAME.get(proto, f"0x{proto:04x}"),
        min_tx_rate=min_rate,
        max_tx_rate=tx_rate if max_rate is None else max_rate,
        # a driver that does not report spoofchk/trust leaves -1 (0xffffffff): only 1 is on
        spoofchk=spoofchk == 1,
        trust=trust == 1,
        link_state=_LINK_STATE_NAME.get(link_state, "auto"),
    )


def _vf_table(payload: bytes) -> tuple[int | None, list[bytes]]:
    """(IFLA_NUM_VF or None, the IFLA_VF_INFO payloads in order) of an RTM_NEWLINK answer."""
    num: int | None = None
    infos: list[bytes] = []
    off = IFINFO.size
    while off + 4 <= len(payload):
        length, kind = _NLA.unpack_from(payload, off)
        kind &= 0x3FFF
        if kind == IFLA_VFINFO_LIST and not infos:
            infos, off = _vf_infos(payload, off, length, num)
            continue
        if length < 4:
            break
        if kind == IFLA_NUM_VF and length >= 8:
            num = _U32.unpack_from(payload, off + 4)[0]
        off += (length + 3) & ~3
    return num, infos


def _vf_infos(payload: bytes, off: int, length: int, num: int | None) -> tuple[list[bytes], int]:
    """The IFLA_VF_INFO payloads of the IFLA_VFINFO_LIST at `off`, and the offset past it.

    nla_len is 16 bits and the kernel (6.1) does not check the list fits: past 64 KiB (~334
    VFs without stats, ~221 with) it stores the length modulo 65536, and a reader believing it
    sees a few VFs, then garbage (`ip link` says "Truncated VF list"). Each IFLA_VF_INFO is
    small and right, and IFLA_NUM_VF comes first: when the list holds fewer entries than that,
    read IFLA_NUM_VF entries one after another, and take them if they end where the wrapped
    length says the list ends."""
    end = off + ((length + 3) & ~3) if length >= 4 else len(payload)
    infos = [v for k, v in attrs(payload[off + 4:off + length], 0) if k == IFLA_VF_INFO]
    if num is None or len(infos) >= num:
        return infos, end
    walked: list[bytes] = []
    pos = off + 4
    while len(walked) < num and pos + 4 <= len(payload):
        n, kind = _NLA.unpack_from(payload, pos)
        if n < 4 or kind & 0x3FFF != IFLA_VF_INFO or pos + n > len(payload):
            break
        walked.append(payload[pos + 4:pos + n])
        pos += (n + 3) & ~3
    if len(walked) == num and (pos - off) & 0xFFFF == length:
        return walked, pos
    return infos, end


def _group_attr(vf: int, group: str, s: VFState) -> bytes:
    """The IFLA_VF_* attribute that sets one attribute group of VF `vf` to `s`."""
    if group == "mac":
        return attr(IFLA_VF_MAC, _VF_MAC.pack(vf, bytes.fromhex(s.mac.replace(":", ""))))
    if group == "vlan":
        if s.proto == "802.1Q":
            return attr(IFLA_VF_VLAN, _VF_3U32.pack(vf, s.vlan, s.qos))
        return attr(IFLA_VF_VLAN_LIST, attr(IFLA_VF_VLAN_INFO, _VF_VLAN_INFO.pack(
            vf, s.vlan, s.qos, _PROTO_NUM[s.proto].to_bytes(2, "big"))))
    if group == "rate":
        return attr(IFLA_VF_RATE, _VF_3U32.pack(vf, s.min_tx_rate, s.max_tx_rate))
    if group == "link_state":
        return attr(IFLA_VF_LINK_STATE, _VF_U32.pack(vf, _LINK_STATE_NUM[s.link_state]))
    kind = IFLA_VF_SPOOFCHK if group == "spoofchk" else IFLA_VF_TRUST
    return attr(kind, _VF_U32.pack(vf, int(getattr(s, group))))


def set_request(index: int, vf: int, group: str, s: VFState) -> bytes:
    """The RTM_NEWLINK body (ifinfomsg + IFLA_VFINFO_LIST[IFLA_VF_INFO[one group]]) for link
    `index`: pyroute2's link("set", index=index, vf={...}) sends these bytes."""
    return IFINFO.pack(socket.AF_UNSPEC, 0, index, 0, 0) \
        + attr(IFLA_VFINFO_LIST, attr(IFLA_VF_INFO, _group_attr(vf, group, s)))


def get_request(index: int) -> bytes:
    """The RTM_GETLINK body that asks for link `index` with its VF table, without stats."""
    return IFINFO.pack(socket.AF_UNSPEC, 0, index, 0, 0) \
        + attr(IFLA_EXT_MASK, _U32.pack(EXT_MASK))


def _blame(group: str, given: dict[str, Any], code: int) -> str:
    """The config field to blame for a kernel error on `group`."""
    if group == "vlan":
        if code == errno.EPROTONOSUPPORT or (given.get("proto") not in (None, "802.1Q")
                                             and code == errno.EOPNOTSUPP):
            return "vlanProto"
        return "vlan" if given.get("vlan") is not None or not given.get("qos") else "vlanQoS"
    if group == "rate":
        return "min_tx_rate" if given.get("max_tx_rate") is None else "max_tx_rate"
    return group


class NetlinkVFTable(VFTable):
    backend = "netlink"

    def __init__(self, pf: str, sysfs_root: str = "/sys"):
        super().__init__(pf, sysfs_root)
        self._nl = Rtnl()
        self._index: int | None = None   # looked up on first use: opening never fails on a
                                         # PF that is away (pfOnly)

    def close(self) -> None:
        self._nl.close()

    def _pf_index(self) -> int:
        if self._index is None:
            try:
                found = self._nl.get_link(self.pf)
            except (NetlinkError, OSError) as e:
                raise VFTableError("master", f"failed to find PF {self.pf}: {e}") from None
            if found is None:
                raise VFTableError("master", f"failed to find PF {self.pf}: no such device")
            self._index = found["index"]
        return self._index

    def _dump(self) -> tuple[int, list[bytes]]:
        try:
            answer = self._nl.request(RTM_GETLINK, F_REQUEST, get_request(self._pf_index()))
        except NetlinkError as e:
            raise VFTableError("master", f"failed to read VF table of {self.pf}: "
                                         f"{os.strerror(e.code)}") from None
        num, infos = _vf_table(answer[0]) if answer else (None, [])
        return (len(infos) if num is None else num), infos

    def num_vfs(self) -> int:
        return self._dump()[0]

    def get_all(self) -> list[VFState]:
        return [_state_of(i) for i in self._dump()[1]]

    def get(self, vf: int) -> VFState:
        num, infos = self._dump()
        if isinstance(vf, bool) or not isinstance(vf, int) or not 0 <= vf < min(num, len(infos)):
            raise VFTableError("vf", f"failed to get vf {vf}: no such VF (sriov_numvfs is {num})")
        return _state_of(infos[vf])

    def _set(self, vf: int, given: dict[str, Any]) -> VFState:
        num, infos = self._dump()
        current = _state_of(infos[vf]) if isinstance(vf, int) and 0 <= vf < len(infos) \
            else VFState()
        state, groups = plan_set(current, vf, min(num, len(infos)), given)
        done: list[str] = []
        for group in groups:
            try:
                self._send(vf, group, state)
            except NetlinkError as e:
                self._undo(vf, done, current)
                raise self._error(vf, group, given, e) from None
            done.append(group)
        return state

    def _send(self, vf: int, group: str, state: VFState) -> None:
        self._nl.request(RTM_NEWLINK, F_REQUEST | F_ACK,
                         set_request(self._pf_index(), vf, group, state))

    def _undo(self, vf: int, groups: list[str], old: VFState) -> None:
        for group in reversed(groups):
            try:
                self._send(vf, group, old)
            except NetlinkError as e:
                _log.warning("failed to restore vf %d %s of %s: %s", vf, group, self.pf, e)

    def _error(self, vf: int, group: str, given: dict[str, Any],
               e: NetlinkError) -> VFTableError:
        field = _blame(group, given, e.code)
        if e.code == errno.EINVAL:
            # the VF count may have changed under us (sriov_numvfs went through 0)
            with contextlib.suppress(VFTableError):
                if vf >= self.num_vfs():
                    field = "vf"
        what = "/".join(GROUPS[group]) if group != "rate" else "tx rate"
        return VFTableError(field, f"failed to set vf {vf} {what} of {self.pf}: "
                                   f"{os.strerror(e.code)} ({errno.errorcode.get(e.code, e.code)})")
