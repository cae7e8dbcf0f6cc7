"""The scheduler extender in bind mode (the shipped one: kube-scheduler's `bindVerb` is this
extender) and the identity-based accounting of both modes.

kube-scheduler's side is played as it plays it (pkg/scheduler/extender.go, HTTPExtender: Filter,
Prioritize, Bind; schedule_one.go): for each pod a scheduling cycle filters and prioritizes,
picks a best-scoring node (ties broken at random, selectHost), and binds; a failed bind sends
the pod back to the queue and it is tried again. Nodes publish nothing while a round runs (no
node daemon here), so every placement below happens before any node count changes: the
"first round" of the issue.
"""
import json
import random
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from meta.extender.ledger import TOTAL, Ledger
from meta.extender.need import Need
from tests.kubeapi import errors as kerrors
from tests.kubeapi import objects
from tests.test_extender import api, extender, make_pod, node_obj  # noqa: F401 - fixtures

ONE = Need(1)


def detail(free, total, pods=()):
    """sriov/vfDetail of a one-PF node as meta/daemon/availability.py writes it, naming its holders."""
    return {"pf0": {"total": total, "free": free, "allocated": total - free, "pfAttached": False,
                    "pods": sorted(pods)}}


def add_nodes(api, uid, frees, total=None):
    names = []
    for i, free in enumerate(frees):
        name = f"b{i}-{uid}"
        api.create(node_obj(name, free, detail(free, total or max(free, 1))))
        names.append(name)
    return names


def schedule(svc, pod, names, rng, attempts=20):
    """One pod through kube-scheduler's cycles until bound or unschedulable: the node, or None."""
    for _ in range(attempts):
        passed = svc.call("filter", pod, names=names)["NodeNames"]
        if not passed:
            return None
        scores = svc.call("prioritize", pod, names=passed)
        top = max(s["Score"] for s in scores)
        node = rng.choice([s["Host"] for s in scores if s["Score"] == top])
        if svc.bind(pod, node)["Error"] == "":
            return node
    raise AssertionError(f"pod {pod['metadata']['name']} neither bound nor refused in {attempts} cycles")


def burst(api, svc, uid, names, pods, workers=16):
    rng = random.Random(uid)
    lock = threading.Lock()
    made = [make_pod(api, f"x{i}-{uid}", "sriov-net") for i in range(pods)]

    def one(pod):
        with lock:
            r = random.Random(rng.random())
        return schedule(svc, pod, names, r)
    with ThreadPoolExecutor(workers) as pool:
        placed = list(pool.map(one, made))
    return made, placed


def bound_in_api(api, made):
    out = Counter()
    for pod in made:
        node = (api.get("pods", pod["metadata"]["name"], "default")["spec"] or {}).get("nodeName")
        if node:
            out[node] += 1
    return out


@pytest.fixture
def cleanup(api):
    made = []
    yield made
    for kind, name in made:
        api.delete(kind, name, "default" if kind == "pods" else None)


# -- the "must show" ---------------------------------------------------------------------

def test_first_round_places_as_many_pods_as_free_vfs(api, extender, uid, cleanup):
    """200 one-VF pods in parallel on 10 nodes x 15 free VFs: 150 placed, none over a node's
    free count, 50 refused by the filter; all before any node publishes a change."""
    names = add_nodes(api, uid, [15] * 10)
    cleanup.extend(("nodes", n) for n in names)
    svc = extender(mode="bind")
    made, placed = burst(api, svc, uid, names, 200)
    cleanup.extend(("pods", p["metadata"]["name"]) for p in made)
    per_node = Counter(n for n in placed if n)
    assert sum(per_node.values()) == 150 and placed.count(None) == 50
    assert per_node == {n: 15 for n in names}
    assert bound_in_api(api, made) == per_node          # the bindings really landed
    assert all(api.get("nodes", n)["metadata"]["annotations"]["sriov/vfCount"] == "15" for n in names)
    assert {n: svc.ledger.held(n) for n in names} == {n: {TOTAL: 15} for n in names}


def test_sparse_free_vfs_among_1000_nodes(api, extender, uid, cleanup):
    """150 nodes with one free VF among 1,000: 150 pods placed without waiting for a TTL (the
    filter-mode ledger admitted one per bind observation)."""
    frees = [1] * 150 + [0] * 850
    random.Random(uid).shuffle(frees)
    names = add_nodes(api, uid, frees, total=4)
    cleanup.extend(("nodes", n) for n in names)
    svc = extender(mode="bind", ttl=3600)
    made, placed = burst(api, svc, uid, names, 200)
    cleanup.extend(("pods", p["metadata"]["name"]) for p in made)
    per_node = Counter(n for n in placed if n)
    assert sum(per_node.values()) == 150 and max(per_node.values()) == 1
    assert {n for n, f in zip(names, frees) if f} == set(per_node)
    assert bound_in_api(api, made) == per_node


def test_filter_mode_round_is_bounded_by_one_node(uid):
    """The documented limit of mode "filter" (no bindVerb): before any binding is seen, a round
    admits only the largest free count of one node (10 x 15 free: 15 of 200)."""
    ledger = Ledger(ttl=60)
    names = [f"n{i}" for i in range(10)]
    for n in names:
        ledger.observe_node(n, node_obj(n, 15, detail(15, 15)))
    admitted = sum(any(v.status == "fit" for v in ledger.decide(f"p{i}", ONE, names, assume=True).values())
                   for i in range(200))
    assert admitted == 15


def test_bind_refuses_when_the_node_filled_meanwhile(api, extender, uid, cleanup):
    (name,) = add_nodes(api, uid, [1])
    cleanup.append(("nodes", name))
    svc = extender(mode="bind")
    a, b = (make_pod(api, f"{x}-{uid}", "sriov-net") for x in "ab")
    cleanup.extend(("pods", p["metadata"]["name"]) for p in (a, b))
    assert svc.call("filter", a, names=[name])["NodeNames"] == [name]
    assert svc.call("filter", b, names=[name])["NodeNames"] == [name]    # no promise at filter time
    assert svc.bind(a, name) == {"Error": ""}
    err = svc.bind(b, name)["Error"]
    assert err.startswith(f"node {name} can no longer take pod default/b-{uid}") and "1 free, 1 promised" in err
    assert (api.get("pods", f"b-{uid}", "default")["spec"]).get("nodeName") is None
    assert svc.bind(a, name) == {"Error": ""}           # a retried bind is not a second pod
    assert svc.ledger.held(name) == {TOTAL: 1}
    assert svc.call("filter", b, names=[name])["NodeNames"] == []


def test_holds_end_by_identity_not_by_count(api, extender, uid, cleanup):
    """The node names the pods holding its VFs: a pod's hold ends when its node names it, not
    when some count drops. A VF taken behind the extender's back lowers the count and blocks
    nothing that is free."""
    (name,) = add_nodes(api, uid, [3], total=3)
    cleanup.append(("nodes", name))
    svc = extender(mode="bind")
    a, b = (make_pod(api, f"{x}-{uid}", "sriov-net") for x in "ab")
    cleanup.extend(("pods", p["metadata"]["name"]) for p in (a, b))
    assert svc.bind(a, name) == {"Error": ""} and svc.bind(b, name) == {"Error": ""}
    assert svc.ledger.held(name) == {TOTAL: 2}
    # someone else takes a VF (a pod the extender never saw; the node names it)
    api.patch("nodes", name, {"metadata": {"annotations": {
        "sriov/vfCount": "2", "sriov/vfDetail": json.dumps(detail(2, 3, ["stranger"]))}}})
    assert api.wait_for(lambda: svc.ext.ledger._free[name].total == 2, 5)
    assert svc.ledger.held(name) == {TOTAL: 2}       # a and b still hold theirs
    c = make_pod(api, f"c-{uid}", "sriov-net")
    cleanup.append(("pods", f"c-{uid}"))
    assert svc.call("filter", c, names=[name])["NodeNames"] == []   # 2 free, 2 promised: full
    # a's network comes up: the node names it
    api.patch("nodes", name, {"metadata": {"annotations": {
        "sriov/vfCount": "1", "sriov/vfDetail": json.dumps(detail(1, 3, ["stranger", a["metadata"]["uid"]]))}}})
    assert api.wait_for(lambda: svc.ledger.held(name) == {TOTAL: 1}, 5)
    assert svc.call("filter", c, names=[name])["NodeNames"] == []   # 1 free, b's promise
    # b is deleted before its network came up: its VF is free again
    api.delete("pods", f"b-{uid}", "default")
    assert api.wait_for(lambda: not svc.ledger.held(name), 5)
    assert svc.call("filter", c, names=[name])["NodeNames"] == [name]


def test_pod_bound_by_someone_else_is_held_when_seen(api, extender, uid, cleanup):
    """A pod created with spec.nodeName (no scheduler) that asks for VFs: held on its node as
    soon as the pod watch shows it, until its node names it."""
    (name,) = add_nodes(api, uid, [2], total=2)
    cleanup.append(("nodes", name))
    svc = extender(mode="bind")
    pre = api.create(objects.pod(f"pre-{uid}", "default", node=name,
                                 annotations={"k8s.v1.cni.cncf.io/networks": "sriov-net,sriov-net"}))
    cleanup.append(("pods", f"pre-{uid}"))
    assert api.wait_for(lambda: svc.ledger.held(name) == {TOTAL: 2}, 5)
    late = make_pod(api, f"late-{uid}", "sriov-net")
    cleanup.append(("pods", f"late-{uid}"))
    assert svc.call("filter", late, names=[name])["NodeNames"] == []
    api.patch("nodes", name, {"metadata": {"annotations": {
        "sriov/vfCount": "0", "sriov/vfDetail": json.dumps(detail(0, 2, [pre["metadata"]["uid"]]))}}})
    assert api.wait_for(lambda: not svc.ledger.held(name), 5)


def test_bind_needs_no_earlier_filter_and_reports_api_refusals(api, extender, uid, cleanup):
    """A bind for a pod this process never filtered (an extender restart between the two) reads
    the pod; a binding the API server refuses is the result's Error and holds nothing."""
    name, elsewhere = add_nodes(api, uid, [4, 4], total=4)
    cleanup.extend((("nodes", name), ("nodes", elsewhere)))
    svc = extender(mode="bind")
    pod = make_pod(api, f"p-{uid}", "sriov-net,sriov-net")
    cleanup.append(("pods", f"p-{uid}"))
    assert svc.bind(pod, name) == {"Error": ""}
    assert svc.ledger.held(name).get(TOTAL) == 2
    other = make_pod(api, f"o-{uid}", "sriov-net")
    cleanup.append(("pods", f"o-{uid}"))
    api.bind(other, name)                        # bound by someone else meanwhile
    res = svc.bind(other, elsewhere)
    assert f'already assigned to node "{name}"' in res["Error"]
    assert svc.ledger.held(elsewhere) == {}
    gone = make_pod(api, f"g-{uid}", "sriov-net")
    api.delete("pods", f"g-{uid}", "default")
    assert "failed to get pod default/g-" in svc.bind(gone, name)["Error"] and svc.ledger.held(name).get(TOTAL) == 2
    for body in (b"{", b"[]", b'{"PodName": 3, "Node": "x"}', b'{"PodName": "a"}'):
        status, data = svc.request("POST", "/scheduler/bind", body)
        assert status == 400 and json.loads(data)["Error"].startswith("malformed ExtenderBindingArgs")


def test_binding_subresource_is_served_as_kube_apiserver_serves_it(api, uid, cleanup):
    """tests/kubeapi/binding.py against kube-apiserver's BindingREST (storage.go: Create,
    assignPod, setPodNodeAndMetadata): 201 Success; nodeName, PodScheduled; 409 when bound or
    the UID precondition fails; 400 on a name mismatch; 422 without a target."""
    import http.client
    import ssl
    pod = make_pod(api, f"bd-{uid}", "sriov-net")
    cleanup.append(("pods", f"bd-{uid}"))
    ctx = ssl.create_default_context(cafile=api.ca_file)
    host, port = api.url.split("//")[1].rsplit(":", 1)

    def post(body, name=f"bd-{uid}"):
        c = http.client.HTTPSConnection(host, int(port), context=ctx, timeout=5)
        c.request("POST", f"/api/v1/namespaces/default/pods/{name}/binding", json.dumps(body),
                  {"Authorization": "Bearer admin-token", "Content-Type": "application/json"})
        r = c.getresponse()
        return r.status, json.loads(r.read())

    def binding(node, **md):
        return {"apiVersion": "v1", "kind": "Binding", "metadata": {"name": f"bd-{uid}", **md},
                "target": {"kind": "Node", "name": node}}
    assert post(binding("n1", uid="wrong"))[0] == 409
    status, body = post(binding("n1", name="other"))
    assert status == 400 and body["message"] == "name in URL does not match name in Binding object"
    assert post({"apiVersion": "v1", "kind": "Binding", "metadata": {"name": f"bd-{uid}"}, "target": {}})[0] == 422
    status, body = post(binding("n1", uid=pod["metadata"]["uid"]))
    assert (status, body["status"]) == (201, "Success")
    got = api.get("pods", f"bd-{uid}", "default")
    assert got["spec"]["nodeName"] == "n1"
    assert {"type": "PodScheduled", "status": "True"}.items() <= next(
        c for c in got["status"]["conditions"] if c["type"] == "PodScheduled").items()
    status, body = post(binding("n2"))
    assert status == 409 and body["message"].endswith(f'pod bd-{uid} is already assigned to node "n1"')
    with pytest.raises(kerrors.ApiError):
        api.bind({"metadata": {"name": f"nope-{uid}", "namespace": "default"}}, "n1")


# -- deterministic replays of the orders that used to block or over-commit --------------------

def test_replay_count_before_binding_in_filter_mode():
    """Two pods tentatively on n1; the node names the YOUNGER one before its binding is seen:
    its hold ends everywhere, the older pod keeps exactly its own (the count-order rule took the
    oldest, another pod's, and the bound pod then blocked a free VF until the TTL)."""
    ledger = Ledger(ttl=60)
    ledger.observe_node("n1", node_obj("n1", 2, detail(2, 2)))
    ledger.observe_node("n2", node_obj("n2", 2, detail(2, 2)))
    ledger.decide("old", ONE, ["n1", "n2"], assume=True)
    ledger.decide("young", ONE, ["n1", "n2"], assume=True)
    ledger.observe_node("n1", node_obj("n1", 1, detail(1, 2, ["young"])))
    assert ledger.held("n1") == {TOTAL: 1} and ledger.held("n2") == {TOTAL: 1}
    ledger.bind("young", "n1")                    # the binding arrives late: nothing to hold
    assert ledger.held("n1") == {TOTAL: 1}
    ledger.bind("old", "n1")
    assert ledger.held("n2") == {} and ledger.held("n1") == {TOTAL: 1}
    ledger.observe_node("n1", node_obj("n1", 0, detail(0, 2, ["old", "young"])))
    assert ledger.held("n1") == {} and ledger.assumed()["pods"] == 0


def test_replay_vf_taken_behind_the_back():
    """A VF taken by something the extender never promised (the count drops, nobody it holds
    for is named): holds stay with their pods, the node is not over-committed, nothing stays
    blocked once the pods are named."""
    ledger = Ledger(ttl=60)
    ledger.observe_node("n", node_obj("n", 3, detail(3, 3)))
    assert ledger.charge("a", ONE, "n").status == "fit"
    ledger.observe_node("n", node_obj("n", 2, detail(2, 3, ["x"])))       # x: behind our back
    assert ledger.held("n") == {TOTAL: 1}
    assert ledger.charge("b", ONE, "n").status == "fit"
    assert ledger.charge("c", ONE, "n").status == "failed"                 # 2 free, 2 held
    ledger.observe_node("n", node_obj("n", 0, detail(0, 3, ["a", "b", "x"])))
    assert ledger.held("n") == {} and ledger.charge("c", ONE, "n").status == "failed"
    ledger.observe_node("n", node_obj("n", 1, detail(1, 3, ["b", "x"])))   # a left
    assert ledger.charge("c", ONE, "n").status == "fit"


def test_replay_running_pod_never_named_is_let_go_after_settle():
    now = [0.0]
    ledger = Ledger(ttl=60, clock=lambda: now[0], settle=30)
    ledger.observe_node("n", node_obj("n", 1, detail(1, 1)))
    ledger.charge("a", ONE, "n")
    now[0] = 500                                  # no TTL for holds on a node that names holders
    assert ledger.held("n") == {TOTAL: 1}
    ledger.pod_gone("a", deleted=False)           # it runs, but its node never names it
    now[0] = 529
    assert ledger.held("n") == {TOTAL: 1}
    now[0] = 531
    assert ledger.held("n") == {}


# -- bind mode as a property ----------------------------------------------------------------------

OPS = st.lists(st.one_of(
    st.tuples(st.just("bind"), st.integers(0, 9), st.integers(0, 1), st.integers(1, 2)),
    st.tuples(st.just("up"), st.integers(0, 9)),          # a bound pod's network comes up
    st.tuples(st.just("publish"), st.integers(0, 1)),     # the node daemon publishes
    st.tuples(st.just("delete"), st.integers(0, 9)),
    st.tuples(st.just("stranger"), st.integers(0, 1))), max_size=80)


@settings(max_examples=300, deadline=None)
@given(OPS)
def test_bind_mode_never_overcommits_a_node(ops):
    """Binds, networks coming up, publications (possibly late), deletions and VFs taken by pods
    the extender never saw (published with their names), in any order: the VFs in use plus those
    promised to bound pods never exceed a node's VFs, so every pod the extender bound gets its
    VFs."""
    cap = 4
    ledger = Ledger(ttl=1e9)
    used = {n: {} for n in ("n0", "n1")}       # what really holds VFs: pod -> count
    bound = {}                                 # pod -> (node, count) bound, network not up yet
    named = {}

    def publish(n):
        free = cap - sum(used[n].values())
        named[n] = set(used[n])
        ledger.observe_node(n, node_obj(n, free, detail(free, cap, used[n])))

    for n in used:
        publish(n)
    strangers = 0
    for op in ops:
        kind = op[0]
        if kind == "bind":
            pod, node, count = f"p{op[1]}", f"n{op[2]}", op[3]
            if pod in bound or any(pod in u for u in used.values()):
                continue
            if ledger.charge(pod, Need(count), node).status == "fit":
                bound[pod] = (node, count)
        elif kind == "up" and f"p{op[1]}" in bound:
            node, count = bound.pop(f"p{op[1]}")
            used[node][f"p{op[1]}"] = count
        elif kind == "publish":
            publish(f"n{op[1]}")
        elif kind == "delete":
            pod = f"p{op[1]}"
            bound.pop(pod, None)
            for u in used.values():
                u.pop(pod, None)
            ledger.pod_gone(pod, deleted=True)
        elif kind == "stranger":
            n = f"n{op[1]}"
            free_now = cap - sum(used[n].values()) - sum(c for p, (nn, c) in bound.items() if nn == n)
            if free_now > 0:                   # only a free VF can be taken; it shows at once
                strangers += 1
                used[n][f"s{strangers}"] = 1
                publish(n)
        for n in used:
            promised = sum(c for nn, c in bound.values() if nn == n)
            assert sum(used[n].values()) + promised <= cap, (n, used[n], bound)
            # held = bound pods whose network is not up + those up but not yet published: a
            # hold ends exactly when the node names its pod (nothing blocked, nothing lost)
            unnamed = sum(c for p, c in used[n].items() if p.startswith("p") and p not in named[n])
            assert ledger.held(n).get(TOTAL, 0) == promised + unnamed, (n, ledger.held(n), promised, unnamed)
