"""Where the meta plugin finds networks: clusterNetwork as a file, a directory or a conf name
in confDir; NADs from a directory (Kubernetes-free mode) incl. a NAD without spec.config;
network-status to a status file; STATUS and GC."""
import json
import os
import subprocess

import pytest

from tests.cnirun import DEBIAN_CNI, cni, ip_json

pytestmark = pytest.mark.skipif(not os.path.exists(f"{DEBIAN_CNI}/bridge"), reason="needs Debian CNI plugins")


def bridge_conf(name, bridge, tmp, subnet):
    return {"cniVersion": "1.0.0", "name": name, "type": "bridge", "bridge": bridge, "isGateway": True,
            "ipam": {"type": "host-local", "subnet": subnet, "dataDir": str(tmp / "hostlocal")}}


@pytest.fixture
def bridges(uid):
    made = []
    yield lambda i: made.append(f"nms{uid}{i}") or made[-1]
    for b in made:
        subprocess.run(["ip", "link", "del", b], capture_output=True)


def base(tmp, **kw):
    return dict({"cniVersion": "1.0.0", "name": "netmeta", "type": "netmeta", "mode": "thin",
                 "cniDir": str(tmp / "cache")}, **kw)


def add_del(conf, ns, cid="c1", args="IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=p1"):
    r = cni("netmeta", "ADD", conf, container_id=cid, netns=f"/var/run/netns/{ns}", args=args)
    links = sorted(l["ifname"] for l in ip_json("link", "show", netns=ns))
    d = cni("netmeta", "DEL", conf, container_id=cid, netns=f"/var/run/netns/{ns}", args=args)
    return r, links, d


@pytest.mark.parametrize("form", ["file", "directory", "confdir-name"])
def test_cluster_network_forms(tmp_path, netns, bridges, form):
    confdir = tmp_path / "net.d"
    confdir.mkdir()
    (confdir / "10-cluster.conf").write_text(json.dumps(bridge_conf("cluster", bridges(0), tmp_path, "10.245.1.0/24")))
    ref = {"file": str(confdir / "10-cluster.conf"), "directory": str(confdir), "confdir-name": "cluster"}[form]
    r, links, d = add_del(base(tmp_path, clusterNetwork=ref, confDir=str(confdir)), netns())
    assert r.ok and d.ok, r.stdout
    assert links == ["eth0", "lo"] and r.out["ips"][0]["address"].startswith("10.245.1.")


def test_kubernetes_free_nads_status_file_and_nad_without_config(tmp_path, netns, bridges):
    confdir, nads = tmp_path / "net.d", tmp_path / "nads" / "team"
    confdir.mkdir()
    nads.mkdir(parents=True)
    # a NAD with no spec.config resolves to the conf of that name in confDir (Multus)
    (confdir / "20-side.conf").write_text(json.dumps(bridge_conf("side", bridges(1), tmp_path, "10.245.3.0/24")))
    (nads / "side.yaml").write_text("apiVersion: k8s.cni.cncf.io/v1\nkind: NetworkAttachmentDefinition\n"
                                    "metadata:\n  name: side\nspec: {}\n")
    conf = base(tmp_path, delegates=[bridge_conf("cluster", bridges(0), tmp_path, "10.245.2.0/24")],
                confDir=str(confdir), nadDir=str(tmp_path / "nads"), statusDir=str(tmp_path / "status"),
                runtimeConfig={"io.kubernetes.cri.pod-annotations": {"k8s.v1.cni.cncf.io/networks": "side"}})
    ns = netns()
    args = "IgnoreUnknown=1;K8S_POD_NAMESPACE=team;K8S_POD_NAME=web"
    r = cni("netmeta", "ADD", conf, container_id="k1", netns=f"/var/run/netns/{ns}", args=args)
    assert r.ok, r.stdout
    assert sorted(l["ifname"] for l in ip_json("link", "show", netns=ns)) == ["eth0", "lo", "net1"]
    status_file = tmp_path / "status" / "team" / "web" / "-_k1.json"   # no K8S_POD_UID: meta/statusfile.py
    assert oct(status_file.stat().st_mode & 0o777) == "0o600"
    st = json.loads(status_file.read_text())
    assert [(s["name"], s["interface"], s["default"]) for s in st] == [("cluster", "eth0", True), ("team/side", "net1", False)]
    assert cni("netmeta", "DEL", conf, container_id="k1", netns=f"/var/run/netns/{ns}", args=args).ok
    missing = dict(conf, runtimeConfig={"io.kubernetes.cri.pod-annotations": {"k8s.v1.cni.cncf.io/networks": "nope"}})
    r = cni("netmeta", "ADD", missing, container_id="k2", netns=f"/var/run/netns/{netns()}", args=args)
    assert r.rc != 0 and r.out["code"] == 132 and "nope" in r.out["msg"]
    assert "missing NetworkAttachmentDefinition team/nope" in r.stderr


def test_status_and_gc(tmp_path, netns, bridges):
    conf = base(tmp_path, cniVersion="1.1.0", delegates=[dict(bridge_conf("cluster", bridges(0), tmp_path, "10.245.4.0/24"),
                                                            cniVersion="1.0.0")],
                readinessindicatorfile=str(tmp_path / "ready"))
    st = cni("netmeta", "STATUS", conf)
    assert st.rc != 0 and st.out["code"] == 50
    (tmp_path / "ready").write_text("")
    assert cni("netmeta", "STATUS", conf).ok
    nss = [netns() for _ in range(3)]
    for i, ns in enumerate(nss):
        assert cni("netmeta", "ADD", conf, container_id=f"g{i}", netns=f"/var/run/netns/{ns}").ok
    gc = dict(conf, **{"cni.dev/valid-attachments": [{"containerID": "g1", "ifname": "eth0"}]})
    assert cni("netmeta", "GC", gc).ok
    assert sorted(os.listdir(tmp_path / "cache")) == ["g1-eth0.json"]
    assert [sorted(l["ifname"] for l in ip_json("link", "show", netns=ns)) for ns in nss] == \
        [["lo"], ["eth0", "lo"], ["lo"]]
    leases = [f for f in os.listdir(tmp_path / "hostlocal" / "cluster") if f[0].isdigit()]
    assert len(leases) == 1


@pytest.mark.parametrize("conf,field", [
    ({"logOptions": "rotate"}, "logOptions"),   # unknown keys only warn (test_multus_fidelity)
    ({"mode": "fast"}, "mode"),
    ({"namespaceIsolation": "yes"}, "namespaceIsolation"),
    ({"delegates": "x"}, "delegates"),
    ({"delegates": [], "clusterNetwork": None}, "clusterNetwork"),
    ({"cniDir": "relative"}, "cniDir"),
])
def test_invalid_config_is_refused_before_anything(tmp_path, netns, conf, field):
    c = base(tmp_path, delegates=[{"cniVersion": "1.0.0", "name": "x", "type": "bridge"}])
    c.update(conf)
    c = {k: v for k, v in c.items() if v is not None}
    ns = netns()
    r = cni("netmeta", "ADD", c, container_id="bad", netns=f"/var/run/netns/{ns}")
    assert r.rc != 0 and r.out["code"] == 7 and field in r.out["msg"], r.out
    assert [l["ifname"] for l in ip_json("link", "show", netns=ns)] == ["lo"]
