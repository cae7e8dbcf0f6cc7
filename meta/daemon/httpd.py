"""The daemon's HTTP endpoints: /healthz (alive), /readyz (able to serve CNI), /metrics.

Any local user can connect (it is TCP), so the server is bounded like the CNI socket: one
selector thread reads every request head (meta/daemon/sockreader.py: a half-sent request costs an fd,
not a thread, and has CONN_DEADLINE seconds in all), a fixed pool answers (meta/daemon/workers.py).
HTTP/1.0 semantics: one GET per connection, then close."""
import contextlib
import threading

from .sockreader import RequestReader
from .workers import FixedPool

THREADS = 2
BACKLOG = 256
CONN_DEADLINE = 5.0
MAX_HEAD = 8192
_REASON = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed", 503: "Service Unavailable"}


def parse_head(buf: bytearray):
    """(method, path) once the request head is complete, else None."""
    end = buf.find(b"\r\n\r\n")
    if end < 0:
        end = buf.find(b"\n\n")
    if end < 0:
        if len(buf) > MAX_HEAD:
            raise ValueError("request head too long")
        return None
    parts = bytes(buf[:buf.find(b"\n")]).decode("latin-1").split()
    if len(parts) != 3 or not parts[2].startswith("HTTP/"):
        raise ValueError("bad request line")
    return parts[0], parts[1]


class Server:
    def __init__(self, addr: str, routes: dict):
        import socket
        host, _, port = addr.rpartition(":")
        host = (host or "127.0.0.1").strip("[]")
        fam = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.socket(fam, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, int(port)))
        self.sock.listen(128)
        self.routes = routes
        self.stopping = threading.Event()
        self.pool = FixedPool(THREADS, "http", BACKLOG)
        self.reader = RequestReader(self.sock, parse_head, self._dispatch, None, CONN_DEADLINE, self.stopping, "httpd")

    def _dispatch(self, conn, request) -> None:
        if not self.pool.offer(self._answer, conn, request):
            conn.close()   # full: refused at once

    def _answer(self, conn, request) -> None:
        method, path = request
        with conn:
            conn.settimeout(CONN_DEADLINE)
            fn = self.routes.get(path)
            if method not in ("GET", "HEAD"):
                status, body, ctype = 405, b"method not allowed\n", "text/plain"
            elif fn is None:
                status, body, ctype = 404, b"not found\n", "text/plain"
            else:
                ok, body, ctype = fn()
                status = 200 if ok else 503
            head = (f"HTTP/1.0 {status} {_REASON[status]}\r\nContent-Type: {ctype}\r\n"
                    f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode()
            with contextlib.suppress(OSError):
                conn.sendall(head + (b"" if method == "HEAD" else body))

    def shutdown(self) -> None:
        self.stopping.set()
        self.reader.close()
        self.sock.close()
        self.pool.stop(timeout=CONN_DEADLINE)


def serve(addr: str, health, ready, metrics) -> Server:
    """Start serving in threads; returns the server (call .shutdown()). addr = "host:port"."""
    return Server(addr, {"/healthz": lambda: (*health(), "text/plain"),
                         "/readyz": lambda: (*ready(), "text/plain"),
                         "/metrics": lambda: (True, metrics(), "text/plain; version=0.0.4")})
