"""Nested calls (issue 13, item 1): a plugin the netmeta operation exec'd calls one of ours
(macvlan or bridge with `"ipam": {"type": "fixipam"}`, a foreign plugin calling our `sriov`). The
call reaches the same daemon (or the in-process fallback) while the operation holds the
container's lock: it must be served as part of that operation, never queued behind it.

Every path is driven through the real executables (the native shim as `netmeta`, `fixipam`,
`sriov`) with Debian's macvlan and bridge, in real namespaces. Waits are bounded by the daemon's
`maxWait: 1` (a request that waited more than a second for a worker or its container's lock is
refused with code 11), so "no wait past a second" is shown by every call succeeding."""
import json
import os
import subprocess
import threading

import pytest
import yaml

from tests.cnirun import DEBIAN_CNI, VENV_BIN, cni, ip_json
from tests.daemonproc import DaemonProc
from tests.simnic import records
from tests.stubplugins import CHAINSRIOV, install

pytestmark = pytest.mark.skipif(not os.path.exists(f"{DEBIAN_CNI}/macvlan"), reason="needs Debian CNI plugins")
SAMPLE = os.path.join(os.path.dirname(__file__), "..", "conf", "samples", "nad-fixipam-macvlan.yaml")


@pytest.fixture
def node(tmp_path, uid):
    """A macvlan master (a host veth end), the shipped macvlan+fixipam sample and a
    bridge+fixipam NAD in a nadDir, and a daemon bounded to one-second waits."""
    master, bridge, cluster = f"nmv{uid}a", f"nmb{uid}", f"nmd{uid}"
    subprocess.run(["ip", "link", "add", master, "type", "veth", "peer", "name", f"nmv{uid}b"], check=True)
    subprocess.run(["ip", "link", "set", master, "up"], check=True)
    # the bridges with a set MAC: else the kernel gives a bridge its lowest port's MAC, which
    # changes while pods come and go, and Debian's bridge CHECK fails "Bridge interface ... Mac
    # doesn't match" for the pods added earlier (a reference plugin's behaviour, not ours)
    for _n, (b, mac) in enumerate(((bridge, "02:00:00:67:00:01"), (cluster, "02:00:00:67:00:02"))):
        subprocess.run(["ip", "link", "add", b, "type", "bridge"], check=True)
        subprocess.run(["ip", "link", "set", b, "address", mac, "up"], check=True)
    nads = tmp_path / "nads" / "default"
    nads.mkdir(parents=True)
    with open(SAMPLE) as f:
        sample = yaml.safe_load(f)
    mv = json.loads(sample["spec"]["config"])
    mv["master"] = master
    mv["ipam"]["dataDir"] = str(tmp_path / "fixipam")
    br = {"cniVersion": "1.0.0", "name": "bridge-fixed", "type": "bridge", "bridge": bridge, "capabilities": {"ips": True},
          "ipam": {"type": "fixipam", "subnet": "10.67.0.0/24", "gateway": "10.67.0.1", "dataDir": str(tmp_path / "fixipam")}}
    for conf in (mv, br):
        (nads / f"{conf['name']}.json").write_text(json.dumps(
            {"metadata": {"name": conf["name"]}, "spec": {"config": json.dumps(conf)}}))
    d = DaemonProc(tmp_path / "d", maxConcurrency=16, maxWait=1, requestTimeout=60)
    os.makedirs(d.dir, exist_ok=True)
    try:
        yield {"daemon": d, "nads": str(tmp_path / "nads"), "tmp": tmp_path, "cluster": cluster}
    finally:
        d.stop()
        for link in (master, bridge, cluster):
            subprocess.run(["ip", "link", "del", link], capture_output=True)


def pod_conf(node, mode="daemon", networks=None, path_extra=None):
    d = node["daemon"]
    annots = {"k8s.v1.cni.cncf.io/networks": json.dumps(networks or [])}
    return {"cniVersion": "1.0.0", "name": "netmeta", "type": "netmeta", "mode": mode, "socketPath": d.socket,
            "cniDir": d.cfg["cniDir"], "nadDir": node["nads"],
            "runtimeConfig": {"io.kubernetes.cri.pod-annotations": annots},
            "delegates": [{"cniVersion": "1.0.0", "name": "cluster", "type": "bridge", "bridge": node["cluster"],
                           "isGateway": True, "ipam": {"type": "host-local", "subnet": "10.244.9.0/24",
                                                       "dataDir": str(node["tmp"] / "hostlocal")}}]}


PY_NETMETA = os.path.join(os.path.dirname(VENV_BIN), "libexec", "netmeta", "netmeta")   # `make shim`


def call(conf, command, cid, ns, path=None, env=None, plugin="netmeta"):
    kw = {"path": path} if path else {}
    return cni(plugin, command, conf, container_id=cid, netns=f"/var/run/netns/{ns}", timeout=120,
               args=f"IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=p{cid}", extra_env=env, **kw)


def addrs(ns) -> dict:
    return {l["ifname"]: sorted(a["local"] for a in l.get("addr_info", []) if a.get("scope") == "global")
            for l in ip_json("addr", "show", netns=ns)}


def reservations(node) -> list:
    root = node["tmp"] / "fixipam"
    return sorted(f"{net}/{f}" for net in os.listdir(root) for f in os.listdir(root / net)
                  if f != ".lock" and ".tmp." not in f) if root.exists() else []


def networks(i: int) -> list:
    return [{"name": "macvlan-fixed", "ips": [f"192.168.50.{10 + i}/24", f"fd00:50::{10 + i:x}/64"]},
            {"name": "bridge-fixed", "ips": [f"10.67.0.{10 + i}/24"]}]


def add_check_del(node, conf, cid, ns, i, env=None, plugin="netmeta"):
    r = call(conf, "ADD", cid, ns, env=env, plugin=plugin)
    assert r.ok, (r.stdout, r.stderr[-2000:])
    got = addrs(ns)
    assert got["net1"] == sorted([f"192.168.50.{10 + i}", f"fd00:50::{10 + i:x}"]), got
    assert got["net2"] == [f"10.67.0.{10 + i}"], got
    c = call(conf, "CHECK", cid, ns, env=env, plugin=plugin)
    assert c.ok, (c.stdout, c.stderr[-2000:])
    d = call(conf, "DEL", cid, ns, env=env, plugin=plugin)
    assert d.ok, (d.stdout, d.stderr[-2000:])
    assert sorted(addrs(ns)) == ["lo"]


def test_macvlan_and_bridge_with_fixipam_through_the_daemon(node, netns):
    """Paths 1 and 2: daemon operation -> exec'd macvlan / bridge -> our fixipam (native shim)
    -> the same daemon, which serves it under the operation's token (the shipped sample NAD)."""
    d = node["daemon"].start()
    ns = netns()
    add_check_del(node, pod_conf(node, networks=networks(0)), "n1", ns, 0)
    assert reservations(node) == []
    # the nested calls were served by the daemon, not by an in-process fallback
    assert d.metric("netmeta_cni_request_seconds_count", plugin="fixipam", command="ADD") == 2
    assert d.metric("netmeta_cni_request_seconds_count", plugin="fixipam", command="CHECK") == 2
    assert d.metric("netmeta_cni_errors_total") == 0
    # every container lock is unlocked before the answer and its file closed after it
    # (server.py _work: the last close of an unlinked file waits on the fs journal): none is left
    locks = os.path.join(os.path.dirname(d.socket), "locks")
    held = [os.readlink(f"/proc/{d.proc.pid}/fd/{fd}") for fd in os.listdir(f"/proc/{d.proc.pid}/fd")]
    assert not [h for h in held if h.startswith(locks + "/")], held
    assert os.listdir(locks) == []


def test_sixteen_pods_in_parallel_wait_no_more_than_a_second(node, netns):
    """16 pods at once (maxConcurrency 16): each operation's nested fixipam calls would otherwise
    need a worker while all 16 are busy with their parents; with maxWait 1 any such wait would be
    refused (code 11). All ADD, CHECK and DEL succeed and nothing stays reserved."""
    d = node["daemon"].start()
    nss = [netns() for _ in range(16)]
    errors = []

    def pod(i):
        try:
            add_check_del(node, pod_conf(node, networks=networks(i)), f"par{i}", nss[i], i)
        except AssertionError as e:
            errors.append((i, str(e)[:1500]))
    threads = [threading.Thread(target=pod, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    assert not any(t.is_alive() for t in threads)
    assert not errors, errors[:3]
    assert reservations(node) == []
    assert d.metric("netmeta_cni_request_seconds_count", plugin="fixipam", command="ADD") == 32
    assert d.metric("netmeta_cni_errors_total") == 0


def test_a_foreign_plugin_calling_our_sriov(node, nic, netns, tmp_path):
    """Path 3: daemon operation -> exec'd foreign plugin -> our `sriov` (native shim) -> the
    daemon: served inside the operation; DEL returns the VF."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    install(bindir / "chainsriov", CHAINSRIOV, "@@", "")
    chained = {"cniVersion": "1.0.0", "name": "chained-vf", "type": "chainsriov", "delegate": dict(nic, type="sriov")}
    (tmp_path / "nads" / "default" / "chained-vf.json").write_text(json.dumps(
        {"metadata": {"name": "chained-vf"}, "spec": {"config": json.dumps(chained)}}))
    d = node["daemon"].start()
    ns = netns()
    conf = pod_conf(node, networks=[{"name": "chained-vf"}])
    path = f"{bindir}:{VENV_BIN}:{DEBIAN_CNI}"
    r = call(conf, "ADD", "ch1", ns, path=path)
    assert r.ok, (r.stdout, r.stderr[-2000:])
    assert "net1" in addrs(ns) and records(nic) == ["vf0.json"]
    assert d.metric("netmeta_cni_request_seconds_count", plugin="sriov", command="ADD") == 1
    assert call(conf, "DEL", "ch1", ns, path=path).ok
    assert records(nic) == [] and sorted(addrs(ns)) == ["lo"]


def test_in_process_operation_with_the_daemon_up(node, netns):
    """Path 4: netmeta in-process (mode thin, run by its Python entry, as on a host without a C
    compiler) holds the container lock; macvlan's fixipam call goes to the daemon, which finds the
    operation's token in the container's lock file and serves it without the lock. (The native
    shim marks its in-process fallback NETMETA_MODE=thin, so there the nested call stays
    in-process too: path 5.)"""
    d = node["daemon"].start()
    ns = netns()
    add_check_del(node, pod_conf(node, mode="thin", networks=networks(1)), "t1", ns, 1, plugin=PY_NETMETA)
    assert d.metric("netmeta_cni_request_seconds_count", plugin="fixipam", command="ADD") == 2
    assert d.metric("netmeta_cni_errors_total") == 0
    assert reservations(node) == []


def test_in_process_operation_without_a_daemon(node, netns):
    """Path 5: no daemon: netmeta in-process holds the lock and macvlan's fixipam runs in-process
    too, joining by the token (a second lock wait would be refused after its bound)."""
    ns = netns()
    add_check_del(node, pod_conf(node, mode="auto", networks=networks(2)), "t2", ns, 2,
                  env={"NETMETA_SHIM_TIMEOUT": "3"})
    assert reservations(node) == []


def test_only_the_holders_token_skips_the_container_lock(node, netns, tmp_path):
    """The bypass is not a back door: while an operation holds a container's lock, a call for
    that container presenting another token (or none) waits for the lock like any call (here:
    refused after maxWait, 1 s, with code 11); the holder's own token (from its lock file,
    readable by root only) is served at once."""
    from tests.stubplugins import HOLDPLUG
    marks, bindir = tmp_path / "marks", tmp_path / "bin"
    marks.mkdir()
    bindir.mkdir()
    (bindir / "holdplug").write_text(HOLDPLUG.replace("MARKS", str(marks)).replace("SECONDS", "6"))
    (bindir / "holdplug").chmod(0o755)
    d = node["daemon"].start()
    ns = netns()
    conf = dict(pod_conf(node), delegates=[{"cniVersion": "1.0.0", "name": "hold", "type": "holdplug"}])
    box = {}
    t = threading.Thread(target=lambda: box.update(r=call(conf, "ADD", "tk1", ns, path=f"{bindir}:{VENV_BIN}:{DEBIAN_CNI}")))
    t.start()
    try:
        import time
        end = time.monotonic() + 30
        while not (marks / "tk1-eth0.started").exists():
            assert time.monotonic() < end
            time.sleep(0.05)
        lockfile = os.path.join(os.path.dirname(d.socket), "locks", "tk1.lock")
        with open(lockfile) as f:
            token = f.read().split()[0]
        fx = {"cniVersion": "1.0.0", "name": "fx", "ipam": {"type": "fixipam", "subnet": "10.68.0.0/24",
                                                           "dataDir": str(tmp_path / "fx")}}
        env = {"NETMETA_SOCKET": d.socket}
        for bogus in ({}, {"NETMETA_OP": "0" * 32}):
            r = cni("fixipam", "ADD", fx, container_id="tk1", netns="/x", args="IP=10.68.0.5", extra_env={**env, **bogus})
            assert r.rc == 1 and r.out["code"] == 11 and "busy" in r.out["msg"], r.out
        r = cni("fixipam", "ADD", fx, container_id="tk1", netns="/x", args="IP=10.68.0.5",
                extra_env={**env, "NETMETA_OP": token})
        assert r.ok, r.stdout
        assert cni("fixipam", "DEL", fx, container_id="tk1", netns="/x", extra_env={**env, "NETMETA_OP": token}).ok
    finally:
        t.join(60)
    assert box["r"].ok
    assert call(conf, "DEL", "tk1", ns, path=f"{bindir}:{VENV_BIN}:{DEBIAN_CNI}").ok
