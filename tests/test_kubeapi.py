"""The test Kubernetes API server (tests/kubeapi) against the real `kubernetes` client.

Each test pins one kube-apiserver behaviour netmeta relies on; raw HTTPS requests are used only
where the client cannot express the request (or hides the answer).
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import ssl
import subprocess
import sys
import threading
import time

import pytest
import urllib3
from hypothesis import given, settings
from hypothesis import strategies as st
from kubernetes import client, config, watch
from kubernetes.client.exceptions import ApiException

try:  # `tests` is not a package: pytest puts tests/ itself on sys.path
    from tests.kubeapi import KubeAPIServer, objects
    from tests.kubeapi.patch import merge_patch
    from tests.kubeapi.selectors import LabelSelector
except ImportError:  # pragma: no cover - depends on how pytest was started
    from kubeapi import KubeAPIServer, objects
    from kubeapi.patch import merge_patch
    from kubeapi.selectors import LabelSelector

ADMIN = "admin-token"
AGENT = "netmeta-token"
AGENT_USER = "system:serviceaccount:kube-system:netmeta"
AGENT_RULES = [("get,list,watch,patch", "pods"), ("get,list,watch", "network-attachment-definitions"),
               ("get,patch", "nodes"), ("patch", "pods/status", "team-a")]
TOKENS = {ADMIN: "*", AGENT: {"user": AGENT_USER, "rules": AGENT_RULES}}
STRATEGIC = "application/strategic-merge-patch+json"
MERGE = "application/merge-patch+json"
JSONPATCH = "application/json-patch+json"


# -- fixtures and helpers ----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def srv():
    server = KubeAPIServer(tokens=TOKENS).start()
    server.create(objects.nad_crd())
    server.create(objects.namespace("team-a"))
    yield server
    server.stop()


@pytest.fixture
def fresh(tmp_path):
    """A server of its own, for tests that change global state (outage, compaction, CRDs)."""
    server = KubeAPIServer(tokens=TOKENS, history_size=5).start()
    yield server
    server.stop()


def api_client(server, tmp_path, token=ADMIN, name="kubeconfig"):
    path = server.kubeconfig(str(tmp_path / f"{name}-{token}"), token=token)
    return config.new_client_from_config(config_file=path)


@pytest.fixture
def api(srv, tmp_path):
    return api_client(srv, tmp_path)


@pytest.fixture
def v1(api):
    return client.CoreV1Api(api)


@pytest.fixture
def custom(api):
    return client.CustomObjectsApi(api)


def raw(server, method, path, body=None, token=ADMIN, content_type="application/json", host=None,
        text=False):
    """One HTTPS request verified with the server's CA -> (status, headers, decoded body)."""
    ctx = ssl.create_default_context(cafile=server.ca_file)
    conn = http.client.HTTPSConnection(host or server.host, server.port, context=ctx, timeout=10)
    headers = {"Content-Type": content_type} if body is not None else {}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    data = body if isinstance(body, (bytes, str)) or body is None else json.dumps(body)
    conn.request(method, path, body=data, headers=headers)
    resp = conn.getresponse()
    payload = resp.read()
    conn.close()
    try:
        payload = payload.decode() if text else json.loads(payload)
    except ValueError:
        payload = payload.decode()
    return resp.status, resp.headers, payload


def raw_events(server, path, n, token=ADMIN):
    """The first n events of a watch, read as they arrive (the stream is then dropped)."""
    ctx = ssl.create_default_context(cafile=server.ca_file)
    conn = http.client.HTTPSConnection(server.host, server.port, context=ctx, timeout=10)
    conn.request("GET", path, headers={"Authorization": f"Bearer {token}"})
    resp = conn.getresponse()
    assert resp.status == 200 and resp.headers["Transfer-Encoding"] == "chunked"
    events = [json.loads(resp.readline()) for _ in range(n)]
    conn.close()
    return events


def status_of(exc):
    body = json.loads(exc.body)
    assert body["kind"] == "Status" and body["apiVersion"] == "v1" and body["status"] == "Failure"
    assert body["code"] == exc.status
    return body


def unique(prefix, _n=[0]):  # noqa: B006 - a counter
    _n[0] += 1
    return f"{prefix}-{_n[0]}"


# -- TLS ---------------------------------------------------------------------------------------------

def test_tls_is_verified_with_the_generated_ca(srv, tmp_path, v1):
    assert v1.read_namespace("default").metadata.name == "default"
    assert raw(srv, "GET", "/version")[0] == 200
    assert raw(srv, "GET", "/version", host="localhost")[0] == 200    # SAN DNS:localhost
    other = KubeAPIServer()                                             # another CA
    other_ca = other.start().ca_file
    try:
        ctx = ssl.create_default_context(cafile=other_ca)
        with pytest.raises(ssl.SSLCertVerificationError):
            with socket.create_connection((srv.host, srv.port), timeout=5) as s:
                ctx.wrap_socket(s, server_hostname="127.0.0.1")
        bad = tmp_path / "bad-kubeconfig"
        srv.kubeconfig(str(bad))
        bad.write_text(bad.read_text().replace(srv.ca_file, other_ca))
        c = config.new_client_from_config(config_file=str(bad))
        c.configuration.retries = 0
        with pytest.raises(urllib3.exceptions.MaxRetryError) as err:
            client.CoreV1Api(c).read_namespace("default")
        assert "CERTIFICATE_VERIFY_FAILED" in str(err.value)
    finally:
        other.stop()


# -- discovery ---------------------------------------------------------------------------------------

def test_discovery_documents(srv, api):
    assert client.CoreApi(api).get_api_versions().versions == ["v1"]
    core = client.CoreV1Api(api).get_api_resources()
    names = {r.name: r for r in core.resources}
    assert {"pods", "pods/status", "nodes", "namespaces"} <= set(names)
    assert names["pods"].namespaced and not names["nodes"].namespaced
    assert "patch" in names["pods"].verbs and names["pods"].kind == "Pod"
    groups = {g.name: g for g in client.ApisApi(api).get_api_versions().groups}
    assert groups["k8s.cni.cncf.io"].preferred_version.group_version == "k8s.cni.cncf.io/v1"
    assert "apiextensions.k8s.io" in groups
    assert client.VersionApi(api).get_code().git_version.startswith("v1.")
    status, _, body = raw(srv, "GET", "/apis/k8s.cni.cncf.io/v1")
    assert status == 200 and body["resources"][0]["name"] == "network-attachment-definitions"


# -- CRUD --------------------------------------------------------------------------------------------

def test_pod_create_get_list_replace_delete(srv, v1):
    name = unique("crud")
    created = v1.create_namespaced_pod("team-a", objects.pod(name))
    md = created.metadata
    assert md.namespace == "team-a" and md.uid and md.creation_timestamp and int(md.resource_version) > 0
    assert created.status.phase == "Pending" and created.status.qos_class == "BestEffort"
    assert created.spec.restart_policy == "Always"                    # defaulted like a real server
    got = v1.read_namespaced_pod(name, "team-a")
    assert got.metadata.uid == md.uid
    listed = v1.list_namespaced_pod("team-a")
    assert name in [p.metadata.name for p in listed.items]
    assert int(listed.metadata.resource_version) >= int(md.resource_version)
    got.metadata.labels = {"app": "x"}
    replaced = v1.replace_namespaced_pod(name, "team-a", got)
    assert int(replaced.metadata.resource_version) > int(md.resource_version)
    assert replaced.metadata.labels == {"app": "x"}
    deleted = v1.delete_namespaced_pod(name, "team-a")                # unscheduled: gone at once
    assert deleted.metadata.name == name
    with pytest.raises(ApiException) as err:
        v1.read_namespaced_pod(name, "team-a")
    body = status_of(err.value)
    assert body["reason"] == "NotFound" and body["message"] == f'pods "{name}" not found'
    assert body["details"] == {"name": name, "kind": "pods"}


def test_create_conflict_and_generate_name(v1):
    name = unique("dup")
    v1.create_namespaced_pod("default", objects.pod(name))
    with pytest.raises(ApiException) as err:
        v1.create_namespaced_pod("default", objects.pod(name))
    body = status_of(err.value)
    assert err.value.status == 409 and body["reason"] == "AlreadyExists"
    assert body["message"] == f'pods "{name}" already exists'
    gen = objects.pod("")
    gen["metadata"] = {"generateName": "worker-"}
    made = v1.create_namespaced_pod("default", gen)
    assert made.metadata.name.startswith("worker-") and len(made.metadata.name) == len("worker-") + 5


def test_invalid_objects_are_422_with_real_messages(srv, v1):
    with pytest.raises(ApiException) as err:
        v1.create_namespaced_pod("default", objects.pod("Bad_Name"))
    body = status_of(err.value)
    assert err.value.status == 422 and body["reason"] == "Invalid"
    assert body["message"].startswith('Pod "Bad_Name" is invalid: metadata.name: Invalid value: '
                                      '"Bad_Name": a lowercase RFC 1123 subdomain must consist of')
    assert body["details"]["causes"][0]["field"] == "metadata.name"
    no_name = objects.pod("")
    del no_name["metadata"]["name"]
    with pytest.raises(ApiException) as err:
        v1.create_namespaced_pod("default", no_name)
    assert status_of(err.value)["message"] == ('Pod "" is invalid: metadata.name: Required value: '
                                               "name or generateName is required")
    with pytest.raises(ApiException) as err:                         # a subdomain, not a label
        v1.create_namespace(objects.namespace("a.b"))
    assert "a lowercase RFC 1123 label must consist of" in status_of(err.value)["message"]
    no_containers = objects.pod(unique("empty"))
    no_containers["spec"] = {"containers": []}
    with pytest.raises(ApiException) as err:
        v1.create_namespaced_pod("default", no_containers)
    assert status_of(err.value)["message"].endswith("is invalid: spec.containers: Required value")


def test_wrong_kind_name_or_namespace_in_body_is_a_bad_request(srv, v1):
    # kube-apiserver answers these with 400 BadRequest (not 422), and so do we
    status, _, body = raw(srv, "POST", "/api/v1/namespaces/default/pods", objects.node("n-x"))
    assert status == 400 and body["reason"] == "BadRequest" and "cannot be handled as a Pod" in body["message"]
    bad_version = objects.pod("p-x")
    bad_version["apiVersion"] = "apps/v1"
    status, _, body = raw(srv, "POST", "/api/v1/namespaces/default/pods", bad_version)
    assert status == 400 and "does not match the expected API version (v1)" in body["message"]
    name = unique("mismatch")
    pod = v1.create_namespaced_pod("default", objects.pod(name))
    pod.metadata.name = "other"
    with pytest.raises(ApiException) as err:
        v1.replace_namespaced_pod(name, "default", pod)
    assert status_of(err.value)["message"] == (f"the name of the object (other) does not match the "
                                               f"name on the URL ({name})")
    with pytest.raises(ApiException) as err:
        v1.create_namespaced_pod("team-a", objects.pod(unique("ns"), namespace="default"))
    assert err.value.status == 400 and "does not match the namespace" in status_of(err.value)["message"]
    status, _, body = raw(srv, "POST", "/api/v1/namespaces/default/pods", b"{not json")
    assert status == 400 and body["reason"] == "BadRequest"
    status, _, body = raw(srv, "POST", "/api/v1/namespaces/default/pods", "x", content_type="text/plain")
    assert status == 415 and body["reason"] == "UnsupportedMediaType"


def test_namespaced_create_in_missing_namespace_is_404(v1):
    with pytest.raises(ApiException) as err:
        v1.create_namespaced_pod("nope", objects.pod("p", namespace="nope"))
    body = status_of(err.value)
    assert body["reason"] == "NotFound" and body["message"] == 'namespaces "nope" not found'
    v1.create_namespace(objects.namespace("made-later"))
    assert v1.create_namespaced_pod("made-later", objects.pod("p")).metadata.namespace == "made-later"
    ns = v1.read_namespace("made-later")
    assert ns.status.phase == "Active" and ns.metadata.labels["kubernetes.io/metadata.name"] == "made-later"


# -- optimistic concurrency --------------------------------------------------------------------------

def test_put_with_stale_resource_version_is_409(v1):
    name = unique("stale")
    first = v1.create_namespaced_pod("default", objects.pod(name))
    stale_rv = first.metadata.resource_version
    v1.patch_namespaced_pod(name, "default", {"metadata": {"labels": {"v": "2"}}})
    first.metadata.labels = {"v": "3"}
    assert first.metadata.resource_version == stale_rv   # the PUT carries the stale version
    with pytest.raises(ApiException) as err:
        v1.replace_namespaced_pod(name, "default", first)
    body = status_of(err.value)
    assert err.value.status == 409 and body["reason"] == "Conflict"
    assert body["message"] == (f'Operation cannot be fulfilled on pods "{name}": the object has been '
                               "modified; please apply your changes to the latest version and try again")
    first.metadata.resource_version = None                           # pods allow unconditional PUT
    assert v1.replace_namespaced_pod(name, "default", first).metadata.labels == {"v": "3"}


def test_patch_carrying_stale_resource_version_is_409(v1, custom):
    name = unique("pstale")
    pod = v1.create_namespaced_pod("default", objects.pod(name))
    rv = pod.metadata.resource_version
    ok = v1.patch_namespaced_pod(name, "default", {"metadata": {"resourceVersion": rv, "labels": {"a": "1"}}})
    with pytest.raises(ApiException) as err:
        v1.patch_namespaced_pod(name, "default", {"metadata": {"resourceVersion": rv, "labels": {"a": "2"}}})
    assert err.value.status == 409 and status_of(err.value)["reason"] == "Conflict"
    with pytest.raises(ApiException) as err:
        v1.patch_namespaced_pod(name, "default", [{"op": "replace", "path": "/metadata/resourceVersion",
                                                   "value": rv}])
    assert err.value.status == 409
    assert v1.read_namespaced_pod(name, "default").metadata.resource_version == ok.metadata.resource_version
    nad = custom.create_namespaced_custom_object("k8s.cni.cncf.io", "v1", "default",
                                                 "network-attachment-definitions", objects.nad(unique("n")))
    nad_rv = nad["metadata"]["resourceVersion"]
    custom.patch_namespaced_custom_object("k8s.cni.cncf.io", "v1", "default", "network-attachment-definitions",
                                          nad["metadata"]["name"], {"metadata": {"labels": {"x": "y"}}})
    with pytest.raises(ApiException) as err:
        custom.patch_namespaced_custom_object("k8s.cni.cncf.io", "v1", "default",
                                              "network-attachment-definitions", nad["metadata"]["name"],
                                              {"metadata": {"resourceVersion": nad_rv}})
    assert err.value.status == 409


def test_custom_resources_refuse_unconditional_replace(custom):
    name = unique("uncond")
    nad = custom.create_namespaced_custom_object("k8s.cni.cncf.io", "v1", "default",
                                                 "network-attachment-definitions", objects.nad(name))
    del nad["metadata"]["resourceVersion"]
    with pytest.raises(ApiException) as err:
        custom.replace_namespaced_custom_object("k8s.cni.cncf.io", "v1", "default",
                                                "network-attachment-definitions", name, nad)
    assert err.value.status == 422
    assert "metadata.resourceVersion: Invalid value: 0x0: must be specified for an update" in \
        status_of(err.value)["message"]


def test_global_resource_version_and_no_op_writes(srv, v1):
    a = v1.create_node(objects.node(unique("rv-node")))
    b = v1.create_namespaced_pod("default", objects.pod(unique("rv-pod")))
    c = v1.create_namespace(objects.namespace(unique("rv-ns")))
    rvs = [int(x.metadata.resource_version) for x in (a, b, c)]
    assert rvs == sorted(rvs) and len(set(rvs)) == 3
    assert int(v1.list_node().metadata.resource_version) == srv.resource_version >= rvs[-1]
    patched = v1.patch_node(a.metadata.name, {"metadata": {"labels": {"k": "v"}}})
    again = v1.patch_node(a.metadata.name, {"metadata": {"labels": {"k": "v"}}})  # changes nothing
    assert again.metadata.resource_version == patched.metadata.resource_version


# -- patch semantics ---------------------------------------------------------------------------------

def test_merge_vs_strategic_vs_json_patch(srv, v1):
    name = unique("pt")
    node = objects.node(name, labels={"a": "1", "b": "2"})
    node["metadata"]["finalizers"] = ["x.io/one"]
    v1.create_node(node)
    # strategic (the client's default for dict bodies): maps merge, null deletes, finalizers union
    v1.patch_node(name, {"metadata": {"labels": {"b": None, "c": "3"}, "finalizers": ["x.io/two"]}})
    got = v1.read_node(name).metadata
    assert got.labels == {"a": "1", "c": "3"} and got.finalizers == ["x.io/one", "x.io/two"]
    assert srv.find(method="PATCH", name=name)[-1].content_type == STRATEGIC
    # merge patch (RFC 7386): maps merge, lists replace
    v1.patch_node(name, {"metadata": {"finalizers": ["x.io/three"]}}, _content_type=MERGE)
    assert v1.read_node(name).metadata.finalizers == ["x.io/three"]
    # strategic directive: delete from a primitive list
    v1.patch_node(name, {"metadata": {"$deleteFromPrimitiveList/finalizers": ["x.io/three"]}})
    assert v1.read_node(name).metadata.finalizers is None
    # json patch (RFC 6902), with ~1 escaping and a failing test op -> 422 with the cause
    key = "k8s.v1.cni.cncf.io~1network-status"
    v1.patch_node(name, [{"op": "add", "path": "/metadata/annotations", "value": {}},
                         {"op": "add", "path": f"/metadata/annotations/{key}", "value": "[]"}])
    assert v1.read_node(name).metadata.annotations == {"k8s.v1.cni.cncf.io/network-status": "[]"}
    with pytest.raises(ApiException) as err:
        v1.patch_node(name, [{"op": "test", "path": "/metadata/labels/a", "value": "nope"},
                             {"op": "remove", "path": "/metadata/labels/a"}])
    body = status_of(err.value)
    assert err.value.status == 422 and body["reason"] == "Invalid"
    assert "test" in body["details"]["causes"][0]["message"]
    assert v1.read_node(name).metadata.labels["a"] == "1"              # nothing applied
    v1.patch_node(name, [{"op": "test", "path": "/metadata/labels/a", "value": "1"},
                         {"op": "remove", "path": "/metadata/labels/a"}])
    assert "a" not in v1.read_node(name).metadata.labels


def test_strategic_merge_lists_by_key_on_pod_status(v1):
    name = unique("cond")
    v1.create_namespaced_pod("default", objects.pod(name))
    conds = [{"type": "Ready", "status": "False"}, {"type": "PodScheduled", "status": "True"}]
    v1.patch_namespaced_pod_status(name, "default", {"status": {"conditions": conds}})
    v1.patch_namespaced_pod_status(name, "default", {"status": {"conditions": [{"type": "Ready", "status": "True"}]}})
    got = {c.type: c.status for c in v1.read_namespaced_pod(name, "default").status.conditions}
    assert got == {"Ready": "True", "PodScheduled": "True"}              # merged by type
    v1.patch_namespaced_pod_status(name, "default", {"status": {"conditions": [{"type": "Ready", "status": "True"}]}},
                                   _content_type=MERGE)
    assert len(v1.read_namespaced_pod(name, "default").status.conditions) == 1   # replaced


def test_strategic_merge_directives(v1):
    name = unique("dir")
    v1.create_namespaced_pod("default", objects.pod(name))
    conds = [{"type": "A", "status": "True"}, {"type": "B", "status": "True"}]
    v1.patch_namespaced_pod_status(name, "default", {"status": {"conditions": conds}})
    v1.patch_namespaced_pod_status(name, "default", {"status": {"conditions": [{"type": "A", "$patch": "delete"}]}})
    assert [c.type for c in v1.read_namespaced_pod(name, "default").status.conditions] == ["B"]
    v1.patch_namespaced_pod_status(name, "default", {"status": {"conditions": [
        {"$patch": "replace"}, {"type": "C", "status": "False"}]}})
    assert [c.type for c in v1.read_namespaced_pod(name, "default").status.conditions] == ["C"]
    v1.patch_namespaced_pod(name, "default", {"metadata": {"labels": {"a": "1", "b": "2"}}})
    v1.patch_namespaced_pod(name, "default", {"metadata": {"labels": {"$patch": "replace", "c": "3"}}})
    assert v1.read_namespaced_pod(name, "default").metadata.labels == {"c": "3"}


def test_status_subresource_split(v1):
    name = unique("sub")
    v1.create_namespaced_pod("default", objects.pod(name, node="n1"))
    v1.patch_namespaced_pod(name, "default", {"status": {"phase": "Running"}})  # ignored on main path
    assert v1.read_namespaced_pod(name, "default").status.phase == "Pending"
    out = v1.patch_namespaced_pod_status(name, "default", {"status": {"phase": "Running"},
                                                           "metadata": {"annotations": {"a": "b"}},
                                                           "spec": {"nodeName": "other"}})
    assert out.status.phase == "Running" and out.metadata.annotations == {"a": "b"}
    assert out.spec.node_name == "n1"                                      # /status ignores spec
    with pytest.raises(ApiException) as err:                               # pod spec is immutable
        v1.patch_namespaced_pod(name, "default", {"spec": {"nodeName": "other"}})
    assert err.value.status == 422 and "spec: Forbidden: pod updates may not change fields" in err.value.body


def test_strategic_patch_on_custom_resource_is_415(srv, custom):
    name = unique("smp")
    custom.create_namespaced_custom_object("k8s.cni.cncf.io", "v1", "default", "network-attachment-definitions",
                                           objects.nad(name, config={"type": "sriov"}))
    srv.clear_log()
    out = custom.patch_namespaced_custom_object("k8s.cni.cncf.io", "v1", "default",
                                                "network-attachment-definitions", name,
                                                {"metadata": {"annotations": {"k": "v"}}})
    assert out["metadata"]["annotations"] == {"k": "v"}
    assert srv.requests[-1].content_type == MERGE                        # CustomObjectsApi default
    with pytest.raises(ApiException) as err:
        custom.patch_namespaced_custom_object("k8s.cni.cncf.io", "v1", "default",
                                              "network-attachment-definitions", name,
                                              {"metadata": {"annotations": {"k": "w"}}}, _content_type=STRATEGIC)
    body = status_of(err.value)
    assert err.value.status == 415 and body["reason"] == "UnsupportedMediaType"
    assert body["message"] == ("the body of the request was in an unknown format - accepted media types "
                               "include: application/json-patch+json, application/merge-patch+json")


# -- custom resources --------------------------------------------------------------------------------

def test_nad_is_404_before_its_crd_and_served_after(fresh, tmp_path):
    api = api_client(fresh, tmp_path)
    custom, ext = client.CustomObjectsApi(api), client.ApiextensionsV1Api(api)
    args = ("k8s.cni.cncf.io", "v1", "default", "network-attachment-definitions")
    with pytest.raises(ApiException) as err:
        custom.list_namespaced_custom_object(*args)
    assert err.value.status == 404
    assert status_of(err.value)["message"] == "the server could not find the requested resource"
    assert "k8s.cni.cncf.io" not in [g.name for g in client.ApisApi(api).get_api_versions().groups]
    crd = ext.create_custom_resource_definition(objects.nad_crd())
    assert {c.type: c.status for c in crd.status.conditions}["Established"] == "True"
    made = custom.create_namespaced_custom_object(*args, objects.nad("sriov-net", config={"type": "sriov"}))
    assert made["kind"] == "NetworkAttachmentDefinition" and made["metadata"]["generation"] == 1
    got = custom.get_namespaced_custom_object(*args, "sriov-net")
    assert json.loads(got["spec"]["config"]) == {"type": "sriov"}
    items = custom.list_namespaced_custom_object(*args)["items"]
    assert [i["metadata"]["name"] for i in items] == ["sriov-net"] and items[0]["kind"]
    assert "k8s.cni.cncf.io" in [g.name for g in client.ApisApi(api).get_api_versions().groups]
    ext.delete_custom_resource_definition(crd.metadata.name)
    with pytest.raises(ApiException) as err:
        custom.get_namespaced_custom_object(*args, "sriov-net")
    assert err.value.status == 404


def test_custom_resources_are_pruned_and_type_checked(custom, srv):
    args = ("k8s.cni.cncf.io", "v1", "default", "network-attachment-definitions")
    made = custom.create_namespaced_custom_object(*args, {**objects.nad(unique("prune"), config="{}"),
                                                          "unknownTop": 1})
    assert "unknownTop" not in made
    with pytest.raises(ApiException) as err:
        custom.create_namespaced_custom_object(*args, {**objects.nad(unique("typed")), "spec": {"config": 5}})
    assert err.value.status == 422
    assert 'spec.config: Invalid value: "integer": spec.config in body must be of type string' in \
        status_of(err.value)["message"]
    bad = objects.nad_crd()
    bad["metadata"]["name"] = "wrong.example.com"
    with pytest.raises(ApiException) as err:
        client.ApiextensionsV1Api(custom.api_client).create_custom_resource_definition(bad)
    assert err.value.status == 422
    assert 'metadata.name: Invalid value: "wrong.example.com": must be spec.names.plural+"."+spec.group' \
        in status_of(err.value)["message"]


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


# -- authentication / authorization ------------------------------------------------------------------

def test_missing_or_unknown_token_is_401(srv):
    for token in (None, "wrong"):
        status, _, body = raw(srv, "GET", "/api/v1/namespaces/default/pods", token=token)
        assert status == 401
        assert body == {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                        "message": "Unauthorized", "reason": "Unauthorized", "code": 401}


def test_token_without_permission_is_403_with_the_real_message(srv, tmp_path):
    agent = client.CoreV1Api(api_client(srv, tmp_path, token=AGENT))
    name = unique("rbac")
    srv.create(objects.pod(name, namespace="team-a"))
    assert agent.read_namespaced_pod(name, "team-a").metadata.name == name
    agent.patch_namespaced_pod(name, "team-a", {"metadata": {"annotations": {"a": "b"}}})
    agent.patch_namespaced_pod_status(name, "team-a", {"metadata": {"annotations": {"c": "d"}}})
    with pytest.raises(ApiException) as err:
        agent.delete_namespaced_pod(name, "team-a")
    body = status_of(err.value)
    assert err.value.status == 403 and body["reason"] == "Forbidden"
    assert body["message"] == (f'pods "{name}" is forbidden: User "{AGENT_USER}" cannot delete resource '
                               f'"pods" in API group "" in the namespace "team-a"')
    assert body["details"] == {"name": name, "kind": "pods"}
    srv.create(objects.pod(name, namespace="default"))
    with pytest.raises(ApiException) as err:                            # pods/status only in team-a
        agent.patch_namespaced_pod_status(name, "default", {"metadata": {"annotations": {"c": "d"}}})
    assert status_of(err.value)["message"].endswith(
        'cannot patch resource "pods/status" in API group "" in the namespace "default"')
    with pytest.raises(ApiException) as err:
        agent.list_node()
    assert status_of(err.value)["message"] == (f'nodes is forbidden: User "{AGENT_USER}" cannot list '
                                               'resource "nodes" in API group "" at the cluster scope')
    custom = client.CustomObjectsApi(agent.api_client)
    custom.list_namespaced_custom_object("k8s.cni.cncf.io", "v1", "default", "network-attachment-definitions")
    with pytest.raises(ApiException) as err:
        custom.create_namespaced_custom_object("k8s.cni.cncf.io", "v1", "default",
                                               "network-attachment-definitions", objects.nad("x"))
    assert ('network-attachment-definitions.k8s.cni.cncf.io is forbidden: User '
            f'"{AGENT_USER}" cannot create resource "network-attachment-definitions" in API group '
            '"k8s.cni.cncf.io" in the namespace "default"') == status_of(err.value)["message"]
    assert client.VersionApi(agent.api_client).get_code().major == "1"   # discovery is open


# -- fault injection, outages, request log -----------------------------------------------------------

def test_injected_conflict_hits_the_next_request_only(srv, v1):
    name = unique("fault")
    v1.create_node(objects.node(name))
    srv.inject(method="PATCH", path_regex=f"/api/v1/nodes/{name}$", status=409)
    with pytest.raises(ApiException) as err:
        v1.patch_node(name, {"metadata": {"labels": {"sriov/freeVFAvailable": "true"}}})
    body = status_of(err.value)
    assert body["reason"] == "Conflict" and f'nodes "{name}"' in body["message"]
    out = v1.patch_node(name, {"metadata": {"labels": {"sriov/freeVFAvailable": "true"}}})
    assert out.metadata.labels == {"sriov/freeVFAvailable": "true"}
    assert [r.status for r in srv.find(method="PATCH", name=name)] == [409, 200]


def test_injected_errors_delays_and_hangs(srv, v1, api):
    srv.inject(method="GET", path_regex="/api/v1/namespaces/kube-system$", status=500)
    with pytest.raises(ApiException) as err:
        v1.read_namespace("kube-system")
    assert status_of(err.value)["reason"] == "InternalError"
    # urllib3 itself retries a GET answered 429/503 with Retry-After, so use a PATCH here
    srv.inject(method="PATCH", path_regex="/api/v1/namespaces/kube-public$", status=429, retry_after=2)
    with pytest.raises(ApiException) as err:
        v1.patch_namespace("kube-public", {"metadata": {"labels": {"a": "b"}}})
    assert err.value.status == 429 and err.value.headers["Retry-After"] == "2"
    assert status_of(err.value)["details"]["retryAfterSeconds"] == 2
    srv.inject(method="GET", path_regex="/api/v1/namespaces/default$", delay=0.3)
    started = time.monotonic()
    v1.read_namespace("default")
    assert time.monotonic() - started >= 0.3
    name = unique("hang")
    v1.create_node(objects.node(name))
    srv.inject(method="PATCH", path_regex=name, hang=True)
    with pytest.raises(urllib3.exceptions.HTTPError):                   # the client's read timeout
        v1.patch_node(name, {"metadata": {"labels": {"a": "b"}}}, _request_timeout=0.3)
    assert v1.patch_node(name, {"metadata": {"labels": {"a": "b"}}}).metadata.labels == {"a": "b"}


def test_outage_refuses_connections_then_recovers(fresh, tmp_path):
    api = api_client(fresh, tmp_path)
    api.configuration.retries = 0
    v1 = client.CoreV1Api(api)
    v1.create_node(objects.node("survivor"))
    for mode in ("refuse", "reset"):
        fresh.set_down(True, mode=mode)
        assert fresh.down
        with pytest.raises(urllib3.exceptions.HTTPError):
            v1.read_node("survivor")
        fresh.set_down(False)
        assert v1.read_node("survivor").metadata.name == "survivor"     # same port, same state


def test_request_log_records_and_counts(srv, tmp_path):
    agent = client.CoreV1Api(api_client(srv, tmp_path, token=AGENT))
    name = unique("log")
    srv.create(objects.node(name))
    srv.clear_log()
    agent.patch_node(name, {"metadata": {"labels": {"a": "1"}}})
    agent.patch_node(name, {"metadata": {"labels": {"a": "2"}}})
    agent.read_node(name)
    assert srv.count(method="PATCH", path_regex="/api/v1/nodes/.*") == 2
    assert srv.count(verb="get", resource="nodes") == 1
    rec = srv.requests[0]
    assert (rec.method, rec.path, rec.status, rec.user, rec.token) == (
        "PATCH", f"/api/v1/nodes/{name}", 200, AGENT_USER, AGENT)
    assert rec.content_type == STRATEGIC and rec.body == {"metadata": {"labels": {"a": "1"}}}
    assert rec.timestamp <= time.time()
    srv.clear_log()
    assert srv.requests == []


def test_keep_alive_requests_are_fast(srv, v1):
    v1.read_namespace("default")
    times = []
    for _ in range(30):
        started = time.monotonic()
        v1.read_namespace("default")
        times.append(time.monotonic() - started)
    times.sort()
    assert times[len(times) // 2] < 0.025, times                        # Nagle+delayed ACK costs ~40 ms


# -- delete semantics and direct helpers -------------------------------------------------------------

def test_delete_semantics(srv, v1, custom):
    name = unique("grace")
    v1.create_namespaced_pod("default", objects.pod(name, node="n1"))
    lingering = v1.delete_namespaced_pod(name, "default")              # scheduled: graceful
    assert lingering.metadata.deletion_timestamp and lingering.metadata.deletion_grace_period_seconds == 30
    assert v1.read_namespaced_pod(name, "default").metadata.deletion_timestamp
    v1.delete_namespaced_pod(name, "default", grace_period_seconds=0)
    assert srv.get("pods", name) is None
    node = unique("dn")
    v1.create_node(objects.node(node))
    st_ = v1.delete_node(node)
    assert st_["status"] == "Success" and st_["details"]["kind"] == "nodes"
    nad = objects.nad(unique("fin"))
    nad["metadata"]["finalizers"] = ["example.com/keep"]
    made = custom.create_namespaced_custom_object("k8s.cni.cncf.io", "v1", "default",
                                                  "network-attachment-definitions", nad)
    n = made["metadata"]["name"]
    with pytest.raises(ApiException) as err:
        custom.delete_namespaced_custom_object("k8s.cni.cncf.io", "v1", "default", "network-attachment-definitions",
                                               n, body={"preconditions": {"uid": "not-it"}})
    assert err.value.status == 409 and "Precondition failed: UID in precondition" in err.value.body
    kept = custom.delete_namespaced_custom_object("k8s.cni.cncf.io", "v1", "default",
                                                  "network-attachment-definitions", n)
    assert kept["metadata"]["deletionTimestamp"]
    custom.patch_namespaced_custom_object("k8s.cni.cncf.io", "v1", "default", "network-attachment-definitions",
                                          n, {"metadata": {"finalizers": None}})
    assert srv.get("network-attachment-definitions", n) is None
    with pytest.raises(ApiException) as err:
        v1.delete_namespace("default")
    assert err.value.status == 403


def test_direct_helpers_bypass_http(srv):
    before = srv.count()
    made = srv.create(objects.pod(unique("direct"), namespace="team-a", labels={"k": "v"}))
    name = made["metadata"]["name"]
    assert srv.get("pods", name, "team-a")["metadata"]["uid"] == made["metadata"]["uid"]
    assert name in [p["metadata"]["name"] for p in srv.list("pods", "team-a", label_selector="k=v")]
    srv.patch("pods", name, {"status": {"phase": "Running"}}, "team-a", subresource="status")
    assert srv.get("pods", name, "team-a")["status"]["phase"] == "Running"
    assert srv.delete("pods", name, "team-a")["metadata"]["name"] == name
    assert srv.get("pods", name, "team-a") is None and srv.delete("pods", name, "team-a") is None
    assert srv.count() == before                                         # nothing went over HTTP


def test_module_entry_point_prints_a_kubeconfig(tmp_path):
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    proc = subprocess.Popen([sys.executable, "-m", "tests.kubeapi", "--dir", str(tmp_path), "--nad-crd"],
                            cwd=root, stdout=subprocess.PIPE, text=True)
    try:
        path = proc.stdout.readline().strip()
        api = config.new_client_from_config(config_file=path)
        groups = [g.name for g in client.ApisApi(api).get_api_versions().groups]
        assert "k8s.cni.cncf.io" in groups
    finally:
        proc.terminate()
        assert proc.wait(5) == 0


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


_json = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=3),
                     lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=2), inner, max_size=3),
                     max_leaves=8)
_docs = st.dictionaries(st.text(max_size=2), _json, max_size=4)


@settings(max_examples=30, deadline=None)
@given(target=_docs, patch=_docs)
def test_merge_patch_properties(target, patch):
    once = merge_patch(target, patch)
    assert merge_patch(once, patch) == once                              # idempotent (RFC 7386)
    for key, value in patch.items():
        if value is None:
            assert key not in once
        elif not isinstance(value, dict):
            assert once[key] == value                                    # non-objects replace


def test_core_v1_events(srv, v1):
    """core/v1 Events as client-go's record.EventSinkImpl creates them (Multus's recorder and
    meta/events.py): created in the involved object's namespace, listed, 422 when the involved
    object's namespace is another (k8s.io/kubernetes pkg/apis/core/validation/events.go)."""
    names = {r.name for r in v1.get_api_resources().resources}
    assert "events" in names
    name = unique("p") + ".17f0a1b2c3d4e5f6"
    ev = {"apiVersion": "v1", "kind": "Event", "metadata": {"name": name, "namespace": "team-a"},
          "involvedObject": {"apiVersion": "v1", "kind": "Pod", "namespace": "team-a", "name": "p"},
          "reason": "AddedInterface", "message": "Add eth0 [10.244.1.5/24] from default", "type": "Normal",
          "source": {"component": "netmeta"}, "count": 1}
    made = v1.create_namespaced_event("team-a", ev)
    assert made.metadata.uid and made.reason == "AddedInterface"
    assert name in [e.metadata.name for e in v1.list_namespaced_event("team-a").items]
    bad = dict(ev, metadata={"name": unique("q"), "namespace": "team-a"},
               involvedObject=dict(ev["involvedObject"], namespace="default"))
    with pytest.raises(ApiException) as err:
        v1.create_namespaced_event("team-a", bad)
    assert err.value.status == 422
    assert "involvedObject.namespace: Invalid value: \"default\": does not match event.namespace" in \
        status_of(err.value)["message"]
