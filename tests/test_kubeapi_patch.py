"""The test Kubernetes API server (tests/kubeapi) against the real `kubernetes` client:
patch semantics (merge, strategic, json-patch, status subresource, 415 on custom
resources) and custom resources (served once their CRD exists, pruned, type-checked).

Each test pins one kube-apiserver behaviour netmeta relies on; raw HTTPS requests are used only
where the client cannot express the request (or hides the answer). Fixtures: tests/kubeapi_fixtures.py."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from tests.kubeapi import objects
from tests.kubeapi.patch import merge_patch
from tests.kubeapi_fixtures import MERGE, STRATEGIC, api, api_client, custom, fresh, srv, status_of, unique, v1  # noqa: F401 - fixtures

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
