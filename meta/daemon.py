"""`netmeta daemon`: one per node. Serves CNI calls forwarded by the shims on a root-only unix
socket with warm imports and clients; bounded concurrency, a per-request timeout, one request
at a time per container; health/readiness/metrics over HTTP; graceful shutdown (in-flight
requests finish); start-up reconcile of stale VF records and of DEL caches whose netns is gone;
node VF availability published after every change."""
import contextlib
import functools
import json
import os
import signal
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor, TimeoutError as FutureTimeout

from cni import fault, hostroot, log, skel, wire
from cni.errors import TRY_AGAIN, DECODE_FAILURE, CNIError
from delegates import registry

from . import daemonconfig, engine, httpd
from .metrics import Metrics

_log = log.get("daemon")
CHANGES_VFS = {("netmeta", "ADD"), ("netmeta", "DEL"), ("netmeta", "GC"), ("sriov", "ADD"),
               ("sriov", "DEL"), ("sriov", "GC")}


def _error(code: int, msg: str, details: str = "") -> bytes:
    return json.dumps(CNIError(code, msg, details).to_dict("1.1.0")).encode() + b"\n"


def _child_default_signals() -> None:
    """After a fork (pyroute2 forks to open a socket inside a pod netns), the child must not run
    the daemon's Python SIGTERM handler: it may wait forever on a lock another thread held at
    fork time, while the parent waits for the child with the VF locks held."""
    with contextlib.suppress(ValueError, OSError):
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.SIG_DFL)


class Daemon:
    def __init__(self, cfg: daemonconfig.DaemonConfig):
        self.cfg = cfg
        hostroot.set_root(cfg.host_root)   # exec'd delegates in the host's view (cni/hostroot.py)
        self.metrics = Metrics()
        self.plugins = {name: registry.load(name)() for name in registry.NAMES}
        self.pool = ThreadPoolExecutor(cfg.max_concurrency, thread_name_prefix="cni")
        self.allow_faults = os.environ.get("NETMETA_ALLOW_FAULTS") == "1"
        self._locks: dict = {}
        self._locks_guard = threading.Lock()
        self._sock = None
        self._http = None
        self._stopping = threading.Event()
        self.publisher = None
        self.status_writer = None
        self.ready = False

    # ---------------- lifecycle ----------------
    def start(self) -> "Daemon":
        self.reconcile()
        self._start_publisher()
        self._listen()
        if self.cfg.http_addr:
            self._http = httpd.serve(self.cfg.http_addr, self._health, self._readiness, self._metrics)
        self.ready = True
        _log.info("serving on %s (max %d at once, timeout %.0fs)", self.cfg.socket_path,
                  self.cfg.max_concurrency, self.cfg.request_timeout)
        return self

    def stop(self, grace: float = 30.0) -> None:
        """Stop accepting, let in-flight requests finish, flush the node status."""
        if self._stopping.is_set():
            return
        self._stopping.set()
        self.ready = False
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.close()
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.cfg.socket_path)
        self.pool.shutdown(wait=True, cancel_futures=False)
        if self.publisher is not None:
            self.publisher.stop(timeout=grace)
        if self.status_writer is not None:
            self.status_writer.stop(timeout=min(grace, 10))
        if self._http is not None:
            self._http.shutdown()
        _log.info("stopped")

    def serve_forever(self) -> None:
        import pyroute2.config
        pyroute2.config.disable_mp_signal = True      # its forked children: default SIGTERM
        os.register_at_fork(after_in_child=_child_default_signals)
        done = threading.Event()

        def on_signal(signum, _frame):
            _log.info("signal %d: shutting down", signum)
            done.set()
        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
        while not done.wait(1.0):
            pass
        self.stop()

    def _listen(self) -> None:
        path = self.cfg.socket_path
        from cni.files import makedirs
        makedirs(os.path.dirname(path))
        if os.path.exists(path):
            probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                probe.connect(path)
                raise SystemExit(f"another netmeta daemon is serving {path}")
            except OSError:
                os.unlink(path)   # stale socket of a daemon that died
            finally:
                probe.close()
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old = os.umask(0o177)   # the socket is born 0600: no window where others can connect
        try:
            s.bind(path)
        finally:
            os.umask(old)
        os.chmod(path, 0o600)
        s.listen(256)
        self._sock = s
        threading.Thread(target=self._accept_loop, name="accept", daemon=True).start()

    def _accept_loop(self) -> None:
        while not self._stopping.is_set():
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve_conn, args=(conn,), daemon=True).start()

    # ---------------- one request ----------------
    def _serve_conn(self, conn: socket.socket) -> None:
        with conn:
            deadline = time.monotonic() + 10.0

            def recv(n):   # one deadline for the whole request: a trickling client gets 10 s
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError("request not received within 10 s")
                conn.settimeout(left)
                return conn.recv(n)
            try:
                env, stdin = wire.decode_request(recv)
            except (ValueError, EOFError, OSError, UnicodeError) as e:   # TimeoutError is an OSError
                _log.warning("bad request on the socket: %s", e)
                with contextlib.suppress(OSError):
                    conn.sendall(wire.encode_response(1, _error(DECODE_FAILURE, "bad request to the netmeta daemon", str(e))))
                return
            code, out = self.submit(env, stdin)
            with contextlib.suppress(OSError):
                conn.settimeout(10.0)
                conn.sendall(wire.encode_response(code, out))

    def submit(self, env: dict, stdin: bytes) -> tuple:
        name = env.get("NETMETA_PLUGIN", "netmeta")
        if name not in self.plugins:
            return 1, _error(DECODE_FAILURE, f"unknown plugin {name[:32]!r}")
        if self._stopping.is_set():
            return 1, _error(TRY_AGAIN, "the netmeta daemon is shutting down")
        self.metrics.inflight.inc()
        try:
            fut = self.pool.submit(self._run, name, env, stdin)
        except RuntimeError:
            self.metrics.inflight.dec()
            return 1, _error(TRY_AGAIN, "the netmeta daemon is shutting down")
        try:
            return fut.result(timeout=self.cfg.request_timeout)
        except FutureTimeout:
            fut.cancel()   # still queued: dropped; running: finishes under its container lock
            cmd = env.get("CNI_COMMAND", "?")
            self.metrics.errors.labels(plugin=name, command=cmd, code=str(TRY_AGAIN)).inc()
            _log.error("%s %s for %s timed out after %.0fs", name, cmd, env.get("CNI_CONTAINERID", "?")[:12],
                       self.cfg.request_timeout)
            return 1, _error(TRY_AGAIN, f"netmeta daemon: {cmd} did not finish within {self.cfg.request_timeout:.0f}s")

    @contextlib.contextmanager
    def _container_lock(self, cid: str):
        """One request at a time per container. An entry lives only while a request for its
        container is queued or running (counted), so the table holds the requests in flight,
        never every container ever seen, and an entry is never dropped while someone waits."""
        with self._locks_guard:
            entry = self._locks.get(cid)
            if entry is None:
                entry = self._locks[cid] = [threading.Lock(), 0]
            entry[1] += 1
        try:
            with entry[0]:
                yield
        finally:
            with self._locks_guard:
                entry[1] -= 1
                if entry[1] == 0:
                    del self._locks[cid]

    def _run(self, name: str, env: dict, stdin: bytes) -> tuple:
        cmd = env.get("CNI_COMMAND", "?")
        try:
            with self._container_lock(env.get("CNI_CONTAINERID", "")):
                fault.for_request(env.get("NETMETA_FAULT") if self.allow_faults else None)
                t0 = time.perf_counter()
                code, out = skel.handle(self.plugins[name], env, stdin)
                self.metrics.latency.labels(plugin=name, command=cmd).observe(time.perf_counter() - t0)
                self.metrics.request(name, cmd, code, out, stdin)
                if code:
                    try:
                        err = str(json.loads(out).get("code"))
                    except ValueError:
                        err = "?"
                    self.metrics.errors.labels(plugin=name, command=cmd, code=err).inc()
                if (name, cmd) in CHANGES_VFS and self.publisher is not None:
                    self.publisher.notify()
                return code, out
        finally:
            fault.for_request(None)
            self.metrics.inflight.dec()

    # ---------------- reconcile, availability, health ----------------
    def reconcile(self) -> None:
        """Start-up: reclaim VF records nobody will finish, undo DEL caches whose netns is gone."""
        from delegates.sriov.device import Device
        from delegates.sriov.records import Records
        sriov = self.plugins["sriov"]
        for pf in self.cfg.pfs:
            recs = Records(pf.get("stateDir", "/var/lib/cni/netmeta/sriov"))
            try:
                with recs.lock():
                    n = sriov._reclaim_stale(recs, pf["master"], Device(pf.get("sysfsRoot", "/sys"), pf.get("backend", "netlink")))
                if n:
                    _log.info("reconcile: reclaimed %d stale VF record(s) on %s", n, pf["master"])
            except (CNIError, OSError) as e:
                _log.error("reconcile of %s failed: %s", pf["master"], e)
        for n in engine.reclaim_dead_caches(self.cfg.cni_dir):
            _log.info("reconcile: removed attachments of %s (netns gone)", n)

    def _start_publisher(self) -> None:
        """Node VF availability: to the Node object (API) or, Kubernetes-free, a status file."""
        c = self.cfg
        if not c.pfs:
            return
        from .nodestatus import NodeStatusPublisher
        opts = {"window": c.coalesce_window, "period": c.reconcile_period, "min_interval": c.min_publish_interval}
        if c.kubeconfig and c.node_name:
            from . import k8s
            self.publisher = NodeStatusPublisher(c.node_name, list(c.pfs), kube=k8s.client(c.kubeconfig), **opts)
        elif c.status_file:
            self.publisher = NodeStatusPublisher(c.node_name or "local", list(c.pfs), status_file=c.status_file, **opts)
        else:
            _log.warning("VF availability not published: set kubeconfig + nodeName, or statusFile")
            return
        self.publisher.start()
        self.metrics.watch_publisher(self.publisher)

    def _health(self):
        return True, b"ok\n"

    def _readiness(self):
        ok = self.ready and not self._stopping.is_set()
        return ok, b"ready\n" if ok else b"not ready\n"

    def _metrics(self) -> bytes:
        from delegates.sriov.availability import pf_count
        from delegates.sriov.records import Records
        for pf in self.cfg.pfs:
            state = pf.get("stateDir", "/var/lib/cni/netmeta/sriov")
            self.metrics.set_aside_counts(pf["master"], Records(state).report(pf["master"]))
            with contextlib.suppress(Exception):
                c = pf_count(pf["master"], pf.get("sysfsRoot", "/sys"), pf.get("backend", "netlink"), state)
                self.metrics.set_pf(pf["master"], c.total, c.free, c.allocated)
        return self.metrics.render()


def main(argv: list) -> int:
    import argparse
    ap = argparse.ArgumentParser(prog="netmeta daemon")
    ap.add_argument("--config")
    ap.add_argument("--socket")
    a = ap.parse_args(argv)
    log.setup()
    log.FROZEN = True
    try:
        cfg = daemonconfig.load(a.config, {"socketPath": a.socket})
    except CNIError as e:
        print(f"netmeta daemon: {e}", flush=True, file=__import__("sys").stderr)
        return 2
    d = Daemon(cfg)
    if cfg.kubeconfig:   # a warm kube client with watch caches, before the first pod needs it
        from . import k8s
        kube = k8s.client(cfg.kubeconfig)
        kube.start_caches(cfg.node_name)
        k8s.use_node_client(kube)
        from . import events, statuswriter
        pending = os.path.join(os.path.dirname(cfg.cni_dir.rstrip("/")), "status-pending")
        d.status_writer = statuswriter.StatusWriter(kube, state_dir=pending).start()
        d.status_writer.load()   # writes a previous daemon left pending
        engine.STATUS_SINK = functools.partial(d.status_writer.submit,
                                               wait=min(statuswriter.SYNC_WAIT, cfg.request_timeout / 4))
        engine.EVENTS = events.Recorder(kube, cfg.node_name)
        d.metrics.add_api_source(lambda: dict(kube.calls))
        d.metrics.add_api_error_source(lambda: dict(kube.errors))
        d.metrics.watch_status_writer(d.status_writer)
        from delegates.fixipam import cluster, clustergc   # cluster-wide fixed IPs: the daemon's client
        fixipam_api = cluster.provide(kube.http, cfg.node_name, kube._count, kube._count_error)
        if fixipam_api is not None:
            clustergc.ClusterGC(fixipam_api, cfg.fixipam_gc_period).start()
    d.start()
    d.serve_forever()
    return 0
