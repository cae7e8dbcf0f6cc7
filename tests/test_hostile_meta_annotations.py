"""Hostile input for the meta plugin and the daemon (issue 7, item 5), family `annotations`:
k8s.v1.cni.cncf.io/networks, v1.multus-cni.io/default-network and the SR-IOV overrides:
huge, deeply nested, unicode, NUL, `../`, `;`, `$(...)`, newlines.

The contract every case is held to, the node under attack and the shared strategies are in
tests/hostile.py; the families were one module (test_hostile_meta.py) until issue 14 split them."""
import json

from hypothesis import given
from hypothesis import strategies as st

from tests.hostile import (  # noqa: F401 - fixtures
    DEFAULT_NET,
    NETWORKS,
    SETTINGS,
    deep,
    json_values,
    meta_call,
    node_defaults_untouched,
    report,
    texts,
    world,
)

names = st.sampled_from(["pl", "sr", "sr-raw", "nosuch", "PL", "pl.x", "a" * 254, "", "../pl", "pl/x"]) | texts
element = st.dictionaries(
    st.sampled_from(["name", "namespace", "interface", "interfaceRequest", "ips", "mac", "default-route", "cni-args",
                     "portMappings", "bandwidth", "deviceID", "infiniband-guid", "NAME", "Name", "x"]),
    st.one_of(names, json_values, st.lists(st.sampled_from(["10.62.0.20/24", "10.62.0.20", "fd00::1/64", "1.2.3.4/33",
                                                            "10.62.0.1/24", "::ffff:10.62.0.21", ""]), max_size=3)),
    max_size=5)
networks_values = st.one_of(
    texts,
    st.lists(st.sampled_from(["pl", "sr-raw", "other/pl", "team/pl", "pl@net5", "sr-raw@sriov0", "nosuch", " pl "]),
             max_size=4).map(",".join),
    st.lists(element, max_size=4).map(json.dumps),
    st.lists(element, max_size=3).map(lambda x: json.dumps(x).replace('"', "'")),
)
override_values = st.one_of(texts, st.integers(-5, 5000).map(str),
                            st.dictionaries(names, json_values | st.integers(-1, 2**64), max_size=3).map(json.dumps))
annotation_maps = st.fixed_dictionaries({}, optional={
    NETWORKS: networks_values, DEFAULT_NET: st.sampled_from(["pl", "kube-system/pl", "team/pl", "other/pl", "nosuch"]) | texts,
    "networks-sriov-vlan": override_values, "networks-sriov-txrate": override_values,
    "other": json_values})


@SETTINGS
@given(annots=annotation_maps | json_values)
def test_pod_annotations(world, annots):
    meta_call("annotations", world, world.conf, annots)


ANNOTATION_CORPUS = [
    {NETWORKS: "pl," * 70}, {NETWORKS: "x" * (2 * 1024 * 1024)}, {NETWORKS: deep(100000)},
    {NETWORKS: "[" + "{\"name\":\"pl\",\"cni-args\":" * 2000 + "1" + "}" * 2000 + "]"},
    {NETWORKS: json.dumps([{"name": "pl", "cni-args": {"a": "\x00" * 100}}])},
    {NETWORKS: json.dumps([{"name": "pl", "interface": "net\n1"}])}, {NETWORKS: "pl@net1\n"},
    {NETWORKS: "pl@$(reboot)"}, {NETWORKS: "pl;reboot"}, {NETWORKS: "../../pl"}, {NETWORKS: "team/../pl"},
    {NETWORKS: "pl\x00"}, {NETWORKS: "\ufeffpl"}, {NETWORKS: "p\u0131"}, {NETWORKS: "ｐｌ"},
    {NETWORKS: json.dumps([{"name": "pl", "ips": ["10.62.0.9/24;K8S_POD_NAME=victim"]}])},
    {NETWORKS: json.dumps([{"name": "pl", "mac": "02:00:00:00:00:01;IP=1.2.3.4"}])},
    {NETWORKS: json.dumps([{"name": "sr", "ips": ["10.62.0.9/24"], "deviceID": "../../../dev/sda"}])},
    {NETWORKS: json.dumps([{"name": "sr", "ips": ["10.62.0.9/24"], "deviceID": "0000:00:00.0"}])},
    {NETWORKS: json.dumps([{"name": "sr", "ips": ["10.62.0.0/24"]}])},
    {NETWORKS: json.dumps([{"name": "sr", "ips": ["10.62.0.9/24"], "mac": "01:00:5e:00:00:01"}])},
    {NETWORKS: json.dumps([{"name": "sr", "ips": ["10.62.0.9/24"]}, {"name": "sr", "ips": ["10.62.0.9/24"]}])},
    {NETWORKS: json.dumps([{"name": "sr", "ips": ["10.62.0.9/24"], "default-route": ["10.62.0.1"]}])},
    {NETWORKS: json.dumps([{"name": "pl", "default-route": ["10.62.0.1"]}, {"name": "pl", "default-route": ["1.1.1.1"]}])},
    {NETWORKS: "pl", "networks-sriov-vlan": "5"}, {NETWORKS: "sr-raw", "networks-sriov-vlan": "5"},
    {NETWORKS: json.dumps([{"name": "sr", "ips": ["10.62.0.9/24"]}]), "networks-sriov-vlan": "4095"},
    {NETWORKS: json.dumps([{"name": "sr", "ips": ["10.62.0.9/24"]}]), "networks-sriov-txrate": "0"},
    {NETWORKS: json.dumps([{"name": "sr", "ips": ["10.62.0.9/24"]}]), "networks-sriov-txrate": "99999999999999999999"},
    {DEFAULT_NET: ""}, {DEFAULT_NET: "[]"}, {DEFAULT_NET: "pl,pl"}, {DEFAULT_NET: "sr-raw"},
    {NETWORKS: 5}, {NETWORKS: None}, {NETWORKS: ["pl"]}, {NETWORKS: {"name": "pl"}},
    ["pl"], "pl", None, 7,
]


def test_annotation_corpus(world):
    for annots in ANNOTATION_CORPUS:
        meta_call("annotations", world, world.conf, annots)
