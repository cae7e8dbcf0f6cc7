"""`KubeAPIServer`: a kube-apiserver stand-in on https://127.0.0.1:<random port> for tests.

It serves what a cluster serves to a node agent (see the package docstring) over TLS with a
generated CA, one thread per connection (watches never block other requests), HTTP/1.1
keep-alive with TCP_NODELAY. Test controls a real server lacks: seeding and inspecting state
directly (`create`, `get`, `list`, `patch`, `delete`), fault injection (`inject`), an outage switch
(`set_down`), closing watches (`close_watches`), history compaction (`compact`) and the request log
(`requests`, `count`, `find`, `clear_log`).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import ssl
import struct
import tempfile
import threading
import time
from http.server import ThreadingHTTPServer

from . import auth, binding, certs, errors, patch, resources
from .faults import Fault, Faults, RequestLog
from .handler import Handler
from .selectors import FieldSelector, LabelSelector
from .store import Store

DEFAULT_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")
PATCH_TYPES = {"json": patch.JSON_PATCH, "merge": patch.MERGE_PATCH, "strategic": patch.STRATEGIC}


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, address, api):
        self.api = api
        super().__init__(address, Handler)

    def get_request(self):
        sock, addr = self.socket.accept()
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock, addr

    def process_request(self, request, client_address):
        if self.api.down_mode == "reset":
            request.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            request.close()
            return
        super().process_request(request, client_address)

    def finish_request(self, request, client_address):
        api = self.api
        try:
            request.settimeout(10)
            conn = api.ssl_context.wrap_socket(request, server_side=True)
            conn.settimeout(None)
        except (OSError, ValueError):
            request.close()
            return
        api._track(conn, True)
        try:
            self.RequestHandlerClass(conn, client_address, self)
        except (OSError, ValueError):
            pass
        finally:
            api._track(conn, False)
            try:
                conn.close()
            except OSError:
                pass

    def handle_error(self, request, client_address):
        pass


class KubeAPIServer:
    """A faithful-enough kube-apiserver for tests. See the module and package docstrings.

    tokens: `{token: "*" | [rule, ...] | {"user": name, "rules": ...}}` (format: `auth.py`);
        default `{"admin-token": "*"}`.
    history_size: watch events kept; a watch from an older resourceVersion gets 410 Expired.
    watch_timeout: seconds a watch without `timeoutSeconds` lasts (kube-apiserver: 30-60 min).
    objects: objects to create before start (e.g. the NAD CRD).
    """

    def __init__(self, tokens=None, host="127.0.0.1", port=0, cert_dir=None, history_size=1000,
                 watch_timeout=1800.0, git_version="v1.34.1", namespaces=DEFAULT_NAMESPACES,
                 objects=()):
        self.grants = auth.make_grants({"admin-token": "*"} if tokens is None else tokens)
        self.host, self.port = host, port
        self.store = Store(resources.Registry(), history_size)
        self.faults = Faults()
        self.log = RequestLog()
        self.watch_timeout = watch_timeout
        self.git_version = git_version
        self.generation = 0          # bumped by outages: open streams end
        self.watch_epoch = 0         # bumped by close_watches()
        self.down_mode = None
        self._cert_dir, self._own_dir = cert_dir, cert_dir is None
        self._conns = set()
        self._conns_lock = threading.Lock()
        self._state_lock = threading.Lock()
        self._stop_event = threading.Event()
        self._httpd = None
        self._thread = None
        self.ssl_context = None
        self.ca_file = self.cert_file = self.key_file = None
        for ns in namespaces:
            self.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
        for obj in objects:
            self.create(obj)

    # -- lifecycle ---------------------------------------------------------------------------------

    def start(self):
        if self._cert_dir is None:
            self._cert_dir = tempfile.mkdtemp(prefix="kubeapi-")
        self.ca_file, self.cert_file, self.key_file = certs.generate(self._cert_dir)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(self.cert_file, self.key_file)
        ctx.set_alpn_protocols(["http/1.1"])
        self.ssl_context = ctx
        self._stop_event.clear()
        self._listen()
        return self

    def stop(self):
        self._stop_event.set()
        self.store.close()
        self._unlisten()
        self._close_connections()
        if self._own_dir and self._cert_dir:
            shutil.rmtree(self._cert_dir, ignore_errors=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    @property
    def stopping(self):
        return self._stop_event.is_set()

    def sleep(self, seconds):
        """Sleep, but wake up at once when the server stops."""
        self._stop_event.wait(seconds)

    @property
    def url(self):
        return f"https://{self.host}:{self.port}"

    def _listen(self):
        self._httpd = _HTTPServer((self.host, self.port), self)
        self.port = self._httpd.server_address[1]
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        name=f"kubeapi-{self.port}", daemon=True)
        self._thread.start()

    def _unlisten(self):
        httpd, self._httpd = self._httpd, None
        if httpd is not None:
            httpd.shutdown()
            httpd.server_close()
            self._thread.join(5)

    def _track(self, conn, add):
        with self._conns_lock:
            (self._conns.add if add else self._conns.discard)(conn)

    def _close_connections(self):
        with self._conns_lock:
            conns = list(self._conns)
        for conn in conns:
            try:
                socket.socket.shutdown(conn, socket.SHUT_RDWR)
            except OSError:
                pass
        with self.store.lock:
            self.store.cond.notify_all()

    # -- kubeconfig --------------------------------------------------------------------------------

    def default_token(self):
        for token, grant in self.grants.items():
            if grant.all:
                return token
        return next(iter(self.grants), None)

    def kubeconfig(self, path, token=None, user=None, namespace=None, embed_ca=False):
        """Write a kubeconfig for this server and `token` (default: an admin token); return path."""
        token = token or self.default_token()
        user = user or (self.grants[token].user if token in self.grants else "user")
        q = json.dumps
        if embed_ca:
            import base64
            with open(self.ca_file, "rb") as f:
                ca_line = f"    certificate-authority-data: {q(base64.b64encode(f.read()).decode())}"
        else:
            ca_line = f"    certificate-authority: {q(os.path.abspath(self.ca_file))}"
        ns_line = f"\n    namespace: {q(namespace)}" if namespace else ""
        text = (f"apiVersion: v1\nkind: Config\nclusters:\n- name: kubeapi-test\n  cluster:\n"
                f"    server: {q(self.url)}\n{ca_line}\ncontexts:\n- name: kubeapi-test\n  context:\n"
                f"    cluster: kubeapi-test\n    user: {q(user)}{ns_line}\n"
                f"current-context: kubeapi-test\nusers:\n- name: {q(user)}\n  user:\n"
                f"    token: {q(token)}\npreferences: {{}}\n")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(text)
        return path

    # -- auth --------------------------------------------------------------------------------------

    def set_token(self, token, rules, user=None):
        self.grants[token] = auth.Grant(user or token, rules)

    def remove_token(self, token):
        self.grants.pop(token, None)

    # -- direct state access (no auth, no log, no faults) ------------------------------------------

    def _rt(self, resource):
        rt = self.store.registry.by_plural(resource)
        if rt is None:
            raise errors.no_route()
        return rt

    @staticmethod
    def _ns(rt, namespace):
        return (namespace or "default") if rt.namespaced else ""

    def create(self, obj, namespace=None):
        rt = self.store.registry.by_kind(obj.get("apiVersion", ""), obj.get("kind", ""))
        if rt is None:
            raise errors.no_route()
        ns = self._ns(rt, namespace or obj.get("metadata", {}).get("namespace"))
        return self.store.create(rt, ns, obj, obj["apiVersion"].rpartition("/")[2])

    def get(self, resource, name, namespace=None):
        """The object, or None if it does not exist."""
        rt = self._rt(resource)
        try:
            return self.store.get(rt, self._ns(rt, namespace), name)
        except errors.ApiError as e:
            if e.code == 404:
                return None
            raise

    def list(self, resource, namespace=None, label_selector="", field_selector=""):
        rt = self._rt(resource)
        return self.store.list(rt, namespace if rt.namespaced else None, LabelSelector(label_selector),
                               FieldSelector(field_selector))[0]

    def update(self, obj, subresource=None):
        """Replace (PUT); without metadata.resourceVersion it overwrites whatever is there."""
        rt = self.store.registry.by_kind(obj.get("apiVersion", ""), obj.get("kind", ""))
        if rt is None:
            raise errors.no_route()
        md = obj["metadata"]
        ns = self._ns(rt, md.get("namespace"))
        if not md.get("resourceVersion"):
            obj = json.loads(json.dumps(obj))
            obj["metadata"]["resourceVersion"] = self.store.get(rt, ns, md["name"])["metadata"]["resourceVersion"]
        return self.store.update(rt, ns, md["name"], obj, subresource)

    def patch(self, resource, name, body, namespace=None, patch_type="merge", subresource=None):
        rt = self._rt(resource)
        mt = PATCH_TYPES.get(patch_type, patch_type)
        return self.store.update(rt, self._ns(rt, namespace), name, subresource=subresource,
                                 patch_fn=lambda cur: patch.apply(mt, cur, body, rt))

    def bind(self, pod, node):
        """pods/<name>/binding for `pod` (its namespace, name and UID) to `node`, as the
        scheduler's default binder posts it (tests/kubeapi/binding.py)."""
        md = pod["metadata"]
        rt = self._rt("pods")
        body = {"apiVersion": "v1", "kind": "Binding",
                "metadata": {"name": md["name"], "namespace": md.get("namespace"), "uid": md.get("uid")},
                "target": {"kind": "Node", "name": node}}
        return binding.create(self.store, rt, self._ns(rt, md.get("namespace")), md["name"], body)

    def delete(self, resource, name, namespace=None, grace_period=0):
        """Delete (immediately by default); returns the object, or None if it did not exist."""
        rt = self._rt(resource)
        try:
            return self.store.delete(rt, self._ns(rt, namespace), name, grace_period)[0]
        except errors.ApiError as e:
            if e.code == 404:
                return None
            raise

    @property
    def resource_version(self):
        """The store's current (global) resourceVersion, as an int."""
        return self.store.rv

    def compact(self, rv=None):
        """Drop watch history up to rv (default: everything so far), like etcd compaction."""
        self.store.compact(rv)

    # -- faults and outages ------------------------------------------------------------------------

    def inject(self, method=None, path_regex=None, status=None, delay=0.0, count=1, hang=False,
               close=False, message=None, retry_after=None, verb=None, resource=None):
        """Make the next `count` matching requests (None: all, until clear_faults) fail/stall."""
        return self.faults.add(Fault(method, path_regex, status, delay, count, hang, close, message,
                                     retry_after, verb, resource))

    def clear_faults(self):
        self.faults.clear()

    def set_down(self, down=True, mode="refuse"):
        """Outage: "refuse" closes the listener (ECONNREFUSED), "reset" accepts and resets.
        Either way open connections and watches are cut. set_down(False) brings it back on
        the same port with the same state."""
        with self._state_lock:
            if down:
                self.generation += 1
                if mode == "refuse":
                    self._unlisten()
                else:
                    self.down_mode = "reset"
                self._close_connections()
            else:
                self.down_mode = None
                if self._httpd is None and not self.stopping:
                    self._listen()

    @property
    def down(self):
        return self._httpd is None or self.down_mode is not None

    def close_watches(self):
        """End every open watch stream cleanly, as kube-apiserver does at a watch's timeout."""
        self.watch_epoch += 1
        with self.store.lock:
            self.store.cond.notify_all()

    # -- request log -------------------------------------------------------------------------------

    @property
    def requests(self):
        return self.log.all()

    def find(self, **filters):
        """Log records matching filters (method, path_regex, status, verb, resource, subresource,
        namespace, name, user, content_type)."""
        return self.log.find(**filters)

    def count(self, **filters):
        return len(self.log.find(**filters))

    def clear_log(self):
        self.log.clear()

    def wait_for(self, predicate, timeout=5.0, interval=0.01):
        """Poll predicate() until it returns something truthy; return it (TimeoutError after timeout)."""
        deadline = time.monotonic() + timeout
        while True:
            value = predicate()
            if value:
                return value
            if time.monotonic() >= deadline:
                raise TimeoutError(f"condition not met within {timeout}s")
            time.sleep(interval)
