"""The node daemon and the shim: forwarding, modes when the daemon is down or dies, a root-only
socket, timeouts, metrics, graceful shutdown, start-up reconcile."""
import json
import os
import stat
import subprocess
import threading
import time

import pytest

from tests.cnirun import DEBIAN_CNI, cni, ip_json
from tests.daemonproc import DaemonProc
from tests.simnic import records, snapshot

pytestmark = pytest.mark.skipif(not os.path.exists(f"{DEBIAN_CNI}/bridge"), reason="needs Debian CNI plugins")


@pytest.fixture(autouse=True)
def _bridge_removed(uid):
    """netmeta_conf's cluster network creates the bridge nmd<uid>: remove it afterwards."""
    yield
    subprocess.run(["ip", "link", "del", f"nmd{uid}"], capture_output=True)


@pytest.fixture
def daemon(tmp_path, nic):
    d = DaemonProc(tmp_path / "d", pfs=[{k: nic[k] for k in ("master", "sysfsRoot", "backend", "stateDir")}],
                   requestTimeout=5)
    os.makedirs(d.dir, exist_ok=True)
    yield d
    d.stop()


def netmeta_conf(d, tmp, uid, mode="auto", nads=None, extra=None):
    c = {"cniVersion": "1.0.0", "name": "netmeta", "type": "netmeta", "socketPath": d.socket, "mode": mode,
         "cniDir": d.cfg["cniDir"],
         "delegates": [{"cniVersion": "1.0.0", "name": "cluster-net", "type": "bridge", "bridge": f"nmd{uid}",
                        "isGateway": True, "ipam": {"type": "host-local", "subnet": "10.244.8.0/24",
                                                    "dataDir": str(tmp / "hostlocal")}}]}
    if nads:
        c["nadDir"] = nads
    c.update(extra or {})
    return c


def sriov_pod(tmp, nic, ips="10.56.0.7/24"):
    """A Kubernetes-free pod: NAD from a directory, annotations from the runtime."""
    nad_dir = tmp / "nads" / "default"
    nad_dir.mkdir(parents=True, exist_ok=True)
    conf = dict(nic, cniVersion="1.0.0", type="sriov", capabilities={"ips": True},
                ipam={"type": "fixipam", "subnet": "10.56.0.0/24", "dataDir": str(tmp / "fixipam")})
    (nad_dir / "sriov-a.json").write_text(json.dumps(
        {"apiVersion": "k8s.cni.cncf.io/v1", "kind": "NetworkAttachmentDefinition",
         "metadata": {"name": "sriov-a"}, "spec": {"config": json.dumps(conf)}}))
    return str(tmp / "nads"), {"io.kubernetes.cri.pod-annotations": {
        "k8s.v1.cni.cncf.io/networks": json.dumps([{"name": "sriov-a", "ips": [ips]}])}}


def run(conf, ns, cid, command="ADD", **kw):
    return cni("netmeta", command, conf, container_id=cid, netns=f"/var/run/netns/{ns}", ifname="eth0",
               args=f"IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=p{cid};K8S_POD_UID=u{cid}", **kw)


def test_shim_forwards_to_the_daemon(daemon, tmp_path, nic, netns, uid):
    daemon.start()
    nads, rc = sriov_pod(tmp_path, nic)
    conf = dict(netmeta_conf(daemon, tmp_path, uid, nads=nads), runtimeConfig=rc)
    ns = netns()
    before = snapshot(nic)
    r = run(conf, ns, "c1")
    assert r.ok, r.stdout + r.stderr.encode()
    assert sorted(l["ifname"] for l in ip_json("link", "show", netns=ns)) == ["eth0", "lo", "net1"]
    assert daemon.metric("netmeta_cni_request_seconds_count", plugin="netmeta", command="ADD") == 1
    assert "added default/sriov-a on net1" in daemon.log()
    assert run(conf, ns, "c1", "DEL").ok
    assert daemon.metric("netmeta_cni_request_seconds_count", plugin="netmeta", command="DEL") == 1
    assert snapshot(nic) == before and records(nic) == []
    # the stand-alone delegates forward too
    fx = {"cniVersion": "1.0.0", "name": "fx", "ipam": {"type": "fixipam", "subnet": "10.57.0.0/24",
                                                       "dataDir": str(tmp_path / "fx")}}
    env = {"NETMETA_SOCKET": daemon.socket}
    assert cni("fixipam", "ADD", fx, netns="/x", args="IP=10.57.0.5", extra_env=env).ok
    assert cni("fixipam", "DEL", fx, netns="/x", extra_env=env).ok
    assert daemon.metric("netmeta_cni_request_seconds_count", plugin="fixipam") == 2
    # errors by code
    bad = run(dict(conf, runtimeConfig={"io.kubernetes.cri.pod-annotations": {"k8s.v1.cni.cncf.io/networks": "Bad!"}}),
              netns(), "c2")
    assert bad.out["code"] == 7
    assert daemon.metric("netmeta_cni_errors_total", plugin="netmeta", code="7") == 1


def test_socket_is_root_only(daemon):
    daemon.start()
    st = os.stat(daemon.socket)
    assert stat.S_ISSOCK(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o600 and st.st_uid == 0
    assert stat.S_IMODE(os.stat(os.path.dirname(daemon.socket)).st_mode) == 0o700
    probe = ("import socket,sys\ns=socket.socket(socket.AF_UNIX)\n"
             f"try:\n s.connect({daemon.socket!r}); print('connected')\nexcept OSError as e: print(type(e).__name__)")
    out = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "/usr/bin/python3", "-c", probe],
                         capture_output=True, text=True)
    assert out.stdout.strip() == "PermissionError", out


def test_modes_when_the_daemon_is_down(daemon, tmp_path, netns, uid):
    ns = netns()
    r = run(netmeta_conf(daemon, tmp_path, uid, mode="daemon"), ns, "d1")
    assert r.rc != 0 and r.out["code"] == 11 and "not running" in r.out["msg"]
    r = run(netmeta_conf(daemon, tmp_path, uid, mode="auto"), ns, "d1")
    assert r.ok, r.stdout
    assert run(netmeta_conf(daemon, tmp_path, uid, mode="auto"), ns, "d1", "DEL").ok


def test_daemon_killed_mid_request(daemon, tmp_path, nic, netns, uid):
    nads, rc = sriov_pod(tmp_path, nic)
    before = snapshot(nic)
    for mode, expect_ok in (("daemon", False), ("auto", True)):
        daemon.start()
        conf = dict(netmeta_conf(daemon, tmp_path, uid, mode=mode, nads=nads), runtimeConfig=rc)
        ns = netns()
        t0 = time.monotonic()
        r = run(conf, ns, f"k{mode}", extra_env={"NETMETA_DAEMON_FAULT": "meta.add.after-1"})   # the daemon dies
        assert time.monotonic() - t0 < 30
        daemon.proc.wait(10)
        if expect_ok:   # auto: the shim runs the engine itself, which first undoes the half-done ADD
            assert r.ok, r.stdout + r.stderr.encode()
            assert sorted(l["ifname"] for l in ip_json("link", "show", netns=ns)) == ["eth0", "lo", "net1"]
        else:
            assert r.rc != 0 and r.out["code"] == 11 and "broke off" in r.out["msg"]
        assert run(conf, ns, f"k{mode}", "DEL").ok or mode == "daemon"
        if mode == "daemon":   # the runtime's DEL comes once the daemon is back: start-up reconcile + DEL
            daemon.start()
            assert run(conf, ns, f"k{mode}", "DEL").ok
            daemon.stop()
    assert snapshot(nic) == before and records(nic) == []
    assert os.listdir(daemon.cfg["cniDir"]) == []


def _slow_plugin(tmp_path, seconds: int):
    """A foreign delegate `slowplug` that answers VERSION at once and ADD after `seconds`."""
    slow = tmp_path / "bin"
    slow.mkdir()
    (slow / "slowplug").write_text('#!/bin/sh\nif [ "$CNI_COMMAND" = VERSION ]; then '
                                   'echo \'{"cniVersion":"1.0.0","supportedVersions":["1.0.0"]}\'; exit 0; fi\n'
                                   f'sleep {seconds}\necho \'{{"cniVersion":"1.0.0"}}\'\n')
    (slow / "slowplug").chmod(0o755)
    return slow


def test_request_timeout_answers_try_again(daemon, tmp_path, netns, uid):
    slow = _slow_plugin(tmp_path, 8)
    daemon.cfg["requestTimeout"] = 2
    daemon.start()
    conf = netmeta_conf(daemon, tmp_path, uid, mode="daemon", extra={
        "delegates": [{"cniVersion": "1.0.0", "name": "slow", "type": "slowplug"}]})
    t0 = time.monotonic()
    r = cni("netmeta", "ADD", conf, container_id="t1", netns=f"/var/run/netns/{netns()}",
            path=f"{slow}:{DEBIAN_CNI}")
    took = time.monotonic() - t0
    assert r.rc != 0 and r.out["code"] == 11 and "did not finish" in r.out["msg"] and took < 6, (r.out, took)


def test_graceful_shutdown_finishes_in_flight(daemon, tmp_path, netns, uid):
    slow = _slow_plugin(tmp_path, 2)
    daemon.start()
    conf = netmeta_conf(daemon, tmp_path, uid, mode="daemon", extra={
        "delegates": [{"cniVersion": "1.0.0", "name": "slow", "type": "slowplug"}]})
    box = {}
    t = threading.Thread(target=lambda: box.update(r=cni("netmeta", "ADD", conf, container_id="g1",
                                                         netns=f"/var/run/netns/{netns()}",
                                                         path=f"{slow}:{DEBIAN_CNI}")))
    t.start()
    time.sleep(0.8)
    assert daemon.stop() == 0
    t.join(10)
    assert box["r"].ok, box["r"].stdout
    assert not os.path.exists(daemon.socket)


def test_startup_reconcile_reclaims_vfs_of_vanished_pods(daemon, tmp_path, nic, uid):
    nads, rc = sriov_pod(tmp_path, nic)
    before = snapshot(nic)
    ns = f"nmt{uid}boot"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    conf = dict(netmeta_conf(daemon, tmp_path, uid, mode="thin", nads=nads), runtimeConfig=rc)
    assert run(conf, ns, "r1").ok
    subprocess.run(["ip", "netns", "del", ns], check=True)     # "reboot": the pod netns is gone
    assert records(nic) == ["vf0.json"]
    daemon.start()
    assert records(nic) == [] and snapshot(nic) == before
    assert os.listdir(daemon.cfg["cniDir"]) == []
    assert "reconcile" in daemon.log()


def test_daemon_watch_caches_save_api_calls(tmp_path, nic, netns, uid):
    """With the daemon's NAD/pod watch caches warm, an ADD whose annotations come from the
    runtime costs ONE API request (the network-status PATCH); without them it costs a NAD GET."""
    import yaml

    from tests.kubeapi.server import KubeAPIServer
    with open(os.path.join(os.path.dirname(__file__), "..", "conf", "crd-network-attachment-definition.yaml")) as f:
        crd = yaml.safe_load(f)
    api = KubeAPIServer(objects=[crd]).start()
    try:
        kc = api.kubeconfig(str(tmp_path / "kubeconfig"))
        nads, rc = sriov_pod(tmp_path, nic)
        with open(os.path.join(nads, "default", "sriov-a.json")) as f:
            api.create(json.load(f), namespace="default")
        d = DaemonProc(tmp_path / "d", kubeconfig=kc, nodeName="node1")
        os.makedirs(d.dir, exist_ok=True)
        d.start()
        try:
            api.create({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "pw1", "namespace": "default",
                        "annotations": rc["io.kubernetes.cri.pod-annotations"]},
                        "spec": {"nodeName": "node1", "containers": [{"name": "c", "image": "pause"}]}})
            api.wait_for(lambda: d.metric("netmeta_api_requests_total", verb="watch") >= 2, timeout=10)
            time.sleep(0.3)
            api.clear_log()
            conf = dict(netmeta_conf(d, tmp_path, uid, mode="daemon", extra={"kubeconfig": kc}), runtimeConfig=rc)
            ns = netns()
            r = cni("netmeta", "ADD", conf, container_id="w1", netns=f"/var/run/netns/{ns}",
                    args="IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=pw1")
            assert r.ok, r.stdout
            # network-status is written before the ADD returns; an AddedInterface Event per
            # attachment (eth0, net1) follows from the daemon's event thread
            assert api.count(method="PATCH", resource="pods") == 1
            api.wait_for(lambda: api.count(method="POST", resource="events") == 2, timeout=10)
            # (node availability is published apart, for the PF the ADD used: not a per-pod cost)
            calls = sorted((x.verb, x.resource) for x in api.requests if x.verb != "watch" and x.resource != "nodes")
            assert calls == [("create", "events"), ("create", "events"), ("patch", "pods")], calls
            assert cni("netmeta", "DEL", conf, container_id="w1", netns=f"/var/run/netns/{ns}",
                       args="IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=pw1").ok
        finally:
            d.stop()
    finally:
        api.stop()


def test_node_availability_follows_every_change(tmp_path, nic, netns, uid):
    """Daemon + test API server: sriov/vfCount and the freeVFAvailable label track ADD/DEL; the
    ADD that takes the last VF removes the label within the coalescing window."""
    import yaml

    from tests.kubeapi.server import KubeAPIServer
    with open(os.path.join(os.path.dirname(__file__), "..", "conf", "crd-network-attachment-definition.yaml")) as f:
        crd = yaml.safe_load(f)
    api = KubeAPIServer(objects=[crd, {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "node1"}}]).start()
    d = DaemonProc(tmp_path / "d", kubeconfig=api.kubeconfig(str(tmp_path / "kc")), nodeName="node1",
                   pfs=[{k: nic[k] for k in ("master", "sysfsRoot", "backend", "stateDir")}], coalesceWindow=0.2)
    os.makedirs(d.dir, exist_ok=True)

    def node():
        m = api.get("nodes", "node1")["metadata"]
        return (m.get("annotations") or {}).get("sriov/vfCount"), (m.get("labels") or {}).get("sriov/freeVFAvailable")
    try:
        d.start()
        api.wait_for(lambda: node() == ("8", "true"), timeout=10)
        env = {"NETMETA_SOCKET": d.socket}
        sr = dict(nic, cniVersion="1.0.0", name="sr", type="sriov")
        nss = [netns() for _ in range(8)]
        for i in range(7):
            assert cni("sriov", "ADD", sr, container_id=f"a{i}", netns=f"/var/run/netns/{nss[i]}", ifname="net1",
                       extra_env=env).ok
        api.wait_for(lambda: node() == ("1", "true"), timeout=10)
        patches_before = api.count(method="PATCH", resource="nodes")
        t0 = time.monotonic()
        assert cni("sriov", "ADD", sr, container_id="a7", netns=f"/var/run/netns/{nss[7]}", ifname="net1",
                   extra_env=env).ok
        api.wait_for(lambda: node() == ("0", None), timeout=10)
        took = time.monotonic() - t0
        print(f"\nlabel removed {took * 1000:.0f} ms after the ADD took the last VF "
              f"({api.count(method='PATCH', resource='nodes') - patches_before} PATCH)")
        assert api.count(method="PATCH", resource="nodes") - patches_before == 1
        for i in range(8):
            assert cni("sriov", "DEL", sr, container_id=f"a{i}", netns=f"/var/run/netns/{nss[i]}", ifname="net1",
                       extra_env=env).ok
        api.wait_for(lambda: node() == ("8", "true"), timeout=10)
    finally:
        d.stop()
        api.stop()


def test_status_and_gc_cli(daemon, tmp_path, nic, netns, uid):
    daemon.start()
    nads, rc = sriov_pod(tmp_path, nic)
    rc["io.kubernetes.cri.pod-annotations"]["networks-sriov-vlan"] = "7"
    nadfile = os.path.join(nads, "default", "sriov-a.json")
    with open(nadfile) as f:
        nad = json.load(f)
    nad["spec"]["config"] = json.dumps(dict(json.loads(nad["spec"]["config"]), podOverrides={"vlan": "1-10"}))
    with open(nadfile, "w") as f:
        json.dump(nad, f)
    conf = dict(netmeta_conf(daemon, tmp_path, uid, nads=nads), runtimeConfig=rc)
    ns = netns()
    assert run(conf, ns, "s1").ok
    from tests.cnirun import VENV_BIN
    st = json.loads(subprocess.run([f"{VENV_BIN}/netmeta", "status", "--config", daemon.cfg_path, "-o", "json"],
                                   check=True, capture_output=True, text=True).stdout)
    vf0 = st["pfs"][0]["vfs"][0]
    assert (vf0["pod"], vf0["ifname"], vf0["vlan"], vf0["hostName"]) == ("default/ps1", "net1", 7, None)
    assert st["node"]["vfCount"] == 7 and st["pfs"][0]["free"] == 7
    table = subprocess.run([f"{VENV_BIN}/netmeta", "status", "--config", daemon.cfg_path], check=True,
                           capture_output=True, text=True).stdout
    assert "default/ps1" in table and "7 free of 8" in table
    daemon.stop()
    subprocess.run(["ip", "netns", "del", ns], check=True)   # the pod vanished without a DEL
    assert subprocess.run([f"{VENV_BIN}/netmeta", "gc", "--config", daemon.cfg_path], capture_output=True).returncode == 0
    assert records(nic) == [] and os.listdir(daemon.cfg["cniDir"]) == []


def test_requests_for_one_container_run_one_at_a_time_and_the_lock_table_empties():
    """The daemon's per-container lock: a second request for the same container waits for the
    first, other containers do not; an entry is kept while anyone waits on it (a third request
    arriving then still queues behind), and the table is empty once nothing is in flight
    (it used to keep a lock per container ever seen)."""
    from meta.daemon.config import DaemonConfig
    from meta.daemon.server import Daemon
    d = Daemon(DaemonConfig())
    d.start_pools()
    try:
        order, gates = [], {n: threading.Event() for n in ("a1", "a2", "a3", "b")}

        def req(cid, name):
            with d._container_lock(cid):
                order.append(f"{name} in")
                assert gates[name].wait(10)
                order.append(f"{name} out")
        threads = {n: threading.Thread(target=req, args=("ctr-a" if n[0] == "a" else "ctr-b", n))
                   for n in gates}

        def wait_for(entry):
            end = time.monotonic() + 10
            while entry not in order:
                assert time.monotonic() < end, order
                time.sleep(0.01)
        threads["a1"].start()
        wait_for("a1 in")
        threads["a2"].start()
        threads["b"].start()
        wait_for("b in")                      # another container: not held up by a1
        time.sleep(0.1)
        assert "a2 in" not in order           # same container: waits
        gates["a1"].set()
        wait_for("a2 in")
        threads["a3"].start()                 # arrives while a2 holds the same entry
        time.sleep(0.1)
        assert "a3 in" not in order
        for n in ("a2", "a3", "b"):
            gates[n].set()
        for t in threads.values():
            t.join(10)
        a = [e for e in order if e.startswith("a")]
        assert a == ["a1 in", "a1 out", "a2 in", "a2 out", "a3 in", "a3 out"]
        assert d._locks == {}
    finally:
        d.stop()


def test_the_daemon_keeps_nothing_per_request_once_answered(tmp_path, caplog):
    """Issue 19 (memory): after many requests for distinct containers, nothing of them stays in
    the daemon — no container lock entries, queued/running jobs or operations, no job held by an
    idle worker thread, and the reaper's deadline heap holds about the requests in flight (it
    used to keep every answered request, with its socket object, until its deadline)."""
    import gc
    import logging

    from cni import operation
    from meta.daemon import requests
    from meta.daemon.config import DaemonConfig
    from meta.daemon.server import Daemon
    d = Daemon(DaemonConfig(socket_path=str(tmp_path / "run" / "netmeta.sock"), max_concurrency=4))
    d.start_pools()
    prefix = "memtest" + os.urandom(4).hex()
    # pytest keeps every log record of the test, and a failed call's record holds its error
    # (with the traceback, so the request's frames): no records, as in the daemon's own handlers
    caplog.set_level(logging.CRITICAL, logger="netmeta")
    try:
        for i in range(300):
            env = {"CNI_COMMAND": "VERSION" if i % 2 else "ADD", "CNI_CONTAINERID": f"{prefix}-{i}",
                   "CNI_IFNAME": "eth0", "CNI_NETNS": "/var/run/netns/none", "CNI_PATH": "/nonexistent"}
            code, out = d.submit(env, b'{"cniVersion": "1.0.0"}' if i % 2 else b"not json")
            assert (code, bool(out)) == ((0, True) if i % 2 else (1, True)), out
        assert d._locks == {} and d._jobs == {} and d._ops == {}
        assert len(d.reaper._heap) <= requests.Reaper.COMPACT
        gc.collect()
        ours = [o for o in gc.get_objects()
                if (isinstance(o, requests.Job) and o.key[1].startswith(prefix))
                or (isinstance(o, operation.Op) and o.container_id.startswith(prefix))]
        assert ours == []
    finally:
        d.stop()
