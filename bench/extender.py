"""Scheduler extender: decisions per second (one decision = filter + prioritize of one pod) over
1000 nodes. Stand-alone: `.venv/bin/python bench/extender.py [--nodes N] [--runs N]`.

Cases (each pod asks for 2 SR-IOV VFs unless said otherwise; a fresh pod UID per decision):
  engine, NodeNames     Extender.filter + .prioritize on the request bytes (JSON parse, need,
                        ledger, result), no HTTP
  HTTP, NodeNames       the same over HTTP/1.1 keep-alive on loopback (what nodeCacheCapable
                        kube-scheduler sends)
  HTTP, Nodes           the Nodes form: 1000 whole Node objects in each request and answer
  HTTP, no SR-IOV pod   a pod whose networks are not SR-IOV (pass-through)
Between decisions, untimed, the pod is bound to its best node and that node publishes 2 fewer
free VFs (as the pod watch and the node watch would report), so the cluster never fills up.
"""
import argparse
import http.client
import json
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from cni.errors import NETWORK_NOT_FOUND, CNIError
from meta.extender import Extender
from meta.extender_http import serve
from meta.extender_ledger import Ledger

FREE = 16


class NADs:
    def __init__(self):
        conf = {"sriov-a": {"type": "sriov", "master": "pf0"}, "sriov-b": {"type": "sriov"},
                "bridge": {"type": "bridge"}}
        self.nads = {("default", n): {"metadata": {"name": n, "namespace": "default", "resourceVersion": "1"},
                                      "spec": {"config": json.dumps({"cniVersion": "1.0.0", **c})}}
                     for n, c in conf.items()}

    def get_nad(self, namespace, name):
        try:
            return self.nads[(namespace, name)]
        except KeyError:
            raise CNIError(NETWORK_NOT_FOUND, f"no NAD {namespace}/{name}") from None


def node(name: str, pf0: int, pf1: int) -> dict:
    """A Node as meta/nodestatus.py leaves it: two PFs of FREE/2 VFs each."""
    half = FREE // 2
    detail = {pf: {"total": half, "free": f, "allocated": half - f, "pfAttached": False}
              for pf, f in (("pf0", pf0), ("pf1", pf1))}
    return {"metadata": {"name": name, "resourceVersion": "1", "labels": {"kubernetes.io/hostname": name},
                         "annotations": {"sriov/vfCount": str(pf0 + pf1),
                                         "sriov/vfDetail": json.dumps(detail, sort_keys=True)}},
            "spec": {"podCIDR": "10.0.0.0/24"},
            "status": {"capacity": {"cpu": "64", "memory": "256Gi", "pods": "110"},
                       "allocatable": {"cpu": "63", "memory": "250Gi", "pods": "110"},
                       "conditions": [{"type": "Ready", "status": "True"}],
                       "addresses": [{"type": "InternalIP", "address": "10.1.0.1"}],
                       "nodeInfo": {"kubeletVersion": "v1.34.1", "osImage": "Debian GNU/Linux 12"}}}


class Cluster:
    def __init__(self, n: int):
        self.names = [f"node-{i:04d}" for i in range(n)]
        self.free = {n: (FREE // 2, FREE // 2) for n in self.names}     # (pf0, pf1) free
        self.ledger = Ledger(ttl=60)
        for name in self.names:
            self.ledger.observe_node(name, node(name, *self.free[name]))
        self.ext = Extender(NADs(), self.ledger)
        self.seq = 0

    def args(self, nodes_form: bool, networks: str) -> bytes:
        self.seq += 1
        pod = {"metadata": {"name": f"p{self.seq}", "namespace": "default", "uid": f"uid-{self.seq}",
                            "annotations": {"k8s.v1.cni.cncf.io/networks": networks}},
               "spec": {"containers": [{"name": "c", "image": "busybox"}], "schedulerName": "default-scheduler"}}
        if nodes_form:
            return json.dumps({"Pod": pod, "Nodes": {"metadata": {}, "items": [node(n, *self.free[n]) for n in self.names]},
                               "NodeNames": None}).encode()
        return json.dumps({"Pod": pod, "Nodes": None, "NodeNames": self.names}).encode()

    def settle(self, body: bytes, scores, networks: str) -> None:
        """Untimed: bind the pod to its best node, whose daemon then publishes the VFs it took
        (one on pf0, one on either PF); a node running low is refilled (its pods ended)."""
        if not scores or "sriov" not in networks:
            return
        uid = json.loads(body)["Pod"]["metadata"]["uid"]
        best = max(scores, key=lambda s: s["Score"])["Host"]
        self.ledger.bind(uid, best)
        pf0, pf1 = self.free[best]
        pf0 -= 1
        pf0, pf1 = (pf0 - 1, pf1) if pf0 >= pf1 else (pf0, pf1 - 1)
        self.free[best] = (pf0, pf1) if min(pf0, pf1) >= 1 else (FREE // 2, FREE // 2)
        self.ledger.observe_node(best, node(best, *self.free[best]))


def measure(cluster: Cluster, decide, runs: int, nodes_form=False, networks="sriov-a,sriov-b") -> list:
    ms = []
    for i in range(runs + 3):
        body = cluster.args(nodes_form, networks)
        t = time.perf_counter()
        scores = decide(body)
        elapsed = (time.perf_counter() - t) * 1000.0
        if i >= 3:             # warm-up
            ms.append(elapsed)
        cluster.settle(body, scores, networks)
    return ms


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--nodes", type=int, default=1000)
    p.add_argument("--runs", type=int, default=150)
    a = p.parse_args(argv)
    cluster = Cluster(a.nodes)
    srv = serve(cluster.ext, "127.0.0.1:0")
    conn = http.client.HTTPConnection("127.0.0.1", srv.server_address[1], timeout=30)

    def post(verb, body):
        conn.request("POST", f"/scheduler/{verb}", body=body, headers={"Content-Type": "application/json"})
        r = conn.getresponse()
        data = r.read()
        assert r.status == 200, data[:200]
        return json.loads(data)

    def engine(body):
        status, res = cluster.ext.filter(body)
        assert status == 200 and not res["Error"], res
        status, scores = cluster.ext.prioritize(body)
        return scores if res["NodeNames"] else None

    def over_http(body):
        res = post("filter", body)
        scores = post("prioritize", body)
        return scores if (res["NodeNames"] or (res["Nodes"] or {}).get("items")) else None

    cases = [("engine, NodeNames", engine, {}),
             ("HTTP, NodeNames", over_http, {}),
             ("HTTP, Nodes (whole Node objects)", over_http, {"nodes_form": True, "runs": max(20, a.runs // 5)}),
             ("HTTP, no SR-IOV pod (pass-through)", over_http, {"networks": "bridge"})]
    print(f"scheduler extender, filter + prioritize per decision, {a.nodes} nodes, "
          f"2 VFs per pod (one on a named PF)")
    print(f"{'case':38} {'runs':>5} {'median ms':>10} {'p95 ms':>8} {'decisions/s':>12}")
    for label, fn, kw in cases:
        runs = kw.pop("runs", a.runs)
        ms = sorted(measure(cluster, fn, runs, **kw))
        med, p95 = statistics.median(ms), ms[min(len(ms) - 1, int(len(ms) * 0.95))]
        print(f"{label:38} {len(ms):>5} {med:>10.2f} {p95:>8.2f} {1000.0 / med:>12.0f}")
    a_ = cluster.ledger.assumed()
    print(f"(assumed at the end: {a_['bound']} VFs bound, {a_['tentative']} tentative, {a_['pods']} pods)")
    conn.close()
    srv.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
