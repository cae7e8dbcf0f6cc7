"""A small Kubernetes REST client for the calls netmeta makes (GET/PATCH one object, LIST,
WATCH), JSON in and out, on urllib3 (the HTTP library the `kubernetes` package uses itself).
Here in cni/ because both the meta plugin and the delegates (which never import meta) use it;
cni/kube/client.py is the same module under its old name.

Why not the `kubernetes` package: importing it costs ~20 MB of RSS and ~190 ms (1000+
generated model classes, every response turned into model objects and back), more than the
rest of the node daemon; netmeta only needs dicts.

Credentials: a kubeconfig's current context (server, certificate-authority[-data],
insecure-skip-tls-verify, tls-server-name, token, tokenFile, client-certificate[-data] +
client-key[-data]; relative paths are relative to the kubeconfig, as kubectl reads them), or
the in-cluster service account. Tokens are re-read once a minute and after a 401 (the kubelet
rotates bound service-account tokens; `netmeta install --refresh` rewrites its kubeconfig
then). What this small loader lacks (exec credential plugins, auth-providers, basic auth,
several KUBECONFIG files, a chosen context) the `kubernetes` package's loader reads, imported
only then: cni/kube/creds.py.
"""
from __future__ import annotations

import base64
import json
import os
import socket
import ssl
import tempfile
import threading
import time
from typing import Any
from urllib.parse import quote, urlencode

import urllib3
import yaml

SA_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
TOKEN_REREAD = 60.0
# user keys only the `kubernetes` package's loader reads (cni/kube/creds.py)
OFFICIAL_USER_KEYS = ("exec", "auth-provider", "username", "password")


class ConfigError(Exception):
    """A kubeconfig / in-cluster set-up this client cannot use."""


class ApiError(Exception):
    """The API server answered with an HTTP error; `status`, `reason`, and the Status body."""

    def __init__(self, status: int, reason: str | None, body: bytes = b""):
        self.status, self.reason, self.body = status, reason or "", body
        msg = ""
        try:
            msg = json.loads(body).get("message", "")
        except Exception:  # not a Status object (a proxy's HTML page, an empty body)
            pass
        super().__init__(f"HTTP {status} {self.reason}" + (f": {msg}" if msg else ""))


class Unreachable(ConnectionError):
    """No HTTP answer at all: refused, reset, timed out, TLS failure."""


# ---------------- credentials ----------------
class Endpoint:
    """Where the API is and how to authenticate. A token from a file (tokenFile, the service
    account's) or inline in a kubeconfig that `netmeta install` rewrites when the token
    rotates, is read again once a minute (client-go's period) and at once after a 401.

    `token_source(force)` gives the token; `reread` is how often it is asked (default
    TOKEN_REREAD; 0: every request, for a source that caches itself); `scheme` None: the
    source gives the whole Authorization value (the `kubernetes` loader's "Bearer ..." or
    "Basic ...")."""

    def __init__(self, server: str, ctx: ssl.SSLContext | None, token: str | None = None,
                 token_source=None, server_name: str | None = None, reread: float | None = None,
                 scheme: str | None = "Bearer"):
        self.server = server.rstrip("/")
        self.ctx, self.server_name = ctx, server_name
        self._token, self._source = token, token_source
        self._token_read = time.monotonic() if token else 0.0
        self._reread, self._scheme = reread, scheme
        self._lock = threading.Lock()

    def authorization(self) -> str | None:
        """The Authorization header's value, None for none."""
        tok = self.token()
        return tok and (f"{self._scheme} {tok}" if self._scheme else tok)

    def token(self, force: bool = False) -> str | None:
        if self._source is None:
            return self._token
        with self._lock:
            now = time.monotonic()
            reread = TOKEN_REREAD if self._reread is None else self._reread
            if force or self._token is None or now - self._token_read >= reread:
                try:
                    self._token = self._source(force)
                except (OSError, ConfigError) as e:
                    if self._token is None:   # keep a token we had: the file is being rewritten
                        raise ConfigError(f"cannot read the token: {e}") from None
                self._token_read = now
            return self._token


def _token_file(path: str):
    def read(force: bool = False) -> str:
        with open(path, encoding="ascii") as f:
            return f.read().strip()
    return read


def _tls(ca_file=None, ca_data=None, insecure=False, cert=None, key=None, product: str = "") -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=ca_file, cadata=ca_data)
    if insecure:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    if cert:
        # load_cert_chain wants files: PEM data from a kubeconfig goes through a private
        # 0700 directory that is gone before this returns
        with tempfile.TemporaryDirectory(prefix=f"{product}-kube-" if product else "kube-") as d:
            paths = []
            for name, (kind, val) in (("cert", cert), ("key", key)):
                if kind == "data":
                    p = os.path.join(d, name)
                    fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                    with os.fdopen(fd, "wb") as f:
                        f.write(val)
                    val = p
                paths.append(val)
            ctx.load_cert_chain(paths[0], paths[1])
    return ctx


def _named(items, name: object, kind: str) -> dict:
    for it in items or []:
        if isinstance(it, dict) and it.get("name") == name:
            return it.get(kind) or {}
    raise ConfigError(f"kubeconfig: no {kind} named {name!r}")


def from_kubeconfig(path: str, context: str | None = None, product: str = "") -> Endpoint:
    """`path`: one file, or several joined by ':' (KUBECONFIG); `context`: a chosen context
    instead of the current-context. Those two, and the users in OFFICIAL_USER_KEYS, are read by
    the `kubernetes` package's loader (cni/kube/creds.py). `product` (the caller's name, e.g.
    netmeta's delegates/registry.py SHIM.product) prefixes the private temp directories and
    names the pip extra in the message when `kubernetes` is missing."""
    if os.pathsep in path or context:
        return _from_official_loader(path, context, product)
    try:
        with open(path, encoding="utf-8") as f:
            doc = yaml.safe_load(f)
    except (OSError, yaml.YAMLError) as e:
        raise ConfigError(f"cannot read kubeconfig {path}: {e}") from None
    if not isinstance(doc, dict):
        raise ConfigError(f"kubeconfig {path} is not a mapping")
    base = os.path.dirname(os.path.abspath(path))
    ctx_name = doc.get("current-context")
    if not ctx_name:
        raise ConfigError(f"kubeconfig {path} has no current-context")
    current = _named(doc.get("contexts"), ctx_name, "context")
    cluster = _named(doc.get("clusters"), current.get("cluster"), "cluster")
    user = _named(doc.get("users"), current.get("user"), "user") if current.get("user") else {}
    if any(user.get(k) for k in OFFICIAL_USER_KEYS):
        return _from_official_loader(path, None, product)
    server = cluster.get("server")
    if not isinstance(server, str) or not server.startswith(("https://", "http://")):
        raise ConfigError(f"kubeconfig {path}: cluster server {server!r} is not an http(s) URL")

    def file_or_data(key: str):
        raw = user.get(f"{key}-data") or cluster.get(f"{key}-data")
        if raw:
            try:
                return "data", base64.b64decode(raw, validate=True)
            except (ValueError, TypeError):
                raise ConfigError(f"kubeconfig {path}: {key}-data is not base64") from None
        p = user.get(key) or cluster.get(key)
        return ("file", os.path.join(base, p)) if p else None

    ca = file_or_data("certificate-authority")
    cert, key = file_or_data("client-certificate"), file_or_data("client-key")
    if bool(cert) != bool(key):
        raise ConfigError(f"kubeconfig {path}: client-certificate and client-key go together")
    ctx = None
    if server.startswith("https://"):
        try:
            ctx = _tls(ca_file=ca[1] if ca and ca[0] == "file" else None,
                       ca_data=ca[1].decode("ascii", "replace") if ca and ca[0] == "data" else None,
                       insecure=bool(cluster.get("insecure-skip-tls-verify")), cert=cert, key=key,
                       product=product)
        except (OSError, ssl.SSLError, ValueError) as e:
            raise ConfigError(f"kubeconfig {path}: TLS set-up failed: {e}") from None
    token_file, user_name = user.get("tokenFile"), current.get("user")

    def inline_token(force: bool = False) -> str | None:
        with open(path, encoding="utf-8") as f:
            d = yaml.safe_load(f)
        return _named(d.get("users"), user_name, "user").get("token")
    source = _token_file(os.path.join(base, token_file)) if token_file else (
        inline_token if user.get("token") else None)
    return Endpoint(server, ctx, token=None if token_file else user.get("token"), token_source=source,
                    server_name=cluster.get("tls-server-name"))


def _from_official_loader(path: str, context: str | None, product: str = "") -> Endpoint:
    from . import creds as kubecreds  # imports `kubernetes`, only for these kubeconfigs
    try:
        creds = kubecreds.Credentials(path, context, product)
    except kubecreds.CredentialError as e:
        raise ConfigError(str(e)) from None
    cfg = creds.cfg
    ctx = None
    if cfg.host.startswith("https://"):
        try:
            ctx = _tls(ca_file=cfg.ssl_ca_cert, insecure=not cfg.verify_ssl,
                              cert=("file", cfg.cert_file) if cfg.cert_file else None,
                              key=("file", cfg.key_file) if cfg.key_file else None, product=product)
        except (OSError, ValueError) as e:   # ssl.SSLError is an OSError
            raise ConfigError(f"kubeconfig {path}: TLS set-up failed: {e}") from None

    def header(force: bool = False) -> str | None:
        try:
            return creds.header(force)
        except kubecreds.CredentialError as e:
            raise ConfigError(str(e)) from None   # Endpoint keeps the token it had
    return Endpoint(cfg.host, ctx, token_source=header if creds.header() else None,
                    server_name=cfg.tls_server_name, reread=0.0, scheme=None)


def in_cluster(env=os.environ, sa_dir: str = SA_DIR) -> Endpoint:
    host, port = env.get("KUBERNETES_SERVICE_HOST"), env.get("KUBERNETES_SERVICE_PORT")
    if not host or not port:
        raise ConfigError("not in a cluster: KUBERNETES_SERVICE_HOST/PORT are not set")
    try:
        ctx = _tls(ca_file=os.path.join(sa_dir, "ca.crt"))
    except (OSError, ssl.SSLError) as e:
        raise ConfigError(f"cannot load the service account CA from {sa_dir}: {e}") from None
    server = f"https://[{host}]:{port}" if ":" in host else f"https://{host}:{port}"
    ep = Endpoint(server, ctx, token_source=_token_file(os.path.join(sa_dir, "token")))
    ep.token()   # fail now, not at the first request
    return ep


# ---------------- requests ----------------
class Client:
    def __init__(self, ep: Endpoint, timeout: float = 10.0, maxsize: int = 8, user_agent: str | None = None):
        """`user_agent`: the caller's name in the User-Agent header (None: urllib3's own)."""
        self.ep, self.timeout = ep, timeout
        self.user_agent = user_agent
        opts = [(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1), (socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)]
        kw: dict[str, Any] = {"ssl_context": ep.ctx, "server_hostname": ep.server_name} if ep.ctx else {}
        # block=False: a burst beyond `maxsize` opens extra connections instead of waiting
        self.pool = urllib3.PoolManager(num_pools=2, maxsize=maxsize, block=False, retries=False,
                                        socket_options=opts, **kw)

    def _headers(self, content_type: str | None = None) -> dict:
        h = {"Accept": "application/json"}
        if self.user_agent:
            h["User-Agent"] = self.user_agent
        auth = self.ep.authorization()
        if auth:
            h["Authorization"] = auth
        if content_type:
            h["Content-Type"] = content_type
        return h

    def _url(self, path: str, query: dict | None) -> str:
        q = {k: v for k, v in (query or {}).items() if v is not None}
        return self.ep.server + path + (f"?{urlencode(q)}" if q else "")

    def request(self, method: str, path: str, query: dict | None = None, body=None,
                content_type: str = "application/json", timeout: float | None = None) -> dict:
        data = json.dumps(body).encode() if body is not None else None
        r = self._send(method, path, query, data, content_type, timeout)
        if r.status == 401 and self.ep.token() != self.ep.token(force=True):
            r = self._send(method, path, query, data, content_type, timeout)   # it rotated
        if r.status >= 400:
            raise ApiError(r.status, r.reason, r.data)
        try:
            return json.loads(r.data)
        except ValueError:
            raise ApiError(r.status, "response is not JSON", r.data[:200]) from None

    def _send(self, method, path, query, data, content_type, timeout):
        try:
            return self.pool.request(method, self._url(path, query), body=data,
                                     headers=self._headers(content_type if data is not None else None),
                                     timeout=urllib3.Timeout(total=timeout or self.timeout))
        except urllib3.exceptions.HTTPError as e:
            raise Unreachable(f"{method} {path}: {e}") from None

    def watch(self, path: str, query: dict | None = None, timeout: float = 330.0):
        """Yield the watch events ({"type", "object"}) of a LIST path with watch=1 until the
        server ends the stream (its timeoutSeconds) or it breaks."""
        q = dict(query or {}, watch="1")
        try:
            r = self.pool.request("GET", self._url(path, q), headers=self._headers(), preload_content=False,
                                  timeout=urllib3.Timeout(connect=self.timeout, read=timeout))
        except urllib3.exceptions.HTTPError as e:
            raise Unreachable(f"WATCH {path}: {e}") from None
        done = False
        try:
            if r.status >= 400:
                raise ApiError(r.status, r.reason, r.read())
            buf = b""
            try:
                for chunk in r.stream(65536):
                    buf += chunk
                    while b"\n" in buf:
                        line, buf = buf.split(b"\n", 1)
                        if line.strip():
                            yield json.loads(line)
            except urllib3.exceptions.HTTPError as e:
                raise Unreachable(f"WATCH {path}: {e}") from None
            done = True
        finally:
            if not done:   # left mid-stream: the connection holds unread data, never reuse it
                r.close()
            r.release_conn()


def path(group: str, version: str, plural: str, namespace: str | None = None, name: str | None = None) -> str:
    """/api/v1/... for the core group (""), /apis/<group>/<version>/... otherwise."""
    p = f"/api/{version}" if not group else f"/apis/{group}/{version}"
    if namespace:
        p += f"/namespaces/{quote(namespace, safe='')}"
    p += f"/{plural}"
    if name:
        p += f"/{quote(name, safe='')}"
    return p
