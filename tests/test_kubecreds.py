"""cni/kube/creds.py: the kubeconfigs netmeta's small loader lacks, read by the `kubernetes`
package's loader while netmeta's own client makes the requests, against the test API server
(token auth, TLS): an exec credential plugin (a script printing an ExecCredential,
client.authentication.k8s.io/v1) refreshed when its expirationTimestamp passes and after a 401,
several KUBECONFIG files with a chosen context, and `kubernetes` imported only for these."""
import json
import os
import subprocess
import sys
import textwrap

import pytest

from cni.kube import client as kubeclient
from tests.test_kubeclient import _edit, _get_p1, api  # noqa: F401 - api: the same module-scoped test API server fixture

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _exec_plugin(tmp_path, token: str, expires: str | None):
    """A credential plugin: prints an ExecCredential with the token in ./token (and the
    expirationTimestamp in ./expires), appending a line to ./runs each time it runs."""
    (tmp_path / "token").write_text(token)
    (tmp_path / "expires").write_text(expires or "")
    script = tmp_path / "cred-plugin"
    script.write_text(textwrap.dedent(f"""\
        #!{sys.executable}
        import json, os, sys
        d = {str(tmp_path)!r}
        info = json.loads(os.environ["KUBERNETES_EXEC_INFO"])   # what the loader tells a plugin
        assert info["apiVersion"] == "client.authentication.k8s.io/v1", info
        with open(os.path.join(d, "runs"), "a") as f:
            f.write("run\\n")
        status = {{"token": open(os.path.join(d, "token")).read()}}
        exp = open(os.path.join(d, "expires")).read()
        if exp:
            status["expirationTimestamp"] = exp
        json.dump({{"apiVersion": "client.authentication.k8s.io/v1", "kind": "ExecCredential",
                   "status": status}}, sys.stdout)
        """))
    script.chmod(0o755)
    return script


def _runs(tmp_path) -> int:
    p = tmp_path / "runs"
    return len(p.read_text().splitlines()) if p.exists() else 0


def _exec_kubeconfig(api, tmp_path, script):
    kc = api.kubeconfig(str(tmp_path / "kc"), token="unused")
    return _edit(kc, lambda d: d["users"][0].update(user=
        {"exec": {"apiVersion": "client.authentication.k8s.io/v1", "command": str(script),
                                 "interactiveMode": "Never"}}))


def test_exec_plugin_token_is_used_and_kept_until_it_expires(api, tmp_path, uid):
    api.set_token(f"exec-{uid}", "*")
    script = _exec_plugin(tmp_path, f"exec-{uid}", "2099-01-01T00:00:00Z")
    ep = kubeclient.from_kubeconfig(_exec_kubeconfig(api, tmp_path, script))
    for _ in range(3):
        assert _get_p1(ep)["metadata"]["name"] == "p1"
    assert _runs(tmp_path) == 1          # not expired: the plugin ran once
    api.remove_token(f"exec-{uid}")


def test_exec_plugin_runs_again_once_its_credential_expired(api, tmp_path, uid):
    api.set_token(f"exp-{uid}-1", "*")
    script = _exec_plugin(tmp_path, f"exp-{uid}-1", "2020-01-01T00:00:00Z")   # already past
    ep = kubeclient.from_kubeconfig(_exec_kubeconfig(api, tmp_path, script))
    assert _get_p1(ep)["metadata"]["name"] == "p1"
    first = _runs(tmp_path)
    # the plugin now hands out a new token, the old one is revoked: no 401 is needed to switch,
    # but even if one came the request must succeed
    api.set_token(f"exp-{uid}-2", "*")
    (tmp_path / "token").write_text(f"exp-{uid}-2")
    (tmp_path / "expires").write_text("2099-01-01T00:00:00Z")
    api.remove_token(f"exp-{uid}-1")
    assert _get_p1(ep)["metadata"]["name"] == "p1"
    assert _runs(tmp_path) == first + 1   # re-run because it expired (a 401 would make it +2)
    assert ep.authorization() == f"Bearer exp-{uid}-2"
    assert _runs(tmp_path) == first + 1   # and now kept: not expired any more
    api.remove_token(f"exp-{uid}-2")


def test_exec_plugin_runs_again_after_a_401(api, tmp_path, uid):
    api.set_token(f"rot-{uid}-1", "*")
    script = _exec_plugin(tmp_path, f"rot-{uid}-1", "2099-01-01T00:00:00Z")
    ep = kubeclient.from_kubeconfig(_exec_kubeconfig(api, tmp_path, script))
    assert _get_p1(ep)["metadata"]["name"] == "p1"
    api.set_token(f"rot-{uid}-2", "*")       # revoked before its expirationTimestamp
    api.remove_token(f"rot-{uid}-1")
    (tmp_path / "token").write_text(f"rot-{uid}-2")
    assert _get_p1(ep)["metadata"]["name"] == "p1"
    assert _runs(tmp_path) == 2
    api.remove_token(f"rot-{uid}-2")
    with pytest.raises(kubeclient.ApiError) as e:   # a token nobody accepts is still a 401
        _get_p1(ep)
    assert e.value.status == 401


def test_a_failing_exec_plugin_is_a_config_error(api, tmp_path):
    kc = _exec_kubeconfig(api, tmp_path, tmp_path / "no-such-plugin")
    with pytest.raises(kubeclient.ConfigError, match="gives no credential"):
        kubeclient.from_kubeconfig(kc)


def test_several_kubeconfig_files_and_a_chosen_context(api, tmp_path):
    """KUBECONFIG=a:b merged as kubectl does (the first file to set a name or current-context
    wins: a, whose token is refused), and a chosen context (b's user on a's cluster)."""
    a = api.kubeconfig(str(tmp_path / "a"), token="revoked-token")   # current-context: kubeapi-test
    b = str(tmp_path / "b")
    with open(b, "w") as f:
        json.dump({"apiVersion": "v1", "kind": "Config", "clusters": [], "current-context": "admin",
                   "contexts": [{"name": "admin", "context": {"cluster": "kubeapi-test", "user": "admin"}}],
                   "users": [{"name": "admin", "user": {"token": "admin-token"}}]}, f)
    with pytest.raises(kubeclient.ApiError) as e:    # a's own context: its token is refused
        _get_p1(kubeclient.from_kubeconfig(f"{a}:{b}"))
    assert e.value.status == 401
    ep = kubeclient.from_kubeconfig(f"{a}:{b}", context="admin")   # b's user on a's cluster
    assert _get_p1(ep)["metadata"]["name"] == "p1"
    with pytest.raises(kubeclient.ConfigError):
        kubeclient.from_kubeconfig(f"{a}:{b}", context="nope")


def test_kubernetes_is_imported_only_for_the_credentials_that_need_it(api, tmp_path, uid):
    """Idle RSS stays as it was: a token kubeconfig never imports the `kubernetes` package."""
    api.set_token(f"lazy-{uid}", "*")
    plain = api.kubeconfig(str(tmp_path / "plain"), token="admin-token")
    sub = tmp_path / "exec"
    sub.mkdir()
    kc = _exec_kubeconfig(api, sub, _exec_plugin(sub, f"lazy-{uid}", None))
    code = ("import sys; from cni.kube import client as kubeclient\n"
            "kubeclient.from_kubeconfig(sys.argv[1])\n"
            "print('kubernetes' in sys.modules)\n")
    out = [subprocess.run([sys.executable, "-c", code, p], cwd=REPO, capture_output=True, text=True, check=True,
                          timeout=120).stdout.strip() for p in (plain, kc)]
    assert out == ["False", "True"]
    api.remove_token(f"lazy-{uid}")


def test_basic_auth_is_sent_as_the_loader_makes_it(api, tmp_path):
    """username/password: the `kubernetes` loader's "Basic ..." header goes out as it is. The
    API server answers 401: kube-apiserver dropped --basic-auth-file in v1.19, as the test
    server (token auth only) does; the header is for an authenticating proxy in front."""
    import base64
    kc = _edit(api.kubeconfig(str(tmp_path / "kc")), lambda d: d["users"][0].update(user={"username": "u", "password": "p:w"}))
    ep = kubeclient.from_kubeconfig(kc)
    assert ep.authorization() == "Basic " + base64.b64encode(b"u:p:w").decode()
    with pytest.raises(kubeclient.ApiError) as e:
        _get_p1(ep)
    assert e.value.status == 401
