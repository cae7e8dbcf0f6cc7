"""The netmeta meta plugin through the CNI protocol, in real namespaces, against the test
Kubernetes API server over TLS (netmeta's own client, cni/kube/client.py): cluster default
network (Debian bridge + host-local), SR-IOV attachments on the simulated NIC with fixipam,
pod overrides within policy, rollback, DEL from the cache, namespace isolation, API calls."""
import json
import os
import subprocess
import uuid

import pytest
import yaml

from tests import cniversions
from tests.cnirun import DEBIAN_CNI, cni, ip_json
from tests.kubeapi.server import KubeAPIServer
from tests.simnic import records, snapshot

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
pytestmark = pytest.mark.skipif(not os.path.exists(f"{DEBIAN_CNI}/bridge"), reason="needs Debian CNI plugins")
NETMETA_RULES = [("get", "pods"), ("patch", "pods"), ("list", "pods"), ("watch", "pods"),
                 ("get", "network-attachment-definitions"), ("list", "network-attachment-definitions"),
                 ("watch", "network-attachment-definitions"), ("get", "nodes"), ("patch", "nodes"),
                 ("create", "events")]


@pytest.fixture(scope="module")
def api(tmp_path_factory):
    with open(os.path.join(REPO, "conf", "crd-network-attachment-definition.yaml")) as f:
        crd = yaml.safe_load(f)
    srv = KubeAPIServer(tokens={"admin-token": "*", "netmeta-token": {"user": "system:serviceaccount:kube-system:netmeta",
                                                                      "rules": NETMETA_RULES}},
                        objects=[crd])
    srv.start()
    for ns in ("team-a", "team-b", "shared"):
        srv.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
    srv.kubeconfig_path = srv.kubeconfig(str(tmp_path_factory.mktemp("kube") / "kubeconfig"), token="netmeta-token")
    yield srv
    srv.stop()


@pytest.fixture
def env(api, nic, uid, tmp_path, netns):
    """A node: netmeta config (cluster default = bridge + host-local), a sim NIC, NADs."""
    bridge = f"nmb{uid}"
    cfg = {"cniVersion": "1.0.0", "name": "netmeta", "type": "netmeta", "kubeconfig": api.kubeconfig_path,
           "cniDir": str(tmp_path / "cache"), "namespaceIsolation": True, "globalNamespaces": "shared",
           "delegates": [{"cniVersion": "1.0.0", "name": "cluster-net", "type": "bridge", "bridge": bridge,
                          "isGateway": True, "ipam": {"type": "host-local", "subnet": "10.244.9.0/24",
                                                      "dataDir": str(tmp_path / "hostlocal")}}]}
    fix = {"type": "fixipam", "subnet": "10.56.0.0/24", "gateway": "10.56.0.1", "dataDir": str(tmp_path / "fixipam")}
    sriov = dict(nic, cniVersion="1.0.0", type="sriov", capabilities={"ips": True, "mac": True}, ipam=fix,
                 podOverrides={"vlan": "100-199", "maxTxRate": 2000})
    nads = {f"sriov-a-{uid}": sriov, f"sriov-strict-{uid}": dict(sriov, podOverrides=None),
            f"broken-{uid}": dict(nic, cniVersion="1.0.0", type="sriov", vf=99)}
    nads[f"sriov-strict-{uid}"].pop("podOverrides")
    for ns in ("team-a", "shared", "team-b"):
        for name, conf in nads.items():
            api.create({"apiVersion": "k8s.cni.cncf.io/v1", "kind": "NetworkAttachmentDefinition",
                        "metadata": {"name": name, "namespace": ns,
                                     "annotations": {"k8s.v1.cni.cncf.io/resourceName": "intel.com/sriov"}},
                        "spec": {"config": json.dumps(conf)}})

    class Env:
        pass
    e = Env()
    e.api, e.nic, e.uid, e.cfg, e.tmp, e.netns_factory = api, nic, uid, cfg, tmp_path, netns
    e.bridge, e.nad = bridge, (lambda base: f"{base}-{uid}")
    yield e
    subprocess.run(["ip", "link", "del", bridge], capture_output=True)
    for ns in ("team-a", "shared", "team-b"):
        for name in nads:
            api.delete("network-attachment-definitions", name, ns)


def make_pod(e, ns="team-a", annotations=None):
    name = f"pod-{uuid.uuid4().hex[:6]}"
    obj = e.api.create({"apiVersion": "v1", "kind": "Pod",
                        "metadata": {"name": name, "namespace": ns, "annotations": annotations or {}},
                        "spec": {"nodeName": "node1", "containers": [{"name": "c", "image": "pause"}]}})
    netns = e.netns_factory()
    cid = uuid.uuid4().hex
    args = (f"IgnoreUnknown=1;K8S_POD_NAMESPACE={ns};K8S_POD_NAME={name};"
            f"K8S_POD_INFRA_CONTAINER_ID={cid};K8S_POD_UID={obj['metadata']['uid']}")
    return {"name": name, "ns": ns, "netns": netns, "path": f"/var/run/netns/{netns}", "cid": cid, "args": args}


def call(e, pod, command, conf=None, **kw):
    return cni("netmeta", command, conf or e.cfg, container_id=pod["cid"], netns=pod["path"],
               ifname="eth0", args=pod["args"], **kw)


def links(pod):
    return sorted(l["ifname"] for l in ip_json("link", "show", netns=pod["netns"]))


def leases(e):
    d = e.tmp / "hostlocal" / "cluster-net"
    return sorted(f for f in os.listdir(d) if f[0].isdigit()) if d.exists() else []


def network_status(e, pod):
    obj = e.api.get("pods", pod["name"], pod["ns"])
    raw = obj["metadata"].get("annotations", {}).get("k8s.v1.cni.cncf.io/network-status")
    return json.loads(raw) if raw else None


@pytest.mark.parametrize("ver", cniversions.ALL)
def test_pod_without_annotation_gets_cluster_default(env, ver):
    """At every CNI version of the netmeta config (its delegates keep their own, 1.0.0): the
    runtime gets the cluster network's result in that version's shape; CHECK from 0.4.0 only."""
    cfg = dict(env.cfg, cniVersion=ver)
    pod = make_pod(env)
    r = call(env, pod, "ADD", cfg)
    assert r.ok, r.stdout + r.stderr.encode()
    cniversions.assert_shape(r.out, ver)
    assert links(pod) == ["eth0", "lo"]
    ips = cniversions.addresses(r.out)
    assert len(ips) == 1 and ips[0].startswith("10.244.9.")
    st = network_status(env, pod)
    mac = ip_json("link", "show", "dev", "eth0", netns=pod["netns"])[0]["address"]
    assert st == [{"name": "cluster-net", "interface": "eth0", "ips": [ips[0].split("/")[0]], "mac": mac,
                   "default": True}]
    if ver not in cniversions.LEGACY:
        assert [i["name"] for i in r.out["interfaces"] if i.get("sandbox")] == ["eth0"]
        assert [i.get("mac") for i in r.out["interfaces"] if i.get("sandbox")] == [mac]
    chk = call(env, pod, "CHECK", dict(cfg, prevResult=r.out))
    if cniversions.allows(ver, "CHECK"):
        assert chk.ok, chk.stdout
    else:
        cniversions.assert_refused_for_version(chk, ver, "CHECK")
        assert links(pod) == ["eth0", "lo"] and len(leases(env)) == 1
    assert call(env, pod, "DEL", cfg).ok and call(env, pod, "DEL", cfg).ok
    assert leases(env) == [] and os.listdir(env.tmp / "cache") == []


@pytest.mark.parametrize("ver", cniversions.ALL)
def test_sriov_attachment_with_fixed_ip_and_network_status(env, ver):
    """At every CNI version of the netmeta config (the NADs keep 1.0.0): ADD, CHECK (0.4.0+;
    refused before, changing nothing), DEL."""
    cfg = dict(env.cfg, cniVersion=ver)
    before = snapshot(env.nic)
    net = env.nad("sriov-a")
    pod = make_pod(env, annotations={"k8s.v1.cni.cncf.io/networks": json.dumps([{"name": net, "ips": ["10.56.0.7/24"]}])})
    env.api.clear_log()
    r = call(env, pod, "ADD", cfg)
    assert r.ok, r.stdout + r.stderr.encode()
    cniversions.assert_shape(r.out, ver)
    # API calls a single ADD makes (annotations not passed by the runtime here): GET pod,
    # GET NAD, an AddedInterface Event per attachment, PATCH pod
    calls = [(x.method, x.resource) for x in env.api.requests]
    assert sorted(calls) == [("GET", "network-attachment-definitions"), ("GET", "pods"), ("PATCH", "pods"),
                             ("POST", "events"), ("POST", "events")], calls
    assert links(pod) == ["eth0", "lo", "net1"]
    net1 = ip_json("addr", "show", "dev", "net1", netns=pod["netns"])[0]
    assert [a["local"] for a in net1["addr_info"] if a["family"] == "inet"] == ["10.56.0.7"]
    # the runtime gets the cluster network's result, as from Multus; net1 is in network-status
    if ver not in cniversions.LEGACY:
        names = [i["name"] for i in r.out["interfaces"]]
        assert "eth0" in names and "net1" not in names
    assert [a.split(".")[:3] for a in cniversions.addresses(r.out)] == [["10", "244", "9"]]
    st = network_status(env, pod)
    assert [s["interface"] for s in st] == ["eth0", "net1"]
    assert st[0]["name"] == "cluster-net" and st[0]["default"] is True
    sr = st[1]
    assert sr["name"] == f"team-a/{net}" and sr["ips"] == ["10.56.0.7"] and sr["default"] is False
    assert sr["mac"] == net1["address"]
    vf0_pci = sr["device-info"]["pci"]["pci-address"]
    assert sr["device-info"]["type"] == "pci" and vf0_pci.endswith(".1")
    assert records(env.nic) == ["vf0.json"]
    vf0 = snapshot(env.nic)["table"][0]
    chk = call(env, pod, "CHECK", dict(cfg, prevResult=r.out))
    if cniversions.allows(ver, "CHECK"):
        assert chk.ok, chk.stdout
    else:
        cniversions.assert_refused_for_version(chk, ver, "CHECK")
    assert links(pod) == ["eth0", "lo", "net1"] and snapshot(env.nic)["table"][0] == vf0
    env.api.clear_log()
    assert call(env, pod, "DEL", cfg).ok
    assert env.api.requests == []            # DEL works from the cache alone
    assert snapshot(env.nic) == before and records(env.nic) == [] and leases(env) == []


def test_comma_form_and_overrides_inside_policy(env):
    net = env.nad("sriov-a")
    pod = make_pod(env, annotations={"k8s.v1.cni.cncf.io/networks": f"{net}@sriov0",
                                     "networks-sriov-vlan": "150", "networks-sriov-txrate": json.dumps({net: 1500})})
    r = call(env, pod, "ADD")
    # the comma form carries no ips: fixipam has no address -> clean error, nothing left
    assert r.rc != 0 and r.out["code"] == 112, r.out
    assert links(pod) == ["lo"] and records(env.nic) == [] and leases(env) == []
    pod2 = make_pod(env, annotations={"k8s.v1.cni.cncf.io/networks": json.dumps(
        [{"name": net, "interface": "sriov0", "ips": ["10.56.0.21/24"]}]),
        "networks-sriov-vlan": "150", "networks-sriov-txrate": json.dumps({net: 1500})})
    r = call(env, pod2, "ADD")
    assert r.ok, r.stdout
    assert "sriov0" in links(pod2)
    vf = snapshot(env.nic)["table"][0]
    assert (vf["vlan"], vf["max_tx_rate"]) == (150, 1500)
    assert call(env, pod2, "DEL").ok and snapshot(env.nic)["table"][0]["vlan"] == 0


@pytest.mark.parametrize("annots,words", [
    ({"networks-sriov-vlan": "300"}, "outside podOverrides.vlan"),
    ({"networks-sriov-txrate": "5000"}, "exceeds podOverrides.maxTxRate"),
    ({"networks-sriov-vlan": "120", "strict": True}, "set podOverrides.vlan"),
])
def test_overrides_outside_policy_fail_cleanly(env, annots, words):
    before = snapshot(env.nic)
    net = env.nad("sriov-strict" if annots.pop("strict", False) else "sriov-a")
    a = {"k8s.v1.cni.cncf.io/networks": json.dumps([{"name": net, "ips": ["10.56.0.30/24"]}]), **annots}
    pod = make_pod(env, annotations=a)
    r = call(env, pod, "ADD")
    assert r.rc != 0 and r.out["code"] == 130, r.out
    assert words in r.out["msg"] + r.out.get("details", "")
    assert links(pod) == ["lo"] and records(env.nic) == [] and leases(env) == []
    assert not os.path.exists(env.tmp / "cache") or os.listdir(env.tmp / "cache") == []
    assert snapshot(env.nic) == before and network_status(env, pod) is None


def test_failing_second_delegate_rolls_back_the_first(env):
    pod = make_pod(env, annotations={"k8s.v1.cni.cncf.io/networks": env.nad("broken")})
    r = call(env, pod, "ADD")
    assert r.rc != 0 and "vf" in r.out["msg"], r.out
    assert links(pod) == ["lo"] and leases(env) == [] and os.listdir(env.tmp / "cache") == []
    host_veths = [l["ifname"] for l in ip_json("link", "show") if l.get("master") == env.bridge]
    assert host_veths == []


def test_del_after_nad_and_pod_deleted_releases_everything(env):
    before = snapshot(env.nic)
    net = env.nad("sriov-a")
    pod = make_pod(env, annotations={"k8s.v1.cni.cncf.io/networks": json.dumps([{"name": net, "ips": ["10.56.0.8/24"]}])})
    assert call(env, pod, "ADD").ok
    env.api.delete("pods", pod["name"], pod["ns"])
    env.api.delete("network-attachment-definitions", net, pod["ns"])
    r = call(env, pod, "DEL")
    assert r.ok, r.stdout
    assert snapshot(env.nic) == before and leases(env) == [] and records(env.nic) == []
    assert sorted(os.listdir(env.tmp / "fixipam" / net)) == [".lock"]


def test_del_with_netns_gone_and_second_del_without_netns(env):
    before = snapshot(env.nic)
    pod = make_pod(env, annotations={"k8s.v1.cni.cncf.io/networks": json.dumps(
        [{"name": env.nad("sriov-a"), "ips": ["10.56.0.9/24"]}])})
    assert call(env, pod, "ADD").ok
    subprocess.run(["ip", "netns", "del", pod["netns"]], check=True)
    assert call(env, pod, "DEL").ok
    assert cni("netmeta", "DEL", env.cfg, container_id=pod["cid"], netns="", args=pod["args"]).ok
    assert snapshot(env.nic) == before and leases(env) == []


def test_corrupt_cache_is_rebuilt_from_the_api(env):
    pod = make_pod(env, annotations={"k8s.v1.cni.cncf.io/networks": json.dumps(
        [{"name": env.nad("sriov-a"), "ips": ["10.56.0.10/24"]}])})
    assert call(env, pod, "ADD").ok
    (env.tmp / "cache" / f"{pod['cid']}-eth0.json").write_text("{corrupt")
    r = call(env, pod, "DEL")
    assert r.ok, r.stdout
    assert records(env.nic) == [] and leases(env) == [] and os.listdir(env.tmp / "cache") == []


@pytest.mark.parametrize("ref,ok", [("team-b/{n}", False), ("shared/{n}", True), ("{n}", True)])
def test_namespace_isolation(env, ref, ok):
    pod = make_pod(env, annotations={"k8s.v1.cni.cncf.io/networks": json.dumps(
        [{"name": ref.format(n=env.nad("sriov-a")).split("/")[-1],
          **({"namespace": ref.split("/")[0]} if "/" in ref else {}), "ips": ["10.56.0.11/24"]}])})
    r = call(env, pod, "ADD")
    if ok:
        assert r.ok, r.stdout
        assert call(env, pod, "DEL").ok
    else:
        assert r.rc != 0 and r.out["code"] == 131 and "team-b" in r.out["msg"]
        assert links(pod) == ["lo"] and leases(env) == []


def test_annotations_from_runtime_need_no_pod_get(env):
    net = env.nad("sriov-a")
    annots = {"k8s.v1.cni.cncf.io/networks": json.dumps([{"name": net, "ips": ["10.56.0.12/24"]}])}
    pod = make_pod(env, annotations=annots)
    conf = dict(env.cfg, runtimeConfig={"io.kubernetes.cri.pod-annotations": annots})
    env.api.clear_log()
    assert call(env, pod, "ADD", conf=conf).ok
    calls = sorted((x.method, x.resource) for x in env.api.requests)
    assert calls == [("GET", "network-attachment-definitions"), ("PATCH", "pods"), ("POST", "events"),
                     ("POST", "events")], calls
    assert call(env, pod, "DEL", conf=conf).ok


def test_default_route_moves_to_the_requested_attachment(env):
    pod = make_pod(env, annotations={"k8s.v1.cni.cncf.io/networks": json.dumps(
        [{"name": env.nad("sriov-a"), "ips": ["10.56.0.13/24"], "default-route": ["10.56.0.1"]}])})
    r = call(env, pod, "ADD")
    assert r.ok, r.stdout
    defaults = ip_json("route", "show", "default", netns=pod["netns"])
    assert [(d["dev"], d["gateway"]) for d in defaults] == [("net1", "10.56.0.1")]
    st = network_status(env, pod)
    assert st[1]["gateway"] == ["10.56.0.1"]
    assert not any(rt["dst"] == "0.0.0.0/0" for rt in r.out.get("routes", []) if rt.get("gw") == "10.244.9.1")
    assert call(env, pod, "DEL").ok


def test_bad_annotation_is_a_clean_error(env):
    pod = make_pod(env, annotations={"k8s.v1.cni.cncf.io/networks": "Bad_Name"})
    r = call(env, pod, "ADD")
    assert r.rc != 0 and r.out["code"] == 7 and "Bad_Name" in r.out["msg"]
    assert links(pod) == ["lo"] and leases(env) == []
