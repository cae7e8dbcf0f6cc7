"""Timing helpers for the benchmarks: many runs, medians and p95, never one timing."""
import statistics
import time
from dataclasses import dataclass, field
from typing import Callable

from bench import guard


@dataclass
class Case:
    """run(ctx) is timed; prepare() -> ctx and cleanup(ctx) are not. cleanup always runs, also
    when run raised or was interrupted, so every iteration leaves the machine as it found it."""
    run: Callable
    prepare: Callable | None = None
    cleanup: Callable | None = None


def timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return (time.perf_counter() - t) * 1000.0


def once(case) -> float:
    if not isinstance(case, Case):
        return timed(case)
    ctx = case.prepare() if case.prepare else None
    try:
        return timed(lambda: case.run(ctx))
    finally:
        if case.cleanup:
            case.cleanup(ctx)


def summary(ms: list) -> dict:
    s = sorted(ms)
    return {"n": len(s), "median": statistics.median(s), "p95": s[min(len(s) - 1, int(len(s) * 0.95))]}


def interleave(cases: dict, runs: int, warmup: int = 3) -> dict:
    """Run each case `runs` times, alternating cases so machine noise hits all alike.
    A case is a callable (all of it timed) or a Case (only its run timed)."""
    for fn in cases.values():
        for _ in range(warmup):
            guard.check()
            once(fn)
    samples = {k: [] for k in cases}
    for _ in range(runs):
        for k, fn in cases.items():
            guard.check()
            samples[k].append(once(fn))
    return {k: summary(v) for k, v in samples.items()}


def table(rows: list, baseline: str, also: tuple = ()) -> str:
    """rows: [(name, summary)]; ratio = median / baseline median. `also`: more (label, case)
    baselines, each one more ratio column."""
    med = {n: s["median"] for n, s in rows}
    bases = [("ratio", baseline)] + list(also)
    w = max([44] + [len(n) for n, _ in rows])
    out = [f"{'case':{w}} {'n':>5} {'median ms':>10} {'p95 ms':>9}" + "".join(f" {l:>8}" for l, _ in bases)]
    for name, s in rows:
        out.append(f"{name:{w}} {s['n']:>5} {s['median']:>10.2f} {s['p95']:>9.2f}"
                   + "".join(f" {s['median'] / med[b]:>8.2f}" for _, b in bases))
    return "\n".join(out)


@dataclass
class Report:
    """One section's table, its one-line summary, and anything that went wrong (a section with
    problems makes run.py exit non-zero)."""
    title: str
    text: str
    summary: str
    problems: list = field(default_factory=list)
    targets: list = field(default_factory=list)   # [Target]: the issue-19 block at the end

    def target(self, name: str, value: float, limit: float, unit: str = "x") -> None:
        self.targets.append(Target(name, value, limit, unit))


@dataclass
class Target:
    """One performance target: `value` (a ratio, or MiB) against `limit` (met when <=)."""
    name: str
    value: float
    limit: float
    unit: str = "x"

    def line(self) -> str:
        v = f"{self.value:.2f}x" if self.unit == "x" else f"{self.value:.1f} {self.unit}"
        lim = f"{self.limit:g}x" if self.unit == "x" else f"{self.limit:g} {self.unit}"
        return f"{self.name:58} {v:>10}  target <= {lim:9} {'met' if self.value <= self.limit else 'short'}"


def targets_block(reports: list) -> str:
    """The issue-19 targets of the sections that ran, one line each with met/short."""
    lines = [t.line() for r in reports for t in r.targets]
    return ("issue-19 targets (medians of this run; a loaded machine makes ratios noisy):\n  "
            + "\n  ".join(lines)) if lines else ""
