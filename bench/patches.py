"""Section `patches` (h): Kubernetes API writes of the node daemon when pods come and go in bursts.

The test API server (tests/kubeapi, in this process) holds the NAD CRD, the `bench` namespace,
Node `node1` and one SR-IOV NetworkAttachmentDefinition (sriov + fixipam on a simulated NIC with
one VF per pod). `netmeta daemon` runs with kubeconfig + nodeName + pfs (coalesceWindow 0.2 s,
the default) and publishes the node's VF availability. One round: PODS pods, each created in
the API first (as the scheduler leaves them for the kubelet), then their ADDs through the
`netmeta` executable in daemon mode in bursts of BURST at once (annotations in runtimeConfig
as containerd passes them; the cluster default network is Debian bridge + host-local), then
their DELs in bursts of BURST; between bursts the bench waits until the node shows the new
count (the publish lag is reported) and PAUSE more. Counted from the API server's request log
(only the daemon talks to it; the bench seeds and reads state directly): node PATCHes per 100
pods (target, issue 5: <= 20), pod PATCHes, every request by verb and resource per pod ADD and
per pod DEL. At the end the node's `sriov/vfCount` must be back to the total. Runs = rounds."""
import collections
import json
import os
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack

from bench import daemon as bench_daemon
from bench import fixtures, guard
from bench.cnicall import call, error_code
from bench.meta import netmeta_conf
from bench.multi import ANNOTS_KEY
from bench.rss import BenchDaemon, Watchdog, latency_rows, proc_status, skipped
from bench.stats import Report, summary
from tests.kubeapi import objects
from tests.kubeapi.server import KubeAPIServer

PODS = 100
BURST = 25
PAUSE = 0.5          # s of quiet after the node shows a burst's result
WINDOW = 0.2         # the daemon's coalesceWindow (its default)
TARGET = 20          # node PATCHes per 100 pods
NODE = "node1"
NAD = "sriov-burst"
COUNT, LABEL = "sriov/vfCount", "sriov/freeVFAvailable"


def _node(api) -> tuple:
    md = (api.get("nodes", NODE) or {}).get("metadata") or {}
    return (md.get("annotations") or {}).get(COUNT), (md.get("labels") or {}).get(LABEL)


def _wait_count(api, want: int, timeout: float = 15.0) -> float | None:
    """Seconds until the node shows vfCount == want (None: not within timeout)."""
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < timeout:
        if _node(api)[0] == str(want):
            return time.perf_counter() - t0
        time.sleep(0.01)
    return None


def _burst(jobs: list) -> tuple:
    """All jobs (conf, kw) at once; (wall ms, [(Run, ms)])."""
    def one(job):
        t = time.perf_counter()
        r = call("netmeta", job[0], job[1], env=job[2]["env"], **job[2]["kw"])
        return r, (time.perf_counter() - t) * 1000.0
    t0 = time.perf_counter()
    with ThreadPoolExecutor(len(jobs)) as ex:
        out = list(ex.map(one, jobs))
    return (time.perf_counter() - t0) * 1000.0, out


def run(rounds: int = 1) -> Report:
    if not bench_daemon.ENABLED["on"]:
        return skipped("h. node PATCHes", "patches")
    with ExitStack() as st:
        work = fixtures.scratch(st, "patch")
        bconf = fixtures.bridge_conf(work, fixtures.bridge(st, "hbr"), subnet="10.244.13.0/24")
        frag = fixtures.sim_nic(st, work, "h", PODS)
        total = PODS
        sriov = fixtures.sriov_conf(frag, work, 59)
        api = KubeAPIServer(objects=[objects.nad_crd(), objects.namespace(fixtures.POD_NS), objects.node(NODE)])
        api.start()
        st.callback(api.stop)
        api.create(objects.nad(NAD, fixtures.POD_NS, config=dict(sriov, name=NAD)))
        kc = api.kubeconfig(os.path.join(work, "kubeconfig"))
        cache = os.path.join(work, "cache")
        d = BenchDaemon(os.path.join(work, "d"), kubeconfig=kc, nodeName=NODE, cniDir=cache, requestTimeout=60,
                        coalesceWindow=WINDOW, pfs=[{k: frag[k] for k in ("master", "sysfsRoot", "backend", "stateDir")}])
        st.callback(d.stop)
        d.start()
        wd = Watchdog(d).start()
        st.callback(wd.stop)
        netns = [guard.name(f"h{i}") for i in range(PODS)]
        st.callback(guard.netns_del, netns)
        guard.netns_add(netns)
        pending: dict = {}      # pod index -> (conf, kw) of an ADD whose DEL is owed
        env = {"NETMETA_SOCKET": d.socket}

        def settle():   # runs first at exit, while the daemon is up (auto mode: also without it)
            items = list(pending.items())
            if items:
                with ThreadPoolExecutor(8) as ex:
                    list(ex.map(lambda it: call("netmeta", "DEL", dict(it[1][0], mode="auto"), env=env, **it[1][1]),
                                items))
            pending.clear()
        st.callback(settle)

        # start-up: the first publish and the watch caches (NADs, this node's pods)
        if _wait_count(api, total, 20) is None:
            raise RuntimeError(f"the daemon never published {COUNT}={total}: node {_node(api)}; {d.tail()}")
        deadline = time.monotonic() + 10
        while d.metric("netmeta_api_requests_total", verb="watch") < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(2.0)
        rss0 = proc_status(d.proc.pid)
        startup_reqs = collections.Counter((r.method, r.resource) for r in api.requests)
        n_start = len(api.requests)

        walls = {"ADD": [], "DEL": []}          # one call within a burst
        bursts = {"ADD": [], "DEL": []}         # burst wall
        lags = {"ADD": [], "DEL": []}           # burst's last answer -> node shows the count
        windows = []                            # (phase, t0, t1) by wall clock, for the request log
        errors = collections.Counter()
        err_msgs: list = []
        missed = []
        alive = set()
        pods_done = 0
        lock = threading.Lock()

        def conf_of(i: int) -> dict:
            annots = {"k8s.v1.cni.cncf.io/networks": json.dumps([{"name": NAD, "ips": [f"10.59.0.{10 + i}/24"]}])}
            return netmeta_conf(work, bconf, kubeconfig=kc, mode="daemon", socketPath=d.socket,
                                capabilities={ANNOTS_KEY: True}, runtimeConfig={ANNOTS_KEY: annots})

        def phase(cmd: str, idx: list, kws: dict, confs: dict):
            t0 = time.time()
            jobs = [(cmd, confs[i], {"kw": kws[i], "env": env}) for i in idx]
            if cmd == "ADD":
                for i in idx:
                    pending[i] = (confs[i], kws[i])
            wall, runs = _burst(jobs)
            bursts[cmd].append(wall)
            with lock:
                for i, (r, ms) in zip(idx, runs):
                    # the cluster network's result (as Multus returns it): its one IP
                    ok = r.ok and (cmd == "DEL" or len((r.out or {}).get("ips") or []) == 1)
                    if ok:
                        walls[cmd].append(ms)
                        if cmd == "ADD":
                            alive.add(i)
                        else:
                            alive.discard(i)
                            pending.pop(i, None)
                    else:
                        errors[f"{cmd} {error_code(r) if not r.ok else 'ips!=1'}"] += 1
                        err_msgs.append(f"{cmd} pod {i}: {r.stdout[:160]!r}")
            lag = _wait_count(api, total - len(alive))
            if lag is None:
                missed.append(f"after a {cmd} burst the node shows {_node(api)}, want {total - len(alive)}")
            else:
                lags[cmd].append(lag * 1000.0)
            time.sleep(PAUSE)
            windows.append((cmd, t0, time.time()))

        t_run = time.perf_counter()
        for rnd in range(rounds):
            kws, confs = {}, {}
            for i in range(PODS):
                name = f"burst-{rnd}-{i}"
                confs[i] = conf_of(i)
                pod = api.create(objects.pod(name, fixtures.POD_NS, node=NODE,
                                             annotations=confs[i]["runtimeConfig"][ANNOTS_KEY]))
                cid = uuid.uuid4().hex
                kws[i] = {"container_id": cid, "netns": f"/var/run/netns/{netns[i]}", "ifname": "eth0",
                          "args": f"IgnoreUnknown=1;K8S_POD_NAMESPACE={fixtures.POD_NS};K8S_POD_NAME={name};"
                                  f"K8S_POD_INFRA_CONTAINER_ID={cid};K8S_POD_UID={pod['metadata']['uid']}"}
            time.sleep(0.5)   # the daemon's pod watch sees them (as it would long before a sandbox)
            for cmd in ("ADD", "DEL"):
                for b in range(0, PODS, BURST):
                    guard.check()
                    phase(cmd, list(range(b, min(PODS, b + BURST))), kws, confs)
            for i in range(PODS):
                api.delete("pods", f"burst-{rnd}-{i}", fixtures.POD_NS)
            pods_done += PODS
        run_s = time.perf_counter() - t_run
        rss1 = proc_status(d.proc.pid)
        metrics = d.get("/metrics")[1]
        reqs = api.requests[n_start:]

        # ---- the request log, by phase
        def phase_of(ts: float) -> str:
            for cmd, t0, t1 in windows:
                if t0 <= ts <= t1:
                    return cmd
            return "between"
        by = collections.defaultdict(collections.Counter)
        per_burst = {"ADD": [], "DEL": []}
        for cmd, t0, t1 in windows:
            per_burst[cmd].append(sum(1 for r in reqs if r.method == "PATCH" and r.resource == "nodes"
                                      and t0 <= r.timestamp <= t1))
        for r in reqs:
            resource = r.resource + (f"/{r.subresource}" if r.subresource else "")
            by[(r.verb or r.method.lower(), resource)][phase_of(r.timestamp)] += 1
        node_patches = sum(1 for r in reqs if r.method == "PATCH" and r.resource == "nodes")
        pod_patches = sum(1 for r in reqs if r.method == "PATCH" and r.resource == "pods")
        adds, dels = len(walls["ADD"]) + errors_of(errors, "ADD"), len(walls["DEL"]) + errors_of(errors, "DEL")
        per100 = node_patches / max(1, pods_done) * 100.0

        lines = [(f"{'API requests by the daemon (server log)':44} {'ADD bursts':>10} {'DEL bursts':>10} "
                  f"{'between':>8} {'per ADD':>8} {'per DEL':>8}")]
        for (verb, res), c in sorted(by.items()):
            lines.append(f"{verb + ' ' + res:44} {c['ADD']:>10} {c['DEL']:>10} {c['between']:>8} "
                         f"{c['ADD'] / max(1, adds):>8.2f} {c['DEL'] / max(1, dels):>8.2f}")
        tot = collections.Counter()
        for c in by.values():
            tot.update(c)
        lines.append(f"{'all':44} {tot['ADD']:>10} {tot['DEL']:>10} {tot['between']:>8} "
                     f"{tot['ADD'] / max(1, adds):>8.2f} {tot['DEL'] / max(1, dels):>8.2f}")
        lines.append(f"node PATCHes: {node_patches} for {pods_done} pods = {per100:.1f} per 100 pods "
                     f"(target <= {TARGET}: {'met' if per100 <= TARGET else 'NOT met'}); "
                     f"per burst ADD {per_burst['ADD']} DEL {per_burst['DEL']}; pod PATCHes {pod_patches}")
        lines.append("start-up (not counted above): " + ", ".join(f"{m} {res} {n}" for (m, res), n in
                                                                  sorted(startup_reqs.items())))
        client = {k: int(v) for k, v in _api_metric(metrics).items()}
        lines.append(f"the daemon's own count (netmeta_api_requests, whole life): {client}")

        def row(label, ms):
            if not ms:
                return f"{label:44} {0:>5}"
            s = summary(ms)
            return f"{label:44} {s['n']:>5} {s['median']:>9.1f} {s['p95']:>9.1f} {max(ms):>9.1f}"
        t2 = [f"{'burst timing (ms)':44} {'n':>5} {'median':>9} {'p95':>9} {'max':>9}"]
        for cmd in ("ADD", "DEL"):
            t2.append(row(f"{BURST} {cmd}s at once: wall", bursts[cmd]))
            t2.append(row(f"one {cmd} within a burst", walls[cmd]))
            t2.append(row(f"node shows the count, after the {cmd} burst", lags[cmd]))
        t3 = (f"daemon RSS with the kube client: {rss0['VmRSS']:.1f} MB idle after start-up, {rss1['VmRSS']:.1f} MB "
              f"after {pods_done} pods (HWM {rss1['VmHWM']:.1f} MB, {rss1['Threads']} threads, {rss1['fds']} fds)")
        end_state = _node(api)
        text = ("\n".join(lines) + "\n\n" + "\n".join(t2) + "\n\n" + latency_rows(walls, metrics) + "\n" + t3
                + f"\n{pods_done} pods in {run_s:.1f} s; node at the end: {COUNT}={end_state[0]} {LABEL}={end_state[1]}"
                + f" (total {total}); errors: {dict(errors) or 'none'}; {wd.summary()}")
        rep = Report(f"h. node PATCHes for {pods_done} pods in bursts of {BURST} (ADD bursts, then DEL bursts; "
                     f"coalesceWindow {WINDOW} s)", text,
                     f"patches: {per100:.0f} node PATCHes per 100 pods (target <= {TARGET}), "
                     f"{tot['ADD'] / max(1, adds):.2f} API req/ADD, {tot['DEL'] / max(1, dels):.2f}/DEL")
        if end_state != (str(total), "true"):
            rep.problems.append(f"node not back to {COUNT}={total} with the label: {end_state}")
        if errors:
            rep.problems.append(f"failed calls {dict(errors)}: {err_msgs[:3]}")
        rep.problems += missed
        if wd.problem():
            rep.problems.append(wd.problem())
        left = fixtures.sriov_records(frag)
        if left:
            rep.problems.append(f"sriov records left: {left[:5]}")
        if os.path.isdir(cache) and os.listdir(cache):
            rep.problems.append(f"DEL caches left: {os.listdir(cache)[:5]}")
        if d.proc.poll() is not None:
            rep.problems.append(f"daemon died (rc {d.proc.returncode}): {d.tail()}")
        wd.stop()
        rc = d.stop()
        if rc not in (0, None):
            rep.problems.append(f"daemon exit status {rc} on SIGTERM: {d.tail(600)}")
        if d.orphans:
            rep.problems.append(f"daemon left {len(d.orphans)} process(es) behind (killed): {d.orphans}")
        d.keep_log(rep, "patches")
        return rep


def errors_of(errors: collections.Counter, cmd: str) -> int:
    return sum(n for k, n in errors.items() if k.startswith(cmd + " "))


def _api_metric(text: str) -> dict:
    out = {}
    for line in text.splitlines():
        if line.startswith("netmeta_api_requests_total{"):
            verb = line.split('verb="')[1].split('"')[0]
            out[verb] = float(line.rsplit(" ", 1)[1])
    return out
