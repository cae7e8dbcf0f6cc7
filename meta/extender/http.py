"""The scheduler extender's HTTP(S) service (ThreadingHTTPServer, HTTP/1.1 keep-alive as
kube-scheduler's Go client uses it):
  POST <any prefix>/filter      ExtenderArgs -> ExtenderFilterResult
  POST <any prefix>/prioritize  ExtenderArgs -> HostPriorityList
  POST <any prefix>/bind        ExtenderBindingArgs -> ExtenderBindingResult (bind mode)
  GET  /healthz (alive), /readyz (watch caches filled), /metrics (Prometheus)
Every answer is JSON (or text for the GETs); a bad request is a 4xx with the result's `Error`,
and an unexpected failure is logged and answered 500 with a one-line `Error`, never a traceback."""
from __future__ import annotations

import socket
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Protocol

from cni import log

from .api import dumps, error_result

_log = log.get("extender")
MAX_BODY = 256 << 20       # a Nodes-form request for thousands of full Node objects fits
VERBS = ("filter", "prioritize", "bind")
BACKLOG = 128              # listen backlog: a burst of parallel callers is queued, not reset


class _Metrics(Protocol):
    def render(self) -> bytes: ...


class _Service(Protocol):
    """What the handler uses of the Extender (meta/extender/main.py) besides its verbs."""
    metrics: _Metrics

    def ready(self) -> bool: ...


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "netmeta-scheduler-extender"
    extender: _Service | None = None     # set per server class
    timeout = 120       # an idle keep-alive connection is closed after this (Go's client idles 90 s)
    disable_nagle_algorithm = True    # TCP_NODELAY: no 40 ms delayed-ACK stall per answer

    def do_POST(self):
        verb = self.path.partition("?")[0].rstrip("/").rpartition("/")[2]
        body = self._body()
        if body is None:
            return
        if verb not in VERBS:
            return self._send(404, dumps(error_result(f"no such extender verb {verb!r} (use filter, prioritize or bind)")))
        try:
            status, result = getattr(self.extender, verb)(body)
        except Exception as e:     # noqa: BLE001 - a bug: log it, answer one line, keep serving
            _log.exception("%s failed", verb)
            status, result = 500, error_result(f"internal error in the extender: {type(e).__name__}: {e}"[:500])
        self._send(status, dumps(result))

    def do_GET(self):
        path = self.path.partition("?")[0]
        if path == "/healthz":
            return self._send(200, b"ok\n", "text/plain")
        ext = self.extender
        assert ext is not None      # serve() makes a handler class per server that sets it
        if path == "/readyz":
            ok = ext.ready()
            return self._send(200 if ok else 503, b"ok\n" if ok else b"watch caches not synced\n", "text/plain")
        if path == "/metrics":
            return self._send(200, ext.metrics.render(), "text/plain; version=0.0.4")
        self._send(404, b"not found\n", "text/plain")

    def _body(self) -> bytes | None:
        """The request body, or None after answering the error."""
        te = (self.headers.get("Transfer-Encoding") or "").lower()
        length = self.headers.get("Content-Length")
        try:
            if te == "chunked":
                return self._chunked()
            if length is None:
                self._send(411, dumps(error_result("a Content-Length is required")))
                return None
            n = int(length)
            if n < 0:
                raise ValueError(length)
            if n > MAX_BODY:
                self.close_connection = True
                self._send(413, dumps(error_result(f"request body larger than {MAX_BODY} bytes")))
                return None
            return self.rfile.read(n)
        except ValueError:
            self.close_connection = True
            self._send(400, dumps(error_result("malformed request: bad Content-Length or chunk size")))
            return None

    def _chunked(self) -> bytes | None:
        parts: list[bytes] = []
        size = 0
        while True:
            n = int(self.rfile.readline(1024).split(b";")[0].strip() or b"x", 16)
            if n == 0:
                while self.rfile.readline(1024).strip():   # trailers
                    pass
                return b"".join(parts)
            size += n
            if size > MAX_BODY:
                self.close_connection = True
                self._send(413, dumps(error_result(f"request body larger than {MAX_BODY} bytes")))
                return None
            parts.append(self.rfile.read(n))
            self.rfile.readline(1024)

    def _send(self, status: int, body: bytes, ctype: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *a):    # no access log on stderr
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = BACKLOG
    tls: ssl.SSLContext | None = None

    def finish_request(self, request, client_address):
        if self.tls is None:
            return super().finish_request(request, client_address)
        request.settimeout(_Handler.timeout)   # handshake in the connection's thread, not the accept loop
        try:
            conn = self.tls.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError) as e:
            _log.debug("TLS handshake with %s failed: %s", client_address, e)
            return
        try:
            super().finish_request(conn, client_address)     # the handler, over TLS
        finally:
            conn.close()

    def handle_error(self, request, client_address):    # a client that went away: not news
        pass


class _Server6(_Server):
    address_family = socket.AF_INET6


def serve(extender, listen: str, tls_cert: str | None = None, tls_key: str | None = None):
    """Start the service in a thread; returns the server (`.server_address`, `.shutdown()`).
    `listen` is "host:port", ":port" (all IPv4 addresses) or "[v6addr]:port"."""
    host, _, port = listen.rpartition(":")
    cls = _Server
    if host.startswith("["):
        host, cls = host.strip("[]"), _Server6
    handler = type("Handler", (_Handler,), {"extender": extender})
    srv = cls((host or "0.0.0.0", int(port)), handler)
    if tls_cert:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(tls_cert, tls_key)
        srv.tls = ctx
    threading.Thread(target=srv.serve_forever, name="extender-http", daemon=True).start()
    return srv
