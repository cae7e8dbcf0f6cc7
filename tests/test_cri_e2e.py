"""Tier 4: the kubelet path. A private containerd 1.6 (tests/runtime/) runs `netmeta` through its
CRI plugin, driven over CRI like kubelet: RunPodSandbox -> PodSandboxStatus -> StopPodSandbox ->
RemovePodSandbox. The cluster default network is Debian's bridge + host-local; SR-IOV attachments
use the simulated NIC with fixipam; the pods and NADs live in the test Kubernetes API server.
A recorder in front of `netmeta` keeps what containerd really passes (env, runtimeConfig)."""
import json
import os
import secrets
import subprocess
import time
import uuid

import pytest
import yaml

from tests.cnirun import DEBIAN_CNI, VENV_BIN, ip_json
from tests.kubeapi.server import KubeAPIServer
from tests.runtime import recorder
from tests.runtime.netconf import host_local_leases, netmeta_conflist
from tests.simnic import records, snapshot

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NETWORKS = "k8s.v1.cni.cncf.io/networks"
STATUS = "k8s.v1.cni.cncf.io/network-status"
ANNOTS_KEY = "io.kubernetes.cri.pod-annotations"
NS = "team-a"
NETMETA_RULES = [("get", "pods"), ("patch", "pods"), ("get", "network-attachment-definitions"),
                 ("list", "network-attachment-definitions"), ("watch", "network-attachment-definitions"),
                 ("create", "events")]
TIMINGS = []   # (pod, run s, stop s, remove s), printed at the end of the module

pytestmark = [pytest.mark.root, pytest.mark.timeout(120)]


def _skip(reason: str):
    print(f"\nSKIP tests/test_cri_e2e.py: {reason}")
    pytest.skip(reason)


def _runtime_prerequisites():
    """containerd/runc/ctr and the CRI stubs, installed by tests/runtime/install.sh if missing."""
    if os.geteuid() != 0:
        _skip("needs root (containerd, network namespaces)")
    if not os.path.exists(f"{DEBIAN_CNI}/bridge"):
        _skip("needs Debian's CNI plugins in /usr/lib/cni")
    from tests.runtime.containerd import missing_binaries

    def have_stubs():
        try:
            import cri_api.v1.api_pb2_grpc  # noqa: F401
            return True
        except ImportError:
            return False
    if missing_binaries() or not have_stubs():
        p = subprocess.run(["bash", os.path.join(REPO, "tests", "runtime", "install.sh")],
                           capture_output=True, text=True, timeout=600)
        if missing_binaries() or not have_stubs():
            _skip(f"containerd cannot be installed: missing {missing_binaries()}, CRI stubs {have_stubs()}: "
                  f"{(p.stderr or p.stdout)[-500:]}")


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    """One node: test API server, a netmeta conflist, a private containerd using it."""
    _runtime_prerequisites()
    from tests.runtime.containerd import Containerd, RuntimeUnavailable
    run = secrets.token_hex(3)
    work = tmp_path_factory.mktemp(f"cri{run}")
    with open(os.path.join(REPO, "conf", "crd-network-attachment-definition.yaml")) as f:
        crd = yaml.safe_load(f)
    api = KubeAPIServer(tokens={"admin-token": "*", "netmeta-token": {
        "user": "system:serviceaccount:kube-system:netmeta", "rules": NETMETA_RULES}}, objects=[crd]).start()
    api.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}})

    class Node:
        pass
    n = Node()
    n.api, n.run, n.work = api, run, work
    n.bridge = f"nmcb{run}"
    n.subnet_prefix = f"10.247.{int(run[:2], 16)}."
    n.cni_dir, n.hostlocal = str(work / "netmeta-cache"), str(work / "host-local")
    n.netmeta_log = str(work / "netmeta.log")
    n.socket = str(work / "netmeta.sock")
    n.admin_kubeconfig = api.kubeconfig(str(work / "admin-kubeconfig"))
    conf = netmeta_conflist(kubeconfig=api.kubeconfig(str(work / "kubeconfig"), token="netmeta-token"),
                            cni_dir=n.cni_dir, bridge=n.bridge, subnet=f"{n.subnet_prefix}0/24",
                            hostlocal_dir=n.hostlocal, log_file=n.netmeta_log,
                            # hermetic: no daemon answers here, so `auto` runs the engine in-process
                            socketPath=n.socket)
    n.ctrd = Containerd(str(work / "ctrd"), conf, {t: f"{VENV_BIN}/{t}" for t in ("netmeta", "sriov", "fixipam")})
    try:
        try:
            n.ctrd.start()
        except RuntimeUnavailable as e:
            _skip(f"containerd cannot be started: {e}")
        n.cri = n.ctrd.client
        print(f"\ncontainerd {n.cri.version()} ready in {n.ctrd.startup_s:.3f}s; pause image {n.ctrd.pause_ref}")
        yield n
    finally:
        try:
            n.ctrd.stop()
        finally:
            subprocess.run(["ip", "link", "del", n.bridge], capture_output=True)
            api.stop()
        if TIMINGS:
            print("\nper pod (s):   RunPodSandbox  Stop  Remove")
            for name, r, s, m in TIMINGS:
                print(f"  {name:<24} {r:7.3f} {s:7.3f} {m:7.3f}")


@pytest.fixture
def sriov_nad(node, nic, uid, tmp_path):
    """NAD `sriov-a-<uid>` in team-a: the sim NIC, ips capability, fixipam, VLAN 100-199 allowed."""
    name = f"sriov-a-{uid}"
    fix_dir = tmp_path / "fixipam"
    conf = dict(nic, cniVersion="1.0.0", type="sriov", capabilities={"ips": True},
                ipam={"type": "fixipam", "subnet": "10.56.0.0/24", "gateway": "10.56.0.1", "dataDir": str(fix_dir)},
                podOverrides={"vlan": "100-199"})
    node.api.create({"apiVersion": "k8s.cni.cncf.io/v1", "kind": "NetworkAttachmentDefinition",
                     "metadata": {"name": name, "namespace": NS}, "spec": {"config": json.dumps(conf)}})

    class NAD:
        pass
    d = NAD()
    d.name, d.nic, d.fixipam_dir = name, nic, fix_dir
    d.reservations = lambda: sorted(f for f in os.listdir(fix_dir / name) if f != ".lock") \
        if (fix_dir / name).is_dir() else []
    yield d
    remove_sandboxes(node)           # a failed test's sandbox, before the sim NIC is destroyed
    node.api.delete("network-attachment-definitions", name, NS)


@pytest.fixture(autouse=True)
def _sandboxes_removed(request):
    """A failed test must not leave its sandbox (and its netns, VF, leases) to the next one."""
    yield
    if "node" in request.fixturenames:
        remove_sandboxes(request.getfixturevalue("node"))


# ---- helpers ----

def remove_sandboxes(node):
    if not node.ctrd.stopped:
        left = node.cri.remove_all()
        if left:
            print(f"\nremoved sandboxes a failed test left: {left}")

def new_pod(node, annotations=None):
    """The pod object in the API (kubelet's pods exist before their sandbox); its name and uid."""
    name = f"cri-{node.run}-{uuid.uuid4().hex[:6]}"
    obj = node.api.create({"apiVersion": "v1", "kind": "Pod",
                           "metadata": {"name": name, "namespace": NS, "annotations": dict(annotations or {})},
                           "spec": {"nodeName": "node1", "containers": [{"name": "c", "image": "pause"}]}})
    return name, obj["metadata"]["uid"]


def run_sandbox(node, name, uid, annotations=None, **kw):
    t = time.monotonic()
    sid = node.cri.run_pod_sandbox(name, NS, uid, annotations=annotations, **kw)
    return sid, time.monotonic() - t


def stop_remove(node, name, sid, t_run):
    t = time.monotonic()
    node.cri.stop_pod_sandbox(sid)
    t_stop = time.monotonic() - t
    t = time.monotonic()
    node.cri.remove_pod_sandbox(sid)
    t_rm = time.monotonic() - t
    TIMINGS.append((name, t_run, t_stop, t_rm))
    cni = "  ".join(f"{c['command']} {c['ms'] / 1000:.3f}s" for c in calls_for(node, sid))
    print(f"\n{name}: RunPodSandbox {t_run:.3f}s  StopPodSandbox {t_stop:.3f}s  RemovePodSandbox {t_rm:.3f}s"
          f"  (netmeta calls: {cni})")


def calls_for(node, container_id):
    return [c for c in recorder.calls(node.ctrd.record_log) if c["env"].get("CNI_CONTAINERID") == container_id]


def cni_args(call) -> dict:
    return dict(kv.split("=", 1) for kv in call["env"]["CNI_ARGS"].split(";") if kv)


def network_status(node, name):
    raw = (node.api.get("pods", name, NS)["metadata"].get("annotations") or {}).get(STATUS)
    return json.loads(raw) if raw else None


def cache_files(node):
    return sorted(os.listdir(node.cni_dir)) if os.path.isdir(node.cni_dir) else []


def bridge_ports(node):
    return [link["ifname"] for link in ip_json("link", "show") if link.get("master") == node.bridge]


def addrs(netns, dev):
    return [a["local"] for a in ip_json("addr", "show", "dev", dev, netns=netns)[0]["addr_info"]
            if a["family"] == "inet"]


def assert_node_clean(node, nad=None, before=None):
    assert cache_files(node) == [], "netmeta DEL cache left"
    assert host_local_leases(node.hostlocal) == [], "host-local lease left"
    assert bridge_ports(node) == [], "veth left on the bridge"
    if nad is not None:
        assert records(nad.nic) == [], "VF allocation record left"
        assert nad.reservations() == [], "fixipam reservation left"
        assert snapshot(nad.nic) == before, "VF not restored"


# ---- tests ----

def test_sriov_pod_with_fixed_ip_and_vlan_through_cri(node, sriov_nad):
    before = snapshot(sriov_nad.nic)
    annots = {NETWORKS: json.dumps([{"name": sriov_nad.name, "ips": ["10.56.0.7/24"]}]), "networks-sriov-vlan": "150"}
    name, uid = new_pod(node, annots)
    node.api.clear_log()
    sid, t_run = run_sandbox(node, name, uid, annots)
    api_calls = sorted((r.method, r.resource) for r in node.api.requests)
    # the runtime passed the annotations: netmeta GETs only the NAD, then PATCHes network-status
    # and records an AddedInterface Event per attachment (eth0, net1)
    assert node.api.count(method="GET", resource="pods") == 0, api_calls
    assert api_calls == [("GET", "network-attachment-definitions"), ("PATCH", "pods"), ("POST", "events"),
                         ("POST", "events")], api_calls

    st, info = node.cri.pod_sandbox_status(sid)
    from tests.runtime.cri import READY
    assert st.state == READY
    assert (st.metadata.name, st.metadata.namespace, st.metadata.uid) == (name, NS, uid)
    netns_path = node.cri.netns_path(sid)
    netns = os.path.basename(netns_path)
    assert st.network.ip.startswith(node.subnet_prefix), st.network
    assert addrs(netns, "eth0") == [st.network.ip]                 # the pod IP is the bridge one
    links = sorted(link["ifname"] for link in ip_json("link", "show", netns=netns))
    assert links == ["eth0", "lo", "net1"], links
    assert addrs(netns, "net1") == ["10.56.0.7"]
    vf0 = snapshot(sriov_nad.nic)["table"][0]
    assert vf0["vlan"] == 150, vf0
    assert records(sriov_nad.nic) == ["vf0.json"] and sriov_nad.reservations() != []
    assert cache_files(node) == [f"{sid}-eth0.json"]
    assert host_local_leases(node.hostlocal) == [st.network.ip]
    ns_status = network_status(node, name)
    assert [(s["interface"], s["name"], s["ips"], s["default"]) for s in ns_status] == [
        ("eth0", "cluster-net", [st.network.ip], True), ("net1", f"{NS}/{sriov_nad.name}", ["10.56.0.7"], False)]

    # what containerd passed on ADD
    (add,) = calls_for(node, sid)
    args = cni_args(add)
    assert args == {"IgnoreUnknown": "1", "K8S_POD_NAMESPACE": NS, "K8S_POD_NAME": name,
                    "K8S_POD_INFRA_CONTAINER_ID": sid, "K8S_POD_UID": uid}
    assert add["env"]["CNI_NETNS"] == netns_path and add["env"]["CNI_IFNAME"] == "eth0"
    assert add["env"]["CNI_PATH"] == node.ctrd.bin_dir
    rc = add["conf"]["runtimeConfig"]
    assert rc == {ANNOTS_KEY: annots}, rc          # no port mappings asked: no portMappings key
    assert add["rc"] == 0 and add["out"]["cniVersion"] == "1.0.0"

    stop_remove(node, name, sid, t_run)
    add, del1, del2 = calls_for(node, sid)
    assert (del1["command"], del2["command"]) == ("DEL", "DEL") and del1["rc"] == del2["rc"] == 0
    assert del1["env"]["CNI_NETNS"] == netns_path and "prevResult" in del1["conf"]      # StopPodSandbox
    assert del2["env"]["CNI_NETNS"] == "" and "prevResult" not in del2["conf"]          # RemovePodSandbox
    assert del1["conf"]["runtimeConfig"] == del2["conf"]["runtimeConfig"] == {ANNOTS_KEY: annots}
    assert cni_args(del1) == cni_args(del2) == args
    assert not os.path.lexists(netns_path)
    assert_node_clean(node, sriov_nad, before)


def test_vlan_outside_policy_fails_run_pod_sandbox_cleanly(node, sriov_nad):
    import grpc
    before = snapshot(sriov_nad.nic)
    annots = {NETWORKS: json.dumps([{"name": sriov_nad.name, "ips": ["10.56.0.8/24"]}]), "networks-sriov-vlan": "300"}
    name, uid = new_pod(node, annots)
    n_calls = len(recorder.calls(node.ctrd.record_log))
    t = time.monotonic()
    with pytest.raises(grpc.RpcError) as ei:
        node.cri.run_pod_sandbox(name, NS, uid, annotations=annots)
    print(f"\n{name}: failed RunPodSandbox in {time.monotonic() - t:.3f}s: {ei.value.details()[:300]}")
    assert "outside podOverrides.vlan" in ei.value.details(), ei.value.details()
    assert 'plugin type="netmeta"' in ei.value.details()
    calls = recorder.calls(node.ctrd.record_log)[n_calls:]
    print("CNI calls: " + "  ".join(f"{c['command']} rc={c['rc']} netns={bool(c['env']['CNI_NETNS'])} "
                                    f"prevResult={'prevResult' in c['conf']} {c['ms'] / 1000:.3f}s" for c in calls))
    assert calls[0]["command"] == "ADD" and calls[0]["rc"] != 0
    assert calls[0]["out"]["code"] == 130
    netns_path = calls[0]["env"]["CNI_NETNS"]
    # containerd undoes a failed sandbox: DEL (with the netns) and removes netns and sandbox
    assert [c["command"] for c in calls[1:]] and all(c["command"] == "DEL" and c["rc"] == 0 for c in calls[1:])
    assert not os.path.lexists(netns_path)
    assert [s for s in node.cri.list_pod_sandbox() if s.metadata.name == name] == []
    assert network_status(node, name) is None
    assert_node_clean(node, sriov_nad, before)


def test_pod_without_annotations_gets_only_eth0(node):
    name, uid = new_pod(node)
    node.api.clear_log()
    sid, t_run = run_sandbox(node, name, uid, port_mappings=[(80, 18080)])
    pod_gets = node.api.count(method="GET", resource="pods")
    st, _ = node.cri.pod_sandbox_status(sid)
    netns = os.path.basename(node.cri.netns_path(sid))
    assert sorted(link["ifname"] for link in ip_json("link", "show", netns=netns)) == ["eth0", "lo"]
    assert addrs(netns, "eth0") == [st.network.ip] and st.network.ip.startswith(node.subnet_prefix)
    assert [(s["interface"], s["default"]) for s in network_status(node, name)] == [("eth0", True)]
    (add,) = calls_for(node, sid)
    rc = add["conf"]["runtimeConfig"]
    print(f"\nruntimeConfig for a pod without annotations, with a port mapping: {json.dumps(rc)}; "
          f"pod GETs during RunPodSandbox: {pod_gets}")
    # containerd 1.6 (go-cni) writes a nil map as null, and PortMapping without json tags: Go field names
    assert rc == {ANNOTS_KEY: None,
                  "portMappings": [{"HostPort": 18080, "ContainerPort": 80, "Protocol": "tcp", "HostIP": ""}]}
    assert pod_gets == 0   # a null annotations map still means "passed by the runtime"
    stop_remove(node, name, sid, t_run)
    assert_node_clean(node)


def test_sriov_pod_through_the_daemon(node, sriov_nad, tmp_path):
    """The same kubelet path with `netmeta daemon` serving (its watch caches warm): the shim
    forwards, the node's sriov/vfCount drops by one while the pod runs and comes back."""
    from tests.daemonproc import DaemonProc
    if node.api.get("nodes", "node1") is None:
        node.api.create({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "node1"}})
    nic = sriov_nad.nic
    d = DaemonProc(tmp_path / "daemon", socketPath=node.socket, kubeconfig=node.admin_kubeconfig, nodeName="node1",
                   pfs=[{k: nic[k] for k in ("master", "sysfsRoot", "backend", "stateDir")}], coalesceWindow=0.1)
    os.makedirs(d.dir, exist_ok=True)
    d.start()
    try:
        def vf_count():
            m = node.api.get("nodes", "node1")["metadata"]
            return (m.get("annotations") or {}).get("sriov/vfCount"), (m.get("labels") or {}).get("sriov/freeVFAvailable")
        node.api.wait_for(lambda: vf_count() == ("8", "true"), timeout=10)
        node.api.wait_for(lambda: d.metric("netmeta_api_requests_total", verb="watch") >= 2, timeout=10)
        before = snapshot(nic)
        annots = {NETWORKS: json.dumps([{"name": sriov_nad.name, "ips": ["10.56.0.17/24"]}]),
                  "networks-sriov-vlan": "160"}
        name, uid = new_pod(node, annots)
        time.sleep(0.3)   # let the NAD/pod watch events arrive
        node.api.clear_log()
        sid, t_run = run_sandbox(node, name, uid, annots)
        reqs = [(r.verb, r.resource) for r in node.api.requests if r.verb not in ("watch",)]
        assert ("patch", "pods") in reqs and ("get", "pods") not in reqs and \
            ("get", "network-attachment-definitions") not in reqs, reqs
        assert d.metric("netmeta_cni_request_seconds_count", plugin="netmeta", command="ADD") == 1
        netns = os.path.basename(node.cri.netns_path(sid))
        assert sorted(link["ifname"] for link in ip_json("link", "show", netns=netns)) == ["eth0", "lo", "net1"]
        assert addrs(netns, "net1") == ["10.56.0.17"] and snapshot(nic)["table"][0]["vlan"] == 160
        node.api.wait_for(lambda: vf_count() == ("7", "true"), timeout=5)
        assert [s["interface"] for s in network_status(node, name)] == ["eth0", "net1"]
        stop_remove(node, name, sid, t_run)
        node.api.wait_for(lambda: vf_count() == ("8", "true"), timeout=5)
        assert d.metric("netmeta_cni_request_seconds_count", plugin="netmeta", command="DEL") == 2
        assert_node_clean(node, sriov_nad, before)
    finally:
        d.stop()


def test_zz_containerd_stops_cleanly(node):
    """Last: stop the shared containerd and check it needed no force and left nothing."""
    assert node.cri.list_pod_sandbox() == []
    forced = node.ctrd.stop()
    assert forced == {"sandboxes": [], "killed": False, "shims": [], "mounts": [], "netns": []}, forced
    assert node.ctrd.proc.returncode == 0
    assert node.ctrd.leftovers() == {"containerd": False, "shims": [], "mounts": [], "netns": []}
    assert not os.path.exists(node.ctrd.socket)
