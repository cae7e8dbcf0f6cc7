"""The stand-alone `sriov` (under upstream Multus, or as the only plugin) and the seed's pod
annotations `networks-sriov-vlan` / `networks-sriov-txrate`, against the test API server
(tests/kubeapi) with a `kubeconfig` in the sriov config: applied within the config's own
`podOverrides`, refused by default naming the setting, never applied twice after the meta plugin."""
import os

import pytest

from tests.cnirun import cni, ip_json
from tests.kubeapi import KubeAPIServer, objects
from tests.simnic import records, snapshot

NS = "default"
IPAM = {"type": "fixipam", "subnet": "10.55.206.0/26", "gateway": "10.55.206.1"}


@pytest.fixture
def api(tmp_path):
    srv = KubeAPIServer(tokens={"admin-token": "*"}).start()
    srv.kubeconfig_path = srv.kubeconfig(str(tmp_path / "kubeconfig"), token="admin-token")
    yield srv
    srv.stop()


def _conf(nic, api, data_dir, **kw):
    c = {"name": "mynet", "type": "sriov", "master": nic["master"], "kubeconfig": api.kubeconfig_path,
         "ipam": dict(IPAM, dataDir=data_dir)}
    c.update({k: v for k, v in nic.items() if k != "master"})
    c.update(kw)
    return c


def _pod_args(name, extra=""):
    return f"IgnoreUnknown=1;K8S_POD_NAMESPACE={NS};K8S_POD_NAME={name};K8S_POD_INFRA_CONTAINER_ID=x;IP=10.55.206.9" + extra


def _add(conf, ns, uid, args):
    return cni("sriov", "ADD", conf, netns=f"/var/run/netns/{ns}", ifname="net1", args=args, container_id=f"c{uid}")


def _del(conf, ns, uid, args):
    d = cni("sriov", "DEL", conf, netns=f"/var/run/netns/{ns}", ifname="net1", args=args, container_id=f"c{uid}")
    assert d.ok, d.stdout


@pytest.mark.parametrize("vlan_annot,want_vlan", [("120", 120), ('{"mynet": 150, "other-net": 7}', 150),
                                                  ('{"default/mynet": 160}', 160)])
def test_annotated_pod_gets_vlan_and_rate_within_policy(api, nic, netns, uid, data_dir, vlan_annot, want_vlan):
    api.create(objects.pod(f"p{uid}", NS, annotations={"networks-sriov-vlan": vlan_annot,
                                                       "networks-sriov-txrate": "500"}))
    before = snapshot(nic)
    ns = netns()
    conf = _conf(nic, api, data_dir, cniVersion="1.0.0", podOverrides={"vlan": "100-199", "maxTxRate": 1000})
    r = _add(conf, ns, uid, _pod_args(f"p{uid}"))
    assert r.ok, r.stdout + r.stderr.encode()
    vf0 = snapshot(nic)["table"][0]
    assert (vf0["vlan"], vf0["max_tx_rate"]) == (want_vlan, 500)
    _del(conf, ns, uid, _pod_args(f"p{uid}"))
    assert snapshot(nic) == before and records(nic) == []


@pytest.mark.parametrize("policy,annots,setting", [
    (None, {"networks-sriov-vlan": "120"}, "podOverrides.vlan"),
    (None, {"networks-sriov-txrate": "500"}, "podOverrides.maxTxRate"),
    ({"vlan": "100-110"}, {"networks-sriov-vlan": "120"}, "allowed: 100-110"),
    ({"maxTxRate": 100}, {"networks-sriov-txrate": "500"}, "maxTxRate"),
])
def test_annotated_pod_refused_by_default(api, nic, netns, uid, data_dir, policy, annots, setting):
    api.create(objects.pod(f"p{uid}", NS, annotations=annots))
    before = snapshot(nic)
    ns = netns()
    conf = _conf(nic, api, data_dir, **({"podOverrides": policy} if policy else {}))
    r = _add(conf, ns, uid, _pod_args(f"p{uid}"))
    assert r.rc != 0 and r.out["code"] == 130, r.stdout
    assert setting in r.out["msg"] + r.out.get("details", "")
    assert "ERROR" in r.stderr
    assert snapshot(nic) == before and records(nic) == []
    assert not os.path.exists(os.path.join(data_dir, "mynet", "10.55.206.9"))
    assert not any(l["ifname"] == "net1" for l in ip_json("link", "show", netns=ns))


def test_not_applied_twice_after_the_meta_plugin(api, nic, netns, uid, data_dir):
    """The meta plugin marks the sriov configs it planned (meta/attachments.py): the pod's
    annotation was applied (or refused) there, and its podOverrides removed."""
    api.create(objects.pod(f"p{uid}", NS, annotations={"networks-sriov-vlan": "120"}))
    ns = netns()
    conf = _conf(nic, api, data_dir, vlan=120, podOverridesApplied=True)   # as meta hands it over
    r = _add(conf, ns, uid, _pod_args(f"p{uid}"))
    assert r.ok, r.stdout
    assert snapshot(nic)["table"][0]["vlan"] == 120
    _del(conf, ns, uid, _pod_args(f"p{uid}"))


def test_meta_plans_mark_sriov_delegates():
    from meta.attachments import Attachment
    att = Attachment("n", "net1", {"cniVersion": "1.0.0", "name": "n", "type": "sriov", "master": "x"})
    assert att._plugin_conf(att.plugins[0], None)["podOverridesApplied"] is True
    other = Attachment("n", "net1", {"cniVersion": "1.0.0", "name": "n", "type": "bridge"})
    assert "podOverridesApplied" not in other._plugin_conf(other.plugins[0], None)


def test_vlan_arg_conflicting_with_annotation_refused(api, nic, netns, uid, data_dir):
    api.create(objects.pod(f"p{uid}", NS, annotations={"networks-sriov-vlan": "120"}))
    ns = netns()
    conf = _conf(nic, api, data_dir, podOverrides={"vlan": "100-199"})
    r = _add(conf, ns, uid, _pod_args(f"p{uid}", ";VLAN=121"))
    assert r.rc != 0 and r.out["code"] == 4 and "VLAN=121" in r.out["msg"], r.stdout
    assert records(nic) == []
    ok = _add(conf, ns, uid, _pod_args(f"p{uid}", ";VLAN=120"))   # the same value is no conflict
    assert ok.ok, ok.stdout
    _del(conf, ns, uid, _pod_args(f"p{uid}"))


def test_missing_pod_or_unreachable_api_refused(api, nic, netns, uid, data_dir):
    ns = netns()
    conf = _conf(nic, api, data_dir, podOverrides={"vlan": "100-199"})
    r = _add(conf, ns, uid, _pod_args(f"nosuch{uid}"))
    assert r.rc != 0 and r.out["code"] == 140 and f"nosuch{uid}" in r.out["msg"], r.stdout
    api.set_down(True)
    api.create(objects.pod(f"p{uid}", NS))
    r = _add(conf, ns, uid, _pod_args(f"p{uid}"))
    assert r.rc != 0 and r.out["code"] == 140, r.stdout
    assert records(nic) == []


def test_cri_pod_annotations_need_no_api(nic, netns, uid, data_dir):
    """containerd's io.kubernetes.cri.pod-annotations capability hands the annotations over."""
    ns = netns()
    conf = {"cniVersion": "1.0.0", "name": "mynet", "type": "sriov", "ipam": dict(IPAM, dataDir=data_dir),
            "podOverrides": {"vlan": "100-199"}, **nic,
            "runtimeConfig": {"io.kubernetes.cri.pod-annotations": {"networks-sriov-vlan": "130"}}}
    r = _add(conf, ns, uid, _pod_args("anything"))
    assert r.ok, r.stdout
    assert snapshot(nic)["table"][0]["vlan"] == 130
    _del(conf, ns, uid, _pod_args("anything"))
    no_pod = _add(conf, ns, uid, "IgnoreUnknown=1;IP=10.55.206.9")   # no pod identity: nothing applied
    assert no_pod.ok and snapshot(nic)["table"][0]["vlan"] == 0
    _del(conf, ns, uid, "")
