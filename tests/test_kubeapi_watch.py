"""The test Kubernetes API server (tests/kubeapi) against the real `kubernetes` client:
label/field selectors, paging, and watches (resourceVersion, selectors, custom
resources, 410, timeouts and bookmarks, resumption, stop).

Each test pins one kube-apiserver behaviour netmeta relies on; raw HTTPS requests are used only
where the client cannot express the request (or hides the answer). Fixtures: tests/kubeapi_fixtures.py."""

from __future__ import annotations

import json
import socket
import threading
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from kubernetes import client, watch
from kubernetes.client.exceptions import ApiException

from tests.kubeapi import KubeAPIServer, objects
from tests.kubeapi.selectors import LabelSelector
from tests.kubeapi_fixtures import TOKENS, api, api_client, custom, fresh, raw, raw_events, srv, status_of, unique, v1  # noqa: F401 - fixtures

# -- selectors ---------------------------------------------------------------------------------------

def test_label_selectors(v1):
    ns = unique("sel")
    v1.create_namespace(objects.namespace(ns))
    for name, labels in (("a", {"app": "web", "tier": "front"}), ("b", {"app": "db"}), ("c", {})):
        v1.create_namespaced_pod(ns, objects.pod(name, labels=labels))

    def names(selector):
        return sorted(p.metadata.name for p in v1.list_namespaced_pod(ns, label_selector=selector).items)

    assert names("app=web") == ["a"] and names("app==web") == ["a"]
    assert names("app!=web") == ["b", "c"]                 # != also matches pods without the label
    assert names("app in (web,db)") == ["a", "b"]
    assert names("app notin (web)") == ["b", "c"]
    assert names("app") == ["a", "b"] and names("!app") == ["c"]
    assert names("app,tier=front") == ["a"] and names("") == ["a", "b", "c"]
    with pytest.raises(ApiException) as err:
        v1.list_namespaced_pod(ns, label_selector="app in web")
    assert err.value.status == 400 and status_of(err.value)["reason"] == "BadRequest"


def test_field_selectors(v1, srv):
    ns = unique("fsel")
    v1.create_namespace(objects.namespace(ns))
    v1.create_namespaced_pod(ns, objects.pod("on-n1", node="n1"))
    v1.create_namespaced_pod(ns, objects.pod("on-n2", node="n2"))
    v1.create_namespaced_pod(ns, objects.pod("unscheduled"))

    def names(selector, all_ns=False):
        items = (v1.list_pod_for_all_namespaces(field_selector=selector) if all_ns
                 else v1.list_namespaced_pod(ns, field_selector=selector)).items
        return sorted(p.metadata.name for p in items)

    assert names("spec.nodeName=n1") == ["on-n1"]
    assert names("spec.nodeName!=n1") == ["on-n2", "unscheduled"]
    assert names("spec.nodeName=") == ["unscheduled"]
    assert names("metadata.name=on-n2") == ["on-n2"]
    assert names(f"metadata.namespace={ns},spec.nodeName=n2", all_ns=True) == ["on-n2"]
    assert names("status.phase=Pending") == ["on-n1", "on-n2", "unscheduled"]
    with pytest.raises(ApiException) as err:
        v1.list_namespaced_pod(ns, field_selector="spec.bogus=1")
    assert status_of(err.value)["message"] == "field label not supported: spec.bogus"


def test_list_paging_with_limit_and_continue(v1):
    ns = unique("page")
    v1.create_namespace(objects.namespace(ns))
    for i in range(5):
        v1.create_namespaced_pod(ns, objects.pod(f"p{i}"))
    first = v1.list_namespaced_pod(ns, limit=2)
    assert [p.metadata.name for p in first.items] == ["p0", "p1"]
    assert first.metadata.remaining_item_count == 3
    second = v1.list_namespaced_pod(ns, limit=2, _continue=first.metadata._continue)
    assert [p.metadata.name for p in second.items] == ["p2", "p3"]


# -- watch -------------------------------------------------------------------------------------------

def _events(stream, n):
    out = []
    for ev in stream:
        out.append(ev)
        if len(out) == n:
            break
    return out


def test_watch_from_a_resource_version_sees_every_change(v1):
    ns = unique("w")
    v1.create_namespace(objects.namespace(ns))
    start_rv = v1.list_namespaced_pod(ns).metadata.resource_version
    v1.create_namespaced_pod(ns, objects.pod("p"))
    v1.patch_namespaced_pod("p", ns, {"metadata": {"labels": {"x": "1"}}})
    v1.delete_namespaced_pod("p", ns)
    w = watch.Watch()
    evs = _events(w.stream(v1.list_namespaced_pod, ns, resource_version=start_rv, timeout_seconds=5), 3)
    w.stop()
    assert [e["type"] for e in evs] == ["ADDED", "MODIFIED", "DELETED"]
    assert evs[1]["object"].metadata.labels == {"x": "1"}
    rvs = [int(e["object"].metadata.resource_version) for e in evs]
    assert rvs == sorted(rvs) and rvs[0] > int(start_rv)


def test_watch_without_resource_version_starts_with_current_state(v1):
    ns = unique("w0")
    v1.create_namespace(objects.namespace(ns))
    v1.create_namespaced_pod(ns, objects.pod("existing"))
    w = watch.Watch()
    stream = w.stream(v1.list_namespaced_pod, ns, timeout_seconds=5)
    first = next(stream)
    assert first["type"] == "ADDED" and first["object"].metadata.name == "existing"
    threading.Timer(0.1, lambda: v1.create_namespaced_pod(ns, objects.pod("later"))).start()
    second = next(stream)
    w.stop()
    assert (second["type"], second["object"].metadata.name) == ("ADDED", "later")


def test_watch_with_selectors_sees_objects_enter_and_leave(v1):
    ns = unique("wsel")
    v1.create_namespace(objects.namespace(ns))
    rv = v1.list_namespaced_pod(ns).metadata.resource_version
    v1.create_namespaced_pod(ns, objects.pod("p", node="n1"))
    v1.create_namespaced_pod(ns, objects.pod("q", node="n2", labels={"app": "x"}))
    v1.patch_namespaced_pod("p", ns, {"metadata": {"labels": {"app": "x"}}})   # enters
    v1.patch_namespaced_pod("p", ns, {"metadata": {"labels": {"app": "y"}}})   # leaves
    w = watch.Watch()
    evs = _events(w.stream(v1.list_namespaced_pod, ns, resource_version=rv, label_selector="app=x",
                           field_selector="spec.nodeName=n1", timeout_seconds=5), 2)
    w.stop()
    assert [(e["type"], e["object"].metadata.name) for e in evs] == [("ADDED", "p"), ("DELETED", "p")]


def test_watch_of_custom_resources(custom, v1):
    args = ("k8s.cni.cncf.io", "v1", "default", "network-attachment-definitions")
    rv = custom.list_namespaced_custom_object(*args)["metadata"]["resourceVersion"]
    custom.create_namespaced_custom_object(*args, objects.nad(unique("wnad"), config="{}"))
    w = watch.Watch()
    ev = _events(w.stream(custom.list_namespaced_custom_object, *args, resource_version=rv, timeout_seconds=5), 1)[0]
    w.stop()
    assert ev["type"] == "ADDED" and ev["object"]["kind"] == "NetworkAttachmentDefinition"


def test_watch_from_a_too_old_resource_version_is_410(fresh, tmp_path):
    v1 = client.CoreV1Api(api_client(fresh, tmp_path))
    old_rv = v1.list_namespaced_pod("default").metadata.resource_version
    for i in range(8):                                                  # history holds 5 events
        v1.create_namespaced_pod("default", objects.pod(f"p{i}"))
    with pytest.raises(ApiException) as err:                            # the client retries once, then raises
        for _ in watch.Watch().stream(v1.list_namespaced_pod, "default", resource_version=old_rv):
            pass
    assert err.value.status == 410 and "too old resource version" in err.value.reason
    event = raw_events(fresh, f"/api/v1/namespaces/default/pods?watch=1&resourceVersion={old_rv}", 1)[0]
    assert event["type"] == "ERROR"
    assert event["object"]["code"] == 410 and event["object"]["reason"] == "Expired"
    recent = v1.list_namespaced_pod("default").metadata.resource_version
    fresh.compact()                                                     # etcd compaction
    event = raw_events(fresh, f"/api/v1/namespaces/default/pods?watch=true&resourceVersion={int(recent) - 1}", 1)[0]
    assert event["object"]["code"] == 410


def test_watch_timeout_seconds_ends_the_stream_with_a_bookmark(srv):
    started = time.monotonic()
    status, headers, body = raw(srv, "GET", "/api/v1/nodes?watch=true&timeoutSeconds=1&allowWatchBookmarks=true"
                                            f"&resourceVersion={srv.resource_version}", text=True)
    assert status == 200 and headers["Transfer-Encoding"] == "chunked"
    assert 0.9 < time.monotonic() - started < 3
    assert json.loads(body.splitlines()[-1])["type"] == "BOOKMARK"


def test_send_initial_events_and_legacy_watch_path(srv):
    name = unique("wl")
    srv.create(objects.node(name))
    q = ("/api/v1/nodes?watch=true&timeoutSeconds=1&allowWatchBookmarks=true&sendInitialEvents=true"
         f"&resourceVersionMatch=NotOlderThan&fieldSelector=metadata.name%3D{name}")
    events = raw_events(srv, q, 2)
    assert [e["type"] for e in events] == ["ADDED", "BOOKMARK"]
    assert events[1]["object"]["metadata"]["annotations"] == {"k8s.io/initial-events-end": "true"}
    status, _, body = raw(srv, "GET", "/api/v1/nodes?watch=true&sendInitialEvents=true")
    assert status == 422 and body["reason"] == "Invalid"
    rv = srv.resource_version
    threading.Timer(0.2, lambda: srv.patch("nodes", name, {"metadata": {"labels": {"a": "b"}}})).start()
    events = raw_events(srv, f"/api/v1/watch/nodes/{name}?resourceVersion={rv}", 1)
    assert events[0]["type"] == "MODIFIED" and events[0]["object"]["metadata"]["labels"] == {"a": "b"}


def test_closed_watches_are_resumed_by_the_client(srv, v1):
    ns = unique("resume")
    v1.create_namespace(objects.namespace(ns))
    seen = []
    w = watch.Watch()

    def watcher():
        for ev in w.stream(v1.list_namespaced_pod, ns, resource_version=str(srv.resource_version)):
            seen.append(ev["object"].metadata.name)
            if len(seen) == 2:
                w.stop()

    t = threading.Thread(target=watcher, daemon=True)
    srv.clear_log()
    t.start()
    srv.wait_for(lambda: srv.count(verb="watch", namespace=ns))
    v1.create_namespaced_pod(ns, objects.pod("before"))
    srv.wait_for(lambda: seen)
    srv.close_watches()                                  # the server ends the stream cleanly ...
    srv.wait_for(lambda: srv.count(verb="watch", namespace=ns) == 2)   # ... the client re-watches
    assert srv.find(verb="watch", namespace=ns)[1].query["resourceVersion"] != str(0)
    v1.create_namespaced_pod(ns, objects.pod("after"))
    t.join(5)
    assert seen == ["before", "after"]


def test_delete_collection(v1):
    ns = unique("dc")
    v1.create_namespace(objects.namespace(ns))
    for name, app in (("a", "x"), ("b", "x"), ("c", "y")):
        v1.create_namespaced_pod(ns, objects.pod(name, labels={"app": app}))
    v1.delete_collection_namespaced_pod(ns, label_selector="app=x")
    assert [p.metadata.name for p in v1.list_namespaced_pod(ns).items] == ["c"]


def test_watch_does_not_block_other_requests_and_stop_closes_it(tmp_path):
    server = KubeAPIServer(tokens=TOKENS).start()
    v1 = client.CoreV1Api(api_client(server, tmp_path))
    got, done = [], threading.Event()

    def watcher():
        try:
            for ev in watch.Watch().stream(v1.list_namespaced_pod, "default",
                                           resource_version=str(server.resource_version)):
                got.append(ev)
        except Exception as e:  # noqa: BLE001 - the stream is cut on stop
            got.append(e)
        done.set()

    t = threading.Thread(target=watcher, daemon=True)
    t.start()
    server.wait_for(lambda: server.count(verb="watch"))
    started = time.monotonic()
    for _ in range(10):
        v1.read_namespace("default")
    assert time.monotonic() - started < 1.0
    v1.create_namespaced_pod("default", objects.pod("seen"))
    server.wait_for(lambda: got)
    port = server.port
    started = time.monotonic()
    server.stop()
    assert done.wait(3) and time.monotonic() - started < 2
    with socket.socket() as s:                                          # the port is free again
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", port))


# -- properties --------------------------------------------------------------------------------------

_label_keys = st.sampled_from(["app", "tier", "example.com/role"])
_label_values = st.sampled_from(["a", "b", "c-1"])


@settings(max_examples=40, deadline=None)
@given(labels=st.dictionaries(_label_keys, _label_values), key=_label_keys,
       values=st.lists(_label_values, min_size=1, max_size=3, unique=True))
def test_label_selector_semantics(labels, key, values):
    joined = ",".join(values)
    assert LabelSelector(f"{key} in ({joined})").matches(labels) == (labels.get(key) in values)
    assert LabelSelector(f"{key} notin ({joined})").matches(labels) == (labels.get(key) not in values)
    assert LabelSelector(f"{key}={values[0]}").matches(labels) == (labels.get(key) == values[0])
    assert LabelSelector(f"{key}!={values[0]}").matches(labels) == (labels.get(key) != values[0])
    assert LabelSelector(key).matches(labels) == (key in labels)
    assert LabelSelector(f"!{key}").matches(labels) == (key not in labels)
