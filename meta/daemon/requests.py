"""The daemon's requests in flight: the answer owed on a connection (Reply), a queued or running
request (Job) and the reaper that answers 11 for a request whose deadline passed before it did."""
import contextlib
import heapq
import itertools
import threading
import time

from cni import wire

# not part of what a request asks for: a retry differs in these only
_VOLATILE = ("NETMETA_DEADLINE", "NETMETA_FAULT")


def same_request(a: dict, b: dict) -> bool:
    return {k: v for k, v in a.items() if k not in _VOLATILE} == {k: v for k, v in b.items() if k not in _VOLATILE}


class Reply:
    """Answers a connection exactly once (the worker, or the reaper at the deadline)."""

    def __init__(self, conn):
        self.conn = conn
        self._lock = threading.Lock()
        self.sent = False

    def send(self, code: int, out: bytes) -> bool:
        with self._lock:
            if self.sent:
                return False
            self.sent = True
        try:
            self.conn.settimeout(10.0)
            self.conn.sendall(wire.encode_response(code, out))
        except OSError:
            return False
        finally:
            with contextlib.suppress(OSError):
                self.conn.close()
        return True


class Job:
    def __init__(self, key: tuple, env: dict, stdin: bytes, op, reply):
        self.key, self.env, self.stdin, self.op = key, env, stdin, op
        self.replies = [reply]
        self.queued = time.monotonic()


class Reaper:
    """One thread: at each watched reply's deadline, answer it with the timeout error if the
    request has not answered yet (the request itself stops at its next step: cni/operation).
    Replies answered before their deadline are dropped from the heap every COMPACT watches, so
    it holds about the requests in flight, not every request of the last requestTimeout (each
    with its socket object: ~1 KB a request)."""
    COMPACT = 64

    def __init__(self, error):
        self._error = error        # msg -> bytes (the CNI error JSON)
        self._heap, self._seq = [], itertools.count()
        self._cond = threading.Condition()
        self._stop = False
        self.thread = threading.Thread(target=self._loop, name="reaper", daemon=True)
        self.thread.start()

    def watch(self, reply, deadline: float, msg: str) -> None:
        with self._cond:
            seq = next(self._seq)
            if seq % self.COMPACT == 0:
                live = [e for e in self._heap if not e[2].sent]
                if len(live) < len(self._heap):
                    heapq.heapify(live)
                    self._heap = live
            heapq.heappush(self._heap, (deadline, seq, reply, msg))
            self._cond.notify()

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._stop and (not self._heap or self._heap[0][0] > time.time()):
                    self._cond.wait(None if not self._heap else max(0.0, self._heap[0][0] - time.time()))
                if self._stop:
                    return
                _, _, reply, msg = heapq.heappop(self._heap)
            if not reply.sent:
                reply.send(1, self._error(msg))
            reply = msg = None   # not kept until the next deadline

    def stop(self) -> None:
        with self._cond:
            self._stop = True
            self._cond.notify()
