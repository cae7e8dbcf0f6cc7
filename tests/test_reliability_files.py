"""Issue 12, findings 8, 10, 12, 13, 15: state files under a full disk, damaged, shared by name,
reused by path, or planted as links. Real executables through the CNI protocol (netmeta in
thin mode -> Debian bridge with host-local or our fixipam) in real network namespaces.

  8  a nearly full disk (a small tmpfs) must fail ADD loudly (code 5) and leave nothing, never
     save a truncated DEL cache (cni/files.py atomic_write checks every write's length);
  10 a damaged fixipam reservation is quarantined, and CNI GC and `netmeta gc` release it
     (delegates/fixipam/store.py, gc.py; meta/ipamgc.py);
  12 an old sandbox's DEL removes only its own network-status file (meta/statusfile.py);
  13 a DEL with an empty CNI_NETNS never reuses a netns path another pod owns now
     (meta/netnsid.py);
  15 no state or lock file is opened through a symlink or in a directory another user can
     write (cni/files.py open_state)."""
import contextlib
import glob
import json
import os
import shutil
import subprocess
import tempfile

import pytest

from tests.cnirun import DEBIAN_CNI, VENV_BIN, cni, ip_json

pytestmark = pytest.mark.skipif(not os.path.exists(f"{DEBIAN_CNI}/bridge"), reason="needs Debian CNI plugins")


@pytest.fixture
def bridge(uid):
    name = f"nmr{uid}"
    yield name
    subprocess.run(["ip", "link", "del", name], capture_output=True)


def meta_conf(root, bridge, ipam, **kw):
    return dict({"cniVersion": "1.1.0", "name": "netmeta", "type": "netmeta", "mode": "thin",
                 "cniDir": str(root / "cache"),
                 "delegates": [{"cniVersion": "1.0.0", "name": "cluster", "type": "bridge", "bridge": bridge,
                                "isGateway": True, "ipam": ipam}]}, **kw)


def hostlocal(root, subnet):
    return {"type": "host-local", "subnet": subnet, "dataDir": str(root / "hostlocal")}


def fixipam(root, subnet):
    return {"type": "fixipam", "subnet": subnet, "dataDir": str(root / "fixipam")}


def args(name, uid="", ip=""):
    a = f"IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME={name}"
    return a + (f";K8S_POD_UID={uid}" if uid else "") + (f";IP={ip}" if ip else "")


def add(conf, cid, ns, a):
    return cni("netmeta", "ADD", conf, container_id=cid, netns=f"/var/run/netns/{ns}" if ns else "", args=a)


def delete(conf, cid, ns, a):
    return cni("netmeta", "DEL", conf, container_id=cid, netns=f"/var/run/netns/{ns}" if ns else "", args=a)


def pod_links(ns):
    return sorted(l["ifname"] for l in ip_json("link", "show", netns=ns) if l["ifname"] != "lo")


def pod_ips(ns, ifname="eth0"):
    return [a["local"] for l in ip_json("addr", "show", "dev", ifname, netns=ns) for a in l.get("addr_info", [])
            if a.get("family") == "inet"]


def leases(root):
    return sorted(os.path.basename(p) for p in glob.glob(str(root / "hostlocal" / "*" / "*")) if os.path.basename(p)[0].isdigit())


def files_in(d):
    return sorted(f for f in os.listdir(d) if f != ".lock") if os.path.isdir(d) else []


# ---------------------------------------------------------------- 8: a nearly full disk

@contextlib.contextmanager
def small_tmpfs(path, size_kb=256):
    os.makedirs(path)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_kb}k,mode=0700", "tmpfs", str(path)], check=True)
    try:
        yield str(path)
    finally:
        subprocess.run(["umount", str(path)], check=False)


def fill_to(mnt, free_pages):
    """Fill the tmpfs until exactly `free_pages` pages are left."""
    st = os.statvfs(mnt)
    fd = os.open(os.path.join(mnt, "filler"), os.O_WRONLY | os.O_CREAT, 0o600)
    os.write(fd, b"\0" * ((st.f_bfree - free_pages) * st.f_bsize))
    os.close(fd)
    assert os.statvfs(mnt).f_bfree == free_pages


def pages(n):
    return -(-n // 4096)


@pytest.mark.parametrize("which", ["first cache write (before any delegate)", "ready cache write (after the delegates)"])
def test_full_disk_fails_add_loudly_and_leaves_nothing(tmp_path, netns, bridge, which):
    """Finding 8. The DEL cache (here ~7 KB: a delegate conf with a large opaque field) on a
    tmpfs with too little room left. os.write writes what fits and returns the count, which
    main's atomic_write ignored: the truncated cache was renamed into place and ADD answered
    success (finding: 4096 of 6152 bytes), so the runtime's DEL later found a corrupt cache.
    Now the short write is detected (ENOSPC), the temp file removed and the ADD fails with
    code 5 after undoing what it attached (the "ready" write comes after the delegates ran)."""
    conf = meta_conf(tmp_path, bridge, hostlocal(tmp_path, "10.71.1.0/24"))
    conf["delegates"][0]["x-netmeta-test-padding"] = "p" * 6000   # plugins ignore unknown keys
    ns = netns()
    # measure both cache writes on an ordinary disk: "adding" (killed right after it) and "ready"
    r = cni("netmeta", "ADD", conf, container_id="fd0", netns=f"/var/run/netns/{ns}", args=args("fd"),
            extra_env={"NETMETA_FAULT": "meta.add.cached"})
    assert r.rc == -9
    adding = os.path.getsize(tmp_path / "cache" / "fd0-eth0.json")
    assert delete(conf, "fd0", ns, args("fd")).ok
    assert add(conf, "fd0", ns, args("fd")).ok
    ready = os.path.getsize(tmp_path / "cache" / "fd0-eth0.json")
    assert delete(conf, "fd0", ns, args("fd")).ok and leases(tmp_path) == [] and pod_links(ns) == []
    assert adding > 4096 and ready > adding

    with small_tmpfs(tmp_path / "disk") as mnt:
        conf["cniDir"] = os.path.join(mnt, "cache")
        os.mkdir(conf["cniDir"], 0o700)
        if which.startswith("first"):
            fill_to(mnt, pages(adding) - 1)
        else:   # the "adding" cache fits; the "ready" one beside it (temp file + old) does not
            fill_to(mnt, pages(adding) + pages(ready) - 1)
        r = add(conf, "fd1", ns, args("fd"))
        assert r.rc == 1 and r.out["code"] == 5, (r.out, r.stderr[-2000:])
        assert "No space left on device" in r.out["msg"] + r.out.get("details", ""), r.out
        assert os.listdir(conf["cniDir"]) == [], "a cache or temp file was left behind"
        assert pod_links(ns) == [] and leases(tmp_path) == []
        assert [l["ifname"] for l in ip_json("link", "show") if l.get("master") == bridge] == []
        # the runtime's DEL after the failed ADD succeeds, and with room again ADD works
        assert delete(conf, "fd1", ns, args("fd")).ok
        os.unlink(os.path.join(mnt, "filler"))
        assert add(conf, "fd1", ns, args("fd")).ok
        with open(os.path.join(conf["cniDir"], "fd1-eth0.json")) as f:
            assert json.load(f)["state"] == "ready"
        assert delete(conf, "fd1", ns, args("fd")).ok and os.listdir(conf["cniDir"]) == []


# ---------------------------------------------------------------- 10: a damaged fixipam reservation

def _damaged_reservation_setup(tmp_path, netns, bridge):
    conf = meta_conf(tmp_path, bridge, fixipam(tmp_path, "10.71.2.0/24"))
    pods = {c: netns(c) for c in ("a", "b", "c")}
    assert add(conf, "ra", pods["a"], args("pa", ip="10.71.2.7/24")).ok
    assert add(conf, "rb", pods["b"], args("pb", ip="10.71.2.8/24")).ok
    store = tmp_path / "fixipam" / "cluster"
    assert sorted(os.listdir(store)) == [".lock", "10.71.2.7", "10.71.2.8"]
    (store / "10.71.2.7").write_text('{"containerID": "ra", "ifn')   # damaged (e.g. a bad disk block)
    d = delete(conf, "ra", pods["a"], args("pa", ip="10.71.2.7/24"))
    assert d.ok, d.stdout
    # the damaged file is moved aside and reported; the address stays held (its real owner may
    # still use it) until GC
    assert os.path.exists(store / ".quarantine" / "10.71.2.7"), os.listdir(store)
    r = add(conf, "rc", pods["c"], args("pc", ip="10.71.2.7/24"))
    assert r.rc == 1 and r.out["code"] == 111 and "damaged" in r.out["msg"], r.out
    assert pod_links(pods["c"]) == []
    return conf, pods, store


def _address_is_free_again(conf, pods, store):
    r = add(conf, "rc", pods["c"], args("pc", ip="10.71.2.7/24"))
    assert r.ok, r.stdout
    assert pod_ips(pods["c"]) == ["10.71.2.7"] and pod_ips(pods["b"]) == ["10.71.2.8"]
    assert json.loads((store / "10.71.2.8").read_text())["containerID"] == "rb"   # B's reservation kept
    for cid, c, name, ip in (("rb", "b", "pb", "8"), ("rc", "c", "pc", "7")):
        assert delete(conf, cid, pods[c], args(name, ip=f"10.71.2.{ip}/24")).ok
    assert files_in(store) in ([], [".quarantine"]) and files_in(store / ".quarantine") == []


def test_damaged_fixipam_reservation_is_released_by_cni_gc(tmp_path, netns, bridge):
    """Finding 10 (CNI GC). A damaged reservation (torn JSON) matched no DEL and was never
    released: on main, fixipam read it as "owner ?", the meta plugin's GC only removed DEL
    caches, so the address was refused to every pod for ever. Now it is quarantined on read,
    and the meta plugin's GC reaches the fixipam networks its caches name (meta/ipamgc.py) and
    releases what no valid attachment owns (CNI SPEC v1.1.0 "GC": remove resources not in
    cni.dev/valid-attachments)."""
    conf, pods, store = _damaged_reservation_setup(tmp_path, netns, bridge)
    g = cni("netmeta", "GC", dict(conf, **{"cni.dev/valid-attachments": [{"containerID": "rb", "ifname": "eth0"}]}))
    assert g.ok, g.stdout + g.stderr.encode()
    _address_is_free_again(conf, pods, store)


def test_damaged_fixipam_reservation_is_released_by_netmeta_gc(tmp_path, netns, bridge):
    """Finding 10 (`netmeta gc`): the operator's GC reached VF records and dead DEL caches but
    no fixipam reservation. Now `netmeta status` reports the quarantined reservation, and
    `netmeta gc` releases the reservations of the networks the caches name whose owner has no
    live DEL cache (or VF record), the quarantined one included."""
    conf, pods, store = _damaged_reservation_setup(tmp_path, netns, bridge)
    cfg = tmp_path / "daemon.json"
    cfg.write_text(json.dumps({"cniDir": conf["cniDir"], "socketPath": str(tmp_path / "run" / "nm.sock"),
                               "httpAddr": ""}))
    st = subprocess.run([f"{VENV_BIN}/netmeta", "status", "--config", str(cfg), "-o", "json"], capture_output=True,
                        text=True, timeout=120)
    assert st.returncode == 0, st.stderr
    assert json.loads(st.stdout)["fixipam"] == [{"network": "cluster", "dataDir": str(tmp_path / "fixipam"),
                                                 "damaged": ["10.71.2.7"]}]
    g = subprocess.run([f"{VENV_BIN}/netmeta", "gc", "--config", str(cfg)], capture_output=True, text=True, timeout=120)
    assert g.returncode == 0, g.stderr
    assert "released 10.71.2.7 on cluster" in g.stderr
    st = subprocess.run([f"{VENV_BIN}/netmeta", "status", "--config", str(cfg)], capture_output=True, text=True, timeout=120)
    assert st.returncode == 0 and "DAMAGED" not in st.stdout, st
    _address_is_free_again(conf, pods, store)


def test_a_non_list_reservation_is_quarantined_not_overwritten(tmp_path, netns, bridge):
    """Finding 10, the other half of "validate on read": main read a reservation that parses
    but is no object (`[]`) as free and gave its address to the next pod. A damaged owner is
    unknown, so the address is held (quarantined) until GC, never handed out twice."""
    conf = meta_conf(tmp_path, bridge, fixipam(tmp_path, "10.71.3.0/24"))
    store = tmp_path / "fixipam" / "cluster"
    store.mkdir(parents=True, mode=0o700)
    (store / "10.71.3.9").write_text("[]")
    ns = netns()
    r = add(conf, "rq", ns, args("pq", ip="10.71.3.9/24"))
    assert r.rc == 1 and r.out["code"] == 111, r.out
    assert (store / ".quarantine" / "10.71.3.9").read_text() == "[]" and not (store / "10.71.3.9").exists()
    assert pod_links(ns) == [] and files_in(tmp_path / "cache") == []


# ---------------------------------------------------------------- 12: network-status of a re-created pod

@pytest.mark.parametrize("recreated", ["pod re-created (new UID)", "sandbox re-created (same UID)"])
def test_old_sandbox_del_keeps_the_live_pods_status_file(tmp_path, netns, bridge, recreated):
    """Finding 12. Kubernetes-free network-status was <statusDir>/<ns>/<name>.json: a pod
    re-created under the same name (StatefulSet web-0) or a new sandbox of the same pod wrote
    the same file, and the old sandbox's late DEL (the kubelet's Remove of the dead sandbox)
    deleted the live pod's status. Now the file is keyed by pod UID and container ID and DEL
    removes only its own."""
    conf = meta_conf(tmp_path, bridge, hostlocal(tmp_path, "10.71.4.0/24"), statusDir=str(tmp_path / "status"))
    old_ns, new_ns = netns("o"), netns("n")
    old_uid, new_uid = "0e8c0d5e-0000-4000-8000-000000000001", "0e8c0d5e-0000-4000-8000-000000000002"
    if recreated.startswith("sandbox"):
        new_uid = old_uid
    assert add(conf, "old1", old_ns, args("web-0", old_uid)).ok
    # the old sandbox's last DEL (Remove, no netns) comes after the new one's ADD
    r = add(conf, "new1", new_ns, args("web-0", new_uid))
    assert r.ok, r.stdout
    new_ip = pod_ips(new_ns)[0]
    assert delete(conf, "old1", "", args("web-0", old_uid)).ok
    statuses = [json.loads(open(p).read()) for p in glob.glob(str(tmp_path / "status" / "default" / "**" / "*.json"),
                                                              recursive=True)]
    assert [s[0]["ips"] for s in statuses] == [[new_ip]], statuses
    assert delete(conf, "new1", new_ns, args("web-0", new_uid)).ok
    assert [f for _, _, fs in os.walk(tmp_path / "status") for f in fs] == []


# ---------------------------------------------------------------- 13: a netns path reused by another pod

def test_del_without_netns_never_touches_the_pod_that_reuses_the_path(tmp_path, netns, bridge):
    """Finding 13. The CRI's second DEL (RemovePodSandbox) has no CNI_NETNS; main then reused
    the netns path from the DEL cache whenever that path existed. Once pod A's namespace is
    gone and pod B's is mounted at the same path, A's DEL ran the bridge plugin's DEL in B's
    namespace and deleted B's eth0. Now ADD records the namespace's identity (st_dev, st_ino)
    and DEL reuses the path only while it still names that namespace; otherwise the delegates
    get an empty CNI_NETNS (CNI SPEC v1.0 "DEL": plugins must tolerate a missing netns) and
    release what they hold outside it (here A's host-local lease)."""
    conf = meta_conf(tmp_path, bridge, hostlocal(tmp_path, "10.71.5.0/24"))
    name = netns("x")
    ra = add(conf, "na1", name, args("pa"))
    assert ra.ok, ra.stdout
    a_ip = ra.out["ips"][0]["address"].split("/")[0]
    subprocess.run(["ip", "netns", "del", name], check=True)   # A's sandbox is gone ...
    subprocess.run(["ip", "netns", "add", name], check=True)   # ... and B's netns takes its path
    rb = add(conf, "nb1", name, args("pb"))
    assert rb.ok, rb.stdout
    b_ip = rb.out["ips"][0]["address"].split("/")[0]
    d = delete(conf, "na1", "", args("pa"))
    assert d.ok, d.stdout
    assert pod_links(name) == ["eth0"] and pod_ips(name) == [b_ip], "pod A's DEL removed pod B's eth0"
    assert a_ip not in leases(tmp_path) and b_ip in leases(tmp_path)
    assert delete(conf, "nb1", name, args("pb")).ok and pod_links(name) == [] and leases(tmp_path) == []


# ---------------------------------------------------------------- 15: links planted in state directories

@pytest.fixture
def shared_root():
    """A directory tree a non-root user can traverse (tmp_path's parents are 0700)."""
    d = tempfile.mkdtemp(prefix="nmr-", dir="/tmp")
    os.chmod(d, 0o711)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def as_nobody(*cmd):
    return subprocess.run(["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", *cmd],
                          capture_output=True, text=True, check=False)


@pytest.mark.parametrize("how", ["user-writable directory", "link in a root-only directory", "directory is a link"])
def test_planted_lock_link_is_refused(shared_root, netns, bridge, how):
    """Finding 15. The network's fixipam directory holds `.lock`, opened O_CREAT by root on
    every ADD and DEL. On main it was opened through symlinks: a user who can write that
    directory (or plant a link there) made root create or truncate any file. Now every state
    and lock file is opened with O_NOFOLLOW and only in a directory that is no link, owned by
    root and not group/world-writable (cni/files.py open_state): the ADD fails with code 5
    naming the path, the target is never created and nothing is left attached."""
    from pathlib import Path
    root = Path(shared_root)
    conf = meta_conf(root, bridge, fixipam(root, "10.71.6.0/24"))
    victim = root / "victim"   # root-owned, 0711: only root can create it
    fix = root / "fixipam"
    fix.mkdir(mode=0o711)
    net = fix / "cluster"
    if how == "user-writable directory":   # e.g. a dataDir chowned to a service user by mistake
        net.mkdir(mode=0o755)
        os.chown(net, 65534, 65534)
        p = as_nobody("ln", "-s", str(victim), str(net / ".lock"))
        assert p.returncode == 0, p.stderr
        want = "owned by uid 65534"
    elif how == "link in a root-only directory":
        net.mkdir(mode=0o700)
        os.symlink(victim, net / ".lock")
        want = "symbolic link"
    else:
        elsewhere = root / "elsewhere"
        elsewhere.mkdir(mode=0o700)
        os.symlink(elsewhere, net)
        want = "symbolic link"
    ns = netns()
    r = add(conf, "sl1", ns, args("ps", ip="10.71.6.5/24"))
    assert r.rc == 1 and r.out["code"] == 5, r.out
    assert want in r.out["msg"] and str(net) in r.out["msg"], r.out
    assert not os.path.lexists(victim), "root created the file a planted link pointed to"
    assert pod_links(ns) == []
    assert [l["ifname"] for l in ip_json("link", "show") if l.get("master") == bridge] == []
    if how == "directory is a link":
        assert os.listdir(root / "elsewhere") == []
    # the rollback's fixipam DEL was refused too, so the DEL cache stays for the runtime's DEL
    # (engine: a failed delegate DEL keeps it); that DEL finishes once the operator has fixed it
    assert delete(conf, "sl1", ns, args("ps", ip="10.71.6.5/24")).out["code"] == 5
    os.unlink(net) if os.path.islink(net) else shutil.rmtree(net)
    assert delete(conf, "sl1", ns, args("ps", ip="10.71.6.5/24")).ok
    assert files_in(root / "cache") == [] and files_in(fix / "cluster") == []


def test_netmeta_gc_reclaims_a_cache_whose_netns_path_was_reused(tmp_path, netns, bridge):
    """Finding 13, the reconcile side: `netmeta gc` (and the daemon's start-up reconcile) undo
    DEL caches whose pod netns is gone; main judged "gone" by the path alone, so pod A's cache
    looked alive for as long as pod B's netns sat at the reused path, and A's lease leaked. Now
    a path naming another namespace than the one recorded counts as gone, and A's attachments
    are undone with an empty CNI_NETNS: B keeps its eth0."""
    conf = meta_conf(tmp_path, bridge, hostlocal(tmp_path, "10.71.7.0/24"))
    name = netns("y")
    ra = add(conf, "ga1", name, args("pa"))
    assert ra.ok, ra.stdout
    a_ip = ra.out["ips"][0]["address"].split("/")[0]
    subprocess.run(["ip", "netns", "del", name], check=True)
    subprocess.run(["ip", "netns", "add", name], check=True)
    rb = add(conf, "gb1", name, args("pb"))
    assert rb.ok, rb.stdout
    cfg = tmp_path / "daemon.json"
    cfg.write_text(json.dumps({"cniDir": conf["cniDir"], "socketPath": str(tmp_path / "run" / "nm.sock"),
                               "httpAddr": ""}))
    g = subprocess.run([f"{VENV_BIN}/netmeta", "gc", "--config", str(cfg)], capture_output=True, text=True, timeout=120)
    assert g.returncode == 0, g.stderr
    assert files_in(tmp_path / "cache") == ["gb1-eth0.json"]
    assert pod_links(name) == ["eth0"] and a_ip not in leases(tmp_path)
    assert delete(conf, "gb1", name, args("pb")).ok and leases(tmp_path) == []


def test_atomic_write_durable_flag_only_skips_the_fsyncs(tmp_path, monkeypatch):
    """durable=False (the sriov "ready" record rewrite, see delegates/sriov/plugin.py _attach)
    writes the same file the same way (temp + rename, 0600, no temp left), minus both fsyncs;
    the default still fsyncs the file and its directory."""
    from cni import files
    synced = []
    real = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(os.readlink(f"/proc/self/fd/{fd}")), real(fd)))
    p = tmp_path / "d" / "rec.json"
    files.write_json(str(p), {"a": 1})
    assert synced == [str(p) + f".tmp.{os.getpid()}", str(p.parent)]
    synced.clear()
    files.write_json(str(p), {"a": 2}, durable=False)
    assert synced == []
    assert json.loads(p.read_text()) == {"a": 2} and oct(p.stat().st_mode & 0o777) == "0o600"
    assert os.listdir(p.parent) == ["rec.json"]


def test_atomic_write_sync_dir_false_syncs_the_data_not_the_directory(tmp_path, monkeypatch):
    """sync_dir=False (meta's "ready" DEL-cache rewrite, meta/cache.py write(replacing=True)):
    the new data is synced before the rename, so after a power loss either version is whole;
    only the directory's fsync (the rename's durability) is skipped."""
    from cni import files
    from meta import cache
    synced = []
    real = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(os.readlink(f"/proc/self/fd/{fd}")), real(fd)))
    entry = {"containerID": "c1", "ifname": "eth0", "state": "adding"}
    cache.write(str(tmp_path), entry)
    p = cache.path(str(tmp_path), "c1", "eth0")
    assert synced == [p + f".tmp.{os.getpid()}", str(tmp_path)]
    synced.clear()
    cache.write(str(tmp_path), {**entry, "state": "ready"}, replacing=True)
    assert synced == [p + f".tmp.{os.getpid()}"]
    assert cache.read(str(tmp_path), "c1", "eth0")["state"] == "ready" and os.listdir(tmp_path) == ["c1-eth0.json"]
    assert oct(os.stat(p).st_mode & 0o777) == "0o600"
    synced.clear()
    files.write_json(p, {"a": 1}, durable=False, sync_dir=True)   # durable=False wins: no fsync at all
    assert synced == []
