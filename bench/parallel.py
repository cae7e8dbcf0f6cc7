"""Section `parallel`: 64 pods at once on a simulated NIC with 64 VFs. Stand-alone sriov +
fixipam, 64 separate plugin processes started together, each pod its own netns (made outside
the timing) and fixed IP, no `vf` pinned (allocation under the node lock): wall time until all
64 ADDs answered, each call's own latency, errors by CNI code; then 64 parallel DELs. The
reference is Debian host-device + static moving the same 64 VF netdevs, 64 at once.
One round = 64 ADDs + 64 DELs; rounds alternate sriov / host-device."""
import collections
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack

from bench import daemon, fixtures, guard
from bench.cnicall import call, error_code
from bench.stats import Report, summary, table

N = 64


def _batch(jobs: list) -> tuple:
    """Run jobs (plugin, command, conf, kw) all at once; (wall ms, [(Run, ms)])."""
    def one(job):
        t = time.perf_counter()
        r = call(job[0], job[1], job[2], **job[3])
        return r, (time.perf_counter() - t) * 1000.0
    with ThreadPoolExecutor(max(1, len(jobs))) as ex:
        t0 = time.perf_counter()
        out = list(ex.map(one, jobs))
        return (time.perf_counter() - t0) * 1000.0, out


def _round(confs: list, plugin: str, stats: dict, errors: collections.Counter, env: dict | None = None) -> None:
    pods = fixtures.pods(N)
    try:
        jobs = []
        for pod, conf in zip(pods, confs):
            kw = dict(pod.kw("net1"), env=env)
            pod.undo.append((plugin, conf, kw))   # DEL'd by release() unless our DEL succeeds
            jobs.append((plugin, "ADD", conf, kw))
        wall, runs = _batch(jobs)
        stats["add_wall"].append(wall)
        added = []
        for pod, job, (r, ms) in zip(pods, jobs, runs):
            stats["add_call"].append(ms)
            if r.ok and len((r.out or {}).get("ips") or []) == 1:
                added.append((pod, job))
            else:
                errors[f"ADD {error_code(r) if not r.ok else 'no-ip'}"] += 1
        guard.check()
        if not added:
            return
        wall, runs = _batch([(plugin, "DEL", conf, kw) for _, (plugin, _, conf, kw) in added])
        stats["del_wall"].append(wall)
        for (pod, _), (r, ms) in zip(added, runs):
            stats["del_call"].append(ms)
            if r.ok:
                pod.undo.clear()
            else:
                errors[f"DEL {error_code(r)}"] += 1
    finally:
        fixtures.release(pods)


def burst_confs(frag: dict, work: str, n: int) -> tuple[dict, list, list]:
    """The VF netdevs and the burst's configs, one per VF: sriov+fixipam and host-device+static
    (also bench/daemonprof.py)."""
    netdevs = {i: fixtures.vf_netdev(frag, i) for i in range(n)}
    sr = [fixtures.sriov_conf(frag, work, 57, name="sriov-par", runtimeConfig={"ips": [f"10.57.0.{10 + i}/24"]})
          for i in range(n)]
    hd = [{"cniVersion": "1.0.0", "name": "hd-par", "type": "host-device", "device": netdevs[i],
           "ipam": {"type": "static", "addresses": [{"address": f"10.58.0.{10 + i}/24"}]}} for i in range(n)]
    return netdevs, sr, hd


def run(rounds: int = 3) -> Report:
    with ExitStack() as st:
        work = fixtures.scratch(st, "par")
        frag = fixtures.sim_nic(st, work, "p", N)
        netdevs, sr, hd = burst_confs(frag, work, N)
        d = daemon.start(st)   # HOOK: the same burst through the daemon (shim -> daemon)
        who_all = ("hd", "sriov") + (("sriovd",) if d else ())
        stats = {k: collections.defaultdict(list) for k in who_all}
        errors = {k: collections.Counter() for k in who_all}
        for _ in range(rounds):
            guard.check()
            try:
                _round(hd, "host-device", stats["hd"], errors["hd"])
            finally:
                fixtures.restore_sim_aliases(frag, netdevs)
            guard.check()
            _round(sr, "sriov", stats["sriov"], errors["sriov"])
            if d:
                guard.check()
                _round(sr, "sriov", stats["sriovd"], errors["sriovd"], d.env)
        names = {("hd", "add_wall"): f"host-device+static: {N} ADDs, wall (Debian)",
                 ("sriov", "add_wall"): f"sriov+fixipam: {N} ADDs, wall",
                 ("hd", "add_call"): "host-device+static: one ADD within the burst",
                 ("sriov", "add_call"): "sriov+fixipam: one ADD within the burst",
                 ("hd", "del_wall"): f"host-device+static: {N} DELs, wall (Debian)",
                 ("sriov", "del_wall"): f"sriov+fixipam: {N} DELs, wall",
                 ("hd", "del_call"): "host-device+static: one DEL within the burst",
                 ("sriov", "del_call"): "sriov+fixipam: one DEL within the burst"}
        for (who, k), v in list(names.items()):
            if who == "sriov":
                names[("sriovd", k)] = v.replace("sriov+fixipam", "sriov+fixipam via daemon")
        tabs = []
        for phase in ("add", "del"):
            rows = [(names[(who, f"{phase}_{k}")], summary(stats[who][f"{phase}_{k}"]))
                    for k in ("wall", "call") for who in who_all]
            tabs.append(table(rows, names[("hd", f"{phase}_wall")]))
        err = "; ".join(f"{who}: {dict(errors[who]) or 'none'}" for who in who_all)
        rep = Report(f"4. {N} pods at once on {N} VFs ({rounds} rounds; ratio = median / host-device wall)",
                     "\n\n".join(tabs) + f"\nerrors by CNI code: {err}",
                     f"parallel: {N} ADDs {_ratio(stats, 'add_wall'):.1f}x, {N} DELs {_ratio(stats, 'del_wall'):.1f}x host-device"
                     + (f"; via daemon {_ratio(stats, 'add_wall', 'sriovd'):.1f}x, {_ratio(stats, 'del_wall', 'sriovd'):.1f}x"
                        if d else ""))
        if d:
            rep.target(f"5. {N} parallel ADDs via daemon / host-device+static (wall)", _ratio(stats, "add_wall", "sriovd"), 1.5)
        for who in who_all:
            if errors[who]:
                rep.problems.append(f"{who}: failed calls {dict(errors[who])}")
        if fixtures.sriov_records(frag):
            rep.problems.append(f"sriov records left: {fixtures.sriov_records(frag)}")
        back = {n: fixtures.vf_netdev(frag, n) for n in range(N)}
        if back != netdevs:
            rep.problems.append("VF netdevs not all back under their names")
        return rep


def _ratio(stats, key, who: str = "sriov") -> float:
    return summary(stats[who][key])["median"] / summary(stats["hd"][key])["median"]
