"""The test Kubernetes API server (tests/kubeapi) against the real `kubernetes` client:
TLS, discovery, CRUD, optimistic concurrency (409s, the global resourceVersion), delete
semantics, the direct helpers, the module entry point and core/v1 Events.

Each test pins one kube-apiserver behaviour netmeta relies on; raw HTTPS requests are used only
where the client cannot express the request (or hides the answer). Fixtures: tests/kubeapi_fixtures.py."""

from __future__ import annotations

import os
import socket
import ssl
import subprocess
import sys

import pytest
import urllib3
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from tests.kubeapi import KubeAPIServer, objects
from tests.kubeapi_fixtures import api, custom, raw, srv, status_of, unique, v1  # noqa: F401 - fixtures

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
