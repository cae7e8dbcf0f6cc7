"""Multus v4.1.4 drop-in fidelity (issue 16): what a Multus user relies on, kept as Multus has it,
in real network namespaces with Debian's bridge + host-local, against the test API server, in
thin mode and through the daemon (tests/daemonproc.py). Each case cites the Multus v4.1.4
source (tag v4.1.4 of k8snetworkplumbingwg/multus-cni: file and function) it copies; where
netmeta deliberately does better, the README's "Differences from Multus" says so."""
import json
import os
import subprocess
import time
import uuid

import pytest
import yaml

from tests import stubplugins
from tests.cnirun import CNI_PATH, DEBIAN_CNI, VENV_BIN, cni, ip_json
from tests.daemonproc import DaemonProc
from tests.kubeapi.server import KubeAPIServer

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
pytestmark = pytest.mark.skipif(not os.path.exists(f"{DEBIAN_CNI}/bridge"), reason="needs Debian CNI plugins")
RULES = [("get,list,watch,patch", "pods"), ("get,list,watch", "network-attachment-definitions"),
         ("get,patch", "nodes"), ("create", "events")]
NO_EVENTS = [r for r in RULES if r[1] != "events"]
STATUS = "k8s.v1.cni.cncf.io/network-status"


@pytest.fixture(scope="module")
def api(tmp_path_factory):
    with open(os.path.join(REPO, "conf", "crd-network-attachment-definition.yaml")) as f:
        crd = yaml.safe_load(f)
    user = "system:serviceaccount:kube-system:netmeta"
    srv = KubeAPIServer(tokens={"admin-token": "*", "netmeta-token": {"user": user, "rules": RULES},
                                "noevents-token": {"user": user, "rules": NO_EVENTS}}, objects=[crd]).start()
    have = {n["metadata"]["name"] for n in srv.list("namespaces")}
    for ns in {"team-a", "shared", "kube-system", "default"} - have:
        srv.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
    d = tmp_path_factory.mktemp("kube")
    srv.kubeconfig_path = srv.kubeconfig(str(d / "kubeconfig"), token="netmeta-token")
    srv.noevents_path = srv.kubeconfig(str(d / "kubeconfig-noevents"), token="noevents-token")
    yield srv
    srv.stop()


_daemons: dict = {}


@pytest.fixture(scope="module", params=["thin", "daemon"])
def mode(request, api, tmp_path_factory):
    """thin: the engine in the exec'd process; daemon: one `netmeta daemon` (its own kube
    identity and watch caches) serves every call of the module."""
    if request.param == "daemon":
        d = DaemonProc(tmp_path_factory.mktemp("daemon"), kubeconfig=api.kubeconfig_path, nodeName="node1").start()
        _daemons["daemon"] = d
        yield "daemon"
        d.stop()
        _daemons.pop("daemon", None)
    else:
        yield "thin"


class Node:
    """One test's node: its bridges, host-local dir, cache dir, NADs, pods and netns."""

    def __init__(self, api, mode, uid, tmp, netns):
        self.api, self.mode, self.uid, self.tmp, self.netns_factory = api, mode, uid, tmp, netns
        self.daemon = _daemons.get(mode)
        self.bridges = [f"nmf{uid}c", f"nmf{uid}s"]
        self.cluster = {"cniVersion": "1.0.0", "name": "cluster-net", "type": "bridge", "bridge": self.bridges[0],
                        "ipam": {"type": "host-local", "subnet": "10.244.1.0/24", "dataDir": str(tmp / "hostlocal")}}
        self.side_conf = {"cniVersion": "1.0.0", "name": "side", "type": "bridge", "bridge": self.bridges[1],
                          "ipam": {"type": "host-local", "subnet": "10.99.1.0/24", "dataDir": str(tmp / "hostlocal")}}
        self.nads = []

    def conf(self, **kw):
        c = {"cniVersion": "1.0.0", "name": "netmeta", "type": "netmeta", "kubeconfig": self.api.kubeconfig_path,
             "cniDir": str(self.tmp / "cache"), "mode": self.mode, "delegates": [self.cluster]}
        if self.daemon:
            c["socketPath"] = self.daemon.socket
        c.update(kw)
        return {k: v for k, v in c.items() if v is not None}

    def nad(self, ns, name, conf):
        self.api.create({"apiVersion": "k8s.cni.cncf.io/v1", "kind": "NetworkAttachmentDefinition",
                         "metadata": {"name": name, "namespace": ns}, "spec": {"config": json.dumps(conf)}})
        self.nads.append((ns, name))
        return name

    def pod(self, ns="team-a", annotations=None, create=True, uid=None):
        name = f"p{uuid.uuid4().hex[:8]}"
        pod_uid = uid or str(uuid.uuid4())
        if create:
            pod_uid = self.create_pod(ns, name, annotations)["metadata"]["uid"] if not uid else uid
        netns = self.netns_factory()
        cid = uuid.uuid4().hex
        return {"name": name, "ns": ns, "netns": netns, "path": f"/var/run/netns/{netns}", "cid": cid,
                "uid": pod_uid, "annotations": annotations,
                "args": f"IgnoreUnknown=1;K8S_POD_NAMESPACE={ns};K8S_POD_NAME={name};"
                        f"K8S_POD_INFRA_CONTAINER_ID={cid};K8S_POD_UID={pod_uid}"}

    def create_pod(self, ns, name, annotations=None):
        return self.api.create({"apiVersion": "v1", "kind": "Pod",
                                "metadata": {"name": name, "namespace": ns, "annotations": annotations or {}},
                                "spec": {"nodeName": "node1", "containers": [{"name": "c", "image": "pause"}]}})

    def call(self, pod, command, conf=None, path=CNI_PATH):
        return cni("netmeta", command, conf or self.conf(), container_id=pod["cid"], netns=pod["path"],
                   args=pod["args"], path=path)

    def popen(self, pod, command, conf=None):
        """A CNI call left running (ADD held back by the readiness file, the pod's GET)."""
        env = {"PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"), "CNI_COMMAND": command,
               "CNI_CONTAINERID": pod["cid"], "CNI_NETNS": pod["path"], "CNI_IFNAME": "eth0",
               "CNI_ARGS": pod["args"], "CNI_PATH": CNI_PATH}
        stdin = self.tmp / f"stdin-{pod['cid']}.json"
        stdin.write_text(json.dumps(conf or self.conf()))
        with open(stdin, "rb") as f:
            return subprocess.Popen([f"{VENV_BIN}/netmeta"], stdin=f, stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, env=env)

    def log(self, run):
        """What netmeta logged for a call: its stderr (thin) or the daemon's log."""
        return self.daemon.log() if self.daemon else run.stderr

    def leases(self, net):
        d = self.tmp / "hostlocal" / net
        return sorted(f for f in os.listdir(d) if f[0].isdigit()) if d.exists() else []

    def status(self, pod):
        obj = self.api.get("pods", pod["name"], pod["ns"])
        raw = (obj["metadata"].get("annotations") or {}).get(STATUS)
        return json.loads(raw) if raw else None

    def events(self, pod):
        return [e for e in self.api.list("events", pod["ns"]) if e["involvedObject"]["name"] == pod["name"]]

    def cleanup(self):
        for b in self.bridges:
            subprocess.run(["ip", "link", "del", b], capture_output=True)
        for ns, name in self.nads:
            self.api.delete("network-attachment-definitions", name, ns)


@pytest.fixture
def node(api, mode, uid, tmp_path, netns):
    n = Node(api, mode, uid, tmp_path, netns)
    yield n
    n.cleanup()


def ifnames(pod):
    return sorted(link["ifname"] for link in ip_json("link", "show", netns=pod["netns"]))


def ok(r):
    assert r.ok, (r.stdout, r.stderr[-3000:])
    return r


# ---------------- systemNamespaces ----------------
# Multus v4.1.4 pkg/k8sclient/k8sclient.go GetDefaultNetworks: defaultNetworks are skipped for a
# pod in systemNamespaces ("Pod in kube-system namespace does not have default network"); its own
# k8s.v1.cni.cncf.io/networks still apply (TryLoadPodDelegates has no namespace check).
@pytest.mark.parametrize("pod_ns,expected", [
    ("kube-system", ["eth0", "lo", "net1"]),          # pod's own network only
    ("team-a", ["eth0", "lo", "net1", "net2"]),       # defaultNetworks (net1) + pod's own (net2)
])
def test_system_namespaces_skip_only_default_networks(node, pod_ns, expected):
    extra = node.nad("kube-system", f"extra-{node.uid}", dict(node.side_conf, name="extra",
                                                              ipam=dict(node.side_conf["ipam"], subnet="10.99.2.0/24")))
    own = node.nad(pod_ns, f"own-{node.uid}", node.side_conf)
    conf = node.conf(defaultNetworks=[extra])
    pod = node.pod(pod_ns, {"k8s.v1.cni.cncf.io/networks": own})
    ok(node.call(pod, "ADD", conf))
    assert ifnames(pod) == expected
    assert [s["name"] for s in node.status(pod)][-1] == f"{pod_ns}/{own}"
    ok(node.call(pod, "DEL", conf))
    assert node.leases("side") == [] and node.leases("extra") == []


# ---------------- readinessindicatorfile ----------------
# Multus v4.1.4 pkg/multus/multus.go CmdAdd -> pkg/types/conf.go GetReadinessIndicatorFile:
# PollImmediate(1 s, 45 s) for the file; ADD fails ("have you checked that your default network
# is ready? still waiting for readinessindicatorfile") when it never appears. CmdDel only warns
# (ReadinessIndicatorExistsNow).
def test_readiness_file_created_while_add_waits(node):
    ready = node.tmp / "ready" / "cluster-net.conf"
    conf = node.conf(readinessindicatorfile=str(ready))    # Multus's 45 s limit
    pod = node.pod()
    p = node.popen(pod, "ADD", conf)
    try:
        # ADD is held: nothing attached while the file is missing (polled, not timed)
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            assert p.poll() is None, p.communicate()
            assert ifnames(pod) == ["lo"]
            time.sleep(0.2)
        ready.parent.mkdir()
        ready.write_text("{}")
        out, err = p.communicate(timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert p.returncode == 0, (out, err)
    assert json.loads(out)["interfaces"][-1]["name"] == "eth0" and ifnames(pod) == ["eth0", "lo"]
    ready.unlink()
    ok(node.call(pod, "DEL", conf))      # DEL never waits for it
    assert node.leases("cluster-net") == []


def test_readiness_file_that_never_appears_fails_add(node):
    conf = node.conf(readinessindicatorfile=str(node.tmp / "never"), readinessTimeout=1)
    pod = node.pod()
    r = node.call(pod, "ADD", conf)
    assert r.rc != 0 and r.out["code"] == 11 and "readinessindicatorfile" in r.out["msg"], r.out
    assert ifnames(pod) == ["lo"] and node.leases("cluster-net") == []
    assert not os.path.exists(node.tmp / "cache") or os.listdir(node.tmp / "cache") == []


# ---------------- globalNamespaces ----------------
# Multus v4.1.4 pkg/types/conf.go GetDefaultNetConf (RawNonIsolatedNamespaces defaults to
# defaultNonIsolatedNamespace "default") and LoadNetConf (globalNamespaces, when set, replaces
# it); pkg/k8sclient/k8sclient.go GetNetworkDelegates / isValidNamespaceReference.
@pytest.mark.parametrize("global_ns,target,allowed", [
    (None, "default", True), (None, "shared", False),
    ("shared", "shared", True), ("shared", "default", False),
    ("shared,default", "default", True),
])
def test_global_namespaces_replace_default(node, global_ns, target, allowed):
    name = node.nad(target, f"g-{node.uid}", node.side_conf)
    conf = node.conf(namespaceIsolation=True, globalNamespaces=global_ns)
    pod = node.pod("team-a", {"k8s.v1.cni.cncf.io/networks": f"{target}/{name}"})
    r = node.call(pod, "ADD", conf)
    if allowed:
        ok(r)
        assert ifnames(pod) == ["eth0", "lo", "net1"]
        ok(node.call(pod, "DEL", conf))
    else:
        assert r.rc != 0 and r.out["code"] == 131 and target in r.out["msg"], r.out
        assert ifnames(pod) == ["lo"]
    assert node.leases("cluster-net") == [] and node.leases("side") == []


# ---------------- a delegate's own cniVersion ----------------
# Multus v4.1.4 pkg/multus/multus.go confAdd/conflistAdd hand the delegate's config bytes to libcni
# (AddNetwork/AddNetworkList), which execs the plugin with them: cniVersion unchanged.
@pytest.mark.parametrize("version", ["0.3.1", "0.4.0", "1.0.0"])
def test_exec_delegate_gets_its_own_cni_version(node, version):
    spydir = node.tmp / "spy"
    spydir.mkdir()
    bindir = node.tmp / "bin"
    bindir.mkdir()
    stubplugins.install(bindir / "cnispy", stubplugins.CNISPY, "SPY", spydir)
    name = node.nad("team-a", f"spy-{node.uid}", dict(node.side_conf, type="cnispy", cniVersion=version))
    conf = node.conf(cniVersion="1.1.0")
    pod = node.pod("team-a", {"k8s.v1.cni.cncf.io/networks": name})
    path = f"{bindir}:{CNI_PATH}"
    ok(node.call(pod, "ADD", conf, path=path))
    seen = json.loads((spydir / f"ADD-{pod['cid']}-net1.json").read_text())
    # the NAD's config as written: its cniVersion and its own name (GetCNIConfigFromSpec names
    # it after the NAD only when it has none)
    assert seen["cniVersion"] == version and seen["name"] == "side"
    assert ifnames(pod) == ["eth0", "lo", "net1"]
    ok(node.call(pod, "DEL", conf, path=path))
    assert json.loads((spydir / f"DEL-{pod['cid']}-net1.json").read_text())["cniVersion"] == version
    assert node.leases("side") == []


# ---------------- the result returned to the runtime ----------------
# Multus v4.1.4 pkg/multus/multus.go CmdAdd: "Master plugin result is always used if present":
# the cluster network's result; every attachment is in network-status.
def test_result_is_the_cluster_networks(node):
    side = node.nad("team-a", f"side-{node.uid}", node.side_conf)
    pod = node.pod("team-a", {"k8s.v1.cni.cncf.io/networks": side})
    r = ok(node.call(pod, "ADD"))
    assert [i["name"] for i in r.out["interfaces"] if i.get("sandbox")] == ["eth0"]
    assert [ip["address"].rsplit(".", 1)[0] for ip in r.out["ips"]] == ["10.244.1"]
    assert [(s["interface"], s["ips"][0].rsplit(".", 1)[0]) for s in node.status(pod)] == \
        [("eth0", "10.244.1"), ("net1", "10.99.1")]
    ok(node.call(pod, "DEL"))


# ---------------- static pods ----------------
# Multus v4.1.4 pkg/multus/multus.go GetPod: the UID check is skipped for a static pod
# (pkg/k8sclient/k8sclient.go IsStaticPod: kubernetes.io/config.source present and not "api";
# the mirror pod the API holds has another UID than the kubelet's); else "expected pod UID".
@pytest.mark.parametrize("annotations,allowed", [
    ({"kubernetes.io/config.mirror": "8d5c9f", "kubernetes.io/config.source": "file"}, True),
    ({"kubernetes.io/config.source": "http"}, True),
    ({"kubernetes.io/config.source": "api"}, False),
    ({}, False),
])
def test_static_pod_skips_the_uid_check(node, annotations, allowed):
    name = f"p{uuid.uuid4().hex[:8]}"
    node.create_pod("team-a", name, annotations)
    pod = node.pod("team-a", create=False, uid=str(uuid.uuid4()))   # the kubelet's UID
    pod["args"] = pod["args"].replace(pod["name"], name)
    pod["name"] = name
    r = node.call(pod, "ADD")
    if allowed:
        ok(r)
        assert ifnames(pod) == ["eth0", "lo"]
        ok(node.call(pod, "DEL"))
    else:
        assert r.rc != 0 and r.out["code"] == 3 and "UID" in r.out["msg"], r.out
        assert ifnames(pod) == ["lo"]
    assert node.leases("cluster-net") == []


# ---------------- unknown and ignored meta-config keys ----------------
# Multus v4.1.4 pkg/types/conf.go LoadNetConf: json.Unmarshal into NetConf ignores keys it does
# not know; binDir, logToStderr, logOptions, retryDeleteOnError are NetConf fields;
# daemonSocketDir is the thick shim's (cmd/multus-shim). Our own delegates stay strict.
@pytest.mark.parametrize("extra,warned", [
    ({"daemonSocketDir": "/run/multus"}, None),
    ({"binDir": "/opt/cni/bin", "logToStderr": True, "retryDeleteOnError": True}, None),
    ({"logOptions": {"maxSize": 10, "maxAge": 5, "maxBackups": 2, "compress": True}}, None),
    ({"someFutureMultusKey": {"x": 1}}, "someFutureMultusKey"),
])
def test_unknown_meta_keys_warn(node, extra, warned):
    conf = node.conf(**extra)
    pod = node.pod()
    r = ok(node.call(pod, "ADD", conf))
    log = node.log(r)
    if warned:
        assert f"ignoring unknown key(s) in the netmeta configuration: {warned}" in log
    ok(node.call(pod, "DEL", conf))


def test_our_delegates_configs_stay_strict(node):
    ipam = {"type": "fixipam", "subnet": "10.98.0.0/24", "dataDir": str(node.tmp / "fixipam"), "bogusKey": 1}
    bad = node.nad("team-a", f"strict-{node.uid}", dict(node.side_conf, ipam=ipam))
    pod = node.pod("team-a", {"k8s.v1.cni.cncf.io/networks": json.dumps([{"name": bad, "ips": ["10.98.0.5/24"]}])})
    r = node.call(pod, "ADD")
    assert r.rc != 0 and r.out["code"] == 7 and "bogusKey" in (r.out["msg"] + r.out.get("details", "")), r.out
    assert ifnames(pod) == ["lo"] and node.leases("cluster-net") == []


# ---------------- Events ----------------
# Multus v4.1.4 pkg/multus/multus.go DelegateAdd: Eventf(pod, Normal, "AddedInterface",
# "Add %s %v from %s", ifname, ips, delegate.Name) per attachment with interfaces or IPs;
# pkg/k8sclient/k8sclient.go getKubernetesDelegate: Warning "NoNetworkFound"; both through
# client-go's recorder to core/v1 Events (pkg/k8sclient/kubeconfig.go GetK8sClient).
def test_an_event_per_attachment(node):
    side = node.nad("team-a", f"side-{node.uid}", node.side_conf)
    pod = node.pod("team-a", {"k8s.v1.cni.cncf.io/networks": side})
    ok(node.call(pod, "ADD"))
    evs = node.api.wait_for(lambda: len(node.events(pod)) >= 2 and node.events(pod), timeout=20)
    st = {s["interface"]: s["ips"][0] for s in node.status(pod)}
    assert sorted((e["type"], e["reason"], e["message"]) for e in evs) == [
        ("Normal", "AddedInterface", f"Add eth0 [{st['eth0']}/24] from cluster-net"),
        ("Normal", "AddedInterface", f"Add net1 [{st['net1']}/24] from team-a/{side}")]
    assert all(e["involvedObject"]["uid"] == pod["uid"] and e["source"]["component"] == "netmeta" for e in evs)
    ok(node.call(pod, "DEL"))


def test_no_network_found_is_a_warning_event(node):
    pod = node.pod("team-a", {"k8s.v1.cni.cncf.io/networks": "missing-net"})
    r = node.call(pod, "ADD")
    assert r.rc != 0 and r.out["code"] == 132, r.out
    evs = node.api.wait_for(lambda: node.events(pod), timeout=20)
    assert [(e["type"], e["reason"]) for e in evs] == [("Warning", "NoNetworkFound")]
    assert "cannot find a network-attachment-definition (missing-net) in namespace (team-a)" in evs[0]["message"]


def test_events_forbidden_by_rbac_add_still_succeeds(node, api, tmp_path_factory):
    d = None
    if node.mode == "daemon":   # the daemon's identity is the one that posts events
        d = DaemonProc(tmp_path_factory.mktemp("noevents"), kubeconfig=api.noevents_path, nodeName="node1").start()
        node.daemon = d
    try:
        conf = node.conf(kubeconfig=api.noevents_path)
        pod = node.pod()
        api.clear_log()
        r = ok(node.call(pod, "ADD", conf))
        assert ifnames(pod) == ["eth0", "lo"] and node.status(pod)[0]["interface"] == "eth0"
        api.wait_for(lambda: api.find(method="POST", resource="events"), timeout=20)
        assert {x.status for x in api.find(method="POST", resource="events")} == {403}
        assert node.events(pod) == []
        api.wait_for(lambda: "events are forbidden to netmeta" in node.log(r), timeout=20)
        ok(node.call(pod, "DEL", conf))
    finally:
        if d:
            d.stop()


# ---------------- network-status before ADD returns; pending writes survive a restart -------
# Multus v4.1.4 pkg/multus/multus.go CmdAdd writes network-status (k8s.SetNetworkStatus) before
# it returns, and fails the ADD when it cannot; netmeta waits a few seconds (statuswriter
# SYNC_WAIT), then keeps it pending and retrying (README "Differences from Multus").
def test_network_status_is_there_when_add_returns(node):
    pod = node.pod()
    node.api.inject(method="PATCH", resource="pods", delay=0.3)   # a slow write: ADD waits for it
    r = ok(node.call(pod, "ADD"))
    st = node.status(pod)      # read at once: no polling
    assert st and st[0]["interface"] == "eth0" and st[0]["ips"] == [r.out["ips"][0]["address"].split("/")[0]]
    ok(node.call(pod, "DEL"))


def test_pending_network_status_survives_a_daemon_restart(node, api, tmp_path_factory):
    if node.mode != "daemon":
        pytest.skip("the daemon's background writer")
    d = DaemonProc(tmp_path_factory.mktemp("restart"), kubeconfig=api.kubeconfig_path, nodeName="node1").start()
    node.daemon = d
    try:
        pod = node.pod()
        api.inject(method="PATCH", resource="pods", status=500, count=None)
        try:
            ok(node.call(pod, "ADD"))          # returns although the write has not landed
            assert node.status(pod) is None
            pending = os.path.join(d.dir, "status-pending")
            assert len(os.listdir(pending)) == 1
            d.kill()                           # SIGKILL: nothing flushed on the way out
        finally:
            api.clear_faults()
        d.start()
        api.wait_for(lambda: node.status(pod), timeout=30)
        assert node.status(pod)[0]["interface"] == "eth0"
        api.wait_for(lambda: not os.listdir(pending), timeout=10)
        ok(node.call(pod, "DEL"))
    finally:
        d.stop()


# ---------------- a corrupt DEL cache ----------------
# Multus v4.1.4 pkg/multus/multus.go CmdDel: an unreadable cache ("failed to load netconf")
# leaves no delegates; with the pod gone it returns success without running any ("cannot
# properly delete": the cluster network's lease leaks, Multus issue #1087). netmeta rebuilds
# from the API while the pod exists, else from the config (cluster network + defaultNetworks);
# README "Differences from Multus".
@pytest.mark.parametrize("pod_state,released", [
    ("gone", {"cluster-net"}),
    ("recreated", {"cluster-net"}),          # same name, another UID: not this pod (Multus GetPod on DEL)
    ("present", {"cluster-net", "side"}),    # re-planned from the pod's annotations
])
def test_corrupt_cache_del_releases_the_cluster_lease(node, pod_state, released):
    side = node.nad("team-a", f"side-{node.uid}", node.side_conf)
    annots = {"k8s.v1.cni.cncf.io/networks": side}
    pod = node.pod("team-a", annots)
    ok(node.call(pod, "ADD"))
    assert node.leases("cluster-net") and node.leases("side")
    cache = node.tmp / "cache" / f"{pod['cid']}-eth0.json"
    cache.write_text('{"containerID": "' + pod["cid"][:7])        # torn
    if pod_state != "present":
        node.api.delete("pods", pod["name"], pod["ns"])
    if pod_state == "recreated":
        node.create_pod(pod["ns"], pod["name"], annots)
    r = ok(node.call(pod, "DEL"))
    assert "is corrupt: rebuilding it" in node.log(r)
    # at least these; the daemon's watch cache may still hold the deleted pod (same UID) for a
    # moment, and then its whole plan is undone, which is only better
    assert released <= {n for n in ("cluster-net", "side") if not node.leases(n)}
    assert not cache.exists()
    assert ok(node.call(pod, "DEL"))      # idempotent


def test_corrupt_cache_without_an_api_still_releases(node):
    conf = node.conf(kubeconfig=None)
    pod = node.pod()
    ok(node.call(pod, "ADD", conf))
    (node.tmp / "cache" / f"{pod['cid']}-eth0.json").write_text("\x00garbage")
    ok(node.call(pod, "DEL", conf))
    assert node.leases("cluster-net") == [] and ifnames(pod) == ["lo"]


def test_gc_collects_a_corrupt_cache_and_reconcile_reports_it(node, api, tmp_path_factory):
    conf = node.conf(cniVersion="1.1.0")
    pods = [node.pod(), node.pod()]
    for p in pods:
        ok(node.call(p, "ADD", conf))
    for p in pods:
        (node.tmp / "cache" / f"{p['cid']}-eth0.json").write_text("{")
    # start-up reconcile (a daemon on this cache dir) names them instead of skipping silently
    d = DaemonProc(tmp_path_factory.mktemp("reconcile"), cniDir=str(node.tmp / "cache")).start()
    d.stop()
    assert d.log().count("is corrupt; left for the runtime's DEL or CNI GC") == 2
    gc = dict(conf, **{"cni.dev/valid-attachments": [{"containerID": pods[1]["cid"], "ifname": "eth0"}]})
    r = ok(cni("netmeta", "GC", gc))
    assert "is corrupt: undoing the config's networks" in node.log(r)
    assert os.listdir(node.tmp / "cache") == [f"{pods[1]['cid']}-eth0.json"]
    # GC has no netns for it: the lease goes now, the veth with the pod's netns
    assert len(node.leases("cluster-net")) == 1
    ok(node.call(pods[1], "DEL", conf))
    assert node.leases("cluster-net") == []


# ---------------- the pod GET ----------------
# Multus v4.1.4 pkg/multus/multus.go GetPod: polls (250 ms; 50 ms on the informer) for up to 2.5 s
# (shortPollTimeout), retrying NotFound on ADD (the pod may reach the node before the cache or
# the API replica has it); on DEL NotFound is no error, and a UID mismatch only means "operate on
# the cache" ("we don't error out").
def test_pod_not_found_at_first_is_retried_on_add(node):
    pod = node.pod(create=False)
    pod["args"] = pod["args"].split(";K8S_POD_UID=")[0]    # the UID the API will give it is not known yet
    node.api.clear_log()
    p = node.popen(pod, "ADD")
    try:
        node.api.wait_for(lambda: node.api.find(method="GET", resource="pods", name=pod["name"], status=404),
                          timeout=30)
        created = node.create_pod(pod["ns"], pod["name"])
        out, err = p.communicate(timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert p.returncode == 0, (out, err)
    assert created["metadata"]["uid"] and ifnames(pod) == ["eth0", "lo"]
    ok(node.call(pod, "DEL"))


def test_pod_never_created_fails_add(node):
    pod = node.pod(create=False)
    r = node.call(pod, "ADD")
    assert r.rc != 0 and "HTTP 404" in r.out.get("details", ""), r.out
    assert len(node.api.find(method="GET", resource="pods", name=pod["name"], status=404)) > 1
    assert ifnames(pod) == ["lo"] and node.leases("cluster-net") == []


# ---------------- the operator CLI without --config ----------------
def test_status_and_gc_read_the_default_daemon_config(tmp_path):
    cfg = tmp_path / "daemon.yaml"
    env = dict(os.environ, NETMETA_DAEMON_CONFIG=str(cfg))
    # no file there: said plainly (status only: a gc on the built-in defaults would reconcile this
    # machine's real cniDir)
    r = subprocess.run([f"{VENV_BIN}/netmeta", "status", "-o", "json"], env=env, capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0 and f"no daemon config at {cfg} (the default)" in r.stderr, r.stderr
    cfg.write_text(f"nodeName: node-{tmp_path.name[-6:]}\ncniDir: {tmp_path / 'cache'}\nhttpAddr: ''\n")
    r = subprocess.run([f"{VENV_BIN}/netmeta", "status", "-o", "json"], env=env, capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0 and "no daemon config" not in r.stderr, r.stderr
    assert json.loads(r.stdout)["node"]["name"] == f"node-{tmp_path.name[-6:]}"
    r = subprocess.run([f"{VENV_BIN}/netmeta", "gc"], env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and "no daemon config" not in r.stderr, r.stderr


# ---------------- logLevel / logFile / logOptions ----------------
# Multus v4.1.4 pkg/types/conf.go LoadNetConf applies logLevel, logFile, logToStderr and logOptions
# (pkg/logging/logging.go SetLogOptions: lumberjack maxSize MB, maxAge days, maxBackups,
# compress). Through the daemon, the config's level applies to its logFile; stderr keeps the
# daemon's own level.
def test_log_level_and_file_from_the_cni_config(node, api, tmp_path_factory):
    d = None
    if node.mode == "daemon":   # a daemon whose own level is info (the tests' default is debug)
        d = DaemonProc(tmp_path_factory.mktemp("loglevel"), kubeconfig=api.kubeconfig_path, nodeName="node1")
        node.daemon = d.start(env={"NETMETA_LOG_LEVEL": "info"})
    try:
        logfile = node.tmp / "netmeta.log"
        conf = node.conf(logLevel="debug", logFile=str(logfile), logOptions={"maxSize": 1, "maxBackups": 2})
        pod = node.pod()
        ok(node.call(pod, "ADD", conf))
        ok(node.call(pod, "DEL", conf))
        text = logfile.read_text()
        exec_line = f"DEBUG netmeta.invoke [{pod['cid'][:12]}] exec {DEBIAN_CNI}/bridge ADD"
        assert exec_line in text
        assert oct(logfile.stat().st_mode & 0o777) == "0o600"
        if d:
            assert f"[{pod['cid'][:12]}]" in d.log() and exec_line not in d.log()   # stderr: the daemon's info
    finally:
        if d:
            d.stop()


def test_log_options_rotate_and_compress(tmp_path):
    """The rotation itself (cni/log.py), in-process: 1 MB files, two gzip'd backups kept."""
    import gzip
    import logging

    from cni import log
    path = tmp_path / "rot.log"
    log.setup("info", str(path), {"maxSize": 1, "maxBackups": 2, "compress": True})
    lg = log.get("rotation-test")
    line = "x" * 1000
    try:
        for i in range(3500):          # ~3.5 MB: three rollovers
            lg.info("%d %s", i, line)
    finally:
        root = logging.getLogger("netmeta")
        for h in [h for h in root.handlers if getattr(h, "baseFilename", None) == str(path)]:
            root.removeHandler(h)
            h.close()
    names = sorted(os.listdir(tmp_path))
    assert names == ["rot.log", "rot.log.1.gz", "rot.log.2.gz"], names
    assert path.stat().st_size <= 1024 * 1024
    assert gzip.open(tmp_path / "rot.log.1.gz").read().decode().count(line) > 900
    assert all(oct((tmp_path / n).stat().st_mode & 0o777) == "0o600" for n in names)
