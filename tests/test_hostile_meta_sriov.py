"""Hostile input for the meta plugin and the daemon (issue 7, item 5), family `sriov`:
the sriov netconf (stand-alone plugin) with wrong types for every key.

The contract every case is held to, the node under attack and the shared strategies are in
tests/hostile.py; the families were one module (test_hostile_meta.py) until issue 14 split them."""
import json

from hypothesis import given
from hypothesis import strategies as st

from cni import skel
from delegates.sriov.plugin import SRIOVPlugin
from tests.hostile import (  # noqa: F401 - fixtures
    SETTINGS,
    TYPES,
    W,
    env_for,
    json_values,
    judge,
    leftovers,
    node_defaults_untouched,
    pin,
    report,
    scrub,
    world,
)

SRIOV_KEYS = ["master", "deviceID", "vf", "pfOnly", "vlan", "vlanQoS", "vlanProto", "mac", "min_tx_rate", "max_tx_rate",
              "spoofchk", "trust", "link_state", "mtu", "ipam", "excludeVFs", "runtimeConfig", "args", "pciBusID",
              "capabilities", "logLevel", "logFile", "dns", "sriovNetworkName", "prevResult", "x-unknown"]


def _sriov_strategy():
    world = W
    pcis = [world.nic.get("pci")] if world.nic.get("pci") else []
    special = {
        "master": st.sampled_from([world.nic["master"], "nosuchpf", "", "a/b", "x" * 16, "lo"]) | json_values,
        "deviceID": st.sampled_from(pcis + ["0000:00:00.0", "../../x", "0000:zz:00.1", ""]) | json_values,
        "vf": st.integers(-2, 3) | json_values, "vlan": st.integers(-1, 4097) | json_values,
        "mac": st.sampled_from(["02:11:22:33:44:55", "01:00:5e:00:00:01", "00:00:00:00:00:00", "zz"]) | json_values,
        "ipam": st.one_of(json_values, st.fixed_dictionaries({"type": st.sampled_from(TYPES)}),
                          st.just({"type": "fixipam", "subnet": "10.62.0.0/24", "dataDir": str(world.root / "fixipam")})),
        "logFile": st.just(5),
        "runtimeConfig": json_values | st.fixed_dictionaries({}, optional={
            "mac": st.sampled_from(["02:11:22:33:44:56", "zz"]) | json_values,
            "ips": st.lists(st.sampled_from(["10.62.0.40/24", "x"]), max_size=2), "deviceID": json_values}),
    }
    return st.dictionaries(st.sampled_from(SRIOV_KEYS), st.none(), max_size=5).flatmap(
        lambda d: st.fixed_dictionaries({k: special.get(k, json_values) for k in d}))


@SETTINGS
@given(over=st.deferred(_sriov_strategy))
def test_sriov_netconf(world, over):
    # sysfsRoot/backend/stateDir stay on the sim NIC: the only keys not fuzzed (a netconf may name
    # any PF of the node, see the threat model; this test must not touch the host's own NICs)
    conf = dict({"cniVersion": "1.0.0", "name": "srh", "type": "sriov", "master": world.nic["master"]}, **over,
                **{k: world.nic[k] for k in ("sysfsRoot", "backend", "stateDir")})
    if isinstance(conf.get("ipam"), dict):
        conf["ipam"] = dict(conf["ipam"], dataDir=str(world.root / "fixipam"))
    conf = pin(world, conf)
    stdin = json.dumps(conf).encode()
    env = env_for(world, CNI_IFNAME="net1", CNI_ARGS="")
    judge("sriov", world, SRIOVPlugin(), env, stdin, del_stdin=stdin, ctx=conf)


def test_sriov_with_an_unusable_ipam_gives_the_vf_back(world):
    conf = dict({"cniVersion": "1.0.0", "name": "srh", "type": "sriov", "ipam": {"type": "nosuchipam"}}, **world.safe_sriov)
    env = env_for(world, CNI_IFNAME="net1", CNI_ARGS="")
    try:
        code, out = skel.handle(SRIOVPlugin(), env, json.dumps(conf).encode())
        left = leftovers(world)
        dcode, dout = skel.handle(SRIOVPlugin(), dict(env, CNI_COMMAND="DEL"), json.dumps(conf).encode())
        assert code != 0 and json.loads(out)["code"] == 102, out
        assert left == {} and dcode == 0, (left, dout)
    finally:
        scrub(world)
        assert leftovers(world) == {}
