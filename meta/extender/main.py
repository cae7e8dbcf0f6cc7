"""`netmeta scheduler-extender`: a kube-scheduler extender (filter + prioritize, and bind) that
places pods asking for SR-IOV attachments only on nodes with enough free VFs, without overcommit
races, admitting as many pods per round as there are free VFs.

  meta/extender/main.py         decisions (Extender), metrics, the command line (main)
  meta/extender/api.py     the extender wire format (k8s.io/kube-scheduler/extender/v1)
  meta/extender/need.py    a pod's SR-IOV need, from its network annotation and the NADs it names
  meta/extender/nodes.py   a node's published free VFs and holders (sriov/vfCount, sriov/vfDetail)
  meta/extender/ledger.py  free VFs per node and VFs held for pods placed but not yet published
  meta/extender/watch.py   Kubernetes client, bindings, and the NAD / node / pending-pod caches
  meta/extender/http.py    the HTTP(S) service

Filter: a pod with no SR-IOV attachment passes every node untouched; otherwise a node passes when
its published free VFs (`sriov/vfCount`, and per PF from `sriov/vfDetail` when the NAD names its
`master`) minus the VFs held for other pods cover the pod's need; each node that does not is in
FailedNodes (or FailedAndUnresolvableNodes when no amount of waiting or preemption helps) with its
reason. Prioritize: 0..10 by the free VFs a node keeps after the pod, relative to the best
candidate; equal (0) for pods without SR-IOV attachments. Bind (mode "bind", the default): hold the
pod's VFs on the chosen node if they still fit, then POST the pod's Binding; a bind that no longer
fits is refused and kube-scheduler retries the pod. Mode "filter" (no bindVerb): see the ledger.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import time
from collections import OrderedDict

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily

from cni import log
from cni.errors import CNIError

from .api import MAX_PRIORITY, BadRequest, binding_result, error_result, filter_result, host_priorities, parse_args, parse_binding
from .ledger import FIT, UNRESOLVABLE, Ledger
from .need import LookupFailed, Need, NeedResolver, PodError
from .nodes import parse_free

_log = log.get("extender")
DEFAULT_LISTEN = ":8888"
DEFAULT_TTL = 60.0
SYNC_WAIT = 3.0        # a filter waits this long for a node cache that is still filling
MODES = ("bind", "filter")
RECENT = 10000         # needs of recently filtered pods kept for their bind


class Metrics:
    """Prometheus metrics (a private registry)."""

    def __init__(self, ledger: Ledger):
        self.ledger = ledger
        self.registry = r = CollectorRegistry()
        self.decisions = Counter("netmeta_extender_decisions", "extender decisions by verb and result",
                                 ["verb", "result"], registry=r)
        self.filtered = Counter("netmeta_extender_filtered_nodes", "nodes the filter rejected, by reason",
                                ["reason"], registry=r)
        self.latency = Histogram("netmeta_extender_request_seconds", "time to answer a filter/prioritize",
                                 ["verb"], registry=r,
                                 buckets=(0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5))
        r.register(self)

    def collect(self):     # the assumed VFs, read when scraped
        a = self.ledger.assumed()
        vfs = GaugeMetricFamily("netmeta_extender_assumed_vfs", "VFs promised on nodes to pods being "
                                "scheduled (a tentative pod counts on each node it passed)", labels=["state"])
        for state in ("tentative", "bound"):
            vfs.add_metric([state], a[state])
        yield vfs
        yield GaugeMetricFamily("netmeta_extender_assumed_pods", "pods holding assumed VFs", value=a["pods"])

    def describe(self):
        return []

    def render(self) -> bytes:
        return generate_latest(self.registry)


class Extender:
    """The decisions. `nads`: get_nad(namespace, name) (meta.kube.api.Kube); `synced(timeout) -> bool`
    tells whether the node cache is filled; `ready() -> bool` backs /readyz; `binder`:
    bind_pod(namespace, name, uid, node) and get_pod(namespace, name, uid) (ExtenderKube), needed
    in mode "bind"."""

    def __init__(self, nads, ledger: Ledger, synced=None, ready=None, mode: str = "bind", binder=None,
                 needs: NeedResolver | None = None):
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}")
        self.ledger, self.mode, self.binder = ledger, mode, binder
        self.needs = needs or NeedResolver(nads)
        self.metrics = Metrics(ledger)
        self._synced = synced or (lambda timeout=0.0: True)
        self.ready = ready or (lambda: True)
        self._recent: OrderedDict = OrderedDict()     # uid -> Need of pods filtered lately
        self._recent_lock = threading.Lock()

    def filter(self, body: bytes) -> tuple[int, dict]:
        return self._measured("filter", self._filter, body)

    def _measured(self, verb: str, decide, body: bytes):
        """decide(body) -> (status, result, outcome), counted and timed per verb."""
        t0 = time.perf_counter()
        status, result, outcome = decide(body)
        self.metrics.decisions.labels(verb, outcome).inc()
        self.metrics.latency.labels(verb).observe(time.perf_counter() - t0)
        return status, result

    def _filter(self, body: bytes):
        try:
            args = parse_args(body)
        except BadRequest as e:
            return 400, error_result(str(e)), "bad_request"
        try:
            need = self.needs.need(args.pod)
        except PodError as e:
            self.ledger.forget(args.uid)     # an earlier claim of this pod, if any
            self.metrics.filtered.labels("pod_invalid").inc(len(args.names))
            return 200, filter_result(args, [], {}, {n: str(e) for n in args.names}), "unschedulable"
        except LookupFailed as e:
            return 200, error_result(str(e)), "error"
        if not need:
            return 200, filter_result(args, args.names, {}, {}), "passthrough"
        if args.by_name is None and not self._synced(0.0):
            self._synced(SYNC_WAIT)
        self._remember(args.uid, need)
        verdicts = self.ledger.decide(args.uid, need, args.names, self._fallback(args),
                                      assume=self.mode == "filter")
        passed: list[str] = []
        failed: dict[str, str] = {}
        unresolvable: dict[str, str] = {}
        for name, v in verdicts.items():
            if v.status == FIT:
                passed.append(name)
                continue
            (unresolvable if v.status == UNRESOLVABLE else failed)[name] = v.reason
            self.metrics.filtered.labels(v.code).inc()
        _log.debug("filter %s (%s): %d of %d nodes pass", args.pod_name, need.describe(), len(passed),
                   len(verdicts))
        return 200, filter_result(args, passed, failed, unresolvable), "fit" if passed else "unschedulable"

    def bind(self, body: bytes) -> tuple[int, dict]:
        return self._measured("bind", self._bind, body)

    def _bind(self, body: bytes):
        try:
            b = parse_binding(body)
        except BadRequest as e:
            return 400, binding_result(str(e)), "bad_request"
        who = f"pod {b.namespace}/{b.name}"
        if self.binder is None:
            return 200, binding_result(f"failed to bind {who}: the extender runs in mode {self.mode!r} "
                                       "without a Kubernetes client to bind with"), "error"
        try:
            need = self._need_for_bind(b)
        except (PodError, LookupFailed, CNIError) as e:
            return 200, binding_result(f"failed to bind {who} to node {b.node}: {e}"), "error"
        if need:
            v = self.ledger.charge(b.uid or who, need, b.node)
            if v.status != FIT:
                _log.info("bind %s to %s refused: %s", who, b.node, v.reason)
                return 200, binding_result(f"node {b.node} can no longer take {who}: {v.reason}"), "refused"
        try:
            self.binder.bind_pod(b.namespace, b.name, b.uid, b.node)
        except Exception as e:     # noqa: BLE001 - ApiError (409 and the like), CNIError (API away)
            if _already_bound_to(e, b.node):
                return 200, binding_result(), "bound"
            if need:
                self.ledger.forget(b.uid or who)
            return 200, binding_result(f"failed to bind {who} to node {b.node}: {_api_message(e)}"), "error"
        with self._recent_lock:
            self._recent.pop(b.uid, None)
        return 200, binding_result(), "bound"

    def _remember(self, uid: str, need: Need) -> None:
        with self._recent_lock:
            self._recent[uid] = need
            self._recent.move_to_end(uid)
            while len(self._recent) > RECENT:
                self._recent.popitem(last=False)

    def _need_for_bind(self, b) -> Need:
        with self._recent_lock:
            need = self._recent.get(b.uid) if b.uid else None
        if need is not None:
            return need
        pod = self.binder.get_pod(b.namespace, b.name, b.uid or None)   # not filtered by this process
        return self.needs.need(pod)

    def prioritize(self, body: bytes) -> tuple[int, object]:
        return self._measured("prioritize", self._prioritize, body)

    def _prioritize(self, body: bytes):
        try:
            args = parse_args(body)
        except BadRequest as e:
            return 400, error_result(str(e)), "bad_request"
        zeros = dict.fromkeys(args.names, 0)
        try:
            need = self.needs.need(args.pod)
        except (PodError, LookupFailed):     # kube-scheduler ignores prioritize errors: be neutral
            return 200, host_priorities(zeros), "error"
        if not need:
            return 200, host_priorities(zeros), "passthrough"
        verdicts = self.ledger.decide(args.uid, need, args.names, self._fallback(args))
        best = max((v.free_after for v in verdicts.values() if v.status == FIT), default=0)
        if best > 0:
            for name, v in verdicts.items():
                if v.status == FIT:
                    zeros[name] = round(MAX_PRIORITY * v.free_after / best)
        return 200, host_priorities(zeros), "scored"

    @staticmethod
    def _fallback(args):
        if not args.by_name:
            return None
        return lambda name: parse_free(args.by_name[name]) if name in args.by_name else None


def build(kubeconfig: str | None, ttl: float, mode: str = "bind"):
    """(Extender, ClusterView) wired to a cluster; the watches are started."""
    from .watch import ClusterView, ExtenderKube
    kube = ExtenderKube(kubeconfig)
    ledger = Ledger(ttl)
    needs = NeedResolver(kube)
    view = ClusterView(kube, ledger, needs.need).start()
    return Extender(kube, ledger, synced=view.synced, ready=view.ready, mode=mode, binder=kube,
                    needs=needs), view


def _already_bound_to(e: Exception, node: str) -> bool:
    """A retried bind whose first try went through: 409 "pod x is already assigned to node "n""
    (pkg/registry/core/pod/storage/storage.go, assignPod)."""
    return getattr(e, "status", None) == 409 and f'already assigned to node "{node}"' in _api_message(e)


def _api_message(e: Exception) -> str:
    body = getattr(e, "body", b"")
    if body:
        try:
            return str(json.loads(body).get("message") or e)[:300]
        except (ValueError, AttributeError):
            pass
    return str(e)[:300]


def freeze_after_sync(view, timeout: float = 600.0) -> None:
    """Once the caches are filled, move everything allocated so far out of the cyclic GC's
    reach (gc.freeze): the cached nodes are long-lived, and a full collection walking them was
    the extender's tail latency."""
    def run():
        if view.nodes is not None and view.nodes.synced.wait(timeout):
            import gc
            gc.collect()
            gc.freeze()
            _log.info("caches filled; %d objects frozen out of the GC", gc.get_freeze_count())
    threading.Thread(target=run, name="extender-gc-freeze", daemon=True).start()


def main(argv: list) -> int:
    """netmeta scheduler-extender [--listen ADDR] [--kubeconfig FILE] [--mode bind|filter] [--assume-ttl SECONDS]
    [--tls-cert FILE --tls-key FILE]"""
    p = argparse.ArgumentParser(prog="netmeta scheduler-extender",
                                description="kube-scheduler extender: SR-IOV pods only where free VFs exist")
    p.add_argument("--listen", default=DEFAULT_LISTEN, help=f"host:port, :port or [v6]:port (default {DEFAULT_LISTEN})")
    p.add_argument("--kubeconfig", default=os.environ.get("KUBECONFIG") or None,
                   help="kubeconfig file (default $KUBECONFIG, else the in-cluster service account)")
    p.add_argument("--assume-ttl", type=float, default=DEFAULT_TTL, metavar="SECONDS",
                   help="how long a tentative hold (mode filter), or a hold on a node that does not name the "
                        f"pods holding its VFs, lasts at most (default {DEFAULT_TTL:g})")
    p.add_argument("--tls-cert", help="serve HTTPS with this certificate (PEM)")
    p.add_argument("--tls-key", help="the certificate's private key (PEM)")
    p.add_argument("--mode", choices=MODES, default="bind",
                   help="bind (default): kube-scheduler's bindVerb is this extender, VFs are held on the "
                        "chosen node at bind time; filter: no bindVerb, a filter holds the pod's VFs on "
                        "every node it passed until the binding is seen (admits fewer pods per round)")
    p.add_argument("--log-level", default=None, help="debug, info, warning, error")
    try:
        args = p.parse_args(argv)
    except SystemExit as e:
        return int(e.code or 0)
    if not args.assume_ttl > 0:
        p.print_usage(sys.stderr)
        sys.stderr.write("netmeta scheduler-extender: --assume-ttl must be > 0\n")
        return 2
    if bool(args.tls_cert) != bool(args.tls_key):
        sys.stderr.write("netmeta scheduler-extender: --tls-cert and --tls-key go together\n")
        return 2
    log.setup(args.log_level)
    from .http import serve
    try:
        ext, view = build(args.kubeconfig, args.assume_ttl, args.mode)
        srv = serve(ext, args.listen, args.tls_cert, args.tls_key)
    except Exception as e:     # noqa: BLE001 - no kubeconfig / service account, port in use, bad cert
        sys.stderr.write(f"netmeta scheduler-extender: failed to start: {type(e).__name__}: {e}\n")
        return 1
    freeze_after_sync(view)
    host, port = srv.server_address[:2]
    _log.info("scheduler extender listening on %s://%s:%s (mode %s, assume TTL %gs)",
              "https" if args.tls_cert else "http", host, port, args.mode, args.assume_ttl)
    stop = threading.Event()
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
    stop.wait()
    _log.info("scheduler extender stopping")
    srv.shutdown()
    view.stop()
    return 0
