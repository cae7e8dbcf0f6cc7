"""Section `devices`: the cost of resourceName -> deviceID. One pod, the cluster default network
(Debian bridge + host-local) plus an SR-IOV attachment (sriov + fixipam) on the sim NIC's VF 0,
Kubernetes-free (NADs from nadDir, annotations from runtimeConfig), ADD+DEL:
  (r) the NAD has `k8s.v1.cni.cncf.io/resourceName` and no deviceID: netmeta asks the kubelet's
      PodResources API (tests/podresources_standin.py, the real v1 gRPC protocol on a unix
      socket) which device the pod got and hands it over;
  (x) the same NAD with an explicit `deviceID` of the same VF and no resourceName.
Through the daemon (thick) when it runs, and thin; the ratio r/x is the hand-off's cost."""
import json
import os
from contextlib import ExitStack

from bench import daemon, fixtures
from bench.meta import netmeta_conf
from bench.multi import write_nad
from bench.stats import Case, Report, interleave, table
from delegates.sriov.topology import Topology
from tests.podresources_standin import PodResourcesServer

RES = "intel.com/sriov_bench"
ANNOTS_KEY = "io.kubernetes.cri.pod-annotations"
X, R = "(x) explicit deviceID", "(r) resourceName -> PodResources -> deviceID"


def run(runs: int = 20) -> Report:
    with ExitStack() as st:
        work = fixtures.scratch(st, "devices")
        bconf = fixtures.bridge_conf(work, fixtures.bridge(st, "dbr"))
        frag = fixtures.sim_nic(st, work, "d", 1)
        pci = Topology(frag["sysfsRoot"]).vf_pci(frag["master"], 0)
        seams = {k: v for k, v in frag.items() if k != "master"}
        kubelet = PodResourcesServer(os.path.join(work, "kubelet.sock")).start()
        st.callback(kubelet.stop)
        nads = os.path.join(work, "nads")
        write_nad(nads, fixtures.POD_NS, "by-id", fixtures.sriov_conf(seams, work, 57, name="by-id", deviceID=pci))
        write_nad(nads, fixtures.POD_NS, "by-res", fixtures.sriov_conf(seams, work, 58, name="by-res"))
        with open(os.path.join(nads, fixtures.POD_NS, "by-res.json")) as f:
            obj = json.load(f)
        obj["metadata"]["annotations"] = {"k8s.v1.cni.cncf.io/resourceName": RES}
        with open(os.path.join(nads, fixtures.POD_NS, "by-res.json"), "w") as f:
            json.dump(obj, f)

        def conf(nad, ip):
            annots = {"k8s.v1.cni.cncf.io/networks": json.dumps([{"name": nad, "ips": [ip]}])}
            return netmeta_conf(work, bconf, nadDir=nads, podResourcesSocket=kubelet.path,
                                capabilities={ANNOTS_KEY: True}, runtimeConfig={ANNOTS_KEY: annots})

        def go(c, env=None):
            def fn(pod):
                pod.add("netmeta", c, ips=2, env=env)
                pod.delete("netmeta", c, env=env)
            return fn

        def fresh():
            pod = fixtures.pods(1)[0]
            name = dict(kv.split("=", 1) for kv in pod.args.split(";"))["K8S_POD_NAME"]
            kubelet.set_pod(fixtures.POD_NS, name, {"app": {RES: [pci]}})
            return pod

        def done(pod):
            fixtures.release([pod])

        x, r = conf("by-id", "10.57.0.7/24"), conf("by-res", "10.58.0.7/24")
        cases = {X + " thin": Case(go(x), fresh, done), R + " thin": Case(go(r), fresh, done)}
        dm = daemon.start(st)
        if dm:
            d = {"mode": "daemon", "socketPath": dm.socket}
            cases[X + " daemon"] = Case(go(dict(x, **d), dm.env), fresh, done)
            cases[R + " daemon"] = Case(go(dict(r, **d), dm.env), fresh, done)
        res = interleave(cases, runs)
        base = X + (" daemon" if dm else " thin")
        summary = "; ".join(f"{m} r/x {res[R + ' ' + m]['median'] / res[X + ' ' + m]['median']:.2f}"
                            for m in ("daemon", "thin") if R + " " + m in res)
        rep = Report("devices: resourceName attachment vs explicit deviceID (ADD+DEL, fresh netns each)",
                     table(list(res.items()), base), f"devices: {summary}")
        if fixtures.sriov_records(frag):
            rep.problems.append(f"sriov records left: {fixtures.sriov_records(frag)}")
        return rep
