"""Shared by the test_hostile_meta_<family> modules (one per family below; one module until
issue 14 split it): hostile input for the meta plugin and the daemon (issue 7, item 5): every input netmeta
parses, property-based (hypothesis, bounded examples) and from crafted corpora, through the
REAL top-level handler (`cni.skel.handle`, what the executables and the daemon run) and a
sample through the real executables and the daemon socket.

  netconf      the netmeta config: random JSON, wrong types for every key of meta/config.py,
               huge and deeply nested documents
  cni-env      CNI_ARGS (pod identity, IP=/MAC=, injection) and the other CNI_* variables
  annotations  k8s.v1.cni.cncf.io/networks, v1.multus-cni.io/default-network and the SR-IOV
               overrides: huge, deeply nested, unicode, NUL, `../`, `;`, `$(...)`, newlines
  nad          NAD files of a nadDir: invalid JSON/YAML, wrong types, `type` with `/` or `..`,
               conflists with no plugins, hostile sriov keys
  sriov        the sriov netconf (stand-alone plugin) with wrong types for every key
  socket       raw bytes on the daemon's unix socket: bad magic, oversized header, lengths that
               lie, truncated env, non-UTF-8, silent clients
  executables  a corpus through the real `netmeta`, `sriov`, `fixipam` executables

Each case must give exactly one JSON document: a result (then DEL must succeed) or an error with
an integer code other than 100 (internal error = a bug, a traceback turned into JSON), and a
non-zero exit; within CASE_LIMIT seconds; and nothing may be left: no DEL cache, VF record,
reservation, marker of the stand-in cluster network, interface in the pod netns or change of
the simulated NIC. A delegate whose `type` escapes CNI_PATH must never run (a planted script
would create a marker file). A table of the cases tried per family is printed at the end of each module."""
import collections
import json
import os
import re
import secrets
import subprocess
import time

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from cni import skel
from delegates.sriov.plugin import SRIOVPlugin
from meta.plugin import MetaPlugin
from tests import simnic, stubplugins
from tests.cnirun import ip_json
from tests.daemonproc import DaemonProc

EXAMPLES = int(os.environ.get("NETMETA_HOSTILE_EXAMPLES", "60"))
SETTINGS = settings(max_examples=EXAMPLES, deadline=None, print_blob=True,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                           HealthCheck.function_scoped_fixture])
# the plugin-type rule as cni/invoke.py had it (a regex, .match: "x\n" passes it), kept here as
# this oracle's own, independent of the product's str check
TYPE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$")
CASE_LIMIT = 20.0          # seconds one CNI call may take, whatever the input
POD_NS = "team"
NETWORKS = "k8s.v1.cni.cncf.io/networks"
DEFAULT_NET = "v1.multus-cni.io/default-network"
ANNOTS = "io.kubernetes.cri.pod-annotations"

# family -> Counter(outcome): "ok" or the error code
RESULTS: dict = collections.defaultdict(collections.Counter)


# ---------------------------------------------------------------- the node under attack

class World:
    pass


W = World()   # the module's node, for strategies built lazily (st.deferred) inside the tests


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    if os.geteuid() != 0:
        pytest.skip("needs root for network namespaces")
    w = W
    w.root = tmp_path_factory.mktemp("hostile")
    w.uid = secrets.token_hex(3)
    w.ns = f"nmh{w.uid}"
    w.nspath = f"/var/run/netns/{w.ns}"
    for d in ("plug", "bin", "marks", "cache", "nads/team", "nads/other", "nads/kube-system", "alt", "fixipam", "logs"):
        (w.root / d).mkdir(parents=True, exist_ok=True)
    w.plug, w.marks, w.cache, w.nads = w.root / "plug", w.root / "marks", w.root / "cache", w.root / "nads"
    w.marker = w.root / "EVIL-RAN"
    stubplugins.install(w.plug / "okplug", stubplugins.OKPLUG, "MARKS", w.marks)
    stubplugins.install(w.root / "bin" / "evil", stubplugins.EVIL, "MARKER", w.marker)
    subprocess.run(["ip", "netns", "add", w.ns], check=True)
    w.nic = simnic.create(f"h{w.uid}", 2, str(w.root / "sys"), str(w.root / "state"))
    w.safe_sriov = {k: w.nic[k] for k in ("master", "sysfsRoot", "backend", "stateDir")}
    fix = {"type": "fixipam", "subnet": "10.62.0.0/24", "gateway": "10.62.0.1", "dataDir": str(w.root / "fixipam")}
    nads = {("team", "pl"): {"cniVersion": "1.0.0", "type": "okplug"},
            ("other", "pl"): {"cniVersion": "1.0.0", "type": "okplug"},
            ("kube-system", "pl"): {"cniVersion": "1.0.0", "type": "okplug"},
            ("team", "sr"): dict(w.safe_sriov, cniVersion="1.0.0", type="sriov", capabilities={"ips": True, "mac": True},
                                 ipam=fix, podOverrides={"vlan": "1-100", "maxTxRate": 1000}),
            ("team", "sr-raw"): dict(w.safe_sriov, cniVersion="1.0.0", type="sriov")}
    for (ns, name), conf in nads.items():
        write_nad(w, ns, name, {"metadata": {"name": name}, "spec": {"config": json.dumps(conf)}})
    w.conf = {"cniVersion": "1.1.0", "name": "netmeta", "type": "netmeta", "mode": "thin", "cniDir": str(w.cache),
              "nadDir": str(w.nads), "namespaceIsolation": True,
              # a readinessindicatorfile case waits for the file like Multus (45 s by default): 1 s
              # keeps every case inside the per-case bound; the wait itself is test_multus_fidelity's
              "readinessTimeout": 1,
              "delegates": [{"cniVersion": "1.0.0", "name": "cluster", "type": "okplug"}]}
    w.before = simnic.snapshot(w.nic)
    yield w
    subprocess.run(["ip", "netns", "del", w.ns], capture_output=True, check=False)
    simnic.destroy(w.nic)


NODE_DEFAULTS = ("/var/lib/cni/netmeta", "/run/netmeta", "/etc/cni/multus")


def _tree(paths) -> set:
    return {os.path.join(r, f) for p in paths for r, ds, fs in os.walk(p) for f in ds + fs}


@pytest.fixture(scope="module", autouse=True)
def node_defaults_untouched():
    """No hostile case may reach the node's default state dirs (every path is pinned to tmp)."""
    before = _tree(NODE_DEFAULTS)
    yield
    new = _tree(NODE_DEFAULTS) - before
    assert not new, f"hostile cases wrote under the node's default dirs: {sorted(new)[:10]}"


@pytest.fixture(scope="module", autouse=True)
def report(request):
    """The table of cases tried, printed at the end of the module (also without -s)."""
    yield
    if not RESULTS:
        return
    lines = ["", f"{'hostile input family':<22} {'cases':>6} {'accepted':>9}  refused by code (100 (x) = known bug x)"]
    for fam, c in RESULTS.items():
        codes = ", ".join(f"{k}: {n}" for k, n in sorted(((k, n) for k, n in c.items() if k != "ok"), key=lambda x: str(x[0])))
        lines.append(f"{fam:<22} {sum(c.values()):>6} {c['ok']:>9}  {codes}")
    lines.append(f"{'total':<22} {sum(sum(c.values()) for c in RESULTS.values()):>6}")
    capman = request.config.pluginmanager.getplugin("capturemanager")
    with capman.global_and_fixture_disabled():
        print("\n".join(lines))
    RESULTS.clear()   # the next module prints its own families


def write_nad(w, ns: str, name: str, obj, ext=".json") -> None:
    d = w.nads / ns
    d.mkdir(parents=True, exist_ok=True)
    for e in (".json", ".yaml", ".yml"):
        (d / f"{name}{e}").unlink(missing_ok=True)
    data = obj if isinstance(obj, bytes) else json.dumps(obj).encode()
    (d / f"{name}{ext}").write_bytes(data)


def pin(w, obj, key=None):
    """Point every state path a generated config could fall back to (/var/lib/cni/netmeta/...)
    at the test's own tree: fixipam's dataDir, sriov's sysfsRoot/backend/stateDir (a netconf may
    name any PF of the node, see docs/threat-model.md: here it is always the sim NIC)."""
    if isinstance(obj, list):
        return [pin(w, x) for x in obj]
    if not isinstance(obj, dict):
        return obj
    out = {k: pin(w, v, k) for k, v in obj.items()}
    t = out.get("type")
    if t == "fixipam" and key == "ipam":
        out["dataDir"] = str(w.root / "fixipam")
    elif t == "fixipam":
        ipam = out.get("ipam") if isinstance(out.get("ipam"), dict) else {}
        out["ipam"] = dict(ipam, dataDir=str(w.root / "fixipam"))
    elif t == "sriov":
        out.update(w.safe_sriov)
    return out


def leftovers(w) -> dict:
    """What a finished call must not leave; empty = clean."""
    def files(d):
        return sorted(f for f in os.listdir(d) if f != ".lock") if os.path.isdir(d) else []
    left = {"cache": files(w.cache), "marks": files(w.marks),
            "VF records": files(os.path.join(w.nic["stateDir"], w.nic["master"])),
            "reservations": [f"{n}/{f}" for n in files(w.root / "fixipam") for f in files(w.root / "fixipam" / n)],
            "alt": [os.path.join(r, f) for r, _, fs in os.walk(w.root / "alt") for f in fs if f != ".lock"],
            "pod netns": [l["ifname"] for l in ip_json("link", "show", netns=w.ns) if l["ifname"] != "lo"]}
    left = {k: v for k, v in left.items() if v}
    if w.marker.exists():
        left["EVIL PLUGIN RAN"] = True
    if simnic.snapshot(w.nic) != w.before:
        left["sim NIC"] = "differs from before"
    return left


def env_for(w, command="ADD", **over) -> dict:
    e = {"CNI_COMMAND": command, "CNI_CONTAINERID": "hostile1", "CNI_NETNS": w.nspath, "CNI_IFNAME": "eth0",
         "CNI_PATH": str(w.plug), "CNI_ARGS": f"IgnoreUnknown=1;K8S_POD_NAMESPACE={POD_NS};K8S_POD_NAME=hp"}
    e.update(over)
    return e


def _plugins_of(conf):
    if not isinstance(conf, dict):
        return []
    return conf["plugins"] if isinstance(conf.get("plugins"), list) else [conf]


OUR_TYPES = {"okplug", "sriov", "fixipam"}   # what the test's CNI_PATH (or netmeta itself) can run


def all_plugins(ctx) -> list:
    out = []
    if isinstance(ctx.get("delegates"), list):
        for d in ctx["delegates"]:
            out += _plugins_of(d)
    out += _plugins_of(ctx.get("nad"))
    if ctx.get("type") == "sriov":
        out.append(ctx)
    return out


def known_bug(ctx) -> str | None:
    """The known bug (each pinned by its own test in a test_hostile_meta_* module or test_security.py) that
    explains a code-100 answer or something left behind for input `ctx`, if any."""
    if not isinstance(ctx, dict):
        return None
    if len((ctx.get("_env") or {}).get("CNI_CONTAINERID", "")) > 200:
        return "long-container-id"
    if "multusNamespace" in ctx and not isinstance(ctx["multusNamespace"], str):
        return "multusNamespace-type"
    if any(k in ctx and ctx[k] is None for k in ("cniDir", "confDir")):
        return "null-path"
    if isinstance(ctx.get("cniDir"), str) and os.path.isfile(ctx["cniDir"]):
        return "state-dir-is-a-file"
    if ctx.get("nad_file_unparsable"):
        return "nad-file-parse"
    plugins = all_plugins(ctx)
    for p in plugins:
        if not isinstance(p, dict) or not isinstance(p.get("type"), str):
            return "conflist-plugin"
        if p.get("capabilities") and not isinstance(p["capabilities"], dict):
            return "capabilities-type"
    if ctx.get("type") == "sriov" and isinstance(ctx.get("ipam"), dict) and not isinstance(ctx["ipam"].get("type"), str):
        return "sriov-ipam-without-type"
    for p in plugins:
        if not TYPE_RE.match(p["type"]) or p["type"] in (".", ".."):
            return "bad-type-leaves-cache"
        if p["type"] not in OUR_TYPES:
            return "missing-plugin-leaves-cache"
        if p["type"] == "sriov" and isinstance(p.get("ipam"), dict) and p["ipam"].get("type") != "fixipam":
            return "sriov-ipam-unusable"
    return None


def scrub(w) -> None:
    """After a known bug: undo what it left so the next case starts clean (the leak itself is
    asserted by the bug's own test): VFs (their records lose the IPAM that blocks the restore,
    then the real sriov DEL puts them back), reservations, DEL caches, markers."""
    rdir = os.path.join(w.nic["stateDir"], w.nic["master"])
    for f in sorted(os.listdir(rdir)) if os.path.isdir(rdir) else []:
        if not f.endswith(".json"):
            continue
        with open(os.path.join(rdir, f)) as fh:
            rec = json.load(fh)
        rec.pop("ipam", None)
        with open(os.path.join(rdir, f), "w") as fh:
            json.dump(rec, fh)
        conf = dict({"cniVersion": "1.0.0", "name": "scrub", "type": "sriov"}, **w.safe_sriov)
        skel.handle(SRIOVPlugin(), env_for(w, "DEL", CNI_CONTAINERID=rec["containerID"], CNI_IFNAME=rec["ifname"],
                                          CNI_NETNS=rec.get("netns") or ""), json.dumps(conf).encode())
    for d in (w.cache, w.marks):
        for f in os.listdir(d):
            os.unlink(d / f)
    for r, _, fs in os.walk(w.root / "fixipam"):
        for f in fs:
            if f != ".lock":
                os.unlink(os.path.join(r, f))


def judge(family: str, w, plugin, env: dict, stdin: bytes, del_env: dict | None = None, del_stdin=None, ctx=None):
    """Run one call through skel.handle and hold it to the contract; returns the parsed answer.
    Answers and leftovers a known bug explains are counted as `100 (bug)` / `left (bug)`."""
    kb = known_bug(ctx)
    t0 = time.monotonic()
    code, out = skel.handle(plugin, env, stdin)
    took = time.monotonic() - t0
    assert took < CASE_LIMIT, f"{family}: a call took {took:.1f} s"
    doc = json.loads(out) if out.strip() else None   # exactly one JSON document (or nothing for DEL)
    is_add = env.get("CNI_COMMAND") == "ADD"
    if code == 0:
        RESULTS[family]["ok"] += 1
    else:
        assert isinstance(doc, dict) and isinstance(doc.get("code"), int) and isinstance(doc.get("msg"), str) \
            and doc.get("cniVersion"), (family, out[:500])
        if doc["code"] == 100:
            assert kb, f"{family}: internal error (a bug): {doc}"
            RESULTS[family][f"100 ({kb})"] += 1
        else:
            RESULTS[family][doc["code"]] += 1
        if is_add and leftovers(w):
            assert kb, (family, "a refused ADD left", leftovers(w), doc)
            RESULTS[family][f"left ({kb})"] += 1
    if is_add:   # the runtime's DEL (after success or failure)
        dc, dout = skel.handle(plugin, dict(del_env or env, CNI_COMMAND="DEL"), del_stdin if del_stdin is not None else stdin)
        if dc != 0 and not kb:   # a config DEL cannot parse: only fine when ADD refused it and left nothing
            assert code != 0 and leftovers(w) == {}, (family, "DEL failed after a successful ADD", dout[:300])
            assert json.loads(dout)["code"] != 100, (family, "DEL: internal error", dout[:300])
    if kb and leftovers(w):
        scrub(w)
    assert leftovers(w) == {}, (family, leftovers(w))
    return code, doc


def meta_call(family, w, conf: dict, annots=None, ctx=None, **env_over):
    c = pin(w, dict(conf))
    c.setdefault("cniDir", str(w.cache))
    if annots is not None and isinstance(c.get("runtimeConfig", {}), dict):
        c["runtimeConfig"] = dict(c.get("runtimeConfig") or {}, **{ANNOTS: annots})
    stdin = json.dumps(c).encode()
    env = env_for(w, **env_over)
    # the runtime's DEL carries the same config
    return judge(family, w, MetaPlugin(), env, stdin, del_stdin=stdin, ctx=ctx if ctx is not None else c)


# ---------------------------------------------------------------- strategies

HOSTILE_TEXT = ["", " ", "..", "../../etc/passwd", "/", "a/b", "$(touch /tmp/pwned)", "`id`", "a;b", "a\nb",
                "a\x00b", "\u202e", "\U0001F600", "x" * 300, "pl", "sr", "sr-raw", "team/pl", "other/pl",
                "kube-system/pl", "pl@net1", "pl@eth0", "pl@lo", "pl@../x", "pl,pl", "PL", "-pl", "pl-", ",", "@",
                "/pl", "pl@", "{", "[", '"', "null", "[null]", "[{}]", "1e400", "-1", "0", "4096", "18446744073709551616",
                "K8S_POD_NAME=victim", "IP=10.62.0.9", "\\", "%s%s%n", "pl\r\n", "\ud800"]
texts = st.one_of(st.text(max_size=30), st.sampled_from(HOSTILE_TEXT),
                  st.text(alphabet="plsr-/@,. {}[]\":\\0123456789;=$()\n\x00", max_size=30))
scalars = st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats(allow_nan=False) | texts
json_values = st.recursive(scalars, lambda c: st.lists(c, max_size=4) | st.dictionaries(texts, c, max_size=4),
                           max_leaves=12)


def deep(n: int, leaf="1") -> str:
    return "[" * n + leaf + "]" * n


# a delegate's or IPAM's `type`: ours, escaping CNI_PATH, empty, NUL, wrong types, homoglyphs
TYPES = ["okplug", "sriov", "fixipam", "evil", "../bin/evil", "..", ".", "", "a/b", "okplug\x00", "ok plug", None, 5,
         ["okplug"], "\u043e\u043aplug"]



@pytest.fixture(scope="module")
def daemon(world, tmp_path_factory):
    d = DaemonProc(tmp_path_factory.mktemp("hd"), requestTimeout=5)
    d.start()
    yield d
    d.stop()
