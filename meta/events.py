"""Kubernetes Events on the pod, as Multus v4.1.4 records them: `AddedInterface` (Normal) per
attachment and `NoNetworkFound` (Warning), which is what users read in `kubectl describe pod`.

Multus (pkg/k8sclient/kubeconfig.go GetK8sClient) sends them through client-go's
record.EventBroadcaster to core/v1 Events (EventSinkImpl on CoreV1().Events("")), source
component "multus"; the recorder is asynchronous and its EventSourceObjectSpamFilter allows a
burst of 25 events per object, then one per 5 minutes. The same here: core/v1 Events by POST,
a per-pod token bucket with those numbers, and an event never fails or holds up a CNI request:
the daemon posts from a background thread; the in-process (thin) path posts once, with a short
timeout, and goes on whatever the answer (403 when RBAC forbids events: logged once)."""
import collections
import threading
import time
from datetime import datetime, timezone

from cni import log
from cni.errors import CNIError

_log = log.get("events")
COMPONENT = "netmeta"
BURST, REFILL = 25, 300.0    # client-go tools/record: spam filter burst 25, qps 1/300
QUEUE_MAX = 1000             # the daemon's backlog while the API is away; the oldest go first
THIN_TIMEOUT = 2.0


def go_list(items) -> str:
    """Go's %v of a []string: "[10.244.1.5/24 fd00::5/64]" (Multus formats the IPs so)."""
    return "[" + " ".join(items) + "]"


class Recorder:
    def __init__(self, kube, host: str | None = None, asynchronous: bool = True):
        self.kube, self.host = kube, host
        self._buckets: dict = {}      # pod uid or ns/name -> [tokens, last refill]
        self._queue: collections.deque = collections.deque(maxlen=QUEUE_MAX)
        self._cond = threading.Condition()
        self._forbidden_logged = False
        self.sent = self.dropped = self.failed = 0
        self._thread = None
        if asynchronous:
            self._thread = threading.Thread(target=self._run, name="events", daemon=True)
            self._thread.start()

    def event(self, pod: dict, type_: str, reason: str, message: str) -> None:
        """Record one event on `pod` ({"namespace", "name", "uid"}); never raises."""
        try:
            if not (pod.get("namespace") and pod.get("name")) or not self._allow(pod):
                self.dropped += 1
                return
            body = self._body(pod, type_, reason, message)
            if self._thread is None:
                self._post(body, timeout=THIN_TIMEOUT)
                return
            with self._cond:
                self._queue.append(body)
                self._cond.notify()
        except Exception as e:   # an event is never worth a failed ADD
            _log.warning("event %s on %s/%s not recorded: %s", reason, pod.get("namespace"), pod.get("name"), e)

    def flush(self, timeout: float = 5.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._cond:
                if not self._queue:
                    return True
            time.sleep(0.02)
        return False

    def _allow(self, pod: dict) -> bool:
        key = pod.get("uid") or f"{pod['namespace']}/{pod['name']}"
        now = time.monotonic()
        with self._cond:
            b = self._buckets.setdefault(key, [float(BURST), now])
            b[0] = min(BURST, b[0] + (now - b[1]) / REFILL)
            b[1] = now
            if b[0] < 1:
                return False
            b[0] -= 1
            if len(self._buckets) > 4096:   # pods come and go: forget the quietest
                for k in sorted(self._buckets, key=lambda k: self._buckets[k][1])[:1024]:
                    del self._buckets[k]
            return True

    def _body(self, pod: dict, type_: str, reason: str, message: str) -> dict:
        now = datetime.now(timezone.utc)
        ts = now.strftime("%Y-%m-%dT%H:%M:%SZ")
        ref = {"apiVersion": "v1", "kind": "Pod", "namespace": pod["namespace"], "name": pod["name"]}
        if pod.get("uid"):
            ref["uid"] = pod["uid"]
        source = {"component": COMPONENT}
        if self.host:
            source["host"] = self.host
        # client-go record makeEvent: name "<object>.<unix nanos in hex>"
        return {"apiVersion": "v1", "kind": "Event",
                "metadata": {"name": f"{pod['name']}.{time.time_ns():x}", "namespace": pod["namespace"]},
                "involvedObject": ref, "reason": reason, "message": message[:1024], "type": type_,
                "source": source, "firstTimestamp": ts, "lastTimestamp": ts, "count": 1,
                "reportingComponent": COMPONENT, "reportingInstance": self.host or ""}

    def _post(self, body: dict, timeout: float) -> bool:
        ns = body["metadata"]["namespace"]
        try:
            self.kube.create_event(ns, body, timeout=timeout)
        except CNIError as e:
            self.failed += 1
            if "HTTP 403" in (e.details or ""):
                if not self._forbidden_logged:
                    _log.warning("events are forbidden to netmeta (RBAC: create events): %s", e.details)
                    self._forbidden_logged = True
                return True    # retrying will not help
            _log.warning("event %s on %s not recorded: %s", body["reason"], ns, e)
            return "HTTP" in (e.details or "")   # an HTTP answer is final; unreachable is retried
        self.sent += 1
        return True

    def _run(self) -> None:
        delay = 0.5
        while True:
            with self._cond:
                while not self._queue:
                    self._cond.wait()
                body = self._queue[0]
            done = self._post(body, timeout=10.0)
            with self._cond:
                if done and self._queue and self._queue[0] is body:
                    self._queue.popleft()
            if done:
                delay = 0.5
            else:
                time.sleep(delay)
                delay = min(delay * 2, 30.0)
