"""The image tier (opt-in: NETMETA_IMAGE_TIER=1; the first run debootstraps a base and builds the
image, minutes): conf/Containerfile built on a local Debian base, then the DaemonSet's own
commands, mounts and security contexts (read from conf/daemonset.yaml and conf/configmap.yaml)
run with podman in a throw-away network namespace (hostNetwork) with throw-away host
directories: install, health/readiness/metrics, ADD/CHECK/DEL from the "host" through the
installed shim, then stop: install removes what it wrote.

Kubernetes-free: the shipped daemon.yaml without its kubeconfig (install writes none without
KUBERNETES_SERVICE_HOST). Everything else is shipped as is, hostRoot included: the cluster
network (Debian's bridge + host-local) runs chrooted in the machine's root."""
import json
import os
import shutil
import subprocess
import time

import pytest
import yaml

from tests.cnirun import DEBIAN_CNI, ip_json
from tests.runtime import imagetier
from tests.runtime.podman import Podman, available

pytestmark = pytest.mark.skipif(os.environ.get("NETMETA_IMAGE_TIER") != "1",
                                reason="image tier: set NETMETA_IMAGE_TIER=1 (debootstrap + image build)")


@pytest.fixture(scope="module")
def pm(tmp_path_factory):
    why = available() or (None if shutil.which("debootstrap") else "needs debootstrap")
    if why:
        pytest.skip(f"image tier: {why}")
    p = Podman(str(tmp_path_factory.mktemp("podman")), [DEBIAN_CNI],
               graphroot=os.path.join(imagetier.CACHE, "storage"), driver="overlay")
    yield p
    p.run("rm", "-af", "-t", "0", check=False)
    shutil.rmtree(p.work, ignore_errors=True)


@pytest.fixture(scope="module")
def image(pm):
    ref = imagetier.build(pm, {})
    size = imagetier.image_size(pm, ref)
    print(f"\nimage {ref}: {size / 1e6:.1f} MB")
    return ref


def wait(cond, what, timeout=120.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.2)
    raise AssertionError(f"not within {timeout:.0f}s: {what}")


def http(ns, path):
    code = ("import urllib.request,urllib.error,sys\ntry:\n r=urllib.request.urlopen('http://127.0.0.1:9641%s',timeout=3)"
            "\n print(r.status); sys.stdout.write(r.read().decode())\nexcept urllib.error.HTTPError as e: print(e.code)"
            "\nexcept OSError: print(0)" % path)
    out = subprocess.run(["ip", "netns", "exec", ns, "/usr/bin/python3", "-c", code], capture_output=True, text=True).stdout
    status, _, body = out.partition("\n")
    return int(status or 0), body


def files(d):
    return sorted(os.path.relpath(os.path.join(r, f), d) for r, ds, fs in os.walk(d) for f in fs + [x for x in ds
                  if os.path.islink(os.path.join(r, x))])


def test_image_runs_the_daemonset(pm, image, tmp_path, uid):
    ds, cm = imagetier.manifests()
    spec = ds["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in spec["volumes"]}
    (install,) = spec["initContainers"]
    daemon = next(c for c in spec["containers"] if c["name"] == "daemon")
    T = str(tmp_path / "host")
    host = {p: T + p for p in imagetier.THROWAWAY}
    for p in imagetier.THROWAWAY:
        if p.endswith(".lock"):
            os.makedirs(os.path.dirname(T + p), exist_ok=True)
            open(T + p, "w").close()
        else:
            os.makedirs(T + p, exist_ok=True)
    # the ConfigMap, mounted at /etc/netmeta; Kubernetes-free: no kubeconfig
    cfgdir = tmp_path / "config"
    cfgdir.mkdir()
    dcfg = yaml.safe_load(cm["data"]["daemon.yaml"])
    dcfg.pop("kubeconfig")
    (cfgdir / "daemon.yaml").write_text(yaml.safe_dump(dcfg))
    (cfgdir / "netmeta.conf").write_text(cm["data"]["netmeta.conf"])
    host["config"], host["tmp"] = str(cfgdir), str(tmp_path / "install-tmp")
    os.makedirs(host["tmp"])
    # the cluster's own network, as flannel or Calico would have installed it
    primary = {"cniVersion": "1.0.0", "name": "clusternet", "plugins": [
        {"type": "bridge", "bridge": f"nmi{uid}", "isGateway": True,
         "ipam": {"type": "host-local", "subnet": "10.99.0.0/24", "dataDir": str(tmp_path / "host-local")}}]}
    with open(os.path.join(host["/etc/cni/net.d"], "10-clusternet.conflist"), "w") as f:
        json.dump(primary, f)
    node_ns, pod_ns = f"nmin{uid}", f"nmip{uid}"
    subprocess.run(["ip", "netns", "add", node_ns], check=True)
    subprocess.run(["ip", "netns", "add", pod_ns], check=True)
    subprocess.run(["ip", "-n", node_ns, "link", "set", "lo", "up"], check=True)
    net = ["--network", f"ns:/var/run/netns/{node_ns}"] + (["--pid", "host"] if spec.get("hostPID") else [])
    names = [f"nmi-install-{uid}", f"nmi-daemon-{uid}"]
    try:
        pm.run("run", "-d", "--name", names[0], *net, *imagetier.podman_args(install, volumes, host),
               image, *install["command"])
        wait(lambda: os.path.exists(os.path.join(host["/etc/cni/net.d"], "00-netmeta.conflist")), "install",
             timeout=60)
        assert pm.run("exec", names[0], "test", "-e", "/tmp/netmeta-installed", check=False).returncode == 0
        installed = files(host["/opt/cni/bin"])
        assert {"netmeta", "sriov", "fixipam"} <= set(installed), installed

        pm.run("run", "-d", "--name", names[1], *net, "-e", f"NODE_NAME=node-{uid}",
               *imagetier.podman_args(daemon, volumes, host), image, *daemon["command"])
        wait(lambda: http(node_ns, "/readyz")[0] == 200,
             lambda: pm.run("logs", names[1], check=False).stderr[-2000:])
        assert http(node_ns, "/healthz")[0] == 200

        with open(os.path.join(host["/etc/cni/net.d"], "00-netmeta.conflist")) as f:
            conflist = json.load(f)
        conf = dict(conflist["plugins"][0], name=conflist["name"], cniVersion=conflist["cniVersion"])
        env = {"CNI_CONTAINERID": f"img{uid}", "CNI_NETNS": f"/var/run/netns/{pod_ns}", "CNI_IFNAME": "eth0",
               "CNI_PATH": f"/opt/cni/bin:{DEBIAN_CNI}",
               "CNI_ARGS": f"IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=img-{uid}"}
        r = imagetier.cni_call(T, node_ns, dict(env, CNI_COMMAND="ADD"), json.dumps(conf).encode())
        assert r.returncode == 0, (r.stdout, r.stderr, pm.run("logs", names[1], check=False).stderr[-3000:])
        result = json.loads(r.stdout)
        assert result["ips"][0]["address"].startswith("10.99.0.")
        assert [l["ifname"] for l in ip_json("link", "show", "dev", "eth0", netns=pod_ns)] == ["eth0"]
        assert ip_json("link", "show", f"nmi{uid}", netns=node_ns)     # the bridge: in the node's netns
        conf_check = dict(conf, prevResult=result)
        r = imagetier.cni_call(T, node_ns, dict(env, CNI_COMMAND="CHECK"), json.dumps(conf_check).encode())
        assert r.returncode == 0, (r.stdout, r.stderr)
        status, metrics = http(node_ns, "/metrics")
        assert status == 200 and 'netmeta_cni_requests_total{code="0",command="ADD"' in metrics, metrics[-1500:]
        r = imagetier.cni_call(T, node_ns, dict(env, CNI_COMMAND="DEL"), json.dumps(conf).encode())
        assert r.returncode == 0, (r.stdout, r.stderr)
        assert [l["ifname"] for l in ip_json("link", "show", netns=pod_ns)] == ["lo"]

        # stop as the kubelet does: the daemon first, then the install sidecar, which cleans up
        pm.run("stop", "-t", "30", names[1])
        pm.run("stop", "-t", "30", names[0], check=False)
        wait(lambda: pm.run("inspect", "--format", "{{.State.Status}}", names[0]).stdout.strip() == "exited",
             lambda: pm.run("logs", names[0], check=False).stderr[-2000:], timeout=60)
        assert files(host["/opt/cni/bin"]) == [], pm.run("logs", names[0], check=False).stderr[-2000:]
        assert files(host["/etc/cni/net.d"]) == ["10-clusternet.conflist"]
        assert not os.path.exists(os.path.join(host["/run/netmeta"], "netmeta.sock"))
    finally:
        for n in names:
            pm.run("rm", "-f", "-t", "0", n, check=False)
        for ns in (pod_ns, node_ns):
            subprocess.run(["ip", "netns", "del", ns], check=False)
