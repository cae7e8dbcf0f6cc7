"""fixipam cluster-wide: two "nodes" (two real `netmeta daemon` processes, two state dirs, two
sockets, two node names) against one test API server serving the FixedIPReservation CRD from
conf/. The `fixipam` executable is driven through the CNI protocol and forwards to its node's
daemon, which reserves through its own API client."""
import ipaddress
import json
import os
import re
import threading

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from cni.errors import CNIError
from delegates.fixipam import cluster, policy
from delegates.fixipam import config as fixipam_config
from tests.cnirun import cni
from tests.daemonproc import DaemonProc
from tests.kubeapi import KubeAPIServer, objects
from tests.polling import wait_for

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CRD = os.path.join(REPO, "conf", "crd-fixed-ip-reservation.yaml")
RES = "fixedipreservations"
NET = "fxc"


def crd():
    with open(CRD) as f:
        return yaml.safe_load(f)


class Node:
    def __init__(self, name, tmp, kc, **daemon_cfg):
        self.name, self.dir = name, str(tmp / name)
        self.data = os.path.join(self.dir, "fixipam")
        self.daemon = DaemonProc(tmp / name / "d", kubeconfig=kc, nodeName=name, **daemon_cfg)
        os.makedirs(self.daemon.dir, exist_ok=True)

    def conf(self, version="1.1.0", **ipam):
        i = {"type": "fixipam", "subnet": "10.90.0.0/24", "gateway": "10.90.0.1", "dataDir": self.data}
        i.update(ipam)
        return {"cniVersion": version, "name": NET, "ipam": i}

    def call(self, command, pod, ip=None, cid=None, uid=None, env=None, conf=None, **ipam):
        args = f"IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME={pod};K8S_POD_UID={uid or 'uid-' + pod}"
        if ip:
            args += f";IP={ip}"
        return cni("fixipam", command, conf or self.conf(**ipam), container_id=cid or f"c-{pod}", netns="/x",
                   ifname="net1", args=args, extra_env=dict({"NETMETA_SOCKET": self.daemon.socket}, **(env or {})))

    def local(self):
        d = os.path.join(self.data, NET)
        return sorted(n for n in os.listdir(d) if not n.startswith(".")) if os.path.isdir(d) else []


@pytest.fixture
def api():
    srv = KubeAPIServer(objects=[crd(), objects.node("node-a"), objects.node("node-b")]).start()
    yield srv
    srv.stop()


@pytest.fixture
def nodes(api, tmp_path):
    """Two nodes; `make(gc=...)` starts them (GC period in seconds)."""
    started = []

    def make(gc=3600.0, **cfg):
        kc = api.kubeconfig(str(tmp_path / "kubeconfig"))
        out = []
        for name in ("node-a", "node-b"):
            n = Node(name, tmp_path, kc, fixipamGcPeriod=gc, requestTimeout=30, **cfg)
            n.daemon.start()
            started.append(n)
            out.append(n)
        # each daemon's GC thread probes the kind once at start (a LIST, limit 1): let it land
        # before a test counts API requests
        wait_for(lambda: sum(1 for r in api.find(verb="list", resource=RES) if r.query.get("limit") == "1")
             >= len(started), what="every daemon probed the reservation kind")
        return out
    yield make
    for n in started:
        n.daemon.stop()


def held(api) -> dict:
    """address -> spec of every FixedIPReservation in the API."""
    return {o["spec"]["address"]: o["spec"] for o in api.list(RES)}


def pod(api, name, node="node-a"):
    return api.create(objects.pod(name, namespace="default", node=node))["metadata"]["uid"]


def gc_passes(api, node="node-a") -> int:
    """GC passes of a node's daemon so far: each LISTs that node's reservations by label."""
    return sum(1 for r in api.find(verb="list", resource=RES)
               if f"{cluster.LABEL_NODE}={node}" in str(r.query.get("labelSelector", "")))


# ---------------- the test API server serves the kind as kube-apiserver does ----------------
def test_api_server_serves_the_reservation_kind_like_kube_apiserver(api, tmp_path):
    """What fixipam relies on, as the real server answers: a second create of the same name is
    a 409 Status, reason AlreadyExists, details {name, group, kind: the plural} (k8s.io/apiserver
    pkg/storage/errors/storage.go InterpretCreateError -> apimachinery pkg/api/errors
    NewAlreadyExists(qualifiedResource, name)); a DELETE whose UID precondition does not match
    is a 409 and deletes nothing (tests/kubeapi/store.py documents its copy of
    storage.Preconditions); an unknown name is a 404."""
    from cni.kube import client as kubeclient
    http = kubeclient.Client(kubeclient.from_kubeconfig(api.kubeconfig(str(tmp_path / "kc"))))
    body = {"apiVersion": "netmeta.io/v1", "kind": "FixedIPReservation", "metadata": {"name": "n-1.10.0.0.5"},
            "spec": {"network": "n", "address": "10.0.0.5", "node": "a", "containerID": "c", "ifname": "eth0"}}
    created = http.request("POST", cluster.COLLECTION, body=body)
    with pytest.raises(kubeclient.ApiError) as e:
        http.request("POST", cluster.COLLECTION, body=body)
    st_ = json.loads(e.value.body)
    assert e.value.status == 409 and st_["kind"] == "Status" and st_["reason"] == "AlreadyExists"
    assert st_["details"] == {"name": "n-1.10.0.0.5", "group": "netmeta.io", "kind": "fixedipreservations"}
    with pytest.raises(kubeclient.ApiError) as e:
        http.request("DELETE", cluster.COLLECTION + "/n-1.10.0.0.5", body={"preconditions": {"uid": "other"}})
    assert e.value.status == 409 and api.get(RES, "n-1.10.0.0.5") is not None
    http.request("DELETE", cluster.COLLECTION + "/n-1.10.0.0.5",
                 body={"preconditions": {"uid": created["metadata"]["uid"]}})
    with pytest.raises(kubeclient.ApiError) as e:
        http.request("GET", cluster.COLLECTION + "/n-1.10.0.0.5")
    assert e.value.status == 404
    # an unknown spec field is pruned, as a structural schema makes the real server do
    obj = http.request("POST", cluster.COLLECTION, body=dict(body, spec=dict(body["spec"], extra="x")))
    assert "extra" not in obj["spec"]


def test_object_names_are_valid_and_distinct():
    import re
    sub = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
    names = set()
    for net in ("fxc", "FXC", "my_net", "a" * 300, "-"):
        for ip in ("10.0.0.1", "fd00::1", "fd00:1::", "::ffff:10.0.0.1"):
            n = cluster.object_name(net, ip)
            assert sub.match(n) and len(n) <= 253, n
            assert len(cluster.network_label(net)) <= 63
            names.add(n)
    assert len(names) == 20


_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"


@settings(max_examples=300, deadline=None)
@given(net=st.text(min_size=1, max_size=300), ips=st.lists(
    st.one_of(st.ip_addresses(v=4), st.ip_addresses(v=6)), min_size=1, max_size=6, unique=True))
def test_object_names_hypothesis(net, ips):
    """Any network name and address give a valid DNS subdomain and label; distinct addresses of
    one network never share a name (the lock is per name)."""
    import re
    names = {cluster.object_name(net, str(ip)) for ip in ips}
    assert len(names) == len(ips)
    for n in names:
        assert re.match(_SUBDOMAIN, n) and len(n) <= 253, n
    label = cluster.network_label(net)
    assert len(label) <= 63 and re.match(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", label)


# ---------------- two nodes, one address ----------------
def test_one_fixed_ip_one_pod_across_two_nodes(api, nodes):
    a, b = nodes()
    pod(api, "p1", "node-a")
    pod(api, "p2", "node-b")
    api.log.clear()
    r1 = a.call("ADD", "p1", "10.90.0.7")
    assert r1.ok, r1.stdout
    assert r1.out["ips"][0]["address"] == "10.90.0.7/24"
    creates = api.find(method="POST", resource=RES)
    assert len(creates) == 1 and creates[0].status == 201
    assert len(api.find(resource=RES)) == 1            # one API request per fixipam ADD
    spec = held(api)["10.90.0.7"]
    assert spec == {"network": NET, "address": "10.90.0.7", "node": "node-a", "podNamespace": "default",
                    "podName": "p1", "podUID": "uid-p1", "containerID": "c-p1", "ifname": "net1"}
    # the other node refuses it, naming the holder pod and its node; nothing left behind there
    r2 = b.call("ADD", "p2", "10.90.0.7")
    assert r2.rc != 0 and r2.out["code"] == 111, r2.stdout
    assert "default/p1" in r2.out["msg"] and "node-a" in r2.out["msg"]
    assert b.local() == [] and held(api)["10.90.0.7"]["podName"] == "p1"
    # a retried ADD of the same attachment is idempotent
    assert a.call("ADD", "p1", "10.90.0.7").ok and a.local() == ["10.90.0.7"]
    api.log.clear()
    d = a.call("DEL", "p1", "10.90.0.7")
    assert d.ok, d.stdout
    verbs = sorted(r.verb for r in api.find(resource=RES))
    assert verbs == ["delete", "get"]                   # two API requests per fixipam DEL
    assert held(api) == {} and a.local() == []
    assert a.call("DEL", "p1", "10.90.0.7").ok         # idempotent
    r3 = b.call("ADD", "p2", "10.90.0.7")
    assert r3.ok, r3.stdout
    assert held(api)["10.90.0.7"]["node"] == "node-b" and b.local() == ["10.90.0.7"]
    assert b.call("DEL", "p2", "10.90.0.7").ok and held(api) == {}


def test_same_node_conflict_names_the_holder_pod(api, nodes):
    a, _ = nodes()
    assert a.call("ADD", "p1", "10.90.0.8").ok
    r = a.call("ADD", "p2", "10.90.0.8")
    assert r.rc != 0 and r.out["code"] == 111 and "default/p1 on node node-a" in r.out["msg"], r.stdout
    assert a.call("DEL", "p1", "10.90.0.8").ok and held(api) == {}


def test_32_parallel_adds_across_two_nodes_for_8_addresses(api, nodes):
    a, b = nodes()
    results = {}

    def add(i):   # each address asked for twice on each node
        node = (a, b)[i // 8 % 2]
        ip = f"10.90.0.{20 + i % 8}"
        results[i] = (node.name, ip, node.call("ADD", f"q{i}", ip))
    threads = [threading.Thread(target=add, args=(i,)) for i in range(32)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    won = {i: (n, ip) for i, (n, ip, r) in results.items() if r.ok}
    lost = [(n, ip, r) for n, ip, r in results.values() if not r.ok]
    assert len(results) == 32 and len(won) == 8, [r.stdout for _, _, r in results.values()]
    assert sorted(ip for _, ip in won.values()) == [f"10.90.0.{20 + k}" for k in range(8)]
    assert all(r.out["code"] == 111 for _, _, r in lost), [r.stdout for _, _, r in lost]
    # each refusal names the pod that holds the address (which node wins which address is a race)
    winner = {ip: i for i, (_, ip) in won.items()}
    for _, ip, r in lost:
        assert re.search(rf"\bq{winner[ip]}(?![0-9])", r.out["msg"]), (ip, winner[ip], r.out["msg"])
    h = held(api)
    assert sorted(h) == sorted(ip for _, ip in won.values())
    for i, (node, ip) in won.items():
        assert h[ip]["podName"] == f"q{i}" and h[ip]["node"] == node
    assert sorted(a.local() + b.local()) == sorted(h)
    # 409s are the lock working, not API errors
    assert a.daemon.metric("netmeta_api_errors_total") == b.daemon.metric("netmeta_api_errors_total") == 0
    assert set(a.local()) == {ip for n, ip in won.values() if n == "node-a"}
    for i, (_node, ip) in won.items():
        assert (a, b)[i // 8 % 2].call("DEL", f"q{i}", ip).ok
    assert held(api) == {} and a.local() == b.local() == []


def test_node_scope_keeps_node_local_behaviour(api, nodes):
    a, b = nodes()
    assert a.call("ADD", "p1", "10.90.0.9", scope="node").ok
    assert b.call("ADD", "p2", "10.90.0.9", scope="node").ok
    assert held(api) == {} and a.local() == b.local() == ["10.90.0.9"]
    assert a.call("DEL", "p1", "10.90.0.9", scope="node").ok
    assert b.call("DEL", "p2", "10.90.0.9", scope="node").ok


def test_crd_not_installed_default_is_node_scope_explicit_cluster_refused(tmp_path):
    srv = KubeAPIServer(objects=[objects.node("node-a")]).start()
    n = Node("node-a", tmp_path, srv.kubeconfig(str(tmp_path / "kc")))
    try:
        n.daemon.start()
        assert n.call("ADD", "p1", "10.90.0.10").ok and n.local() == ["10.90.0.10"]
        r = n.call("ADD", "p2", "10.90.0.11", scope="cluster")
        assert r.rc != 0 and r.out["code"] == 7 and "ipam.scope" in r.out["msg"], r.stdout
        assert n.local() == ["10.90.0.10"]
        assert n.call("DEL", "p1", "10.90.0.10").ok and n.local() == []
    finally:
        n.daemon.stop()
        srv.stop()


def test_without_the_daemon_fixipams_own_kubeconfig_reserves_cluster_wide(api, tmp_path):
    """No daemon (NETMETA_MODE=thin: fixipam runs in-process): `ipam.kubeconfig` + `nodeName`
    give fixipam its own client; the same guarantees hold across the two nodes."""
    kc = api.kubeconfig(str(tmp_path / "kubeconfig"))
    a, b = (Node(n, tmp_path, kc) for n in ("node-a", "node-b"))   # daemons never started
    thin = {"NETMETA_MODE": "thin"}
    ca = dict(a.conf(), ipam=dict(a.conf()["ipam"], kubeconfig=kc, nodeName="node-a"))
    cb = dict(b.conf(), ipam=dict(b.conf()["ipam"], kubeconfig=kc))
    r1 = a.call("ADD", "t1", "10.90.0.50", conf=ca, env=thin)
    assert r1.ok, r1.stdout
    assert held(api)["10.90.0.50"]["node"] == "node-a"
    r2 = b.call("ADD", "t2", "10.90.0.50", conf=cb, env=dict(thin, NODE_NAME="node-b"))
    assert r2.rc != 0 and r2.out["code"] == 111 and "default/t1 on node node-a" in r2.out["msg"], r2.stdout
    nn = b.call("ADD", "t2", "10.90.0.50", conf=cb, env=thin)     # no nodeName, no $NODE_NAME
    assert nn.rc != 0 and nn.out["code"] == 7 and "ipam.nodeName" in nn.out["msg"], nn.stdout
    assert a.call("DEL", "t1", "10.90.0.50", conf=ca, env=thin).ok and held(api) == {}
    assert b.call("ADD", "t2", "10.90.0.50", conf=cb, env=dict(thin, NODE_NAME="node-b")).ok
    assert held(api)["10.90.0.50"]["node"] == "node-b"
    assert b.call("DEL", "t2", "10.90.0.50", conf=cb, env=dict(thin, NODE_NAME="node-b")).ok
    assert held(api) == {} and a.local() == b.local() == []
    bad = a.call("ADD", "t1", "10.90.0.51", conf=dict(ca, ipam=dict(ca["ipam"], kubeconfig="/nonexistent/kc")), env=thin)
    assert bad.rc != 0 and bad.out["code"] == 7 and "ipam.kubeconfig" in bad.out["msg"], bad.stdout
    # a NAD author picks this path: a file that is no kubeconfig is never quoted back to them
    secret = tmp_path / "secret"
    secret.write_text("current-context: s3cr3t-value\n")     # its error would quote the value
    leak = a.call("ADD", "t1", "10.90.0.51", conf=dict(ca, ipam=dict(ca["ipam"], kubeconfig=str(secret))), env=thin)
    assert leak.out["code"] == 7 and "s3cr3t" not in leak.stdout.decode(), leak.stdout
    assert "s3cr3t" in leak.stderr                                  # the node's log has the reason


def test_delegates_never_import_meta():
    """DESIGN.md: fixipam gets the daemon's client in its Services (delegates/registry.py), or builds its own
    from cni/kube/client.py; no module under delegates/ imports meta (a static check)."""
    import ast
    for d, _, files in os.walk(os.path.join(REPO, "delegates")):
        for f in files:
            if f.endswith(".py"):
                with open(os.path.join(d, f)) as fh:
                    tree = ast.parse(fh.read())
                for node in ast.walk(tree):
                    names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                        [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else []
                    assert not any(n == "meta" or n.startswith("meta.") for n in names), (d, f)


# ---------------- crashes ----------------
ADD_POINTS = ["fixipam.add.reserved", "fixipam.api.create", "fixipam.add.cluster"]
DEL_POINTS = ["fixipam.api.get", "fixipam.api.delete", "fixipam.del.locked"]


@pytest.mark.parametrize("cleanup", ["del", "gc"])
@pytest.mark.parametrize("point", ADD_POINTS + DEL_POINTS)
def test_kill_daemon_at_each_fault_point_leaves_nothing(api, nodes, point, cleanup):
    """kill -9 the daemon at each step (fixipam.add.reserved is between the node-local and the
    cluster reservation). The shim then runs fixipam in-process: it knows the network is
    cluster-scoped on this node (marker) and refuses with code 11 instead of reserving
    node-locally. After the daemon restarts, DEL (or CNI GC with no valid attachment) leaves
    nothing in either store."""
    a, _ = nodes()
    pod(api, "k1")
    env = {"NETMETA_DAEMON_FAULT": point}
    if point in ADD_POINTS:
        r = a.call("ADD", "k1", "10.90.0.30", env=env)
        assert r.rc != 0 and r.out["code"] == 11, r.stdout
    else:
        assert a.call("ADD", "k1", "10.90.0.30").ok and held(api)
        r = a.call("DEL", "k1", "10.90.0.30", env=env)
        assert r.ok, r.stdout               # in-process DEL: node-local released, cluster not reachable
    assert a.daemon.proc.wait(30) == -9
    a.daemon.start()
    if cleanup == "del":
        assert a.call("DEL", "k1", "10.90.0.30").ok
    else:
        gc = dict(a.conf(), **{"cni.dev/valid-attachments": []})
        g = a.call("GC", "k1", conf=gc)
        assert g.ok, g.stdout
    assert a.local() == [] and held(api) == {}


# ---------------- outages and GC ----------------
def test_api_down_at_add_refuses_by_default(api, nodes):
    a, _ = nodes()
    api.set_down(True)
    try:
        r = a.call("ADD", "o1", "10.90.0.40")
        assert r.rc != 0 and r.out["code"] == 11 and "onApiUnavailable" in r.out["details"], r.stdout
        assert a.local() == []
        assert a.daemon.metric("netmeta_api_errors_total", verb="create", code="unreachable") >= 1
    finally:
        api.set_down(False)
    assert held(api) == {}


def test_api_down_at_add_node_local_when_configured(api, nodes):
    a, b = nodes()
    api.set_down(True)
    try:
        r = a.call("ADD", "o1", "10.90.0.41", onApiUnavailable="nodeLocal")
        assert r.ok, r.stdout
        assert a.local() == ["10.90.0.41"]
    finally:
        api.set_down(False)
    assert held(api) == {}
    assert a.call("DEL", "o1", "10.90.0.41", onApiUnavailable="nodeLocal").ok and a.local() == []


def test_api_down_at_del_then_gc_releases_once_the_pod_is_gone(api, nodes):
    a, _ = nodes(gc=0.5)
    uid = pod(api, "g1")
    assert a.call("ADD", "g1", "10.90.0.42", uid=uid).ok and held(api)
    api.set_down(True)
    try:
        d = a.call("DEL", "g1", "10.90.0.42", uid=uid)
        assert d.ok, d.stdout                  # never blocked by the outage
        assert a.local() == []
    finally:
        api.set_down(False)
    # the pod still exists: GC keeps the reservation however many passes run
    passes = gc_passes(api)
    wait_for(lambda: gc_passes(api) >= passes + 3, what="three GC passes")
    assert "10.90.0.42" in held(api)
    api.delete("pods", "g1", "default")
    wait_for(lambda: held(api) == {}, what="GC release after the pod is deleted")
    wait_for(lambda: "pod gone" in a.daemon.log(), what="the GC's log line")


def test_a_pods_new_sandbox_takes_over_its_reservation_left_by_an_outage(api, nodes):
    """The old sandbox's DEL could not reach the API; the pod (same UID) gets a new sandbox:
    its address is its own, not refused (GC would never free it while the pod lives)."""
    a, b = nodes()
    uid = pod(api, "s1")
    assert a.call("ADD", "s1", "10.90.0.45", cid="sandbox1", uid=uid).ok
    api.set_down(True)
    try:
        assert a.call("DEL", "s1", "10.90.0.45", cid="sandbox1", uid=uid).ok
    finally:
        api.set_down(False)
    assert held(api)["10.90.0.45"]["containerID"] == "sandbox1"
    other = b.call("ADD", "s2", "10.90.0.45", uid="another-uid")
    assert other.rc != 0 and "default/s1" in other.out["msg"], other.stdout
    r = a.call("ADD", "s1", "10.90.0.45", cid="sandbox2", uid=uid)
    assert r.ok, r.stdout
    assert held(api)["10.90.0.45"]["containerID"] == "sandbox2"
    assert a.call("DEL", "s1", "10.90.0.45", cid="sandbox2", uid=uid).ok and held(api) == {}


def test_gc_releases_a_pod_recreated_with_another_uid_and_deleted_nodes(api, nodes):
    a, b = nodes(gc=0.5)
    pod(api, "r1", "node-a")
    pod(api, "r2", "node-b")
    assert a.call("ADD", "r1", "10.90.0.43", uid=api.get("pods", "r1", "default")["metadata"]["uid"]).ok
    assert b.call("ADD", "r2", "10.90.0.44", uid=api.get("pods", "r2", "default")["metadata"]["uid"]).ok
    passes = gc_passes(api)
    wait_for(lambda: gc_passes(api) >= passes + 3, what="three GC passes")
    assert sorted(held(api)) == ["10.90.0.43", "10.90.0.44"]
    # same name, new UID: another pod, the reservation is released
    api.delete("pods", "r1", "default")
    pod(api, "r1", "node-a")
    wait_for(lambda: "10.90.0.43" not in held(api), what="release of the recreated pod's reservation")
    # node-b deleted (its daemon gone with it): node-a's daemon releases its reservations
    b.daemon.stop()
    api.delete("nodes", "node-b")
    wait_for(lambda: held(api) == {}, what="release of a deleted node's reservation")
    wait_for(lambda: "node deleted" in a.daemon.log(), what="the GC's log line")   # written after the DELETE


# ---------------- policy ----------------
def test_exclude_and_allowed_refusals_name_the_setting(api, nodes):
    a, _ = nodes()
    pol = {"exclude": ["10.90.0.100-10.90.0.110", "10.90.0.200/29"], "allowed": ["10.90.0.0/25", "10.90.0.200/28"]}
    for ip, setting in (("10.90.0.105", "ipam.exclude"), ("10.90.0.201", "ipam.exclude"),
                        ("10.90.0.150", "ipam.allowed")):
        r = a.call("ADD", "x1", ip, **pol)
        assert r.rc != 0 and r.out["code"] == 130 and setting in r.out["msg"], r.stdout
    assert a.local() == [] and held(api) == {}
    assert a.call("ADD", "x1", "10.90.0.99", **pol).ok
    assert a.call("DEL", "x1", "10.90.0.99", **pol).ok
    bad = a.call("ADD", "x1", "10.90.0.99", exclude=["10.90.0.5-nope"])
    assert bad.rc != 0 and bad.out["code"] == 7 and "ipam.exclude[0]" in bad.out["msg"], bad.stdout


_addr = st.integers(0, 63).map(lambda i: ipaddress.ip_address("10.91.0.0") + i)
_item = st.one_of(_addr.map(str),
                  st.tuples(_addr, _addr).map(lambda t: f"{min(t)}-{max(t)}"),
                  st.tuples(_addr, st.integers(28, 32)).map(
                      lambda t: str(ipaddress.ip_network(f"{t[0]}/{t[1]}", strict=False))))


def _members(items):
    out = set()
    for it in items:
        if "-" in it:
            lo, hi = (ipaddress.ip_address(x) for x in it.split("-"))
            out |= {lo + k for k in range(int(hi) - int(lo) + 1)}
        else:
            out |= set(ipaddress.ip_network(it, strict=False)) if "/" in it else {ipaddress.ip_address(it)}
    return out


@settings(max_examples=200, deadline=None)
@given(excl=st.lists(_item, max_size=5), allow=st.one_of(st.none(), st.lists(_item, max_size=5)),
       probe=_addr)
def test_policy_sets_match_a_reference_model(excl, allow, probe):
    ipam = {"type": "fixipam", "subnet": "10.91.0.0/26", "exclude": excl}
    if allow is not None:
        ipam["allowed"] = allow
    cfg = fixipam_config.load({"name": "n", "ipam": ipam})
    expect_ok = probe not in _members(excl) and (allow is None or probe in _members(allow))
    try:
        cfg.policy.check(probe)
        ok, msg = True, ""
    except CNIError as e:
        ok, msg = False, e.msg
    assert ok == expect_ok
    if not ok:
        assert ("ipam.exclude" in msg) == (probe in _members(excl))


def test_policy_config_errors_name_the_key():
    for ipam, key in (({"scope": "region"}, "ipam.scope"), ({"onApiUnavailable": "maybe"}, "ipam.onApiUnavailable"),
                      ({"allowed": "10.0.0.0/8"}, "ipam.allowed"), ({"exclude": ["10.0.0.9-fd00::1"]}, "ipam.exclude[0]")):
        with pytest.raises(CNIError) as e:
            policy.load(ipam)
        assert key in e.value.msg
