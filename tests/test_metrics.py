"""The daemon's /metrics as a user's Prometheus sees it: requests by plugin/command/code/network,
VF allocation per PF, VF availability writes to the Node, network-status write lag, Kubernetes
API errors. A real daemon process, the real shim, the test API server, the simulated NIC."""
import json
import os
import time
import uuid

import pytest
import yaml

from tests import stubplugins
from tests.cnirun import VENV_BIN, cni
from tests.daemonproc import DaemonProc
from tests.kubeapi.server import KubeAPIServer
from tests.simnic import records

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NS = "team-m"


@pytest.fixture
def cluster(tmp_path, nic, uid):
    with open(os.path.join(REPO, "conf", "crd-network-attachment-definition.yaml")) as f:
        crd = yaml.safe_load(f)
    api = KubeAPIServer(tokens={"t": "*"}, objects=[crd])
    api.start()
    node = f"node-{uid}"
    api.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}})
    api.create({"apiVersion": "v1", "kind": "Node", "metadata": {"name": node}})
    sriov = dict(nic, cniVersion="1.0.0", type="sriov", capabilities={"ips": True},
                 ipam={"type": "fixipam", "subnet": "10.59.0.0/24", "dataDir": str(tmp_path / "fix")})
    api.create({"apiVersion": "k8s.cni.cncf.io/v1", "kind": "NetworkAttachmentDefinition",
                "metadata": {"name": "vf", "namespace": NS}, "spec": {"config": json.dumps(sriov)}})
    kc = api.kubeconfig(str(tmp_path / "kubeconfig"), token="t")
    pf = {k: nic[k] for k in ("master", "sysfsRoot", "backend", "stateDir")}
    d = DaemonProc(tmp_path / "d", pfs=[pf], kubeconfig=kc, nodeName=node, requestTimeout=30,
                   coalesceWindow=0.05, minPublishInterval=0)
    plug = tmp_path / "plug"
    plug.mkdir()
    (tmp_path / "marks").mkdir()
    stubplugins.install(plug / "okplug", stubplugins.OKPLUG, "MARKS", tmp_path / "marks")
    conf = {"cniVersion": "1.0.0", "name": f"clusternet-{uid}", "type": "netmeta", "mode": "daemon",
            "socketPath": d.socket, "kubeconfig": kc, "cniDir": d.cfg["cniDir"],
            "delegates": [{"cniVersion": "1.0.0", "name": "cluster", "type": "okplug"}]}
    d.start()
    yield api, d, conf, str(plug), node
    d.stop()
    api.stop()


def pod(api, node, networks):
    name = f"p-{uuid.uuid4().hex[:6]}"
    obj = api.create({"apiVersion": "v1", "kind": "Pod",
                      "metadata": {"name": name, "namespace": NS, "annotations": {"k8s.v1.cni.cncf.io/networks": networks}},
                      "spec": {"nodeName": node, "containers": [{"name": "c", "image": "pause"}]}})
    return name, obj["metadata"]["uid"]


def call(conf, plug, netns, name, uid_, command, cid):
    return cni("netmeta", command, conf, container_id=cid, netns=f"/var/run/netns/{netns}", path=f"{plug}:{VENV_BIN}",
               args=f"IgnoreUnknown=1;K8S_POD_NAMESPACE={NS};K8S_POD_NAME={name};K8S_POD_UID={uid_}")


def wait(cond, what, timeout=30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.05)
    raise AssertionError(f"not within {timeout}s: {what}")


def test_metrics_users_ask_for(cluster, nic, netns, uid):
    api, d, conf, plug, node = cluster
    net = conf["name"]
    ns1, ns2 = netns(), netns()
    # one pod with a VF; its network-status PATCH meets one API error first (retried)
    api.inject(method="PATCH", resource="pods", status=500, count=1)
    name, puid = pod(api, node, json.dumps([{"name": "vf", "ips": ["10.59.0.7/24"]}]))
    r = call(conf, plug, ns1, name, puid, "ADD", "m1")
    assert r.ok, r.stdout + r.stderr.encode()
    wait(lambda: "k8s.v1.cni.cncf.io/network-status" in (api.get("pods", name, NS)["metadata"].get("annotations") or {}),
         "network-status written")
    assert d.metric("netmeta_cni_requests_total", plugin="netmeta", command="ADD", code="0", network=net) == 1
    assert d.metric("netmeta_vfs", pf=nic["master"], state="allocated") == 1 == len(records(nic))
    assert d.metric("netmeta_vfs", pf=nic["master"], state="free") == 7
    wait(lambda: d.metric("netmeta_network_status_write_lag_seconds_count") == 1, "lag observed")
    assert d.metric("netmeta_network_status_write_failures_total") == 1
    assert d.metric("netmeta_api_errors_total", verb="patch", code="500") == 1
    wait(lambda: d.metric("netmeta_node_status_patches_total") >= 1, "VF availability published")
    wait(lambda: d.metric("netmeta_node_status_in_sync") == 1, "node status in sync")
    assert d.metric("netmeta_network_status_pending") == 0

    # a pod naming a NAD that does not exist: its error code, by network
    bad, buid = pod(api, node, "missing")
    r = call(conf, plug, ns2, bad, buid, "ADD", "m2")
    assert r.rc != 0
    code = str(r.out["code"])
    assert d.metric("netmeta_cni_requests_total", plugin="netmeta", command="ADD", code=code, network=net) == 1
    assert d.metric("netmeta_api_errors_total", verb="get", code="404") >= 1   # the NAD's GET

    assert call(conf, plug, ns1, name, puid, "DEL", "m1").ok
    assert call(conf, plug, ns2, bad, buid, "DEL", "m2").ok
    assert d.metric("netmeta_cni_requests_total", plugin="netmeta", command="DEL", code="0", network=net) == 2
    assert d.metric("netmeta_vfs", pf=nic["master"], state="allocated") == 0
    # the stand-alone delegates count under the network (NAD) name they were called for
    fx = {"cniVersion": "1.0.0", "name": f"nad-{uid}",
          "ipam": {"type": "fixipam", "subnet": "10.58.0.0/24", "dataDir": str(d.dir) + "/fx"}}
    env = {"NETMETA_SOCKET": d.socket}
    assert cni("fixipam", "ADD", fx, netns="/x", args="IP=10.58.0.5", extra_env=env).ok
    assert cni("fixipam", "DEL", fx, netns="/x", extra_env=env).ok
    assert d.metric("netmeta_cni_requests_total", plugin="fixipam", code="0", network=f"nad-{uid}") == 2


def test_the_daemons_exposition_is_the_librarys_byte_for_byte():
    """meta/daemon/metrics.exposition is prometheus_client's generate_latest ported (its module
    loads the library's HTTP servers, ~5 MB of the daemon's RSS): the same text for the
    daemon's own registry, with label values that need escaping, and for the other metric
    types the format knows."""
    from prometheus_client import CollectorRegistry, Enum, Info, Summary
    from prometheus_client.core import GaugeHistogramMetricFamily, Metric
    from prometheus_client.exposition import generate_latest

    from meta.daemon import metrics
    m = metrics.Metrics()
    for i, net in enumerate(["cluster", 'q"uote', "back\\slash", "new\nline", "ünïcode ✓", ""]):
        stdin = json.dumps({"cniVersion": "1.0.0", "name": net}).encode()
        m.request("netmeta", "ADD", i % 2, b'{"code": 7}' if i % 2 else b"{}", stdin)
        m.latency.labels(plugin="sriov", command="DEL").observe(0.003 * 10 ** i)
    m.vfs.labels(pf="enp1s0f0", state="free").set(float("inf"))
    m.vfs.labels(pf="enp1s0f1", state="free").set(float("nan"))
    m.vfs.labels(pf="enp1s0f2", state="total").set(1234567.0)
    m.inflight.set(-1e-9)
    assert metrics.exposition(m.registry) == generate_latest(m.registry)
    assert m.render() == generate_latest(m.registry)

    other = CollectorRegistry()
    Info("build", 'a "doc"\nwith\\escapes', registry=other).info({"version": "1\n2"})
    Enum("state", "doc", states=["a", "b"], registry=other).state("b")
    Summary("lat", "doc", ["x"], registry=other).labels(x="1").observe(2.5)

    class Extra:
        def collect(self):
            g = GaugeHistogramMetricFamily("queue", "doc", buckets=[("1.0", 4), ("+Inf", 5)], gsum_value=7)
            yield g
            u = Metric("raw", "doc", "unknown")
            u.add_sample("raw", {"le": "x"}, 3.0, timestamp=1700000000.5)
            yield u
    other.register(Extra())
    assert metrics.exposition(other) == generate_latest(other)
