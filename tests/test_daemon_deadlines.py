"""Issue 12, findings 2 and 6: a hung daemon and the shim's fallback never both run one ADD.

- The request carries the shim's deadline; a request the shim gave up on is refused (code 11)
  when the daemon gets to it, and a retry of a request still in flight joins it (it runs once).
- The shim's budget is below the kubelet's 2-minute CRI timeout (both shims), and the auto
  fallback's wait for the container lock held by a hung daemon is bounded (code 11, "hung").
The daemon is hung with SIGSTOP from outside, at a point the test chooses."""
import json
import os
import signal
import socket
import subprocess
import threading
import time

import pytest

from cni import wire
from tests.cnirun import DEBIAN_CNI, VENV_BIN, cni, ip_json
from tests.daemonproc import DaemonProc
from tests.polling import wait_for
from tests.stubplugins import HOLDPLUG

pytestmark = pytest.mark.skipif(not os.path.exists(f"{DEBIAN_CNI}/bridge"), reason="needs Debian CNI plugins")
PY_NETMETA = os.path.join(os.path.dirname(VENV_BIN), "libexec", "netmeta", "netmeta")
KUBELET_CRI_TIMEOUT = 120   # kubelet runtimeRequestTimeout default (2m0s)


@pytest.fixture
def daemon(tmp_path, uid):
    d = DaemonProc(tmp_path / "d", requestTimeout=60)
    os.makedirs(d.dir, exist_ok=True)
    yield d
    if d.proc is not None and d.proc.poll() is None:
        d.proc.send_signal(signal.SIGCONT)
    d.stop()
    subprocess.run(["ip", "link", "del", f"nmd{uid}"], capture_output=True)


def conf(d, tmp, uid, mode="auto", delegates=None, nads=None, annots=None):
    c = {"cniVersion": "1.0.0", "name": "netmeta", "type": "netmeta", "socketPath": d.socket, "mode": mode,
         "cniDir": d.cfg["cniDir"],
         "delegates": delegates or [{"cniVersion": "1.0.0", "name": "cluster", "type": "bridge", "bridge": f"nmd{uid}",
                                     "isGateway": True, "ipam": {"type": "host-local", "subnet": "10.78.0.0/24",
                                                                 "dataDir": str(tmp / "hostlocal")}}]}
    if nads:
        c["nadDir"] = nads
    if annots:
        c["runtimeConfig"] = {"io.kubernetes.cri.pod-annotations": annots}
    return c


def call(c, command, cid, ns, env=None, path=None, plugin="netmeta"):
    kw = {"path": path} if path else {}
    return cni(plugin, command, c, container_id=cid, netns=f"/var/run/netns/{ns}" if ns else "", timeout=120,
               args=f"IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=p{cid}", extra_env=env, **kw)


def eth0(ns):
    (link,) = [l for l in ip_json("addr", "show", "eth0", netns=ns)]
    return link["address"], [a["local"] for a in link["addr_info"] if a["family"] == "inet"]


def handled(d) -> float:
    """ADDs the daemon has answered: run, or refused."""
    return d.metric("netmeta_cni_request_seconds_count", command="ADD") + d.metric("netmeta_cni_errors_total", code="11")


def test_a_request_the_shim_gave_up_on_never_runs_later(daemon, tmp_path, netns, uid):
    """Finding 2: the daemon is hung (SIGSTOP) when the ADD arrives; the shim gives up after its
    budget and runs the ADD in-process (mode auto); on SIGCONT the daemon gets the request. On
    main it then ran it: the pod that got "ok" was rebuilt behind the runtime's back (eth0 with a
    new IP and MAC). Now it is refused, and the pod keeps the fallback's eth0."""
    daemon.start()
    c = conf(daemon, tmp_path, uid)
    ns = netns()
    daemon.hang()
    r = call(c, "ADD", "st1", ns, env={"NETMETA_SHIM_TIMEOUT": "2"})
    assert r.ok, (r.stdout, r.stderr[-1500:])
    assert "broke off" in r.stderr        # it was the fallback that answered
    before = eth0(ns)
    daemon.proc.send_signal(signal.SIGCONT)
    wait_for(lambda: handled(daemon) >= 1, "the daemon to get to the stale request")
    assert eth0(ns) == before
    assert daemon.metric("netmeta_cni_request_seconds_count", command="ADD") == 0
    assert "deadline passed" in daemon.log()
    assert call(c, "DEL", "st1", ns).ok
    assert [l["ifname"] for l in ip_json("link", "show", netns=ns)] == ["lo"]
    assert os.listdir(daemon.cfg["cniDir"]) == []


def test_a_retried_add_runs_once(daemon, tmp_path, netns, uid):
    """Idempotency by container+ifname+command: the runtime's retry of an ADD the daemon has not
    served yet (it was hung) does not run it a second time: once, with the retry's deadline."""
    daemon.start()
    c = conf(daemon, tmp_path, uid, mode="daemon")
    ns = netns()
    daemon.hang()
    first = call(c, "ADD", "rt1", ns, env={"NETMETA_SHIM_TIMEOUT": "1"})
    assert first.out["code"] == 11 and "broke off" in first.out["msg"]
    box = {}
    t = threading.Thread(target=lambda: box.update(r=call(c, "ADD", "rt1", ns)))
    t.start()
    wait_for(lambda: len(os.listdir(f"/proc/{daemon.proc.pid}/fd")) and _queued(daemon) >= 2, "the retry to be queued")
    daemon.proc.send_signal(signal.SIGCONT)
    t.join(60)
    assert box["r"].ok, box["r"].stdout
    assert daemon.metric("netmeta_cni_request_seconds_count", command="ADD") == 1
    assert eth0(ns)[1] == ["10.78.0.2"]
    assert call(c, "DEL", "rt1", ns).ok


def _queued(d) -> int:
    """Connections waiting in the daemon's listen backlog (ss: Recv-Q of the listening socket)."""
    out = subprocess.run(["ss", "-xlnH", "src", d.socket], capture_output=True, text=True).stdout.split()
    return int(out[2]) if len(out) > 2 else 0


@pytest.mark.parametrize("shim", ["native", "python"])
def test_the_shims_deadline_is_below_the_kubelets_cri_timeout(tmp_path, shim):
    """Finding 6: the shim waited 330 s for a hung daemon, past the kubelet's 2-minute CRI
    timeout (kubelet `runtimeRequestTimeout`, default 2m0s), so the fallback never had its turn.
    A stand-in daemon reads the request: it carries a deadline that, with the shim's grace and
    the fallback's bounded lock wait, ends before the kubelet gives up."""
    path = str(tmp_path / "fake.sock")
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(path)
    srv.listen(1)
    got = {}

    def serve():
        conn, _ = srv.accept()
        with conn:
            conn.settimeout(10)
            got["env"], _ = wire.decode_request(conn.recv)
            got["at"] = time.time()
            conn.sendall(wire.encode_response(1, b'{"cniVersion":"1.0.0","code":11,"msg":"fake"}\n'))
    t = threading.Thread(target=serve)
    t.start()
    exe = f"{VENV_BIN}/netmeta" if shim == "native" else PY_NETMETA
    r = cni(exe, "ADD", {"cniVersion": "1.0.0", "name": "n", "type": "netmeta", "mode": "daemon", "socketPath": path},
            container_id="dl1", netns="/x")
    t.join(10)
    srv.close()
    assert r.out["msg"] == "fake"
    from cni import shim as pyshim
    deadline = float(got["env"]["NETMETA_DEADLINE"])
    assert got["at"] < deadline
    assert deadline - got["at"] + pyshim.GRACE + pyshim.LOCK_WAIT < KUBELET_CRI_TIMEOUT - 10


def test_the_fallback_does_not_wait_forever_for_a_hung_daemons_lock(daemon, tmp_path, netns, uid):
    """Finding 6: the daemon hangs (SIGSTOP) in the middle of an ADD, holding the container's
    lock; the shim gives up on it and falls back in-process (mode auto). The fallback must not
    run beside the half-done ADD nor wait without end: it answers 11 naming the hung holder. On
    SIGCONT the daemon finds the deadline passed before its next step and rolls its part back;
    the runtime's retry then succeeds."""
    marks, bindir = tmp_path / "marks", tmp_path / "bin"
    marks.mkdir()
    bindir.mkdir()
    (bindir / "holdplug").write_text(HOLDPLUG.replace("MARKS", str(marks)).replace("SECONDS", "1"))
    (bindir / "holdplug").chmod(0o755)
    nads = tmp_path / "nads" / "default"
    nads.mkdir(parents=True)
    second = {"cniVersion": "1.0.0", "name": "second", "type": "bridge", "bridge": f"nmd{uid}",
              "ipam": {"type": "host-local", "subnet": "10.79.0.0/24", "dataDir": str(tmp_path / "hostlocal")}}
    (nads / "second.json").write_text(json.dumps({"metadata": {"name": "second"}, "spec": {"config": json.dumps(second)}}))
    daemon.start()
    c = conf(daemon, tmp_path, uid, delegates=[{"cniVersion": "1.0.0", "name": "hold", "type": "holdplug"}],
             nads=str(tmp_path / "nads"), annots={"k8s.v1.cni.cncf.io/networks": "second"})
    path = f"{bindir}:{VENV_BIN}:{DEBIAN_CNI}"
    ns = netns()
    box = {}
    t = threading.Thread(target=lambda: box.update(r=call(c, "ADD", "hg1", ns, path=path,
                                                          env={"NETMETA_SHIM_TIMEOUT": "3"})))
    t.start()
    wait_for(lambda: (marks / "hg1-eth0.started").exists(), "the daemon's ADD to start")
    daemon.hang()      # hung, holding hg1's lock
    t.join(60)
    r = box["r"]
    assert r.out["code"] == 11 and "hung" in r.out["msg"] and f"pid {daemon.proc.pid}" in r.out["msg"], r.out
    assert "broke off" in r.stderr
    assert [l["ifname"] for l in ip_json("link", "show", netns=ns)] == ["lo"]   # the fallback did nothing
    daemon.proc.send_signal(signal.SIGCONT)
    wait_for(lambda: handled(daemon) >= 1, "the daemon to finish the stale ADD")
    wait_for(lambda: os.listdir(daemon.cfg["cniDir"]) == [], "the stale ADD's rollback")
    assert sorted(os.listdir(marks)) == [] and "not starting ADD of bridge" in daemon.log()
    r = call(c, "ADD", "hg1", ns, path=path)                      # the runtime's retry
    assert r.ok, (r.stdout, r.stderr[-1500:])
    assert call(c, "DEL", "hg1", ns, path=path).ok
    assert os.listdir(daemon.cfg["cniDir"]) == [] and sorted(os.listdir(marks)) == []


def test_a_daemon_hung_with_a_vf_under_its_temporary_name(daemon, tmp_path, nic, netns, uid):
    """Finding 6, the VF case: the daemon hangs right after moving a VF into the pod under its
    temporary name. The fallback does not touch it (11, the lock holder is hung); on SIGCONT the
    daemon reaches the IPAM step past the deadline, refuses it and restores the VF: no VF is left
    in the pod, under any name, and no record or reservation stays. (On main the fallback ran
    beside the hung ADD.)"""
    from tests.simnic import records, snapshot
    nads = tmp_path / "nads" / "default"
    nads.mkdir(parents=True)
    sr = dict(nic, cniVersion="1.0.0", type="sriov", capabilities={"ips": True},
              ipam={"type": "fixipam", "subnet": "10.76.0.0/24", "dataDir": str(tmp_path / "fixipam")})
    (nads / "vf.json").write_text(json.dumps({"metadata": {"name": "vf"}, "spec": {"config": json.dumps(sr)}}))
    before = snapshot(nic)
    daemon.start()
    c = conf(daemon, tmp_path, uid, nads=str(tmp_path / "nads"),
             annots={"k8s.v1.cni.cncf.io/networks": json.dumps([{"name": "vf", "ips": ["10.76.0.9/24"]}])})
    ns = netns()
    r = call(c, "ADD", "vf1", ns, env={"NETMETA_SHIM_TIMEOUT": "3", "NETMETA_DAEMON_FAULT": "sriov.add.moved:stop"})
    assert r.out["code"] == 11 and "hung" in r.out["msg"], r.out
    names = [l["ifname"] for l in ip_json("link", "show", netns=ns)]
    assert any(n.startswith("nmv") for n in names), names      # the VF sits there under its temp name
    assert records(nic) == ["vf0.json"]                         # ... with its record
    daemon.proc.send_signal(signal.SIGCONT)
    wait_for(lambda: handled(daemon) >= 1, "the daemon to give up the stale ADD")
    wait_for(lambda: records(nic) == [] and os.listdir(daemon.cfg["cniDir"]) == [], "the rollback")
    assert [l["ifname"] for l in ip_json("link", "show", netns=ns)] == ["lo"]
    assert snapshot(nic) == before
    assert not os.path.exists(tmp_path / "fixipam" / "vf") or os.listdir(tmp_path / "fixipam" / "vf") in ([], [".lock"])
    assert "not starting ADD of fixipam" in daemon.log()
    r = call(c, "ADD", "vf1", ns)                               # the runtime's retry
    assert r.ok, (r.stdout, r.stderr[-1500:])
    assert call(c, "DEL", "vf1", ns).ok and records(nic) == [] and snapshot(nic) == before
