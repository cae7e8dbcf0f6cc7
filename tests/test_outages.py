"""The Kubernetes API away, slow or answering 409s: pods still get their networks from the
daemon's caches; network-status and node availability converge once the API is back; no
request outlives its timeout; no update is lost."""
import json
import os
import threading
import time

import pytest
import yaml

from tests.cnirun import DEBIAN_CNI, cni, ip_json
from tests.daemonproc import DaemonProc
from tests.kubeapi.server import KubeAPIServer

pytestmark = pytest.mark.skipif(not os.path.exists(f"{DEBIAN_CNI}/bridge"), reason="needs Debian CNI plugins")
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture
def cluster(tmp_path, nic, uid):
    with open(os.path.join(REPO, "conf", "crd-network-attachment-definition.yaml")) as f:
        crd = yaml.safe_load(f)
    api = KubeAPIServer(objects=[crd, {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "node1"}}]).start()
    kc = api.kubeconfig(str(tmp_path / "kubeconfig"))
    sr = dict(nic, cniVersion="1.0.0", type="sriov", capabilities={"ips": True},
              ipam={"type": "fixipam", "subnet": "10.60.0.0/24", "dataDir": str(tmp_path / "fixipam")})
    api.create({"apiVersion": "k8s.cni.cncf.io/v1", "kind": "NetworkAttachmentDefinition",
                "metadata": {"name": "vf", "namespace": "default"}, "spec": {"config": json.dumps(sr)}})
    d = DaemonProc(tmp_path / "d", kubeconfig=kc, nodeName="node1", requestTimeout=3, coalesceWindow=0.1,
                   pfs=[{k: nic[k] for k in ("master", "sysfsRoot", "backend", "stateDir")}])
    os.makedirs(d.dir, exist_ok=True)
    d.start()
    api.wait_for(lambda: d.metric("netmeta_api_requests_total", verb="watch") >= 2, timeout=10)
    conf = {"cniVersion": "1.0.0", "name": "netmeta", "type": "netmeta", "socketPath": d.socket, "mode": "daemon",
            "kubeconfig": kc, "cniDir": d.cfg["cniDir"],
            "delegates": [{"cniVersion": "1.0.0", "name": "cluster", "type": "bridge", "bridge": f"nmo{uid}",
                           "isGateway": True, "ipam": {"type": "host-local", "subnet": "10.244.6.0/24",
                                                       "dataDir": str(tmp_path / "hostlocal")}}]}

    class C:
        pass
    c = C()
    c.api, c.daemon, c.conf, c.uid = api, d, conf, uid
    yield c
    d.stop()
    api.stop()
    import subprocess
    subprocess.run(["ip", "link", "del", f"nmo{uid}"], capture_output=True)


def make_pod(c, name, annots):
    c.api.create({"apiVersion": "v1", "kind": "Pod",
                  "metadata": {"name": name, "namespace": "default", "annotations": dict(annots, keep="me")},
                  "spec": {"nodeName": "node1", "containers": [{"name": "c", "image": "pause"}]}})


def call(c, command, name, ns, annots):
    conf = dict(c.conf, runtimeConfig={"io.kubernetes.cri.pod-annotations": annots})
    return cni("netmeta", command, conf, container_id=f"c{name}", netns=f"/var/run/netns/{ns}",
               args=f"IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME={name}")


def status_of(c, name):
    obj = c.api.get("pods", name, "default")
    return (obj["metadata"].get("annotations") or {}).get("k8s.v1.cni.cncf.io/network-status") if obj else None


def node_count(c):
    return (c.api.get("nodes", "node1")["metadata"].get("annotations") or {}).get("sriov/vfCount")


def test_api_down_during_add_then_convergence(cluster, netns):
    c = cluster
    annots = {"k8s.v1.cni.cncf.io/networks": json.dumps([{"name": "vf", "ips": ["10.60.0.5/24"]}])}
    make_pod(c, "down1", annots)
    time.sleep(0.3)   # the pod's watch event reaches the daemon
    c.api.wait_for(lambda: node_count(c) == "8", timeout=10)
    c.api.set_down(True)
    ns = netns()
    t0 = time.monotonic()
    r = call(c, "ADD", "down1", ns, annots)
    took = time.monotonic() - t0
    assert r.ok, r.stdout            # networks from the caches, the API is not needed
    assert sorted(l["ifname"] for l in ip_json("link", "show", netns=ns)) == ["eth0", "lo", "net1"]
    time.sleep(1.0)
    back = time.monotonic()
    c.api.set_down(False)
    c.api.wait_for(lambda: status_of(c, "down1") and node_count(c) == "7", timeout=30)
    conv = time.monotonic() - back
    print(f"\nADD with the API down: {took * 1000:.0f} ms; network-status and vfCount converged "
          f"{conv * 1000:.0f} ms after the API came back")
    assert [s["interface"] for s in json.loads(status_of(c, "down1"))] == ["eth0", "net1"]
    assert call(c, "DEL", "down1", ns, annots).ok
    c.api.wait_for(lambda: node_count(c) == "8", timeout=10)


def test_409_storm_loses_no_update(cluster, netns):
    c = cluster
    c.api.inject(method="PATCH", resource="pods", status=409, count=12)
    names = [f"storm{i}" for i in range(3)]
    annots = {"k8s.v1.cni.cncf.io/networks": ""}
    for n in names:
        make_pod(c, n, annots)
    time.sleep(0.3)
    nss = [netns() for _ in names]
    res = {}
    ts = [threading.Thread(target=lambda n=n, ns=ns: res.update({n: call(c, "ADD", n, ns, annots)}))
          for n, ns in zip(names, nss)]
    [t.start() for t in ts]
    [t.join(30) for t in ts]
    assert all(r.ok for r in res.values()), {n: r.out for n, r in res.items()}
    c.api.wait_for(lambda: all(status_of(c, n) for n in names), timeout=30)
    for n in names:   # each pod's own status, and the pod's other annotations untouched
        st = json.loads(status_of(c, n))
        assert st[0]["interface"] == "eth0"
        assert c.api.get("pods", n, "default")["metadata"]["annotations"]["keep"] == "me"
    assert c.api.count(method="PATCH", resource="pods", status=409) == 12
    for n, ns in zip(names, nss):
        assert call(c, "DEL", n, ns, annots).ok


def test_slow_api_never_outlives_the_request_timeout(cluster, netns):
    c = cluster
    annots = {"k8s.v1.cni.cncf.io/networks": "not-cached-net"}   # a cache miss: GET the NAD
    make_pod(c, "slow1", annots)
    c.api.inject(method="GET", path_regex="not-cached-net", hang=True, count=None)
    t0 = time.monotonic()
    r = call(c, "ADD", "slow1", netns(), annots)
    took = time.monotonic() - t0
    c.api.clear_faults()
    print(f"\nADD against a hanging API answered in {took:.2f}s (request timeout 3s): {r.out}")
    assert r.rc != 0 and r.out["code"] == 11 and took < 5
