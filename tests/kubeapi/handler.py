"""The HTTP/1.1 layer: one request -> authn -> authz -> endpoint, as kube-apiserver's filter chain.

Copied behaviours: keep-alive HTTP/1.1 with Content-Length answers (each written in one send, and
TCP_NODELAY on the socket, so keep-alive requests do not stall on Nagle + delayed ACK); watch
answers as `Transfer-Encoding: chunked` with one JSON event per line; `Status` JSON for every
error; `Retry-After` on 429/503/504; authentication before authorization before routing (so a
forbidden request for an unknown resource is a 403, not a 404). Test-only: injected faults act
before authentication; every request is appended to the request log with its answer.
"""

from __future__ import annotations

import http
import json
import select
import socket
import sys
import time
import traceback
import uuid
from http.server import BaseHTTPRequestHandler
from urllib.parse import parse_qs, urlsplit

from . import auth, endpoints, errors, routing, watch
from .faults import RequestRecord


class _Dropped(Exception):
    """The connection was dropped on purpose (fault injection); nothing more to send."""


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "kube-apiserver-test"
    sys_version = ""
    disable_nagle_algorithm = True

    def log_message(self, format, *args):  # noqa: A002 - quiet: the request log is the record
        pass

    def do_GET(self):
        self._serve("GET")

    def do_HEAD(self):
        self._serve("HEAD")

    def do_POST(self):
        self._serve("POST")

    def do_PUT(self):
        self._serve("PUT")

    def do_PATCH(self):
        self._serve("PATCH")

    def do_DELETE(self):
        self._serve("DELETE")

    # -- plumbing ----------------------------------------------------------------------------------

    @property
    def api(self):
        return self.server.api

    def _read_body(self):
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _head(self, code, content_type, extra):
        try:
            phrase = http.HTTPStatus(code).phrase
        except ValueError:
            phrase = ""
        lines = [f"HTTP/1.1 {code} {phrase}", f"Content-Type: {content_type}",
                 "Cache-Control: no-cache, private", f"Date: {self.date_time_string()}",
                 f"Audit-Id: {uuid.uuid4()}"]
        lines += [f"{k}: {v}" for k, v in extra]
        if self.close_connection:
            lines.append("Connection: close")
        return ("\r\n".join(lines) + "\r\n").encode("latin-1")

    def _send(self, code, body, content_type="application/json", extra=()):
        if not isinstance(body, bytes):
            body = json.dumps(body).encode()
        head = self._head(code, content_type, list(extra) + [("Content-Length", len(body))])
        self.wfile.write(head + b"\r\n" + (b"" if self.command == "HEAD" else body))

    def client_gone(self):
        try:
            readable, _, _ = select.select([self.connection], [], [], 0)
            return bool(readable)
        except (OSError, ValueError):
            return True

    def drop(self):
        self.close_connection = True
        try:
            socket.socket.shutdown(self.connection, socket.SHUT_RDWR)
        except OSError:
            pass

    # -- one request -------------------------------------------------------------------------------

    def _serve(self, method):
        api = self.api
        started = time.monotonic()
        split = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(split.query, keep_blank_values=True).items()}
        ctype = self.headers.get("Content-Type")
        raw = self._read_body()
        info = routing.parse(method, split.path, query)
        rec = RequestRecord(method, split.path, query, ctype, verb=info.verb, resource=info.resource,
                            subresource=info.subresource, namespace=info.namespace,
                            name=info.name or info.selector_name)
        try:
            rec.body = json.loads(raw) if raw else None
        except ValueError:
            rec.body = raw.decode("utf-8", "replace")
        answer = None               # (code, body, content_type, extra headers)
        try:
            fault = api.faults.take(method, split.path, info.verb, info.resource)
            if fault:
                rec.fault = True
                self._apply_fault(fault, info)
            header = self.headers.get("Authorization")
            rec.token = header[7:].strip() if header and header[:7].lower() == "bearer " else None
            _, grant = auth.authenticate(api.grants, header)
            rec.user = grant.user
            auth.authorize(grant, info)
            if not info.is_resource:
                code, body, ctype_out = endpoints.non_resource(
                    api.store, info, f"{api.host}:{api.port}", api.git_version)
                answer = (code, body, ctype_out, ())
            elif info.verb == "watch":
                self._watch(info, query, rec, started)
                return
            else:
                code, body = endpoints.handle(api.store, info, method, query, ctype, raw)
                answer = (code, body, "application/json", ())
        except errors.ApiError as e:
            extra = [("Retry-After", e.retry_after)] if e.retry_after else []
            answer = (e.code, e.status(), "application/json", extra)
        except _Dropped:
            pass
        except Exception as e:  # noqa: BLE001 - a bug in the test server must be visible
            traceback.print_exc(file=sys.stderr)
            if rec.status is not None:          # a watch already answered: just hang up
                self.close_connection = True
                return
            answer = (500, errors.internal(f"{type(e).__name__}: {e}").status(), "application/json", ())
        # log before answering, so a client that got its answer finds its request in the log
        rec.status = answer[0] if answer else None
        rec.duration = time.monotonic() - started
        api.log.add(rec)
        if answer:
            try:
                self._send(*answer)
            except OSError:  # the client went away (or the server is stopping)
                self.close_connection = True

    def _apply_fault(self, fault, info):
        api = self.api
        if fault.delay:
            api.sleep(fault.delay)
        if fault.hang:
            limit = None if fault.hang is True else float(fault.hang)
            deadline = None if limit is None else time.monotonic() + limit
            while not api.stopping and not self.client_gone():
                if deadline is not None and time.monotonic() >= deadline:
                    break
                api.sleep(0.05)
            self.drop()
            raise _Dropped()
        if fault.close:
            self.drop()
            raise _Dropped()
        if fault.status:
            err = errors.for_code(fault.status, info.resource, info.name, info.group, fault.message)
            if fault.retry_after is not None:
                err.retry_after = fault.retry_after
                err.details = dict(err.details or {}, retryAfterSeconds=fault.retry_after)
            raise err

    def _watch(self, info, query, rec, started):
        api = self.api
        try:
            spec = endpoints.watch_spec(api.store, info, query, api.watch_timeout)
            initial, last = watch.start(api.store, spec)
        except errors.ApiError as e:
            rec.status, rec.duration = e.code, time.monotonic() - started
            api.log.add(rec)
            extra = [("Retry-After", e.retry_after)] if e.retry_after else []
            self._send(e.code, e.status(), "application/json", extra)
            return
        rec.status, rec.duration = 200, time.monotonic() - started
        api.log.add(rec)
        try:
            self._stream(spec, initial, last)
        except OSError:
            self.close_connection = True

    def _stream(self, spec, initial, last):
        api = self.api
        self.wfile.write(self._head(200, "application/json", [("Transfer-Encoding", "chunked")]) + b"\r\n")
        generation, epoch = api.generation, api.watch_epoch
        cancelled = lambda: (api.stopping or api.generation != generation  # noqa: E731
                             or api.watch_epoch != epoch or self.client_gone())
        for event in watch.stream(api.store, spec, initial, last, time.monotonic() + spec.timeout, cancelled):
            data = json.dumps(event).encode() + b"\n"
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        if api.stopping or api.generation != generation:
            self.drop()
            return
        self.wfile.write(b"0\r\n\r\n")
