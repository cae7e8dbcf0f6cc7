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
burst = []   # DAEMONPROF_BURST: one entry per request (thread CPU, lock waits/holds, its own profile)
if os.environ.get("DAEMONPROF_BURST"):
    import contextlib
    from cni import files as F
    profs, guard = [], threading.Lock()
    orig_locked = F.locked
    @contextlib.contextmanager
    def locked(path, shared=False):
        f = sys._getframe(2)   # the caller of the context manager (past contextlib's __enter__)
        where = f"{{os.path.basename(os.path.dirname(path)) if os.path.basename(path) == '.lock' else os.path.basename(path)}}" \
                f" <- {{f.f_code.co_name}}:{{f.f_lineno}}"
        t0 = time.monotonic()
        with orig_locked(path, shared):
            t1, c1 = time.monotonic(), time.thread_time()
            try:
                yield
            finally:
                rec = getattr(tls, "b", None)
                if rec is not None:
                    rec["locks"].append((where, t1 - t0, time.monotonic() - t1, time.thread_time() - c1))
    F.locked = locked
    def _execute(self, name, env, stdin, op):   # noqa: F811 - replaces the sequential profiler
        t = getattr(tls, "t", {{}}); t["exec0"] = time.monotonic()
        tls.b = b = {{"cmd": env.get("CNI_COMMAND"), "plugin": name, "locks": [], "cpu0": time.thread_time()}}
        p = cProfile.Profile()
        p.enable()
        try:
            return orig_exec(self, name, env, stdin, op)
        finally:
            p.disable()
            b["cpu"] = time.thread_time() - b.pop("cpu0")
            t["exec1"] = time.monotonic(); t["cmd"] = env.get("CNI_COMMAND"); t["plugin"] = name
            b["wall"] = t["exec1"] - t["exec0"]
            tls.b = None
            with guard:
                burst.append(b); profs.append(p)
    D.Daemon._execute = _execute
    # DAEMONPROF_TIME="pkg.mod:Class.method,pkg.mod:function": wall per request in each, and how
    # much of it ran while this thread held the node lock (the sriov state dir's .lock)
    import functools, importlib
    def timed(key, fn):
        @functools.wraps(fn)
        def w(*a, **k):
            b = getattr(tls, "b", None)
            t0, c0 = time.monotonic(), time.thread_time()
            try:
                return fn(*a, **k)
            finally:
                if b is not None:
                    dt, dc = time.monotonic() - t0, time.thread_time() - c0
                    tot = b.setdefault("timed", {{}})
                    w, c = tot.get(key, (0.0, 0.0))
                    tot[key] = (w + dt, c + dc)
        return w
    for spec in filter(None, os.environ.get("DAEMONPROF_TIME", "").split(",")):
        modname, _, attr = spec.partition(":")
        *path, last = attr.split(".")
        try:
            obj = importlib.import_module(modname)
            for part in path:
                obj = getattr(obj, part)
            fn = obj.__dict__[last]
        except (ImportError, AttributeError, KeyError) as e:   # (code moved): say so, time the rest
            print(f"daemonprof: DAEMONPROF_TIME {{spec}}: {{e!r}}", file=sys.stderr)
            continue
        if isinstance(fn, staticmethod):
            setattr(obj, last, staticmethod(timed(spec, fn.__func__)))
        else:
            setattr(obj, last, timed(spec, fn))
if os.environ.get("DAEMONPROF_SWITCHINTERVAL"):   # an experiment: the GIL's switch interval (s)
    sys.setswitchinterval(float(os.environ["DAEMONPROF_SWITCHINTERVAL"]))
rc = M._cli(["daemon"] + sys.argv[1:])
if burst:
    import pstats as _ps
    prof = _ps.Stats(profs[0])
    for p in profs[1:]:
        prof.add(p)
    with open({out!r} + ".burst.json", "w") as f:
        json.dump(burst, f)
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
        json.dump({"socketPath": sock, "httpAddr": "", "cniDir": os.path.join(work, "dcache"), "pfs": [],
                   **json.loads(os.environ.get("DAEMONPROF_CONFIG", "{}"))}, f)   # e.g. {"maxConcurrency": 8}
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
    ap.add_argument("--case", default="both", choices=("meta", "sriov", "both", "burst"),
                    help="burst: rounds of 64 parallel sriov+fixipam ADDs then DELs through the daemon "
                         "(as bench/parallel.py), each request profiled in its own thread, with its CPU "
                         "time and every flock's wait and hold; --runs = rounds")
    ap.add_argument("--keep", help="also save the cProfile stats to this file (pstats)")
    a = ap.parse_args()
    cnicall.ENV["NETMETA_SOCKET"] = f"/nonexistent/{guard.PREFIX}/netmeta.sock"
    out = f"/tmp/daemonprof-{os.getpid()}"
    walls: dict = {}
    if a.case == "burst":
        os.environ["DAEMONPROF_BURST"] = "1"
    try:
        (_run_burst if a.case == "burst" else _run)(a, out, walls)
    finally:
        guard.sweep()
    return (_report_burst if a.case == "burst" else _report)(a, out, walls)


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


def _run_burst(a, out: str, walls: dict) -> None:
    import collections

    from bench import parallel
    with ExitStack() as st:
        work = fixtures.scratch(st, "dprofb")
        d = start_daemon(st, work, out)
        n = parallel.N
        frag = fixtures.sim_nic(st, work, "b", n)
        netdevs, sr, hd = parallel.burst_confs(frag, work, n)
        stats = {k: collections.defaultdict(list) for k in ("hd", "sriovd")}
        errors: collections.Counter = collections.Counter()
        for _ in range(a.runs):
            try:
                parallel._round(hd, "host-device", stats["hd"], errors)
            finally:
                fixtures.restore_sim_aliases(frag, netdevs)
            parallel._round(sr, "sriov", stats["sriovd"], errors, d["env"])
        walls.update(stats)
        walls["errors"] = dict(errors)
        d["stop"]()


def _report_burst(a, out: str, walls: dict) -> int:
    import collections
    print(f"client, {a.runs} round(s) of {64} at once, wall ms per round (median): errors {walls['errors'] or 'none'}")
    for who in ("hd", "sriovd"):
        add, dele = statistics.median(walls[who]["add_wall"]), statistics.median(walls[who]["del_wall"])
        print(f"  {who:8} ADD {add:8.0f}   DEL {dele:8.0f}")
    with open(out + ".burst.json") as f:
        burst = json.load(f)
    with open(out + ".stages.json") as f:
        stages = json.load(f)
    print("\nin the daemon, per request (ms): median / mean; 'locks' = time on an flock (wait, hold)")
    for cmd in ("ADD", "DEL"):
        bs = [b for b in burst if b["cmd"] == cmd]
        ts = [t for t in stages if t.get("cmd") == cmd]
        if not bs:
            continue
        def mm(v):
            return f"{statistics.median(v) * 1000:7.2f} / {statistics.mean(v) * 1000:7.2f}"
        print(f"  {cmd} n={len(bs)}")
        print(f"    queued (waiting for one of the workers) {mm([t['start'] - t['queued'] for t in ts])}")
        print(f"    execute wall                            {mm([b['wall'] for b in bs])}")
        print(f"    execute CPU (thread_time)               {mm([b['cpu'] for b in bs])}")
        by: dict = collections.defaultdict(lambda: [[], [], []])
        for b in bs:
            per: dict = collections.defaultdict(lambda: [0.0, 0.0, 0.0])
            for where, w, h, c in b["locks"]:
                per[where][0] += w
                per[where][1] += h
                per[where][2] += c
            for where, whc in per.items():
                for i in range(3):
                    by[where][i].append(whc[i])
        for where, (w, h, c) in sorted(by.items(), key=lambda kv: -sum(kv[1][1])):
            print(f"    lock {where[:50]:50} n={len(w):3} wait {mm(w)}  hold {mm(h)} (CPU {mm(c)})  "
                  f"hold total {sum(h) * 1000:5.0f}")
    for cmd in ("ADD", "DEL"):
        keys = sorted({k for b in burst if b["cmd"] == cmd for k in b.get("timed", {})})
        if keys:
            print(f"  {cmd}: timed (DAEMONPROF_TIME), ms per request, median / mean, wall and CPU")
        for k in keys:
            v = [b.get("timed", {}).get(k, (0.0, 0.0)) for b in burst if b["cmd"] == cmd]
            w, c = [x[0] * 1000 for x in v], [x[1] * 1000 for x in v]
            print(f"    {k[-60:]:60} wall {statistics.median(w):7.2f} / {statistics.mean(w):7.2f}"
                  f"  CPU {statistics.median(c):7.2f} / {statistics.mean(c):7.2f}")
    st = _print_profile(out + ".prof", len(burst), a.top, 30,
                        "cProfile (wall per thread, so GIL and lock waits count) of {n} requests")
    if a.keep:
        st.dump_stats(a.keep)
    for suffix in (".prof", ".stages.json", ".burst.json"):
        os.unlink(out + suffix)
    return 0


def _print_profile(path: str, n: int, top: int, top_self: int, title: str) -> pstats.Stats:
    """Print a cProfile dump as ms per request (n requests): by cumulative, then by self time."""
    st = pstats.Stats(path)
    print(f"\n{title.format(n=n)}, ms per request, by cumulative:")

    def where(fname: str, line: int) -> str:
        return f"{os.path.relpath(fname, REPO) if fname.startswith('/') else fname}:{line}"[-55:]
    for (fname, line, func), (_cc, nc, tt, ct, _callers) in sorted(st.stats.items(), key=lambda kv: kv[1][3],
                                                                    reverse=True)[:top]:
        print(f"  {ct * 1000 / n:8.2f} cum {tt * 1000 / n:7.2f} self {nc / n:6.1f} calls  {func}  ({where(fname, line)})")
    print("\nby self time:")
    for (fname, line, func), (_cc, nc, tt, _ct, _callers) in sorted(st.stats.items(), key=lambda kv: kv[1][2],
                                                                     reverse=True)[:top_self]:
        print(f"  {tt * 1000 / n:7.2f} self {nc / n:6.1f} calls  {func}  ({where(fname, line)})")
    return st


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
    n = len(stages) + 4 * (2 if a.case == "both" else 1)   # warm-up requests are profiled too
    st = _print_profile(out + ".prof", n, a.top, 25, "cProfile of every _execute ({n} requests incl. warm-up)")
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
