"""`netmeta scheduler-extender`: a kube-scheduler extender (filter + prioritize) that places pods
asking for SR-IOV attachments only on nodes with enough free VFs, without overcommit races.

  meta/extender.py         decisions (Extender), metrics, the command line (main)
  meta/extender_api.py     the extender wire format (k8s.io/kube-scheduler/extender/v1)
  meta/extender_need.py    a pod's SR-IOV need, from its network annotation and the NADs it names
  meta/extender_nodes.py   a node's published free VFs (sriov/vfCount, sriov/vfDetail)
  meta/extender_ledger.py  free VFs per node and VFs promised to pods being scheduled (assumed)
  meta/extender_watch.py   Kubernetes client and the NAD / node / pending-pod watch caches
  meta/extender_http.py    the HTTP(S) service

Filter: a pod with no SR-IOV attachment passes every node untouched; otherwise a node passes when
its published free VFs (`sriov/vfCount`, and per PF from `sriov/vfDetail` when the NAD names its
`master`) minus the VFs promised to other pods being scheduled cover the pod's need; each node
that does not is in FailedNodes (or FailedAndUnresolvableNodes when no amount of waiting or
preemption helps) with its reason. Prioritize: 0..10 by the free VFs a node keeps after the pod,
relative to the best candidate; equal (0) for pods without SR-IOV attachments.
"""
from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
import time

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily

from cni import log

from .extender_api import (
    MAX_PRIORITY,
    BadRequest,
    error_result,
    filter_result,
    host_priorities,
    parse_args,
)
from .extender_ledger import FIT, UNRESOLVABLE, Ledger
from .extender_need import LookupFailed, NeedResolver, PodError
from .extender_nodes import parse_free

_log = log.get("extender")
DEFAULT_LISTEN = ":8888"
DEFAULT_TTL = 60.0
SYNC_WAIT = 3.0        # a filter waits this long for a node cache that is still filling


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
    """The decisions. `nads`: get_nad(namespace, name) (meta.k8s.Kube); `synced(timeout) -> bool`
    tells whether the node cache is filled; `ready() -> bool` backs /readyz."""

    def __init__(self, nads, ledger: Ledger, synced=None, ready=None):
        self.ledger = ledger
        self.needs = NeedResolver(nads)
        self.metrics = Metrics(ledger)
        self._synced = synced or (lambda timeout=0.0: True)
        self.ready = ready or (lambda: True)

    def filter(self, body: bytes) -> tuple[int, dict]:
        t0 = time.perf_counter()
        status, result, outcome = self._filter(body)
        self.metrics.decisions.labels("filter", outcome).inc()
        self.metrics.latency.labels("filter").observe(time.perf_counter() - t0)
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
        verdicts = self.ledger.decide(args.uid, need, args.names, self._fallback(args), assume=True)
        passed, failed, unresolvable = [], {}, {}
        for name, v in verdicts.items():
            if v.status == FIT:
                passed.append(name)
                continue
            (unresolvable if v.status == UNRESOLVABLE else failed)[name] = v.reason
            self.metrics.filtered.labels(v.code).inc()
        _log.debug("filter %s (%s): %d of %d nodes pass", args.pod_name, need.describe(), len(passed),
                   len(verdicts))
        return 200, filter_result(args, passed, failed, unresolvable), "fit" if passed else "unschedulable"

    def prioritize(self, body: bytes) -> tuple[int, object]:
        t0 = time.perf_counter()
        status, result, outcome = self._prioritize(body)
        self.metrics.decisions.labels("prioritize", outcome).inc()
        self.metrics.latency.labels("prioritize").observe(time.perf_counter() - t0)
        return status, result

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


def build(kubeconfig: str | None, ttl: float):
    """(Extender, ClusterView) wired to a cluster; the watches are started."""
    from .extender_watch import ClusterView, ExtenderKube
    kube = ExtenderKube(kubeconfig)
    ledger = Ledger(ttl)
    view = ClusterView(kube, ledger).start()
    return Extender(kube, ledger, synced=view.synced, ready=view.ready), view


def main(argv: list) -> int:
    """netmeta scheduler-extender [--listen ADDR] [--kubeconfig FILE] [--assume-ttl SECONDS]
    [--tls-cert FILE --tls-key FILE]"""
    p = argparse.ArgumentParser(prog="netmeta scheduler-extender",
                                description="kube-scheduler extender: SR-IOV pods only where free VFs exist")
    p.add_argument("--listen", default=DEFAULT_LISTEN, help=f"host:port, :port or [v6]:port (default {DEFAULT_LISTEN})")
    p.add_argument("--kubeconfig", default=os.environ.get("KUBECONFIG") or None,
                   help="kubeconfig file (default $KUBECONFIG, else the in-cluster service account)")
    p.add_argument("--assume-ttl", type=float, default=DEFAULT_TTL, metavar="SECONDS",
                   help=f"how long VFs promised to a pod stay reserved at most (default {DEFAULT_TTL:g})")
    p.add_argument("--tls-cert", help="serve HTTPS with this certificate (PEM)")
    p.add_argument("--tls-key", help="the certificate's private key (PEM)")
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
    from .extender_http import serve
    try:
        ext, view = build(args.kubeconfig, args.assume_ttl)
        srv = serve(ext, args.listen, args.tls_cert, args.tls_key)
    except Exception as e:     # noqa: BLE001 - no kubeconfig / service account, port in use, bad cert
        sys.stderr.write(f"netmeta scheduler-extender: failed to start: {type(e).__name__}: {e}\n")
        return 1
    host, port = srv.server_address[:2]
    _log.info("scheduler extender listening on %s://%s:%s (assume TTL %gs)",
              "https" if args.tls_cert else "http", host, port, args.assume_ttl)
    stop = threading.Event()
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
    stop.wait()
    _log.info("scheduler extender stopping")
    srv.shutdown()
    view.stop()
    return 0
