"""Pod names from any runtime, and podman's CNI backend driving netmeta.

podman 4.3's CNI backend passes only `IgnoreUnknown=1;K8S_POD_NAME=<container name>` (no
namespace; seen here: `K8S_POD_NAME=intelligent_hamilton`), and `IP=`/`MAC=` for --ip /
--mac-address. Any safe name is accepted; names are escaped where they become file names
(meta/podref.py); '/', '.', '..', control characters are still refused (code 4).

The podman tier (Debian's podman 4.3 + runc, cgroupfs, explicit ulimits, a private
configuration and storage: tests/runtime/podman.py) runs in `make test` when podman and runc are
installed (the Makefile installs them); it takes a few seconds."""
import json
import os
import subprocess

import pytest

from meta.podref import filename
from tests import stubplugins
from tests.cnirun import DEBIAN_CNI, VENV_BIN, cni, ip_json
from tests.kubeapi.server import KubeAPIServer
from tests.runtime.podman import Podman, available

# ---------------------------------------------------------------- names, without a runtime

@pytest.fixture
def node(tmp_path):
    """Thin-mode netmeta, Kubernetes-free, cluster network = a stand-in plugin that leaves a
    marker per container; network-status written to statusDir."""
    plug, marks = tmp_path / "plug", tmp_path / "marks"
    plug.mkdir()
    marks.mkdir()
    stubplugins.install(plug / "okplug", stubplugins.OKPLUG, "MARKS", marks)
    conf = {"cniVersion": "1.0.0", "name": "netmeta", "type": "netmeta", "mode": "thin",
            "cniDir": str(tmp_path / "cache"), "statusDir": str(tmp_path / "status"),
            "delegates": [{"cniVersion": "1.0.0", "name": "cluster", "type": "okplug"}]}
    return conf, str(plug), marks, tmp_path / "status"


def call(node, command, args, cid="c1"):
    conf, plug, _, _ = node
    return cni("netmeta", command, conf, container_id=cid, netns="/var/run/netns/none", args=args,
               path=f"{plug}:{VENV_BIN}")


def files_under(d):
    return sorted(os.path.relpath(os.path.join(r, f), d) for r, _, fs in os.walk(d) for f in fs)


@pytest.mark.parametrize("ns,name,want", [   # <ns>/<name>/<uid>_<cid>.json: meta/statusfile.py
    ("default", "laughing_bose", "default/laughing_bose/-_c1.json"),          # podman's generated names
    ("Team A", "My.Box", "Team%20A/My.Box/-_c1.json"),
    ("café", ".hidden", "caf%C3%A9/%2Ehidden/-_c1.json"),                      # no dot files
    ("default", "50%off~", "default/50%25off%7E/-_c1.json"),                   # escapes never collide
    ("default", "x" * 300, None),                                        # long: prefix + hash
])
def test_any_runtime_name_works_and_is_escaped_in_file_names(node, ns, name, want):
    _, _, marks, status = node
    r = call(node, "ADD", f"IgnoreUnknown=1;K8S_POD_NAMESPACE={ns};K8S_POD_NAME={name}")
    assert r.ok, r.stdout + r.stderr.encode()
    got = files_under(status)
    assert len(got) == 1 and (want is None or got == [want]), got
    assert all(len(part.encode()) <= 255 and part not in (".", "..") for part in got[0].split("/"))
    with open(status / got[0]) as f:
        assert json.load(f)[0]["name"] == "cluster"
    assert call(node, "DEL", f"IgnoreUnknown=1;K8S_POD_NAMESPACE={ns};K8S_POD_NAME={name}").ok
    assert files_under(status) == [] and os.listdir(marks) == []


def test_path_tricks_and_control_characters_are_still_refused(node):
    _, _, marks, status = node
    for key, value in [("K8S_POD_NAME", "../../escaped"), ("K8S_POD_NAME", "a/b"), ("K8S_POD_NAME", ".."),
                       ("K8S_POD_NAME", "."), ("K8S_POD_NAMESPACE", "../outside"), ("K8S_POD_NAME", "a\x1bb"),
                       ("K8S_POD_NAME", "a\x7fb"), ("K8S_POD_NAME", "y" * 1025)]:
        other = "K8S_POD_NAMESPACE=default" if key == "K8S_POD_NAME" else "K8S_POD_NAME=p"
        r = call(node, "ADD", f"IgnoreUnknown=1;{other};{key}={value}")
        assert r.rc != 0 and r.out["code"] == 4 and key in r.out["msg"], (value, r.out)
        assert not os.path.exists(status) or files_under(status) == []
        assert os.listdir(marks) == []     # refused before any delegate ran
        assert call(node, "DEL", f"IgnoreUnknown=1;{other};{key}={value}").rc in (0, 1)


def test_names_are_filenames_distinct_and_dns_names_unchanged():
    names = ["a", "A", "a.b", "a-b", "a_b", "a b", "a%20b", "a~b", ".a", "%2Ea", "x" * 300, "x" * 301,
             "x" * 150 + "~", "ü", "u\u0308"]
    escaped = [filename(n) for n in names]
    assert len(set(escaped)) == len(names)
    assert filename("pod-1.web") == "pod-1.web" and filename("kube-system") == "kube-system"
    assert all("/" not in e and not e.startswith(".") and len(e.encode()) <= 255 for e in escaped)


def test_with_an_api_the_name_is_looked_up_verbatim(node, tmp_path):
    """A name no Kubernetes pod can have is still asked for as it is (URL-quoted), and the
    API's answer (404) decides; nothing is attached."""
    conf, plug, marks, _ = node
    with KubeAPIServer(tokens={"t": "*"}) as api:
        kc = api.kubeconfig(str(tmp_path / "kubeconfig"), token="t")
        c = dict(conf, kubeconfig=kc)
        r = cni("netmeta", "ADD", c, container_id="c2", netns="/var/run/netns/none", path=f"{plug}:{VENV_BIN}",
                args="IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=laughing bose")
        assert r.rc != 0 and "default/laughing bose" in r.out["msg"], r.out
        gets = [q.path for q in api.find(method="GET", resource="pods")]
        assert gets and set(gets) == {"/api/v1/namespaces/default/pods/laughing%20bose"}, gets
    assert os.listdir(marks) == []


# ---------------------------------------------------------------- the podman tier

@pytest.fixture
def podman(tmp_path, uid):
    why = available()
    if why:
        pytest.skip(f"podman tier: {why}")
    pm = Podman(str(tmp_path / "podman"), [VENV_BIN, DEBIAN_CNI])
    pm.load_image()
    yield pm
    pm.reset()
    subprocess.run(["ip", "link", "del", f"nmp{uid}"], capture_output=True)


def netmeta_network(tmp_path, uid, name, ipam):
    """A podman network whose first (only) plugin is netmeta, thin mode, Kubernetes-free; its
    cluster network a Debian bridge with `ipam`."""
    return {"cniVersion": "1.0.0", "name": name, "plugins": [
        {"type": "netmeta", "mode": "thin", "cniDir": str(tmp_path / "cache"),
         "capabilities": {"ips": True, "mac": True},
         "delegates": [{"cniVersion": "1.0.0", "name": f"{name}-bridge", "type": "bridge", "bridge": f"nmp{uid}",
                        "isGateway": True, "ipam": ipam}]}]}


def test_podman_run_with_a_generated_name_on_a_netmeta_network(podman, tmp_path, uid):
    net = f"nmp-{uid}"
    podman.network(netmeta_network(tmp_path, uid, net, {"type": "host-local", "subnet": "10.98.7.0/24",
                                                        "dataDir": str(tmp_path / "hl")}))
    cid = podman.run("run", "-d", "--network", net, "--entrypoint", "/bin/sleep", podman.image, "300").stdout.strip()
    name = podman.run("inspect", "--format", "{{.Name}}", cid).stdout.strip()
    with open(tmp_path / "cache" / f"{cid}-eth0.json") as f:
        entry = json.load(f)
    assert entry["pod"] == {"name": name, "namespace": None, "uid": None}      # podman's own name
    assert "_" in name                                                          # e.g. laughing_bose
    addr = podman.run("exec", cid, "/bin/busybox", "ip", "-o", "-4", "addr", "show", "eth0").stdout
    assert " 10.98.7." in addr, addr
    podman.run("rm", "-f", "-t", "0", cid)
    assert os.listdir(tmp_path / "cache") == []
    assert sorted(f for f in os.listdir(tmp_path / "hl" / f"{net}-bridge") if f[0].isdigit()) == []


def test_podman_run_with_ip_reaches_fixipam(podman, tmp_path, uid):
    net = f"nmf-{uid}"
    podman.network(netmeta_network(tmp_path, uid, net, {"type": "fixipam", "subnet": "10.98.8.0/24",
                                                        "dataDir": str(tmp_path / "fix")}))
    out = podman.container(net, "/bin/busybox ip -o -4 addr show eth0", "--ip", "10.98.8.50").stdout
    assert "inet 10.98.8.50/24" in out, out
    # the reservation was released with the container (--rm); the same address works again
    out = podman.container(net, "/bin/busybox ip -o -4 addr show eth0", "--ip", "10.98.8.50").stdout
    assert "inet 10.98.8.50/24" in out, out
    # fixipam's own rules reach podman's user: outside the subnet is refused
    bad = podman.container(net, "true", "--ip", "10.98.9.5", check=False)
    assert bad.returncode != 0 and "10.98.9.5" in bad.stderr, bad.stderr
    assert os.listdir(tmp_path / "cache") == []
    assert not ip_json("link", "show", "master", f"nmp{uid}")     # no veth left on the bridge
