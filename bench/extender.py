"""Scheduler extender at cluster scale, against the project's test Kubernetes API server.

`.venv/bin/python bench/extender.py [--nodes 1000,5000] [--decisions 200] [--big 20000]`

The extender runs as its own process (`netmeta scheduler-extender`, bind mode, as shipped) with a
kubeconfig for the test API server (TLS, in this process), which holds N nodes of ~5.3 KB each
(2 PFs x 32 VFs, the availability annotations naming the pods holding VFs, 20 images, the usual
status) and the NAD CRD with an SR-IOV NAD.

Per node count:
  start-up       peak RSS (VmHWM) when /readyz first answers 200 (every cache filled, paged
                 LISTs), steady RSS 2 s later and after the decisions
  filter / prioritize / bind
                 p50 / p99 ms over HTTP keep-alive, as kube-scheduler calls them (NodeNames form,
                 every node a candidate); bind POSTs the pod's binding to the API server
  200 parallel filters
                 p50 / p99 ms of 200 filters sent at once on 200 connections
Bursts (16 callers at once, as kube-scheduler's cycle + async binds; failed binds retried):
  10 nodes x 15 free VFs, 200 one-VF pods      -> placed, pods/s
  1,000 nodes, 150 with one free VF, 200 pods  -> placed, pods/s
Big: `--big` nodes (default 20,000): start-up peak RSS beside the shipped memory limit
(conf/scheduler-extender/deployment.yaml).
"""
import argparse
import http.client
import json
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from bench.rss import proc_status  # noqa: E402
from tests.kubeapi import objects  # noqa: E402
from tests.kubeapi.server import KubeAPIServer  # noqa: E402

VFS_PER_PF = 32
IMAGES = [{"names": [f"registry.example.com/team{i}/app{i}@sha256:{i:064x}", f"registry.example.com/team{i}/app{i}:v1.{i}"],
           "sizeBytes": 100_000_000 + i} for i in range(16)]


def node(name: str, free: tuple, holders: tuple = ((), ())) -> dict:
    """A Node as a real cluster holds it, with meta/daemon/availability.py's annotations (~5.3 KB)."""
    detail = {pf: {"total": VFS_PER_PF, "free": f, "allocated": VFS_PER_PF - f, "pfAttached": False,
                   "pods": sorted(h)} for pf, f, h in zip(("pf0", "pf1"), free, holders)}
    labels = {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64",
              "node.kubernetes.io/instance-type": "bare-metal-64c", "topology.kubernetes.io/zone": "zone-a",
              "feature.node.kubernetes.io/network-sriov.capable": "true"}
    if sum(free):
        labels["sriov/freeVFAvailable"] = "true"
    obj = objects.node(name, labels=labels, annotations={
        "sriov/vfCount": str(sum(free)), "sriov/vfDetail": json.dumps(detail, sort_keys=True, separators=(",", ":")),
        "node.alpha.kubernetes.io/ttl": "0", "volumes.kubernetes.io/controller-managed-attach-detach": "true"})
    obj["spec"] = {"podCIDR": "10.244.1.0/24", "podCIDRs": ["10.244.1.0/24"], "providerID": f"metal://{name}"}
    obj["status"] = {
        "capacity": {"cpu": "64", "memory": "263842304Ki", "pods": "110", "intel.com/sriov": "64"},
        "allocatable": {"cpu": "63", "memory": "257654784Ki", "pods": "110", "intel.com/sriov": "64"},
        "conditions": [{"type": t, "status": s, "reason": f"Kubelet{t}", "message": f"kubelet reports {t}",
                        "lastHeartbeatTime": "2026-12-01T00:00:00Z", "lastTransitionTime": "2026-11-01T00:00:00Z"}
                       for t, s in (("MemoryPressure", "False"), ("DiskPressure", "False"),
                                    ("PIDPressure", "False"), ("Ready", "True"))],
        "addresses": [{"type": "InternalIP", "address": "10.1.0.1"}, {"type": "Hostname", "address": name}],
        "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
        "nodeInfo": {"machineID": "0" * 32, "systemUUID": "0" * 36, "bootID": "0" * 36,
                     "kernelVersion": "6.1.0-28-amd64", "osImage": "Debian GNU/Linux 12 (bookworm)",
                     "containerRuntimeVersion": "containerd://1.7.22", "kubeletVersion": "v1.31.2",
                     "kubeProxyVersion": "", "operatingSystem": "linux", "architecture": "amd64"},
        "images": IMAGES}
    return obj


class Setup:
    """A test API server holding `frees` nodes, and an extender process watching it."""

    tree = ROOT      # the source tree the extender process runs from (--tree: compare with another)

    def __init__(self, frees: list, tmp: str):
        self.api = KubeAPIServer(history_size=200_000).start()
        self.api.create(objects.nad_crd())
        self.api.create(objects.nad("sriov-net", "default", {"cniVersion": "1.0.0", "name": "sriov-net", "type": "sriov"}))
        self.names = []
        for i, free in enumerate(frees):
            name = f"node-{i:05d}"
            self.api.create(node(name, free))
            self.names.append(name)
        self.kubeconfig = self.api.kubeconfig(os.path.join(tmp, f"kc-{len(frees)}"))
        self.proc = None

    def start_extender(self) -> float:
        """Start it; returns seconds until /readyz answered 200."""
        import socket
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        t0 = time.monotonic()
        self.proc = subprocess.Popen(
            [sys.executable, "-c", "import sys; from meta.extender.main import main; sys.exit(main(sys.argv[1:]))",
             "--listen", f"127.0.0.1:{self.port}", "--kubeconfig", self.kubeconfig, "--log-level", "warning"],
            cwd=self.tree, stderr=subprocess.DEVNULL)
        while time.monotonic() - t0 < 600:
            try:
                c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
                c.request("GET", "/readyz")
                if c.getresponse().status == 200:
                    return time.monotonic() - t0
            except OSError:
                pass
            time.sleep(0.05)
        raise RuntimeError("extender not ready in 600 s")

    def rss(self) -> tuple[float, float]:
        """(VmHWM, VmRSS) of the extender in MiB."""
        vals = proc_status(self.proc.pid)
        return vals["VmHWM"], vals["VmRSS"]

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.api.stop()


class Caller:
    """kube-scheduler's HTTPExtender, one keep-alive connection per thread."""

    def __init__(self, port: int):
        self.port, self.local = port, threading.local()

    def post(self, verb: str, doc) -> tuple[float, object]:
        conn = getattr(self.local, "conn", None)
        if conn is None:
            conn = self.local.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        body = json.dumps(doc, separators=(",", ":"))
        t = time.perf_counter()
        conn.request("POST", f"/scheduler/{verb}", body=body, headers={"Content-Type": "application/json"})
        r = conn.getresponse()
        data = r.read()
        elapsed = (time.perf_counter() - t) * 1000.0
        assert r.status == 200, data[:300]
        return elapsed, json.loads(data)


def pods(api, prefix: str, n: int) -> list:
    return [api.create(objects.pod(f"{prefix}-{i}", "default",
                                   annotations={"k8s.v1.cni.cncf.io/networks": "sriov-net"})) for i in range(n)]


def schedule(caller: Caller, pod: dict, names: list, rng, timings=None) -> str | None:
    md = pod["metadata"]
    for _ in range(50):
        t1, res = caller.post("filter", {"Pod": pod, "Nodes": None, "NodeNames": names})
        passed = res["NodeNames"]
        if not passed:
            return None
        t2, scores = caller.post("prioritize", {"Pod": pod, "Nodes": None, "NodeNames": passed})
        top = max(s["Score"] for s in scores)
        best = rng.choice([s["Host"] for s in scores if s["Score"] == top])
        t3, res = caller.post("bind", {"PodName": md["name"], "PodNamespace": "default", "PodUID": md["uid"],
                                       "Node": best})
        if timings is not None:
            timings["filter"].append(t1)
            timings["prioritize"].append(t2)
            timings["bind"].append(t3)
        if not res["Error"]:
            return best
    raise RuntimeError(f"{md['name']}: not placed in 50 cycles")


def pct(xs: list, q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(len(xs) * q))]


def scale(n: int, decisions: int, tmp: str) -> dict:
    rng = random.Random(n)
    frees = [(rng.randint(0, 4), rng.randint(0, 4)) for _ in range(n)]
    s = Setup(frees, tmp)
    try:
        ready = s.start_extender()
        peak, _ = s.rss()
        time.sleep(2)
        _, steady = s.rss()
        caller = Caller(s.port)
        timings = {"filter": [], "prioritize": [], "bind": []}
        for pod in pods(s.api, "d", decisions):
            schedule(caller, pod, s.names, rng, timings)
        # 200 filters at once (200 connections), as a burst of scheduler profiles or retries
        many = pods(s.api, "q", 200)
        par = Caller(s.port)
        with ThreadPoolExecutor(200) as pool:
            lat = list(pool.map(lambda pod: par.post("filter", {"Pod": pod, "Nodes": None, "NodeNames": s.names})[0],
                                many))
        peak_after, rss_after = s.rss()
        return {"nodes": n, "par_p50": pct(lat, 0.5), "par_p99": pct(lat, 0.99), "ready_s": ready,
                "peak": peak, "steady": steady, "peak_after": peak_after,
                "rss_after": rss_after, **{f"{v}_{q}": pct(timings[v], p) for v in timings
                                              for q, p in (("p50", 0.5), ("p99", 0.99))}}
    finally:
        s.stop()


def burst(frees: list, npods: int, tmp: str, label: str) -> dict:
    s = Setup([(f, 0) for f in frees], tmp)
    try:
        s.start_extender()
        made = pods(s.api, "b", npods)
        caller = Caller(s.port)
        seeds = random.Random(7)
        rngs = [random.Random(seeds.random()) for _ in made]
        t = time.perf_counter()
        with ThreadPoolExecutor(16) as pool:
            placed = list(pool.map(lambda a: schedule(caller, a[0], s.names, a[1]), zip(made, rngs)))
        wall = time.perf_counter() - t
        per_node = Counter(p for p in placed if p)
        over = [n for n, c in per_node.items() if c > frees[s.names.index(n)]]
        return {"label": label, "placed": sum(per_node.values()), "capacity": sum(frees), "pods": npods,
                "wall": wall, "rate": sum(per_node.values()) / wall, "over": len(over)}
    finally:
        s.stop()


def shipped_limit_mib() -> int:
    import yaml
    with open(os.path.join(ROOT, "conf", "scheduler-extender", "deployment.yaml")) as f:
        dep = next(d for d in yaml.safe_load_all(f) if d and d["kind"] == "Deployment")
    limit = dep["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]["memory"]
    assert limit.endswith("Mi"), limit
    return int(limit[:-2])


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--nodes", default="1000,5000", help="node counts, comma-separated")
    p.add_argument("--decisions", type=int, default=200)
    p.add_argument("--big", type=int, default=20000, help="node count of the memory check (0: skip)")
    p.add_argument("--tree", default=ROOT, help="run the extender from this source tree (a before/after "
                                                "comparison; with --startup-only for trees without bind)")
    p.add_argument("--startup-only", action="store_true", help="only start-up time and RSS per node count")
    a = p.parse_args(argv)
    Setup.tree = os.path.abspath(a.tree)
    print(f"scheduler extender (bind mode), test API server, ~{len(json.dumps(node('node-00000', (4, 4)))) / 1024:.1f} KB "
          f"per Node, {os.cpu_count()} cpus")
    with tempfile.TemporaryDirectory() as tmp:
        print(f"\n{'nodes':>6} {'ready s':>8} {'start peak MiB':>15} {'steady MiB':>11} {'after MiB':>10}"
              f" {'filter p50/p99 ms':>18} {'prioritize p50/p99':>19} {'bind p50/p99':>14}"
              f" {'200 parallel filters p50/p99':>29}")
        for n in [int(x) for x in a.nodes.split(",") if x]:
            if a.startup_only:
                rng = random.Random(n)
                s = Setup([(rng.randint(0, 4), rng.randint(0, 4)) for _ in range(n)], tmp)
                try:
                    ready = s.start_extender()
                    peak, _ = s.rss()
                    time.sleep(2)
                    print(f"{n:>6} {ready:>8.1f} {peak:>15.1f} {s.rss()[1]:>11.1f}")
                finally:
                    s.stop()
                continue
            r = scale(n, a.decisions, tmp)
            print(f"{n:>6} {r['ready_s']:>8.1f} {r['peak']:>15.1f} {r['steady']:>11.1f} {r['rss_after']:>10.1f}"
                  f" {r['filter_p50']:>8.1f}/{r['filter_p99']:<9.1f} {r['prioritize_p50']:>8.1f}/{r['prioritize_p99']:<10.1f}"
                  f" {r['bind_p50']:>6.1f}/{r['bind_p99']:<7.1f} {r['par_p50']:>14.0f}/{r['par_p99']:<14.0f}")
        if a.startup_only:
            return 0
        print(f"\n{'burst (16 callers)':44} {'placed':>7} {'free VFs':>9} {'over':>5} {'wall s':>7} {'pods/s':>7}")
        rng = random.Random(3)
        sparse = [1] * 150 + [0] * 850
        rng.shuffle(sparse)
        for frees, label in (([15] * 10, "10 nodes x 15 free, 200 pods"),
                             (sparse, "1,000 nodes, 150 x 1 free, 200 pods")):
            r = burst(frees, 200, tmp, label)
            print(f"{r['label']:44} {r['placed']:>7} {r['capacity']:>9} {r['over']:>5} {r['wall']:>7.2f} {r['rate']:>7.1f}")
        if a.big:
            limit = shipped_limit_mib()
            rng = random.Random(a.big)
            s = Setup([(rng.randint(0, 4), rng.randint(0, 4)) for _ in range(a.big)], tmp)
            try:
                ready = s.start_extender()
                peak, rss = s.rss()
                verdict = "within" if peak < limit else "OVER"
                print(f"\n{a.big} nodes: ready in {ready:.1f} s, start-up peak {peak:.1f} MiB, steady {rss:.1f} MiB: "
                      f"{verdict} the shipped limit of {limit} MiB")
            finally:
                s.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
