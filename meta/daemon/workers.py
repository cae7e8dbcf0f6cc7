"""A fixed pool of threads, all started up front, fed through a bounded queue. The daemon's
servers use it instead of a thread per connection: a flood of connections can neither grow the
thread count nor, under a pids limit (cgroup pids.max), make a thread start fail in the accept
loop; past the queue's bound new work is refused at once (offer() -> False)."""
import logging
import queue
import threading
from collections.abc import Callable

_log = logging.getLogger("netmeta.workers")


class FixedPool:
    def __init__(self, n: int, name: str, backlog: int):
        # (fn, args) items; None ends a worker
        self.q: queue.Queue[tuple[Callable[..., object], tuple] | None] = queue.Queue(backlog)
        self.threads = [threading.Thread(target=self._loop, name=f"{name}-{i}", daemon=True) for i in range(n)]
        for t in self.threads:   # a failure here fails start-up, where it is seen, never later
            t.start()

    def _loop(self) -> None:
        while True:
            item = self.q.get()
            if item is None:
                return
            fn, args = item
            try:
                fn(*args)
            except BaseException:   # noqa: BLE001 - one bad item never takes a worker down
                _log.exception("worker %s: unhandled error", threading.current_thread().name)
            del item, fn, args   # an idle worker keeps nothing of its last request alive

    def offer(self, fn, *args) -> bool:
        try:
            self.q.put_nowait((fn, args))
            return True
        except queue.Full:
            return False

    def alive(self) -> int:
        return sum(t.is_alive() for t in self.threads)

    def stop(self, timeout: float | None = None) -> None:
        """Finish what is queued, then end the threads."""
        for _ in self.threads:
            self.q.put(None)
        for t in self.threads:
            t.join(timeout)
