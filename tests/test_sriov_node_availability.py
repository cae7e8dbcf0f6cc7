"""Node VF availability wherever `sriov` runs: the stand-alone plugin's calls reach the daemon's
publisher, and the daemon counts the PFs its networks use with no PF listed in its config."""
import json
import os

from tests.cnirun import cni
from tests.daemonproc import DaemonProc
from tests.kubeapi import KubeAPIServer, objects
from tests.polling import wait_for

SEED_IPAM = {"type": "fixipam", "subnet": "10.55.206.0/26", "routes": [{"dst": "0.0.0.0/0"}],
             "gateway": "10.55.206.1"}


def test_vfcount_follows_standalone_seed_calls_without_a_pf_list(tmp_path, nic, netns, uid, data_dir):
    api = KubeAPIServer(objects=[objects.node("node1")]).start()
    d = DaemonProc(tmp_path / "d", kubeconfig=api.kubeconfig(str(tmp_path / "kc")), nodeName="node1",
                   coalesceWindow=0.1, minPublishInterval=0)
    assert "pfs" not in d.cfg

    def node():
        m = api.get("nodes", "node1")["metadata"]
        return ((m.get("annotations") or {}).get("sriov/vfCount"),
                (m.get("labels") or {}).get("sriov/freeVFAvailable"))
    env = {"NETMETA_SOCKET": d.socket}
    # the seed's VF example, verbatim but for the sim's fragment: no cniVersion, CNI_ARGS VF=/MAC=
    conf = {"name": "mynet", "type": "sriov", "master": nic["master"], "ipam": dict(SEED_IPAM, dataDir=data_dir),
            **{k: v for k, v in nic.items() if k != "master"}}
    nss = [netns(), netns()]
    args = ["IgnoreUnknown=1;IP=10.55.206.46;VF=1;MAC=66:d8:02:77:aa:aa", "IgnoreUnknown=1;IP=10.55.206.47"]
    try:
        os.makedirs(d.dir, exist_ok=True)
        d.start()
        api.wait_for(lambda: node() == ("0", None), timeout=20)   # no PF known yet: nothing free
        r = cni("sriov", "ADD", conf, container_id=f"a{uid}", netns=f"/var/run/netns/{nss[0]}", args=args[0],
                extra_env=env)
        assert r.ok and "ip4" in r.out, r.stdout
        assert f"counting PF {nic['master']}" in d.log()    # served by the daemon, which learnt the PF
        api.wait_for(lambda: node() == ("7", "true"), timeout=20)
        detail = json.loads(api.get("nodes", "node1")["metadata"]["annotations"]["sriov/vfDetail"])
        assert detail[nic["master"]]["allocated"] == 1 and detail[nic["master"]]["total"] == 8
        r2 = cni("sriov", "ADD", conf, container_id=f"b{uid}", netns=f"/var/run/netns/{nss[1]}", args=args[1],
                 extra_env=env)
        assert r2.ok, r2.stdout
        api.wait_for(lambda: node() == ("6", "true"), timeout=20)
        for cid, ns, a in ((f"a{uid}", nss[0], args[0]), (f"b{uid}", nss[1], args[1])):
            assert cni("sriov", "DEL", conf, container_id=cid, netns=f"/var/run/netns/{ns}", args=a,
                       extra_env=env).ok
        api.wait_for(lambda: node() == ("8", "true"), timeout=20)
    finally:
        d.stop()
        api.stop()


def _status(path):
    try:
        with open(path) as f:
            st = json.load(f)
    except (OSError, ValueError):
        return None
    return st["annotations"].get("sriov/vfCount"), json.loads(st["annotations"].get("sriov/vfDetail", "{}"))


def test_discovered_pfs_and_a_vanished_pf_is_reported(tmp_path, nic):
    """discoverPFs: every PF under the sysfs root with sriov_totalvfs > 0 whose name matches;
    a PF that vanishes later stays listed with the reason, not silently 0 of 0."""
    from tests import simnic
    status = str(tmp_path / "status.json")
    disc = {"sysfsRoot": nic["sysfsRoot"], "backend": "sim", "stateDir": nic["stateDir"]}
    excluded = DaemonProc(tmp_path / "x", statusFile=status, reconcilePeriod=0.5,
                          discoverPFs=dict(disc, include=["*"], exclude=[nic["master"]]))
    os.makedirs(excluded.dir, exist_ok=True)
    excluded.start()
    try:
        wait_for(lambda: (_status(status) or (None,))[0] == "0")
        assert _status(status)[1] == {}
    finally:
        excluded.stop()
    os.remove(status)
    d = DaemonProc(tmp_path / "d", statusFile=status, reconcilePeriod=0.5,
                   discoverPFs=dict(disc, include=[nic["master"][:3] + "*"]))
    os.makedirs(d.dir, exist_ok=True)
    d.start()
    try:
        wait_for(lambda: (_status(status) or (None,))[0] == "8")
        assert _status(status)[1][nic["master"]]["total"] == 8
        simnic.destroy(nic)   # the PF vanishes
        wait_for(lambda: "error" in (_status(status) or (None, {}))[1].get(nic["master"], {}))
        count, detail = _status(status)
        assert count == "0" and detail[nic["master"]]["error"]
    finally:
        d.stop()


def test_discover_pfs_config_is_validated():
    import pytest

    from cni.errors import CNIError
    from meta.daemon import config as daemonconfig
    ok = daemonconfig.load(None, {"discoverPFs": {"sysfsRoot": "/sys", "include": ["ens*"]}})
    assert ok.discover_pfs == {"sysfsRoot": "/sys", "include": ["ens*"]}
    for bad, field in (({"include": "ens*"}, "discoverPFs.include"), ({"sysfsRoot": "sys"}, "discoverPFs.sysfsRoot"),
                       ({"backend": "x"}, "discoverPFs.backend"), ({"pfs": 1}, "discoverPFs"), ([], "discoverPFs")):
        with pytest.raises(CNIError) as e:
            daemonconfig.load(None, {"discoverPFs": bad})
        assert e.value.code == 7 and field in e.value.msg


def _settings(tmp_path, doc) -> str:
    import yaml
    p = tmp_path / "settings.yaml"
    p.write_text(yaml.safe_dump(doc))
    return str(p)


def test_node_settings_sections_by_name_then_label(tmp_path):
    import pytest

    from cni.errors import CNIError
    from meta.daemon import nodesettings
    doc = {"nodes": {"w7": {"pfs": [{"master": "ens1f0"}]}},
           "labels": {"nic=cx6": {"discoverPFs": {"include": ["ens2f*"]}}, "nic=e810": {"pfs": [{"master": "x"}]}}}
    path = _settings(tmp_path, doc)
    assert nodesettings.section(nodesettings.load(path), "w7", {"nic": "cx6"}) == ("nodes.w7", doc["nodes"]["w7"])
    assert nodesettings.section(nodesettings.load(path), "w8", {"nic": "cx6"})[0] == "labels.nic=cx6"
    assert nodesettings.section(nodesettings.load(path), "w8", {"nic": "other"}) == ("", {})
    pfs, disc = nodesettings.apply(path, "w7", {}, [{"master": "a"}], {"include": ["*"]})
    assert pfs == [{"master": "a"}, {"master": "ens1f0"}] and disc == {"include": ["*"]}
    for bad in ({"nodes": {"w": {"vlan": 1}}}, {"labels": {"nolabel": {}}}, {"nodes": {"w": {"pfs": [{}]}}},
                {"other": {}}):
        with pytest.raises(CNIError) as e:
            nodesettings.load(_settings(tmp_path, bad))
        assert e.value.code == 7, e.value.msg
    with pytest.raises(CNIError):
        nodesettings.load(str(tmp_path / "missing.yaml"))


def test_node_settings_by_label_from_the_api(tmp_path, nic):
    """One settings file for the cluster: this node's label picks its section (its PF)."""
    api = KubeAPIServer(objects=[objects.node("node1", labels={"netmeta.io/nic": "sim"})]).start()
    pf = {k: nic[k] for k in ("master", "sysfsRoot", "backend", "stateDir")}
    path = _settings(tmp_path, {"nodes": {"node2": {"pfs": [dict(pf, master="nope")]}},
                                "labels": {"netmeta.io/nic=sim": {"pfs": [pf]}}})
    d = DaemonProc(tmp_path / "d", kubeconfig=api.kubeconfig(str(tmp_path / "kc")), nodeName="node1",
                   nodeSettings=path)
    try:
        os.makedirs(d.dir, exist_ok=True)
        d.start()
        api.wait_for(lambda: (api.get("nodes", "node1")["metadata"].get("annotations") or {})
                     .get("sriov/vfCount") == "8", timeout=20)
        assert "using section labels.netmeta.io/nic=sim" in d.log()
    finally:
        d.stop()
        api.stop()


def test_node_settings_by_name_without_kubernetes(tmp_path, nic):
    status = str(tmp_path / "status.json")
    disc = {"sysfsRoot": nic["sysfsRoot"], "backend": "sim", "stateDir": nic["stateDir"], "include": [nic["master"]]}
    path = _settings(tmp_path, {"nodes": {"node7": {"discoverPFs": disc}}})
    d = DaemonProc(tmp_path / "d", statusFile=status, nodeName="node7", nodeSettings=path)
    try:
        os.makedirs(d.dir, exist_ok=True)
        d.start()
        wait_for(lambda: (_status(status) or (None,))[0] == "8")
    finally:
        d.stop()
    bad = DaemonProc(tmp_path / "b", statusFile=status, nodeName="node7", nodeSettings=str(tmp_path / "none.yaml"))
    os.makedirs(bad.dir, exist_ok=True)
    import pytest
    with pytest.raises(RuntimeError) as e:   # refuses to start half-configured, and says why
        bad.start()
    assert "nodeSettings" in str(e.value)


def test_pfs_named_by_nads_are_counted_before_any_pod(tmp_path, nic):
    """The daemon's NAD watch cache names the PF (a NAD of the SR-IOV network): counted at once;
    a NAD naming a PF this node does not have is not reported."""
    pf = {k: nic[k] for k in ("master", "sysfsRoot", "backend", "stateDir")}
    sriov_nad = objects.nad("sriov-a", "default", config={"cniVersion": "1.0.0", "name": "sriov-a", "type": "sriov", **pf})
    other = objects.nad("sriov-b", "default", config={"cniVersion": "1.0.0", "name": "sriov-b",
                                                      "plugins": [{"type": "sriov", **dict(pf, master="elsewhere0")}]})
    api = KubeAPIServer(objects=[objects.nad_crd(), objects.node("node1")]).start()
    api.create(sriov_nad)
    api.create(other)
    d = DaemonProc(tmp_path / "d", kubeconfig=api.kubeconfig(str(tmp_path / "kc")), nodeName="node1",
                   reconcilePeriod=0.5)
    try:
        os.makedirs(d.dir, exist_ok=True)
        d.start()
        api.wait_for(lambda: (api.get("nodes", "node1")["metadata"].get("annotations") or {})
                     .get("sriov/vfCount") == "8", timeout=20)
        detail = json.loads(api.get("nodes", "node1")["metadata"]["annotations"]["sriov/vfDetail"])
        assert set(detail) == {nic["master"]}
    finally:
        d.stop()
        api.stop()
