"""resourceName -> the kubelet's devices -> deviceID, through the netmeta executable in real
namespaces, against the test API server, the PodResources stand-in (the real v1 protocol over a
unix socket) or a kubelet checkpoint file, and the simulated NIC: NADs as the SR-IOV operator
makes them (no master), netmeta's sriov attaching the kubelet's VF, an exec'd spy delegate.

Pinned: Multus v4.1.4 pkg/k8sclient getKubernetesDelegate (one resource map per ADD; each
attachment of a resource takes the next unused device: ResourceInfo.Index), pkg/types
LoadDelegateNetConf + addDeviceIDInConfList (deviceID and pciBusID in every plugin of a
conflist), mergeCNIRuntimeConfig (runtimeConfig.deviceID for plugins declaring the capability),
delegateRuntimeConfig + pkg/multus CmdAdd (CNIDeviceInfoFile `<name>-<containerID>_<ifname>`,
CopyDeviceInfoForCNIFromDP before ADD, device-info into network-status, cleaned on DEL), and
network-attachment-definition-client v1.7 pkg/utils/cniconfig.go (the devinfo paths).
Deliberate difference: too few devices is an error naming the resource (Multus passes none)."""
import json
import os
import time
import uuid

import pytest
import yaml

from delegates.sriov.topology import Topology
from tests.cnirun import CNI_PATH, cni, ip_json
from tests.daemonproc import DaemonProc
from tests.kubeapi.server import KubeAPIServer
from tests.podresources_standin import PodResourcesServer, write_checkpoint
from tests.simnic import bind as sim_bind
from tests.simnic import records, snapshot

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SPY = """#!/bin/sh
# records what it is given per interface; passes the previous result on (a chained plugin)
case "$CNI_COMMAND" in
VERSION) echo '{"cniVersion":"1.0.0","supportedVersions":["0.4.0","1.0.0","1.1.0"]}' ;;
ADD) cat > "SPYDIR/$CNI_CONTAINERID-$CNI_IFNAME.json"
     exec /usr/bin/python3 -I -c 'import json,sys; d=json.load(open(sys.argv[1])); print(json.dumps(d.get("prevResult") or {"cniVersion": d["cniVersion"], "interfaces": [{"name": sys.argv[2], "sandbox": sys.argv[3]}]}))' "SPYDIR/$CNI_CONTAINERID-$CNI_IFNAME.json" "$CNI_IFNAME" "$CNI_NETNS" ;;
DEL) rm -f "SPYDIR/$CNI_CONTAINERID-$CNI_IFNAME.json" ;;
esac
exit 0
"""


@pytest.fixture(scope="module")
def api(tmp_path_factory):
    with open(os.path.join(REPO, "conf", "crd-network-attachment-definition.yaml")) as f:
        crd = yaml.safe_load(f)
    srv = KubeAPIServer(tokens={"admin-token": "*"}, objects=[crd])
    srv.start()
    srv.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "telco"}})
    srv.kubeconfig_path = srv.kubeconfig(str(tmp_path_factory.mktemp("kube") / "kubeconfig"), token="admin-token")
    yield srv
    srv.stop()


@pytest.fixture
def env(api, nic, uid, tmp_path, netns):
    bin_dir, spy_dir = tmp_path / "bin", tmp_path / "spy"
    bin_dir.mkdir()
    spy_dir.mkdir()
    spy = f"spy{uid}"
    (bin_dir / spy).write_text(SPY.replace("SPYDIR", str(spy_dir)))
    (bin_dir / spy).chmod(0o755)
    resource = f"intel.com/sriov_{uid}"
    sriov = {"type": "sriov", "capabilities": {"CNIDeviceInfoFile": True}, "vlan": 0, "spoofchk": "on",
             "trust": "off", "link_state": "auto", "logLevel": "info", **{k: v for k, v in nic.items() if k != "master"}}
    nad = f"vfs-{uid}"
    api.create({"apiVersion": "k8s.cni.cncf.io/v1", "kind": "NetworkAttachmentDefinition",
                "metadata": {"name": nad, "namespace": "telco", "annotations": {"k8s.v1.cni.cncf.io/resourceName": resource}},
                "spec": {"config": json.dumps({"cniVersion": "1.0.0", "name": nad, "plugins": [
                    sriov, {"type": spy, "capabilities": {"deviceID": True}}]})}})
    kubelet = PodResourcesServer(str(tmp_path / "kubelet.sock")).start()
    cfg = {"cniVersion": "1.0.0", "name": "netmeta", "type": "netmeta", "mode": "thin",
           "kubeconfig": api.kubeconfig_path, "cniDir": str(tmp_path / "cache"),
           "delegates": [{"cniVersion": "1.0.0", "name": "cluster", "type": spy}],
           "podResourcesSocket": kubelet.path, "deviceCheckpointFile": str(tmp_path / "checkpoint"),
           "deviceInfoDir": str(tmp_path / "devinfo")}

    class Env:
        pass
    e = Env()
    e.api, e.nic, e.uid, e.cfg, e.tmp, e.netns, e.kubelet = api, nic, uid, cfg, tmp_path, netns, kubelet
    e.resource, e.nad, e.spy_dir = resource, nad, spy_dir
    e.path = f"{bin_dir}:{CNI_PATH}"
    e.pci = lambda n: Topology(nic["sysfsRoot"]).vf_pci(nic["master"], n)
    yield e
    kubelet.stop()
    api.delete("network-attachment-definitions", nad, "telco")


def make_pod(e, networks):
    name = f"pod-{uuid.uuid4().hex[:6]}"
    obj = e.api.create({"apiVersion": "v1", "kind": "Pod", "metadata": {
        "name": name, "namespace": "telco", "annotations": {"k8s.v1.cni.cncf.io/networks": networks}},
        "spec": {"nodeName": "node1", "containers": [{"name": "app", "image": "dpdk"}]}})
    ns = e.netns()
    cid = uuid.uuid4().hex
    uid = obj["metadata"]["uid"]
    return {"name": name, "uid": uid, "netns": ns, "path": f"/var/run/netns/{ns}", "cid": cid,
            "args": f"IgnoreUnknown=1;K8S_POD_NAMESPACE=telco;K8S_POD_NAME={name};K8S_POD_INFRA_CONTAINER_ID={cid};K8S_POD_UID={uid}"}  # noqa: E501


def call(e, pod, command, cfg=None):
    cfg = cfg or e.cfg
    env = {"NETMETA_SOCKET": cfg["socketPath"]} if cfg.get("mode") == "daemon" else None
    return cni("netmeta", command, cfg, container_id=pod["cid"], netns=pod["path"], ifname="eth0",
               args=pod["args"], path=e.path, extra_env=env)


def spied(e, pod, ifname):
    with open(e.spy_dir / f"{pod['cid']}-{ifname}.json") as f:
        return json.load(f)


def status(e, pod, timeout=30.0):
    """network-status; the daemon writes it asynchronously (its StatusWriter): poll for it."""
    deadline = time.monotonic() + timeout
    while True:
        raw = e.api.get("pods", pod["name"], "telco")["metadata"]["annotations"].get("k8s.v1.cni.cncf.io/network-status")
        if raw or time.monotonic() > deadline:
            return json.loads(raw)
        time.sleep(0.1)


def which_vf(e, ifname):
    for f in records(e.nic):
        with open(os.path.join(e.nic["stateDir"], e.nic["master"], f)) as fh:
            rec = json.load(fh)
        if rec["ifname"] == ifname:
            return rec["vf"]
    return None


def two_vfs_in_kubelet_order(e, cfg):
    """The kubelet gave the pod VF 5 then VF 2: net1 gets VF 5, net2 VF 2."""
    before = snapshot(e.nic)
    pod = make_pod(e, f"{e.nad}, {e.nad}")
    if cfg["podResourcesSocket"] == e.kubelet.path:
        e.kubelet.set_pod("telco", pod["name"], {"app": {e.resource: [e.pci(5), e.pci(2)]}})
        e.kubelet.set_pod("telco", "other-pod", {"app": {e.resource: [e.pci(0)]}})
    else:
        write_checkpoint(cfg["deviceCheckpointFile"], [(pod["uid"], "app", e.resource, {0: [e.pci(5), e.pci(2)]}),
                                                       ("another-uid", "app", e.resource, {0: [e.pci(0)]})])
    r = call(e, pod, "ADD", cfg)
    assert r.ok, r.stdout + r.stderr.encode()
    assert sorted(l["ifname"] for l in ip_json("link", "show", netns=pod["netns"])) == ["lo", "net1", "net2"]
    assert (which_vf(e, "net1"), which_vf(e, "net2")) == (5, 2)
    pf_pci = Topology(e.nic["sysfsRoot"]).pf_pci(e.nic["master"])
    for ifname, vf in (("net1", 5), ("net2", 2)):
        seen = spied(e, pod, ifname)    # the second plugin of the conflist, exec'd
        assert seen["deviceID"] == seen["pciBusID"] == e.pci(vf)
        assert seen["runtimeConfig"]["deviceID"] == e.pci(vf)
    assert "deviceID" not in spied(e, pod, "eth0")
    st = {s["interface"]: s for s in status(e, pod)}
    for ifname, vf in (("net1", 5), ("net2", 2)):
        assert st[ifname]["name"] == f"telco/{e.nad}"
        # written by netmeta's sriov (it declares CNIDeviceInfoFile), read back by the meta plugin
        assert st[ifname]["device-info"] == {"type": "pci", "version": "1.1.0",
                                             "pci": {"pci-address": e.pci(vf), "pf-pci-address": pf_pci}}
    assert "device-info" not in st["eth0"]
    devinfo = e.tmp / "devinfo" / "cni"
    assert sorted(os.listdir(devinfo)) == sorted(f"{e.nad}-{pod['cid']}_{i}" for i in ("net1", "net2"))
    d = call(e, pod, "DEL", cfg)
    assert d.ok, d.stdout + d.stderr.encode()
    assert snapshot(e.nic) == before and records(e.nic) == [] and os.listdir(devinfo) == []
    return pod


def test_two_attachments_of_one_resource_get_the_kubelets_vfs_in_order(env):
    two_vfs_in_kubelet_order(env, env.cfg)
    assert env.kubelet.calls == ["Get"]   # one PodResources call per ADD


def test_two_attachments_via_the_daemon(env):
    """The same through `netmeta daemon` (the shim forwards; the daemon's warm gRPC channel)."""
    d = DaemonProc(env.tmp / "d", kubeconfig=env.api.kubeconfig_path)
    try:
        d.start()
        two_vfs_in_kubelet_order(env, dict(env.cfg, mode="daemon", socketPath=d.socket))
    finally:
        d.stop()
    assert env.kubelet.calls == ["Get"]


def test_checkpoint_fallback_with_the_socket_absent(env):
    cfg = dict(env.cfg, podResourcesSocket=str(env.tmp / "absent.sock"))
    two_vfs_in_kubelet_order(env, cfg)
    assert env.kubelet.calls == []


def test_device_plugin_info_is_copied_into_network_status(env):
    """A device plugin's dp/ file wins over what the delegate would write (Multus copies it first)."""
    pod = make_pod(env, env.nad)
    env.kubelet.set_pod("telco", pod["name"], {"app": {env.resource: [env.pci(4)]}})
    dp = env.tmp / "devinfo" / "dp"
    dp.mkdir(parents=True)
    info = {"type": "pci", "version": "1.1.0", "pci": {"pci-address": env.pci(4), "rdma-device": "mlx5_7"}}
    (dp / f"{env.resource.replace('/', '-')}-{env.pci(4)}-device.json").write_text(json.dumps(info))
    assert call(env, pod, "ADD").ok
    assert {s["interface"]: s for s in status(env, pod)}["net1"]["device-info"] == info
    assert call(env, pod, "DEL").ok


@pytest.mark.parametrize("devices", [[], ["one"]])
def test_pod_without_enough_devices_is_refused_naming_the_resource(env, devices):
    before = snapshot(env.nic)
    pod = make_pod(env, f"{env.nad},{env.nad}")
    env.kubelet.set_pod("telco", pod["name"], {"app": {env.resource: [env.pci(1)] if devices else [],
                                                       "other.com/res": ["x"]}})
    r = call(env, pod, "ADD")
    assert r.rc != 0 and r.out["code"] == 124, r.stdout
    assert env.resource in r.out["msg"] and (("no more device" in r.out["msg"]) == bool(devices))
    assert env.resource in r.stderr
    # nothing left: no interface, no VF taken, no DEL cache, no device-info, the cluster net not run
    assert [l["ifname"] for l in ip_json("link", "show", netns=pod["netns"])] == ["lo"]
    assert snapshot(env.nic) == before and records(env.nic) == []
    assert not os.path.exists(env.tmp / "cache") or os.listdir(env.tmp / "cache") == []
    assert not os.path.exists(env.tmp / "devinfo" / "cni") or os.listdir(env.tmp / "devinfo" / "cni") == []
    assert not any(env.spy_dir.iterdir())


def test_hand_off_rules_in_process(tmp_path):
    """meta.devices.assign on its own (no root): a conf gets deviceID + pciBusID, each plugin of a
    conflist too; two resources are counted apart; a DEL rebuild never fails on devices; a
    resourceName that is not a string is a config error."""
    from cni.request import Request
    from meta import config, devices
    from meta.attachments import Attachment
    s = PodResourcesServer(str(tmp_path / "k.sock")).start()
    try:
        s.set_pod("ns", "p", {"a": {"r/one": ["0000:01:00.1", "0000:01:00.2"], "r/two": ["0000:02:00.1"]}})
        cfg = config.load({"cniVersion": "1.0.0", "name": "n", "type": "netmeta", "delegates": [{"type": "x"}],
                           "podResourcesSocket": s.path, "deviceInfoDir": str(tmp_path / "di")})
        req = Request("ADD", container_id="cid", args={"K8S_POD_NAMESPACE": "ns", "K8S_POD_NAME": "p"})
        atts = [Attachment("ns/a", "net1", {"type": "sriov"}, resource_name="r/one"),
                Attachment("ns/b", "net2", {"name": "b", "plugins": [{"type": "sriov"}, {"type": "tuning"}]},
                           resource_name="r/two"),
                Attachment("ns/c", "net3", {"type": "sriov"}, resource_name="r/one"),
                Attachment("ns/d", "net4", {"type": "bridge"})]
        devices.assign(atts, req, cfg)
        assert [(a.conf.get("deviceID"), a.conf.get("pciBusID")) for a in (atts[0], atts[2])] == \
            [("0000:01:00.1",) * 2, ("0000:01:00.2",) * 2]
        assert [(p["deviceID"], p["pciBusID"]) for p in atts[1].conf["plugins"]] == [("0000:02:00.1",) * 2] * 2
        assert atts[1].runtime_config["CNIDeviceInfoFile"] == str(tmp_path / "di" / "cni" / "b-cid_net2")
        assert atts[3].conf == {"type": "bridge"} and atts[3].runtime_config == {}
        more = [Attachment("ns/e", f"net{i}", {"type": "sriov"}, resource_name="r/two") for i in (1, 2)]
        with pytest.raises(Exception) as ei:
            devices.assign(more, req, cfg)
        assert ei.value.code == 124 and "r/two" in ei.value.msg
        devices.assign(more, Request("DEL", args=req.args), cfg)   # rebuilding a DEL cache: no error
        with pytest.raises(Exception) as ei:
            devices.assign([Attachment("ns/f", "net1", {"type": "sriov"}, resource_name=["x"])], req, cfg)
        assert ei.value.code == 7
    finally:
        s.stop()


def test_dpdk_vf_from_the_kubelet_is_a_userspace_device_in_network_status(env):
    """The kubelet gives the pod a VF bound to vfio-pci (`netmeta sim bind`): netmeta's sriov
    applies the PF side only; network-status says which driver holds it; DEL restores."""
    bound = sim_bind(env.nic, 4, "vfio-pci")
    before = snapshot(env.nic)
    pod = make_pod(env, env.nad)
    env.kubelet.set_pod("telco", pod["name"], {"app": {env.resource: [bound["pci"]]}})
    r = call(env, pod, "ADD")
    assert r.ok, r.stdout + r.stderr.encode()
    assert [l["ifname"] for l in ip_json("link", "show", netns=pod["netns"])] == ["lo"]
    assert which_vf(env, "net1") == 4
    st = {s["interface"]: s for s in status(env, pod)}
    assert st["net1"]["device-info"]["pci"]["pci-address"] == bound["pci"]
    assert st["net1"]["device-info"]["pci"]["driver"] == "vfio-pci"
    assert spied(env, pod, "net1")["deviceID"] == bound["pci"]
    assert call(env, pod, "DEL").ok
    assert snapshot(env.nic) == before and records(env.nic) == []
    sim_bind(env.nic, 4, "net")
