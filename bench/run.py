"""netmeta benchmarks, side by side with the Debian reference plugins in one run.

Usage: .venv/bin/python bench/run.py [--only meta,multi,...] [--runs N | --runs meta=N,sriov=M]
                                     [--no-daemon] [--list]
Each section prints a table (median, p95 over many interleaved runs, ratio against its Debian
baseline); a summary line of ratios comes last. Exit status 1 when any section failed or left
state behind. Must run as root (netns, links). Ctrl-C stops after the current iteration and
cleans up; everything made carries the prefix shown at start and is swept at the end."""
import argparse
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench import cnicall, daemon, devices, guard, ipam, macvlan, meta, multi, multiatt, parallel, patches, rss, sriov, startup  # noqa: E402  # noqa: E402
from bench.stats import Report, targets_block  # noqa: E402

# name -> (runner, default runs): defaults keep one full run under ~5 minutes on 2 noisy cores
SECTIONS = {
    "meta": (meta.run, 50),          # 1. bridge+host-local direct vs netmeta thin (~0.7 s/iter)
    "multi": (multi.run, 25),        # 2. netmeta -> bridge + sriov/fixipam vs (a), (a)+(e) (~1.3 s/iter)
    "sriov": (sriov.run, 30),        # 3. sriov+fixipam vs host-device+static, same VF (~1 s/iter)
    "parallel": (parallel.run, 3),   # 4. 64 ADDs + 64 DELs at once, rounds (~35 s/round)
    "startup": (startup.run, 40),    # 5. VERSION start-up (~0.8 s/iter)
    "ipam": (ipam.report, 30),
    "rss": (rss.run, 1000),          # (g) daemon RSS idle / after N ADD+DEL cycles (~2.5-3 min)
    "patches": (patches.run, 1),     # (h) node PATCHes for 100 pods in bursts; rounds (~45 s/round)
    "macvlan": (macvlan.run, 20),    # macvlan+fixipam via the daemon vs macvlan+static direct
    "multiatt": (multiatt.run, 8),   # pod with 4 SR-IOV attachments: ADD sequential vs parallel (~3 s/iter)
    "devices": (devices.run, 20),    # resourceName -> PodResources -> deviceID vs explicit deviceID
}


def _runs(spec: str | None) -> dict:
    runs = {k: v for k, (_, v) in SECTIONS.items()}
    if not spec:
        return runs
    if "=" not in spec:
        return {k: int(spec) for k in runs}
    for part in spec.split(","):
        k, v = part.split("=")
        if k not in runs:
            raise SystemExit(f"--runs: unknown section {k!r}")
        runs[k] = int(v)
    return runs


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", help="comma-separated sections: " + ",".join(SECTIONS))
    ap.add_argument("--runs", help="N for every section, or section=N,... (parallel, patches: rounds; rss: cycles)")
    ap.add_argument("--no-daemon", dest="daemon", action="store_false",
                    help="skip the thick variants (netmeta daemon running) and the daemon-only "
                         "sections rss, patches; they run by default")
    ap.add_argument("--list", action="store_true")
    a = ap.parse_args()
    if a.list:
        print("\n".join(f"{k} (default runs {v})" for k, (_, v) in SECTIONS.items()))
        return 0
    only = a.only.split(",") if a.only else list(SECTIONS)
    bad = [s for s in only if s not in SECTIONS]
    if bad:
        ap.error(f"unknown section(s) {bad}; have {list(SECTIONS)}")
    if os.geteuid() != 0:
        ap.error("needs root (network namespaces, links)")
    runs = _runs(a.runs)
    daemon.ENABLED["on"] = a.daemon
    # our executables must not find a daemon someone left on the default socket (see cnicall.ENV)
    cnicall.ENV["NETMETA_SOCKET"] = f"/nonexistent/{guard.PREFIX}/netmeta.sock"
    guard.install()
    rev = subprocess.run(["git", "-C", os.path.dirname(os.path.abspath(__file__)), "describe", "--always",
                          "--dirty"], capture_output=True, text=True).stdout.strip()
    print(f"netmeta bench  tree {rev}  prefix {guard.PREFIX}  sections {','.join(only)}  "
          f"runs {','.join(f'{s}={runs[s]}' for s in only)}  cpus {os.cpu_count()}", flush=True)
    reports, failed, walls = [], [], {}
    t_all = time.perf_counter()
    try:
        for name in only:
            guard.check()
            t = time.perf_counter()
            try:
                rep = SECTIONS[name][0](runs[name])
            except (KeyboardInterrupt, guard.Stopped):
                failed.append(f"{name}: interrupted")
                raise
            except Exception as e:   # one broken section must not hide the others
                rep = Report(f"{name}: FAILED", f"{type(e).__name__}: {e}", f"{name}: FAILED", [str(e)])
            walls[name] = time.perf_counter() - t
            print(f"\n== {rep.title}  [section wall {walls[name]:.0f} s]\n{rep.text}", flush=True)
            for p in rep.problems:
                print(f"!! {name}: {p}", flush=True)
                failed.append(f"{name}: {p}")
            reports.append(rep)
    except (KeyboardInterrupt, guard.Stopped):
        print("\nbench: interrupted; cleaned up", file=sys.stderr)
    finally:
        left = guard.sweep()
        if left:
            failed.append(f"sweep had to remove {left}")
            print(f"!! sweep removed leftovers: {left}", file=sys.stderr)
    block = targets_block(reports)
    if block:
        print("\n" + block)
    print(f"\nsummary ({time.perf_counter() - t_all:.0f} s): " + " | ".join(r.summary for r in reports))
    if failed:
        print("FAILED: " + "; ".join(failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
