"""The `netlink` VF-table backend against a real kernel's VF table (netdevsim), in the guest.

Every field is set through NetlinkVFTable and read back twice: through its get() and, as the
independent check, through `ip -j -d link show <pf>`. Values read back are printed uncaptured
so the guest log shows them.
"""
from __future__ import annotations

import errno
import json
import os
import struct
import subprocess

import pytest

pytestmark = pytest.mark.skipif(
    os.environ.get("NETMETA_IN_GUEST") != "1",
    reason="kernel tier: runs only inside the QEMU guest (tests/test_kernel_tier.py)",
)

VF = 2
PF = os.environ.get("NETMETA_KERNEL_PF", "eth0")


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(["ip", *args], capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise AssertionError(f"ip {' '.join(args)} -> {proc.returncode}: {proc.stderr.strip()}")
    return proc


def ip_vf(vf: int) -> dict:
    """VF `vf` as iproute2 reports it, in VFState terms (absent keys are iproute2's zeros)."""
    link = json.loads(ip("-j", "-d", "link", "show", "dev", PF).stdout)[0]
    (info,) = [v for v in link["vfinfo_list"] if v["vf"] == vf]
    vlan = (info.get("vlan_list") or [{}])[0]
    rate = info.get("rate", {})
    return {"mac": info["address"], "vlan": vlan.get("vlan", 0), "qos": vlan.get("qos", 0),
            "proto": vlan.get("protocol", "802.1Q"), "min_tx_rate": rate.get("min_tx", 0),
            "max_tx_rate": rate.get("max_tx", 0), "spoofchk": info["spoofchk"],
            "trust": info["trust"], "link_state": info["link_state"]}


@pytest.fixture
def table():
    from delegates.sriov.vftable import open_vftable
    with open_vftable("netlink", PF, "/sys") as t:
        yield t
    # back to netdevsim's defaults, with ip(8): independent of the code under test
    ip("link", "set", PF, "vf", str(VF), "mac", "00:00:00:00:00:00", "vlan", "0",
       "max_tx_rate", "0", "min_tx_rate", "0", "spoofchk", "off", "trust", "off",
       "state", "auto")


def check(table, vf: int, show, label: str, **expected) -> None:
    from delegates.sriov.vftable import VFState
    got = table.get(vf)
    seen = ip_vf(vf)
    show(f"{label}: get()", got)
    show(f"{label}: ip -j", seen)
    want = VFState(**{**got.to_dict(), **expected})
    assert got == want
    assert seen == want.to_dict()


def test_open(table, show):
    from delegates.sriov.vftable import VFTableError, open_vftable
    show("num_vfs", table.num_vfs())
    assert table.num_vfs() == int(os.environ.get("NETMETA_KERNEL_NUMVFS", "8")) == 8
    states = table.get_all()
    show("get_all()[7]", states[7])
    assert len(states) == 8
    # a VF never configured: netdevsim reports vlan_proto 0, which means 802.1Q (as in ip(8))
    assert states[7].proto == "802.1Q" and ip_vf(7)["proto"] == "802.1Q"
    with pytest.raises(VFTableError) as e:
        table.get(8)
    assert e.value.field == "vf"
    with open_vftable("netlink", "nosuch0", "/sys") as missing:   # opening never fails
        with pytest.raises(VFTableError) as e:
            missing.num_vfs()
    assert e.value.field == "master" and "failed to find PF nosuch0" in str(e.value)


def test_every_field(table, show):
    table.set(VF, mac="02:11:22:33:44:55", vlan=100, qos=3, proto="802.1Q", min_tx_rate=100,
              max_tx_rate=1000, spoofchk=True, trust=True, link_state="enable")
    check(table, VF, show, "all set", mac="02:11:22:33:44:55", vlan=100, qos=3,
          proto="802.1Q", min_tx_rate=100, max_tx_rate=1000, spoofchk=True, trust=True,
          link_state="enable")
    table.set(VF, spoofchk=False, trust=False, link_state="disable")
    check(table, VF, show, "flags off", spoofchk=False, trust=False, link_state="disable")
    table.set(VF, mac="02:AA:BB:CC:DD:EE", vlan=4095, qos=7, max_tx_rate=0, min_tx_rate=0,
              link_state="auto")
    check(table, VF, show, "limits", mac="02:aa:bb:cc:dd:ee", vlan=4095, qos=7,
          min_tx_rate=0, max_tx_rate=0, link_state="auto")
    # other VFs untouched
    assert table.get(VF + 1).vlan == 0


def test_only_given_fields(table, show):
    table.set(VF, vlan=10, qos=2, min_tx_rate=100, max_tx_rate=1000)
    table.set(VF, max_tx_rate=500)                      # min kept, like ip(8)
    table.set(VF, vlan=11)                              # qos kept
    check(table, VF, show, "partial", vlan=11, qos=2, min_tx_rate=100, max_tx_rate=500)


def test_8021ad(table, show):
    assert struct.calcsize("=IIIH2x") == 16
    table.set(VF, vlan=300, qos=2, proto="802.1ad")     # IFLA_VF_VLAN_LIST, padded entry
    check(table, VF, show, "802.1ad", vlan=300, qos=2, proto="802.1ad")
    table.set(VF, proto="802.1Q")                       # vlan and qos kept
    check(table, VF, show, "back to 802.1Q", vlan=300, qos=2, proto="802.1Q")
    table.set(VF, vlan=0, qos=0, proto="802.1ad")
    check(table, VF, show, "802.1ad vlan 0", vlan=0, qos=0, proto="802.1ad")


@pytest.mark.parametrize("vf, fields, field", [
    (8, {"vlan": 5}, "vf"),
    (VF, {"vlan": 4096}, "vlan"),
    (VF, {"vlan": 10, "qos": 8}, "vlanQoS"),
    (VF, {"vlan": 0, "qos": 3}, "vlanQoS"),
    (VF, {"vlan": 10, "proto": "0x1234"}, "vlanProto"),
    (VF, {"mac": "01:00:5e:00:00:01"}, "mac"),
    (VF, {"min_tx_rate": 2000, "max_tx_rate": 1000}, "min_tx_rate"),
])
def test_rejected_before_the_kernel(table, show, vf, fields, field):
    from delegates.sriov.vftable import VFTableError
    table.set(VF, mac="02:00:00:00:00:02", vlan=42, qos=0, min_tx_rate=5, max_tx_rate=50)
    before = (table.get(VF), ip_vf(VF))
    with pytest.raises(VFTableError) as e:
        table.set(vf, spoofchk=True, **fields)          # a valid field beside the bad one
    show(f"{fields}", f"field={e.value.field}: {e.value}")
    assert e.value.field == field
    assert (table.get(VF), ip_vf(VF)) == before         # nothing applied, not even spoofchk


@pytest.mark.parametrize("vf, group, state, given, field", [
    (8, "vlan", {"vlan": 5}, {"vlan": 5}, "vf"),
    (VF, "vlan", {"vlan": 4096}, {"vlan": 4096}, "vlan"),
    (VF, "vlan", {"vlan": 10, "qos": 8}, {"qos": 8}, "vlanQoS"),
    (VF, "mac", {"mac": "01:00:5e:00:00:01"}, {"mac": "01:00:5e:00:00:01"}, "mac"),
    (VF, "rate", {"min_tx_rate": 2000, "max_tx_rate": 1000}, {"max_tx_rate": 1000},
     "max_tx_rate"),
    (VF, "rate", {"min_tx_rate": 2000, "max_tx_rate": 1000}, {"min_tx_rate": 2000},
     "min_tx_rate"),
])
def test_kernel_einval_maps_to_field(table, show, vf, group, state, given, field):
    """Send past our own validation on purpose (the backend's per-group send), so the error
    is the kernel's; the backend's errno mapping must name the field."""
    from pyroute2 import NetlinkError

    from delegates.sriov.vftable import VFState
    with pytest.raises(NetlinkError) as e:
        table._send(vf, group, VFState(**state))
    err = table._error(vf, group, given, e.value)
    show(f"kernel on vf {vf} {state}", f"errno {errno.errorcode[e.value.code]} -> "
                                       f"field={err.field}: {err}")
    assert e.value.code == errno.EINVAL
    assert err.field == field and str(err).startswith(f"failed to set vf {vf} ")


def test_kernel_refusal_is_rolled_back(table, show):
    """In switchdev mode netdevsim refuses ndo_set_vf_rate (EOPNOTSUPP): a set() whose MAC
    went through and whose rate did not must put the MAC back and name the rate field."""
    from delegates.sriov.vftable import VFTableError
    dev = f"netdevsim/netdevsim{os.environ.get('NETMETA_KERNEL_NSIM_ID', '10')}"
    table.set(VF, mac="02:00:00:00:00:aa")
    before = ip_vf(VF)
    sw = subprocess.run(["devlink", "dev", "eswitch", "set", dev, "mode", "switchdev"],
                        capture_output=True, text=True)
    if sw.returncode != 0:
        pytest.skip(f"devlink switchdev: {sw.stderr.strip()}")
    try:
        with pytest.raises(VFTableError) as e:
            table.set(VF, mac="02:00:00:00:00:bb", max_tx_rate=10)
        show("switchdev set", f"field={e.value.field}: {e.value}")
        assert e.value.field == "max_tx_rate"
        assert "not supported" in str(e.value).lower()
        assert ip_vf(VF)["mac"] == before["mac"] == "02:00:00:00:00:aa"
    finally:
        subprocess.run(["devlink", "dev", "eswitch", "set", dev, "mode", "legacy"], check=True)
