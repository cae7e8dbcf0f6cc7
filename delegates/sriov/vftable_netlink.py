"""`netlink` VF-table backend: the PF driver's VF table through rtnetlink (pyroute2 0.9.7).

Read: RTM_GETLINK with ext_mask=RTEXT_FILTER_VF (else the kernel omits IFLA_VFINFO_LIST).
Write: one RTM_NEWLINK per attribute group (IFLA_VF_MAC, IFLA_VF_VLAN or IFLA_VF_VLAN_LIST,
IFLA_VF_RATE, ...). The kernel applies the attributes of one message in order and stops at the
first error without undoing the earlier ones, so separate messages let an errno be blamed on
the right field, and on a failure the groups already applied are put back.
"""
from __future__ import annotations

import contextlib
import errno
import logging
import os
import struct
from typing import Any

from pyroute2 import IPRoute, NetlinkError
from pyroute2.netlink.rtnl.ifinfmsg import ifinfmsg

from .vftable import GROUPS, VFState, VFTable, VFTableError, plan_set

log = logging.getLogger(__name__)

ETH_P_8021Q = 0x8100
ETH_P_8021AD = 0x88A8
_PROTO_NUM = {"802.1Q": ETH_P_8021Q, "802.1ad": ETH_P_8021AD}
_PROTO_NAME = {v: k for k, v in _PROTO_NUM.items()}
_LINK_STATE_NUM = {"auto": 0, "enable": 1, "disable": 2}      # IFLA_VF_LINK_STATE_*
_LINK_STATE_NAME = {v: k for k, v in _LINK_STATE_NUM.items()}
RTEXT_FILTER_VF = 1


def _pad_vlan_info() -> None:
    """Make pyroute2 encode IFLA_VF_VLAN_INFO as the kernel's 16-byte struct.

    struct ifla_vf_vlan_info {__u32 vf, vlan, qos; __be16 vlan_proto;} is 16 bytes with its
    tail padding; pyroute2 0.9.7 packs 14 and kernels with the CVE-2024-36017 fix reject an
    entry shorter than sizeof() with EINVAL (older kernels read 2 bytes past it). pyroute2
    reads `fields` at each encode, so appending 2 pad bytes to the class fixes every encoder
    in the process; decoding is unaffected (the kernel sends 16 bytes; pad is ignored). The
    size check makes this a no-op once pyroute2 ships the fix.
    """
    ivvi = ifinfmsg.vflist.vfinfo.vf_vlist.ivvi
    if struct.calcsize("=" + "".join(f[1].lstrip("<>!=") for f in ivvi.fields)) == 14:
        ivvi.fields = tuple(ivvi.fields) + (("__pad", "2x"),)


_pad_vlan_info()


def _state_of(info: Any) -> VFState:
    def a(name: str) -> Any:
        return info.get_attr(name) or {}

    vlan = a("IFLA_VF_VLAN")
    proto = ETH_P_8021Q
    vlist = info.get_attr("IFLA_VF_VLAN_LIST")
    if vlist:
        entries = vlist.get_attrs("IFLA_VF_VLAN_INFO")
        if entries and entries[0]["proto"]:
            # some drivers (netdevsim) report 0 for a VF never given a VLAN: that is 802.1Q,
            # as rtnetlink's own default and ip(8) have it
            proto = entries[0]["proto"]
    rate = a("IFLA_VF_RATE")
    return VFState(
        mac=a("IFLA_VF_MAC").get("mac", "00:00:00:00:00:00").lower(),
        vlan=vlan.get("vlan", 0),
        qos=vlan.get("qos", 0),
        proto=_PROTO_NAME.get(proto, f"0x{proto:04x}"),
        min_tx_rate=rate.get("min_tx_rate", 0),
        max_tx_rate=rate.get("max_tx_rate", a("IFLA_VF_TX_RATE").get("tx_rate", 0)),
        # a driver that does not report spoofchk/trust leaves -1 (0xffffffff): only 1 is on
        spoofchk=a("IFLA_VF_SPOOFCHK").get("spoofchk", 1) == 1,
        trust=a("IFLA_VF_TRUST").get("trust", 0) == 1,
        link_state=_LINK_STATE_NAME.get(a("IFLA_VF_LINK_STATE").get("link_state", 0), "auto"),
    )


def _spec(vf: int, group: str, s: VFState) -> dict[str, Any]:
    """The pyroute2 `vf=` dict that sets one attribute group of VF `vf` to `s`."""
    if group == "mac":
        return {"vf": vf, "mac": s.mac}
    if group == "vlan":
        if s.proto == "802.1Q":
            return {"vf": vf, "vlan": {"vlan": s.vlan, "qos": s.qos}}           # IFLA_VF_VLAN
        return {"vf": vf, "vlan": [{"vlan": s.vlan, "qos": s.qos,               # ..._VLAN_LIST
                                    "proto": _PROTO_NUM[s.proto]}]}
    if group == "rate":
        return {"vf": vf, "rate": {"min_tx_rate": s.min_tx_rate, "max_tx_rate": s.max_tx_rate}}
    if group == "link_state":
        return {"vf": vf, "link_state": _LINK_STATE_NUM[s.link_state]}
    return {"vf": vf, group: int(getattr(s, group))}                           # spoofchk, trust


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
        self._stack = contextlib.ExitStack()
        self._ipr = self._stack.enter_context(IPRoute())
        self._index: int | None = None   # looked up on first use: opening never fails on a
                                         # PF that is away (pfOnly)

    def close(self) -> None:
        self._stack.close()

    def _pf_index(self) -> int:
        if self._index is None:
            try:
                found = self._ipr.link_lookup(ifname=self.pf)
            except (NetlinkError, OSError) as e:
                raise VFTableError("master", f"failed to find PF {self.pf}: {e}") from None
            if not found:
                raise VFTableError("master", f"failed to find PF {self.pf}: no such device")
            self._index = found[0]
        return self._index

    def _dump(self) -> tuple[int, list[Any]]:
        try:
            msg = self._ipr.link("get", index=self._pf_index(), ext_mask=RTEXT_FILTER_VF)[0]
        except NetlinkError as e:
            raise VFTableError("master", f"failed to read VF table of {self.pf}: "
                                         f"{os.strerror(e.code)}") from None
        vfl = msg.get_attr("IFLA_VFINFO_LIST")
        infos = vfl.get_attrs("IFLA_VF_INFO") if vfl else []
        num = msg.get_attr("IFLA_NUM_VF")
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
        # pyroute2 pops keys out of the dict it is given: always hand it a fresh one
        self._ipr.link("set", index=self._pf_index(), vf=_spec(vf, group, state))

    def _undo(self, vf: int, groups: list[str], old: VFState) -> None:
        for group in reversed(groups):
            try:
                self._send(vf, group, old)
            except NetlinkError as e:
                log.warning("failed to restore vf %d %s of %s: %s", vf, group, self.pf, e)

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
