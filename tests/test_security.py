"""Security (issue 7, item 6); see docs/threat-model.md for who can set what.

  - pod VLAN / tx-rate overrides outside the network's policy are refused, edge cases included
    (a non-SR-IOV network, a network the pod does not use, negative, huge, fractional, 0);
  - cross-namespace NAD references are refused under namespaceIsolation, the default-network
    annotation included, and pod identity from CNI_ARGS cannot point lookups outside nadDir;
  - a delegate `type` with `/` or `..` (from a NAD, a conflist, an IPAM section or the netmeta
    config's delegates) is refused and the planted program is never executed;
  - the daemon socket and every state file netmeta writes after a real ADD through the daemon
    are root-only (0600 files, 0700 directories);
  - a non-root user gets nothing from the daemon through the shim;
  - CNI_ARGS identity cannot be injected by a pod, and duplicated identity keys in CNI_ARGS are
    checked against the pod's UID.
The RBAC comparison is in tests/test_conf.py."""
import json
import os
import secrets
import stat
import subprocess
import uuid

import pytest
import yaml

from cni import skel, wire
from meta.plugin import MetaPlugin
from tests import simnic, stubplugins
from tests.cnirun import VENV_BIN, cni, ip_json
from tests.daemonproc import DaemonProc

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
POD_NS = "team"
NETWORKS = "k8s.v1.cni.cncf.io/networks"
DEFAULT_NET = "v1.multus-cni.io/default-network"
VLAN, TXRATE = "networks-sriov-vlan", "networks-sriov-txrate"
ANNOTS = "io.kubernetes.cri.pod-annotations"


class Node:
    pass


def nad(n, ns, name, conf):
    d = n.nads / ns
    d.mkdir(parents=True, exist_ok=True)
    (d / f"{name}.json").write_text(json.dumps({"metadata": {"name": name}, "spec": {"config": json.dumps(conf)}}))


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    if os.geteuid() != 0:
        pytest.skip("needs root for network namespaces")
    n = Node()
    n.root = tmp_path_factory.mktemp("sec")
    n.uid = secrets.token_hex(3)
    n.ns = f"nms{n.uid}"
    n.nspath = f"/var/run/netns/{n.ns}"
    for d in ("plug", "bin", "marks", "spy", "cache", "nads"):
        (n.root / d).mkdir()
    n.plug, n.marks, n.spy, n.cache, n.nads = (n.root / d for d in ("plug", "marks", "spy", "cache", "nads"))
    n.marker = n.root / "EVIL-RAN"
    stubplugins.install(n.plug / "okplug", stubplugins.OKPLUG, "MARKS", n.marks)
    stubplugins.install(n.plug / "argspy", stubplugins.ARGSPY, "SPY", n.spy)
    stubplugins.install(n.root / "bin" / "evil", stubplugins.EVIL, "MARKER", n.marker)
    subprocess.run(["ip", "netns", "add", n.ns], check=True)
    n.nic = simnic.create(f"y{n.uid}", 2, str(n.root / "sys"), str(n.root / "state"))
    n.safe = {k: n.nic[k] for k in ("master", "sysfsRoot", "backend", "stateDir")}
    fix = {"type": "fixipam", "subnet": "10.63.0.0/24", "dataDir": str(n.root / "fixipam")}
    sr = dict(n.safe, cniVersion="1.0.0", type="sriov", capabilities={"ips": True}, ipam=fix)
    for ns in (POD_NS, "other", "shared", "default", "kube-system"):
        nad(n, ns, "pl", {"cniVersion": "1.0.0", "type": "okplug"})
    nad(n, POD_NS, "sr", dict(sr, podOverrides={"vlan": "1-100", "maxTxRate": 1000}))
    nad(n, POD_NS, "sr-strict", sr)
    nad(n, POD_NS, "sr-wide", dict(sr, podOverrides={"vlan": "0-4095", "maxTxRate": 10**12}))
    nad(n, POD_NS, "sr-list", {"cniVersion": "1.0.0", "podOverrides": {"vlan": "1-100"},
                               "plugins": [sr, {"type": "okplug"}]})
    nad(n, POD_NS, "spy", {"cniVersion": "1.0.0", "type": "argspy"})
    n.conf = {"cniVersion": "1.1.0", "name": "netmeta", "type": "netmeta", "mode": "thin", "cniDir": str(n.cache),
              "nadDir": str(n.nads), "namespaceIsolation": True, "globalNamespaces": "shared",
              "delegates": [{"cniVersion": "1.0.0", "name": "cluster", "type": "okplug"}]}
    n.before = simnic.snapshot(n.nic)
    yield n
    subprocess.run(["ip", "netns", "del", n.ns], capture_output=True, check=False)
    simnic.destroy(n.nic)


def env(n, command="ADD", **over):
    e = {"CNI_COMMAND": command, "CNI_CONTAINERID": "sec1", "CNI_NETNS": n.nspath, "CNI_IFNAME": "eth0",
         "CNI_PATH": str(n.plug), "CNI_ARGS": f"IgnoreUnknown=1;K8S_POD_NAMESPACE={POD_NS};K8S_POD_NAME=sp"}
    e.update(over)
    return e


def leftovers(n) -> dict:
    def files(d):
        return sorted(f for f in os.listdir(d) if f != ".lock") if os.path.isdir(d) else []
    left = {"cache": files(n.cache), "marks": files(n.marks),
            "VF records": files(os.path.join(n.nic["stateDir"], n.nic["master"])),
            "reservations": [f for d in files(n.root / "fixipam") for f in files(n.root / "fixipam" / d)],
            "pod netns": [l["ifname"] for l in ip_json("link", "show", netns=n.ns) if l["ifname"] != "lo"]}
    left = {k: v for k, v in left.items() if v}
    if simnic.snapshot(n.nic) != n.before:
        left["sim NIC"] = "changed"
    return left


def clean(n) -> None:
    """Remove what a refused call may leave (each leak is pinned by its own test)."""
    skel.handle(MetaPlugin(), env(n, "DEL"), json.dumps(n.conf).encode())
    for d in (n.cache, n.marks, n.spy):
        for f in os.listdir(d):
            os.unlink(d / f)


def add(n, annots, conf=None, **env_over):
    c = dict(conf or n.conf, runtimeConfig={ANNOTS: annots})
    code, out = skel.handle(MetaPlugin(), env(n, **env_over), json.dumps(c).encode())
    return code, json.loads(out) if out.strip() else None, c


def delete(n, c, **env_over):
    return skel.handle(MetaPlugin(), env(n, "DEL", **env_over), json.dumps(c).encode())


def refused(n, annots, code, words="", conf=None, **env_over):
    """ADD refused with `code`, nothing attached, and the runtime's DEL finishes cleanly."""
    rc, doc, c = add(n, annots, conf, **env_over)
    left = leftovers(n)
    d, dout = delete(n, c, **env_over)
    clean(n)
    assert rc != 0 and doc["code"] == code, (annots, doc)
    assert words in doc["msg"] + doc.get("details", ""), (words, doc)
    assert left == {} and d == 0, (annots, left, dout)


def vf0(n) -> dict:
    return simnic.snapshot(n.nic)["table"][0]


# ---------------------------------------------------------------- pod overrides and policy

SR = json.dumps([{"name": "sr", "ips": ["10.63.0.5/24"]}])


@pytest.mark.parametrize("annots,code,words", [
    ({NETWORKS: "pl", VLAN: json.dumps({"pl": 5})}, 130, "not an SR-IOV network"),
    ({NETWORKS: "pl", TXRATE: json.dumps({"team/pl": 5})}, 130, "not an SR-IOV network"),
    ({NETWORKS: SR, VLAN: json.dumps({"sr-strict": 5})}, 7, "not one of this pod's networks"),
    ({NETWORKS: SR, VLAN: json.dumps({"other/sr": 5})}, 7, "not one of this pod's networks"),
    ({NETWORKS: "pl", VLAN: json.dumps({"sr": 5})}, 7, "not one of this pod's networks"),
    ({NETWORKS: SR, VLAN: "-5"}, 7, "must not be negative"),
    ({NETWORKS: SR, VLAN: json.dumps({"sr": -5})}, 7, "must not be negative"),
    ({NETWORKS: SR, VLAN: "99999999999999999999"}, 7, "out of range"),
    ({NETWORKS: SR, TXRATE: json.dumps({"sr": 2**64})}, 7, "out of range"),
    ({NETWORKS: SR, VLAN: "1.5"}, 7, "non-negative integer"),
    ({NETWORKS: SR, VLAN: json.dumps({"sr": 1.5})}, 7, "non-negative integer"),
    ({NETWORKS: SR, VLAN: json.dumps({"sr": True})}, 7, "non-negative integer"),
    ({NETWORKS: SR, VLAN: json.dumps({"sr": "5"})}, 7, "non-negative integer"),
    ({NETWORKS: SR, VLAN: "0x10"}, 7, ""),
    ({NETWORKS: SR, VLAN: "05"}, 7, "leading zeros"),
    ({NETWORKS: SR, VLAN: "0"}, 130, "outside podOverrides.vlan"),           # untagged is not in 1-100
    ({NETWORKS: SR, VLAN: "101"}, 130, "outside podOverrides.vlan"),
    ({NETWORKS: SR, VLAN: "4096"}, 130, "outside podOverrides.vlan"),
    ({NETWORKS: SR, TXRATE: "1001"}, 130, "exceeds podOverrides.maxTxRate"),
    ({NETWORKS: SR, TXRATE: "0"}, 130, "0 (unlimited) needs maxTxRate 0"),  # unlimited is more than 1000
    ({NETWORKS: SR, TXRATE: str(10**15)}, 130, "exceeds podOverrides.maxTxRate"),
    ({NETWORKS: json.dumps([{"name": "sr-strict", "ips": ["10.63.0.5/24"]}]), VLAN: "5"}, 130, "set podOverrides.vlan"),
    ({NETWORKS: json.dumps([{"name": "sr-strict", "ips": ["10.63.0.5/24"]}]), TXRATE: "5"}, 130,
     "set podOverrides.maxTxRate"),
    ({NETWORKS: json.dumps([{"name": "sr-wide", "ips": ["10.63.0.5/24"]}]), VLAN: "4096"}, 130, "outside"),
    # an administrator's over-wide maxTxRate does not let a pod past the delegate's own limits
    ({NETWORKS: json.dumps([{"name": "sr-wide", "ips": ["10.63.0.5/24"]}]), TXRATE: str(10**9)}, 7, "max_tx_rate"),
    ({NETWORKS: json.dumps([{"name": "sr", "ips": ["10.63.0.5/24"]}, {"name": "sr-strict", "ips": ["10.63.0.6/24"]}]),
      VLAN: "5"}, 130, "set podOverrides.vlan"),      # a plain number covers every SR-IOV attachment
])
def test_overrides_outside_policy_are_refused(node, annots, code, words):
    refused(node, annots, code, words)
    assert vf0(node) == node.before["table"][0]


def test_overrides_inside_policy_apply_and_are_undone(node):
    """Positive controls: inside the policy the VF gets them; DEL puts the VF table back."""
    for annots, want in (({NETWORKS: SR, VLAN: "100", TXRATE: "1000"}, (100, 1000)),
                         ({NETWORKS: json.dumps([{"name": "sr-list", "ips": ["10.63.0.5/24"]}]), VLAN: "7"}, (7, 0))):
        rc, doc, c = add(node, annots)
        assert rc == 0, doc
        got = (vf0(node)["vlan"], vf0(node)["max_tx_rate"])
        assert delete(node, c)[0] == 0
        assert got == want and leftovers(node) == {}, (got, leftovers(node))
    # a plain number for a pod with no SR-IOV attachment applies to nothing: accepted, no effect
    rc, doc, c = add(node, {NETWORKS: "pl", VLAN: "5"})
    assert rc == 0 and delete(node, c)[0] == 0 and leftovers(node) == {}


# ---------------------------------------------------------------- namespace isolation

@pytest.mark.parametrize("annots,ok", [
    ({NETWORKS: "pl"}, True), ({NETWORKS: "team/pl"}, True), ({NETWORKS: "shared/pl"}, True),
    # globalNamespaces ("shared") replaces the implicit "default" (Multus v4.1.4 pkg/types/conf.go
    # LoadNetConf; test_multus_fidelity.py)
    ({NETWORKS: "default/pl"}, False),
    ({NETWORKS: "other/pl"}, False), ({NETWORKS: "kube-system/pl"}, False),
    ({NETWORKS: json.dumps([{"name": "pl", "namespace": "other"}])}, False),
    ({NETWORKS: json.dumps([{"name": "pl", "namespace": "OTHER"}])}, "bad"),
    ({NETWORKS: "shared/pl,other/pl"}, False),
    ({DEFAULT_NET: "pl"}, True),                       # resolved in multusNamespace (kube-system)
    ({DEFAULT_NET: "kube-system/pl"}, True),
    ({DEFAULT_NET: "team/pl"}, True), ({DEFAULT_NET: "shared/pl"}, True),
])
def test_namespace_isolation(node, annots, ok):
    if ok is True:
        rc, doc, c = add(node, annots)
        assert rc == 0, doc
        assert delete(node, c)[0] == 0 and leftovers(node) == {}
    elif ok == "bad":
        refused(node, annots, 7, "not a valid namespace")
    else:
        refused(node, annots, 131, "namespace isolation")


def test_default_network_annotation_is_isolated_too(node):
    """A pod in `team` naming another namespace's NAD in v1.multus-cni.io/default-network
    (`other/pl`) gets it as its primary network: meta/plan.py Planner.plan() resolves the
    default-network selection with self.nad(...) but never calls self._isolation() for it (it
    does for every k8s.v1.cni.cncf.io/networks entry). Fix: call self._isolation(default_sel.
    namespace, pod_ns) there, allowing multusNamespace, where Multus resolves default networks."""
    refused(node, {DEFAULT_NET: "other/pl"}, 131, "namespace isolation")


def test_isolation_off_is_multus_default(node):
    """namespaceIsolation defaults to off (Multus's meaning): then any namespace may be named."""
    conf = {k: v for k, v in node.conf.items() if k != "namespaceIsolation"}
    rc, doc, c = add(node, {NETWORKS: "other/pl"}, conf)
    assert rc == 0, doc
    assert delete(node, c)[0] == 0 and leftovers(node) == {}


def test_pod_identity_from_cni_args_cannot_leave_nad_dir_or_status_dir(node):
    """K8S_POD_NAMESPACE / K8S_POD_NAME from CNI_ARGS are joined into file paths unchecked: the
    pod's namespace picks <nadDir>/<namespace>/<name>.json (meta/networks.py DirNADs.get_nad) and
    <statusDir>/<namespace>/<name>.json is written (meta/engine.py _publish_status). With
    K8S_POD_NAMESPACE=../outside a NAD outside nadDir is used, and K8S_POD_NAME=../../x writes
    the status file outside statusDir. CNI_ARGS come from the runtime (kubelet only sends DNS
    names), so this is hardening. Fix: refuse a K8S_POD_NAMESPACE that is not a DNS-1123 label
    and a K8S_POD_NAME that is not a DNS-1123 subdomain (code 4), in meta/engine.py PodRef."""
    outside = node.root / "outside"
    outside.mkdir(exist_ok=True)
    (outside / "x.json").write_text(json.dumps({"metadata": {"name": "x"}, "spec": {"config": json.dumps(
        {"cniVersion": "1.0.0", "type": "okplug"})}}))
    status = node.root / "status"
    conf = dict(node.conf, statusDir=str(status))
    results = {}
    for args, annots in (("K8S_POD_NAMESPACE=../outside;K8S_POD_NAME=p", {NETWORKS: "x"}),
                         (f"K8S_POD_NAMESPACE={POD_NS};K8S_POD_NAME=../../escaped", {})):
        rc, doc, c = add(node, annots, conf, CNI_ARGS=args)
        delete(node, c, CNI_ARGS=args)
        results[args] = doc.get("code") if rc else "accepted"
    escaped = node.root / "escaped.json"
    wrote_outside = escaped.exists()
    escaped.unlink(missing_ok=True)
    clean(node)
    assert not wrote_outside, "a status file was written outside statusDir"
    assert set(results.values()) == {4}, results


# ---------------------------------------------------------------- delegate types

def evil_types(n):
    return ["../bin/evil", str(n.root / "bin" / "evil"), "..", ".", "./okplug", "okplug/", "okplug;touch x",
            "$(touch x)", "okplug\x00", "okplug\n"]


def test_types_escaping_cni_path_are_refused_and_never_run(node):
    """From a NAD (a conf, a conflist plugin, an IPAM section, an sriov IPAM) and from the netmeta
    config's delegates: code 7, and the planted program outside CNI_PATH never runs."""
    tried = 0
    for t in evil_types(node):
        shapes = [{"cniVersion": "1.0.0", "type": t},
                  {"cniVersion": "1.0.0", "plugins": [{"type": "okplug"}, {"type": t}]},
                  {"cniVersion": "1.0.0", "type": "okplug", "ipam": {"type": t}},
                  dict(node.safe, cniVersion="1.0.0", type="sriov", ipam={"type": t})]
        for shape in shapes:
            nad(node, POD_NS, "h", shape)
            rc, doc, c = add(node, {NETWORKS: "h"})
            delete(node, c)
            clean_vf(node)
            clean(node)
            tried += 1
            if shape.get("type") == "okplug" and "ipam" in shape:
                continue    # okplug ignores its ipam section (a plugin's own business): nothing to refuse
            if t == "okplug\n":   # TYPE_RE ends in `$`, which matches before a final newline: it passes
                # validation and is then simply not found (102); no file can be reached by it
                assert rc != 0 and doc["code"] in (7, 102), (t, shape, doc)
                continue
            assert rc != 0 and doc["code"] == 7 and "plugin type" in doc["msg"], (t, shape, doc)
        conf = dict(node.conf, delegates=[{"cniVersion": "1.0.0", "name": "d", "type": t}])
        rc, doc, c = add(node, {}, conf)
        delete(node, c)
        clean(node)
        tried += 1
        assert rc != 0 and doc["code"] in ((7, 102) if t == "okplug\n" else (7,)), (t, doc)
    assert not node.marker.exists(), "a plugin outside CNI_PATH was executed"
    print(f"\n{tried} type cases refused, none executed")


def clean_vf(n):
    """The sriov+bad-IPAM case leaves its VF in the pod (see test_hostile_meta_sriov, xfail): put it back."""
    rdir = os.path.join(n.nic["stateDir"], n.nic["master"])
    for f in os.listdir(rdir) if os.path.isdir(rdir) else []:
        if f.endswith(".json"):
            p = os.path.join(rdir, f)
            with open(p) as fh:
                rec = json.load(fh)
            rec.pop("ipam", None)
            with open(p, "w") as fh:
                json.dump(rec, fh)
            from delegates.sriov.plugin import SRIOVPlugin
            conf = dict(n.safe, cniVersion="1.0.0", name="c", type="sriov")
            skel.handle(SRIOVPlugin(), env(n, "DEL", CNI_CONTAINERID=rec["containerID"], CNI_IFNAME=rec["ifname"]),
                        json.dumps(conf).encode())


def test_a_refused_type_leaves_nothing_behind(node):
    """A NAD (or a netmeta delegate) whose `type` is refused must leave nothing: meta/plan.py
    never validates delegate types, so the DEL cache is written, the ADD fails at that delegate
    (invoke.validate_type), its rollback DEL fails the same way and the cache is KEPT; every DEL of
    the sandbox then fails with code 7, forever (the runtime cannot tear the pod down). Fix:
    validate every plugin type (conf, conflist plugins, ipam) with invoke.validate_type in
    networks._parse_conf / config.load, i.e. before the DEL cache is written."""
    nad(node, POD_NS, "h", {"cniVersion": "1.0.0", "plugins": [{"type": "okplug"}, {"type": "../bin/evil"}]})
    rc, doc, c = add(node, {NETWORKS: "h"})
    left = leftovers(node)
    d, dout = delete(node, c)
    clean(node)
    assert rc != 0 and doc["code"] == 7
    assert left == {} and d == 0, (left, dout)


# ---------------------------------------------------------------- root-only daemon and state files

def walk_modes(top) -> list:
    """(path, kind, mode, uid) of everything under top."""
    out = []
    for r, ds, fs in os.walk(top):
        for name in ds + fs:
            p = os.path.join(r, name)
            st = os.lstat(p)
            kind = "dir" if stat.S_ISDIR(st.st_mode) else "socket" if stat.S_ISSOCK(st.st_mode) else "file"
            out.append((p, kind, stat.S_IMODE(st.st_mode), st.st_uid))
    return out


@pytest.fixture
def served(node, tmp_path):
    """A daemon over the sim NIC, all of its paths (and the netmeta config's) under one fresh
    directory that netmeta creates itself; one real ADD (okplug + SR-IOV VF with a fixed IP) done."""
    top = tmp_path / "node"
    top.mkdir(mode=0o755)
    var, run = top / "var" / "lib" / "netmeta", top / "run" / "netmeta"
    nic = dict(node.nic, stateDir=str(var / "sriov"))
    d = DaemonProc(tmp_path / "d", socketPath=str(run / "netmeta.sock"), cniDir=str(var / "cache"),
                   statusFile=str(run / "node-status.json"),
                   pfs=[{k: nic[k] for k in ("master", "sysfsRoot", "backend", "stateDir")}])
    os.makedirs(d.dir, exist_ok=True)
    d.start()
    nads = tmp_path / "nads" / POD_NS
    nads.mkdir(parents=True)
    sr = dict({k: nic[k] for k in ("master", "sysfsRoot", "backend", "stateDir")}, cniVersion="1.0.0", type="sriov",
              capabilities={"ips": True}, ipam={"type": "fixipam", "subnet": "10.64.0.0/24", "dataDir": str(var / "fixipam")})
    (nads / "sr.json").write_text(json.dumps({"metadata": {"name": "sr"}, "spec": {"config": json.dumps(sr)}}))
    conf = dict(node.conf, mode="daemon", socketPath=d.socket, cniDir=str(var / "cache"), nadDir=str(tmp_path / "nads"),
                statusDir=str(var / "status"), logFile=str(run / "netmeta.log"),   # run: made by the daemon
                runtimeConfig={ANNOTS: {NETWORKS: json.dumps([{"name": "sr", "ips": ["10.64.0.9/24"]}])}})
    kw = {"container_id": "perm1", "netns": node.nspath, "path": str(node.plug),
          "args": f"IgnoreUnknown=1;K8S_POD_NAMESPACE={POD_NS};K8S_POD_NAME=permpod"}
    r = cni("netmeta", "ADD", conf, **kw)
    assert r.ok, r.stdout + r.stderr.encode()
    try:
        yield {"daemon": d, "top": top, "conf": conf, "kw": kw}
    finally:
        cni("netmeta", "DEL", conf, **kw)
        d.stop()
        for f in os.listdir(node.marks):
            os.unlink(node.marks / f)


def test_state_files_and_socket_are_root_only(served):
    """Every file netmeta wrote for that pod (DEL cache, VF record, IP reservation, locks,
    network-status file, node status file, log) and the socket are 0600 and root's, and every
    directory holding one of them is 0700 and root's; checked with the pod still attached.
    (The parents above those directories: next test.)"""
    entries = walk_modes(served["top"])
    names = {os.path.basename(p) for p, *_ in entries}
    assert {"perm1-eth0.json", "vf0.json", "10.64.0.9", "node-status.json", "-_perm1.json", "netmeta.sock",
            "netmeta.log", ".lock"} <= names, sorted(names)
    files = [(p, kind, mode, uid) for p, kind, mode, uid in entries if kind != "dir"]
    bad = [(os.path.relpath(p, served["top"]), oct(mode), uid) for p, _, mode, uid in files if uid != 0 or mode != 0o600]
    holders = {os.path.dirname(p) for p, *_ in files}
    for p in sorted(holders):
        st = os.stat(p)
        if st.st_uid != 0 or stat.S_IMODE(st.st_mode) != 0o700:
            bad.append((os.path.relpath(p, served["top"]) + "/", oct(stat.S_IMODE(st.st_mode)), st.st_uid))
    print(f"\n{len(files)} state files and {len(holders)} directories holding them checked")
    assert not bad, bad


def test_directories_netmeta_creates_are_0700_at_every_level(served):
    """os.makedirs(d, mode=0o700) applies the mode to the last directory only; the parents it
    creates get 0777 & ~umask (0755), e.g. <top>/var, var/lib, lib/netmeta here, and on a node
    /var/lib/cni/netmeta and /run/netmeta's parents when missing. Names of networks, namespaces
    and containers below them are then listable by any user. Fix: a helper in cni/files.py that
    creates each missing component with mode 0700 (used by atomic_write, locked, the daemon's
    socket directory)."""
    entries = walk_modes(served["top"])
    bad = [(os.path.relpath(p, served["top"]), oct(mode)) for p, kind, mode, _ in entries if kind == "dir" and mode != 0o700]
    assert not bad, bad


def test_a_non_root_user_gets_nothing_from_the_daemon_through_the_shim(served, node):
    """The shim run as nobody (uid 65534): it cannot connect (socket 0600 in a 0700 directory),
    so in daemon mode it answers code 11 itself, and in auto mode it falls back in-process and
    fails on the root-only state; the daemon served nothing and nothing changed."""
    d = served["daemon"]
    exe = f"{VENV_BIN}/netmeta"
    assert not os.stat(exe).st_mode & (stat.S_ISUID | stat.S_ISGID), "the shim must not be setuid/setgid"
    before = d.metric("netmeta_cni_request_seconds_count")
    cache_before = sorted(os.listdir(served["conf"]["cniDir"]))
    outs = {}
    for mode in ("daemon", "auto"):
        conf = json.dumps(dict(served["conf"], mode=mode))
        e = {"PATH": "/usr/bin:/bin", "CNI_COMMAND": "ADD", "CNI_CONTAINERID": "nobody1", "CNI_NETNS": node.nspath,
             "CNI_IFNAME": "eth0", "CNI_PATH": str(node.plug), "CNI_ARGS": "IgnoreUnknown=1"}
        p = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", exe], input=conf.encode(),
                           env=e, capture_output=True, timeout=60, check=False)
        outs[mode] = (p.returncode, json.loads(p.stdout) if p.stdout.strip() else None, p.stderr.decode()[-300:])
    print(f"\nshim as uid 65534: daemon mode -> {outs['daemon'][1]}, auto mode -> {outs['auto'][1]}")
    assert outs["daemon"][0] != 0 and outs["daemon"][1]["code"] == 11, outs["daemon"]
    assert outs["auto"][0] != 0 and outs["auto"][1] and outs["auto"][1]["code"] != 0, outs["auto"]
    assert d.metric("netmeta_cni_request_seconds_count") == before, "the daemon served a non-root caller"
    assert sorted(os.listdir(served["conf"]["cniDir"])) == cache_before
    # the raw socket too
    probe = ("import socket\ns=socket.socket(socket.AF_UNIX)\n"
             f"try:\n s.connect({d.socket!r}); print('connected')\nexcept OSError as e: print(type(e).__name__)")
    r = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "/usr/bin/python3", "-c", probe],
                       capture_output=True, text=True, check=False)
    assert r.stdout.strip() == "PermissionError", r


def test_network_status_file_is_removed_on_del(node, tmp_path):
    """Kubernetes-free mode writes <statusDir>/<ns>/<pod>/<uid>_<cid>.json on ADD (meta/engine.py
    _publish_status) and nothing removes it: DEL and GC leave one file per pod sandbox for
    good (a leak on every node without an API server; Multus also clears network-status on
    DEL)."""
    conf = dict(node.conf, statusDir=str(tmp_path / "status"))
    rc, doc, c = add(node, {NETWORKS: "pl"}, conf)
    assert rc == 0, doc
    assert (tmp_path / "status" / POD_NS / "sp" / "-_sec1.json").exists()   # meta/statusfile.py
    assert delete(node, c)[0] == 0 and leftovers(node) == {}
    left = [f for _, _, fs in os.walk(tmp_path / "status") for f in fs]
    assert left == [], f"status files left after DEL: {left}"




def test_fault_injection_is_off_in_a_production_daemon(node, tmp_path):
    """NETMETA_FAULT forwarded over the socket is honoured only by a daemon started with
    NETMETA_ALLOW_FAULTS=1 (tests); a normal daemon ignores it: a root caller cannot crash it."""
    cfg = {"socketPath": str(tmp_path / "run" / "nm.sock"), "cniDir": str(node.cache), "httpAddr": ""}
    (tmp_path / "d.json").write_text(json.dumps(cfg))
    e = {k: v for k, v in os.environ.items() if k != "NETMETA_ALLOW_FAULTS"}
    with open(tmp_path / "d.log", "wb") as log:
        p = subprocess.Popen([f"{VENV_BIN}/netmeta", "daemon", "--config", str(tmp_path / "d.json")], stdout=log,
                             stderr=log, env=e)
    try:
        import time
        deadline = time.monotonic() + 20
        while not os.path.exists(cfg["socketPath"]) and time.monotonic() < deadline:
            time.sleep(0.05)
        conf = json.dumps(dict(node.conf, runtimeConfig={ANNOTS: {}})).encode()
        req = dict(env(node, CNI_CONTAINERID="fault1"), NETMETA_PLUGIN="netmeta", NETMETA_FAULT="meta.add.cached")
        import socket
        s = socket.socket(socket.AF_UNIX)
        s.settimeout(30)
        s.connect(cfg["socketPath"])
        s.sendall(wire.encode_request(req, conf))
        code, out = wire.decode_response(s.recv)
        s.close()
        assert code == 0 and p.poll() is None, (code, out)
        s = socket.socket(socket.AF_UNIX)
        s.connect(cfg["socketPath"])
        s.sendall(wire.encode_request(dict(req, CNI_COMMAND="DEL"), conf))
        assert wire.decode_response(s.recv)[0] == 0
        s.close()
        assert leftovers(node) == {}
    finally:
        p.terminate()
        p.wait(30)


# ---------------------------------------------------------------- CNI_ARGS and pod identity

def test_a_pod_cannot_inject_cni_args(node):
    """What a pod author controls (its annotations) never reaches CNI_ARGS: `ips` and `mac` are
    validated before they become IP=/MAC= for delegates without the capability, and `cni-args`
    goes into the delegate's config (args.cni), not into CNI_ARGS."""
    for bad in ([{"name": "spy", "ips": ["10.63.0.5/24;K8S_POD_NAME=victim"]}],
                [{"name": "spy", "mac": "02:00:00:00:00:01;K8S_POD_NAMESPACE=kube-system"}],
                [{"name": "spy", "ips": ["10.63.0.5/24\nK8S_POD_NAME=victim"]}]):
        refused(node, {NETWORKS: json.dumps(bad)}, 7, "")
    rc, doc, c = add(node, {NETWORKS: json.dumps([{"name": "spy", "ips": ["10.63.0.5/24"], "mac": "02:00:00:00:00:01",
                                                   "cni-args": {"K8S_POD_NAME": "victim", "IP": "1.2.3.4"}}])})
    assert rc == 0, doc
    args = (node.spy / "args").read_text()
    stdin = json.loads((node.spy / "stdin").read_text())
    delete(node, c)
    clean(node)
    pairs = dict(p.split("=", 1) for p in args.split(";") if p)
    assert pairs["K8S_POD_NAME"] == "sp" and pairs["K8S_POD_NAMESPACE"] == POD_NS, args
    assert pairs.get("IP") == "10.63.0.5/24" and pairs.get("MAC") == "02:00:00:00:00:01", args
    assert stdin["args"]["cni"] == {"K8S_POD_NAME": "victim", "IP": "1.2.3.4"}


@pytest.fixture(scope="module")
def api(tmp_path_factory):
    from tests.kubeapi.server import KubeAPIServer
    with open(os.path.join(REPO, "conf", "crd-network-attachment-definition.yaml")) as f:
        crd = yaml.safe_load(f)
    srv = KubeAPIServer(objects=[crd]).start()
    for ns in (POD_NS, "victims"):
        srv.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
    srv.kubeconfig_path = srv.kubeconfig(str(tmp_path_factory.mktemp("kube") / "kubeconfig"))
    yield srv
    srv.stop()


def test_cni_args_identity_is_checked_against_the_pod_uid(node, api):
    """CNI_ARGS is the runtime's (kubelet builds it from the pod object; a pod author cannot
    touch it). Duplicated keys follow libcni: the last one wins, so
    K8S_POD_NAME=attacker;K8S_POD_NAME=victim means the pod "victim". What stops a wrong
    identity from borrowing another pod's annotations is K8S_POD_UID: the engine compares it
    with the UID of the pod it reads from the API and refuses a mismatch (code 3). Without a
    UID (runtimes that omit it) the named pod's annotations are used: documented in
    docs/threat-model.md."""
    spy = {"cniVersion": "1.0.0", "type": "argspy"}
    api.create({"apiVersion": "k8s.cni.cncf.io/v1", "kind": "NetworkAttachmentDefinition",
                "metadata": {"name": "spy", "namespace": "victims"}, "spec": {"config": json.dumps(spy)}})
    attacker = api.create({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "attacker", "namespace": POD_NS},
                           "spec": {"nodeName": "n", "containers": [{"name": "c", "image": "pause"}]}})
    victim = api.create({"apiVersion": "v1", "kind": "Pod", "metadata": {
        "name": "victim", "namespace": "victims", "annotations": {NETWORKS: "spy"}},
        "spec": {"nodeName": "n", "containers": [{"name": "c", "image": "pause"}]}})
    conf = {k: v for k, v in node.conf.items() if k != "nadDir"}
    conf["kubeconfig"] = api.kubeconfig_path
    stdin = json.dumps(conf).encode()
    a_uid, v_uid = attacker["metadata"]["uid"], victim["metadata"]["uid"]
    cases = {
        "attacker's UID": f"K8S_POD_NAMESPACE={POD_NS};K8S_POD_NAME=attacker;K8S_POD_UID={a_uid};"
                          f"K8S_POD_NAMESPACE=victims;K8S_POD_NAME=victim",
        "forged UID": f"K8S_POD_NAMESPACE=victims;K8S_POD_NAME=victim;K8S_POD_UID={uuid.uuid4()}",
        "no UID": f"K8S_POD_NAMESPACE={POD_NS};K8S_POD_NAME=attacker;K8S_POD_NAMESPACE=victims;K8S_POD_NAME=victim",
        "victim's own UID": f"K8S_POD_NAMESPACE=victims;K8S_POD_NAME=victim;K8S_POD_UID={v_uid}",
    }
    got = {}
    for what, args in cases.items():
        e = env(node, CNI_ARGS="IgnoreUnknown=1;" + args, CNI_CONTAINERID="idn1")
        code, out = skel.handle(MetaPlugin(), e, stdin)
        got[what] = (json.loads(out)["code"] if code else "ok", (node.spy / "args").exists())
        skel.handle(MetaPlugin(), dict(e, CNI_COMMAND="DEL"), stdin)
        clean(node)
    print(f"\nCNI_ARGS identity: {got}")
    assert got["attacker's UID"] == (3, False) and got["forged UID"] == (3, False), got
    # documented: a name without UID is trusted (the runtime is), and the victim's own UID works
    assert got["no UID"] == ("ok", True) and got["victim's own UID"] == ("ok", True), got
