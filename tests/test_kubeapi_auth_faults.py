"""The test Kubernetes API server (tests/kubeapi) against the real `kubernetes` client:
authentication and authorization (401, 403 with the real message), fault injection,
outages, the request log and keep-alive.

Each test pins one kube-apiserver behaviour netmeta relies on; raw HTTPS requests are used only
where the client cannot express the request (or hides the answer). Fixtures: tests/kubeapi_fixtures.py."""

from __future__ import annotations

import time

import pytest
import urllib3
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from tests.kubeapi import objects
from tests.kubeapi_fixtures import AGENT, AGENT_USER, STRATEGIC, api, api_client, custom, fresh, raw, srv, status_of, unique, v1  # noqa: F401 - fixtures

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
