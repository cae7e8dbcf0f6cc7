"""Timing helpers for the benchmarks: many runs, medians and p95, never one timing."""
import statistics
import time


def timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return (time.perf_counter() - t) * 1000.0


def summary(ms: list) -> dict:
    s = sorted(ms)
    return {"n": len(s), "median": statistics.median(s), "p95": s[min(len(s) - 1, int(len(s) * 0.95))]}


def interleave(cases: dict, runs: int, warmup: int = 3) -> dict:
    """Run each case `runs` times, alternating cases so machine noise hits all alike."""
    for fn in cases.values():
        for _ in range(warmup):
            fn()
    samples = {k: [] for k in cases}
    for _ in range(runs):
        for k, fn in cases.items():
            samples[k].append(timed(fn))
    return {k: summary(v) for k, v in samples.items()}


def table(rows: list, baseline: str) -> str:
    """rows: [(name, summary)]; ratio = median / baseline median."""
    base = dict(rows)[baseline]["median"]
    out = [f"{'case':44} {'n':>5} {'median ms':>10} {'p95 ms':>9} {'ratio':>6}"]
    for name, s in rows:
        out.append(f"{name:44} {s['n']:>5} {s['median']:>10.2f} {s['p95']:>9.2f} {s['median'] / base:>6.2f}")
    return "\n".join(out)
