"""cni/kube/client.py, netmeta's small Kubernetes client, against the test API server over TLS:
every credential form a kubeconfig can carry that we support, in-cluster, token rotation,
TLS verification, errors, and watch streams."""
import base64
import threading

import pytest
import urllib3  # noqa: F401  (its warning class, named in a filter below)
import yaml

from cni.kube import client as kubeclient
from tests.kubeapi import KubeAPIServer, certs, objects


@pytest.fixture(scope="module")
def api():
    srv = KubeAPIServer(tokens={"admin-token": "*"}).start()
    srv.create(objects.pod("p1", namespace="default"))
    yield srv
    srv.stop()


def _edit(path, fn):
    doc = yaml.safe_load(open(path))
    fn(doc)
    with open(path, "w") as f:
        yaml.safe_dump(doc, f)
    return path


def _get_p1(ep) -> dict:
    return kubeclient.Client(ep, timeout=5).request("GET", kubeclient.path("", "v1", "pods", "default", "p1"))


@pytest.mark.parametrize("embed_ca", [False, True])
def test_token_and_ca_from_a_kubeconfig(api, tmp_path, embed_ca):
    kc = api.kubeconfig(str(tmp_path / "kc"), token="admin-token", embed_ca=embed_ca)
    assert _get_p1(kubeclient.from_kubeconfig(kc))["metadata"]["name"] == "p1"


@pytest.mark.parametrize("form", ["tokenFile", "inline"])
def test_a_rotated_token_is_picked_up(api, tmp_path, monkeypatch, form):
    """tokenFile (relative to the kubeconfig), or the inline token `netmeta install --refresh`
    rewrites: a 401 makes the client read it again at once; without a 401 it is re-read once
    TOKEN_REREAD has passed."""
    api.set_token(f"{form}-1", "*")
    kc = api.kubeconfig(str(tmp_path / "kc"), token=f"{form}-1")

    def rotate(n):
        if form == "tokenFile":
            (tmp_path / "tok").write_text(f"{form}-{n}\n")
        else:
            _edit(kc, lambda d: d["users"][0]["user"].update({"token": f"{form}-{n}"}))
    if form == "tokenFile":
        _edit(kc, lambda d: d["users"][0]["user"].update({"tokenFile": "tok", "token": None}))
        rotate(1)
    ep = kubeclient.from_kubeconfig(kc)
    client = kubeclient.Client(ep, timeout=5)
    p = kubeclient.path("", "v1", "pods", "default", "p1")
    assert client.request("GET", p)["metadata"]["name"] == "p1"
    api.set_token(f"{form}-2", "*")       # the token rotates: the old one stops working
    api.remove_token(f"{form}-1")
    rotate(2)
    assert client.request("GET", p)["metadata"]["name"] == "p1"      # 401 -> re-read -> retried
    assert ep.token() == f"{form}-2"
    rotate(3)                              # both valid for a while: re-read on the period only
    api.set_token(f"{form}-3", "*")
    assert ep.token() == f"{form}-2"
    monkeypatch.setattr(kubeclient, "TOKEN_REREAD", 0.0)
    assert ep.token() == f"{form}-3"
    api.remove_token(f"{form}-2")
    api.remove_token(f"{form}-3")
    with pytest.raises(kubeclient.ApiError) as e:    # a token nobody accepts is still a 401
        client.request("GET", p)
    assert e.value.status == 401


@pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")
def test_a_server_signed_by_another_ca_is_refused_unless_verification_is_off(api, tmp_path):
    other_ca, _, _ = certs.generate(str(tmp_path))
    kc = api.kubeconfig(str(tmp_path / "kc"), token="admin-token")
    _edit(kc, lambda d: d["clusters"][0]["cluster"].update({"certificate-authority": other_ca}))
    with pytest.raises(kubeclient.Unreachable) as e:
        _get_p1(kubeclient.from_kubeconfig(kc))
    assert "CERTIFICATE_VERIFY_FAILED" in str(e.value)
    assert isinstance(e.value, OSError)       # callers treat it as "API unreachable"

    def insecure(d):
        c = d["clusters"][0]["cluster"]
        del c["certificate-authority"]
        c["insecure-skip-tls-verify"] = True
    _edit(kc, insecure)
    assert _get_p1(kubeclient.from_kubeconfig(kc))["metadata"]["name"] == "p1"


def test_client_certificate_data_is_loaded_and_a_wrong_key_refused(api, tmp_path):
    _, crt, key = certs.generate(str(tmp_path / "a"))
    _, _, other_key = certs.generate(str(tmp_path / "b"))
    b64 = lambda p: base64.b64encode(open(p, "rb").read()).decode()   # noqa: E731
    kc = api.kubeconfig(str(tmp_path / "kc"), token="admin-token")
    _edit(kc, lambda d: d["users"][0]["user"].update({"client-certificate-data": b64(crt),
                                                      "client-key-data": b64(key)}))
    ep = kubeclient.from_kubeconfig(kc)
    assert _get_p1(ep)["metadata"]["name"] == "p1"
    assert list(tmp_path.glob("netmeta-kube-*")) == []
    _edit(kc, lambda d: d["users"][0]["user"].update({"client-key-data": b64(other_key)}))
    with pytest.raises(kubeclient.ConfigError, match="TLS set-up failed"):
        kubeclient.from_kubeconfig(kc)


@pytest.mark.parametrize("change, words", [
    # exec / auth-provider users go to the `kubernetes` loader (cni/kube/creds.py, tests/test_kubecreds.py)
    (lambda d: d["users"][0].update(user={"exec": {"apiVersion": "client.authentication.k8s.io/v1",
                                                   "command": "/nonexistent/cred-plugin"}}), "gives no credential"),
    (lambda d: d["users"][0].update(user={"auth-provider": {"name": "no-such-provider"}}), "auth-provider"),
    (lambda d: d.pop("current-context"), "no current-context"),
    (lambda d: d.update({"current-context": "nope"}), "no context named 'nope'"),
    (lambda d: d["clusters"][0]["cluster"].update({"server": "ftp://x"}), "not an http(s) URL"),
    (lambda d: d["users"][0]["user"].update({"client-certificate-data": "QUJD"}), "go together"),
    (lambda d: d["clusters"][0]["cluster"].update({"certificate-authority-data": "%%%"}), "not base64"),
])
def test_kubeconfigs_we_cannot_use_are_named_errors(api, tmp_path, change, words):
    kc = _edit(api.kubeconfig(str(tmp_path / "kc")), change)
    with pytest.raises(kubeclient.ConfigError) as e:
        kubeclient.from_kubeconfig(kc)
    assert words in str(e.value)


def test_in_cluster_service_account(api, tmp_path):
    sa = tmp_path / "sa"
    sa.mkdir()
    (sa / "token").write_text("admin-token")
    (sa / "ca.crt").write_bytes(open(api.ca_file, "rb").read())
    host, _, port = api.url.rpartition("//")[2].rpartition(":")
    env = {"KUBERNETES_SERVICE_HOST": host, "KUBERNETES_SERVICE_PORT": port}
    assert _get_p1(kubeclient.in_cluster(env, str(sa)))["metadata"]["name"] == "p1"
    with pytest.raises(kubeclient.ConfigError, match="not in a cluster"):
        kubeclient.in_cluster({}, str(sa))
    (sa / "token").unlink()
    with pytest.raises(kubeclient.ConfigError, match="cannot read the token"):
        kubeclient.in_cluster(env, str(sa))


def test_http_errors_carry_status_and_the_status_message(api, tmp_path):
    c = kubeclient.Client(kubeclient.from_kubeconfig(api.kubeconfig(str(tmp_path / "kc"))), timeout=5)
    with pytest.raises(kubeclient.ApiError) as e:
        c.request("GET", kubeclient.path("", "v1", "pods", "default", "missing"))
    assert e.value.status == 404 and "not found" in str(e.value)


def test_merge_patch_and_watch_stream(api, tmp_path):
    c = kubeclient.Client(kubeclient.from_kubeconfig(api.kubeconfig(str(tmp_path / "kc"))), timeout=5)
    pods = "/api/v1/pods"
    rv = c.request("GET", pods)["metadata"]["resourceVersion"]
    seen, started = [], threading.Event()

    def watch():
        started.set()
        for ev in c.watch(pods, {"resourceVersion": rv, "timeoutSeconds": "30"}, timeout=40):
            seen.append((ev["type"], ev["object"]["metadata"]["name"],
                         ev["object"]["metadata"].get("annotations", {}).get("k")))
            if len(seen) == 2:
                api.close_watches()
    t = threading.Thread(target=watch)
    t.start()
    started.wait()
    c.request("POST", "/api/v1/namespaces/default/pods", body=objects.pod("w1", namespace="default"))
    c.request("PATCH", kubeclient.path("", "v1", "pods", "default", "w1"),
              body={"metadata": {"annotations": {"k": "v"}}}, content_type="application/merge-patch+json")
    t.join(20)
    assert not t.is_alive()
    assert seen == [("ADDED", "w1", None), ("MODIFIED", "w1", "v")]
    # the client is still usable after a stream it left mid-way
    assert c.request("GET", kubeclient.path("", "v1", "pods", "default", "w1"))["metadata"]["annotations"] == {"k": "v"}


def test_unreachable_server_is_an_oserror(tmp_path):
    srv = KubeAPIServer(tokens={"admin-token": "*"}).start()
    kc = srv.kubeconfig(str(tmp_path / "kc"))
    c = kubeclient.Client(kubeclient.from_kubeconfig(kc), timeout=2)
    srv.stop()
    with pytest.raises(kubeclient.Unreachable):
        c.request("GET", "/api/v1/pods")


def test_the_product_names_itself_to_the_api(api, tmp_path):
    """cni/ names no product: netmeta's callers pass their name (delegates/registry.py SHIM) for
    the User-Agent header; the library alone sends urllib3's."""
    from delegates.fixipam import cluster
    from meta.kube.api import Kube
    kc = api.kubeconfig(str(tmp_path / "kc"), token="admin-token")
    assert Kube(kc).http.user_agent == "netmeta"
    assert cluster.for_kubeconfig(kc, "node-ua").http.user_agent == "netmeta"
    assert kubeclient.Client(kubeclient.from_kubeconfig(kc)).user_agent is None
