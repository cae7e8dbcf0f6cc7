"""Section `rss` (g): the node daemon's memory, idle and after many pods.

`netmeta daemon` runs Kubernetes-free (no kubeconfig; VF availability to a status file) with a
simulated NIC. Its RSS (/proc/<pid>/status VmRSS, peak VmHWM, also threads and open fds) is read
idle after start-up, at checkpoints while it serves N ADD+DEL cycles (default 1000; `--runs
rss=N`), and idle again a few seconds after the last one. One cycle is a pod with the cluster
default network (Debian bridge + host-local) and one SR-IOV attachment (sriov + fixipam, fixed
IP; annotations in runtimeConfig as containerd passes them, the NAD from nadDir) through the
`netmeta` executable in daemon mode; WORKERS pods in parallel, each worker reusing a few netns
and a fresh container ID per cycle. Also: the daemon's own per-request latency (its /metrics
histogram: exact mean from _sum/_count, quantiles interpolated in the buckets) next to the
client-side wall time of the same calls (the histogram times the request's handling only: not
its wait for a pool slot or its container's lock, the socket or the shim). Target (issue 5,
reported, not asserted): idle RSS <= 60 MB.

Product bugs met here are reported as problems, the section still finishes: see `Watchdog`
(hung forked children of the daemon) and any failed call (CNI code). A section with problems
keeps the daemon's log under /tmp (named in its output).

`BenchDaemon`, `Watchdog`, `proc_status`, `latency_rows` are shared with bench/patches.py."""
import collections
import contextlib
import json
import os
import shutil
import signal
import subprocess
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack

from bench import daemon as bench_daemon
from bench import fixtures, guard
from bench.cnicall import call, error_code
from bench.meta import netmeta_conf
from bench.multi import ANNOTS_KEY, write_nad
from bench.stats import Report, summary
from tests.daemonproc import DaemonProc

WORKERS = 8            # pods in flight at once (2 shared cores; 8 gave the best throughput here)
NETNS_PER_WORKER = 2   # reused round-robin by each worker
VFS = 10               # >= WORKERS
IDLE_WAIT = (3.0, 5.0)  # s after start-up / after the last cycle before reading "idle"
TARGET_MB = 60.0
NAD = "sriov-rss"


# ------------------------------------------------------------------ shared with patches.py

class BenchDaemon(DaemonProc):
    """tests.daemonproc.DaemonProc (JSON config, /metrics, stop by PID), started in its own
    session (a Ctrl-C in the terminal reaches only the bench, which then stops it by PID) and
    without the test-only fault switch."""
    orphans: tuple = ()

    def start(self, env: dict | None = None, timeout: float = 30.0) -> "BenchDaemon":
        return super().start(env, timeout, allow_faults=False, new_session=True)

    def stop(self) -> int | None:
        """SIGTERM by PID (graceful), SIGKILL after 20 s; then SIGKILL whatever is left in the
        daemon's own process group (its session, started by us): forked children it left
        behind would keep its lock files locked (see Watchdog)."""
        if not self.proc:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.orphans = [p for p, _ in _children(lambda st: st["pgrp"] == self.proc.pid)]
        for p in self.orphans:
            with contextlib.suppress(OSError):
                os.kill(p, signal.SIGKILL)
        return self.proc.returncode

    def tail(self, n: int = 1500) -> str:
        return self.log()[-n:].strip()

    def keep_log(self, rep: Report, tag: str) -> None:
        """A section with problems keeps the daemon's log (its scratch dir is removed)."""
        if rep.problems and os.path.exists(self.log_path):
            dst = f"/tmp/nmbench-{guard.PREFIX}-{tag}-daemon.log"
            shutil.copyfile(self.log_path, dst)
            rep.text += f"\ndaemon log kept: {dst}"


def _children(pred) -> list:
    """[(pid, stat)] of processes whose /proc/<pid>/stat matches pred({ppid, pgrp, start})."""
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                rest = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        st = {"state": rest[0], "ppid": int(rest[1]), "pgrp": int(rest[2]), "start": int(rest[19]) / _HZ}
        if pred(st):
            out.append((int(d), st))
    return out


_HZ = os.sysconf("SC_CLK_TCK")


def _uptime() -> float:
    with open("/proc/uptime") as f:
        return float(f.read().split()[0])


class Watchdog:
    """Works around a daemon hang seen here so the section can finish (and reports it): pyroute2
    (0.9.7, child_process_mode "fork") opens a socket in a pod netns by FORKING the
    multithreaded daemon; the child inherits the daemon's Python SIGTERM handler (it logs),
    pyroute2 stops it with SIGTERM and then waits for it without a timeout; a child that
    deadlocks in that handler on a lock held at fork time never exits, so the request thread
    waits forever while holding the PF's locks, and every later request on that PF times out.
    A forked child of the daemon (same executable, not an exec'd plugin) that is single-threaded
    and waits on a futex for `deadlocked` seconds (nothing can ever wake it: the threads that
    held its locks were not forked), or is older than `stuck` seconds anyway (a healthy one
    lives milliseconds), is SIGKILLed by PID and counted; `incidents` lists them."""

    def __init__(self, d: "BenchDaemon", deadlocked: float = 0.5, stuck: float = 3.0, every: float = 0.2):
        self.d, self.deadlocked, self.stuck, self.every = d, deadlocked, stuck, every
        self.incidents: list = []
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, name="watchdog", daemon=True)

    def start(self) -> "Watchdog":
        with open(f"/proc/{self.d.proc.pid}/cmdline", "rb") as f:
            self.cmdline = f.read()
        self._t.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._t.join(5)

    def _forks(self) -> list:
        pid = self.d.proc.pid
        out = []
        for p, st in _children(lambda st: st["ppid"] == pid):
            try:
                with open(f"/proc/{p}/cmdline", "rb") as f:
                    if f.read() == self.cmdline:
                        out.append((p, st))
            except OSError:
                pass
        return out

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            now = _uptime()
            for p, st in self._forks():
                age = now - st["start"]
                if age < self.deadlocked:
                    continue
                try:
                    with open(f"/proc/{p}/wchan") as f:
                        wchan = f.read()
                    with open(f"/proc/{p}/status") as f:
                        threads = int(next(ln for ln in f if ln.startswith("Threads:")).split()[1])
                    if age < self.stuck and not (threads == 1 and "futex" in wchan):
                        continue
                    os.kill(p, signal.SIGKILL)
                except (OSError, StopIteration, ValueError):
                    continue
                self.incidents.append({"pid": p, "age": round(age, 1), "state": st["state"], "wchan": wchan,
                                       "at": time.time()})

    def summary(self) -> str:
        if not self.incidents:
            return "hung forked daemon children: none"
        return (f"hung forked daemon children SIGKILLed by the bench: {len(self.incidents)} "
                f"(each stalled its request and the PF lock {min(i['age'] for i in self.incidents):.1f}-"
                f"{max(i['age'] for i in self.incidents):.1f} s; "
                f"first: pid {self.incidents[0]['pid']} {self.incidents[0]['state']} in {self.incidents[0]['wchan']})")

    def problem(self) -> str | None:
        if not self.incidents:
            return None
        return (f"PRODUCT BUG: {len(self.incidents)} forked child(ren) of the daemon (pyroute2 netns socket fork) "
                f"hung after SIGTERM with the daemon's inherited signal handler; the bench killed them to go on")


def proc_status(pid: int) -> dict:
    """VmRSS / VmHWM in MB, Threads, open fds of a live process."""
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("VmRSS", "VmHWM"):
                out[k] = int(v.split()[0]) / 1024.0
            elif k == "Threads":
                out[k] = int(v)
    out["fds"] = len(os.listdir(f"/proc/{pid}/fd"))
    return out


def hist(metrics_text: str, name: str, **labels) -> dict:
    """A Prometheus histogram from /metrics text: {"buckets": [(le, cumulative)], "sum", "count"}."""
    buckets, s, c = [], 0.0, 0.0
    want = [f'{k}="{v}"' for k, v in labels.items()]
    for line in metrics_text.splitlines():
        if not line.startswith(name) or not all(w in line for w in want):
            continue
        head, _, val = line.rpartition(" ")
        base = head.split("{")[0]
        if base == f"{name}_bucket":
            le = head.split('le="')[1].split('"')[0]
            buckets.append((float("inf") if le == "+Inf" else float(le), float(val)))
        elif base == f"{name}_sum":
            s = float(val)
        elif base == f"{name}_count":
            c = float(val)
    return {"buckets": sorted(buckets), "sum": s, "count": c}


def hist_quantile(h: dict, q: float) -> float | None:
    """Like PromQL histogram_quantile: linear inside the bucket holding rank q*count (seconds)."""
    if not h["count"] or not h["buckets"]:
        return None
    rank, prev_le, prev_c = q * h["count"], 0.0, 0.0
    for le, c in h["buckets"]:
        if c >= rank:
            if le == float("inf"):
                return prev_le
            return prev_le + (le - prev_le) * ((rank - prev_c) / (c - prev_c) if c > prev_c else 1.0)
        prev_le, prev_c = le, c
    return prev_le


def latency_rows(samples: dict, metrics_text: str, plugin: str = "netmeta") -> str:
    """Client wall vs the daemon's own histogram, per command. samples: {"ADD": [ms], ...}."""
    out = [f"{'request (ms)':46} {'n':>6} {'median':>8} {'p95':>8} {'mean':>8}"]
    for cmd, ms in samples.items():
        if not ms:
            continue
        s = summary(ms)
        out.append(f"{cmd + ' client wall (netmeta shim -> daemon)':46} {s['n']:>6} {s['median']:>8.1f} "
                   f"{s['p95']:>8.1f} {sum(ms) / len(ms):>8.1f}")
        h = hist(metrics_text, "netmeta_cni_request_seconds", plugin=plugin, command=cmd)
        if h["count"]:
            med, p95 = hist_quantile(h, 0.5), hist_quantile(h, 0.95)
            out.append(f"{cmd + ' in the daemon (/metrics histogram)':46} {int(h['count']):>6} "
                       f"{med * 1000:>7.1f}~ {p95 * 1000:>7.1f}~ {h['sum'] / h['count'] * 1000:>8.1f}")
    out.append("(~ interpolated in the histogram buckets ..20, 50, 100, 200, 500 ms, 1, 2, 5 s; mean exact from "
               "_sum/_count; the daemon's figure excludes its queue wait, the socket and the shim)")
    return "\n".join(out)


def skipped(title: str, name: str) -> Report:
    return Report(f"{title}: skipped (--no-daemon)", "needs the netmeta daemon; not run with --no-daemon",
                  f"{name}: skipped (--no-daemon)")


# ------------------------------------------------------------------ the section

def run(cycles: int = 1000) -> Report:
    if not bench_daemon.ENABLED["on"]:
        return skipped("g. daemon RSS", "rss")
    with ExitStack() as st:
        work = fixtures.scratch(st, "rss")
        bconf = fixtures.bridge_conf(work, fixtures.bridge(st, "rbr"), subnet="10.244.12.0/24")
        frag = fixtures.sim_nic(st, work, "r", VFS)
        sriov = fixtures.sriov_conf(frag, work, 56)
        nad_dir = os.path.join(work, "nads")
        write_nad(nad_dir, fixtures.POD_NS, NAD, sriov)
        cache = os.path.join(work, "cache")
        d = BenchDaemon(os.path.join(work, "d"), cniDir=cache, requestTimeout=60,
                        statusFile=os.path.join(work, "node-status.json"),
                        pfs=[{k: frag[k] for k in ("master", "sysfsRoot", "backend", "stateDir")}])
        st.callback(d.stop)
        t_start = time.perf_counter()
        d.start()
        startup_s = time.perf_counter() - t_start
        pid = d.proc.pid
        wd = Watchdog(d).start()
        st.callback(wd.stop)

        def conf(w: int, mode: str) -> dict:
            annots = {"k8s.v1.cni.cncf.io/networks": json.dumps([{"name": NAD, "ips": [f"10.56.0.{10 + w}/24"]}])}
            return netmeta_conf(work, bconf, nadDir=nad_dir, mode=mode, socketPath=d.socket,
                                capabilities={ANNOTS_KEY: True}, runtimeConfig={ANNOTS_KEY: annots})

        confs = [conf(w, "daemon") for w in range(WORKERS)]
        netns = [[guard.name(f"r{w}x{k}") for k in range(NETNS_PER_WORKER)] for w in range(WORKERS)]
        pending: dict = {}   # worker -> kw of an ADD whose DEL is owed
        flat = [n for ns in netns for n in ns]
        st.callback(guard.netns_del, flat)
        guard.netns_add(flat)

        def settle_dels():   # runs first at exit, while the daemon is up (auto: also without it)
            for w, kw in list(pending.items()):
                call("netmeta", "DEL", conf(w, "auto"), env={"NETMETA_SOCKET": d.socket}, **kw)
            pending.clear()
        st.callback(settle_dels)

        time.sleep(IDLE_WAIT[0])
        points = [("idle after start-up", 0, proc_status(pid))]
        lock = threading.Lock()
        state = {"next": 0, "done": 0}
        walls = {"ADD": [], "DEL": []}
        errors = collections.Counter()
        err_msgs: list = []
        env = {"NETMETA_SOCKET": d.socket}

        def worker(w: int):
            k = 0
            while not guard.requested():
                with lock:
                    if state["next"] >= cycles or errors.total() > max(20, cycles // 20):
                        return
                    i = state["next"]
                    state["next"] += 1
                ns = netns[w][k % NETNS_PER_WORKER]
                k += 1
                cid = uuid.uuid4().hex
                kw = {"container_id": cid, "netns": f"/var/run/netns/{ns}", "ifname": "eth0",
                      "args": f"IgnoreUnknown=1;K8S_POD_NAMESPACE={fixtures.POD_NS};K8S_POD_NAME=rss-{i};"
                              f"K8S_POD_INFRA_CONTAINER_ID={cid};K8S_POD_UID={uuid.uuid4()}"}
                pending[w] = kw
                t = time.perf_counter()
                r = call("netmeta", "ADD", confs[w], env=env, **kw)
                ms = (time.perf_counter() - t) * 1000.0
                ok = r.ok and len((r.out or {}).get("ips") or []) == 1   # the cluster network's result
                with lock:
                    if ok:
                        walls["ADD"].append(ms)
                    else:
                        errors[f"ADD {error_code(r) if not r.ok else 'ips!=1'}"] += 1
                        err_msgs.append(f"ADD: {r.stdout[:200]!r} {r.stderr.strip()[-200:]}")
                t = time.perf_counter()
                r = call("netmeta", "DEL", confs[w], env=env, **kw)
                ms = (time.perf_counter() - t) * 1000.0
                with lock:
                    if r.ok:
                        walls["DEL"].append(ms)
                        pending.pop(w, None)
                        state["done"] += 1
                    else:
                        errors[f"DEL {error_code(r)}"] += 1
                        err_msgs.append(f"DEL: {r.stdout[:200]!r} {r.stderr.strip()[-200:]}")

        marks = sorted({m for m in (100, cycles // 2) if 0 < m < cycles})
        t0 = time.perf_counter()
        with ThreadPoolExecutor(WORKERS) as ex:
            futs = [ex.submit(worker, w) for w in range(WORKERS)]
            while not all(f.done() for f in futs):
                time.sleep(0.1)
                with lock:
                    done = state["done"]
                if marks and done >= marks[0]:
                    points.append((f"after {done} ADD+DEL (serving)", done, proc_status(pid)))
                    marks.pop(0)
            for f in futs:
                f.result()
        wall = time.perf_counter() - t0
        guard.check()
        points.append((f"after {state['done']} ADD+DEL", state["done"], proc_status(pid)))
        time.sleep(IDLE_WAIT[1])
        points.append((f"idle {IDLE_WAIT[1]:.0f} s later", state["done"], proc_status(pid)))
        metrics = d.get("/metrics")[1]

        idle0, idle1 = points[0][2]["VmRSS"], points[-1][2]["VmRSS"]
        rows = [f"{'daemon (pid ' + str(pid) + ')':40} {'cycles':>6} {'RSS MB':>8} {'HWM MB':>8} {'threads':>8} {'fds':>5}"]
        for label, n, s in points:
            rows.append(f"{label:40} {n:>6} {s['VmRSS']:>8.1f} {s['VmHWM']:>8.1f} {s['Threads']:>8} {s['fds']:>5}")
        per_k = (idle1 - idle0) / max(1, state["done"]) * 1000.0
        rows.append(f"growth idle->idle: {idle1 - idle0:+.1f} MB ({per_k:+.2f} MB per 1000 ADD+DEL); "
                    f"target idle RSS <= {TARGET_MB:.0f} MB: {'met' if max(idle0, idle1) <= TARGET_MB else 'NOT met'}")
        rows.append(f"{state['done']} cycles in {wall:.1f} s with {WORKERS} pods in flight "
                    f"({state['done'] / wall if wall else 0:.1f} ADD+DEL/s); daemon ready {startup_s:.2f} s after exec")
        text = "\n".join(rows) + "\n\n" + latency_rows(walls, metrics)
        text += f"\nerrors: {dict(errors) or 'none'}; {wd.summary()}"
        rep = Report(f"g. daemon RSS idle and after {cycles} pods (ADD+DEL: bridge+host-local + sriov/fixipam, "
                     f"{WORKERS} in parallel)", text,
                     f"rss: idle {idle0:.1f} -> {idle1:.1f} MB after {state['done']} ADD/DEL "
                     f"({idle1 - idle0:+.1f}; target <= {TARGET_MB:.0f})")
        rep.target("3. daemon idle RSS, the larger of start-up and end (MiB)", max(idle0, idle1), 32, "MiB")
        rep.target("3. daemon RSS growth per 1000 ADD+DEL (MiB)", per_k, 5, "MiB")
        if errors:
            rep.problems.append(f"failed calls {dict(errors)}: {err_msgs[:3]}")
        if state["done"] < cycles:
            rep.problems.append(f"only {state['done']} of {cycles} cycles done")
        if d.proc.poll() is not None:
            rep.problems.append(f"daemon died (rc {d.proc.returncode}): {d.tail()}")
        if wd.problem():
            rep.problems.append(wd.problem())
        wd.stop()
        rc = d.stop()
        if rc not in (0, None):
            rep.problems.append(f"daemon exit status {rc} on SIGTERM: {d.tail(600)}")
        if d.orphans:
            rep.problems.append(f"daemon left {len(d.orphans)} process(es) behind (killed): {d.orphans}")
        left = fixtures.sriov_records(frag)
        if left:
            rep.problems.append(f"sriov records left: {left}")
        if os.path.isdir(cache) and os.listdir(cache):
            rep.problems.append(f"DEL caches left: {os.listdir(cache)[:5]}")
        hl = os.path.join(work, "hostlocal", bconf["name"])
        leases = [f for f in os.listdir(hl) if f[0].isdigit()] if os.path.isdir(hl) else []
        if leases:
            rep.problems.append(f"host-local leases left: {leases[:5]}")
        d.keep_log(rep, "rss")
        return rep
