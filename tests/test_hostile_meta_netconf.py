"""Hostile input for the meta plugin and the daemon (issue 7, item 5), family `netconf`:
the netmeta config: random JSON, wrong types for every key of meta/config.py, huge and
deeply nested documents, bad kubeconfig and state-dir files.

The contract every case is held to, the node under attack and the shared strategies are in
tests/hostile.py; the families were one module (test_hostile_meta.py) until issue 14 split them."""
import json
import shutil

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cni import skel
from delegates.sriov.plugin import SRIOVPlugin
from meta.plugin import MetaPlugin
from tests.hostile import (  # noqa: F401 - fixtures
    ANNOTS,
    NETWORKS,
    SETTINGS,
    W,
    deep,
    env_for,
    json_values,
    judge,
    leftovers,
    meta_call,
    node_defaults_untouched,
    report,
    scrub,
    texts,
    world,
)

META_KEYS = ["kubeconfig", "delegates", "clusterNetwork", "defaultNetworks", "cniDir", "confDir", "binDir",
             "namespaceIsolation", "globalNamespaces", "systemNamespaces", "readinessindicatorfile", "logLevel",
             "logFile", "logToStderr", "logOptions", "multusNamespace", "retryDeleteOnError", "auxiliaryCNIChainName",
             "cniConf", "socketPath", "mode", "nadDir", "statusDir", "delegateTimeout", "nodeName",
             "parallelAttachments", "cniVersion",
             "name", "type", "capabilities", "args", "prevResult", "cni.dev/valid-attachments", "x-unknown"]
PATH_KEYS = {"kubeconfig", "cniDir", "confDir", "binDir", "readinessindicatorfile", "logFile", "socketPath",
             "nadDir", "statusDir", "cniConf"}


def path_values(w):
    """Values for path keys: anything but an absolute path outside the test's own tree."""
    root = str(w.root)
    safe = [f"{root}/alt/d", f"{root}/alt", f"{root}/plug/okplug", f"{root}/nads", f"{root}/alt/nope/x", "relative/x", "",
            ".", "..", "~/x"]
    return st.one_of(st.sampled_from(safe), st.none(), st.booleans(), st.integers(), st.lists(texts, max_size=2),
                     texts.filter(lambda s: not s.startswith("/")))


def delegate_confs():
    types = st.sampled_from(["okplug", "okplug", "evil", "../bin/evil", "..", ".", "", "ok plug", "okplug\x00",
                             "a/okplug", "sriov", "fixipam", "nosuchplugin"]) | st.none() | st.integers()
    return st.builds(lambda t, extra: dict({"cniVersion": "1.0.0", "name": "d", "type": t}, **extra), types,
                     st.dictionaries(st.sampled_from(["cniVersion", "name", "plugins", "capabilities", "ipam", "args"]),
                                     json_values, max_size=2))


def _netconf_strategy():
    w = W
    lists_of_delegates = st.lists(delegate_confs(), max_size=2) | json_values

    def value_for(key):
        if key == "logFile":      # one file only: each new path adds a handler for good (see below)
            return st.just(f"{w.root}/logs/meta.log") | json_values.filter(lambda v: not isinstance(v, str))
        if key in ("statusDir", "kubeconfig"):   # a status file outlives DEL (see test_security), a bad
            # kubeconfig file is an internal error (test_a_bad_kubeconfig_file_is_a_config_error)
            return json_values.filter(lambda v: not isinstance(v, str) or not v.startswith("/"))
        if key in PATH_KEYS:
            return path_values(w)
        if key == "delegates":
            return lists_of_delegates
        return json_values
    return st.dictionaries(st.sampled_from(META_KEYS), st.none(), max_size=4).flatmap(
        lambda d: st.fixed_dictionaries({k: value_for(k) for k in d}))


@SETTINGS
@given(over=st.deferred(_netconf_strategy))
def test_netconf_every_key_wrong(world, over):
    conf = dict(world.conf, **over)
    meta_call("netconf", world, conf, {})
    shutil.rmtree(world.root / "alt", ignore_errors=True)
    (world.root / "alt").mkdir()


@pytest.mark.parametrize("name", ["", " x", "a/b", "x\n", "n" * 201, 7, None])
@pytest.mark.parametrize("ptype", ["fixipam", "sriov", "okplug"])
def test_a_delegate_with_an_invalid_network_name_is_refused_before_the_cache(world, name, ptype):
    """Found by test_netconf_every_key_wrong: an inline delegate named "" (or with no name: the
    reference plugins answer "missing network name" to ADD and DEL) passed the config,
    the DEL cache was written, our in-process delegate refused the name (code 7), and so did
    every DEL after: a cache nothing could clear. meta/plan.py refuses such a name up front
    (meta_call's judge: no cache, no leftovers, a clear error)."""
    delegate = {"cniVersion": "1.0.0", "type": ptype, **({} if name is None else {"name": name})}
    code, doc = meta_call("netconf", world, dict(world.conf, delegates=[delegate]), {})
    want = "has no name" if name is None else "invalid network name"
    assert code != 0 and doc["code"] == 7 and want in doc["msg"], doc


CD = "CNIDIR"   # replaced by the test's cache dir: no case may use the node's default one
NETCONF_CORPUS = [
    b"", b"{", b"null", b"[]", b"\"x\"", b"1", b"\xff\xfe{}", b"\x00", b"{\"cniVersion\": \"1.1.0\"}",
    b"{\"cniVersion\": \"1.1.0\", \"name\": \"n\"}", b"[" * 100000, deep(3000).encode(),
    json.dumps({"cniVersion": "1.1.0", "name": "n", "type": "netmeta", "cniDir": CD,
                "delegates": [{"type": "okplug"}] * 5000}).encode(),
    json.dumps({"cniVersion": "1.1.0", "name": "n" * 100000, "type": "netmeta", "cniDir": CD}).encode(),
    b"{\"cniVersion\": \"1.1.0\", \"name\": \"netmeta\", \"name\": \"../x\", \"cniDir\": \"CNIDIR\"}",
    (b"{\"cniVersion\": \"1.1.0\", \"name\": \"netmeta\", \"delegates\": [{\"type\": \"okplug\"}], \"x\": NaN, "
     b"\"cniDir\": \"CNIDIR\"}"),
    b"{\"cniVersion\": \"9.9.9\", \"name\": \"netmeta\", \"delegates\": [{\"type\": \"okplug\"}], \"cniDir\": \"CNIDIR\"}",
    b"{\"cniVersion\": \"1.1.0\", \"name\": \"netmeta\", \"cniDir\": \"CNIDIR\", \"delegates\": [" + deep(500, "{}").encode() + b"]}",  # noqa: E501
    b" " * (4 * 1024 * 1024 + 1),
]


def test_netconf_corpus(world):
    for raw in NETCONF_CORPUS:
        raw = raw.replace(CD.encode(), str(world.cache).encode())
        judge("netconf", world, MetaPlugin(), env_for(world), raw, del_stdin=raw)
    for key in META_KEYS:   # every key, every JSON type
        for v in (None, True, 0, -1, 1e308, "", "x", "/", [], [1], {}, {"a": 1}, deep(50)):
            if key in PATH_KEYS and isinstance(v, str) and v.startswith("/") or key == "logFile" and isinstance(v, str):
                continue
            meta_call("netconf", world, dict(world.conf, **{key: v}), {})


def test_a_bad_kubeconfig_file_is_a_config_error(world):
    """`kubeconfig` naming a missing, empty or invalid file is a config error (code 7) naming
    the key, never an internal error."""
    path = world.root / "alt" / "kubeconfig"
    codes = {}
    for content in (None, b"", b"not: [yaml", b"apiVersion: v1\nkind: Config\n"):
        if content is not None:
            path.write_bytes(content)
        try:
            c = dict(world.conf, kubeconfig=str(path), runtimeConfig={ANNOTS: {NETWORKS: "pl"}})
            code, out = skel.handle(MetaPlugin(), env_for(world), json.dumps(c).encode())
            codes[content] = json.loads(out)["code"] if code else 0
        finally:
            path.unlink(missing_ok=True)
    assert set(codes.values()) <= {7, 140}, codes


@pytest.mark.parametrize("over,where", [
    ({"multusNamespace": None}, "meta/config.py load(): is_dns_label(ns) on a non-string multusNamespace"),
    ({"cniDir": None}, "meta/config.py _path(): an explicit null skips the default and the check, cni_dir=None"),
    ({"delegates": [{"cniVersion": "1.0.0", "name": "c", "plugins": [{"type": "okplug"}, 1]}]},
     ("meta/config.py load() does not check the plugins of an inline conflist (networks._parse_conf does for NADs); "
      "meta/attachments.py Attachment.plugins then fails on dict(1) AFTER the DEL cache was written")),
    ({"delegates": [{"cniVersion": "1.0.0", "name": "c", "plugins": [{}]}]}, "same: a conflist plugin without type"),
    ({"delegates": [{"cniVersion": "1.0.0", "name": "c", "type": "okplug", "capabilities": ["ips"]}],
      "runtimeConfig": {"ips": ["10.9.0.1/24"]}}, "meta/attachments.py _plugin_conf(): caps.get() on a list"),
], ids=["multusNamespace-null", "cniDir-null", "conflist-plugin-not-object", "conflist-plugin-without-type",
        "delegate-capabilities-list"])
def test_netconf_wrong_types_are_config_errors(world, over, where):
    """Wrong JSON types in the netmeta config must be code 7 (invalid config), not 100 (internal
    error), and must never poison the DEL cache: after such an ADD, the runtime's DEL must
    succeed (with a good config) and leave nothing. Found by test_netconf_every_key_wrong."""
    conf = dict(world.conf, **over)
    code, out = skel.handle(MetaPlugin(), env_for(world), json.dumps(conf).encode())
    dcode, dout = skel.handle(MetaPlugin(), env_for(world, "DEL"), json.dumps(world.conf).encode())
    left = leftovers(world)
    scrub(world)
    assert code != 0 and json.loads(out)["code"] == 7, (where, out)
    assert dcode == 0 and left == {}, ("the DEL after it fails: the cache is poisoned", dout, left)


def test_a_state_dir_that_cannot_be_written_is_an_io_error(world):
    """cniDir naming a file (or any path where the DEL cache cannot be written or read): the
    OSError escapes to cni/skel.py handle(), which answers code 100 "internal error in netmeta:
    NotADirectoryError". An I/O failure is the spec's code 5 (IO_FAILURE), with the path. Fix: map
    OSError to CNIError(IO_FAILURE, "failed to <verb> <path>: ...") where state files are written
    and read (cni/files.py), or in skel.handle."""
    conf = dict(world.conf, cniDir=str(world.plug / "okplug"))
    codes = {}
    for command in ("ADD", "DEL"):
        code, out = skel.handle(MetaPlugin(), env_for(world, command), json.dumps(conf).encode())
        codes[command] = json.loads(out)["code"] if code else 0
    scrub(world)
    assert codes == {"ADD": 5, "DEL": 5}, codes


def test_sriov_del_with_an_ipam_without_type_is_not_an_internal_error(world):
    """sriov DEL (and GC) with `"ipam": {}`: delegates/sriov/plugin.py delete()/gc() index
    req.config["ipam"]["type"] -> KeyError -> code 100. ADD refuses that config (code 7), so the
    runtime's DEL after that failed ADD always gets an internal error. Fix: .get("type") and
    skip (or code 7) when it is missing. Since issue 17 ADD accepts `"ipam": {}` as no IPAM (the
    SR-IOV operator's template emits it; sriov-cni v2.8 cmdAdd runs IPAM only when IPAM.Type != "")."""
    conf = dict({"cniVersion": "1.1.0", "name": "srh", "type": "sriov", "ipam": {}}, **world.safe_sriov)
    env = env_for(world, CNI_IFNAME="net1", CNI_ARGS="")
    add, _ = skel.handle(SRIOVPlugin(), env, json.dumps(conf).encode())
    dcode, dout = skel.handle(SRIOVPlugin(), dict(env, CNI_COMMAND="DEL"), json.dumps(conf).encode())
    gcode, gout = skel.handle(SRIOVPlugin(), dict(env, CNI_COMMAND="GC"),
                              json.dumps(dict(conf, **{"cni.dev/valid-attachments": []})).encode())
    assert add == 0
    assert dcode == 0 or json.loads(dout)["code"] == 7, dout
    assert gcode == 0 or json.loads(gout)["code"] == 7, gout
