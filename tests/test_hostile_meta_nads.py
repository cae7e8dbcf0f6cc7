"""Hostile input for the meta plugin and the daemon (issue 7, item 5), family `nads`:
NAD files of a nadDir: invalid JSON/YAML, wrong types, `type` with `/` or `..`, conflists
with no plugins, hostile sriov keys.

The contract every case is held to, the node under attack and the shared strategies are in
tests/hostile.py; the families were one module (test_hostile_meta.py) until issue 14 split them."""
import json
import os

from hypothesis import given
from hypothesis import strategies as st

from cni import skel
from meta.plugin import MetaPlugin
from tests.hostile import (  # noqa: F401 - fixtures
    ANNOTS,
    NETWORKS,
    POD_NS,
    SETTINGS,
    TYPES,
    W,
    deep,
    env_for,
    json_values,
    meta_call,
    node_defaults_untouched,
    pin,
    report,
    texts,
    world,
    write_nad,
)


def _nad_strategy():
    world = W
    plugin = st.fixed_dictionaries({"type": st.sampled_from(TYPES)}, optional={
        "cniVersion": st.sampled_from(["1.0.0", "0.3.1", "9.9.9", "", None, 1]),
        "ipam": st.one_of(json_values, st.fixed_dictionaries({"type": st.sampled_from(TYPES)})),
        "capabilities": st.dictionaries(st.sampled_from(["ips", "mac", "x"]), json_values, max_size=2),
        "podOverrides": json_values | st.fixed_dictionaries({}, optional={"vlan": json_values, "maxTxRate": json_values}),
        "args": json_values, "runtimeConfig": json_values, "name": json_values, "disableCheck": json_values,
        "vlan": json_values, "mtu": json_values, "pfOnly": json_values})

    def safe(p):
        return pin(world, p)
    conf = st.one_of(plugin.map(safe),
                     st.fixed_dictionaries({"cniVersion": st.just("1.0.0"),
                                            "plugins": st.one_of(st.lists(plugin.map(safe), max_size=3), json_values)}))
    config_field = st.one_of(conf.map(json.dumps), conf, json_values, texts)
    spec = st.one_of(st.fixed_dictionaries({"config": config_field}), json_values)
    obj = st.one_of(st.fixed_dictionaries({"metadata": st.one_of(st.just({"name": "h"}), json_values), "spec": spec}),
                    json_values)
    return st.one_of(obj.map(lambda o: (json.dumps(o).encode(), ".json")),
                     st.binary(max_size=200).map(lambda b: (b, ".json")),
                     st.binary(max_size=200).map(lambda b: (b, ".yaml")),
                     st.sampled_from([(b"{", ".json"), (b"spec: [", ".yaml"), (b"- a\n- b", ".yaml"),
                                      (b"!!python/object/apply:os.system ['touch /tmp/nm-yaml-pwned']", ".yaml"),
                                      (b"spec: {config: !!binary aGVsbG8=}", ".yaml"),
                                      (b"\xff\xfe\x00", ".yaml")]))


def unparsable(raw: bytes, ext: str) -> bool:
    """The file does not parse, or parses into a NAD whose metadata/spec/annotations are not
    objects (see test_a_nad_file_that_does_not_parse_is_a_config_error)."""
    try:
        if ext == ".json":
            obj = json.loads(raw)
        else:
            import yaml
            obj = yaml.safe_load(raw)
    except Exception:   # noqa: BLE001 - any parse failure
        return True
    if not isinstance(obj, dict):
        return False    # refused cleanly (code 7) by DirNADs
    md = obj.get("metadata", {})
    if (not isinstance(md, dict) or not isinstance(md.get("annotations") or {}, dict)
            or not isinstance(obj.get("spec") or {}, dict)):
        return True
    conf = (obj.get("spec") or {}).get("config")
    if isinstance(conf, str):
        try:
            json.loads(conf)
        except RecursionError:
            return True
        except ValueError:
            pass
    return False


def test_a_nad_file_that_does_not_parse_is_a_config_error(world):
    """meta/networks.py DirNADs.get_nad calls json.loads / yaml.safe_load on a nadDir file
    unguarded: a truncated JSON file, a YAML syntax error or bytes that are not UTF-8 give code
    100 (JSONDecodeError, ScannerError, UnicodeDecodeError) instead of code 7 naming the file; and
    a NAD whose metadata, metadata.annotations or spec is not an object crashes DirNADs
    (setdefault(...).update) or from_nad (.get) with AttributeError, code 100; a spec.config
    nested deeper than the JSON decoder's recursion limit escapes networks._parse_conf, which
    catches ValueError but not RecursionError. Fix: catch (ValueError, RecursionError,
    yaml.YAMLError) in get_nad / _parse_conf and check those three are objects, raising
    CNIError(INVALID_CONFIG, f"invalid NetworkAttachmentDefinition file {p}", ...)."""
    codes = {}
    for raw, ext in ((b"{", ".json"), (b"spec: [", ".yaml"), (b"\xff\xfe", ".json"),
                     (b'{"metadata": {"name": "h"}, "spec": 1}', ".json"), (b'{"metadata": 5}', ".json"),
                     (b'{"metadata": {"annotations": "x"}, "spec": {"config": "{}"}}', ".json"),
                     (json.dumps({"spec": {"config": deep(100000)}}).encode(), ".json")):
        write_nad(world, POD_NS, "h", raw, ext)
        c = dict(world.conf, runtimeConfig={ANNOTS: {NETWORKS: "h"}})
        _, out = skel.handle(MetaPlugin(), env_for(world), json.dumps(c).encode())
        codes[(raw, ext)] = json.loads(out)["code"]
    assert set(codes.values()) == {7}, codes


def nad_config(raw: bytes):
    """The CNI config inside a NAD file's bytes, when there is one (for known_bug)."""
    try:
        obj = json.loads(raw)
        conf = obj["spec"]["config"]
        return json.loads(conf) if isinstance(conf, str) else conf
    except Exception:   # noqa: BLE001 - not a NAD with a config: no known bug applies
        return None


@SETTINGS
@given(data=st.data())
def test_nad_files(world, data):
    raw, ext = data.draw(st.deferred(_nad_strategy))
    write_nad(world, POD_NS, "h", raw, ext)
    ips = data.draw(st.sampled_from([None, ["10.62.0.30/24"]]))
    meta_call("nad", world, world.conf, {NETWORKS: json.dumps([dict({"name": "h"}, **({"ips": ips} if ips else {}))])},
              ctx={"nad": nad_config(raw), "nad_file_unparsable": unparsable(raw, ext)})
    assert not os.path.exists("/tmp/nm-yaml-pwned")


NAD_CORPUS = [
    {"metadata": {"name": "h"}, "spec": {"config": "{"}},
    {"metadata": {"name": "h"}, "spec": {"config": json.dumps({"cniVersion": "1.0.0", "plugins": []})}},
    {"metadata": {"name": "h"}, "spec": {"config": json.dumps({"cniVersion": "1.0.0", "plugins": "okplug"})}},
    {"metadata": {"name": "h"}, "spec": {"config": json.dumps({"cniVersion": "1.0.0", "plugins": [{"type": "okplug"}, None]})}},
    {"metadata": {"name": "h"}, "spec": {"config": json.dumps({"cniVersion": "1.0.0", "plugins": [{"type": "../bin/evil"}]})}},
    {"metadata": {"name": "h"}, "spec": {"config": json.dumps({"cniVersion": "1.0.0", "type": "okplug",
                                                              "ipam": {"type": "../bin/evil"}})}},
    {"metadata": {"name": "h"}, "spec": {"config": json.dumps({"cniVersion": "1.0.0", "type": "sriov", "master": "x",
                                                              "ipam": {"type": "/bin/sh"}})}},
    {"metadata": {"name": "h"}, "spec": {"config": json.dumps({"cniVersion": "1.0.0", "type": "okplug"}) + " " * 100000}},
    {"metadata": {"name": "h"}, "spec": {"config": deep(100000)}},
    {"metadata": {"name": "h"}, "spec": {"config": ""}},
    {"metadata": {"name": "h"}, "spec": {}}, {"metadata": {"name": "h"}}, {"spec": None}, {"metadata": None, "spec": 5},
    {"metadata": {"name": "h", "annotations": {"k8s.v1.cni.cncf.io/resourceName": ["x"]}},
     "spec": {"config": json.dumps({"cniVersion": "1.0.0", "type": "okplug"})}},
    {"metadata": {"name": "h", "annotations": "x"}, "spec": {"config": json.dumps({"cniVersion": "1.0.0", "type": "okplug"})}},
    [], "x", None,
]


def pin_nad(w, obj):
    try:
        conf = json.loads(obj["spec"]["config"])
    except Exception:   # noqa: BLE001 - no parseable config: nothing to pin
        return obj
    return dict(obj, spec=dict(obj["spec"], config=json.dumps(pin(w, conf))))


def test_nad_corpus(world):
    for obj in NAD_CORPUS:
        obj = pin_nad(world, obj)
        write_nad(world, POD_NS, "h", obj)
        raw = json.dumps(obj).encode()
        meta_call("nad", world, world.conf, {NETWORKS: "h"},
                  ctx={"nad": nad_config(raw), "nad_file_unparsable": unparsable(raw, ".json")})
    for raw, ext in [(b"", ".json"), (b"", ".yaml"), (b"\x00" * 100, ".yaml"), (b"a: &a [*a]", ".yaml"),
                     (b"metadata: {name: h}\nspec: {config: '{\"cniVersion\":\"1.0.0\",\"type\":\"okplug\"}'}", ".yaml")]:
        write_nad(world, POD_NS, "h", raw, ext)
        meta_call("nad", world, world.conf, {NETWORKS: "h"}, ctx={"nad_file_unparsable": unparsable(raw, ext)})
    assert not world.marker.exists()


def test_nad_capabilities_of_the_wrong_type_are_a_config_error(world):
    """A NAD whose `capabilities` is not an object crashes the planner: meta/plan.py
    _capabilities() / _selected() call caps.get() on it (AttributeError -> code 100, internal
    error). Input: spec.config {"cniVersion":"1.0.0","type":"okplug","capabilities":["ips"]} and a
    pod asking that network for "ips". Fix: networks._parse_conf refuses a non-object
    `capabilities` (code 7), like every other malformed field."""
    write_nad(world, POD_NS, "h", {"metadata": {"name": "h"}, "spec": {"config": json.dumps(
        {"cniVersion": "1.0.0", "type": "okplug", "capabilities": ["ips"]})}})
    c = dict(world.conf, runtimeConfig={ANNOTS: {NETWORKS: json.dumps([{"name": "h", "ips": ["10.62.0.9/24"]}])}})
    code, out = skel.handle(MetaPlugin(), env_for(world), json.dumps(c).encode())
    skel.handle(MetaPlugin(), env_for(world, "DEL"), json.dumps(c).encode())
    assert code != 0 and json.loads(out)["code"] == 7, out


def test_nad_yaml_alias_bomb_is_refused(world):
    lines = ["metadata: {name: h}", "spec:", "  config:", "    cniVersion: 1.0.0", "    type: okplug",
             "    a0: &a0 [x, x]"] + [f"    a{i}: &a{i} [*a{i - 1}, *a{i - 1}]" for i in range(1, 13)]
    write_nad(world, POD_NS, "h", ("\n".join(lines) + "\n").encode(), ".yaml")
    c = dict(world.conf, runtimeConfig={ANNOTS: {NETWORKS: "h"}})
    code, out = skel.handle(MetaPlugin(), env_for(world), json.dumps(c).encode())
    skel.handle(MetaPlugin(), env_for(world, "DEL"), json.dumps(c).encode())
    assert code != 0 and json.loads(out)["code"] == 7, out
