"""The daemon's HTTP endpoints: /healthz (alive), /readyz (able to serve CNI), /metrics.

Any local user can connect (it is TCP), so the server is bounded: a fixed pool of threads
(meta/workers.py) with a bounded backlog, and one deadline per connection for reading the whole
request (a client trickling a byte at a time gets CONN_DEADLINE seconds in all, not per read)."""
import io
import logging
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer

from .workers import FixedPool

THREADS = 4
BACKLOG = 64
CONN_DEADLINE = 5.0
_log = logging.getLogger("netmeta.httpd")


class _DeadlineReader(io.RawIOBase):
    """The connection's reads, each limited to what is left of one deadline."""

    def __init__(self, sock: socket.socket, deadline: float):
        self.sock, self.deadline = sock, deadline

    def readable(self):
        return True

    def readinto(self, b):
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("request not received in time")
        self.sock.settimeout(left)
        return self.sock.recv_into(b)


class _Server(HTTPServer):
    def __init__(self, addr, handler):
        super().__init__(addr, handler)
        self.pool = FixedPool(THREADS, "http", BACKLOG)

    def process_request(self, request, client_address):
        if not self.pool.offer(self._handle, request, client_address):
            self.shutdown_request(request)   # full: refused at once, the accept loop goes on

    def _handle(self, request, client_address):
        try:
            self.finish_request(request, client_address)
        except Exception:   # noqa: BLE001 - a broken client
            pass
        finally:
            self.shutdown_request(request)

    def handle_error(self, request, client_address):
        _log.debug("http: error from %s", client_address)


def serve(addr: str, health, ready, metrics):
    """Start in a thread; returns the server (call .shutdown()). addr = "host:port"."""
    host, _, port = addr.rpartition(":")

    class Handler(BaseHTTPRequestHandler):
        def setup(self):
            super().setup()
            self.rfile = io.BufferedReader(_DeadlineReader(self.connection, time.monotonic() + CONN_DEADLINE))
            self.connection.settimeout(CONN_DEADLINE)   # for writing the answer

        def do_GET(self):
            if self.path == "/healthz":
                ok, body = health()
            elif self.path == "/readyz":
                ok, body = ready()
            elif self.path == "/metrics":
                ok, body = True, metrics()
            else:
                ok, body = False, b"not found\n"
                self.send_response(404)
            if self.path in ("/healthz", "/readyz", "/metrics"):
                self.send_response(200 if ok else 503)
            self.send_header("Content-Type", "text/plain; version=0.0.4" if self.path == "/metrics" else "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *a):   # no access log on stderr
            pass

    srv = _Server((host or "127.0.0.1", int(port)), Handler)
    threading.Thread(target=srv.serve_forever, name="httpd", daemon=True).start()
    return srv
