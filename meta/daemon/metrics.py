"""Prometheus metrics of the node daemon (prometheus_client, a private registry), served on
/metrics of `httpAddr` (the shipped config: 0.0.0.0:9641, scraped through conf/metrics/).

  netmeta_cni_requests_total{plugin,command,code,network}   every request; code "0" = success,
        network = the CNI config's `name` (the runtime's network, or the NAD a stand-alone
        sriov/fixipam was called for); at most MAX_NETWORKS names, then "other"
  netmeta_cni_request_seconds{plugin,command}               latency histogram
  netmeta_cni_errors_total{plugin,command,code}             failed requests by CNI error code
  netmeta_cni_requests_in_flight
  netmeta_vfs{pf,state=total|free|allocated}                VF allocation per managed PF
  netmeta_node_status_patches_total / _patch_failures_total / _in_sync
                                                            VF availability published on the Node
  netmeta_network_status_write_lag_seconds                  ADD handing network-status over ->
                                                            its PATCH landing (histogram)
  netmeta_network_status_pending / _write_failures_total
  netmeta_api_requests_total{verb}                          Kubernetes API requests
  netmeta_api_errors_total{verb,code}                       ... that failed: HTTP status, or
                                                            "unreachable" (refused, reset, timeout)
  netmeta_sriov_record_reads_total{source=cache|file}       VF allocation records read while
                                                            listing a PF: unchanged since this
                                                            process parsed them, or parsed
"""
import json
import threading

from cni.leanimport import lean_package

lean_package("prometheus_client")   # the submodules below only: see exposition()
from prometheus_client.metrics import Counter, Gauge, Histogram  # noqa: E402
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily  # noqa: E402
from prometheus_client.openmetrics.exposition import escape_label_name, escape_metric_name  # noqa: E402
from prometheus_client.registry import CollectorRegistry  # noqa: E402
from prometheus_client.utils import floatToGoString  # noqa: E402

BUCKETS = (0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 30, 60, 120)
LAG_BUCKETS = (0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 30, 60, 300)
MAX_NETWORKS = 256   # label values a config could make up: bounded
COMMANDS = {"ADD", "DEL", "CHECK", "GC", "STATUS", "VERSION"}


class Metrics:
    def __init__(self):
        self.registry = CollectorRegistry()
        self.latency = Histogram("netmeta_cni_request_seconds", "CNI request latency in the daemon",
                                 ["plugin", "command"], buckets=BUCKETS, registry=self.registry)
        self.errors = Counter("netmeta_cni_errors_total", "CNI errors by code", ["plugin", "command", "code"],
                              registry=self.registry)
        self.requests = Counter("netmeta_cni_requests", "CNI requests by plugin, command, result code (0 = success) "
                                "and network (the CNI config's name)", ["plugin", "command", "code", "network"],
                                registry=self.registry)
        self.inflight = Gauge("netmeta_cni_requests_in_flight", "requests being served", registry=self.registry)
        self.vfs = Gauge("netmeta_vfs", "VFs per PF", ["pf", "state"], registry=self.registry)
        self.status_lag = Histogram("netmeta_network_status_write_lag_seconds",
                                    "from an ADD handing network-status over to its PATCH landing",
                                    buckets=LAG_BUCKETS, registry=self.registry)
        self.set_aside = Gauge("netmeta_vf_records_set_aside", "VF record files set aside (damaged, "
                               "vanished VF, reclaimed) and kept for the operator", ["pf", "kind"],
                               registry=self.registry)
        self._api_sources = []
        self._api_error_sources = []
        self._status_writer = None
        self._publisher = None
        self._record_reads = None
        self._networks: set = set()
        self._lock = threading.Lock()
        self.registry.register(self)

    # ---- sources the daemon attaches ----
    def add_api_source(self, fn) -> None:
        """fn() -> {verb: count}: the kube client's request counters."""
        self._api_sources.append(fn)

    def add_api_error_source(self, fn) -> None:
        """fn() -> {(verb, code): count}: the kube client's failed requests."""
        self._api_error_sources.append(fn)

    def watch_status_writer(self, writer) -> None:
        """meta/daemon/statuswriter.py: its pending writes, failures and each write's lag."""
        self._status_writer = writer
        writer.on_written = self.status_lag.observe

    def watch_record_reads(self, fn) -> None:
        """fn() -> {"cache": n, "file": n}: delegates/sriov/records.py's record cache."""
        self._record_reads = fn

    def watch_publisher(self, publisher) -> None:
        """meta/daemon/availability.py: VF availability writes to the Node."""
        self._publisher = publisher

    # ---- per request ----
    def request(self, plugin: str, command: str, rc: int, out: bytes, stdin: bytes) -> None:
        """Count one request. Never raises: a metric must not fail a CNI call, whatever the
        request held (deep nesting, not JSON, not UTF-8)."""
        code = "0"
        if rc:
            try:
                code = str(json.loads(out).get("code"))[:8]
            except Exception:
                code = "?"
        command = command if command in COMMANDS else "other"   # label values stay bounded
        self.requests.labels(plugin=plugin, command=command, code=code, network=self._network(stdin)).inc()

    def _network(self, stdin: bytes) -> str:
        if len(stdin) > 256 * 1024:   # a config that large is refused anyway: do not parse it twice
            return ""
        try:
            name = json.loads(stdin).get("name")
        except Exception:   # ValueError, RecursionError, AttributeError (not an object)
            return ""
        if not isinstance(name, str):
            return ""
        name = name[:128]
        with self._lock:
            if name in self._networks:
                return name
            if len(self._networks) < MAX_NETWORKS:
                self._networks.add(name)
                return name
        return "other"

    # ---- custom collector ----
    def collect(self):
        fam = CounterMetricFamily("netmeta_api_requests", "Kubernetes API requests by verb", labels=["verb"])
        for (verb,), n in sorted(_sum(self._api_sources, lambda k: (k,)).items()):
            fam.add_metric([verb], n)
        yield fam
        fam = CounterMetricFamily("netmeta_api_errors", "failed Kubernetes API requests by verb and HTTP status "
                                  "(or 'unreachable')", labels=["verb", "code"])
        for (verb, code), n in sorted(_sum(self._api_error_sources, tuple).items()):
            fam.add_metric([verb, str(code)], n)
        yield fam
        if self._record_reads is not None:
            fam = CounterMetricFamily("netmeta_sriov_record_reads", "VF allocation records read while listing "
                                      "a PF, by source: cache (unchanged since parsed) or file", labels=["source"])
            for source, n in sorted(self._record_reads().items()):
                fam.add_metric([source], n)
            yield fam
        w = self._status_writer
        if w is not None:
            yield GaugeMetricFamily("netmeta_network_status_pending", "network-status writes not landed yet",
                                    value=w.pending())
            yield CounterMetricFamily("netmeta_network_status_write_failures", "network-status PATCH attempts "
                                      "that failed (retried)", value=w.failures)
        p = self._publisher
        if p is not None:
            s = p.stats()
            yield CounterMetricFamily("netmeta_node_status_patches", "VF availability PATCHes of the Node",
                                      value=s.get("patches", 0))
            yield CounterMetricFamily("netmeta_node_status_patch_failures", "VF availability PATCHes that failed",
                                      value=s.get("patch_failures", 0))
            yield GaugeMetricFamily("netmeta_node_status_in_sync", "1 when the Node shows the node's VF availability",
                                    value=1 if s.get("in_sync") else 0)

    def describe(self):
        return []

    def set_pf(self, pf: str, total: int, free: int, allocated: int | None = None) -> None:
        self.vfs.labels(pf=pf, state="total").set(total)
        self.vfs.labels(pf=pf, state="free").set(free)
        if allocated is not None:
            self.vfs.labels(pf=pf, state="allocated").set(allocated)

    def set_aside_counts(self, pf: str, aside: list) -> None:
        for kind in ("damaged", "vanished", "reclaimed"):
            self.set_aside.labels(pf=pf, kind=kind).set(sum(1 for a in aside if a["kind"] == kind))

    def render(self) -> bytes:
        return exposition(self.registry)


def exposition(registry) -> bytes:
    """The Prometheus text format (0.0.4) of `registry`: prometheus_client 0.26's
    exposition.generate_latest (default escaping: underscores), ported here because its module
    imports the library's HTTP/WSGI servers (http.server, wsgiref, urllib.request, ssl: ~5 MB of
    the daemon's RSS) to be loaded at the first scrape. tests/test_metrics.py checks the output
    is byte for byte the library's."""
    def value(v: str) -> str:   # label values may be any UTF-8: backslash, newline, quote escaped
        return v.replace("\\", r"\\").replace("\n", r"\n").replace('"', r'\"')

    def sample_line(s) -> str:
        labels = ",".join(f'{escape_label_name(k)}="{value(v)}"' for k, v in sorted(s.labels.items()))
        ts = f" {int(float(s.timestamp) * 1000):d}" if s.timestamp is not None else ""
        return f"{escape_metric_name(s.name)}{'{' + labels + '}' if labels else ''} {floatToGoString(s.value)}{ts}\n"

    def doc(text: str) -> str:
        return text.replace("\\", r"\\").replace("\n", r"\n")

    out = []
    for metric in registry.collect():
        mname, mtype = metric.name, metric.type
        if mtype == "counter":
            mname += "_total"
        elif mtype == "info":
            mname, mtype = mname + "_info", "gauge"
        elif mtype == "stateset":
            mtype = "gauge"
        elif mtype == "gaugehistogram":
            mtype = "histogram"
        elif mtype == "unknown":
            mtype = "untyped"
        out.append(f"# HELP {escape_metric_name(mname)} {doc(metric.documentation)}\n")
        out.append(f"# TYPE {escape_metric_name(mname)} {mtype}\n")
        om: dict[str, list[str]] = {}   # OpenMetrics-only samples: a gauge of their own, after
        for s in metric.samples:
            for suffix in ("_created", "_gsum", "_gcount"):
                if s.name == metric.name + suffix:
                    om.setdefault(suffix, []).append(sample_line(s))
                    break
            else:
                out.append(sample_line(s))
        for suffix, lines in sorted(om.items()):
            out.append(f"# HELP {escape_metric_name(metric.name + suffix)} {doc(metric.documentation)}\n")
            out.append(f"# TYPE {escape_metric_name(metric.name + suffix)} gauge\n")
            out.extend(lines)
    return "".join(out).encode("utf-8")


def _sum(sources, key) -> dict:
    totals: dict = {}
    for fn in sources:
        for k, n in fn().items():
            k = key(k)
            totals[k] = totals.get(k, 0) + n
    return totals
