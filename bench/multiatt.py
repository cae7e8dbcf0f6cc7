"""Section `multiatt`: ADD latency of a pod with the cluster network (bridge + host-local) and
4 SR-IOV attachments (sriov + fixipam, fixed IPs, on a simulated NIC with 4 VFs), Kubernetes-
free (annotations in runtimeConfig, NADs from nadDir): the attachments one after another
(parallelAttachments: 1, what Multus v4.1.4 does) against concurrently (the default, 4), in thin
mode and through the daemon. Only the ADD is timed; the DEL runs untimed in the cleanup.
On a 2-core machine shared with other work the gain is bounded by the CPU each delegate
burns (sriov's sim NIC refresh included), not by waiting: read it as a floor."""
import json
import os
from contextlib import ExitStack

from bench import daemon, fixtures
from bench.meta import netmeta_conf
from bench.multi import ANNOTS_KEY, write_nad
from bench.stats import Case, Report, interleave, table

N_ATT = 4
NAD = "sriov-4"
SEQ = "netmeta thin, 4 SR-IOV attachments one after another"
PAR = "netmeta thin, 4 SR-IOV attachments in parallel"
DSEQ = "netmeta daemon, 4 SR-IOV one after another"
DPAR = "netmeta daemon, 4 SR-IOV in parallel"


def run(runs: int = 8) -> Report:
    with ExitStack() as st:
        work = fixtures.scratch(st, "multiatt")
        bconf = fixtures.bridge_conf(work, fixtures.bridge(st, "mabr"))
        frag = fixtures.sim_nic(st, work, "ma", N_ATT)
        write_nad(os.path.join(work, "nads"), fixtures.POD_NS, NAD, fixtures.sriov_conf(frag, work, 57))
        nets = [{"name": NAD, "ips": [f"10.57.0.{10 + i}/24"]} for i in range(N_ATT)]
        base = netmeta_conf(work, bconf, nadDir=os.path.join(work, "nads"), capabilities={ANNOTS_KEY: True},
                            runtimeConfig={ANNOTS_KEY: {"k8s.v1.cni.cncf.io/networks": json.dumps(nets)}})

        def add(conf, env=None):
            def go(pod):
                r = pod.add("netmeta", conf, ips=1, env=env)
                if [i["name"] for i in r.out["interfaces"] if i.get("sandbox")] != ["eth0"]:
                    raise AssertionError(f"netmeta ADD did not return eth0's result: {r.out['interfaces']}")
            return Case(go, lambda: fixtures.pods(1)[0], lambda p: fixtures.release([p]))

        cases = {SEQ: add(dict(base, parallelAttachments=1)), PAR: add(dict(base, parallelAttachments=4))}
        dm = daemon.start(st)
        if dm:
            d = dict(base, mode="daemon", socketPath=dm.socket)
            cases[DSEQ] = add(dict(d, parallelAttachments=1), dm.env)
            cases[DPAR] = add(dict(d, parallelAttachments=4), dm.env)
        res = interleave(cases, runs, warmup=1)
        summary = f"multiatt: parallel/sequential ADD {res[PAR]['median'] / res[SEQ]['median']:.2f}x thin"
        if DPAR in res:
            summary += f", {res[DPAR]['median'] / res[DSEQ]['median']:.2f}x daemon"
        rep = Report(f"pod with cluster network + {N_ATT} SR-IOV attachments: ADD latency, sequential vs parallel "
                     "(2 shared cores: a floor, not the gain with idle CPUs)",
                     table(list(res.items()), SEQ), summary + " (lower is better)")
        if fixtures.sriov_records(frag):
            rep.problems.append(f"sriov records left: {fixtures.sriov_records(frag)}")
        return rep
