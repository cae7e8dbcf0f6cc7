"""The daemon's HTTP endpoints: /healthz (alive), /readyz (able to serve CNI), /metrics."""
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def serve(addr: str, health, ready, metrics):
    """Start in a thread; returns the server (call .shutdown()). addr = "host:port"."""
    host, _, port = addr.rpartition(":")

    class Handler(BaseHTTPRequestHandler):
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

    srv = ThreadingHTTPServer((host or "127.0.0.1", int(port)), Handler)
    srv.daemon_threads = True
    threading.Thread(target=srv.serve_forever, name="httpd", daemon=True).start()
    return srv
