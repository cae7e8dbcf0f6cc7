"""fixipam vs Debian `static`: ADD+DEL of one fixed address through each executable, without
the daemon (in-process) and, by default, with it (the native shim forwards): node scope, and
cluster scope (a second daemon with a kubeconfig for the test API server, tests/kubeapi, serving
the FixedIPReservation CRD from conf/). Also prints the API requests per cluster-scope ADD/DEL."""
import os
import shutil
import subprocess
import tempfile
from contextlib import ExitStack

import yaml

from bench import daemon
from bench.cnicall import call as cni  # own session + no stray daemon (see cnicall)
from bench.stats import Report, interleave, table

STATIC = "static ADD+DEL (Debian)"
NO_DAEMON = "fixipam ADD+DEL, no daemon"
FLOOR = "floor: 2 x `python3 -I -S -c pass` (the entries' interpreter)"
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def report(runs: int = 30) -> Report:
    text, res = measure(runs)
    r = res[NO_DAEMON]["median"] / res[STATIC]["median"]
    floor = res[FLOOR]["median"] / res[STATIC]["median"]
    rep = Report("fixipam vs static (IPAM only, no netns)", text,
                 f"ipam: fixipam {r:.1f}x static (two bare interpreter starts alone: {floor:.1f}x)")
    rep.target("1. fixipam without daemon / Debian static (ADD+DEL)", r, 3)
    return rep


def _api(stack: ExitStack, tmp: str):
    """The test API server with the reservation CRD and one node; its kubeconfig."""
    from tests.kubeapi import KubeAPIServer, objects
    with open(os.path.join(REPO, "conf", "crd-fixed-ip-reservation.yaml")) as f:
        crd = yaml.safe_load(f)
    api = KubeAPIServer(objects=[crd, objects.node("bench-node")]).start()
    stack.callback(api.stop)
    return api, api.kubeconfig(os.path.join(tmp, "kubeconfig"))


def run(runs: int = 60) -> str:
    return measure(runs)[0]


def _interpreter() -> str:
    """The python of the fixipam entry script's #! line (what the no-daemon call runs)."""
    with open(os.path.join(REPO, ".venv", "libexec", "netmeta", "fixipam")) as f:
        return f.readline()[2:].split()[0]


def _bare_starts():
    """What any CPython entry pays for an ADD+DEL before importing anything: two starts of
    the entries' interpreter with the entries' flags (-I -S), exec'd like a plugin."""
    argv = [_interpreter(), "-I", "-S", "-c", "pass"]

    def go():
        for _ in range(2):
            subprocess.run(argv, check=True, start_new_session=True)
    return go


def measure(runs: int) -> tuple:
    tmp = tempfile.mkdtemp(prefix="nmbench")
    try:
        with ExitStack() as stack:
            def fixconf(sub: str, **extra) -> dict:
                return {"cniVersion": "1.0.0", "name": "bench", "ipam": {
                    "type": "fixipam", "subnet": "10.99.0.0/24", "gateway": "10.99.0.1",
                    "dataDir": os.path.join(tmp, sub), **extra}}
            fix = fixconf("node", scope="node")
            sta = {"cniVersion": "1.0.0", "name": "bench", "ipam": {"type": "static"}}
            args = "IgnoreUnknown=1;IP=10.99.0.5/24"
            kargs = args + ";K8S_POD_NAMESPACE=default;K8S_POD_NAME=bench;K8S_POD_UID=u1"

            def add_del(plugin, conf, env=None, a_=args):
                def go():
                    a = cni(plugin, "ADD", conf, netns="/x", args=a_, env=env)
                    d = cni(plugin, "DEL", conf, netns="/x", args=a_, env=env)
                    assert a.ok and d.ok, (a.stdout, d.stdout)
                return go

            cases = {STATIC: add_del("static", sta), NO_DAEMON: add_del("fixipam", fix), FLOOR: _bare_starts()}
            d = daemon.start(stack)
            api = None
            if d:
                cases["fixipam ADD+DEL via daemon, node scope"] = add_del("fixipam", fix, d.env)
                api, kc = _api(stack, tmp)
                dc = daemon.start(stack, kubeconfig=kc, nodeName="bench-node", fixipamGcPeriod=3600)
                cases["fixipam ADD+DEL via daemon, cluster scope"] = add_del(
                    "fixipam", fixconf("cluster", scope="cluster"), dc.env, kargs)
                cases["fixipam ADD+DEL, no daemon, cluster scope"] = add_del(   # its own kubeconfig
                    "fixipam", fixconf("own", scope="cluster", kubeconfig=kc, nodeName="bench-node"), None, kargs)
            res = interleave(cases, runs)
            out = "fixed-IP IPAM, one address, exec'd per call\n" + table(list(res.items()), STATIC)
            if api is not None:
                api.log.clear()
                conf = fixconf("cluster", scope="cluster")
                assert cni("fixipam", "ADD", conf, netns="/x", args=kargs, env=dc.env).ok
                n_add = len(api.find(resource="fixedipreservations"))
                api.log.clear()
                assert cni("fixipam", "DEL", conf, netns="/x", args=kargs, env=dc.env).ok
                n_del = len(api.find(resource="fixedipreservations"))
                out += f"\ncluster scope: {n_add} API request(s) per ADD, {n_del} per DEL (one address)\n"
        return out, res
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    print(run())
