"""`make demo`: attach "pods" (network namespaces, named as a runtime would) to a bridge
network whose IPAM is fixipam, show what each got, prove connectivity, tear down.
Cleans up after itself, also when interrupted."""
import json
import os
import secrets
import signal
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from tests.cnirun import cni  # noqa: E402

TAG = secrets.token_hex(2)
BRIDGE = f"nmdemo{TAG}"
PODS = [("pod-a", "10.250.0.10/24,fd50::10/64"), ("pod-b", "10.250.0.11/24,fd50::11/64")]


def step(msg):
    print(f"\n==> {msg}", flush=True)


def sh(*cmd, check=True):
    return subprocess.run(cmd, check=check, capture_output=True, text=True).stdout


def main() -> int:
    if os.geteuid() != 0:
        print("the demo creates network namespaces: run it as root", file=sys.stderr)
        return 1
    state = tempfile.mkdtemp(prefix="netmeta-demo-")
    conf = {"cniVersion": "1.0.0", "name": "demo-net", "type": "bridge", "bridge": BRIDGE,
            "isGateway": True,
            "ipam": {"type": "fixipam", "dataDir": state,
                     "ranges": [[{"subnet": "10.250.0.0/24", "gateway": "10.250.0.1"}],
                                [{"subnet": "fd50::/64", "gateway": "fd50::1"}]],
                     "routes": [{"dst": "0.0.0.0/0"}]}}
    made = []

    def cleanup(*_):
        step("tearing down")
        for ns, cid in reversed(made):
            r = cni("bridge", "DEL", conf, container_id=cid, netns=f"/var/run/netns/{ns}")
            print(f"  DEL {ns}: {'ok' if r.ok else r.stdout.decode()}")
            sh("ip", "netns", "del", ns, check=False)
        sh("ip", "link", "del", BRIDGE, check=False)
        left = [f for f in os.listdir(os.path.join(state, "demo-net"))
                if not f.startswith(".")] if os.path.isdir(os.path.join(state, "demo-net")) else []
        print(f"  reservations left: {left or 'none'}")
        subprocess.run(["rm", "-rf", state])
        made.clear()

    signal.signal(signal.SIGTERM, lambda *a: sys.exit(130))
    try:
        for pod, ips in PODS:
            ns, cid = f"cni-{TAG}-{pod}", f"{TAG}{pod.replace('-', '')}"
            step(f"ADD {pod}: bridge {BRIDGE} + fixipam, IP={ips}")
            sh("ip", "netns", "add", ns)
            made.append((ns, cid))
            r = cni("bridge", "ADD", conf, container_id=cid, netns=f"/var/run/netns/{ns}",
                    args=f"IgnoreUnknown=1;K8S_POD_NAME={pod};IP={ips}")
            if not r.ok:
                print(json.dumps(r.out, indent=2))
                return 1
            for ip in r.out["ips"]:
                print(f"  {r.out['interfaces'][ip['interface']]['name']}: {ip['address']} gw {ip.get('gateway', '-')}")
        step("pod-c asks for pod-a's address: refused, nothing left behind")
        ns, cid = f"cni-{TAG}-pod-c", f"{TAG}podc"
        sh("ip", "netns", "add", ns)
        made.append((ns, cid))
        r = cni("bridge", "ADD", conf, container_id=cid, netns=f"/var/run/netns/{ns}",
                args="IgnoreUnknown=1;IP=10.250.0.10")
        print(f"  exit {r.rc}: code {r.out['code']}: {r.out['msg']}")
        step("connectivity: pod-a -> pod-b over the bridge")
        out = sh("ip", "netns", "exec", made[0][0], "ping", "-c", "2", "-W", "2", "10.250.0.11", check=False)
        print("  " + "\n  ".join(out.strip().splitlines()[-2:]))
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
    finally:
        cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
