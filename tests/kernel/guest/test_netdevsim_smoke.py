"""Smoke test of a real kernel's SR-IOV VF table (netdevsim), inside the kernel-tier guest.

Sets VF attributes with iproute2 ``ip`` and with pyroute2, and reads every one back from the
kernel both through pyroute2 (IFLA_VFINFO_LIST, needs ext_mask=1 = RTEXT_FILTER_VF) and through
``ip -j -d link show``. The values read back are printed (uncaptured) so the log shows them.
"""

from __future__ import annotations

import copy
import errno
import json
import os
import subprocess

import pytest

pytestmark = pytest.mark.skipif(
    os.environ.get("NETMETA_IN_GUEST") != "1",
    reason="kernel tier: runs only inside the QEMU guest (tests/test_kernel_tier.py)",
)

VF = 1
ETH_P_8021Q = 0x8100
ETH_P_8021AD = 0x88A8
LINK_STATE = {"auto": 0, "enable": 1, "disable": 2}


@pytest.fixture(scope="module")
def ipr():
    from pyroute2 import IPRoute

    with IPRoute() as ipr:
        yield ipr


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(["ip", *args], capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise AssertionError(f"ip {' '.join(args)} -> {proc.returncode}: {proc.stderr.strip()}")
    return proc


def read_vf_pyroute2(ipr, index: int, vf: int) -> dict:
    msg = ipr.link("get", index=index, ext_mask=1)[0]
    vflist = msg.get_attr("IFLA_VFINFO_LIST")
    assert vflist is not None, "no IFLA_VFINFO_LIST (ext_mask=1 missing?)"
    for info in vflist.get_attrs("IFLA_VF_INFO"):
        if info.get_attr("IFLA_VF_MAC")["vf"] != vf:
            continue
        vlans = info.get_attr("IFLA_VF_VLAN_LIST")
        return {
            "mac": info.get_attr("IFLA_VF_MAC")["mac"],
            "vlan": info.get_attr("IFLA_VF_VLAN")["vlan"],
            "qos": info.get_attr("IFLA_VF_VLAN")["qos"],
            "vlan_list": [(v["vlan"], v["qos"], v["proto"])
                          for v in vlans.get_attrs("IFLA_VF_VLAN_INFO")] if vlans else [],
            "min_tx_rate": info.get_attr("IFLA_VF_RATE")["min_tx_rate"],
            "max_tx_rate": info.get_attr("IFLA_VF_RATE")["max_tx_rate"],
            "spoofchk": info.get_attr("IFLA_VF_SPOOFCHK")["spoofchk"],
            "trust": info.get_attr("IFLA_VF_TRUST")["trust"],
            "link_state": info.get_attr("IFLA_VF_LINK_STATE")["link_state"],
        }
    raise AssertionError(f"VF {vf} not in IFLA_VFINFO_LIST")


def read_vf_ip(pf: str, vf: int) -> dict:
    link = json.loads(ip("-j", "-d", "link", "show", "dev", pf).stdout)[0]
    (info,) = [v for v in link["vfinfo_list"] if v["vf"] == vf]
    return info


def num_vfs(ipr, index: int) -> int:
    return ipr.link("get", index=index, ext_mask=1)[0].get_attr("IFLA_NUM_VF")


@pytest.fixture(autouse=True)
def reset_vf(guest_nsim):
    """Put VF 1 back to the netdevsim defaults after each test."""
    yield
    ip("link", "set", guest_nsim.pf, "vf", str(VF), "mac", "00:00:00:00:00:00",
       "vlan", "0", "max_tx_rate", "0", "min_tx_rate", "0",
       "spoofchk", "off", "trust", "off", "state", "auto")


def test_guest_netdevsim_pf(guest_nsim, ipr, show):
    numvfs = int((guest_nsim.sysfs / "sriov_numvfs").read_text())
    max_vfs = int((guest_nsim.debugfs / "max_vfs").read_text())
    show("pf", f"{guest_nsim.pf} ifindex={guest_nsim.pf_index} sriov_numvfs={numvfs} "
               f"max_vfs={max_vfs} kernel={os.uname().release}")
    assert os.listdir(guest_nsim.sysfs / "net") == [guest_nsim.pf]
    assert ipr.link_lookup(ifname=guest_nsim.pf) == [guest_nsim.pf_index]
    assert numvfs == max_vfs == guest_nsim.numvfs == 8
    assert num_vfs(ipr, guest_nsim.pf_index) == 8
    assert len(read_vf_ip(guest_nsim.pf, 7)) > 0
    # without RTEXT_FILTER_VF the kernel leaves the VF list out
    plain = ipr.link("get", index=guest_nsim.pf_index)[0]
    assert plain.get_attr("IFLA_VFINFO_LIST") is None


def test_set_with_ip_read_back(guest_nsim, ipr, show):
    pf = guest_nsim.pf
    ip("link", "set", pf, "vf", str(VF), "mac", "02:11:22:33:44:55")
    ip("link", "set", pf, "vf", str(VF), "vlan", "100", "qos", "3")
    ip("link", "set", pf, "vf", str(VF), "max_tx_rate", "1000", "min_tx_rate", "100")
    ip("link", "set", pf, "vf", str(VF), "spoofchk", "on", "trust", "on", "state", "enable")

    got = read_vf_pyroute2(ipr, guest_nsim.pf_index, VF)
    show("pyroute2 after ip set", got)
    assert got["mac"] == "02:11:22:33:44:55"
    assert (got["vlan"], got["qos"]) == (100, 3)
    assert got["vlan_list"] == [(100, 3, ETH_P_8021Q)]
    assert (got["min_tx_rate"], got["max_tx_rate"]) == (100, 1000)
    assert (got["spoofchk"], got["trust"], got["link_state"]) == (1, 1, LINK_STATE["enable"])

    info = read_vf_ip(pf, VF)
    show("ip -j after ip set", info)
    assert info["address"] == "02:11:22:33:44:55"
    assert [(v["vlan"], v.get("qos", 0)) for v in info["vlan_list"]] == [(100, 3)]
    assert info["rate"] == {"max_tx": 1000, "min_tx": 100}
    assert (info["spoofchk"], info["trust"], info["link_state"]) == (True, True, "enable")

    ip("link", "set", pf, "vf", str(VF), "spoofchk", "off", "trust", "off", "state", "disable")
    got = read_vf_pyroute2(ipr, guest_nsim.pf_index, VF)
    show("pyroute2 after spoofchk off trust off state disable", got)
    assert (got["spoofchk"], got["trust"], got["link_state"]) == (0, 0, LINK_STATE["disable"])


def test_set_with_pyroute2_read_back(guest_nsim, ipr, show):
    idx = guest_nsim.pf_index
    # pyroute2 pops keys from the dicts it is given: pass fresh ones
    ipr.link("set", index=idx, vf={"vf": VF, "mac": "02:aa:bb:cc:dd:01"})
    ipr.link("set", index=idx, vf={"vf": VF, "vlan": {"vlan": 4000, "qos": 7}})
    ipr.link("set", index=idx, vf={"vf": VF, "rate": {"min_tx_rate": 10, "max_tx_rate": 20}})
    ipr.link("set", index=idx, vf={"vf": VF, "spoofchk": 1, "trust": 1,
                                   "link_state": LINK_STATE["disable"]})

    got = read_vf_pyroute2(ipr, idx, VF)
    show("pyroute2 after pyroute2 set", got)
    assert got["mac"] == "02:aa:bb:cc:dd:01"
    assert (got["vlan"], got["qos"]) == (4000, 7)
    assert (got["min_tx_rate"], got["max_tx_rate"]) == (10, 20)
    assert (got["spoofchk"], got["trust"], got["link_state"]) == (1, 1, LINK_STATE["disable"])

    info = read_vf_ip(guest_nsim.pf, VF)
    show("ip -j after pyroute2 set", info)
    assert info["address"] == "02:aa:bb:cc:dd:01"
    assert [(v["vlan"], v.get("qos", 0)) for v in info["vlan_list"]] == [(4000, 7)]
    assert info["rate"] == {"max_tx": 20, "min_tx": 10}
    assert (info["spoofchk"], info["trust"], info["link_state"]) == (True, True, "disable")


@pytest.mark.parametrize(
    "vf_request",
    [
        pytest.param({"vlan": {"vlan": 4096, "qos": 0}}, id="vlan-4096"),
        pytest.param({"vlan": {"vlan": 10, "qos": 8}}, id="qos-8"),
        pytest.param({"rate": {"min_tx_rate": 2000, "max_tx_rate": 1000}}, id="min-gt-max"),
        pytest.param({"mac": "01:00:5e:00:00:01"}, id="multicast-mac"),
        pytest.param({"vf": 8, "vlan": {"vlan": 5, "qos": 0}}, id="vf-out-of-range"),
    ],
)
def test_kernel_rejects_with_einval(guest_nsim, ipr, show, vf_request):
    """pyroute2 sends the request unchecked, so the EINVAL is the kernel's."""
    from pyroute2 import NetlinkError

    idx = guest_nsim.pf_index
    ipr.link("set", index=idx, vf={"vf": VF, "vlan": {"vlan": 42, "qos": 1},
                                   "rate": {"min_tx_rate": 5, "max_tx_rate": 50}})
    before = read_vf_pyroute2(ipr, idx, VF)
    request = {"vf": VF, **vf_request}
    with pytest.raises(NetlinkError) as exc:
        ipr.link("set", index=idx, vf=copy.deepcopy(request))
    show(f"kernel on {request}", f"errno {exc.value.code} ({errno.errorcode[exc.value.code]})")
    assert exc.value.code == errno.EINVAL
    assert read_vf_pyroute2(ipr, idx, VF) == before


def test_ip_rejects_bad_values(guest_nsim, show):
    """iproute2 checks vlan and min>max itself; qos 8 and VF >= numvfs reach the kernel."""
    pf = guest_nsim.pf
    for args, reached_kernel in [
        (["vlan", "4096"], False),
        (["min_tx_rate", "2000", "max_tx_rate", "1000"], False),
        (["vlan", "10", "qos", "8"], True),
    ]:
        proc = ip("link", "set", pf, "vf", str(VF), *args, check=False)
        show(f"ip ... vf {VF} {' '.join(args)}", f"rc={proc.returncode} {proc.stderr.strip()}")
        assert proc.returncode != 0
        assert ("RTNETLINK answers: Invalid argument" in proc.stderr) == reached_kernel
    proc = ip("link", "set", pf, "vf", "8", "vlan", "5", check=False)
    show("ip ... vf 8 vlan 5", f"rc={proc.returncode} {proc.stderr.strip()}")
    assert "Invalid argument" in proc.stderr


def test_vlan_proto_8021ad_with_ip(guest_nsim, ipr, show):
    pf, idx = guest_nsim.pf, guest_nsim.pf_index
    ip("link", "set", pf, "vf", str(VF), "vlan", "300", "qos", "2", "proto", "802.1ad")
    got = read_vf_pyroute2(ipr, idx, VF)
    info = read_vf_ip(pf, VF)
    show("pyroute2 after proto 802.1ad", got)
    show("ip -j after proto 802.1ad", info["vlan_list"])
    assert got["vlan_list"] == [(300, 2, ETH_P_8021AD)]
    assert (got["vlan"], got["qos"]) == (300, 2)
    assert info["vlan_list"] == [{"vlan": 300, "qos": 2, "protocol": "802.1ad"}]

    ip("link", "set", pf, "vf", str(VF), "vlan", "301", "proto", "802.1Q")
    got = read_vf_pyroute2(ipr, idx, VF)
    show("pyroute2 after proto 802.1Q", got["vlan_list"])
    assert got["vlan_list"] == [(301, 0, ETH_P_8021Q)]


def test_pyroute2_vlan_list_needs_padding(guest_nsim, ipr, show):
    """pyroute2 0.9.x packs IFLA_VF_VLAN_INFO in 14 bytes; the kernel wants
    sizeof(struct ifla_vf_vlan_info) == 16 and answers EINVAL. Two pad bytes fix it.
    (Documents the workaround the netlink backend needs; the class is restored afterwards.)"""
    from pyroute2 import NetlinkError
    from pyroute2.netlink.rtnl.ifinfmsg import ifinfmsg

    ivvi = ifinfmsg.vflist.vfinfo.vf_vlist.ivvi
    idx = guest_nsim.pf_index
    request = {"vf": VF, "vlan": [{"vlan": 200, "qos": 5, "proto": ETH_P_8021AD}]}
    original = ivvi.fields
    if len(original) == 4:   # unpadded layout: vf, vlan, qos, proto
        with pytest.raises(NetlinkError) as exc:
            ipr.link("set", index=idx, vf=copy.deepcopy(request))
        show("pyroute2 IFLA_VF_VLAN_LIST unpadded", f"errno {exc.value.code}")
        assert exc.value.code == errno.EINVAL
        ivvi.fields = original + (("__pad", "2x"),)
    try:
        ipr.link("set", index=idx, vf=copy.deepcopy(request))
    finally:
        ivvi.fields = original
    got = read_vf_pyroute2(ipr, idx, VF)
    show("pyroute2 after padded IFLA_VF_VLAN_LIST", got["vlan_list"])
    assert got["vlan_list"] == [(200, 5, ETH_P_8021AD)]
