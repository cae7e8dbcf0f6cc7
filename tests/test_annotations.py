"""meta.annotations.parse: the pod network-selection annotations, with Multus's semantics.

Table-driven (one row per annotation string: the expected parse or an error substring) plus
hypothesis properties: arbitrary text / JSON only ever raises AnnotationError, and valid
selections survive to_dict -> JSON -> parse unchanged."""
import ipaddress
import json

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from meta.annotations.parse import (
    MAX_ANNOTATION_BYTES,
    AnnotationError,
    JSONObject,
    Selection,
    assign_interfaces,
    check_gateways,
    gateway_filters,
    override_for,
    parse_default_network,
    parse_networks,
    parse_override,
)

POD_NS = "pod-ns"
SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _triples(sels):
    return [(s.namespace, s.name, s.interface) for s in sels]


def J(*elements) -> str:
    return json.dumps(list(elements))


OK = "ok"
# id, annotation, expected: list of (namespace, name, interface) or ("error", substring)
NETWORKS_TABLE = [
    # --- comma form
    ("empty-annotation", "", []),
    ("single", "net-a", [(POD_NS, "net-a", None)]),
    ("namespace", "other/net-a", [("other", "net-a", None)]),
    ("ifname", "net-a@eth9", [(POD_NS, "net-a", "eth9")]),
    ("namespace-and-ifname", "other/net-a@eth9", [("other", "net-a", "eth9")]),
    ("list-keeps-order", "c,a,b", [(POD_NS, "c", None), (POD_NS, "a", None), (POD_NS, "b", None)]),
    ("whitespace-around-items", "  net-a ,\tnet-b\n", [(POD_NS, "net-a", None), (POD_NS, "net-b", None)]),
    ("whitespace-around-slash-and-at", " other / net-a @ eth9 ", [("other", "net-a", "eth9")]),
    ("go-unicode-space-trimmed", "\u00a0net-a\u3000", [(POD_NS, "net-a", None)]),
    ("x1c-is-not-go-space", "\x1cnet-a", ("error", "network name")),
    ("inner-space-in-name", "net a", ("error", "network name")),
    ("empty-namespace-defaults", "/net-a", [(POD_NS, "net-a", None)]),
    ("empty-ifname-is-none", "net-a@", [(POD_NS, "net-a", None)]),
    ("null-is-a-name", "null", [(POD_NS, "null", None)]),
    ("same-network-twice", "net-a,net-a", [(POD_NS, "net-a", None), (POD_NS, "net-a", None)]),
    ("same-network-distinct-ifnames", "net-a@x1,net-a@x2", [(POD_NS, "net-a", "x1"), (POD_NS, "net-a", "x2")]),
    ("same-ifname-twice", "net-a@x1,net-b@x1", ("error", 'interface name "x1" is requested twice')),
    ("same-network-same-ifname", "net-a@x1, net-a@x1", ("error", "requested twice")),
    ("empty-item-middle", "a,,b", ("error", "item 1 (empty): empty network name")),
    ("trailing-comma", "a,", ("error", "item 1 (empty)")),
    ("leading-comma", ",a", ("error", "item 0 (empty)")),
    ("only-space", "   ", ("error", "empty network name")),
    ("namespace-only", "ns/", ("error", "empty network name")),
    ("two-slashes", "a/b/c", ("error", "more than one '/'")),
    ("two-ats", "a@b@c", ("error", "more than one '@'")),
    ("upper-case-name", "Net-a", ("error", 'network name "Net-a" is not valid')),
    ("underscore-name", "net_a", ("error", "network name")),
    ("leading-dash-name", "-net", ("error", "network name")),
    ("trailing-dash-name", "net-", ("error", "network name")),
    ("dot-name-comma-form", "my.net", ("error", "network name")),  # Multus: label pattern only
    ("name-64-ok", "a" * 64, [(POD_NS, "a" * 64, None)]),  # NAD names are subdomains (<= 253)
    ("name-254", "a" * 254, ("error", "at most 253")),
    ("namespace-64", "a" * 64 + "/net", ("error", "is not a valid namespace")),
    ("namespace-63-ok", "a" * 63 + "/net", [("a" * 63, "net", None)]),
    ("upper-case-namespace", "Ns/net", ("error", "namespace")),
    ("underscore-namespace", "n_s/net", ("error", "namespace")),
    ("ifname-15-ok", "net@" + "e" * 15, [(POD_NS, "net", "e" * 15)]),
    ("ifname-16", "net@" + "e" * 16, ("error", "longer than 15 bytes")),
    ("ifname-15-chars-but-more-bytes", "net@" + "é" * 8, ("error", "longer than 15 bytes")),
    ("ifname-slash-splits-first", "net@e/1", ("error", 'namespace "net@e"')),  # '/' is split first
    ("ifname-colon", "net@eth:1", ("error", "interface name")),
    ("ifname-dot", "net@.", ("error", "interface name")),
    ("ifname-dotdot", "net@..", ("error", "interface name")),
    ("ifname-non-ascii", "net@eth\u00e9", ("error", "interface name")),
    ("ifname-inner-space", "net@e 1", ("error", "interface name")),
    ("quote-means-json", 'net@"x"', ("error", "invalid JSON")),
    ("too-many", ",".join(["n"] * 65), ("error", "more than 64 networks")),
    ("64-is-fine", ",".join(["n"] * 64), [(POD_NS, "n", None)] * 64),
    ("too-large", "a" * (MAX_ANNOTATION_BYTES + 1), ("error", "larger than 65536 bytes")),
    # --- JSON form
    ("json-empty-list", "[]", []),
    ("json-minimal", J({"name": "net-a"}), [(POD_NS, "net-a", None)]),
    ("json-namespace-interface", J({"name": "net-a", "namespace": "other", "interface": "x1"}),
     [("other", "net-a", "x1")]),
    ("json-namespace-empty-defaults", J({"name": "net-a", "namespace": ""}), [(POD_NS, "net-a", None)]),
    ("json-namespace-null-defaults", J({"name": "net-a", "namespace": None}), [(POD_NS, "net-a", None)]),
    ("json-deprecated-interfaceRequest", J({"name": "a", "interfaceRequest": "x1"}), [(POD_NS, "a", "x1")]),
    ("json-interface-wins-over-deprecated", J({"name": "a", "interface": "y1", "interfaceRequest": "x1"}),
     [(POD_NS, "a", "y1")]),
    ("json-deprecated-ignored-unchecked", J({"name": "a", "interface": "y1", "interfaceRequest": "b/ad"}),
     [(POD_NS, "a", "y1")]),
    ("json-deprecated-used-when-interface-empty", J({"name": "a", "interface": "", "interfaceRequest": "x1"}),
     [(POD_NS, "a", "x1")]),
    ("json-keys-case-insensitive", '[{"NAME": "a", "Interface": "x1", "NameSpace": "o"}]', [("o", "a", "x1")]),
    ("json-long-s-folds-to-s", '[{"name": "a", "ip\u017f": ["x"]}]', ("error", '"x" is not a valid IP address')),
    ("json-dotless-i-does-not-fold", '[{"name": "a", "\u0131ps": ["x"]}]', [(POD_NS, "a", None)]),
    ("json-last-duplicate-wins", '[{"name": "a", "NAME": "b"}]', [(POD_NS, "b", None)]),
    ("json-unknown-keys-ignored", J({"name": "a", "gateway": "1.2.3.4", "x": [1]}), [(POD_NS, "a", None)]),
    ("json-dotted-name-ok", J({"name": "my.net"}), [(POD_NS, "my.net", None)]),
    ("json-whitespace-around", ' \n[ {"name": "a"} ]\t', [(POD_NS, "a", None)]),
    ("json-several", J({"name": "a"}, {"name": "a", "interface": "x"}, {"name": "b", "namespace": "o"}),
     [(POD_NS, "a", None), (POD_NS, "a", "x"), ("o", "b", None)]),
    ("json-not-a-list", '{"name": "a"}', ("error", "must be a list of objects")),
    ("json-string", '"net-a"', ("error", "must be a list of objects")),
    ("json-list-with-string", J({"name": "a"}, "b"), ("error", "element 1: must be a JSON object")),
    ("json-list-with-null", "[null]", ("error", "element 0: must be a JSON object (got JSON null)")),
    ("json-list-of-lists", "[[]]", ("error", "must be a JSON object (got JSON array)")),
    ("json-syntax-error", '[{"name": "a"', ("error", "invalid JSON")),
    ("json-trailing-garbage", '[{"name": "a"}] x', ("error", "invalid JSON")),
    ("json-nan", '[{"name": "a", "cni-args": {"x": NaN}}]', ("error", "invalid JSON")),
    ("json-deep-nesting", "[" * 5000 + "]" * 5000, ("error", "nested too deeply")),
    ("json-name-missing", J({"namespace": "o"}), ("error", "name is required")),
    ("json-name-null", J({"name": None}), ("error", "name is required")),
    ("json-name-number", J({"name": 7}), ("error", "name must be a string, not JSON number")),
    ("json-name-upper", J({"name": "Net"}), ("error", "not a valid network name")),
    ("json-name-with-namespace", J({"name": "o/a"}), ("error", "not a valid network name")),
    ("json-name-untrimmed", J({"name": " a"}), ("error", "not a valid network name")),
    ("json-namespace-bad", J({"name": "a", "namespace": "my.ns"}), ("error", "not a valid namespace")),
    ("json-interface-16", J({"name": "a", "interface": "e" * 16}), ("error", "longer than 15 bytes")),
    ("json-interface-slash", J({"name": "a", "interface": "e/1"}), ("error", "interface name")),
    ("json-interface-space", J({"name": "a", "interface": " e1"}), ("error", "interface name")),
    ("json-deprecated-interface-bad", J({"name": "a", "interfaceRequest": "e/1"}), ("error", "interface name")),
    ("json-duplicate-interface", J({"name": "a", "interface": "x"}, {"name": "b", "interface": "x"}),
     ("error", "requested twice")),
    ("json-good-ips", J({"name": "a", "ips": ["10.1.1.5/24", "fd00::5", "10.1.1.6", "fd00::6/64"]}),
     [(POD_NS, "a", None)]),
    ("json-bad-ip", J({"name": "a", "ips": ["10.1.1.256"]}), ("error", '"10.1.1.256" is not a valid IP address')),
    ("json-bad-ip-leading-zero", J({"name": "a", "ips": ["010.1.1.1"]}), ("error", "not a valid IP address")),
    ("json-bad-ip-zone", J({"name": "a", "ips": ["fe80::1%eth0"]}), ("error", "not a valid IP address")),
    ("json-bad-ip-empty", J({"name": "a", "ips": [""]}), ("error", "not a valid IP address")),
    ("json-bad-cidr-prefix", J({"name": "a", "ips": ["10.1.1.5/33"]}), ("error", '"10.1.1.5/33" is not a valid CIDR')),
    ("json-bad-cidr-netmask", J({"name": "a", "ips": ["10.1.1.5/255.255.255.0"]}), ("error", "not a valid CIDR")),
    ("json-bad-cidr-empty-prefix", J({"name": "a", "ips": ["10.1.1.5/"]}), ("error", "not a valid CIDR")),
    ("json-bad-cidr-v6", J({"name": "a", "ips": ["fd00::1/129"]}), ("error", "not a valid CIDR")),
    ("json-cidr-leading-zeros-ok", J({"name": "a", "ips": ["10.1.1.5/0024"]}), [(POD_NS, "a", None)]),  # Go's dtoi
    ("json-cidr-5000-digit-prefix", J({"name": "a", "ips": ["10.1.1.5/" + "9" * 5000]}), ("error", "not a valid CIDR")),
    ("json-ips-not-list", J({"name": "a", "ips": "10.1.1.5"}), ("error", "ips must be a list of strings")),
    ("json-ips-number", J({"name": "a", "ips": [1]}), ("error", "ips must be a list of strings")),
    ("json-bad-mac-short", J({"name": "a", "mac": "00:11:22:33:44"}), ("error", "not a valid MAC address")),
    ("json-bad-mac-hex", J({"name": "a", "mac": "00:11:22:33:44:gg"}), ("error", "not a valid MAC address")),
    ("json-bad-mac-mixed-separators", J({"name": "a", "mac": "00:11-22:33:44:55"}), ("error", "not a valid MAC")),
    ("json-bad-mac-7-bytes", J({"name": "a", "mac": "00:11:22:33:44:55:66"}), ("error", "not a valid MAC")),
    ("json-bad-mac-bare-hex", J({"name": "a", "mac": "001122334455"}), ("error", "not a valid MAC")),
    ("json-mac-number", J({"name": "a", "mac": 5}), ("error", "mac must be a string")),
    ("json-bad-guid", J({"name": "a", "infiniband-guid": "xx"}), ("error", "not a valid InfiniBand GUID")),
    ("json-bad-default-route", J({"name": "a", "default-route": ["1.2.3"]}), ("error", "default-route")),
    ("json-empty-default-route-entry", J({"name": "a", "default-route": [""]}), ("error", "default-route")),
    ("json-null-default-route-entry", J({"name": "a", "default-route": [None]}), ("error", "default-route")),
    ("json-default-route-not-list", J({"name": "a", "default-route": "1.2.3.4"}), ("error", "default-route must be a list")),
    ("json-default-route-cidr", J({"name": "a", "default-route": ["1.2.3.4/24"]}), ("error", "default-route")),
    ("json-cni-args-not-object", J({"name": "a", "cni-args": [1]}), ("error", "cni-args must be a JSON object")),
    ("json-cni-args-huge-number", '[{"name": "a", "cni-args": {"x": 1e400}}]', ("error", "out of range")),
    ("json-port-bad", J({"name": "a", "portMappings": [{"hostPort": 0, "containerPort": 80}]}), ("error", "hostPort")),
    ("json-port-float", J({"name": "a", "portMappings": [{"hostPort": 8.5, "containerPort": 80}]}), ("error", "hostPort")),
    ("json-port-protocol", J({"name": "a", "portMappings": [{"hostPort": 1, "containerPort": 2, "protocol": "icmp"}]}),
     ("error", "protocol")),
    ("json-port-entry-null", J({"name": "a", "portMappings": [None]}), ("error", "portMappings entries must be objects")),
    ("json-bandwidth-negative", J({"name": "a", "bandwidth": {"ingressRate": -1}}), ("error", "ingressRate")),
    ("json-bandwidth-bool", J({"name": "a", "bandwidth": {"egressRate": True}}), ("error", "egressRate")),
    ("json-deviceid-path", J({"name": "a", "deviceID": "../../x"}), ("error", "deviceID")),
    ("json-too-many", J(*[{"name": "n"}] * 65), ("error", "more than 64 networks")),
]


@pytest.mark.parametrize("value,expected", [r[1:] for r in NETWORKS_TABLE], ids=[r[0] for r in NETWORKS_TABLE])
def test_parse_networks_table(value, expected):
    if isinstance(expected, tuple) and expected[0] == "error":
        with pytest.raises(AnnotationError) as e:
            parse_networks(value, POD_NS)
        msg = str(e.value)
        assert msg.startswith("failed to parse k8s.v1.cni.cncf.io/networks: "), msg
        assert expected[1] in msg, msg
    else:
        assert _triples(parse_networks(value, POD_NS)) == expected


# Full parses of the JSON form: the element as to_dict() gives it back (Multus field names).
FULL_TABLE = [
    ("every-field",
     {"name": "sriov-a", "namespace": "o", "interface": "vf1", "ips": ["10.1.1.5/24", "fd00::5"],
      "mac": "02-AB-cd-00-00-01", "infiniband-guid": "0011.2233.4455.6677", "deviceID": "0000:03:00.1",
      "portMappings": [{"hostPort": 8080, "containerPort": 80, "protocol": "TCP", "hostIP": "1.2.3.4"}],
      "bandwidth": {"ingressRate": 1000, "egressBurst": 5}, "cni-args": {"vlan": 10, "x": [1, {"y": None}]},
      "default-route": ["::ffff:10.1.1.1", "FD00::1"]},
     {"name": "sriov-a", "namespace": "o", "interface": "vf1", "ips": ["10.1.1.5/24", "fd00::5"],
      "mac": "02:ab:cd:00:00:01", "infiniband-guid": "00:11:22:33:44:55:66:77", "deviceID": "0000:03:00.1",
      "portMappings": [{"hostPort": 8080, "containerPort": 80, "protocol": "TCP", "hostIP": "1.2.3.4"}],
      "bandwidth": {"ingressRate": 1000, "ingressBurst": 0, "egressRate": 0, "egressBurst": 5},
      "cni-args": {"vlan": 10, "x": [1, {"y": None}]}, "default-route": ["10.1.1.1", "fd00::1"]}),
    ("nulls-are-absent",
     {"name": "a", "mac": None, "ips": None, "cni-args": None, "default-route": None, "portMappings": None,
      "bandwidth": None, "deviceID": None},
     {"name": "a", "namespace": POD_NS}),
    ("empty-default-route-is-kept", {"name": "a", "default-route": []},
     {"name": "a", "namespace": POD_NS, "default-route": []}),
    ("empty-port-mappings-is-kept", {"name": "a", "portMappings": []},
     {"name": "a", "namespace": POD_NS, "portMappings": []}),
    ("dotted-mac", {"name": "a", "mac": "0011.2233.44AA"}, {"name": "a", "namespace": POD_NS, "mac": "00:11:22:33:44:aa"}),
    ("20-byte-mac", {"name": "a", "mac": "-".join(["0a"] * 20)},
     {"name": "a", "namespace": POD_NS, "mac": ":".join(["0a"] * 20)}),
]


@pytest.mark.parametrize("element,expected", [r[1:] for r in FULL_TABLE], ids=[r[0] for r in FULL_TABLE])
def test_parse_networks_full(element, expected):
    (sel,) = parse_networks(json.dumps([element]), POD_NS)
    assert sel.to_dict() == expected
    hash(sel)  # frozen all the way down
    assert parse_networks(json.dumps([sel.to_dict()]), "elsewhere") == [sel]


def test_json_details():
    (sel,) = parse_networks('[{"name": "a", "cni-args": {"k": [1, {"n": 2}]}, "junk": 1, "Gateway": 2}]', POD_NS)
    assert sel.ignored_keys == ("junk", "Gateway")
    assert isinstance(sel.cni_args, JSONObject) and sel.cni_args["k"][1]["n"] == 2
    with pytest.raises(TypeError):
        sel.cni_args["k"] = 1  # read-only
    assert sel.cni_args.thaw() == {"k": [1, {"n": 2}]}
    assert sel.key == "pod-ns/a"
    # Go's decoder turns a lone surrogate into U+FFFD
    (sel,) = parse_networks('[{"name": "a", "cni-args": {"s": "\\ud800x"}}]', POD_NS)
    assert sel.cni_args["s"] == "\ufffdx"


# id, annotation, error substring or None
GATEWAY_TABLE = [
    ("one-v4", J({"name": "a", "default-route": ["10.0.0.1"]}), None),
    ("v4-and-v6-on-two", J({"name": "a", "default-route": ["10.0.0.1"]}, {"name": "b", "default-route": ["fd00::1"]}), None),
    ("v4-and-v6-on-one", J({"name": "a", "default-route": ["10.0.0.1", "fd00::1"]}), None),
    ("empty-list", J({"name": "a", "default-route": []}, {"name": "b", "default-route": ["10.0.0.1"]}), None),
    ("two-v4-on-two", J({"name": "a", "default-route": ["10.0.0.1"]}, {"name": "b", "default-route": ["10.1.0.1"]}),
     "more than one IPv4 gateway"),
    ("two-v4-on-one", J({"name": "a", "default-route": ["10.0.0.1", "10.0.0.2"]}), "more than one IPv4 gateway"),
    ("v4-and-mapped-v4", J({"name": "a", "default-route": ["10.0.0.1"]}, {"name": "b", "default-route": ["::ffff:10.1.0.1"]}),
     "more than one IPv4 gateway"),
    ("two-v6", J({"name": "a", "default-route": ["fd00::1"]}, {"name": "b", "default-route": ["fd01::1"]}),
     "more than one IPv6 gateway"),
]


@pytest.mark.parametrize("value,error", [r[1:] for r in GATEWAY_TABLE], ids=[r[0] for r in GATEWAY_TABLE])
def test_check_gateways(value, error):
    sels = parse_networks(value, POD_NS)
    if error is None:
        check_gateways(sels)
        check_gateways([None, *sels])
    else:
        with pytest.raises(AnnotationError) as e:
            check_gateways(sels)
        assert "ECMP for default-route is not supported" in str(e.value) and error in str(e.value)
        assert str(e.value).startswith("failed to parse k8s.v1.cni.cncf.io/networks: default-route: ")


def test_gateway_filters():
    plain, v4, empty = parse_networks(J({"name": "p"}, {"name": "g", "default-route": ["10.0.0.1"]},
                                        {"name": "e", "default-route": []}), POD_NS)
    # no default-route anywhere: nothing removed (Multus skips CheckGatewayConfig)
    assert gateway_filters([None, plain]) == [(False, False), (False, False)]
    # one claims IPv4: everyone else loses both default routes, it keeps its IPv4 one
    assert gateway_filters([None, plain, v4]) == [(True, True), (True, True), (False, True)]
    # "default-route": [] strips them everywhere, itself included
    assert gateway_filters([None, empty]) == [(True, True), (True, True)]
    with pytest.raises(AnnotationError, match="ECMP"):
        gateway_filters([v4, v4])


# id, annotation, first_index, reserved, expected names or error substring
IFNAME_TABLE = [
    ("generated", "a,b,c", 1, (), ["net1", "net2", "net3"]),
    ("explicit-still-counts-position", "a@foo,b", 1, (), ["foo", "net2"]),
    ("after-config-default-networks", "a,b", 3, (), ["net3", "net4"]),
    ("explicit-clashes-with-generated", "a@net2,b", 1, (), 'interface name "net2" is already used by "pod-ns/a"'),
    ("explicit-clashes-with-default-network", "a@eth0", 1, ("eth0",), "already used by the default network"),
    ("loopback", "a@lo", 1, (), "loopback"),
    ("same-network-twice", "a,a", 1, ("eth0",), ["net1", "net2"]),
]


@pytest.mark.parametrize("value,first,reserved,expected", [r[1:] for r in IFNAME_TABLE], ids=[r[0] for r in IFNAME_TABLE])
def test_assign_interfaces(value, first, reserved, expected):
    sels = parse_networks(value, POD_NS)
    if isinstance(expected, str):
        with pytest.raises(AnnotationError, match=expected.replace("(", r"\(")):
            assign_interfaces(sels, first, reserved=reserved)
    else:
        assert assign_interfaces(sels, first, reserved=reserved) == expected


def test_assign_interfaces_with_placeholders():
    """Placeholders (anything with .interface, or None) stand for the config's defaultNetworks."""
    class Placeholder:
        interface = None
    sels = parse_networks("a,b@net1", POD_NS)
    assert assign_interfaces([Placeholder(), None, *sels[:1]]) == ["net1", "net2", "net3"]
    with pytest.raises(AnnotationError, match='"net1" is already used by the network at position 1'):
        assign_interfaces([Placeholder(), *sels])


# id, annotation, expected (namespace, name, interface) or error substring
DEFAULT_NET_TABLE = [
    ("name", "cluster-net", ("kube-system", "cluster-net", None)),
    ("namespace", "other/cluster-net", ("other", "cluster-net", None)),
    ("ifname-kept", "cluster-net@ens5", ("kube-system", "cluster-net", "ens5")),
    ("json", J({"name": "cluster-net", "cni-args": {"a": 1}}), ("kube-system", "cluster-net", None)),
    ("two", "a,b", "more than one default network is specified"),
    ("two-json", J({"name": "a"}, {"name": "b"}), "more than one default network"),
    ("empty", "", "empty value"),
    ("empty-json-list", "[]", "no network given"),
    ("bad-name", "Bad", "network name"),
]


@pytest.mark.parametrize("value,expected", [r[1:] for r in DEFAULT_NET_TABLE], ids=[r[0] for r in DEFAULT_NET_TABLE])
def test_parse_default_network(value, expected):
    if isinstance(expected, str):
        with pytest.raises(AnnotationError) as e:
            parse_default_network(value, "kube-system")
        assert str(e.value).startswith("failed to parse v1.multus-cni.io/default-network: ")
        assert expected in str(e.value)
    else:
        s = parse_default_network(value, "kube-system")
        assert (s.namespace, s.name, s.interface) == expected


NETS = ["pod-ns/net-a", "other/net-b"]
# id, annotation, expected dict or error substring
OVERRIDE_TABLE = [
    ("plain", "100", {"*": 100}),
    ("zero", "0", {"*": 0}),
    ("spaces", " 7\n", {"*": 7}),
    ("by-name", '{"net-a": 10}', {"net-a": 10}),
    ("by-namespace-name", '{"other/net-b": 20, "net-a": 0}', {"other/net-b": 20, "net-a": 0}),
    ("empty-object", "{}", {}),
    ("negative", "-1", "must not be negative"),
    ("float", "1.5", "must be a non-negative integer"),
    ("exponent", "1e3", "must be a non-negative integer"),
    ("plus", "+5", "must be a non-negative integer"),
    ("hex", "0x10", "must be a non-negative integer"),
    ("leading-zero", "007", "leading zeros"),
    ("arabic-digits", "\u0661\u0662", "must be a non-negative integer"),
    ("word", "abc", "must be a non-negative integer"),
    ("bool", "true", "must be a non-negative integer"),
    ("json-string", '"5"', "must be a non-negative integer"),
    ("json-list", "[5]", "must be a non-negative integer"),
    ("empty", "", "empty value"),
    ("huge", "9" * 20, "out of range"),
    ("5000-digits", "9" * 5000, "out of range"),
    ("5000-digit-json-value", '{"net-a": ' + "9" * 5000 + "}", "invalid JSON"),
    ("unknown-network", '{"net-x": 1}', 'not one of this pod\'s networks'),
    ("wrong-namespace", '{"pod-ns/net-b": 1}', "not one of this pod's networks"),
    ("negative-value", '{"net-a": -1}', "must not be negative"),
    ("float-value", '{"net-a": 1.0}', "not JSON number"),
    ("bool-value", '{"net-a": true}', "not JSON boolean"),
    ("string-value", '{"net-a": "5"}', "not JSON string"),
    ("null-value", '{"net-a": null}', "not JSON null"),
    ("duplicate-key", '{"net-a": 1, "net-a": 2}', "network given twice"),
    ("broken-json", '{"net-a": 1', "invalid JSON"),
    ("nan", '{"net-a": NaN}', "invalid JSON"),
]


@pytest.mark.parametrize("value,expected", [r[1:] for r in OVERRIDE_TABLE], ids=[r[0] for r in OVERRIDE_TABLE])
def test_parse_override(value, expected):
    if isinstance(expected, str):
        with pytest.raises(AnnotationError) as e:
            parse_override(value, NETS, "networks-sriov-txrate")
        assert str(e.value).startswith("failed to parse networks-sriov-txrate: "), str(e.value)
        assert expected in str(e.value)
    else:
        assert parse_override(value, NETS, "networks-sriov-txrate") == expected


def test_override_lookup_and_selection_names():
    a, b = parse_networks("net-a,other/net-b", POD_NS)
    ov = parse_override('{"net-a": 1, "other/net-b": 2}', [a, b], "networks-sriov-vlan")
    assert (override_for(ov, a), override_for(ov, b)) == (1, 2)
    ov = parse_override('{"pod-ns/net-a": 3, "net-a": 4}', [a, b], "networks-sriov-vlan")
    assert override_for(ov, a) == 3 and override_for(ov, b) is None  # most specific wins
    assert override_for(parse_override("5", [a, b]), b) == 5
    with pytest.raises(AnnotationError, match="networks-sriov-vlan"):
        parse_override('{"net-c": 1}', [a, b], "networks-sriov-vlan")


# ---------------------------------------------------------------------------------------------
# Properties

json_scalars = (st.none() | st.booleans() | st.integers(-2**64, 2**64)
                | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=12))
json_values = st.recursive(
    json_scalars,
    lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=8), c, max_size=4),
    max_leaves=15)
FIELD_NAMES = ["name", "namespace", "ips", "mac", "infiniband-guid", "interface", "interfaceRequest",
               "portMappings", "bandwidth", "deviceID", "cni-args", "default-route", "NAME", "Interface"]
field_values = (json_values | st.sampled_from(["a", "net-a", "eth1", "10.0.0.1", "10.0.0.0/8", "fd00::1",
                                               "00:11:22:33:44:55", "", "A", "x" * 20])
                | st.lists(st.sampled_from(["10.0.0.1", "fd00::1/64", "bad", ""]), max_size=3)
                | st.just([{"hostPort": 80, "containerPort": 8080}]) | st.just({"ingressRate": 5}))
elements = st.dictionaries(st.sampled_from(FIELD_NAMES) | st.text(max_size=6), field_values, max_size=6)
annotation_json = st.lists(elements | json_values, max_size=4) | json_values


def _only_annotation_errors(fn, *args):
    try:
        fn(*args)
    except AnnotationError:
        pass


@SETTINGS
@given(st.text(max_size=300))
def test_any_text_raises_only_annotation_error(text):
    _only_annotation_errors(parse_networks, text, POD_NS)
    _only_annotation_errors(parse_default_network, text, "kube-system")
    _only_annotation_errors(parse_override, text, NETS, "networks-sriov-vlan")


@SETTINGS
@given(st.text(alphabet=st.sampled_from(list("ab-/@, \t.Z_0[]{}\":")), max_size=40))
def test_annotation_alphabet_raises_only_annotation_error(text):
    for s in (text, "net-a," + text):
        _only_annotation_errors(parse_networks, s, POD_NS)


@SETTINGS
@given(annotation_json)
def test_any_json_raises_only_annotation_error(doc):
    text = json.dumps(doc)
    try:
        sels = parse_networks(text, POD_NS)
    except AnnotationError:
        return
    for s in sels:  # whatever parsed is valid and stable
        assert parse_networks(json.dumps([s.to_dict()]), "x") == [s]
        hash(s)
    _only_annotation_errors(check_gateways, sels)
    _only_annotation_errors(assign_interfaces, sels)
    _only_annotation_errors(parse_override, text, NETS, "networks-sriov-vlan")


label = st.from_regex(r"[a-z0-9]([-a-z0-9]{0,14}[a-z0-9])?", fullmatch=True)
subdomain = st.from_regex(r"[a-z0-9]([-a-z0-9]{0,8}[a-z0-9])?(\.[a-z0-9]([-a-z0-9]{0,4}[a-z0-9])?){0,2}", fullmatch=True)
ifname = st.from_regex(r"[A-Za-z0-9_.@#+-]{1,15}", fullmatch=True).filter(lambda s: s not in (".", ".."))
ip = st.ip_addresses()
v6_not_mapped = st.ip_addresses(v=6).filter(lambda a: a.ipv4_mapped is None)
cidr = st.builds(lambda a, p: f"{a}/{p % (a.max_prefixlen + 1)}", ip, st.integers(0, 200))


def _hw(n):
    return st.binary(min_size=n, max_size=n).map(lambda b: ":".join(f"{x:02x}" for x in b))


cni_scalars = (st.none() | st.booleans() | st.integers(-2**70, 2**70)
               | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=10))
cni_args = st.dictionaries(st.text(max_size=8), st.recursive(
    cni_scalars, lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=5), c, max_size=3),
    max_leaves=10), max_size=4).map(JSONObject)
port_mapping = st.builds(
    lambda h, c, proto, hip: JSONObject({"hostPort": h, "containerPort": c,
                                         **({"protocol": proto} if proto else {}), **({"hostIP": hip} if hip else {})}),
    st.integers(1, 65535), st.integers(1, 65535), st.sampled_from(["", "tcp", "UDP", "sctp"]), st.just("") | ip.map(str))
bandwidth = st.fixed_dictionaries({k: st.integers(0, 2**63 - 1) for k in
                                   ("ingressRate", "ingressBurst", "egressRate", "egressBurst")}).map(JSONObject)
selections = st.builds(
    Selection,
    name=subdomain, namespace=label,
    interface=st.none() | ifname,
    ips=st.lists(ip.map(str) | cidr, max_size=3).map(tuple),
    mac=st.none() | _hw(6) | _hw(8) | _hw(20),
    default_route=st.lists(st.ip_addresses(v=4).map(str) | v6_not_mapped.map(str), max_size=2).map(tuple),
    default_route_set=st.booleans(),
    cni_args=st.none() | cni_args,
    port_mappings=st.none() | st.lists(port_mapping, max_size=2).map(tuple),
    bandwidth=st.none() | bandwidth,
    device_id=st.none() | st.from_regex(r"[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]", fullmatch=True),
    infiniband_guid=st.none() | _hw(8),
)


@settings(SETTINGS, max_examples=80)
@given(st.lists(selections, max_size=3))
def test_round_trip_json(sels):
    ifaces = [s.interface for s in sels if s.interface]
    assume(len(ifaces) == len(set(ifaces)))
    text = json.dumps([s.to_dict() for s in sels])
    back = parse_networks(text, "not-used")
    # default_route_set is only implied by a non-empty default_route: compare what it means
    assert [(b, b.has_default_route) for b in back] == [
        (Selection(**{**{f: getattr(s, f) for f in Selection.__slots__}, "default_route_set": b.default_route_set}),
         s.has_default_route) for s, b in zip(sels, back)]
    for s in back:
        hash(s)
        json.dumps([s.cni_args, s.port_mappings, s.bandwidth])  # usable as runtimeConfig as they are


spaces = st.text(alphabet=" \t\u00a0", max_size=2)


@settings(SETTINGS, max_examples=100)
@given(st.lists(st.tuples(st.none() | label, label, st.none() | ifname.filter(lambda s: "/" not in s and "@" not in s)),
                min_size=1, max_size=5), spaces, spaces)
def test_round_trip_comma_form(items, s1, s2):
    ifaces = [i for _, _, i in items if i]
    assume(len(ifaces) == len(set(ifaces)))
    text = ",".join(f"{s1}{ns + s2 + '/' + s1 if ns else ''}{name}{s2}{'@' + s1 + i if i else ''}{s2}"
                    for ns, name, i in items)
    assume(not any(c in text for c in '[{"'))
    got = parse_networks(text, POD_NS)
    assert _triples(got) == [(ns or POD_NS, name, i) for ns, name, i in items]


def test_selection_is_frozen_and_hashable():
    s = Selection(name="a", namespace="b", cni_args=JSONObject({"x": [1, {"y": 2}]}), default_route=("10.0.0.1",))
    with pytest.raises(AttributeError):   # (what dataclasses.FrozenInstanceError is)
        s.name = "c"
    assert hash(s) == hash(Selection(name="a", namespace="b", cni_args=JSONObject({"x": [1, {"y": 2}]}),
                                     default_route=("10.0.0.1",)))
    assert ipaddress.ip_address(s.default_route[0]).version == 4
    assert s.has_default_route and not Selection(name="a", namespace="b").has_default_route
    # JSONObject: a read-only dict that json, dict() and ** accept as they are
    args = s.cni_args
    assert json.loads(json.dumps(args)) == {"x": [1, {"y": 2}]} and dict(args) == {"x": (1, {"y": 2})}
    for mutate in (lambda: args.update(z=1), lambda: args.pop("x"), lambda: args.setdefault("z", 1),
                   lambda: args.clear(), lambda: args.__delitem__("x"), lambda: args["x"][1].update(y=3)):
        with pytest.raises(TypeError):
            mutate()
    import copy
    import pickle
    assert copy.deepcopy(args) == args and pickle.loads(pickle.dumps(args)) == args
    assert {"cni": {**args}}["cni"]["x"][0] == 1
