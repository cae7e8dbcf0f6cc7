"""Issue 19: the sriov modules an exec'd call loads import no dataclasses, typing, re, inspect,
logging, json or enum at module level (JSON goes through cni/jsonlite.py), and the str checks
that replaced their regular expressions accept exactly what the old patterns matched (property
tests against the patterns, copied here from the code they replaced; `$` of a `^...$` pattern
used with match() also matches before one trailing newline, which the replacements keep)."""
import ast
import os
import re

from hypothesis import example, given, settings
from hypothesis import strategies as st

from delegates.sriov import callargs, config, records, topology, vftable
from delegates.sriov.availability import PFCount
from delegates.sriov.topology import TopologyError, VFInfo
from delegates.sriov.vftable import VFState, VFTableError
from tests.cnirun import REPO

# the replaced patterns, as they were (delegates/sriov/*.py before issue 19)
OLD_CONFIG_PCI = re.compile(r"^[0-9a-fA-F]{4}:[0-9a-fA-F]{2}:[0-9a-fA-F]{2}\.[0-7]$")
OLD_CONFIG_MAC = re.compile(r"^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$")
OLD_TOPO_PCI = re.compile(r"[0-9a-f]{4,8}:[0-9a-f]{2}:[0-1][0-9a-f]\.[0-7]")
OLD_VIRTFN = re.compile(r"virtfn(0|[1-9][0-9]{0,5})")
OLD_TABLE_MAC = re.compile(r"[0-9a-f]{2}(:[0-9a-f]{2}){5}")
OLD_UINT = re.compile(r"^[0-9]{1,5}$")
OLD_NAME = re.compile(r"(?:vf(0|[1-9][0-9]{0,3})|pf)\.json")
OLD_ASIDE = re.compile(r"(?P<name>.+)\.(?P<kind>damaged|vanished|reclaimed)\.(?P<ns>[0-9]+)")

# characters the patterns care about, and look-alikes a str method could get wrong: non-ASCII
# digits (isdigit), a letter whose lower() is two characters, full-width colon, whitespace
TRICKY = "0123456789abcdefABCDEFgxG:.\n\r \t-_/٣²１İſK：vfpjsonirtumdagelchbk"


def near(pattern: str, suffixes=("", "\n", "\n\n", "x", ".", ":")):
    """Strings that match `pattern`, the same with a suffix, one character changed or dropped,
    and arbitrary strings over TRICKY."""
    full = st.from_regex(pattern, fullmatch=True)

    def mutate(s_i_c):
        s, i, c = s_i_c
        if not s:
            return c
        i %= len(s)
        return s[:i] + c + s[i + 1:] if c else s[:i] + s[i + 1:]
    return st.one_of(
        st.tuples(full, st.sampled_from(suffixes)).map("".join),
        st.tuples(st.sampled_from(suffixes), full).map("".join),
        st.tuples(full, st.integers(0, 40), st.sampled_from(["", *TRICKY])).map(mutate),
        st.text(TRICKY, max_size=20),
        st.text(max_size=12))


@settings(max_examples=800)
@given(near(r"[0-9a-fA-F]{4}:[0-9a-fA-F]{2}:[0-9a-fA-F]{2}\.[0-7]"))
@example("0000:03:00.1\n")
@example("0000:03:00.1\n\n")
def test_config_pci_check_is_the_old_pattern(s):
    assert config.is_pci(s) == bool(OLD_CONFIG_PCI.match(s))


@settings(max_examples=800)
@given(near(r"[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}"))
@example("02:AA:bb:cc:dd:ee\n")
def test_config_mac_check_is_the_old_pattern(s):
    assert config.is_mac(s) == bool(OLD_CONFIG_MAC.match(s))
    # and check_mac (config and CNI_ARGS MAC=) raises exactly when the old code did
    try:
        got = config.check_mac(s, "mac")
    except Exception:
        got = "error"
    old = None if s == "" else ("error" if not OLD_CONFIG_MAC.match(s) or int(s[:2], 16) & 1
                                or s.replace(":", "") == "000000000000" else s.lower())
    assert got == old


@settings(max_examples=800)
@given(near(r"[0-9a-f]{4,8}:[0-9a-f]{2}:[0-1][0-9a-f]\.[0-7]"))
@example("0000:03:00.1\n")
@example("0000İ:03:00.1")
def test_topology_parse_pci_is_the_old_pattern(s):
    try:
        got = topology.parse_pci(s)
    except TopologyError:
        got = None
    assert got == (s.lower() if OLD_TOPO_PCI.fullmatch(s.lower()) else None)


@settings(max_examples=500)
@given(near(r"virtfn(0|[1-9][0-9]{0,5})"))
@example("virtfn٣")
@example("virtfn00")
def test_virtfn_index_is_the_old_pattern(s):
    m = OLD_VIRTFN.fullmatch(s)
    assert topology.virtfn_index(s) == (int(m.group(1)) if m else None)


@settings(max_examples=800)
@given(near(r"[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}"))
@example("02:aa:bb:cc:dd:ee\n")
def test_vf_table_mac_check_is_the_old_pattern(s):
    try:
        got = vftable.normalize_mac(s, 0)
    except VFTableError as e:
        got = e.field
    low = s.lower()
    old = ("mac" if not OLD_TABLE_MAC.fullmatch(low) or int(low[:2], 16) & 1 else low)
    assert got == old


@settings(max_examples=500)
@given(near(r"[0-9]{1,5}"))
@example("12\n")
@example("٣")
def test_cni_args_integer_check_is_the_old_pattern(s):
    assert callargs.is_uint(s) == bool(OLD_UINT.match(s))


@settings(max_examples=800)
@given(near(r"(?:vf(0|[1-9][0-9]{0,3})|pf)\.json"))
@example("vf.json")
@example("vf07.json")
@example("pf.json\n")
def test_record_name_is_the_old_pattern(s):
    m = OLD_NAME.fullmatch(s)
    assert records.parse_name(s) == ((None if m[1] is None else int(m[1]),) if m else None)


@settings(max_examples=800)
@given(st.one_of(near(r"[^\n]+\.(damaged|vanished|reclaimed)\.[0-9]+"),
                 st.tuples(st.text(TRICKY, max_size=8), st.sampled_from([".damaged.", ".vanished.", ".reclaimed.",
                                                                         ".damaged", "damaged."]),
                           st.text(TRICKY, max_size=6)).map("".join)))
@example("vf1.json.damaged.\n")
@example("a\nb.damaged.1")
@example(".damaged.1")
@example("x.damaged.1.reclaimed.2")
def test_aside_name_is_the_old_pattern(s):
    m = OLD_ASIDE.fullmatch(s)
    assert records.parse_aside(s) == ((m["name"], m["kind"], m["ns"]) if m else None)


def test_vf_state_is_a_value():
    """What the dataclass gave and its users rely on: defaults, keyword/positional
    construction, equality by value, dict round trip in field order, replace(), a repr."""
    d = VFState()
    assert d.to_dict() == {"mac": "00:00:00:00:00:00", "vlan": 0, "qos": 0, "proto": "802.1Q", "min_tx_rate": 0,
                           "max_tx_rate": 0, "spoofchk": True, "trust": False, "link_state": "auto"}
    assert list(d.to_dict()) == list(VFState.FIELDS)
    s = VFState("02:00:00:00:00:01", 10, qos=2)
    assert s == VFState(mac="02:00:00:00:00:01", vlan=10, qos=2) and s != d and s != s.to_dict()
    assert VFState.from_dict({**s.to_dict(), "unknown": 1}) == s
    r = s.replace(vlan=11, trust=True)
    assert (r.vlan, r.trust, r.qos, s.vlan) == (11, True, 2, 10)
    assert repr(s).startswith("VFState(mac='02:00:00:00:00:01', vlan=10, qos=2, ")
    assert VFInfo(1, "0000:00:00.1", None) == VFInfo(1, "0000:00:00.1", None) != VFInfo(1, "0000:00:00.1", "x")
    c = PFCount("p", 8, 5, 3, False)
    assert (c.pods, c.to_dict()) == ((), {"pf": "p", "total": 8, "free": 5, "allocated": 3, "pfAttached": False})


FORBIDDEN = {"dataclasses", "typing", "re", "inspect", "logging", "json", "enum"}


def _module_level_imports(path: str) -> set:
    """Modules a file imports when it is imported: top-level statements (also inside top-level
    try / if / with), not function bodies and not `if TYPE_CHECKING:` blocks."""
    with open(path, encoding="utf-8") as f:
        tree = ast.parse(f.read(), path)
    out: set = set()

    def walk(stmts):
        for node in stmts:
            if isinstance(node, ast.Import):
                out.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                out.add(node.module)
            elif isinstance(node, ast.If):
                if not (isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING"):
                    walk(node.body)
                walk(node.orelse)
            elif isinstance(node, (ast.Try, ast.With)):
                walk(node.body)
                for h in getattr(node, "handlers", []):
                    walk(h.body)
                walk(getattr(node, "orelse", []))
                walk(getattr(node, "finalbody", []))
    walk(tree.body)
    return out


def test_sriov_modules_import_no_dataclasses_typing_re_json_or_logging():
    """Every module of delegates/sriov (the plugin, both VF-table backends, the simulator):
    none of FORBIDDEN (or a submodule) at module level; a function may import what it alone
    needs (the sim's CLI imports argparse and logging)."""
    bad = {}
    root = os.path.join(REPO, "delegates", "sriov")
    for d, _, files in os.walk(root):
        for f in files:
            if f.endswith(".py"):
                path = os.path.join(d, f)
                hit = {m for m in _module_level_imports(path) if m.split(".")[0] in FORBIDDEN}
                if hit:
                    bad[os.path.relpath(path, REPO)] = sorted(hit)
    assert not bad, bad
    assert {"os", "cni"} <= _module_level_imports(os.path.join(root, "reserved.py"))   # (the walk sees imports)


JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=5),
                    lambda kids: st.lists(kids, max_size=3) | st.dictionaries(st.text(max_size=4), kids, max_size=3),
                    max_leaves=12)


def _shape(v):
    """`v` with each container replaced by (its type name, its items' shapes)."""
    if isinstance(v, dict):
        return type(v).__name__, {k: _shape(x) for k, x in v.items()}
    if isinstance(v, list):
        return "list", [_shape(x) for x in v]
    return v


@settings(max_examples=200)
@given(extra=JSON)
def test_a_record_reads_as_json_with_object_hook_frozen(tmp_path_factory, extra):
    """Records are parsed by cni/jsonlite and frozen after: the same value and the same types
    (every object a Frozen, arrays lists) as json.loads(..., object_hook=Frozen) gave."""
    import json
    d = tmp_path_factory.mktemp("srivlean-rec")
    recs = records.Records(str(d))
    rec = {"containerID": "c1", "ifname": "net1", "netns": "/var/run/netns/x", "pf": "pf0", "vf": 1,
           "state": "ready", "tmpName": "nmv0", "owner": {"token": "ab", "x": [{"y": extra}]}, "extra": extra,
           "saved": {"table": {"vlan": 0}, "netdev": {"name": "pf0v1", "mac": None, "mtu": 1500, "up": False}}}
    recs.write(rec)
    with open(recs.path("pf0", 1), "rb") as f:
        want = json.loads(f.read(), object_hook=records.Frozen)
    got = recs.read("pf0", 1)
    assert got == want and _shape(got) == _shape(want)
