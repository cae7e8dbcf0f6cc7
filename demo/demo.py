"""`make demo`: the whole product on one machine without SR-IOV hardware or a cluster.

A simulated SR-IOV NIC (8 VFs) and a second simulated PF, the node daemon in
Kubernetes-free mode (NADs from a directory, pod annotations as the runtime passes them,
network-status and node availability in local files), three pods in network namespaces
named as containerd names them:
  pod-a  only the cluster default network (Debian bridge + host-local)
  pod-b  + an SR-IOV VF with a fixed IP, a VLAN and a tx rate from its annotations
  pod-c  + a whole PF (pfOnly)
then connectivity over the default network, and a teardown that shows every VF restored.
Cleans up after itself, also when interrupted."""
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
from tests.cnirun import cni  # noqa: E402
from tests.daemonproc import DaemonProc  # noqa: E402

TAG = secrets.token_hex(2)
PF_A, PF_B = f"dsa{TAG}", f"dsb{TAG}"
BRIDGE = f"nmdemo{TAG}"
BOLD, DIM, OFF = ("\033[1m", "\033[2m", "\033[0m") if sys.stdout.isatty() else ("", "", "")


def step(n, msg):
    print(f"\n{BOLD}[{n}] {msg}{OFF}", flush=True)


def sh(*cmd, check=True):
    return subprocess.run(cmd, check=check, capture_output=True, text=True).stdout


def netmeta(*args):
    return subprocess.run([f"{REPO}/.venv/bin/netmeta", *args], check=True, capture_output=True, text=True).stdout


class Demo:
    def __init__(self):
        self.root = tempfile.mkdtemp(prefix="netmeta-demo-")
        self.pods, self.frags, self.daemon = [], {}, None

    # ---------- set-up ----------
    def nics(self):
        step(1, "simulated SR-IOV NICs (`netmeta sim create`)")
        for pf, n in ((PF_A, 8), (PF_B, 2)):
            frag = json.loads(netmeta("sim", "create", "--pf", pf, "--vfs", str(n), "--root", f"{self.root}/sys"))
            frag["stateDir"] = f"{self.root}/sriov"
            self.frags[pf] = frag
            print(f"  {pf}: {n} VFs   sriov config fragment: {json.dumps({k: frag[k] for k in ('master', 'backend')})}")

    def networks(self):
        step(2, "networks: NetworkAttachmentDefinitions from a directory (Kubernetes-free mode)")
        fix = lambda sub, d: {"type": "fixipam", "subnet": sub, "dataDir": f"{self.root}/fixipam/{d}"}  # noqa: E731
        nads = {
            "sriov-a": dict(self.frags[PF_A], cniVersion="1.0.0", type="sriov", capabilities={"ips": True},
                            spoofchk="on", ipam=fix("10.56.0.0/24", "a"),
                            podOverrides={"vlan": "100-199", "maxTxRate": 1000}),
            "whole-pf": dict(self.frags[PF_B], cniVersion="1.0.0", type="sriov", pfOnly=True,
                             capabilities={"ips": True}, ipam=fix("10.57.0.0/24", "b")),
        }
        os.makedirs(f"{self.root}/nads/default")
        for name, conf in nads.items():
            with open(f"{self.root}/nads/default/{name}.json", "w") as f:
                json.dump({"apiVersion": "k8s.cni.cncf.io/v1", "kind": "NetworkAttachmentDefinition",
                           "metadata": {"name": name}, "spec": {"config": json.dumps(conf)}}, f)
            print(f"  default/{name}: type sriov on {conf['master']}"
                  f"{' (pfOnly)' if conf.get('pfOnly') else ''}; pod overrides allowed: {conf.get('podOverrides', 'none')}")
        print(f"  cluster default network: Debian bridge {BRIDGE} + host-local 10.250.0.0/24")

    def start_daemon(self):
        step(3, "node daemon (`netmeta daemon`), Kubernetes-free: availability -> a status file")
        self.daemon = DaemonProc(f"{self.root}/daemon", nodeName="demo-node", statusFile=f"{self.root}/node.json",
                                 pfs=[{k: f[k] for k in ("master", "sysfsRoot", "backend", "stateDir")}
                                      for f in self.frags.values()], coalesceWindow=0.1)
        os.makedirs(self.daemon.dir)
        self.daemon.start()
        print(f"  listening on {self.daemon.socket} (0600), metrics on http://127.0.0.1:{self.daemon.port}/metrics")
        self.conf = {"cniVersion": "1.0.0", "name": "netmeta", "type": "netmeta", "socketPath": self.daemon.socket,
                     "cniDir": self.daemon.cfg["cniDir"], "nadDir": f"{self.root}/nads",
                     "statusDir": f"{self.root}/status",
                     "delegates": [{"cniVersion": "1.0.0", "name": "cluster", "type": "bridge", "bridge": BRIDGE,
                                    "isGateway": True, "ipam": {"type": "host-local", "subnet": "10.250.0.0/24",
                                                                "dataDir": f"{self.root}/host-local"}}]}
        self.availability()

    def availability(self):
        deadline = time.monotonic() + 3
        want = None
        while time.monotonic() < deadline:   # the daemon coalesces changes for 0.1 s
            st = json.loads(netmeta("status", "--config", self.daemon.cfg_path, "-o", "json"))
            want = str(st["node"]["vfCount"])
            try:
                with open(f"{self.root}/node.json") as f:
                    pub = json.load(f)
                if pub["annotations"].get("sriov/vfCount") == want:
                    break
            except (OSError, ValueError, KeyError):
                pass
            time.sleep(0.05)
        label = pub.get("labels", {}).get("sriov/freeVFAvailable", "(absent)")
        print(f"  {DIM}node availability: sriov/vfCount={pub['annotations'].get('sriov/vfCount')} "
              f"sriov/freeVFAvailable={label}{OFF}")

    # ---------- pods ----------
    def add_pod(self, n, name, annotations):
        step(n, f"ADD {name}" + (f"  annotations: {json.dumps(annotations)}" if annotations else "  (no annotations)"))
        ns, cid, puid = f"cni-{uuid.uuid4()}", uuid.uuid4().hex, str(uuid.uuid4())
        sh("ip", "netns", "add", ns)
        args = f"IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME={name};K8S_POD_INFRA_CONTAINER_ID={cid};K8S_POD_UID={puid}"  # noqa: E501
        conf = dict(self.conf, runtimeConfig={"io.kubernetes.cri.pod-annotations": annotations})
        pod = {"name": name, "ns": ns, "cid": cid, "args": args, "conf": conf}
        self.pods.append(pod)
        t0 = time.monotonic()
        r = cni("netmeta", "ADD", conf, container_id=cid, netns=f"/var/run/netns/{ns}", args=args)
        took = (time.monotonic() - t0) * 1000
        if not r.ok:
            print(f"  refused: code {r.out['code']}: {r.out['msg']} {r.out.get('details', '')}")
            return None
        with open(f"{self.root}/status/default/{name}/{puid}_{cid}.json") as f:   # meta/statusfile.py
            status = json.load(f)
        for s in status:
            extra = ""
            if "device-info" in s:
                pci = s["device-info"]["pci"]["pci-address"]
                extra = f"  PCI {pci}" + self.vf_line(pci)
            print(f"  {s['interface']:6} {', '.join(s.get('ips', [])) or '-':15} {s.get('mac', ''):17}  "
                  f"network {s['name']}{extra}")
        print(f"  {DIM}({took:.0f} ms through the daemon){OFF}")
        self.availability()
        return pod

    def vf_line(self, pci):
        st = json.loads(netmeta("status", "--config", self.daemon.cfg_path, "-o", "json"))
        for pf in st["pfs"]:
            for v in pf["vfs"]:
                if v["pci"] == pci:
                    return f"  = {pf['pf']} VF {v['vf']}, VLAN {v['vlan']} QoS {v['qos']}, max tx {v['maxTxRate']} Mbps"
            rec = pf.get("pfRecord") or {}
            if rec.get("pci") == pci:
                return f"  = the whole PF {pf['pf']}"
        return ""

    def ping(self, n, a, b):
        step(n, f"connectivity: {a['name']} -> {b['name']} over the default network")
        ip = json.loads(sh("ip", "-n", b["ns"], "-j", "addr", "show", "eth0"))[0]["addr_info"][0]["local"]
        out = sh("ip", "netns", "exec", a["ns"], "ping", "-c", "2", "-W", "2", ip, check=False)
        print("  " + "\n  ".join(out.strip().splitlines()[-2:]))

    def refused(self, n):
        print(f"\n{DIM}a pod asking for a VLAN outside the network's policy is refused, and nothing is left behind:{OFF}")
        self.add_pod(n, "pod-x", {"k8s.v1.cni.cncf.io/networks": json.dumps([{"name": "sriov-a", "ips": ["10.56.0.9/24"]}]),
                                  "networks-sriov-vlan": "300"})

    # ---------- teardown ----------
    def teardown(self, n):
        step(n, "teardown: DEL every pod (as the runtime would), then check every VF")
        for pod in reversed(self.pods):
            r = cni("netmeta", "DEL", pod["conf"], container_id=pod["cid"], netns=f"/var/run/netns/{pod['ns']}",
                    args=pod["args"])
            print(f"  DEL {pod['name']}: {'ok' if r.ok else r.stdout.decode()}")
            sh("ip", "netns", "del", pod["ns"], check=False)
        self.pods.clear()
        if self.daemon:
            self.availability()
            print(netmeta("status", "--config", self.daemon.cfg_path))
            st = json.loads(netmeta("status", "--config", self.daemon.cfg_path, "-o", "json"))
            clean = all(v["container"] is None and not v["vlan"] and not v["maxTxRate"] and v["hostName"]
                        for pf in st["pfs"] for v in pf["vfs"]) and not any(pf.get("pfAttached") for pf in st["pfs"])
            print(f"  {'every VF is back in the host, unallocated, VLAN 0, no rate limit' if clean else 'NOT CLEAN'}")
            return clean
        return True

    def cleanup(self):
        for pod in self.pods:
            cni("netmeta", "DEL", pod["conf"], container_id=pod["cid"], netns=f"/var/run/netns/{pod['ns']}", args=pod["args"])
            sh("ip", "netns", "del", pod["ns"], check=False)
        if self.daemon:
            self.daemon.stop()
        for pf in self.frags:
            subprocess.run([f"{REPO}/.venv/bin/netmeta", "sim", "destroy", "--pf", pf, "--root", f"{self.root}/sys"],
                           capture_output=True)
        sh("ip", "link", "del", BRIDGE, check=False)
        shutil.rmtree(self.root, ignore_errors=True)


def main() -> int:
    if os.geteuid() != 0:
        print("the demo creates network namespaces and links: run it as root", file=sys.stderr)
        return 1
    signal.signal(signal.SIGTERM, lambda *a: (_ for _ in ()).throw(KeyboardInterrupt()))
    d = Demo()
    ok = False
    try:
        d.nics()
        d.networks()
        d.start_daemon()
        a = d.add_pod(4, "pod-a", {})
        b = d.add_pod(5, "pod-b", {"k8s.v1.cni.cncf.io/networks": json.dumps([{"name": "sriov-a", "ips": ["10.56.0.7/24"]}]),
                                   "networks-sriov-vlan": "120", "networks-sriov-txrate": "500"})
        d.add_pod(6, "pod-c", {"k8s.v1.cni.cncf.io/networks": json.dumps([{"name": "whole-pf", "ips": ["10.57.0.5/24"]}])})
        step(7, "`netmeta status`: who has which VF")
        print(netmeta("status", "--config", d.daemon.cfg_path))
        if a and b:
            d.ping(8, a, b)
        d.refused(9)
        ok = d.teardown(10)
    except KeyboardInterrupt:
        print("\ninterrupted: cleaning up", file=sys.stderr)
    finally:
        d.cleanup()
    print(f"\n{BOLD}demo {'done' if ok else 'FAILED'}{OFF}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
