"""The node VF availability publisher (meta/daemon/availability.py) end to end: the test Kubernetes API
server over TLS with netmeta's client (meta.kube.api.Kube, a token that may only get and
patch nodes), a simulated SR-IOV NIC with 8 VFs, and VFs taken and given back by real sriov
ADD/DEL through the executable. API writes are counted in the server's request log."""
import json
import os
import stat
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from delegates.sriov.topology import Topology
from meta.daemon.availability import (
    AVAILABLE_LABEL,
    COUNT_ANNOTATION,
    DETAIL_ANNOTATION,
    NodeStatusPublisher,
    desired_state,
    merge_patch,
    observed_state,
)
from tests.cnirun import cni
from tests.kubeapi.server import KubeAPIServer

NODE_RULES = [("get", "nodes"), ("patch", "nodes")]     # DESIGN.md RBAC: nothing else for this
MERGE = "application/merge-patch+json"


@pytest.fixture(scope="module")
def api():
    srv = KubeAPIServer(tokens={"admin-token": "*",
                                "node-token": {"user": "system:serviceaccount:kube-system:netmeta",
                                               "rules": NODE_RULES}}).start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def kube(api, tmp_path_factory):
    from meta.kube.api import Kube
    return Kube(api.kubeconfig(str(tmp_path_factory.mktemp("kube") / "kubeconfig"), token="node-token"), timeout=5)


@pytest.fixture
def node(api, uid):
    name = f"node-{uid}"
    api.create({"apiVersion": "v1", "kind": "Node",
                "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name},
                             "annotations": {"other/owner": "kubelet"}}})
    yield name
    api.delete("nodes", name)


@pytest.fixture
def publisher(kube, node):
    """Factory of publishers for `node` (short backoff for tests); all stopped afterwards."""
    made = []

    def make(pfs, **kw):
        kw.setdefault("backoff", 0.05)
        kw.setdefault("min_interval", 0.0)   # rate limiting has its own test
        if "status_file" not in kw:
            kw.setdefault("kube", kube)
        p = NodeStatusPublisher(node, pfs, **kw)
        made.append(p)
        return p

    yield make
    for p in made:
        p.stop(2)


class VFs:
    """Take and give back VFs with the real sriov executable, each into its own netns."""

    def __init__(self, nic, netns, uid):
        self.nic, self.netns, self.uid = nic, netns, uid
        self.conf = dict(nic, cniVersion="1.0.0", name="sriov-net", type="sriov")
        self.held: list[tuple[str, str]] = []
        self.n = 0

    def add(self, count: int) -> None:
        jobs = []
        for _ in range(count):
            self.n += 1
            jobs.append((self.netns(f"v{self.n}"), f"c{self.uid}{self.n}"))

        def one(job):
            # the pod's UID as kubelet/Multus pass it: the detail names the pods holding VFs
            r = cni("sriov", "ADD", self.conf, netns=f"/var/run/netns/{job[0]}", ifname="net1", container_id=job[1],
                    args=f"IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=p{job[1]};K8S_POD_UID=uid-{job[1]}")
            assert r.ok, r.stdout + r.stderr.encode()
            return job
        with ThreadPoolExecutor(4) as ex:
            self.held += list(ex.map(one, jobs))

    def delete(self, count: int) -> None:
        jobs = [self.held.pop() for _ in range(count)]

        def one(job):
            r = cni("sriov", "DEL", self.conf, netns=f"/var/run/netns/{job[0]}", ifname="net1", container_id=job[1])
            assert r.ok, r.stdout + r.stderr.encode()
        with ThreadPoolExecutor(4) as ex:
            list(ex.map(one, jobs))


@pytest.fixture
def vfs(nic, netns, uid):
    v = VFs(nic, netns, uid)
    yield v
    v.delete(len(v.held))


def held(api, name):
    md = api.get("nodes", name)["metadata"]
    return md.get("annotations") or {}, md.get("labels") or {}


def wait_count(api, name, value, timeout=10.0) -> float:
    """Seconds until the node's vfCount is `value`."""
    t0 = time.monotonic()
    api.wait_for(lambda: held(api, name)[0].get(COUNT_ANNOTATION) == value, timeout)
    return time.monotonic() - t0


def patches(api, name, **kw) -> int:
    return api.count(method="PATCH", resource="nodes", name=name, **kw)


def detail(api, name) -> dict:
    return json.loads(held(api, name)[0][DETAIL_ANNOTATION])


def numvfs_path(nic) -> str:
    return os.path.join(nic["sysfsRoot"], "class", "net", nic["master"], "device", "sriov_numvfs")


def set_numvfs(nic, n: int) -> None:
    """Change the VF count the way an operator does (echo N > sriov_numvfs), behind netmeta's back."""
    tmp = numvfs_path(nic) + ".new"            # atomic, as sysfs is: a reader never sees ""
    with open(tmp, "w") as f:
        f.write(f"{n}\n")
    os.replace(tmp, numvfs_path(nic))


def test_start_publishes_count_label_and_detail(api, node, nic, publisher):
    p = publisher([nic]).start()
    assert p.flush(5)
    ann, labels = held(api, node)
    assert ann[COUNT_ANNOTATION] == "8" and labels[AVAILABLE_LABEL] == "true"
    assert detail(api, node) == {nic["master"]: {"total": 8, "free": 8, "allocated": 0, "pfAttached": False, "pods": []}}
    # what others own on the node is untouched
    assert ann["other/owner"] == "kubelet" and labels["kubernetes.io/hostname"] == node
    # start-up cost: one GET of the node by name, one merge PATCH; never a LIST of nodes
    assert api.count(method="GET", resource="nodes", name=node) == 1
    assert patches(api, node) == 1 and patches(api, node, content_type=MERGE) == 1
    assert api.count(verb="list", resource="nodes") == 0 and api.count(verb="watch", resource="nodes") == 0
    body = api.find(method="PATCH", resource="nodes", name=node)[0].body
    assert set(body) == {"metadata"} and set(body["metadata"]) == {"annotations", "labels"}
    s = p.stats()
    assert (s["patches"], s["patch_failures"], s["free"], s["total"], s["allocated"], s["in_sync"]) == \
        (1, 0, 8, 8, 0, True)
    assert s["last_publish"] and s["last_publish"] <= time.time()


def test_vf_lifecycle_one_patch_per_burst(api, node, nic, vfs, publisher):
    p = publisher([nic], window=0.2).start()
    assert p.flush(5)
    base = patches(api, node)

    def burst():   # the daemon's ADD/DEL handlers notify from many threads at once
        threads = [threading.Thread(target=lambda: [p.notify() for _ in range(20)]) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

    vfs.add(3)
    burst()
    took = wait_count(api, node, "5", timeout=3)
    time.sleep(0.5)    # > 2 windows: nothing else is coming
    assert patches(api, node) == base + 1, "80 notify() calls in one window must cost one PATCH"
    assert took < 2.0, took   # window 0.2 s + one count + one PATCH; loose for a loaded machine
    assert detail(api, node)[nic["master"]] == {"total": 8, "free": 5, "allocated": 3, "pfAttached": False,
                                                "pods": sorted(f"uid-{cid}" for _, cid in vfs.held)}
    assert held(api, node)[1][AVAILABLE_LABEL] == "true"
    # the change sent only what changed: both annotations; the label stays "true"
    last = api.find(method="PATCH", resource="nodes", name=node)[-1].body
    assert last == {"metadata": {"annotations": {COUNT_ANNOTATION: "5",
                                                 DETAIL_ANNOTATION: held(api, node)[0][DETAIL_ANNOTATION]}}}

    vfs.add(5)          # all 8 taken: the label goes, the count says 0
    burst()
    wait_count(api, node, "0", timeout=3)
    assert AVAILABLE_LABEL not in held(api, node)[1]
    last = api.find(method="PATCH", resource="nodes", name=node)[-1].body
    assert last["metadata"]["labels"] == {AVAILABLE_LABEL: None}     # merge-patch null removes it
    assert detail(api, node)[nic["master"]]["allocated"] == 8

    vfs.delete(1)       # one back: so is the label
    p.notify()
    wait_count(api, node, "1", timeout=3)
    assert held(api, node)[1][AVAILABLE_LABEL] == "true"
    time.sleep(0.3)
    assert patches(api, node) == base + 3
    s = p.stats()
    assert (s["free"], s["allocated"], s["patch_failures"]) == (1, 7, 0)
    print(f"\nCONVERGENCE notify burst -> node shows the change: {took * 1000:.0f} ms (window 200 ms)")


def test_unchanged_counts_send_nothing_even_across_restarts(api, node, nic, publisher):
    first = publisher([nic]).start()
    assert first.flush(5) and first.stop(5)
    assert patches(api, node) == 1
    # a restarted daemon (or one after a crash): the node already holds the right value
    second = publisher([nic], period=0.1).start()
    assert second.flush(5)
    for _ in range(10):
        second.notify()
    assert second.flush(5)
    time.sleep(0.6)     # several periodic reconciles with the same counts
    s = second.stats()
    assert s["reconciles"] >= 3 and s["counts"] >= 4 and s["skipped_unchanged"] >= 4, s
    assert s["patches"] == 0 and patches(api, node) == 1
    assert api.count(method="GET", resource="nodes", name=node) == 2   # one per start-up


def test_node_overwritten_by_someone_else_is_put_back(api, node, nic, publisher):
    p = publisher([nic], period=0.1, node_resync=0.3).start()
    assert p.flush(5)
    api.patch("nodes", node, {"metadata": {"annotations": {COUNT_ANNOTATION: "99"},
                                           "labels": {AVAILABLE_LABEL: None}}})
    took = wait_count(api, node, "8", timeout=3)
    assert held(api, node)[1][AVAILABLE_LABEL] == "true"
    assert p.stats()["reads"] >= 2 and patches(api, node) == 2
    print(f"\nCONVERGENCE node overwritten by another writer -> put back: {took * 1000:.0f} ms "
          f"(period 100 ms, node re-read every 300 ms)")


def test_vf_change_outside_netmeta_shows_within_the_period(api, node, nic, netns, publisher):
    p = publisher([nic], period=0.5).start()
    assert p.flush(5)
    set_numvfs(nic, 6)                          # an operator lowers sriov_numvfs (no notify)
    took_numvfs = wait_count(api, node, "6", timeout=3)
    assert detail(api, node)[nic["master"]]["total"] == 6
    # a VF netdev leaves the host netns behind netmeta's back
    foreign = netns("foreign")
    vf5 = Topology(nic["sysfsRoot"]).vf_netdev(nic["master"], 5)
    subprocess.run(["ip", "link", "set", vf5, "netns", foreign], check=True)
    took_netdev = wait_count(api, node, "5", timeout=3)
    assert detail(api, node)[nic["master"]] == {"total": 6, "free": 5, "allocated": 0, "pfAttached": False, "pods": []}
    assert p.stats()["patch_failures"] == 0 and patches(api, node) == 3
    assert took_numvfs < 2.5 and took_netdev < 2.5, (took_numvfs, took_netdev)   # period 0.5 s
    print(f"\nCONVERGENCE outside change (period 500 ms): sriov_numvfs {took_numvfs * 1000:.0f} ms, "
          f"VF netdev gone {took_netdev * 1000:.0f} ms")


@pytest.mark.parametrize("fault", ["409", "500", "down-1s", "down-at-start"])
def test_api_failures_still_converge(api, node, nic, publisher, fault):
    p = publisher([nic], backoff=0.1)
    try:
        if fault == "down-at-start":          # the daemon starts while the API is away
            api.set_down(True)
            p.start()
            time.sleep(0.5)
            t0 = time.monotonic()
            api.set_down(False)
            took = wait_count(api, node, "8", timeout=10)
            since = "API back"
        else:
            p.start()
            assert p.flush(5)
            set_numvfs(nic, 7)
            if fault == "down-1s":
                api.set_down(True)
            else:
                api.inject(method="PATCH", resource="nodes", path_regex=f"/nodes/{node}$", status=int(fault))
            t0 = time.monotonic()
            p.notify()
            if fault == "down-1s":
                time.sleep(1.0)
                assert held(api, node)[0][COUNT_ANNOTATION] == "8"
                api.set_down(False)
            wait_count(api, node, "7", timeout=10)
            took = time.monotonic() - t0
            since = "notify" if fault in ("409", "500") else "notify (API down 1 s of it)"
    finally:
        api.set_down(False)
    assert p.flush(5)
    s = p.stats()
    assert s["patch_failures"] >= 1 and s["in_sync"] and s["last_error"] is None, s
    if fault in ("409", "500"):
        assert s["patch_failures"] == 1 and patches(api, node, status=int(fault)) == 1
        assert took < 2.5, took
    else:
        assert took < 1.0 + 4.0, took
    print(f"\nCONVERGENCE {fault}: {took * 1000:.0f} ms after {since}; {s['patch_failures']} failed attempt(s)")


def test_notify_never_waits_for_a_hanging_api(api, node, nic, publisher):
    p = publisher([nic], window=0.0).start()
    assert p.flush(5)
    api.inject(method="PATCH", resource="nodes", path_regex=f"/nodes/{node}$", hang=1.0)
    set_numvfs(nic, 7)
    start = time.monotonic()
    p.notify()
    api.wait_for(lambda: api.faults.pending() == [])    # the PATCH reached the server: it hangs
    t0 = time.monotonic()
    for _ in range(1000):
        p.notify()
    per_call = (time.monotonic() - t0) / 1000
    wait_count(api, node, "7", timeout=10)
    took = time.monotonic() - start
    assert per_call < 0.005, per_call
    assert p.stats()["patch_failures"] == 1
    print(f"\nCONVERGENCE PATCH hung 1 s then dropped: notify() {per_call * 1e6:.1f} us/call meanwhile; "
          f"node right {took * 1000:.0f} ms after notify")


def test_stop_flushes_a_pending_change(api, node, nic, publisher):
    p = publisher([nic], window=30.0).start()   # a window that would never end in this test
    assert p.flush(5)
    set_numvfs(nic, 7)
    p.notify()
    time.sleep(0.3)
    assert held(api, node)[0][COUNT_ANNOTATION] == "8"   # still coalescing
    t0 = time.monotonic()
    assert p.stop(5)
    took = time.monotonic() - t0
    assert held(api, node)[0][COUNT_ANNOTATION] == "7" and took < 2.0, took
    assert not p._thread.is_alive()
    print(f"\nCONVERGENCE stop() flush: {took * 1000:.0f} ms")


def test_stop_gives_up_after_its_timeout_when_the_api_is_away(api, node, nic, publisher):
    p = publisher([nic]).start()
    assert p.flush(5)
    try:
        api.set_down(True)
        set_numvfs(nic, 4)
        p.notify()
        t0 = time.monotonic()
        assert p.stop(0.5) is False
        assert time.monotonic() - t0 < 2.5 and not p._thread.is_alive()
    finally:
        api.set_down(False)
    assert p.stats()["patch_failures"] >= 1


def test_status_file_sink_and_a_missing_pf(nic, uid, tmp_path, publisher):
    gone = dict(nic, master=f"gone{uid}")
    path = str(tmp_path / "run" / "vf-status.json")
    p = publisher([nic, gone], status_file=path).start()
    assert p.flush(5)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    with open(path) as f:
        doc = json.load(f)
    assert set(doc) == {"annotations", "labels"} and doc["labels"] == {AVAILABLE_LABEL: "true"}
    assert doc["annotations"][COUNT_ANNOTATION] == "8"
    d = json.loads(doc["annotations"][DETAIL_ANNOTATION])
    assert d[nic["master"]] == {"total": 8, "free": 8, "allocated": 0, "pfAttached": False, "pods": []}
    assert d[gone["master"]]["free"] == 0 and "failed to find PF" in d[gone["master"]]["error"]
    set_numvfs(nic, 0)
    p.notify()
    assert p.flush(5)
    with open(path) as f:
        doc = json.load(f)
    assert doc["annotations"][COUNT_ANNOTATION] == "0" and doc["labels"] == {}
    assert p.stats()["patches"] == 2


def test_constructor_refuses_ambiguous_setups(kube, tmp_path):
    nic = {"master": "ens1f0", "sysfsRoot": str(tmp_path), "backend": "sim", "stateDir": str(tmp_path)}
    with pytest.raises(ValueError):
        NodeStatusPublisher("n", [nic])                                   # no sink
    with pytest.raises(ValueError):
        NodeStatusPublisher("n", [nic], kube, status_file=str(tmp_path / "f"))
    with pytest.raises(ValueError):
        NodeStatusPublisher("n", [nic, dict(nic)], kube)                   # the same PF twice
    with pytest.raises(ValueError):
        NodeStatusPublisher("", [nic], kube)                              # no node name


# -- the merge-patch body, against an independent RFC 7386 merge ---------------------------------

def rfc7386(target, patch):
    if not isinstance(patch, dict):
        return patch
    out = dict(target) if isinstance(target, dict) else {}
    for k, v in patch.items():
        if v is None:
            out.pop(k, None)
        else:
            out[k] = rfc7386(out.get(k), v)
    return out


_pf = st.fixed_dictionaries({"total": st.integers(0, 64), "free": st.integers(0, 64),
                             "allocated": st.integers(0, 64), "pfAttached": st.booleans()})
_state = st.builds(lambda d: desired_state(sum(v["free"] for v in d.values()), d),
                   st.dictionaries(st.sampled_from(["ens1f0", "ens1f1", "ens2f0"]), _pf, max_size=3))


@settings(max_examples=100, deadline=None)
@given(old=st.one_of(st.none(), _state), new=_state)
def test_merge_patch_turns_what_the_node_holds_into_what_it_should(old, new):
    node = {"metadata": {"annotations": {"other": "x"}, "labels": {"keep": "y"}}}
    if old is not None:
        node = rfc7386(node, {"metadata": {k: dict(v) for k, v in old.items()}})
    body = merge_patch(old, new)
    after = rfc7386(node, body)
    assert observed_state(after) == new
    assert after["metadata"]["annotations"]["other"] == "x" and after["metadata"]["labels"]["keep"] == "y"
    assert (body == {"metadata": {}}) == (old == new)
    assert (AVAILABLE_LABEL in new["labels"]) == (int(new["annotations"][COUNT_ANNOTATION]) > 0)


def test_count_changes_are_rate_limited_but_label_changes_are_not(api, node, nic, publisher):
    """A count-only change waits min_interval after the last PATCH (bursts cost few PATCHes);
    the label (free VFs reaching 0) is published at the end of the window regardless."""
    p = publisher([nic], min_interval=1.5, window=0.05).start()
    assert p.flush(5)
    base = patches(api, node)
    set_numvfs(nic, 6)
    p.notify()
    time.sleep(0.5)
    assert held(api, node)[0][COUNT_ANNOTATION] == "8" and patches(api, node) == base   # held back
    t0 = time.monotonic()
    set_numvfs(nic, 0)          # no free VF: the label must go now
    p.notify()
    wait_count(api, node, "0", timeout=5)
    took = time.monotonic() - t0
    assert took < 0.9 and AVAILABLE_LABEL not in held(api, node)[1], took
    assert patches(api, node) == base + 1
