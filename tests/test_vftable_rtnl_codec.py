"""The `netlink` VF-table backend's own rtnetlink codec (delegates/sriov/vftable_netlink.py)
against pyroute2 0.9's, the library it replaced (no SR-IOV NIC is needed: pyroute2 encodes and
decodes without a socket).

- every set message (one per attribute group) is byte for byte what pyroute2's ifinfmsg
  encoder made from the `vf=` spec the backend used to hand it, after the reference's `pad_vlan_info`;
- every VF list pyroute2 encodes (VLAN lists, absent optional attributes, -1 spoofchk/trust,
  stats, no IFLA_NUM_VF) reads into the VFState the pyroute2-based `_state_of` read;
- a VF list past 64 KiB, whose 16-bit length the kernel wraps, is read whole;
- an exec'd call's import of the backend (with cni.leanimport, as delegates/sriov/main.py
  does) and its requests leave pyroute2.iproute and asyncio unimported.

The kernel side (the same messages change a real VF table the same way) is in
tests/kernel/guest/test_vftable_rtnl_parity.py.
"""
from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pyroute2.iproute.linux import get_arguments_processor
from pyroute2.netlink import NLM_F_ACK, NLM_F_REQUEST
from pyroute2.netlink.rtnl import RTM_GETLINK, RTM_NEWLINK
from pyroute2.netlink.rtnl.ifinfmsg import ifinfmsg

from cni import rtnl
from delegates.sriov import vftable_netlink as vn
from delegates.sriov.vftable import GROUPS, LINK_STATES, VFState
from tests.vftable_pyroute2_ref import old_dump, old_spec

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def new_dump(data: bytes) -> tuple[int, list[VFState]]:
    num, infos = vn._vf_table(data[16:])                  # the payload after nlmsghdr
    return (len(infos) if num is None else num), [vn._state_of(i) for i in infos]


def pyroute2_request(command: str, **query: Any) -> bytes:
    """The message pyroute2 0.9's IPRoute.link(command, **query) sends, built the way its
    NetlinkRequest builds it (nlsocket.py: fields, then the NLAs the request filters made)."""
    processor = get_arguments_processor("link", command, query)
    msg = ifinfmsg()
    msg["header"]["type"] = {"set": RTM_NEWLINK, "get": RTM_GETLINK}[command]
    msg["header"]["flags"] = NLM_F_REQUEST | (NLM_F_ACK if command == "set" else 0)
    msg.reset()
    for field in msg.fields:
        msg[field[0]] = processor.get_value(field[0], default=0, mode="field")
    for key, value in processor.items():
        nla = ifinfmsg.name2nla(key)
        if msg.valid_nla(nla) and value is not None:
            msg["attrs"].append([nla, value])
    if "attrs" in processor:
        msg["attrs"].extend(processor["attrs"])
    msg.encode()
    return bytes(msg.data)


# ---- encoder ----
u32 = st.integers(0, 0xFFFFFFFF)
states = st.builds(
    VFState,
    mac=st.binary(min_size=6, max_size=6).map(lambda b: b.hex(":")),
    vlan=st.integers(0, 4095), qos=st.integers(0, 7), proto=st.sampled_from(["802.1Q", "802.1ad"]),
    min_tx_rate=u32, max_tx_rate=u32, spoofchk=st.booleans(), trust=st.booleans(),
    link_state=st.sampled_from(LINK_STATES))


def ours(index: int, vf: int, group: str, s: VFState) -> bytes:
    body = vn.set_request(index, vf, group, s)
    return struct.pack("=LHHLL", 16 + len(body), rtnl.RTM_NEWLINK, rtnl.F_REQUEST | rtnl.F_ACK,
                       0, 0) + body


@pytest.mark.parametrize("group, state", [
    ("mac", VFState(mac="02:11:22:33:44:55")),
    ("vlan", VFState(vlan=100, qos=3)),                                   # IFLA_VF_VLAN
    ("vlan", VFState(vlan=300, qos=2, proto="802.1ad")),                  # IFLA_VF_VLAN_LIST
    ("vlan", VFState(vlan=0, qos=0, proto="802.1ad")),
    ("rate", VFState(min_tx_rate=100, max_tx_rate=1000)),
    ("spoofchk", VFState(spoofchk=True)), ("spoofchk", VFState(spoofchk=False)),
    ("trust", VFState(trust=True)), ("trust", VFState(trust=False)),
    ("link_state", VFState(link_state="auto")), ("link_state", VFState(link_state="enable")),
    ("link_state", VFState(link_state="disable")),
])
def test_each_group_is_pyroute2s_message(group, state):
    theirs = pyroute2_request("set", index=7, vf=old_spec(3, group, state))
    assert ours(7, 3, group, state) == theirs
    if group == "vlan" and state.proto == "802.1ad":
        # IFLA_VFINFO_LIST[IFLA_VF_INFO[IFLA_VF_VLAN_LIST[IFLA_VF_VLAN_INFO]]]: 4 headers + 16
        assert theirs[32:].startswith(struct.pack("=HH", 32, 22)) and len(theirs) == 32 + 32
        assert theirs[-4:] == bytes.fromhex("88a80000")      # __be16 proto, 2 pad bytes


@settings(max_examples=300, deadline=None)
@given(index=st.integers(1, 0x7FFFFFFF), vf=st.integers(0, 65535), s=states,
       group=st.sampled_from(sorted(GROUPS)))
def test_any_group_and_state_is_pyroute2s_message(index, vf, s, group):
    assert ours(index, vf, group, s) == pyroute2_request("set", index=index,
                                                        vf=old_spec(vf, group, s))


def test_the_read_request_is_pyroute2s_with_stats_skipped():
    body = vn.get_request(12)
    theirs = pyroute2_request("get", index=12, ext_mask=rtnl.RTEXT_FILTER_VF)
    assert theirs[16:-4] == body[:-4]                        # ifinfomsg + IFLA_EXT_MASK header
    assert struct.unpack("=I", theirs[-4:])[0] == 1 and struct.unpack("=I", body[-4:])[0] == 1 | 8
    assert struct.unpack_from("=HH", theirs, 4) == (rtnl.RTM_GETLINK, rtnl.F_REQUEST)


# ---- decoder ----
def _maybe(x):
    return st.one_of(st.none(), x)


odd_u32 = st.sampled_from([0, 1, 2, 3, 0xFFFFFFFF]) | u32
vlan_entry = st.fixed_dictionaries({
    "vf": u32, "vlan": st.integers(0, 4095), "qos": st.integers(0, 7),
    "proto": st.sampled_from([0, 0x8100, 0x88A8]) | st.integers(0, 0xFFFF)})
vf_info = st.fixed_dictionaries({}, optional={
    "IFLA_VF_MAC": st.binary(min_size=6, max_size=6).map(lambda b: b.hex(":")),
    "IFLA_VF_VLAN": st.tuples(st.integers(0, 4095), st.integers(0, 7)),
    "IFLA_VF_VLAN_LIST": st.lists(vlan_entry, max_size=3),
    "IFLA_VF_TX_RATE": u32, "IFLA_VF_RATE": st.tuples(u32, u32),
    "IFLA_VF_SPOOFCHK": odd_u32, "IFLA_VF_TRUST": odd_u32, "IFLA_VF_LINK_STATE": odd_u32,
    "IFLA_VF_RSS_QUERY_EN": odd_u32, "IFLA_VF_STATS": st.integers(0, 2**64 - 1)})


def encode_link(infos: list[dict], num: int | None, vf0: int = 0) -> bytes:
    """An RTM_NEWLINK answer encoded by pyroute2, with the VF list `infos` describes."""
    vfs = []
    for i, d in enumerate(infos):
        vf = vf0 + i
        a: list = []
        for name, v in d.items():                     # in the kernel's order when sorted
            if name == "IFLA_VF_MAC":
                a.append((name, {"vf": vf, "mac": v}))
            elif name == "IFLA_VF_VLAN":
                a.append((name, {"vf": vf, "vlan": v[0], "qos": v[1]}))
            elif name == "IFLA_VF_VLAN_LIST":
                a.append((name, {"attrs": [("IFLA_VF_VLAN_INFO", e) for e in v]}))
            elif name == "IFLA_VF_RATE":
                a.append((name, {"vf": vf, "min_tx_rate": v[0], "max_tx_rate": v[1]}))
            elif name == "IFLA_VF_STATS":
                a.append((name, {"attrs": [("IFLA_VF_STATS_RX_PACKETS", v),
                                           ("IFLA_VF_STATS_TX_BYTES", v // 3)]}))
            else:
                key = name[len("IFLA_VF_"):].lower()
                a.append((name, {"vf": vf, key: v}))
        vfs.append(("IFLA_VF_INFO", {"attrs": a}))
    msg = ifinfmsg()
    msg["header"]["type"] = RTM_NEWLINK
    msg["index"] = 9
    msg["attrs"] = [("IFLA_IFNAME", "pf0"), ("IFLA_MTU", 1500)]
    if num is not None:
        msg["attrs"].append(("IFLA_NUM_VF", num))
    if infos or num is not None:
        msg["attrs"].append(("IFLA_VFINFO_LIST", {"attrs": vfs}))
    msg["attrs"].append(("IFLA_GROUP", 0))
    msg.encode()
    return bytes(msg.data)


def test_decodes_what_the_old_backend_decoded():
    infos = [
        {},                                                         # nothing: the defaults
        {"IFLA_VF_MAC": "02:AA:bb:cc:dd:ee", "IFLA_VF_VLAN": (100, 3),
         "IFLA_VF_VLAN_LIST": [{"vf": 1, "vlan": 100, "qos": 3, "proto": 0x8100}],
         "IFLA_VF_TX_RATE": 1000, "IFLA_VF_RATE": (100, 1000), "IFLA_VF_SPOOFCHK": 1,
         "IFLA_VF_TRUST": 1, "IFLA_VF_LINK_STATE": 1, "IFLA_VF_STATS": 12345},
        {"IFLA_VF_VLAN": (300, 2),                                  # 802.1ad
         "IFLA_VF_VLAN_LIST": [{"vf": 2, "vlan": 300, "qos": 2, "proto": 0x88A8}],
         "IFLA_VF_SPOOFCHK": 0, "IFLA_VF_TRUST": 0, "IFLA_VF_LINK_STATE": 2},
        {"IFLA_VF_VLAN_LIST": [{"vf": 3, "vlan": 0, "qos": 0, "proto": 0}],   # netdevsim's 0
         "IFLA_VF_SPOOFCHK": 0xFFFFFFFF, "IFLA_VF_TRUST": 0xFFFFFFFF},        # not reported
        {"IFLA_VF_TX_RATE": 77},                                    # old drivers: no VF_RATE
        {"IFLA_VF_VLAN_LIST": [{"vf": 5, "vlan": 9, "qos": 0, "proto": 0x1234}],
         "IFLA_VF_LINK_STATE": 9},                                  # unknown proto, state
    ]
    data = encode_link(infos, len(infos))
    old, new = old_dump(data), new_dump(data)
    assert new == old
    assert new[1][1] == VFState(mac="02:aa:bb:cc:dd:ee", vlan=100, qos=3, min_tx_rate=100,
                                max_tx_rate=1000, spoofchk=True, trust=True,
                                link_state="enable")
    assert new[1][2].proto == "802.1ad" and new[1][3].proto == "802.1Q"
    assert (new[1][3].spoofchk, new[1][3].trust) == (False, False)
    assert new[1][4].max_tx_rate == 77 and new[1][5].proto == "0x1234"
    assert new[1][0] == VFState() and new[1][5].link_state == "auto"


@settings(max_examples=300, deadline=None)
@given(infos=st.lists(vf_info, max_size=6), num=_maybe(st.integers(0, 8)))
def test_decodes_any_vf_list_as_the_old_backend(infos, num):
    data = encode_link(infos, num)
    assert new_dump(data) == old_dump(data)


def test_no_vf_list():
    data = encode_link([], None)
    assert new_dump(data) == old_dump(data) == (0, [])


def _kernel_vf_info(vf: int, mac: bytes) -> bytes:
    """One IFLA_VF_INFO the way 6.1 fills it with RTEXT_FILTER_SKIP_STATS (196 bytes)."""
    return rtnl.attr(vn.IFLA_VF_INFO, b"".join((
        rtnl.attr(1, struct.pack("=I", vf) + mac + bytes(26)),
        rtnl.attr(13, struct.pack("=I", vf) + b"\xff" * 6 + bytes(26)),     # IFLA_VF_BROADCAST
        rtnl.attr(2, struct.pack("=III", vf, vf % 4096, 0)),
        rtnl.attr(12, rtnl.attr(1, struct.pack("=III", vf, vf % 4096, 0) + b"\x81\x00\0\0")),
        rtnl.attr(3, struct.pack("=II", vf, 0)), rtnl.attr(6, struct.pack("=III", vf, 0, 0)),
        rtnl.attr(4, struct.pack("=II", vf, 0)), rtnl.attr(5, struct.pack("=II", vf, 0)),
        rtnl.attr(7, struct.pack("=II", vf, 0)), rtnl.attr(9, struct.pack("=II", vf, 0)))))


def _wrapped_link(n: int, num: int | None) -> bytes:
    vfs = b"".join(_kernel_vf_info(i, bytes([2, 0, 0, 0, i >> 8, i & 255])) for i in range(n))
    vflist = struct.pack("=HH", (4 + len(vfs)) & 0xFFFF, 22) + vfs      # nla_nest_end's u16
    return rtnl.IFINFO.pack(0, 1, 9, 0, 0) + rtnl.attr(3, b"pf0\0") \
        + (rtnl.attr(21, struct.pack("=I", num)) if num is not None else b"") \
        + vflist + rtnl.attr(27, struct.pack("=I", 0))                   # IFLA_GROUP after


@pytest.mark.parametrize("n", [1, 334, 335, 400, 1024, 4096])
def test_a_vf_list_past_64k_is_read_whole(n):
    """6.1 stores IFLA_VFINFO_LIST's length modulo 65536 (seen in the guest from 335 VFs on
    with stats skipped): read IFLA_NUM_VF entries and check they end where the list does."""
    num, infos = vn._vf_table(_wrapped_link(n, n))
    assert num == n and len(infos) == n
    last = vn._state_of(infos[-1])
    assert last.mac == f"02:00:00:00:{(n - 1) >> 8:02x}:{(n - 1) & 255:02x}"
    assert last.vlan == (n - 1) % 4096 and last.proto == "802.1Q"


def test_a_wrapped_list_that_does_not_add_up_is_not_guessed():
    data = bytearray(_wrapped_link(400, 400))
    # without IFLA_NUM_VF there is no count to walk to: what the list's own length holds
    num, infos = vn._vf_table(bytes(_wrapped_link(400, None)))
    assert num is None and 0 < len(infos) < 400
    # an entry that is not IFLA_VF_INFO halfway: no walk either
    second = rtnl.IFINFO.size + 8 + 8 + 4 + 196 * 200
    struct.pack_into("=HH", data, second, 196, 5)
    num, infos = vn._vf_table(bytes(data))
    assert num == 400 and len(infos) < 400


# ---- imports of an exec'd call ----
PROBE = r"""
import json, sys
from cni.leanimport import lean_pyroute2
lean_pyroute2()                                  # as delegates/sriov/main.py does
from delegates.sriov.vftable import VFState, VFTableError, open_vftable
from pyroute2.netlink.exceptions import NetlinkError
out = {}
with open_vftable("netlink", "lo", "/sys") as t:
    out["num_vfs"] = t.num_vfs()
    out["all"] = len(t.get_all())
    try:
        t._send(0, "trust", VFState(trust=True))  # lo has no VF table: the kernel says no
    except NetlinkError as e:
        out["send"] = e.code
    try:
        t.set(0, trust=True)
    except VFTableError as e:
        out["set"] = e.field
with open_vftable("netlink", "nosuch0", "/sys") as t:
    try:
        t.num_vfs()
    except VFTableError as e:
        out["missing"] = [e.field, str(e)]
out["modules"] = sorted(sys.modules)
print(json.dumps(out))
"""


def test_the_backend_imports_no_iproute_and_no_asyncio(netns):
    ns = netns("vfnl")
    p = subprocess.run(["ip", "netns", "exec", ns, sys.executable, "-I", "-c", PROBE],
                       cwd=REPO, capture_output=True, text=True, timeout=60,
                       env={"PATH": os.environ["PATH"], "PYTHONPATH": REPO})
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    assert out["num_vfs"] == 0 and out["all"] == 0 and out["set"] == "vf"
    assert out["send"] == 95                                           # EOPNOTSUPP
    assert out["missing"] == ["master", "failed to find PF nosuch0: no such device"]
    mods = set(out["modules"])
    assert "pyroute2.netlink.exceptions" in mods                       # the probe is real
    assert not {"asyncio", "pyroute2.iproute", "pyroute2.netlink.rtnl.ifinfmsg",
                "pyroute2.netlink.nlsocket"} & mods
    assert len([m for m in mods if m.startswith("pyroute2")]) <= 8, sorted(mods)
