"""A pod's attachments after the cluster network run concurrently (meta/parallel.py): the real
netmeta executable (thin, in-process sriov + fixipam on the simulated NIC, Debian bridge +
host-local for eth0), Kubernetes-free (nadDir, annotations in runtimeConfig, statusDir).

- 4 SR-IOV attachments where the third fails: all of them rolled back (and eth0);
- results, network-status and the DEL cache in the pod's order, each IP on its interface;
- concurrency proved by a spy delegate (a barrier: each waits until its wave-mate has started,
  which never happens when they run one after another), the `"serial": true` opt-out proved by
  the spy's start/end log, and the key never reaching the delegate;
- a soak: several pods x several SR-IOV attachments at once, no VF given twice."""
import glob
import json
import os
import subprocess
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests import simnic
from tests.cnirun import CNI_PATH, DEBIAN_CNI, cni, ip_json
from tests.simnic import snapshot

pytestmark = pytest.mark.skipif(not os.path.exists(f"{DEBIAN_CNI}/bridge"), reason="needs Debian CNI plugins")
ANNOTS_KEY = "io.kubernetes.cri.pod-annotations"
NETWORKS = "k8s.v1.cni.cncf.io/networks"


def write_nad(root, name: str, conf: dict, ns: str = "default") -> None:
    d = root / "nads" / ns
    d.mkdir(parents=True, exist_ok=True)
    (d / f"{name}.json").write_text(json.dumps({"metadata": {"name": name}, "spec": {"config": json.dumps(conf)}}))


def meta_conf(tmp, bridge: str, networks: list, **extra) -> dict:
    return dict({"cniVersion": "1.1.0", "name": "netmeta", "type": "netmeta", "mode": "thin",
                 "cniDir": str(tmp / "cache"), "nadDir": str(tmp / "nads"), "statusDir": str(tmp / "status"),
                 "runtimeConfig": {ANNOTS_KEY: {NETWORKS: json.dumps(networks)}},
                 "delegates": [{"cniVersion": "1.0.0", "name": "cluster", "type": "bridge", "bridge": bridge,
                                "isGateway": True, "ipam": {"type": "host-local", "subnet": "10.244.8.0/24",
                                                            "dataDir": str(tmp / "hostlocal")}}]}, **extra)


def call(conf, command, ns: str, cid: str, pod: str = "pp", path: str = CNI_PATH, env=None):
    return cni("netmeta", command, conf, container_id=cid, netns=f"/var/run/netns/{ns}", path=path,
               args=f"IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME={pod}", extra_env=env)


def status_of(tmp, pod: str = "pp"):
    # <statusDir>/<namespace>/<pod>/<uid>_<containerID>.json (meta/statusfile.py)
    files = glob.glob(str(tmp / "status" / "*" / pod / "*.json"))
    return json.loads(open(files[0]).read()) if files else None


def files(d) -> list:
    return sorted(f for f in os.listdir(d) if f != ".lock") if os.path.isdir(d) else []


@pytest.fixture
def sriov_pod(tmp_path, nic, netns, uid):
    """NAD vf-net: sriov + fixipam (fixed IPs), NAD broken: sriov asking for a VF the NIC lacks."""
    write_nad(tmp_path, "vf-net", dict(nic, cniVersion="1.0.0", type="sriov", capabilities={"ips": True},
                                       ipam={"type": "fixipam", "subnet": "10.58.0.0/24",
                                             "dataDir": str(tmp_path / "fixipam")}))
    write_nad(tmp_path, "broken", dict(nic, cniVersion="1.0.0", type="sriov", vf=99))
    bridge = f"nmq{uid}"
    p = {"tmp": tmp_path, "nic": nic, "ns": netns(), "bridge": bridge, "before": snapshot(nic)}
    yield p
    subprocess.run(["ip", "link", "del", bridge], capture_output=True)


def leftovers(p) -> dict:
    t = p["tmp"]
    left = {"cache": files(t / "cache"),
            "vf records": files(os.path.join(p["nic"]["stateDir"], p["nic"]["master"])),
            "fixipam": files(t / "fixipam" / "vf-net"),
            "host-local": [f for f in files(t / "hostlocal" / "cluster") if f[0].isdigit()],
            "pod links": [l["ifname"] for l in ip_json("link", "show", netns=p["ns"]) if l["ifname"] != "lo"],
            "bridge ports": [l["ifname"] for l in ip_json("link", "show") if l.get("master") == p["bridge"]]}
    left = {k: v for k, v in left.items() if v}
    if snapshot(p["nic"]) != p["before"]:
        left["VF state"] = "differs from before the ADD"
    return left


def vf(ip: str) -> dict:
    return {"name": "vf-net", "ips": [ip]}


@pytest.mark.parametrize("third", ["broken NAD", "fault after its ADD"])
def test_third_of_four_fails_rolls_back_all(sriov_pod, third):
    """The third attachment fails while the others run beside it (one wave of 4): the ones that
    succeeded, the failed one (its fault hits after its VF was taken) and eth0 are all undone."""
    p = sriov_pod
    nets = [vf("10.58.0.11/24"), vf("10.58.0.12/24"), vf("10.58.0.13/24"), vf("10.58.0.14/24")]
    env = None
    if third == "broken NAD":
        nets[2] = {"name": "broken"}
    else:
        env = {"NETMETA_FAULT": "meta.add.after-3:fail"}   # index 3 = net3 (0 is eth0)
    conf = meta_conf(p["tmp"], p["bridge"], nets)
    r = call(conf, "ADD", p["ns"], "par1", env=env)
    assert r.rc != 0 and set(r.out) >= {"code", "msg"}, (r.rc, r.out)
    if third == "broken NAD":
        assert "99" in r.out["msg"] + r.out.get("details", ""), r.out
    else:
        assert "injected failure at meta.add.after-3" in r.out["msg"]
    # all 4 were in flight: the log has the successful ADDs of net1, net2, net4 (and net3's)
    assert "rolling back 5 attachment(s)" in r.stderr, r.stderr[-3000:]
    assert leftovers(p) == {}
    assert status_of(p["tmp"]) is None
    d = call(conf, "DEL", p["ns"], "par1")
    assert d.ok, d.stdout
    assert leftovers(p) == {}


@pytest.mark.parametrize("workers", [4, 1])
def test_results_status_and_cache_in_pod_order(sriov_pod, workers):
    p = sriov_pod
    ips = ["10.58.0.21", "10.58.0.22", "10.58.0.23", "10.58.0.24"]
    conf = meta_conf(p["tmp"], p["bridge"], [vf(ip + "/24") for ip in ips], parallelAttachments=workers)
    r = call(conf, "ADD", p["ns"], "par2")
    assert r.ok, r.stdout + r.stderr.encode()
    # the runtime gets the cluster network's result (Multus v4.1.4 CmdAdd)
    assert [i["name"] for i in r.out["interfaces"] if i.get("sandbox")] == ["eth0"]
    st = status_of(p["tmp"])
    assert [(e["name"], e["interface"], e.get("ips")) for e in st[1:]] == \
        [("default/vf-net", f"net{n}", [ip]) for n, ip in enumerate(ips, 1)]
    assert st[0]["interface"] == "eth0" and st[0]["default"] is True
    pcis = [e["device-info"]["pci"]["pci-address"] for e in st[1:]]
    assert len(set(pcis)) == 4, pcis
    # each address really on its interface in the pod
    for n, ip in enumerate(ips, 1):
        addrs = ip_json("addr", "show", "dev", f"net{n}", netns=p["ns"])[0]["addr_info"]
        assert ip in [a["local"] for a in addrs], (n, addrs)
    cache = json.loads(open(glob.glob(str(p["tmp"] / "cache" / "par2-eth0.json"))[0]).read())
    assert [a["ifname"] for a in cache["attachments"]] == ["eth0", "net1", "net2", "net3", "net4"]
    assert [a["runtime_config"].get("ips") for a in cache["attachments"][1:]] == [[ip + "/24"] for ip in ips]
    assert all(a["result"] for a in cache["attachments"]) and cache["state"] == "ready"
    d = call(conf, "DEL", p["ns"], "par2")
    assert d.ok, d.stdout
    assert leftovers(p) == {}


# A delegate spy around Debian's bridge (a real L2 attachment): logs "start|end CMD ifname"
# (flock'ed appends), saves its stdin, and for a network whose config has "barrier": [ifnames]
# (on the commands of "barrierOn", default ADD and DEL)
# waits (barrierWait s, 60 by default) until every one of them has started the same command — which only
# happens when they run at the same time; run one after another, the first one times out.
SPY = r"""#!/usr/bin/python3
import fcntl, json, os, subprocess, sys, time
D, BRIDGE = "SPYDIR", "/usr/lib/cni/bridge"
cmd = os.environ["CNI_COMMAND"]
if cmd == "VERSION":
    os.execv(BRIDGE, [BRIDGE])
raw = sys.stdin.buffer.read()
conf, ifn = json.loads(raw), os.environ["CNI_IFNAME"]
def log(what):
    with open(os.path.join(D, "events"), "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        f.write(f"{what} {cmd} {ifn}\n")
def events():
    with open(os.path.join(D, "events")) as f:
        return f.read().splitlines()
with open(os.path.join(D, f"{cmd}-{ifn}.json"), "wb") as f:
    f.write(raw)
log("start")
deadline = time.monotonic() + conf.get("barrierWait", 60)
group = conf.get("barrier") if cmd in conf.get("barrierOn", ["ADD", "DEL"]) else None
while not all(f"start {cmd} {g}" in events() for g in group or ()):
    if time.monotonic() > deadline:
        log("timeout")
        print(json.dumps({"cniVersion": "1.0.0", "code": 11, "msg": "barrier: wave-mates never started"}))
        sys.exit(1)
    time.sleep(0.02)
p = subprocess.run([BRIDGE], input=raw, capture_output=True)
log("end")
sys.stdout.buffer.write(p.stdout)
sys.stderr.buffer.write(p.stderr)
sys.exit(p.returncode)
"""


@pytest.fixture
def spy_pod(tmp_path, netns, uid):
    spydir = tmp_path / "spy"
    spydir.mkdir()
    (spydir / "events").write_text("")
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "spy").write_text(SPY.replace("SPYDIR", str(spydir)))
    (bindir / "spy").chmod(0o755)
    bridges = [f"nmq{uid}"] + [f"nmq{uid}s{n}" for n in range(1, 6)]
    yield {"tmp": tmp_path, "spy": spydir, "ns": netns(), "bridges": bridges, "path": f"{bindir}:{CNI_PATH}"}
    for b in bridges:
        subprocess.run(["ip", "link", "del", b], capture_output=True)


def spy_nad(p, n: int, **extra) -> str:
    write_nad(p["tmp"], f"spy{n}", dict({"cniVersion": "1.0.0", "type": "spy", "bridge": p["bridges"][n]}, **extra))
    return f"spy{n}"


def test_serial_opt_out_runs_alone_and_others_run_together(spy_pod):
    """net1+net2 and net4+net5 each meet at a barrier (so each pair runs at the same time, ADD
    and DEL); net3 says "serial": true, so its ADD starts after net1 and net2 have ended and
    ends before net4 or net5 start; DEL the same, in reverse. The spy never sees "serial"."""
    p = spy_pod
    names = [spy_nad(p, 1, barrier=["net1", "net2"]), spy_nad(p, 2, barrier=["net1", "net2"]),
             spy_nad(p, 3, serial=True),
             spy_nad(p, 4, barrier=["net4", "net5"]), spy_nad(p, 5, barrier=["net4", "net5"])]
    conf = meta_conf(p["tmp"], p["bridges"][0], [{"name": n} for n in names])
    r = call(conf, "ADD", p["ns"], "par3", path=p["path"])
    assert r.ok, r.stdout + r.stderr.encode()[-3000:]
    assert [e["interface"] for e in status_of(p["tmp"])] == ["eth0", "net1", "net2", "net3", "net4", "net5"]
    saw = json.loads((p["spy"] / "ADD-net3.json").read_text())
    assert "serial" not in saw and saw["type"] == "spy"
    cache = json.loads((p["tmp"] / "cache" / "par3-eth0.json").read_text())
    assert [a["serial"] for a in cache["attachments"]] == [False, False, False, True, False, False]
    assert "serial" not in cache["attachments"][3]["conf"]
    d = call(conf, "DEL", p["ns"], "par3", path=p["path"])
    assert d.ok, d.stdout + d.stderr.encode()[-3000:]
    assert "serial" not in json.loads((p["spy"] / "DEL-net3.json").read_text())
    ev = (p["spy"] / "events").read_text().splitlines()
    assert not any(e.startswith("timeout") for e in ev), ev

    def at(what):
        return ev.index(what)
    for cmd, before, after in (("ADD", ("net1", "net2"), ("net4", "net5")),
                               ("DEL", ("net4", "net5"), ("net1", "net2"))):
        s3, e3 = at(f"start {cmd} net3"), at(f"end {cmd} net3")
        assert all(at(f"end {cmd} {n}") < s3 for n in before), ev
        assert all(at(f"start {cmd} {n}") > e3 for n in after), ev
    assert leftovers_spy(p) == []


def leftovers_spy(p) -> list:
    return [l["ifname"] for l in ip_json("link", "show", netns=p["ns"]) if l["ifname"] != "lo"] + \
        files(p["tmp"] / "cache")


def test_parallel_attachments_one_runs_them_one_after_another(spy_pod):
    """parallelAttachments: 1 is today's serial engine: a barrier pair can never meet, so the
    ADD fails (after the spy's wait) — and is rolled back. Proves the barrier spy can fail."""
    p = spy_pod
    names = [spy_nad(p, n, barrier=["net1", "net2"], barrierWait=2, barrierOn=["ADD"]) for n in (1, 2)]
    conf = meta_conf(p["tmp"], p["bridges"][0], [{"name": n} for n in names], parallelAttachments=1)
    r = call(conf, "ADD", p["ns"], "par4", path=p["path"])
    assert r.rc != 0 and "barrier" in r.out["msg"], r.out
    assert (p["spy"] / "events").read_text().splitlines()[:2] == ["start ADD net1", "timeout ADD net1"]
    assert leftovers_spy(p) == []


@pytest.mark.parametrize("bad", ["yes", 1, None])
def test_serial_must_be_a_boolean(spy_pod, bad):
    p = spy_pod
    conf = meta_conf(p["tmp"], p["bridges"][0], [{"name": spy_nad(p, 1, serial=bad)}])
    r = call(conf, "ADD", p["ns"], "par5", path=p["path"])
    assert r.rc != 0 and r.out["code"] == 7 and "serial" in r.out["msg"], r.out
    assert leftovers_spy(p) == [] and (p["spy"] / "events").read_text() == ""


@pytest.mark.parametrize("bad", [0, 65, True, "4"])
def test_parallel_attachments_config_is_checked(spy_pod, bad):
    p = spy_pod
    conf = meta_conf(p["tmp"], p["bridges"][0], [], parallelAttachments=bad)
    r = call(conf, "ADD", p["ns"], "par6", path=p["path"])
    assert r.rc != 0 and r.out["code"] == 7 and "parallelAttachments" in r.out["msg"], r.out
    assert leftovers_spy(p) == []


PODS, ATTS, ROUNDS = 4, 3, 2


@pytest.mark.parametrize("mode", ["thin", "daemon"])
def test_soak_parallel_pods_never_share_a_vf(tmp_path, netns, uid, mode):
    """PODS pods x ATTS SR-IOV attachments, all pods' ADDs at once (each pod's attachments in
    parallel too; thin: a process per pod, daemon: threads of one process), ROUNDS times:
    every ADD succeeds (exactly enough VFs), no VF (PCI address) is in two pods'
    network-status, each pod holds its own; all DELs at once leave the NIC as it was."""
    nic = simnic.create(f"p{uid}", PODS * ATTS, str(tmp_path / "sys"), str(tmp_path / "state"))
    bridge = f"nmq{uid}"
    d = extra = None
    if mode == "daemon":
        from tests.daemonproc import DaemonProc
        d = DaemonProc(tmp_path / "d", pfs=[{k: nic[k] for k in ("master", "sysfsRoot", "backend", "stateDir")}])
        os.makedirs(d.dir, exist_ok=True)
        d.start()
        extra = {"mode": "daemon", "socketPath": d.socket}
    try:
        write_nad(tmp_path, "vf-net", dict(nic, cniVersion="1.0.0", type="sriov", capabilities={"ips": True},
                                           ipam={"type": "fixipam", "subnet": "10.57.0.0/24",
                                                 "dataDir": str(tmp_path / "fixipam")}))
        before = snapshot(nic)
        pods = []
        for k in range(PODS):
            nets = [vf(f"10.57.0.{10 * (k + 1) + a}/24") for a in range(ATTS)]
            pods.append({"name": f"soak{k}", "cid": f"soak{uid}{k}", "ns": netns(),
                         "conf": meta_conf(tmp_path, bridge, nets, **(extra or {}))})
        with ThreadPoolExecutor(PODS) as pool:
            for rnd in range(ROUNDS):
                adds = list(pool.map(lambda q: call(q["conf"], "ADD", q["ns"], q["cid"], pod=q["name"]), pods))
                assert all(r.ok for r in adds), [(r.out, r.stderr[-1500:]) for r in adds if not r.ok]
                seen = {}
                for q in pods:
                    st = status_of(tmp_path, q["name"])
                    assert [e["interface"] for e in st] == ["eth0"] + [f"net{a}" for a in range(1, ATTS + 1)]
                    for e in st[1:]:
                        pci = e["device-info"]["pci"]["pci-address"]
                        assert pci not in seen, (rnd, pci, seen.get(pci), q["name"])
                        seen[pci] = q["name"]
                    in_ns = sorted(l["ifname"] for l in ip_json("link", "show", netns=q["ns"]))
                    assert in_ns == ["eth0", "lo"] + [f"net{a}" for a in range(1, ATTS + 1)], in_ns
                assert len(seen) == PODS * ATTS
                assert len(files(tmp_path / "cache")) == PODS   # the conf's cniDir, daemon or not
                dels = list(pool.map(lambda q: call(q["conf"], "DEL", q["ns"], q["cid"], pod=q["name"]), pods))
                assert all(r.ok for r in dels), [r.out for r in dels if not r.ok]
                assert snapshot(nic) == before, rnd
                assert files(tmp_path / "cache") == [] and files(tmp_path / "fixipam" / "vf-net") == []
                assert d is None or files(d.cfg["cniDir"]) == []
        if d:
            assert "Traceback" not in d.log()
    finally:
        if d:
            d.stop()
        subprocess.run(["ip", "link", "del", bridge], capture_output=True)
        simnic.destroy(nic)


def test_daemon_worker_threads_carry_the_requests_context(sriov_pod, uid):
    """Through the daemon the attachments run on worker threads of a request thread: a
    per-request fault point (NETMETA_FAULT forwarded by the shim, a thread-local in the daemon)
    must still fire in the worker that reaches it, and its log lines carry the container ID.
    Fault after net2's ADD (a worker of the 3-wide wave): everything is rolled back."""
    from tests.daemonproc import DaemonProc
    p = sriov_pod
    nic = p["nic"]
    d = DaemonProc(p["tmp"] / "d", pfs=[{k: nic[k] for k in ("master", "sysfsRoot", "backend", "stateDir")}])
    os.makedirs(d.dir, exist_ok=True)
    d.start()
    try:
        conf = dict(meta_conf(p["tmp"], p["bridge"], [vf(f"10.58.0.{31 + n}/24") for n in range(3)]),
                    mode="daemon", socketPath=d.socket, cniDir=d.cfg["cniDir"])
        cid = f"dpar{uid}"
        r = call(conf, "ADD", p["ns"], cid, env={"NETMETA_DAEMON_FAULT": "meta.add.after-2:fail"})
        assert r.rc != 0 and "injected failure at meta.add.after-2" in r.out["msg"], r.out
        log = d.log()
        # the worker's own lines, tagged with this container (not "-")
        for line in ("added default/vf-net on net1", "added default/vf-net on net3", "as net2\n",
                     "rolling back 4 attachment(s)"):
            assert f"[{cid[:12]}] " in next((l for l in log.splitlines(True) if line in l), ""), (line, log[-3000:])
        assert snapshot(nic) == p["before"] and files(d.cfg["cniDir"]) == []
        assert [l["ifname"] for l in ip_json("link", "show", netns=p["ns"])] == ["lo"]
        r = call(conf, "ADD", p["ns"], cid)   # and the same pod without the fault
        assert r.ok, r.stdout
        assert [e["interface"] for e in status_of(p["tmp"])] == ["eth0", "net1", "net2", "net3"]
        assert call(conf, "DEL", p["ns"], cid).ok
        assert snapshot(nic) == p["before"] and files(d.cfg["cniDir"]) == []
    finally:
        d.stop()
