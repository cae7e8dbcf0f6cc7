"""The `netlink` VF-table backend as it was on pyroute2 0.9 (IPRoute), kept as the reference
its own codec is checked against: tests/test_vftable_rtnl_codec.py (bytes, host) and
tests/kernel/guest/test_vftable_rtnl_parity.py (a real kernel's VF table)."""
from __future__ import annotations

import struct
from typing import Any

from pyroute2.netlink.rtnl.ifinfmsg import ifinfmsg

from delegates.sriov import vftable_netlink as vn
from delegates.sriov.vftable import VFState


def pad_vlan_info() -> None:
    """What the old backend did at import: make pyroute2 encode IFLA_VF_VLAN_INFO as the
    kernel's 16-byte struct {__u32 vf, vlan, qos; __be16 vlan_proto;} with its tail padding.
    pyroute2 0.9.7 packs 14 bytes, and kernels with the CVE-2024-36017 fix reject an entry
    shorter than sizeof() with EINVAL; pyroute2 reads `fields` at each encode, so 2 pad bytes
    appended to the class fix every encoder. A no-op once pyroute2 ships the fix."""
    ivvi = ifinfmsg.vflist.vfinfo.vf_vlist.ivvi
    if struct.calcsize("=" + "".join(f[1].lstrip("<>!=") for f in ivvi.fields)) == 14:
        ivvi.fields = tuple(ivvi.fields) + (("__pad", "2x"),)


pad_vlan_info()


def old_spec(vf: int, group: str, s: VFState) -> dict[str, Any]:
    """The pyroute2 `vf=` dict that sets one attribute group of VF `vf` to `s` (old `_spec`)."""
    if group == "mac":
        return {"vf": vf, "mac": s.mac}
    if group == "vlan":
        if s.proto == "802.1Q":
            return {"vf": vf, "vlan": {"vlan": s.vlan, "qos": s.qos}}
        return {"vf": vf, "vlan": [{"vlan": s.vlan, "qos": s.qos,
                                    "proto": vn._PROTO_NUM[s.proto]}]}
    if group == "rate":
        return {"vf": vf, "rate": {"min_tx_rate": s.min_tx_rate, "max_tx_rate": s.max_tx_rate}}
    if group == "link_state":
        return {"vf": vf, "link_state": vn._LINK_STATE_NUM[s.link_state]}
    return {"vf": vf, group: int(getattr(s, group))}


def old_state_of(info: Any) -> VFState:
    """A pyroute2-decoded IFLA_VF_INFO as VFState (the old `_state_of`)."""
    def a(name: str) -> Any:
        return info.get_attr(name) or {}

    vlan = a("IFLA_VF_VLAN")
    proto = vn.ETH_P_8021Q
    vlist = info.get_attr("IFLA_VF_VLAN_LIST")
    if vlist:
        entries = vlist.get_attrs("IFLA_VF_VLAN_INFO")
        if entries and entries[0]["proto"]:
            proto = entries[0]["proto"]
    rate = a("IFLA_VF_RATE")
    return VFState(
        mac=a("IFLA_VF_MAC").get("mac", "00:00:00:00:00:00").lower(),
        vlan=vlan.get("vlan", 0),
        qos=vlan.get("qos", 0),
        proto=vn._PROTO_NAME.get(proto, f"0x{proto:04x}"),
        min_tx_rate=rate.get("min_tx_rate", 0),
        max_tx_rate=rate.get("max_tx_rate", a("IFLA_VF_TX_RATE").get("tx_rate", 0)),
        spoofchk=a("IFLA_VF_SPOOFCHK").get("spoofchk", 1) == 1,
        trust=a("IFLA_VF_TRUST").get("trust", 0) == 1,
        link_state=vn._LINK_STATE_NAME.get(a("IFLA_VF_LINK_STATE").get("link_state", 0), "auto"),
    )


def old_dump(data: bytes) -> tuple[int, list[VFState]]:
    """(num_vfs, states) of one RTM_NEWLINK message (its bytes), as the old `_dump` read it."""
    msg = ifinfmsg(data)
    msg.decode()
    vfl = msg.get_attr("IFLA_VFINFO_LIST")
    infos = vfl.get_attrs("IFLA_VF_INFO") if vfl else []
    num = msg.get_attr("IFLA_NUM_VF")
    return (len(infos) if num is None else num), [old_state_of(i) for i in infos]
