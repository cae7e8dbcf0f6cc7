"""Where an ADD+DEL through the daemon spends its time (issue 19 item 2). Not part of the timed
run; as root:
    .venv/bin/python bench/daemonprof.py [--runs N] [--top N] [--case meta|sriov|both]

Starts `netmeta daemon` (the same config as bench/daemon.py) under a wrapper that, in the
daemon process, times each request's stages (queued -> worker, container locks, the plugin's
`_execute`, the answer sent) and runs a cProfile around every `_execute` (requests are made one
after another, so one profiler serves every worker thread in turn). The client side times each
call's wall through the shim, so "wall - in daemon" is the shim + socket + process start of the
shim. Cases: the cluster network alone (netmeta -> bridge+host-local) and sriov+fixipam on a sim
VF, each beside its direct Debian call."""
import argparse
import json
import os
import pstats
import signal
import statistics
import subprocess
import sys
import time
from contextlib import ExitStack

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench import cnicall, fixtures, guard  # noqa: E402
from bench.daemon import _answers  # noqa: E402
from bench.meta import netmeta_conf  # noqa: E402
from tests.cnirun import VENV_BIN  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# runs inside the daemon process: wraps Daemon._work/_execute, writes stats at exit
WRAPPER = r"""
import cProfile, json, os, sys, threading, time
sys.path.insert(0, {repo!r})
from cni.leanimport import lean_pyroute2
lean_pyroute2()   # as meta/main.py does for `netmeta daemon`
from meta.daemon import server as D
from meta import main as M
prof = cProfile.Profile()
stages = []
orig_work, orig_exec, orig_finish = D.Daemon._work, D.Daemon._execute, D.Daemon._finish
tls = threading.local()
def _work(self, name, job):
    tls.t = {{"queued": job.queued, "start": time.monotonic()}}
    orig_work(self, name, job)
def _execute(self, name, env, stdin, op):
    t = getattr(tls, "t", {{}}); t["exec0"] = time.monotonic()
    prof.enable()
    try:
        return orig_exec(self, name, env, stdin, op)
    finally:
        prof.disable()
        t["exec1"] = time.monotonic(); t["cmd"] = env.get("CNI_COMMAND"); t["plugin"] = name
def _finish(self, job, code, out):
    orig_finish(self, job, code, out)
    t = getattr(tls, "t", None)
    if t is not None and "exec1" in t:
        t["sent"] = time.monotonic(); stages.append(t); tls.t = None
D.Daemon._work, D.Daemon._execute, D.Daemon._finish = _work, _execute, _finish
nltrace = []
if os.environ.get("DAEMONPROF_NLTRACE"):   # time every rtnetlink link/addr/route call
    from pyroute2.iproute import linux as L
    def wrap(name):
        orig = getattr(L.RTNL_API, name)
        async def timed(self, command, **kw):
            t0 = time.perf_counter()
            try:
                return await orig(self, command, **kw)
            finally:
                keys = ",".join(sorted(k for k in kw if k not in ("index",)))
                nltrace.append((f"{{name}} {{command}} {{keys}}", time.perf_counter() - t0))
        setattr(L.RTNL_API, name, timed)
    for n in ("link", "addr", "route"):
        wrap(n)
rc = M._cli(["daemon"] + sys.argv[1:])
prof.dump_stats({out!r} + ".prof")
with open({out!r} + ".stages.json", "w") as f:
    json.dump(stages, f)
if nltrace:
    import collections, statistics
    by = collections.defaultdict(list)
    for k, v in nltrace:
        by[k].append(v * 1000)
    with open({out!r} + ".nl.txt", "w") as f:
        for k, v in sorted(by.items(), key=lambda kv: -sum(kv[1])):
            f.write(f"  {{k:60}} n={{len(v):4}} median {{statistics.median(v):7.2f}} ms  total {{sum(v):8.1f}} ms\n")
sys.exit(rc)
"""


def start_daemon(st: ExitStack, work: str, out: str) -> dict:
    sock = os.path.join(work, "netmeta.sock")
    cfg = os.path.join(work, "daemon.json")
    with open(cfg, "w") as f:
        json.dump({"socketPath": sock, "httpAddr": "", "cniDir": os.path.join(work, "dcache"), "pfs": []}, f)
    logf = open(os.path.join(work, "daemon.log"), "ab")
    st.callback(logf.close)
    code = WRAPPER.format(repo=REPO, out=out)
    proc = subprocess.Popen([f"{VENV_BIN}/python", "-c", code, "--config", cfg], stdout=logf, stderr=logf,
                            start_new_session=True)

    def stop():
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            proc.wait(30)
    st.callback(stop)
    deadline = time.monotonic() + 30
    while not _answers(sock):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError("daemon did not come up")
        time.sleep(0.05)
    return {"env": {"NETMETA_SOCKET": sock}, "stop": stop}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--top", type=int, default=40)
    ap.add_argument("--case", default="both", choices=("meta", "sriov", "both"))
    ap.add_argument("--keep", help="also save the cProfile stats to this file (pstats)")
    a = ap.parse_args()
    cnicall.ENV["NETMETA_SOCKET"] = f"/nonexistent/{guard.PREFIX}/netmeta.sock"
    out = f"/tmp/daemonprof-{os.getpid()}"
    walls: dict = {}
    try:
        _run(a, out, walls)
    finally:
        guard.sweep()
    return _report(a, out, walls)


def _run(a, out: str, walls: dict) -> None:
    with ExitStack() as st:
        work = fixtures.scratch(st, "dprof")
        d = start_daemon(st, work, out)
        cases = []
        if a.case in ("meta", "both"):
            bconf = fixtures.bridge_conf(work, fixtures.bridge(st))
            mconf = dict(netmeta_conf(work, bconf), mode="daemon", socketPath=d["env"]["NETMETA_SOCKET"])
            cases += [("bridge direct", "bridge", bconf, "eth0", None),
                      ("netmeta via daemon", "netmeta", mconf, "eth0", d["env"])]
        if a.case in ("sriov", "both"):
            frag = fixtures.sim_nic(st, work, "s", 1)
            vf0 = fixtures.vf_netdev(frag, 0)
            hd = {"cniVersion": "1.0.0", "name": "hd-net", "type": "host-device", "device": vf0,
                  "ipam": {"type": "static", "addresses": [{"address": "10.56.0.7/24"}]}}
            sr = fixtures.sriov_conf(frag, work, 56, name="sriov-net", vf=0, runtimeConfig={"ips": ["10.56.0.7/24"]})
            cases += [("host-device+static", "host-device", hd, "net1", None),
                      ("sriov+fixipam via daemon", "sriov", sr, "net1", d["env"])]
        for _ in range(2):   # warm-up (bridge creation, first imports in the daemon)
            for _label, plugin, conf, ifn, env in cases:
                p = fixtures.pods(1)[0]
                p.add(plugin, conf, ifname=ifn, env=env)
                p.delete(plugin, conf, ifname=ifn, env=env)
                fixtures.release([p])
                if plugin == "host-device":
                    fixtures.restore_sim_aliases(frag, {0: vf0})
        for _ in range(a.runs):
            for label, plugin, conf, ifn, env in cases:
                p = fixtures.pods(1)[0]
                try:
                    t0 = time.perf_counter()
                    p.add(plugin, conf, ifname=ifn, env=env)
                    t1 = time.perf_counter()
                    p.delete(plugin, conf, ifname=ifn, env=env)
                    t2 = time.perf_counter()
                    walls.setdefault(label + " ADD", []).append((t1 - t0) * 1000.0)
                    walls.setdefault(label + " DEL", []).append((t2 - t1) * 1000.0)
                finally:
                    fixtures.release([p])
                    if plugin == "host-device":
                        fixtures.restore_sim_aliases(frag, {0: vf0})
        d["stop"]()


def _report(a, out: str, walls: dict) -> int:
    print(f"client wall, median of {a.runs} (ms):")
    for k, v in walls.items():
        print(f"  {k:40} {statistics.median(v):8.2f}")
    with open(out + ".stages.json") as f:
        stages = json.load(f)[-(a.runs * 2 * (2 if a.case == "both" else 1)):]
    print("in the daemon, median per request (ms): queued->worker, worker->execute (locks), execute, execute->sent")
    by: dict = {}
    for t in stages:
        by.setdefault(f"{t['plugin']} {t['cmd']}", []).append(t)
    for k, ts in by.items():
        def med(a: str, b: str, ts=ts) -> float:
            return statistics.median([t[b] - t[a] for t in ts]) * 1000.0
        print(f"  {k:20} n={len(ts):3} queue {med('queued', 'start'):6.2f}  locks {med('start', 'exec0'):6.2f}  "
              f"execute {med('exec0', 'exec1'):7.2f}  answer {med('exec1', 'sent'):6.2f}")
    st = pstats.Stats(out + ".prof")
    n = len(stages) + 4 * (2 if a.case == "both" else 1)   # warm-up requests are profiled too
    print(f"\ncProfile of every _execute ({n} requests incl. warm-up), ms per request, by cumulative:")
    rows = sorted(st.stats.items(), key=lambda kv: kv[1][3], reverse=True)
    for (fname, line, func), (_cc, nc, tt, ct, _callers) in rows[:a.top]:
        where = f"{os.path.relpath(fname, REPO) if fname.startswith('/') else fname}:{line}"
        print(f"  {ct * 1000 / n:8.2f} cum {tt * 1000 / n:7.2f} self {nc / n:6.1f} calls  {func}  ({where[-55:]})")
    print("\nby self time:")
    for (fname, line, func), (_cc, nc, tt, _ct, _callers) in sorted(st.stats.items(), key=lambda kv: kv[1][2], reverse=True)[:25]:
        where = f"{os.path.relpath(fname, REPO) if fname.startswith('/') else fname}:{line}"
        print(f"  {tt * 1000 / n:7.2f} self {nc / n:6.1f} calls  {func}  ({where[-55:]})")
    if os.path.exists(out + ".nl.txt"):
        print("\nrtnetlink calls in the daemon (DAEMONPROF_NLTRACE=1):")
        with open(out + ".nl.txt") as f:
            print(f.read())
        os.unlink(out + ".nl.txt")
    if a.keep:
        st.dump_stats(a.keep)
    for suffix in (".prof", ".stages.json"):
        os.unlink(out + suffix)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
