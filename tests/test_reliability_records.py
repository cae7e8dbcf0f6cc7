"""Issue 12, the VF allocation records under crashes, pauses, PID namespaces and damage
(findings 1, 4, 5, 7, 9, 14): a pod whose ADD returned success has its VF, no other pod's VF or
address is touched, and one bad record never blocks the rest of the PF.

Real executables through the CNI protocol, real network namespaces, the simulated NIC
(`nic` fixture). An ADD is paused at a chosen step with NETMETA_FAULT=<point>:stop (SIGSTOP,
cni/fault.py) and resumed with SIGCONT; the daemon runs, as a pod without hostPID does, in a
PID namespace of its own (`unshare --pid --fork --mount-proc`, TESTING.md)."""
import json
import os
import re
import signal
import subprocess
import tempfile

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.cnirun import CNI_PATH, VENV_BIN, Run, cni, exe, ip_json
from tests.daemonproc import DaemonProc
from tests.polling import wait_for
from tests.simnic import records, snapshot

# the daemon as a DaemonSet pod without hostPID runs it; /run/netns mounts made later by the
# host still reach it (slave propagation, as the DaemonSet's HostToContainer mount)
PIDNS = ("unshare", "--pid", "--fork", "--mount-proc", "--propagation", "slave", "--kill-child=SIGTERM")
DEADLINE = 90


def conf(nic, data_dir=None, subnet="10.61.0.0/24", **kw):
    c = {"cniVersion": "1.0.0", "name": "sriov-net", "type": "sriov", **nic, **kw}
    if data_dir:
        c["ipam"] = {"type": "fixipam", "subnet": subnet, "dataDir": data_dir}
    return c


def with_ip(c, ip):
    return dict(c, runtimeConfig={"ips": [ip]})


def pf_conf(nic) -> dict:
    return {k: nic[k] for k in ("master", "sysfsRoot", "backend", "stateDir")}


def add(c, ns, cid, **kw) -> Run:
    return cni("sriov", "ADD", c, netns=f"/var/run/netns/{ns}", ifname="net1", container_id=cid, **kw)


def delete(c, ns, cid, **kw) -> Run:
    return cni("sriov", "DEL", c, netns=f"/var/run/netns/{ns}" if ns else "", ifname="net1", container_id=cid, **kw)


def addrs(ns) -> list:
    """The IPv4 addresses on net1 in `ns` ([] when there is no net1), seen by iproute2."""
    links = [l for l in ip_json("addr", "show", netns=ns) if l["ifname"] == "net1"]
    return [a["local"] for l in links for a in l["addr_info"] if a["family"] == "inet"]


def reservations(data_dir, network="sriov-net") -> dict:
    """fixipam's reservations on this node: {address key: owning container}."""
    d = os.path.join(data_dir, network)
    out = {}
    for name in os.listdir(d) if os.path.isdir(d) else []:
        if not name.startswith("."):
            with open(os.path.join(d, name)) as f:
                out[name] = json.load(f)["containerID"]
    return out


def record(nic, vf) -> dict:
    with open(os.path.join(nic["stateDir"], nic["master"], f"vf{vf}.json")) as f:
        return json.load(f)


def vf_of(nic, cid: str) -> int:
    """The VF the record of container `cid` names."""
    d = os.path.join(nic["stateDir"], nic["master"])
    for name in records(nic):
        with open(os.path.join(d, name)) as f:
            rec = json.load(f)
        if rec["containerID"] == cid:
            return rec["vf"]
    raise AssertionError(f"no record of {cid}")


def status(daemon_cfg) -> dict:
    p = subprocess.run([f"{VENV_BIN}/netmeta", "status", "--config", daemon_cfg, "-o", "json"],
                       capture_output=True, text=True)
    assert p.returncode == 0 and "Traceback" not in p.stderr, p.stderr
    return json.loads(p.stdout)


def write_cfg(d: DaemonProc) -> str:
    """The daemon's config file, for `netmeta status` / `netmeta gc` without a running daemon."""
    os.makedirs(d.dir, exist_ok=True)
    with open(d.cfg_path, "w") as f:
        json.dump(d.cfg, f)
    return d.cfg_path


def proc_state(pid: int) -> str | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return None


def waits_on_a_lock(pid: int) -> bool:
    """`pid` is blocked in flock/fcntl (/proc/locks lists a waiter as `N: -> ...`)."""
    with open("/proc/locks") as f:
        return any("->" in line and line.split()[5] == str(pid) for line in f)


class Background:
    """A plugin process started as a runtime would (in-process: no daemon socket), optionally
    stopped by itself at a fault point (NETMETA_FAULT=<point>:stop)."""

    def __init__(self, command, c, ns, cid, stop_at=None, plugin="sriov"):
        env = {"PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"), "CNI_COMMAND": command,
               "CNI_CONTAINERID": cid, "CNI_NETNS": f"/var/run/netns/{ns}", "CNI_IFNAME": "net1",
               "CNI_ARGS": "", "CNI_PATH": CNI_PATH, "NETMETA_MODE": "thin",
               "NETMETA_LOG_LEVEL": "debug"}
        if stop_at:
            env["NETMETA_FAULT"] = f"{stop_at}:stop"
        self.err = tempfile.TemporaryFile()
        self.p = subprocess.Popen([exe(plugin)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.err,
                                  env=env)
        self.p.stdin.write(json.dumps(c).encode())
        self.p.stdin.close()
        if stop_at:
            wait_for(lambda: proc_state(self.p.pid) == "T" or self.p.poll() is not None, f"{stop_at}", timeout=DEADLINE)
            assert self.p.poll() is None, f"exited {self.p.returncode} before {stop_at}: {self.stderr()}"

    def stderr(self) -> str:
        self.err.seek(0)
        return self.err.read().decode(errors="replace")

    def finish(self) -> Run:
        if self.p.poll() is None:
            os.kill(self.p.pid, signal.SIGCONT)
        out = self.p.stdout.read()
        self.p.wait(DEADLINE)
        return Run(self.p.returncode, json.loads(out) if out.strip() else None, out, self.stderr())

    def kill(self) -> None:
        if self.p.poll() is None:
            self.p.kill()
            self.p.wait()


# ---------------------------------------------------------------- finding 1

def test_daemon_in_its_own_pid_namespace_never_reclaims_a_running_in_process_add(nic, netns, uid, tmp_path, data_dir):
    """Finding 1. An in-process ADD (the auto fallback, host PID namespace) is stopped after its
    VF is in the pod with its address, before it marks the record ready. The daemon starts in
    a PID namespace of its own: its start-up reconcile, then an ADD it serves on the same PF,
    judge every record. The PID in the record meant nothing there, so the daemon took the
    running ADD for dead and undid it: the ADD then answered success with no net1 in the pod
    and its address released. Owner = the ADD's token (an flock it holds) + the netns identity."""
    before = snapshot(nic)
    ns_a, ns_b = netns("a"), netns("b")
    c = conf(nic, data_dir)
    a = Background("ADD", with_ip(c, "10.61.0.5/24"), ns_a, f"a{uid}", stop_at="sriov.add.addressed")
    d = DaemonProc(tmp_path / "d", pfs=[pf_conf(nic)])
    try:
        d.start(prefix=PIDNS)
        b = add(with_ip(c, "10.61.0.6/24"), ns_b, f"b{uid}", extra_env={"NETMETA_SOCKET": d.socket})
        assert b.ok, b.stdout
        assert f"b{uid}"[:12] in d.log()                     # served by the daemon, not in-process
        ra = a.finish()
    finally:
        a.kill()
        d.stop()
    assert ra.ok, ra.stdout + ra.stderr.encode()
    assert addrs(ns_a) == ["10.61.0.5"] and addrs(ns_b) == ["10.61.0.6"]
    va, vb = vf_of(nic, f"a{uid}"), vf_of(nic, f"b{uid}")
    assert va != vb
    assert record(nic, va)["state"] == "ready" and record(nic, va)["containerID"] == f"a{uid}"
    assert reservations(data_dir) == {"10.61.0.5": f"a{uid}", "10.61.0.6": f"b{uid}"}
    assert delete(c, ns_a, f"a{uid}").ok and delete(c, ns_b, f"b{uid}").ok
    assert snapshot(nic) == before and records(nic) == [] and reservations(data_dir) == {}


# ---------------------------------------------------------------- finding 4

def test_rollback_of_a_paused_add_never_touches_the_pod_that_took_its_vf(nic, netns, uid, data_dir):
    """Finding 4. Pod A's ADD stops with VF 0 in its netns; the netns is deleted and the runtime,
    having given up on A, DELs it (VF 0 back in the host). Pod B gets VF 0 with its own VLAN
    and address. A resumes, fails (its netns is gone) and rolls back: it restored whatever
    record sat in vf0.json — B's — taking B's VF out of B and releasing B's address."""
    before = snapshot(nic)
    ns_a, ns_b = netns("a"), netns("b")
    a = Background("ADD", with_ip(conf(nic, data_dir, vf=0, vlan=11), "10.61.0.5/24"), ns_a, f"a{uid}",
                   stop_at="sriov.add.moved")
    try:
        subprocess.run(["ip", "netns", "del", ns_a], check=True)
        d = delete(conf(nic, data_dir, vf=0, vlan=11), None, f"a{uid}")
        assert d.ok, d.stdout
        cb = conf(nic, data_dir, vf=0, vlan=22)
        b = add(with_ip(cb, "10.61.0.6/24"), ns_b, f"b{uid}")
        assert b.ok, b.stdout
        ra = a.finish()
    finally:
        a.kill()
    assert not ra.ok and ra.out["code"] != 0
    assert addrs(ns_b) == ["10.61.0.6"]
    assert record(nic, 0)["containerID"] == f"b{uid}"
    assert snapshot(nic)["table"][0]["vlan"] == 22
    assert reservations(data_dir) == {"10.61.0.6": f"b{uid}"}
    assert delete(cb, ns_b, f"b{uid}").ok
    assert snapshot(nic) == before and records(nic) == [] and reservations(data_dir) == {}


# ---------------------------------------------------------------- finding 5

def set_numvfs(nic, n: int) -> None:
    """echo N > sriov_numvfs, behind netmeta's back (atomic, as sysfs is)."""
    path = os.path.join(nic["sysfsRoot"], "class", "net", nic["master"], "device", "sriov_numvfs")
    with open(path + ".new", "w") as f:
        f.write(f"{n}\n")
    os.replace(path + ".new", path)


def test_nic_back_with_fewer_vfs_releases_the_vanished_ones(nic, netns, uid, tmp_path, data_dir):
    """Finding 5. X (VF 6, its pod since gone) and Y (VF 5, pod alive) hold records when the NIC
    comes back with 4 VFs (their netdevs went with the VFs). `netmeta gc` crashed, every ADD on
    the PF failed with 100 and Y's DEL failed for good. Now: what is gone is released (record
    set aside as `vanished`, address freed), reported by status, and the PF keeps working."""
    ns_x, ns_y, ns_z = netns("x"), netns("y"), netns("z")
    cfg_path = write_cfg(DaemonProc(tmp_path / "d", pfs=[pf_conf(nic)]))   # for netmeta gc / status
    assert add(with_ip(conf(nic, data_dir, vf=6), "10.61.0.16/24"), ns_x, f"x{uid}").ok
    assert add(with_ip(conf(nic, data_dir, vf=5), "10.61.0.15/24"), ns_y, f"y{uid}").ok
    subprocess.run(["ip", "netns", "del", ns_x], check=True)              # X's pod is gone
    subprocess.run(["ip", "-n", ns_y, "link", "del", "net1"], check=True)   # Y's VF went with the NIC
    set_numvfs(nic, 4)
    try:
        gc = subprocess.run([f"{VENV_BIN}/netmeta", "gc", "--config", cfg_path], capture_output=True, text=True)
        assert gc.returncode == 0 and "Traceback" not in gc.stderr, gc.stderr
        assert records(nic) == ["vf5.json"]                       # X's released, Y's pod still there
        z = add(with_ip(conf(nic, data_dir), "10.61.0.17/24"), ns_z, f"z{uid}")
        assert z.ok, z.stdout
        assert vf_of(nic, f"z{uid}") < 4 and addrs(ns_z) == ["10.61.0.17"]
        dy = delete(conf(nic, data_dir), ns_y, f"y{uid}")
        assert dy.ok, dy.stdout + dy.stderr.encode()
        assert "VF 5 no longer exists" in dy.stderr
        assert reservations(data_dir) == {"10.61.0.17": f"z{uid}"}
        probs = status(cfg_path)["pfs"][0]["recordProblems"]
        assert sorted((p["vf"], p["kind"]) for p in probs) == [(5, "vanished"), (6, "vanished")]
        assert delete(conf(nic, data_dir), ns_z, f"z{uid}").ok
        assert records(nic) == [] and reservations(data_dir) == {}
    finally:
        set_numvfs(nic, 8)


# ---------------------------------------------------------------- finding 7

MALFORMED = {"vf3.json": "[]", "vf4.json": '{"vf": "3"}', "vf3.old.json": None}


def test_malformed_record_files_are_set_aside_and_the_pf_keeps_working(nic, netns, uid, tmp_path):
    """Finding 7. A `[]`, a `{"vf": "3"}` and a stray `vf3.old.json` (a copy of a real record)
    beside a live record failed every ADD and DEL on the PF with 100, and `netmeta status`
    crashed. Each file is validated on read; a bad one is renamed aside (reported by status
    and the netmeta_vf_records_set_aside metric) and the rest of the PF works, through the
    daemon and in-process."""
    before = snapshot(nic)
    ns_p, ns_q = netns("p"), netns("q")
    c = conf(nic)
    assert add(c, ns_p, f"p{uid}").ok                          # in-process, VF 0
    pfdir = os.path.join(nic["stateDir"], nic["master"])
    for name, text in MALFORMED.items():
        with open(os.path.join(pfdir, name), "w") as f:
            f.write(text if text is not None else json.dumps(dict(record(nic, 0), vf=3)))
    d = DaemonProc(tmp_path / "d", pfs=[pf_conf(nic)])
    st = status(write_cfg(d))
    probs = {p["file"]: p for p in st["pfs"][0]["recordProblems"]}
    assert set(probs) == set(MALFORMED) and not any(p["setAside"] for p in probs.values())
    assert "not a JSON object" in probs["vf3.json"]["why"] and probs["vf4.json"]["why"].startswith("pf is None")
    try:
        d.start()
        q = add(c, ns_q, f"q{uid}", extra_env={"NETMETA_SOCKET": d.socket})   # through the daemon
        assert q.ok, q.stdout
        assert f"q{uid}" in d.log() and vf_of(nic, f"q{uid}") == 1
        # vf3/vf4 were free (netdevs in the host): set aside, then at once reclaimed (VLAN/rates reset)
        assert [d.metric("netmeta_vf_records_set_aside", kind=k) for k in ("damaged", "reclaimed")] == [1, 2]
        dp = delete(c, ns_p, f"p{uid}")                         # in-process
        assert dp.ok, dp.stdout
        assert delete(c, ns_q, f"q{uid}", extra_env={"NETMETA_SOCKET": d.socket}).ok
    finally:
        d.stop()
    assert snapshot(nic) == before and records(nic) == []
    aside = sorted(re.sub(r"\.(damaged|reclaimed)\.[0-9]+$", "", n) for n in os.listdir(pfdir) if not n.startswith("."))
    assert aside == sorted(MALFORMED)
    probs = status(d.cfg_path)["pfs"][0]["recordProblems"]
    assert sorted((p["file"].split(".")[0], p["kind"]) for p in probs if p["setAside"]) == [
        ("vf3", "damaged"), ("vf3", "reclaimed"), ("vf4", "reclaimed")]
    table = subprocess.run([f"{VENV_BIN}/netmeta", "status", "--config", d.cfg_path], capture_output=True, text=True)
    assert table.returncode == 0 and "vf3.old.json" in table.stdout and "not a record file name" in table.stdout


# ---------------------------------------------------------------- finding 9

@pytest.mark.parametrize("damage", ["", "{\"pf\": 1"])
def test_del_with_a_damaged_record_takes_the_vf_out_before_releasing_its_address(nic, netns, uid, tmp_path,
                                                                                   data_dir, damage):
    """Finding 9. After ADD (VLAN 33, 10.61.0.9) the VF's record is emptied or corrupted. DEL
    answered success with the VF still in the pod holding 10.61.0.9 and the reservation
    released (the address could be given out twice). Now DEL finds the VF by its netns, takes
    it out, resets its VLAN, and only then releases the address; status says what happened."""
    ns = netns()
    c = conf(nic, data_dir, vlan=33)
    r = add(with_ip(c, "10.61.0.9/24"), ns, f"p{uid}")
    assert r.ok, r.stdout
    vf = vf_of(nic, f"p{uid}")
    with open(os.path.join(nic["stateDir"], nic["master"], f"vf{vf}.json"), "w") as f:
        f.write(damage)
    d = delete(c, ns, f"p{uid}")
    assert d.ok, d.stdout + d.stderr.encode()
    assert addrs(ns) == [] and [l["ifname"] for l in ip_json("link", "show", netns=ns)] == ["lo"]
    snap = snapshot(nic)
    assert snap["vfs"][vf][1] is not None and snap["table"][vf]["vlan"] == 0   # back in the host, VLAN reset
    assert reservations(data_dir) == {}
    probs = status(write_cfg(DaemonProc(tmp_path / "d", pfs=[pf_conf(nic)])))["pfs"][0]["recordProblems"]
    assert [(p["vf"], p["kind"]) for p in probs] == [(vf, "reclaimed")]
    assert records(nic) == []


def test_damaged_record_of_a_pod_gone_without_del_is_reclaimed_by_the_next_add(nic, netns, uid, data_dir):
    """Finding 9, nothing reclaimed it: a corrupt record kept its VF allocated forever (even
    after the pod's netns went and the VF came back). Now the next ADD on the PF reclaims the
    returned VF — with its VLAN reset, not inherited by the next pod."""
    ns_p = f"nmt{uid}gone"
    subprocess.run(["ip", "netns", "add", ns_p], check=True)
    c = conf(nic, data_dir, vf=0, vlan=33)
    assert add(with_ip(c, "10.61.0.9/24"), ns_p, f"p{uid}").ok
    with open(os.path.join(nic["stateDir"], nic["master"], "vf0.json"), "w") as f:
        f.write("{corrupt")
    subprocess.run(["ip", "netns", "del", ns_p], check=True)   # the pod went; no DEL came
    ns_q = netns("q")
    cq = conf(nic, vf=0)
    q = add(cq, ns_q, f"q{uid}")
    assert q.ok, q.stdout
    assert snapshot(nic)["table"][0]["vlan"] == 0
    assert delete(cq, ns_q, f"q{uid}").ok and records(nic) == []


# ---------------------------------------------------------------- finding 14

def test_two_processes_restoring_one_stale_record_both_succeed(nic, netns, uid):
    """Finding 14. An ADD crashed (kill -9) with its VF in the pod. The runtime's retry of that
    ADD restores the record first; it is stopped half-way (VF moved back to the host under
    its temp name). Meanwhile another pod's ADD on the PF reclaims the same stale record. The
    retry then failed spuriously (121: its temp-named netdev was gone). Restore is now done
    under the node lock and re-reads the record: the second ADD waits, finds it done, and
    both ADDs succeed."""
    before = snapshot(nic)
    ns_c, ns_d = netns("c"), netns("d")
    c = conf(nic, vlan=5)
    crashed = add(c, ns_c, f"c{uid}", extra_env={"NETMETA_FAULT": "sriov.add.configured"})
    assert crashed.rc == -9 and records(nic) == ["vf0.json"]
    retry = Background("ADD", c, ns_c, f"c{uid}", stop_at="sriov.del.moved-back")
    try:
        other = Background("ADD", c, ns_d, f"d{uid}")
        # the other ADD has either finished or waits for the node lock the retry holds
        wait_for(lambda: other.p.poll() is not None or waits_on_a_lock(other.p.pid), "the other ADD", timeout=DEADLINE)
        rr = retry.finish()
        ro = other.finish()
    finally:
        retry.kill()
        other.kill()
    assert rr.ok, rr.stdout + rr.stderr.encode()
    assert ro.ok, ro.stdout + ro.stderr.encode()
    assert len(records(nic)) == 2 and vf_of(nic, f"c{uid}") != vf_of(nic, f"d{uid}")
    assert delete(c, ns_c, f"c{uid}").ok and delete(c, ns_d, f"d{uid}").ok
    assert snapshot(nic) == before and records(nic) == []


# ---------------------------------------------------------------- finding 7, any content

GOOD = {"containerID": "c1", "ifname": "net1", "netns": "/var/run/netns/x", "network": "n", "pf": "pf0", "vf": 2,
        "state": "ready", "tmpName": "nmv0", "owner": {"token": "ab12", "netns": None, "containerID": "c1"},
        "saved": {"table": {"vlan": 0}, "netdev": {"name": "pf0v2", "mac": None, "mtu": 1500, "up": False}}}
JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=6),
                    lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=8), c, max_size=3),
                    max_leaves=8)


@settings(max_examples=300, deadline=None)
@given(key=st.sampled_from(sorted(GOOD) + ["saved.netdev", "saved.table", "saved.netdev.mtu"]), value=JSON,
       whole=st.booleans())
def test_any_record_content_is_a_valid_record_or_set_aside(key, value, whole):
    """Finding 7 (parser property): whatever JSON sits in vf2.json — any value, or a good
    record with one field replaced — reading the PF under the lock never raises: the record
    is returned valid, or the file is set aside and the PF reads as empty."""
    from delegates.sriov.records import Records, validate
    doc = value if whole else json.loads(json.dumps(GOOD))
    if not whole:
        *path, last = key.split(".")
        target = doc
        for p in path:
            target = target[p]
        target[last] = value
    with tempfile.TemporaryDirectory() as d:
        os.makedirs(os.path.join(d, "pf0"))
        with open(os.path.join(d, "pf0", "vf2.json"), "w") as f:
            json.dump(doc, f)
        recs = Records(d)
        got = recs.of_pf("pf0", fix=True)
        left = os.listdir(os.path.join(d, "pf0"))
        if validate(doc, "pf0", 2) is None:
            assert got == [doc] and left == ["vf2.json"]
        else:
            assert got == [] and len(left) == 1 and left[0].startswith("vf2.json.damaged.")
            assert [a["why"] for a in recs.report("pf0")] == [validate(doc, "pf0", 2)]


@pytest.mark.parametrize("saved", ["absent", None, [], "x"])
def test_a_userspace_record_without_saved_is_set_aside(saved):
    """A VF record of a userspace (DPDK) VF has no saved.netdev; when its `saved` is missing or
    not an object the record is damaged and set aside, not an AttributeError from the reader
    (found by mypy: validate() called saved.get() on whatever `saved` was)."""
    from delegates.sriov.records import Records, validate
    doc = dict(json.loads(json.dumps(GOOD)), userspace="vfio-pci")
    del doc["saved"]["netdev"]
    assert validate(doc, "pf0", 2) is None      # the good userspace record
    if saved == "absent":
        del doc["saved"]
    else:
        doc["saved"] = saved
    assert validate(doc, "pf0", 2) == "saved.table is missing or malformed"
    with tempfile.TemporaryDirectory() as d:
        os.makedirs(os.path.join(d, "pf0"))
        with open(os.path.join(d, "pf0", "vf2.json"), "w") as f:
            json.dump(doc, f)
        recs = Records(d)
        assert recs.of_pf("pf0", fix=True) == []
        left = os.listdir(os.path.join(d, "pf0"))
        assert len(left) == 1 and left[0].startswith("vf2.json.damaged.")
