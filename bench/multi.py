"""Section `multi`: a pod with two networks. (d) netmeta thin -> bridge+host-local on eth0 plus
an SR-IOV attachment (sriov + fixipam, fixed IP) on net1, Kubernetes-free: the pod's annotations
arrive in runtimeConfig["io.kubernetes.cri.pod-annotations"] (as containerd passes them) and the
NAD comes from <nadDir>/<namespace>/<name>.json. Against (a) bridge+host-local direct, and
(a)+(e): the same two networks by the Debian plugins called directly one after the other
(bridge ADD, host-device+static ADD of the same VF netdev, then both DELs), timed together.
The sim NIC has a single VF, so sriov's allocation picks the very netdev host-device moves."""
import json
import os
from contextlib import ExitStack

from bench import daemon, fixtures
from bench.meta import netmeta_conf
from bench.stats import Case, Report, interleave, table

A = "(a) bridge+host-local direct"
AE = "(a)+(e) bridge+host-local + host-device+static direct"
D = "(d) netmeta thin -> bridge + sriov/fixipam"
DT = "(d) netmeta thick (daemon) -> bridge + sriov/fixipam"
NAD = "sriov-net"
ANNOTS_KEY = "io.kubernetes.cri.pod-annotations"


def write_nad(nad_dir: str, namespace: str, name: str, conf: dict) -> None:
    """The format meta/networks.py DirNADs reads: a NetworkAttachmentDefinition object."""
    os.makedirs(os.path.join(nad_dir, namespace), exist_ok=True)
    with open(os.path.join(nad_dir, namespace, f"{name}.json"), "w") as f:
        json.dump({"apiVersion": "k8s.cni.cncf.io/v1", "kind": "NetworkAttachmentDefinition",
                   "metadata": {"name": name, "namespace": namespace},
                   "spec": {"config": json.dumps(conf)}}, f)


def run(runs: int = 30) -> Report:
    with ExitStack() as st:
        work = fixtures.scratch(st, "multi")
        bconf = fixtures.bridge_conf(work, fixtures.bridge(st, "mbr"))
        frag = fixtures.sim_nic(st, work, "m", 1)
        vf0 = fixtures.vf_netdev(frag, 0)
        sriov = fixtures.sriov_conf(frag, work, 56)
        write_nad(os.path.join(work, "nads"), fixtures.POD_NS, NAD, sriov)
        annots = {"k8s.v1.cni.cncf.io/networks": json.dumps([{"name": NAD, "ips": ["10.56.0.7/24"]}])}
        mconf = netmeta_conf(work, bconf, nadDir=os.path.join(work, "nads"),
                             capabilities={ANNOTS_KEY: True}, runtimeConfig={ANNOTS_KEY: annots})
        hd = {"cniVersion": "1.0.0", "name": "hd-net", "type": "host-device", "device": vf0,
              "ipam": {"type": "static", "addresses": [{"address": "10.56.0.7/24"}]}}

        def a(pod):
            pod.add("bridge", bconf, ips=1)
            pod.delete("bridge", bconf)

        def ae(pod):
            pod.add("bridge", bconf, ips=1)
            pod.add("host-device", hd, ifname="net1", ips=1)
            pod.delete("host-device", hd, ifname="net1")
            pod.delete("bridge", bconf)

        def d(conf, env=None):
            def go(pod):
                # the runtime gets the cluster network's result, as from Multus (net1 is in
                # network-status); an ADD that did not attach net1 fails
                r = pod.add("netmeta", conf, ips=1, env=env)
                if [i["name"] for i in r.out["interfaces"] if i.get("sandbox")] != ["eth0"]:
                    raise AssertionError(f"netmeta ADD did not return eth0's result: {r.out['interfaces']}")
                pod.delete("netmeta", conf, env=env)
            return go

        def fresh():
            return fixtures.pods(1)[0]

        def after_hd(pod):
            fixtures.release([pod])
            fixtures.restore_sim_aliases(frag, {0: vf0})

        cases = {A: Case(a, fresh, lambda p: fixtures.release([p])),
                 AE: Case(ae, fresh, after_hd),
                 D: Case(d(mconf), fresh, lambda p: fixtures.release([p]))}
        dm = daemon.start(st)
        if dm:   # the same pod through the daemon (the native shim forwards)
            cases[DT] = Case(d(dict(mconf, mode="daemon", socketPath=dm.socket), dm.env), fresh,
                             lambda p: fixtures.release([p]))
        res = interleave(cases, runs)
        rep = Report("2. pod with cluster default + SR-IOV attachment (ADD+DEL, fresh netns each)",
                     table(list(res.items()), A, also=(("vs a+e", AE),)),
                     f"multi: netmeta {res[D]['median'] / res[A]['median']:.1f}x (a), "
                     f"{res[D]['median'] / res[AE]['median']:.1f}x (a)+(e)"
                     + (f"; thick {res[DT]['median'] / res[AE]['median']:.2f}x (a)+(e)" if DT in res else ""))
        if fixtures.sriov_records(frag):
            rep.problems.append(f"sriov records left: {fixtures.sriov_records(frag)}")
        return rep
