"""The scheduler extender (meta/extender*.py) end to end: the test Kubernetes API server with the
NAD CRD, nodes publishing 0, 2 and 8 free VFs as meta/daemon/availability.py writes them, NADs of type
sriov and bridge, the extender running as a real HTTP service against that API server through a
kubeconfig whose token has only get/list/watch on nodes, pods and NADs, and requests shaped
exactly as kube-scheduler's HTTPExtender sends them (pkg/scheduler/extender.go: encoding/json of
extenderv1.ExtenderArgs, whose fields have no json tags: "Pod", "Nodes", "NodeNames")."""
import http.client
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from meta.extender.http import serve
from meta.extender.ledger import TOTAL, Ledger
from meta.extender.main import build
from meta.extender.need import Need
from tests.kubeapi import objects
from tests.kubeapi.server import KubeAPIServer

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NETWORKS = "k8s.v1.cni.cncf.io/networks"
CONF = os.path.join(ROOT, "conf", "scheduler-extender")


def manifest(name, kind):
    import yaml
    with open(os.path.join(CONF, name)) as f:
        return [d for d in yaml.safe_load_all(f) if d and d["kind"] == kind]


def shipped_rules():
    """The ClusterRole we ship, as the test API server's token rules (it enforces them)."""
    (role,) = manifest("rbac.yaml", "ClusterRole")
    return [(",".join(r["verbs"]), [res + (f".{g}" if g else "") for g in r["apiGroups"] for res in r["resources"]])
            for r in role["rules"]]


GO_FILTER_KEYS = {"Nodes", "NodeNames", "FailedNodes", "FailedAndUnresolvableNodes", "Error"}


def sriov_conf(master=None, conflist=False):
    plugin = {"type": "sriov", **({"master": master} if master else {})}
    if conflist:
        return {"cniVersion": "1.0.0", "name": "x", "plugins": [plugin, {"type": "tuning"}]}
    return {"cniVersion": "1.0.0", "name": "x", **plugin}


@pytest.fixture(scope="module")
def api():
    srv = KubeAPIServer(tokens={"admin-token": "*",
                                "extender-token": {"user": "system:serviceaccount:kube-system:netmeta-extender",
                                                   "rules": shipped_rules()}},
                        objects=[objects.nad_crd()]).start()
    for name, conf in (("sriov-net", sriov_conf()), ("sriov-list", sriov_conf(conflist=True)),
                       ("sriov-pf0", sriov_conf("pf0")), ("sriov-pf9", sriov_conf("pf9")),
                       ("bridge-net", {"cniVersion": "1.0.0", "name": "x", "type": "bridge"})):
        srv.create(objects.nad(name, "default", conf))
    yield srv
    srv.stop()


def node_obj(name, free, detail=None):
    ann = {"sriov/vfCount": str(free)}
    if detail is not None:
        ann["sriov/vfDetail"] = json.dumps(detail, sort_keys=True, separators=(",", ":"))
    return objects.node(name, labels={"sriov/freeVFAvailable": "true"} if free else None, annotations=ann)


@pytest.fixture
def nodes(api, uid):
    """Three nodes with 0, 2 and 8 free VFs: {free: name}."""
    names = {free: f"n{free}-{uid}" for free in (0, 2, 8)}
    for free, name in names.items():
        api.create(node_obj(name, free))
    yield names
    for name in names.values():
        api.delete("nodes", name)


class Service:
    def __init__(self, api, kubeconfig, ttl, mode):
        self.ext, self.view = build(kubeconfig, ttl, mode)
        assert self.view.synced(10) and api.wait_for(self.view.ready, 10)
        self.ledger = self.ext.ledger
        self.srv = serve(self.ext, "127.0.0.1:0")
        self.port = self.srv.server_address[1]
        self._local = threading.local()

    def request(self, method, path, body=None, headers=None):
        conn = getattr(self._local, "conn", None)     # keep-alive, one connection per thread
        if conn is None:
            conn = self._local.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        hdrs = {"Content-Type": "application/json", **(headers or {})}
        conn.request(method, path, body=body, headers=hdrs)
        resp = conn.getresponse()
        data = resp.read()
        return resp.status, data

    def call(self, verb, pod, names=None, node_list=None, expect=200):
        """POST what kube-scheduler's HTTPExtender.send posts: json.Marshal(ExtenderArgs)."""
        args = {"Pod": pod, "Nodes": node_list, "NodeNames": names}
        status, data = self.request("POST", f"/scheduler/{verb}", json.dumps(args, separators=(",", ":")))
        assert status == expect, data
        return json.loads(data)

    def bind(self, pod, node, expect=200):
        """POST what kube-scheduler's HTTPExtender.Bind posts: json.Marshal(ExtenderBindingArgs)."""
        md = pod["metadata"]
        args = {"PodName": md["name"], "PodNamespace": md.get("namespace", "default"), "PodUID": md["uid"],
                "Node": node}
        status, data = self.request("POST", "/scheduler/bind", json.dumps(args))
        assert status == expect, data
        return json.loads(data)

    def stop(self):
        self.srv.shutdown()
        self.srv.server_close()
        self.view.stop()


@pytest.fixture
def extender(api, tmp_path):
    made = []

    def start(ttl=30.0, mode="filter"):
        """Mode "filter" by default: most tests here pin the tentative accounting of the mode
        without bindVerb; tests/test_extender_bind.py covers the bind mode (the shipped one)."""
        s = Service(api, api.kubeconfig(str(tmp_path / f"kc{len(made)}"), token="extender-token"), ttl, mode)
        made.append(s)
        return s
    yield start
    for s in made:
        s.stop()


def make_pod(api, name, networks=None, annotations=None):
    """A pending pod as kube-scheduler holds it (created in the API server: uid, defaults)."""
    ann = dict(annotations or {})
    if networks is not None:
        ann[NETWORKS] = networks
    return api.create(objects.pod(name, "default", annotations=ann or None))


def bind(api, pod, node):
    """What kube-scheduler's default binder does: POST pods/<name>/binding (as the admin)."""
    api.bind(pod, node)


# -- the "must show" ---------------------------------------------------------------------

def test_two_vf_pod_node_names_form(api, nodes, extender, uid):
    plain = f"plain-{uid}"
    api.create(objects.node(plain))       # no netmeta daemon there: publishes nothing
    svc = extender()
    pod = make_pod(api, f"p-{uid}", "sriov-net,sriov-list")
    names = [nodes[0], nodes[2], nodes[8], plain]
    res = svc.call("filter", pod, names=names)
    api.delete("nodes", plain)
    assert set(res) == GO_FILTER_KEYS and res["Nodes"] is None and res["Error"] == ""
    assert res["NodeNames"] == [nodes[2], nodes[8]]
    assert list(res["FailedNodes"]) == [nodes[0]]
    assert res["FailedAndUnresolvableNodes"] == {
        plain: "node publishes no SR-IOV availability (no sriov/vfCount annotation)"}
    assert "not enough free SR-IOV VFs: 0 free" in res["FailedNodes"][nodes[0]]
    assert "needs 2" in res["FailedNodes"][nodes[0]]
    scores = svc.call("prioritize", pod, names=res["NodeNames"])
    assert [set(s) for s in scores] == [{"Host", "Score"}] * 2
    by_host = {s["Host"]: s["Score"] for s in scores}
    assert by_host == {nodes[2]: 0, nodes[8]: 10}
    assert all(0 <= s <= 10 for s in by_host.values())


def test_two_vf_pod_nodes_form(api, nodes, extender, uid):
    svc = extender()
    pod = make_pod(api, f"p-{uid}", json.dumps([{"name": "sriov-net"}, {"name": "sriov-net", "interface": "sr2"}]))
    items = [api.get("nodes", nodes[f]) for f in (0, 2, 8)]
    res = svc.call("filter", pod, node_list={"metadata": {"resourceVersion": "7"}, "items": items})
    assert res["NodeNames"] is None
    assert res["Nodes"]["metadata"] == {"resourceVersion": "7"}
    assert res["Nodes"]["items"] == items[1:]          # the Node objects given, untouched
    assert nodes[0] in res["FailedNodes"]
    scores = svc.call("prioritize", pod, node_list={"metadata": {}, "items": items[1:]})
    assert max(scores, key=lambda s: s["Score"]) == {"Host": nodes[8], "Score": 10}


def test_burst_never_promises_more_than_free(api, nodes, extender, uid):
    """10 two-VF pods filtered one after another, no node count changing, no binding seen: a
    pod that passes a node is counted there (the scheduler may pick any node it passed)."""
    svc = extender()
    names = [nodes[0], nodes[2], nodes[8]]
    promised = dict.fromkeys(names, 0)
    passed_pods = []
    for i in range(10):
        pod = make_pod(api, f"burst{i}-{uid}", "sriov-net,sriov-net")
        res = svc.call("filter", pod, names=names)
        for n in res["NodeNames"]:
            promised[n] += 2
        if res["NodeNames"]:
            passed_pods.append(pod)
        # a repeated filter for the same pod (a retry) must not count it twice
        assert svc.call("filter", pod, names=names)["NodeNames"] == res["NodeNames"]
    assert promised == {nodes[0]: 0, nodes[2]: 2, nodes[8]: 8}
    assert len(passed_pods) == 4
    for free, name in nodes.items():
        assert svc.ledger.held(name).get(TOTAL, 0) <= free
    last = svc.call("filter", make_pod(api, f"burst-last-{uid}", "sriov-net"), names=names)
    assert last["NodeNames"] == [] and "8 promised to pods being scheduled" in last["FailedNodes"][nodes[8]]


def test_burst_concurrent_and_with_bindings(api, nodes, extender, uid):
    """Concurrent filters never overcommit either; once the pod watch shows where a pod was
    bound, its VFs stay promised on that node only, so the 2-VF node is usable again."""
    svc = extender()
    names = [nodes[2], nodes[8]]
    pods = [make_pod(api, f"c{i}-{uid}", "sriov-net,sriov-net") for i in range(10)]
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda p: svc.call("filter", p, names=names), pods))
    for name, free in ((nodes[2], 2), (nodes[8], 8)):
        assert 2 * sum(name in r["NodeNames"] for r in results) <= free
    first = next(p for p, r in zip(pods, results) if nodes[2] in r["NodeNames"])
    bind(api, first, nodes[8])
    assert api.wait_for(lambda: not svc.ledger.held(nodes[2]), 5)
    assert svc.ledger.held(nodes[8]) == {TOTAL: 8}
    res = svc.call("filter", make_pod(api, f"c-late-{uid}", "sriov-net,sriov-net"), names=names)
    assert res["NodeNames"] == [nodes[2]]


def test_assumptions_expire(api, nodes, extender, uid):
    svc = extender(ttl=0.5)
    names = [nodes[8]]
    for i in range(4):
        assert svc.call("filter", make_pod(api, f"e{i}-{uid}", "sriov-net,sriov-net"), names=names)["NodeNames"]
    pod = make_pod(api, f"e-next-{uid}", "sriov-net,sriov-net")
    assert svc.call("filter", pod, names=names)["NodeNames"] == []
    time.sleep(0.6)
    assert svc.call("filter", pod, names=names)["NodeNames"] == [nodes[8]]


def test_assumptions_released_when_node_count_drops(api, nodes, extender, uid):
    svc = extender(ttl=60)
    pod = make_pod(api, f"r-{uid}", "sriov-net,sriov-net")
    assert svc.call("filter", pod, names=[nodes[2], nodes[8]])["NodeNames"] == [nodes[2], nodes[8]]
    assert svc.ledger.held(nodes[8]) == {TOTAL: 2}
    metrics = svc.request("GET", "/metrics")[1].decode()
    assert 'netmeta_extender_assumed_vfs{state="tentative"} 4.0' in metrics
    # the pod's VFs were taken on n8: the daemon publishes 6 free (one merge PATCH)
    api.patch("nodes", nodes[8], {"metadata": {"annotations": {"sriov/vfCount": "6"}}})
    assert api.wait_for(lambda: not svc.ledger.held(nodes[8]), 5)
    assert svc.ledger.held(nodes[2]) == {TOTAL: 2}     # still promised where it did not land
    six = make_pod(api, f"r6-{uid}", ",".join(["sriov-net"] * 6))
    assert svc.call("filter", six, names=[nodes[8]])["NodeNames"] == [nodes[8]]
    # a drop smaller than a claim consumes part of it
    api.patch("nodes", nodes[8], {"metadata": {"annotations": {"sriov/vfCount": "1"}}})
    assert api.wait_for(lambda: svc.ledger.held(nodes[8]) == {TOTAL: 1}, 5)


def test_per_pf_detail(api, extender, uid):
    name = f"pf-{uid}"
    detail = {"pf0": {"total": 4, "free": 1, "allocated": 3, "pfAttached": False},
              "pf1": {"total": 8, "free": 4, "allocated": 4, "pfAttached": False}}
    api.create(node_obj(name, 5, detail))
    try:
        svc = extender()
        one = svc.call("filter", make_pod(api, f"a-{uid}", "sriov-pf0"), names=[name])
        assert one["NodeNames"] == [name] and svc.ledger.held(name) == {TOTAL: 1, "pf0": 1}
        two = svc.call("filter", make_pod(api, f"b-{uid}", "sriov-pf0"), names=[name])
        assert two["NodeNames"] == [] and "PF pf0: 1 free, 1 promised" in two["FailedNodes"][name]
        anypf = svc.call("filter", make_pod(api, f"c-{uid}", "sriov-net,sriov-net"), names=[name])
        assert anypf["NodeNames"] == [name]      # no master: counted against the node total
        missing = svc.call("filter", make_pod(api, f"d-{uid}", "sriov-pf9"), names=[name])
        assert "no SR-IOV PF pf9" in missing["FailedAndUnresolvableNodes"][name]
        # the PF's free count drops by one: the first pod's claim there is released
        detail["pf0"].update(free=0, allocated=4)
        api.patch("nodes", name, {"metadata": {"annotations": {
            "sriov/vfCount": "4", "sriov/vfDetail": json.dumps(detail)}}})
        assert api.wait_for(lambda: "pf0" not in svc.ledger.held(name), 5)
    finally:
        api.delete("nodes", name)


def test_non_sriov_pod_passes_everything(api, nodes, extender, uid):
    svc = extender()
    names = [nodes[0], nodes[2], nodes[8], f"no-such-node-{uid}"]
    held_before = svc.ledger.assumed()    # pods bound by earlier tests, still Pending, are held
    for pod in (make_pod(api, f"br-{uid}", "bridge-net"), make_pod(api, f"plain-{uid}"),
                make_pod(api, f"empty-{uid}", "[]")):
        res = svc.call("filter", pod, names=names)
        assert res["NodeNames"] == names and res["FailedNodes"] == {} and res["FailedAndUnresolvableNodes"] == {}
        assert svc.call("prioritize", pod, names=names) == [{"Host": n, "Score": 0} for n in names]
    assert svc.ledger.assumed() == held_before


def test_bad_requests_are_answered_clearly(api, nodes, extender, uid):
    svc = extender()
    for body in (b"{not json", b"[1, 2]", b'{"Nodes": null, "NodeNames": []}', b'{"Pod": 3, "NodeNames": []}',
                 b'{"Pod": {}}', b'{"Pod": {}, "NodeNames": "n1"}', b'{"Pod": {}, "Nodes": {"items": [{}]}}',
                 b"\xff\xfe", b"[" * 100000):
        for verb in ("filter", "prioritize"):
            status, data = svc.request("POST", f"/x/{verb}", body)
            assert status == 400, (body[:40], data)
            res = json.loads(data)
            assert res["Error"].startswith("malformed ExtenderArgs") and "Traceback" not in res["Error"]
    pod = make_pod(api, f"b-{uid}", "sriov-net")
    unknown = f"ghost-{uid}"
    res = svc.call("filter", pod, names=[nodes[8], unknown])
    assert res["NodeNames"] == [nodes[8]] and "unknown to the extender" in res["FailedNodes"][unknown]
    assert {s["Host"] for s in svc.call("prioritize", pod, names=[nodes[8], unknown])} == {nodes[8], unknown}
    # lower-case keys decode too (encoding/json matches case-insensitively)
    status, data = svc.request("POST", "/filter", json.dumps({"pod": pod, "nodenames": [nodes[0]]}))
    assert status == 200 and json.loads(data)["FailedNodes"][nodes[0]]
    bad = make_pod(api, f"bad-{uid}", "sriov-net@way-too-long-interface-name")
    res = svc.call("filter", bad, names=[nodes[8]])
    assert "failed to parse k8s.v1.cni.cncf.io/networks" in res["FailedAndUnresolvableNodes"][nodes[8]]
    gone = make_pod(api, f"gone-{uid}", "no-such-nad")
    res = svc.call("filter", gone, names=[nodes[8]])
    assert res["FailedAndUnresolvableNodes"] == {nodes[8]: "network-attachment-definition default/no-such-nad not found"}
    assert svc.request("POST", "/scheduler/unbind", b"{}")[0] == 404
    # a chunked body, and none at all
    body = json.dumps({"Pod": pod, "NodeNames": [nodes[8]]}).encode()
    chunked = (b"POST /filter HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
               + b"%x\r\n" % len(body) + body + b"\r\n0\r\n\r\n")
    for raw, status in ((chunked, 200), (b"POST /filter HTTP/1.1\r\nHost: x\r\n\r\n", 411)):
        with socket.create_connection(("127.0.0.1", svc.port), timeout=5) as s:
            s.sendall(raw)
            resp = http.client.HTTPResponse(s)
            resp.begin()
            assert resp.status == status
            assert json.loads(resp.read())["Error"] == ("" if status == 200 else "a Content-Length is required")


def test_api_trouble_is_an_error_not_a_verdict(api, nodes, extender, uid):
    """A NAD that cannot be read now (not in the watch cache, the GET fails): the result's
    Error (kube-scheduler retries the pod later), not a node verdict; prioritize stays neutral."""
    svc = extender()
    pod = make_pod(api, f"t-{uid}", "flaky-net")
    api.inject(method="GET", path_regex="network-attachment-definitions/flaky-net", status=503, count=None)
    try:
        res = svc.call("filter", pod, names=[nodes[8]])
        assert res["Error"].startswith("failed to get network-attachment-definition default/flaky-net")
        assert res["NodeNames"] is None
        assert svc.call("prioritize", pod, names=[nodes[8]]) == [{"Host": nodes[8], "Score": 0}]
    finally:
        api.clear_faults()


def test_shipped_configuration():
    """conf/scheduler-extender: kube-scheduler calls the verbs this service answers, sends
    NodeNames, does not ignore failures; the Service, Deployment and config agree on the port."""
    (cfg,) = manifest("scheduler-config.yaml", "KubeSchedulerConfiguration")
    (ext,) = cfg["extenders"]
    assert (ext["filterVerb"], ext["prioritizeVerb"], ext["bindVerb"]) == ("filter", "prioritize", "bind")
    assert ext["nodeCacheCapable"] is True and ext["ignorable"] is False and ext["weight"] > 0
    assert "managedResources" not in ext
    (svc,) = manifest("service.yaml", "Service")
    (dep,) = manifest("deployment.yaml", "Deployment")
    port = svc["spec"]["ports"][0]["port"]
    assert ext["urlPrefix"].startswith(f"http://{svc['metadata']['name']}.{svc['metadata']['namespace']}.svc:{port}/")
    assert dep["spec"]["replicas"] == 1 and dep["spec"]["strategy"]["type"] == "Recreate"
    (container,) = dep["spec"]["template"]["spec"]["containers"]
    assert container["command"][:2] == ["netmeta", "scheduler-extender"]
    assert container["command"][container["command"].index("--listen") + 1] == f":{port}"
    assert dep["spec"]["template"]["spec"]["serviceAccountName"] == "netmeta-scheduler-extender"
    assert sorted(shipped_rules()) == [("create", ["pods/binding"]),
                                       ("get,list,watch", ["network-attachment-definitions.k8s.cni.cncf.io"]),
                                       ("get,list,watch", ["nodes", "pods"])]
    assert "--mode" not in container["command"]       # bind mode is the default, matching bindVerb


def test_health_ready_metrics(api, nodes, extender, uid):
    svc = extender()
    assert svc.request("GET", "/healthz") == (200, b"ok\n")
    assert svc.request("GET", "/readyz") == (200, b"ok\n")
    before = svc.ledger.assumed()      # pods bound by earlier tests, still Pending, are held
    pod = make_pod(api, f"m-{uid}", "sriov-net,sriov-net")
    svc.call("filter", pod, names=[nodes[0], nodes[8]])
    svc.call("prioritize", pod, names=[nodes[8]])
    svc.request("POST", "/filter", b"nope")
    text = svc.request("GET", "/metrics")[1].decode()
    for line in ('netmeta_extender_decisions_total{result="fit",verb="filter"} 1.0',
                 'netmeta_extender_decisions_total{result="scored",verb="prioritize"} 1.0',
                 'netmeta_extender_decisions_total{result="bad_request",verb="filter"} 1.0',
                 'netmeta_extender_filtered_nodes_total{reason="insufficient"} 1.0',
                 f'netmeta_extender_assumed_vfs{{state="tentative"}} {before["tentative"] + 2}.0',
                 f'netmeta_extender_assumed_vfs{{state="bound"}} {before["bound"]}.0',
                 f"netmeta_extender_assumed_pods {before['pods'] + 1}.0"):
        assert line in text


def test_command_line_tls_and_sigterm(api, nodes, uid, tmp_path):
    """`main` as `netmeta scheduler-extender` runs it: HTTPS with --tls-cert/--tls-key, served
    until SIGTERM, exit 0. (The test API server's serving certificate is for 127.0.0.1.)"""
    kc = api.kubeconfig(str(tmp_path / "kc"), token="extender-token")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cmd = [sys.executable, "-c", "import sys; from meta.extender.main import main; sys.exit(main(sys.argv[1:]))",
           "--listen", f"127.0.0.1:{port}", "--kubeconfig", kc, "--assume-ttl", "5",
           "--tls-cert", api.cert_file, "--tls-key", api.key_file]
    proc = subprocess.Popen(cmd, cwd=ROOT, stderr=subprocess.PIPE)
    try:
        ctx = ssl.create_default_context(cafile=api.ca_file)

        def get(path, body=None):
            c = http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=5)
            try:
                c.request("POST" if body else "GET", path, body=body)
                r = c.getresponse()
                return r.status, r.read()
            finally:
                c.close()

        def ready():
            try:
                return get("/readyz")[0] == 200
            except OSError:
                return False
        assert api.wait_for(ready, 20, 0.1)
        pod = make_pod(api, f"cli-{uid}", "sriov-net,sriov-net,sriov-net")
        status, data = get("/scheduler/filter", json.dumps({"Pod": pod, "Nodes": None,
                                                            "NodeNames": [nodes[2], nodes[8]]}))
        assert status == 200 and json.loads(data)["NodeNames"] == [nodes[8]]
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    bad = subprocess.run([*cmd[:3], "--assume-ttl", "0"], check=False, cwd=ROOT, capture_output=True, text=True)
    assert bad.returncode == 2 and "--assume-ttl must be > 0" in bad.stderr


# -- the assumed-VF accounting as a property -----------------------------------------------------

EVENTS = st.lists(st.one_of(
    st.tuples(st.just("filter"), st.integers(0, 7), st.integers(1, 3), st.sampled_from(["", "pf0", "pf1"])),
    st.tuples(st.just("bind"), st.integers(0, 7), st.integers(0, 2)),
    st.tuples(st.just("gone"), st.integers(0, 7)),
    st.tuples(st.just("publish"), st.integers(0, 2), st.integers(0, 6), st.integers(0, 6)),
    st.tuples(st.just("tick"), st.integers(1, 20))), max_size=60)


@settings(max_examples=300, deadline=None)
@given(EVENTS)
def test_promised_never_exceeds_published_free(events):
    """Whatever the order of filters, bindings, deletions, node updates and time: on every node
    and PF, the VFs promised to pods never exceed what the node last published as free."""
    now = [0.0]
    ledger = Ledger(ttl=10, clock=lambda: now[0])
    pubs = {}

    def publish(node, pf0, pf1):
        pubs[node] = {"": pf0 + pf1, "pf0": pf0, "pf1": pf1}
        detail = {pf: {"total": 6, "free": pubs[node][pf]} for pf in ("pf0", "pf1")}
        ledger.observe_node(node, node_obj(node, pf0 + pf1, detail))

    for n in range(3):
        publish(f"n{n}", 3, 3)
    for ev in events:
        if ev[0] == "filter":
            _, pod, count, pf = ev
            need = Need(count, ((pf, count),) if pf else ())
            ledger.decide(f"u{pod}", need, ["n0", "n1", "n2"], assume=True)
        elif ev[0] == "bind":
            ledger.bind(f"u{ev[1]}", f"n{ev[2]}")
        elif ev[0] == "gone":
            ledger.pod_gone(f"u{ev[1]}")
        elif ev[0] == "publish":
            publish(f"n{ev[1]}", ev[2], ev[3])
        else:
            now[0] += ev[1] / 4
        for node, free in pubs.items():
            held = ledger.held(node)
            assert all(held.get(pool, 0) <= free[pool] for pool in free), (node, held, free)
