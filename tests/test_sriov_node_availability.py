"""Node VF availability wherever `sriov` runs: the stand-alone plugin's calls reach the daemon's
publisher, and the daemon counts the PFs its networks use with no PF listed in its config."""
import json
import os

from tests.cnirun import cni
from tests.daemonproc import DaemonProc
from tests.kubeapi import KubeAPIServer, objects

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


def _poll(fn, timeout=30.0):
    import time
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = fn()
        if v:
            return v
        time.sleep(0.1)
    return fn()


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
        assert _poll(lambda: (_status(status) or (None,))[0] == "0")
        assert _status(status)[1] == {}
    finally:
        excluded.stop()
    os.remove(status)
    d = DaemonProc(tmp_path / "d", statusFile=status, reconcilePeriod=0.5,
                   discoverPFs=dict(disc, include=[nic["master"][:3] + "*"]))
    os.makedirs(d.dir, exist_ok=True)
    d.start()
    try:
        assert _poll(lambda: (_status(status) or (None,))[0] == "8")
        assert _status(status)[1][nic["master"]]["total"] == 8
        simnic.destroy(nic)   # the PF vanishes
        assert _poll(lambda: "error" in (_status(status) or (None, {}))[1].get(nic["master"], {}))
        count, detail = _status(status)
        assert count == "0" and detail[nic["master"]]["error"]
    finally:
        d.stop()


def test_discover_pfs_config_is_validated():
    import pytest

    from cni.errors import CNIError
    from meta import daemonconfig
    ok = daemonconfig.load(None, {"discoverPFs": {"sysfsRoot": "/sys", "include": ["ens*"]}})
    assert ok.discover_pfs == {"sysfsRoot": "/sys", "include": ["ens*"]}
    for bad, field in (({"include": "ens*"}, "discoverPFs.include"), ({"sysfsRoot": "sys"}, "discoverPFs.sysfsRoot"),
                       ({"backend": "x"}, "discoverPFs.backend"), ({"pfs": 1}, "discoverPFs"), ([], "discoverPFs")):
        with pytest.raises(CNIError) as e:
            daemonconfig.load(None, {"discoverPFs": bad})
        assert e.value.code == 7 and field in e.value.msg
