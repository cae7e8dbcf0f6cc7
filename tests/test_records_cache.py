"""The per-process cache of parsed VF records (delegates/sriov/records.py `_Cache`): a
long-lived process (the node daemon) must never act on a record another process has since
replaced, removed or created. The exec'd `sriov` (no daemon) and the daemon allocate on the same
PF under the same node lock, so what one writes must be what the other reads next.

The unit tests drive Records over a real directory, with the other writer a separate process;
the last test runs the real daemon and the real exec'd plugin on the simulated NIC."""
import json
import os
import subprocess
import sys
import time
import types

import pytest

from delegates.sriov import records as R
from tests.cnirun import cni, ip_json
from tests.daemonproc import DaemonProc
from tests.simnic import records

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def settle():
    """Wait until files written so far are older than the racy window (then cacheable)."""
    time.sleep(R._Cache.RACY_NS / 1e9 + 0.02)


def rec(vf: int, cid: str, state: str = "ready") -> dict:
    return {"containerID": cid, "ifname": "net1", "netns": f"/var/run/netns/{cid}", "network": "n",
            "pf": "pf0", "vf": vf, "state": state, "tmpName": "nmv0",
            "owner": {"token": "ab12", "netns": None, "containerID": cid},
            "saved": {"table": {"vlan": 0}, "netdev": {"name": f"pf0v{vf}", "mac": None, "mtu": 1500, "up": False}}}


def other_process(code: str, state_dir: str) -> None:
    """Run `code` with `recs` = Records(state_dir) in a separate Python process."""
    subprocess.run([sys.executable, "-c", "import sys; sys.path.insert(0, sys.argv[1]);"
                    "from delegates.sriov.records import Records; recs = Records(sys.argv[2]);" + code,
                    REPO, state_dir], check=True, timeout=60)


@pytest.fixture
def recs(tmp_path):
    return R.Records(str(tmp_path / "state"))


def cids(rs) -> list:
    return sorted((r["vf"], r["containerID"]) for r in rs)


def test_an_unchanged_record_is_served_from_the_cache_read_only(recs):
    recs.write(rec(1, "c1"))
    settle()
    first = recs.of_pf("pf0")
    hits = R.CACHE.hits
    again = recs.of_pf("pf0")
    assert R.CACHE.hits == hits + 1 and again[0] is first[0]      # not parsed again
    with pytest.raises(TypeError):
        again[0]["state"] = "allocated"                           # shared: read-only
    with pytest.raises(TypeError):
        again[0]["saved"]["netdev"].update(name="x")
    assert dict(again[0], state="allocated")["state"] == "allocated"   # a copy may change


def test_a_file_written_just_now_is_not_cached(recs):
    """Racy rule: a record whose times are within one clock tick of the read is read again."""
    recs.write(rec(1, "c1"))
    recs.of_pf("pf0")
    misses = R.CACHE.misses
    recs.of_pf("pf0")
    assert R.CACHE.misses == misses + 1


def test_settled_needs_a_tick_and_two_seconds_for_whole_second_times():
    ns = 1_700_000_000_123_456_789
    fine = types.SimpleNamespace(st_mtime_ns=ns, st_ctime_ns=ns)
    assert not R._Cache.settled(fine, ns + R._Cache.RACY_NS)
    assert R._Cache.settled(fine, ns + R._Cache.RACY_NS + 1)
    coarse = types.SimpleNamespace(st_mtime_ns=1_700_000_000 * 10**9, st_ctime_ns=1_700_000_000 * 10**9)
    assert not R._Cache.settled(coarse, coarse.st_ctime_ns + 10**9)   # a 1 s (or FAT 2 s) file system
    assert R._Cache.settled(coarse, coarse.st_ctime_ns + R._Cache.COARSE_RACY_NS + 1)
    later_ctime = types.SimpleNamespace(st_mtime_ns=ns - 10**10, st_ctime_ns=ns)   # utime() cannot hide a write
    assert not R._Cache.settled(later_ctime, ns + 1000)


def test_a_record_another_process_replaces_removes_or_adds_is_seen(recs):
    for vf, cid in ((1, "c1"), (2, "c2"), (3, "c3")):
        recs.write(rec(vf, cid))
    settle()
    assert cids(recs.of_pf("pf0")) == [(1, "c1"), (2, "c2"), (3, "c3")]   # all three cached
    # another process: VF 1 freed and given to another pod (the inode may be reused), VF 2 freed,
    # VF 4 allocated -- right away, within the racy window of nothing we hold
    other_process(f"recs.remove('pf0', 1); recs.write({rec(1, 'd1')!r}); recs.remove('pf0', 2);"
                  f"recs.write({rec(4, 'd4')!r})", recs.dir)
    assert cids(recs.of_pf("pf0")) == [(1, "d1"), (3, "c3"), (4, "d4")]
    assert cids(recs.find("d1", "net1")) == [(1, "d1")] and recs.find("c1", "net1") == []


def test_an_in_place_edit_of_the_same_size_is_seen(recs):
    """Not how netmeta writes (always rename), but an operator's editor may: same inode, same
    size; the cached entry was settled, so the edit's mtime/ctime differ."""
    recs.write(rec(1, "c1"))
    settle()
    assert cids(recs.of_pf("pf0")) == [(1, "c1")]
    path = recs.path("pf0", 1)
    with open(path) as f:
        text = f.read()
    ino = os.stat(path).st_ino
    with open(path, "r+") as f:
        f.write(text.replace('"c1"', '"e1"'))
    assert os.stat(path).st_ino == ino and len(open(path).read()) == len(text)
    assert cids(recs.of_pf("pf0")) == [(1, "e1")]


def test_a_cached_record_damaged_in_place_is_set_aside(recs):
    recs.write(rec(1, "c1"))
    settle()
    assert len(recs.of_pf("pf0", fix=True)) == 1
    path = recs.path("pf0", 1)
    size = os.path.getsize(path)
    with open(path, "w") as f:
        f.write("{" + " " * (size - 1))      # same size, not JSON
    assert recs.of_pf("pf0", fix=True) == []
    assert [a["kind"] for a in recs.aside("pf0")] == ["damaged"]


# ---------------------------------------------------------------- the daemon and the exec'd plugin

def _conf(nic) -> dict:
    return {"cniVersion": "1.0.0", "name": "cache-net", "type": "sriov", **nic}


def _call(cmd, nic, ns, cid, env):
    return cni("sriov", cmd, _conf(nic), netns=f"/var/run/netns/{ns}", ifname="net1", container_id=cid,
               extra_env=env)


def _vf_of(nic) -> dict:
    """{containerID: VF index} from the record files, read here (a third process)."""
    d = os.path.join(nic["stateDir"], nic["master"])
    out = {}
    for name in records(nic):
        with open(os.path.join(d, name)) as f:
            r = json.load(f)
        out[r["containerID"]] = r["vf"]
    return out


def _has_net1(ns) -> bool:
    return any(link["ifname"] == "net1" for link in ip_json("link", "show", netns=ns))


def test_daemon_with_a_cache_sees_what_the_execd_plugin_allocated(tmp_path, nic, netns, uid):
    """The daemon caches VF 0 and 1's records; then the exec'd sriov (no daemon) frees VF 1 and
    gives it to another pod (same file name, new content) and the daemon allocates again and
    DELs that pod. A cache that trusted its copy of vf1.json would DEL nothing (it would look
    for pod d in pod b's record) and leave the VF in the pod; one that missed the new file
    could hand VF 1 out twice."""
    d = DaemonProc(tmp_path / "d").start()
    via_daemon = {"NETMETA_SOCKET": d.socket}
    execd = {"NETMETA_SOCKET": str(tmp_path / "no-daemon.sock")}
    ns = {k: netns(k) for k in "abcde"}
    cid = {k: f"{k}{uid}" for k in "abcde"}
    try:
        for k in "ab":
            r = _call("ADD", nic, ns[k], cid[k], via_daemon)
            assert r.ok, r.stdout
        assert _vf_of(nic) == {cid["a"]: 0, cid["b"]: 1}
        settle()
        hits = d.metric("netmeta_sriov_record_reads_total", source="cache")
        r = _call("ADD", nic, ns["c"], cid["c"], via_daemon)   # the daemon reads (and caches) 0 and 1
        assert r.ok, r.stdout
        assert _vf_of(nic)[cid["c"]] == 2
        settle()
        assert _call("ADD", nic, ns["e"], cid["e"], via_daemon).ok   # VF 3: 0, 1, 2 served from the cache
        assert d.metric("netmeta_sriov_record_reads_total", source="cache") >= hits + 2
        # the exec'd plugin, in its own process, while the daemon holds its cache
        served = d.metric("netmeta_cni_requests_total", plugin="sriov")
        assert _call("DEL", nic, ns["b"], cid["b"], execd).ok
        r = _call("ADD", nic, ns["d"], cid["d"], execd)
        assert r.ok, r.stdout
        assert d.metric("netmeta_cni_requests_total", plugin="sriov") == served   # not through the daemon
        assert _vf_of(nic) == {cid["a"]: 0, cid["c"]: 2, cid["d"]: 1, cid["e"]: 3}
        # back to the daemon: VF 1 is pod d's, and the daemon finds it there
        r = _call("ADD", nic, ns["b"], cid["b"], via_daemon)
        assert r.ok, r.stdout
        vfs = _vf_of(nic)
        assert vfs[cid["b"]] == 4 and len(set(vfs.values())) == len(vfs) == 5   # no VF twice
        assert _call("DEL", nic, ns["d"], cid["d"], via_daemon).ok
        assert not _has_net1(ns["d"]) and cid["d"] not in _vf_of(nic)
        assert _has_net1(ns["b"]) and _has_net1(ns["e"])
    finally:
        for k in "abcde":
            _call("DEL", nic, ns[k], cid[k], via_daemon)
        d.stop()
    assert records(nic) == []
