"""Prometheus metrics of the node daemon (prometheus_client, a private registry)."""
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily

BUCKETS = (0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 30, 60, 120)


class Metrics:
    def __init__(self):
        self.registry = CollectorRegistry()
        self.latency = Histogram("netmeta_cni_request_seconds", "CNI request latency in the daemon",
                                 ["plugin", "command"], buckets=BUCKETS, registry=self.registry)
        self.errors = Counter("netmeta_cni_errors_total", "CNI errors by code", ["plugin", "command", "code"],
                              registry=self.registry)
        self.inflight = Gauge("netmeta_cni_requests_in_flight", "requests being served", registry=self.registry)
        self.vfs = Gauge("netmeta_vfs", "VFs per PF", ["pf", "state"], registry=self.registry)
        self._api_sources = []
        self.registry.register(self)

    def add_api_source(self, fn) -> None:
        """fn() -> {verb: count}: the kube client's request counters."""
        self._api_sources.append(fn)

    def collect(self):   # custom collector: API requests by verb
        fam = CounterMetricFamily("netmeta_api_requests", "Kubernetes API requests by verb", labels=["verb"])
        totals = {}
        for fn in self._api_sources:
            for verb, n in fn().items():
                totals[verb] = totals.get(verb, 0) + n
        for verb, n in sorted(totals.items()):
            fam.add_metric([verb], n)
        yield fam

    def describe(self):
        return []

    def set_pf(self, pf: str, total: int, free: int) -> None:
        self.vfs.labels(pf=pf, state="total").set(total)
        self.vfs.labels(pf=pf, state="free").set(free)

    def render(self) -> bytes:
        return generate_latest(self.registry)
