"""Issue 12, finding 3: the daemon's servers under a flood of half-sent requests and under a
pids limit, and health that says whether CNI calls are served.

On main every connection (HTTP or the CNI socket) got a thread with no deadline: 3000 half-sent
requests held 3005 threads, and under a pids limit the CNI socket's accept thread died on the
next thread it could not start, so every later CNI call hung until code 11, while /healthz and
/readyz still answered 200. Now both servers are fixed pools with a deadline per connection,
and health is a canary round trip on the CNI socket."""
import os
import signal
import socket
import subprocess

import pytest

from tests.cnirun import DEBIAN_CNI, cni, ip_json
from tests.daemonproc import DaemonProc

pytestmark = pytest.mark.skipif(not os.path.exists(f"{DEBIAN_CNI}/bridge"), reason="needs Debian CNI plugins")
PIDS_CGROUP = "/sys/fs/cgroup/pids"
N_HALF = 300


@pytest.fixture
def daemon(tmp_path, uid):
    d = DaemonProc(tmp_path / "d", requestTimeout=60)
    os.makedirs(d.dir, exist_ok=True)
    yield d
    d.stop()
    subprocess.run(["ip", "link", "del", f"nmd{uid}"], capture_output=True)


def add_del(d, tmp, uid, ns, cid):
    c = {"cniVersion": "1.0.0", "name": "netmeta", "type": "netmeta", "socketPath": d.socket, "mode": "daemon",
         "cniDir": d.cfg["cniDir"],
         "delegates": [{"cniVersion": "1.0.0", "name": "cluster", "type": "bridge", "bridge": f"nmd{uid}",
                        "ipam": {"type": "host-local", "subnet": "10.77.0.0/24", "dataDir": str(tmp / "hostlocal")}}]}
    kw = dict(container_id=cid, netns=f"/var/run/netns/{ns}", timeout=120, extra_env={"NETMETA_SHIM_TIMEOUT": "40"},
              args="IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=lim")
    r = cni("netmeta", "ADD", c, **kw)
    assert r.ok, (r.stdout, r.stderr[-1000:])
    assert "eth0" in [l["ifname"] for l in ip_json("link", "show", netns=ns)]
    assert cni("netmeta", "DEL", c, **kw).ok


def threads(d) -> int:
    return len(os.listdir(f"/proc/{d.proc.pid}/task"))


def half_sent(d, n: int) -> list:
    """n HTTP and n CNI-socket connections, each with a request begun and never finished."""
    conns = []
    for _ in range(n):
        h = socket.create_connection(("127.0.0.1", d.port))
        h.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        u = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        u.connect(d.socket)
        u.sendall(b"NM1 100 10\n")
        conns += [h, u]
    return conns


def test_half_sent_requests_hold_no_threads(daemon, tmp_path, netns, uid):
    daemon.start()
    base = threads(daemon)
    conns = half_sent(daemon, N_HALF)
    try:
        grown = threads(daemon) - base
        assert grown <= 2, f"{2 * N_HALF} half-sent requests made the daemon start {grown} threads"
        # and they hold nothing up: health and CNI calls are served while they are open
        assert daemon.get("/healthz")[0] == 200
        add_del(daemon, tmp_path, uid, netns(), "hs1")
        assert all(c.fileno() >= 0 for c in conns)
    finally:
        for c in conns:
            c.close()
    assert daemon.get("/healthz")[0] == 200


def test_cni_is_served_under_a_pids_limit(daemon, tmp_path, netns, uid):
    """The daemon in a cgroup whose pids.max leaves it a few tasks to spare (what exec'ing one
    ADD's plugins needs): a flood of half-sent requests must not take the CNI socket down."""
    if not os.access(os.path.join(PIDS_CGROUP, "cgroup.procs"), os.W_OK):
        pytest.skip("needs a writable cgroup v1 pids hierarchy")
    daemon.start()
    cg = os.path.join(PIDS_CGROUP, f"nmt{uid}")
    os.mkdir(cg)
    try:
        with open(os.path.join(cg, "cgroup.procs"), "w") as f:
            f.write(str(daemon.proc.pid))
        with open(os.path.join(cg, "pids.current")) as f:
            current = int(f.read())
        with open(os.path.join(cg, "pids.max"), "w") as f:
            f.write(str(current + 40))   # room for one ADD: Go plugins run several threads each
        conns = half_sent(daemon, N_HALF)
        for c in conns:
            c.close()
        add_del(daemon, tmp_path, uid, netns(), "pl1")
        status, body = daemon.get("/healthz")
        assert status == 200, body
        assert daemon.proc.poll() is None
    finally:
        if daemon.proc.poll() is None:
            with open(os.path.join(PIDS_CGROUP, "cgroup.procs"), "w") as f:
                f.write(str(daemon.proc.pid))
        os.rmdir(cg)


def test_health_fails_when_cni_calls_are_not_served(daemon):
    """/healthz and /readyz are a round trip on the CNI socket, not a constant: with the socket
    gone (someone removed /run/netmeta/netmeta.sock) both say 503, and why."""
    daemon.start()
    assert daemon.get("/healthz")[0] == 200 and daemon.get("/readyz")[0] == 200
    os.unlink(daemon.socket)
    import time
    end = time.monotonic() + 10
    while daemon.get("/healthz")[0] == 200:
        assert time.monotonic() < end, "/healthz still 200 with the CNI socket gone"
        time.sleep(0.2)
    status, body = daemon.get("/healthz")
    assert status == 503 and "CNI socket not served" in body
    assert daemon.get("/readyz")[0] == 503


def test_health_fails_while_the_daemon_is_hung_on_cni(daemon):
    """Stopped readers cannot be simulated from outside without stopping HTTP too; what can be:
    SIGSTOP stops both, so the probe times out (the kubelet's liveness restarts the pod)."""
    daemon.start()
    daemon.hang()
    try:
        with pytest.raises(OSError):
            daemon.get("/healthz")
    finally:
        daemon.proc.send_signal(signal.SIGCONT)
    assert daemon.get("/healthz")[0] == 200
