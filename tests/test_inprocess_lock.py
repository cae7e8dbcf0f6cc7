"""Issue 12, finding 11: in-process calls (thin mode, the shim's fallback) for one container
are serialized too, by the same per-container flock the daemon takes (cni/oplock.py): an ADD
and a DEL that both succeed leave nothing behind. The lock files are root-only and never
followed through a symlink."""
import os
import stat
import threading

import pytest

from tests.cnirun import DEBIAN_CNI, VENV_BIN, cni, ip_json
from tests.polling import wait_for
from tests.stubplugins import HOLDPLUG

pytestmark = pytest.mark.skipif(not os.path.exists(f"{DEBIAN_CNI}/bridge"), reason="needs Debian CNI plugins")


@pytest.fixture
def pod(tmp_path):
    marks, bindir = tmp_path / "marks", tmp_path / "bin"
    marks.mkdir()
    bindir.mkdir()
    (bindir / "holdplug").write_text(HOLDPLUG.replace("MARKS", str(marks)).replace("SECONDS", "2"))
    (bindir / "holdplug").chmod(0o755)
    run = tmp_path / "run"
    conf = {"cniVersion": "1.0.0", "name": "netmeta", "type": "netmeta", "mode": "thin",
            "socketPath": str(run / "netmeta.sock"), "cniDir": str(tmp_path / "cache"),
            "delegates": [{"cniVersion": "1.0.0", "name": "hold", "type": "holdplug"}]}
    return {"conf": conf, "marks": marks, "path": f"{bindir}:{VENV_BIN}:{DEBIAN_CNI}", "cache": tmp_path / "cache",
            "locks": run / "locks"}


def call(p, command, cid, ns):
    return cni("netmeta", command, p["conf"], container_id=cid, netns=f"/var/run/netns/{ns}", path=p["path"],
               args="IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=lk", timeout=120)


def test_add_and_del_of_one_container_in_process_are_serialized(pod, netns):
    """The DEL arrives while the ADD is between its cache write and its answer. On main both
    ran at once: the DEL undid what existed and removed the cache, then the ADD finished and
    wrote its cache back: both answered success and the attachment (and its cache) stayed."""
    ns = netns()
    box = {}
    t = threading.Thread(target=lambda: box.update(add=call(pod, "ADD", "lk1", ns)))
    t.start()
    wait_for(lambda: (pod["marks"] / "lk1-eth0.started").exists(), "the ADD to be under way")
    d = call(pod, "DEL", "lk1", ns)
    t.join(60)
    assert box["add"].ok and d.ok, (box["add"].stdout, d.stdout)
    assert os.listdir(pod["marks"]) == [], "the ADD's attachment outlived the DEL that succeeded after it"
    assert os.listdir(pod["cache"]) == []


def test_the_lock_file_is_root_only_and_goes_with_the_call(pod, netns):
    ns = netns()
    t = threading.Thread(target=lambda: call(pod, "ADD", "lk5", ns))
    t.start()
    wait_for(lambda: (pod["marks"] / "lk5-eth0.started").exists(), "the ADD to be under way")
    lockfile = pod["locks"] / "lk5.lock"     # while held: 0600 in a 0700 directory of root's
    st, dst = os.lstat(lockfile), os.lstat(pod["locks"])
    t.join(60)
    assert stat.S_ISREG(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o600 and st.st_uid == 0
    assert stat.S_IMODE(dst.st_mode) == 0o700 and dst.st_uid == 0
    assert not lockfile.exists()
    assert call(pod, "DEL", "lk5", ns).ok


def test_two_adds_of_one_container_in_process_are_serialized(pod, netns):
    """The second ADD waits for the first, then undoes it and attaches again: one attachment,
    one ready cache, both answers success."""
    ns = netns()
    box = {}
    t = threading.Thread(target=lambda: box.update(a=call(pod, "ADD", "lk2", ns)))
    t.start()
    wait_for(lambda: (pod["marks"] / "lk2-eth0.started").exists(), "the first ADD to be under way")
    os.unlink(pod["marks"] / "lk2-eth0.started")
    b = call(pod, "ADD", "lk2", ns)
    t.join(60)
    assert box["a"].ok and b.ok
    assert sorted(os.listdir(pod["marks"])) == ["lk2-eth0", "lk2-eth0.started"]
    assert call(pod, "DEL", "lk2", ns).ok and os.listdir(pod["marks"]) == []


def test_a_planted_lock_symlink_is_not_followed(pod, netns, tmp_path):
    """Finding 15's rule for these locks: a `.lock` planted as a symlink makes the call fail
    (an I/O error in the protocol), and the file it points to is not created."""
    ns = netns()
    pod["locks"].mkdir(parents=True, mode=0o700)
    target = tmp_path / "victim"
    os.symlink(target, pod["locks"] / "lk3.lock")
    r = call(pod, "ADD", "lk3", ns)
    assert r.rc == 1 and r.out["code"] == 5, r.out
    assert not target.exists() and os.listdir(pod["marks"]) == []
    assert [l["ifname"] for l in ip_json("link", "show", netns=ns)] == ["lo"]


def test_a_lock_dir_others_can_write_is_refused(pod, netns):
    ns = netns()
    pod["locks"].mkdir(parents=True)
    os.chmod(pod["locks"], 0o777)
    r = call(pod, "ADD", "lk4", ns)
    # refused by the state-path check every state file goes through (cni.files.open_state), which
    # names the directory and why, before the lock is taken
    assert r.rc == 1 and r.out["code"] == 5 and str(pod["locks"]) in r.out["msg"], r.out
    assert "world-writable" in r.out["msg"], r.out
    assert [l["ifname"] for l in ip_json("link", "show", netns=ns)] == ["lo"]
