"""The front end of the daemon's servers (the CNI socket, HTTP): ONE thread accepts and reads
every connection (non-blocking, selectors), so a client that sends half a request costs a file
descriptor, never a thread, and delays nobody. Each connection has one deadline for its whole
request; `parse(buf)` says when it is complete (None = not yet, ValueError = bad) and the
request is handed to `dispatch(conn, request)`, which must not block (it queues the work).
Connections past MAX_CONNS are closed at once. Nothing here starts a thread after start-up, so a
pids limit cannot stop the loop; an accept error (EMFILE...) is logged and waited out."""
import contextlib
import logging
import selectors
import socket
import threading
import time

from cni import wire

_log = logging.getLogger("netmeta.daemon")
MAX_CONNS = 4096


class _Conn:
    __slots__ = ("sock", "buf", "deadline")

    def __init__(self, sock, deadline):
        self.sock, self.buf, self.deadline = sock, bytearray(), deadline


def parse_cni(buf: bytearray):
    """(env, stdin) once the whole request (cni/wire.py) is in, else None."""
    need = _parse_head(buf)
    if need is None or len(buf) < need:
        return None
    pos, data = [0], bytes(buf)

    def recv(n):
        chunk = data[pos[0]:pos[0] + n]
        pos[0] += len(chunk)
        return chunk
    return wire.decode_request(recv)


def _parse_head(buf: bytes | bytearray):
    """Total request length once the header is in, else None; ValueError when it is bad."""
    nl = buf.find(b"\n", 0, wire.MAX_HEADER + 1)
    if nl < 0:
        if len(buf) > wire.MAX_HEADER:
            raise ValueError("header too long")
        return None
    head = bytes(buf[:nl])
    if not head.startswith(wire.MAGIC):
        raise ValueError("bad magic")
    a, _, b = head[len(wire.MAGIC):].partition(b" ")
    n_env, n_in = int(a), int(b)
    if not (0 <= n_env <= wire.MAX_ENV and 0 <= n_in <= wire.MAX_STDIN):
        raise ValueError("request too large")
    return nl + 1 + n_env + n_in


class RequestReader:
    def __init__(self, listener: socket.socket, parse, dispatch, bad, read_deadline: float,
                 stopping: threading.Event, name: str = "accept"):
        self.listener, self.parse, self.dispatch, self.bad = listener, parse, dispatch, bad
        self.read_deadline, self.stopping = read_deadline, stopping
        self.sel = selectors.DefaultSelector()
        listener.setblocking(False)
        self.sel.register(listener, selectors.EVENT_READ, None)
        self.conns: dict = {}
        self.thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self.thread.start()

    def _loop(self) -> None:
        while not self.stopping.is_set():
            try:
                self._once()
            except Exception as e:   # noqa: BLE001 - the loop must go on
                _log.error("CNI socket loop: %s", e)
                time.sleep(0.05)

    def _once(self) -> None:
        timeout = 1.0
        if self.conns:
            timeout = max(0.0, min(timeout, min(c.deadline for c in self.conns.values()) - time.monotonic()))
        try:
            events = self.sel.select(timeout)
        except OSError:
            if self.stopping.is_set():
                return
            raise
        for key, _ in events:
            if key.data is None:
                self._accept()
            else:
                self._read(key.data)
        now = time.monotonic()
        for c in [c for c in self.conns.values() if c.deadline <= now]:
            self._drop(c, f"request not received within {self.read_deadline:.0f} s")

    def _accept(self) -> None:
        try:
            sock, _ = self.listener.accept()
        except BlockingIOError:
            return
        except OSError as e:   # EMFILE, ENFILE...: the pending connection stays; retry soon
            if not self.stopping.is_set():
                _log.error("accept on the CNI socket failed: %s", e)
                time.sleep(0.1)
            return
        if len(self.conns) >= MAX_CONNS:
            _log.error("CNI socket: %d connections being read: refusing one", MAX_CONNS)
            sock.close()
            return
        sock.setblocking(False)
        c = _Conn(sock, time.monotonic() + self.read_deadline)
        self.conns[sock.fileno()] = c
        self.sel.register(sock, selectors.EVENT_READ, c)

    def _read(self, c: _Conn) -> None:
        try:
            data = c.sock.recv(65536)
        except BlockingIOError:
            return
        except OSError as e:
            self._drop(c, str(e), answer=False)
            return
        if not data:   # a client that half-closed after part of a request still reads the error
            self._drop(c, "connection closed before the request was complete", answer=bool(c.buf))
            return
        c.buf += data
        try:
            request = self.parse(c.buf)
        except (ValueError, EOFError, UnicodeError) as e:
            self._drop(c, str(e))
            return
        if request is None:
            return
        self._forget(c)
        c.sock.setblocking(True)
        self.dispatch(c.sock, request)

    def _forget(self, c: _Conn) -> None:
        self.conns.pop(c.sock.fileno(), None)
        with contextlib.suppress(KeyError, ValueError):
            self.sel.unregister(c.sock)

    def _drop(self, c: _Conn, why: str, answer: bool = True) -> None:
        _log.warning("bad request on the %s socket: %s", self.thread.name, why)
        self._forget(c)
        if answer and self.bad is not None:
            with contextlib.suppress(OSError):
                c.sock.send(wire.encode_response(1, self.bad(why)))   # best effort, never blocks
        c.sock.close()

    def close(self) -> None:
        for c in list(self.conns.values()):
            self._forget(c)
            c.sock.close()
