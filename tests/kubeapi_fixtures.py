"""Fixtures and helpers shared by the test_kubeapi_* modules (one module, test_kubeapi.py, until
issue 14 split it by concern): a module-scoped server with the NAD CRD and namespace team-a, a fresh
server per test, the real `kubernetes` client on it, raw HTTPS requests and watch events."""

from __future__ import annotations

import http.client
import json
import ssl

import pytest
from kubernetes import client, config

from tests.kubeapi import KubeAPIServer, objects

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
