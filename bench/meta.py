"""Section `meta`: the cluster default network, Debian bridge + host-local, called directly (a)
vs through `netmeta` in thin mode (c): no kubeconfig, no daemon, CNI_ARGS of a pod without
annotations. One ADD+DEL per iteration in a fresh netns (made and deleted outside the timing),
the same bridge throughout."""
import os
from contextlib import ExitStack

from bench import daemon, fixtures
from bench.stats import Case, Report, interleave, table

DIRECT = "(a) bridge+host-local direct (Debian)"
THIN = "(c) netmeta thin -> bridge+host-local"
THICK = "(b) netmeta thick (daemon) -> bridge+host-local"


def netmeta_conf(work: str, delegate: dict, **extra) -> dict:
    return {"cniVersion": "1.0.0", "name": "netmeta", "type": "netmeta",
            "cniDir": os.path.join(work, "cache"), "delegates": [delegate], **extra}


def run(runs: int = 50) -> Report:
    with ExitStack() as st:
        work = fixtures.scratch(st, "meta")
        bconf = fixtures.bridge_conf(work, fixtures.bridge(st))
        mconf = netmeta_conf(work, bconf)

        def once(plugin, conf, env=None):
            def go(pod):
                pod.add(plugin, conf, ips=1, env=env)
                pod.delete(plugin, conf, env=env)
            return Case(go, prepare=lambda: fixtures.pods(1)[0], cleanup=lambda p: fixtures.release([p]))

        cases = {DIRECT: once("bridge", bconf), THIN: once("netmeta", mconf)}
        d = daemon.start(st)
        if d:   # HOOK: thick mode, same engine behind the daemon's socket
            cases[THICK] = once("netmeta", dict(mconf, mode="daemon", socketPath=d.socket), d.env)
        res = interleave(cases, runs)
        leftovers = _leftovers(work)
        r = Report("1. cluster default network: direct vs through netmeta (ADD+DEL, fresh netns each)",
                   table(list(res.items()), DIRECT),
                   f"meta: thin {res[THIN]['median'] / res[DIRECT]['median']:.1f}x bridge direct"
                   + (f", (b)/(a) {res[THICK]['median'] / res[DIRECT]['median']:.2f} (target <= 1.5)"
                      if THICK in res else ""))
        r.target("1. netmeta thin -> bridge / bridge direct (ADD+DEL)", res[THIN]["median"] / res[DIRECT]["median"], 3)
        if THICK in res:
            r.target("2. netmeta via daemon -> bridge / bridge direct (ADD+DEL)",
                     res[THICK]["median"] / res[DIRECT]["median"], 1.15)
        if leftovers:
            r.problems.append(f"state left after all DELs: {leftovers}")
        return r


def _leftovers(work: str) -> list:
    """Every DEL succeeded, so no lease and no DEL cache may remain."""
    left = []
    hl = os.path.join(work, "hostlocal", "cluster-net")
    if os.path.isdir(hl):
        left += [f"lease {f}" for f in os.listdir(hl) if f[0].isdigit()]
    cache = os.path.join(work, "cache")
    if os.path.isdir(cache):
        left += [f"cache {f}" for f in os.listdir(cache)]
    return left
