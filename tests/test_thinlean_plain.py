"""Issue 19 (thin netmeta -> bridge): the meta modules on the exec'd plugin call's path (and
the annotation parser's Selection) use plain classes instead of dataclasses, str methods
instead of `re`, and a JSON copy instead of `copy`. Each replacement is pinned here against
what it replaced (the old regexes, copy.deepcopy, dataclasses' semantics), and a real thin
ADD + DEL shows which meta module imports what."""
import copy
import dataclasses
import json
import os
import pickle
import re
import subprocess

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from meta import config, engine, networks, networkstatus, statusfile
from meta.annotations.selection import JSONObject, Selection
from meta.attachments import Attachment, copy_json
from tests.cnirun import CNI_PATH, REPO

# ---- the regexes these replace, as they were ----
OLD_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")              # meta/config.py, .match
OLD_NAD_NS = r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?"                          # meta/networks.py, fullmatch
OLD_NAD_NAME = r"[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?"
OLD_UID = re.compile(r"[A-Za-z0-9-]{1,64}")                                  # meta/statusfile.py, fullmatch

# names mostly of the allowed characters, with the ones that matter at the edges
NAMEISH = st.text(alphabet="ab9z0-.\nA_ /é", max_size=12) | \
    st.builds(lambda a, n, b: a + "x" * n + b, st.sampled_from(["", "-", ".", "a", "\n"]),
              st.integers(0, 260), st.sampled_from(["", "-", ".", "b", "\n", "\n\n", "b\n"]))


@given(NAMEISH)
@example("abc\n")        # `$` matches before one trailing newline: accepted before, accepted now
@example("abc\n\n")
@example("\n")
@example("a")
@example("-a")
@example("a-")
@example("")
def test_namespace_label_check_is_the_old_regex(s):
    assert config.is_dns_label(s) == bool(OLD_DNS_LABEL.match(s)), repr(s)


def test_namespace_label_check_keeps_the_trailing_newline_quirk():
    assert config.is_dns_label("kube-system\n") and not config.is_dns_label("kube-system\n\n")
    assert not config.is_dns_label("Kube") and not config.is_dns_label("a.b")


@given(NAMEISH, NAMEISH)
@example("a" * 63, "b" * 253)
@example("a" * 64, "b" * 254)
@example("a\n", "b\n")
@example("a.b", "a.-b")
def test_nad_dir_name_checks_are_the_old_regexes(ns, name):
    assert config.dns_name(ns, config.DNS_LABEL_CHARS, 63) == bool(re.fullmatch(OLD_NAD_NS, ns)), repr(ns)
    assert config.dns_name(name, config.DNS_SUBDOMAIN_CHARS, 253) == bool(re.fullmatch(OLD_NAD_NAME, name)), repr(name)


def test_nad_dir_refuses_what_the_regexes_refused(tmp_path):
    nads = networks.DirNADs(str(tmp_path))
    for ns, name in (("a\n", "n"), ("ns", "n\n"), ("-a", "n"), ("ns", "n."), ("a" * 64, "n"), ("ns", "")):
        with pytest.raises(networks.CNIError) as e:
            nads.get_nad(ns, name)
        assert "must be DNS-1123 names" in e.value.details, (ns, name)
    with pytest.raises(networks.CNIError) as e:   # well-formed: looked for (and not found)
        nads.get_nad("ns", "a.b-c")
    assert "cannot find" in e.value.msg


@given(st.text(alphabet="aZ09-_/.\n", max_size=70) | st.builds(lambda n: "a" * n, st.integers(60, 70)))
@example("")
@example("a" * 64)
@example("a" * 65)
@example("abc\n")
def test_status_file_uid_check_is_the_old_regex(uid):
    want = uid if OLD_UID.fullmatch(uid) else "-"
    assert statusfile.path("/s", {"namespace": "ns", "name": "p", "uid": uid}, "cid") == f"/s/ns/p/{want}_cid.json"


# ---- copy_json is copy.deepcopy for what the DEL cache and delegate confs hold ----
JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=5),
                    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=4), inner, max_size=4)
                    | st.lists(inner, max_size=3).map(tuple), max_leaves=20)


def _containers(v) -> list:
    out = [v] if isinstance(v, (dict, list)) else []
    for x in (v.values() if isinstance(v, dict) else v if isinstance(v, (list, tuple)) else ()):
        out += _containers(x)
    return out


@given(JSON)
def test_copy_json_is_deepcopy(v):
    got, want = copy_json(v), copy.deepcopy(v)
    assert got == want and type(got) is type(want)
    assert json.dumps(got) == json.dumps(want)
    # nothing mutable shared with the original
    assert not {id(c) for c in _containers(got)} & {id(c) for c in _containers(v)}


def test_copy_json_hands_other_objects_to_deepcopy():
    frozen = JSONObject({"a": {"b": [1, 2]}})
    got = copy_json({"args": {"cni": frozen}, "l": [frozen]})
    assert type(got["args"]["cni"]) is JSONObject and got["args"]["cni"] == frozen
    assert got["l"][0] == frozen and type(got["l"][0]) is JSONObject


# ---- network-status (meta/networkstatus.py) is json.dumps(indent=4) without json ----
KEYS = st.text(max_size=4) | st.sampled_from(["name", "ips", "é", "\x00", '"'])
STATUS = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
                      lambda inner: st.lists(inner, max_size=3) | st.lists(inner, max_size=2).map(tuple)
                      | st.dictionaries(KEYS, inner, max_size=3)
                      | st.dictionaries(KEYS, inner, max_size=2).map(JSONObject), max_leaves=15)


@given(st.lists(STATUS, max_size=3))
@example([{"name": "ns/a", "interface": "net1", "ips": ["10.0.0.2"], "mac": "02:00:00:00:00:01", "default": False,
           "dns": {}, "device-info": {"type": "pci", "version": "1.1.0", "pci": {"pci-address": "0000:01:00.2"}}}])
@example([{3: "x", None: [], 2.5: {}, True: 0}])      # keys json converts: json itself writes them
@example([float("nan"), float("inf"), -0.0, 10**30, [], {}, [[]], [{}]])
def test_network_status_is_json_indent_4(entries):
    assert networkstatus.annotation(entries) == json.dumps(entries, indent=4)


# ---- the plain classes keep the dataclasses' behaviour that is used ----
def test_attachment_round_trip_and_fresh_defaults():
    a = Attachment("ns/n", "net1", {"type": "bridge", "x": [1]}, True, {"ips": ["10.0.0.1/24"]}, "K=V",
                   ["10.0.0.1"], ["4"], "r/x", {"cniVersion": "1.0.0"}, True)
    d = a.to_dict()
    assert list(d) == ["network", "ifname", "conf", "default", "runtime_config", "cni_args", "gateways",
                       "drop_default", "resource_name", "result", "serial"]   # the dataclass's field order
    assert d == {"network": "ns/n", "ifname": "net1", "conf": {"type": "bridge", "x": [1]}, "default": True,
                 "runtime_config": {"ips": ["10.0.0.1/24"]}, "cni_args": "K=V", "gateways": ["10.0.0.1"],
                 "drop_default": ["4"], "resource_name": "r/x", "result": {"cniVersion": "1.0.0"}, "serial": True}
    d["conf"]["x"].append(2)
    assert a.conf["x"] == [1]                       # a copy, as dataclasses.asdict made
    b = Attachment.from_dict(dict(a.to_dict(), unknown="ignored"))
    assert b.to_dict() == a.to_dict()
    assert Attachment.from_dict({"network": "n", "ifname": "eth0", "conf": {}}).to_dict() == \
        {"network": "n", "ifname": "eth0", "conf": {}, "default": False, "runtime_config": {}, "cni_args": "",
         "gateways": [], "drop_default": [], "resource_name": None, "result": None, "serial": False}
    x, y = Attachment("a", "net1", {}), Attachment("b", "net2", {})
    x.runtime_config["k"] = 1
    x.gateways.append("g")
    assert y.runtime_config == {} and y.gateways == [] and y.drop_default == []   # not shared
    x.serial, x.result = True, {"r": 1}     # mutable, as the dataclass was
    with pytest.raises(AttributeError):
        x.no_such = 1                        # __slots__


def test_meta_config_and_services_stay_read_only():
    cfg = config.load({"cniVersion": "1.0.0", "name": "n", "type": "netmeta", "delegates": [{"type": "bridge"}]})
    assert cfg.parallel == 4 and cfg.readiness_timeout == config.READINESS_TIMEOUT and cfg.mode == "auto"
    assert cfg.system_namespaces == frozenset({"kube-system"}) and cfg.delegates == ({"type": "bridge"},)
    with pytest.raises(AttributeError):
        cfg.parallel = 1
    s = engine.Services(file_log_level_only=True)
    assert s.kube is None and s.status_sink is None and s.events is None and s.file_log_level_only
    assert engine.THIN.delegates is engine.registry.STANDALONE and not engine.THIN.file_log_level_only
    with pytest.raises(AttributeError):
        s.kube = object()
    with pytest.raises(TypeError):
        engine.Services(None)       # keyword-only, as every caller passes them
    with pytest.raises(TypeError):
        config.MetaConfig(name="n")   # every field without a default is required


# ---- which meta module imports what, in a real thin ADD + DEL ----
# every `import` statement the process runs (also of a module already loaded, which -X
# importtime does not show) is recorded with the module that runs it
HOOK = r"""
import atexit, builtins, gc, os, runpy, sys   # atexit: cni.shim.leave then exits in order, through `finally`
_real, _seen = builtins.__import__, []
def _hook(name, globals=None, locals=None, fromlist=(), level=0):
    _seen.append(((globals or {}).get("__name__", "?"), name if not level else "." + name))
    return _real(name, globals, locals, fromlist, level)
builtins.__import__ = _hook
try:
    runpy.run_path(sys.argv[1], run_name="__main__")
finally:
    builtins.__import__ = _real
    with open(os.environ["IMPORT_LOG"], "w") as f:
        f.write("\n".join([f"{a} {b}" for a, b in _seen] + [f"gc.isenabled {gc.isenabled()}"]))
"""
STDLIB_NOT_IN_META = ("dataclasses", "re", "copy", "json")


def thin_call(command: str, conf: dict, env: dict, log: str) -> tuple:
    script = os.path.join(REPO, ".venv", "libexec", "netmeta", "netmeta")
    python = open(script).readline()[2:].split()[0]
    full = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "CNI_COMMAND": command, "CNI_IFNAME": "eth0",
            "CNI_PATH": CNI_PATH, "NETMETA_SOCKET": "/nonexistent/netmeta.sock", "IMPORT_LOG": log, **env}
    p = subprocess.run([python, "-IS", "-c", HOOK, script], input=json.dumps(conf).encode(), env=full,
                       capture_output=True, timeout=120)
    with open(log) as f:
        pairs = [tuple(ln.split(" ", 1)) for ln in f.read().splitlines()]
    return p, pairs


def test_thin_add_del_no_gc_and_meta_modules_import_no_dataclasses_re_json_or_copy(netns, uid, tmp_path):
    ns = netns()
    bridge = f"nmtl{uid}"
    conf = {"cniVersion": "1.0.0", "name": "netmeta", "type": "netmeta", "cniDir": str(tmp_path / "cache"),
            "statusDir": str(tmp_path / "status"),     # meta/statusfile.py too
            "globalNamespaces": ["default", "shared"],  # the namespace-name check runs
            "delegates": [{"cniVersion": "1.0.0", "name": "cluster-net", "type": "bridge", "bridge": bridge,
                           "ipam": {"type": "host-local", "subnet": "10.96.19.0/24",
                                    "dataDir": str(tmp_path / "hl")}}]}
    env = {"CNI_NETNS": f"/var/run/netns/{ns}", "CNI_CONTAINERID": f"c{uid}",
           "CNI_ARGS": f"IgnoreUnknown=1;K8S_POD_NAMESPACE=ns;K8S_POD_NAME=p{uid};K8S_POD_UID=u{uid}"}
    try:
        for command in ("ADD", "DEL"):
            p, pairs = thin_call(command, conf, env, str(tmp_path / f"{command}.imports"))
            assert p.returncode == 0, p.stderr.decode()
            # meta/main.py: an exec'd plugin call runs without the cyclic GC
            assert ("gc.isenabled", "False") in pairs, pairs[-1:]
            by_meta = {(who, what) for who, what in pairs if who == "meta" or who.startswith("meta.")}
            # the hook saw the meta modules' imports (a hook that saw nothing would pass anything)
            assert ("meta.engine", "cni.request") in by_meta and ("meta.statusfile", "os") in by_meta, \
                sorted(by_meta)[:40]
            bad = sorted((who, what) for who, what in by_meta if what.split(".")[0] in STDLIB_NOT_IN_META)
            assert not bad, bad
            if command == "ADD":   # the status file was written (and the DEL removes it)
                assert [f for _, _, fs in os.walk(tmp_path / "status") for f in fs], "no status file"
        assert not os.listdir(tmp_path / "cache")
        assert not [f for _, _, fs in os.walk(tmp_path / "status") for f in fs]
    finally:
        subprocess.run(["ip", "link", "del", bridge], check=False, capture_output=True)


# ---- Selection (meta/annotations/selection.py) against the frozen dataclass it was ----
@dataclasses.dataclass(frozen=True, slots=True)
class OldSelection:
    name: str
    namespace: str
    interface: str | None = None
    ips: tuple = ()
    mac: str | None = None
    default_route: tuple = ()
    cni_args: JSONObject | None = None
    port_mappings: tuple | None = None
    bandwidth: JSONObject | None = None
    device_id: str | None = None
    infiniband_guid: str | None = None
    default_route_set: bool = False
    ignored_keys: tuple = dataclasses.field(default=(), compare=False)


SMALL = st.sampled_from(["a", "b"])
OPT = st.none() | SMALL
FIELDS = st.fixed_dictionaries({}, optional={
    "interface": OPT, "ips": st.lists(SMALL, max_size=2).map(tuple), "mac": OPT,
    "default_route": st.lists(SMALL, max_size=1).map(tuple),
    "cni_args": st.none() | st.dictionaries(SMALL, st.integers(0, 1) | st.lists(SMALL, max_size=1), max_size=2).map(JSONObject),
    "port_mappings": st.none() | st.lists(st.just(JSONObject({"hostPort": 1})), max_size=1).map(tuple),
    "bandwidth": st.none() | st.just(JSONObject({"ingressRate": 1})), "device_id": OPT, "infiniband_guid": OPT,
    "default_route_set": st.booleans(), "ignored_keys": st.lists(SMALL, max_size=2).map(tuple)})


@given(SMALL, SMALL, FIELDS, SMALL, SMALL, FIELDS)
def test_selection_eq_hash_repr_are_the_dataclass_ones(n1, ns1, f1, n2, ns2, f2):
    new1, new2 = Selection(n1, ns1, **f1), Selection(name=n2, namespace=ns2, **f2)
    old1, old2 = OldSelection(n1, ns1, **f1), OldSelection(name=n2, namespace=ns2, **f2)
    assert (new1 == new2) == (old1 == old2) and (new1 != new2) == (old1 != old2)
    assert hash(new1) == hash(old1) and hash(new2) == hash(old2)
    assert repr(new1) == repr(old1).replace("OldSelection(", "Selection(", 1)
    assert new1 == Selection(n1, ns1, **dict(f1, ignored_keys=("other",)))     # ignored_keys not compared
    assert new1 != old1 and new1 != (n1, ns1)          # another class: never equal (NotImplemented both ways)
    assert copy.deepcopy(new1) == new1 and copy.deepcopy(new1).ignored_keys == new1.ignored_keys
    assert pickle.loads(pickle.dumps(new1)) == new1
    for attr in ("name", "ips", "ignored_keys"):
        with pytest.raises(AttributeError):
            setattr(new1, attr, "x")
        with pytest.raises(AttributeError):
            delattr(new1, attr)
    assert list(Selection.__slots__) == [f.name for f in dataclasses.fields(OldSelection)]
