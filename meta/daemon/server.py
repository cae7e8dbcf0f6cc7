"""`netmeta daemon`: one per node. Serves CNI calls forwarded by the shims on a root-only unix
socket with warm imports and clients; fixed thread pools (no thread is started per connection),
deadlines carried by the requests, one request at a time per container (shared with in-process
calls through cni/oplock.py), calls nested in a running operation served at once;
health/readiness (a canary round trip on the CNI socket)/metrics over HTTP; graceful shutdown
(in-flight requests finish); start-up reconcile of stale VF records and of DEL caches whose
netns is gone; node VF availability published after every change."""
import contextlib
import functools
import json
import os
import signal
import socket
import threading
import time
from typing import TYPE_CHECKING, Any

from cni import fault, hostroot, log, operation, oplock, skel, wire
from cni.errors import DECODE_FAILURE, TRY_AGAIN, CNIError
from delegates import registry
from meta import engine

from . import config as daemonconfig
from . import httpd, requests, sockreader
from .metrics import Metrics
from .workers import FixedPool

if TYPE_CHECKING:   # imported where used: only a daemon configured for them loads them
    from meta.kube.api import Kube

    from .availability import NodeStatusPublisher
    from .devicesync import DeviceSync
    from .statuswriter import StatusWriter

_log = log.get("daemon")
READ_DEADLINE = 10.0      # seconds to receive a whole request
READ_BACKLOG = 512        # queued requests per pool; more are refused (11)
LOCKED = ("ADD", "DEL", "CHECK")   # the commands that take the container lock
CANARY_TTL = 1.0          # seconds a health canary's result is reused
OP_ENV = operation.EnvNames(registry.SHIM.env_prefix)   # NETMETA_OP, NETMETA_DEADLINE, NETMETA_SOCKET
CHANGES_VFS = {("netmeta", "ADD"), ("netmeta", "DEL"), ("netmeta", "GC"), ("sriov", "ADD"),
               ("sriov", "DEL"), ("sriov", "GC")}


def _error(code: int, msg: str, details: str = "") -> bytes:
    return json.dumps(CNIError(code, msg, details).to_dict("1.1.0")).encode() + b"\n"


class Daemon:
    def __init__(self, cfg: daemonconfig.DaemonConfig):
        self.cfg = cfg
        self.metrics = Metrics()
        from delegates.sriov.records import CACHE
        self.metrics.watch_record_reads(lambda: {"cache": CACHE.hits, "file": CACHE.misses})
        # what our in-process delegates get: exec'd delegates in the host's view (cni/hostroot.py);
        # main adds the kube client's pod getter and fixipam client
        self.delegates = registry.Services(host_root=hostroot.HostRoot(cfg.host_root))
        self.plugins = {name: self.delegates.own.plugin(name) if name in registry.OWN.in_process
                        else registry.load(name)() for name in registry.NAMES}
        self.nested: FixedPool | None = None     # started by start_pools()
        self.workers: FixedPool | None = None
        self.reaper: requests.Reaper | None = None
        self._reader: sockreader.RequestReader | None = None
        self.lock_dir = oplock.lock_dir(cfg.socket_path)
        self.allow_faults = os.environ.get("NETMETA_ALLOW_FAULTS") == "1"
        self._locks: dict = {}
        self._locks_guard = threading.Lock()
        self._ops: dict = {}       # token -> Op of the operations running here
        self._jobs: dict = {}      # (plugin, container, ifname, command) -> Job queued or running
        self._ops_guard = threading.Lock()
        self._canary = (0.0, False, b"")
        self._sock: socket.socket | None = None
        self._http: httpd.Server | None = None
        self._stopping = threading.Event()
        self.publisher: NodeStatusPublisher | None = None
        self.devsync: DeviceSync | None = None
        self.kube: Kube | None = None   # the node's kube client (main() sets it when there is a kubeconfig)
        self.status_writer: StatusWriter | None = None
        self.ready = False

    # ---------------- lifecycle ----------------
    def start_pools(self) -> None:
        """Fixed pools, all threads started now: workers (the operations, at most maxConcurrency
        at once) and `nested` (calls made by the delegates of running operations: at most one
        per operation at a time, so they never wait for a worker)."""
        self.nested = FixedPool(self.cfg.max_concurrency + 4, "nested", READ_BACKLOG)
        self.workers = FixedPool(self.cfg.max_concurrency, "cni", 4 * READ_BACKLOG)
        self.reaper = requests.Reaper(lambda msg: _error(TRY_AGAIN, msg))

    def start(self) -> "Daemon":
        self.reconcile()
        self.start_pools()
        self._start_publisher()
        if self.cfg.pfs:   # the device plugin's VFs are kept out of netmeta's allocator
            from .devicesync import DeviceSync
            self.devsync = DeviceSync(list(self.cfg.pfs), self.cfg.podresources_socket, self.cfg.reconcile_period,
                                      self.publisher.notify if self.publisher else None).start()
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
        if self._reader is not None:
            self._reader.close()
        for pool in (self.workers, self.nested, self.reaper):
            if pool is not None:
                pool.stop()
        if self.devsync is not None:
            self.devsync.stop()
        if self.publisher is not None:
            self.publisher.stop(timeout=grace)
        if self.status_writer is not None:
            self.status_writer.stop(timeout=min(grace, 10))
        if self._http is not None:
            self._http.shutdown()
        _log.info("stopped")

    def serve_forever(self) -> None:
        # No fork to guard (the daemon once reset SIGTERM in forked children): netns sockets are
        # opened by setns in a thread (cni/netns.py), and delegates are exec'd by subprocess, whose
        # child runs no Python before exec (no preexec_fn).
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
        self._reader = sockreader.RequestReader(
            s, sockreader.parse_cni, self._dispatch, lambda why: _error(DECODE_FAILURE, "bad request to the netmeta daemon", why),
            READ_DEADLINE, self._stopping)

    # ---------------- one request ----------------
    def _dispatch(self, conn: socket.socket, request: tuple) -> None:
        """A complete request from the socket loop (must not block it). VERSION (the health
        canary) is answered here; calls nested in a running operation go to the `nested` pool;
        others are queued for a worker, whose thread answers on `conn`."""
        env, stdin = request
        reply = requests.Reply(conn)
        name = env.get("NETMETA_PLUGIN", "netmeta")
        if name not in self.plugins:
            reply.send(1, _error(DECODE_FAILURE, f"unknown plugin {name[:32]!r}"))
            return
        if env.get("CNI_COMMAND") == "VERSION":
            conn.settimeout(1.0)
            reply.send(*skel.handle(self.plugins[name], env, stdin))
            return
        deadline = self._deadline(env)
        parent = self._parent_of(env)
        if parent is not None:   # part of the operation in progress: no lock, no queue (see _parent_of)
            op = operation.Op(parent.token, parent.container_id,
                              parent.deadline if parent.deadline is not None else deadline, socket=self.cfg.socket_path,
                              env=OP_ENV)
            def nested():
                try:
                    op.check(env.get("CNI_COMMAND", "?"))
                except CNIError as e:
                    reply.send(1, _error(e.code, e.msg, e.details))
                    return
                reply.send(*self._execute(name, env, stdin, op))
            assert self.nested is not None      # start_pools() ran
            if not self.nested.offer(nested):
                reply.send(1, _error(TRY_AGAIN, "the netmeta daemon is overloaded (nested calls)"))
            return
        self.submit_async(name, env, stdin, deadline, reply)

    def _deadline(self, env: dict) -> float:
        """The shim's deadline, capped by requestTimeout."""
        cap = time.time() + self.cfg.request_timeout
        d = operation.parse_deadline(env.get(OP_ENV.deadline))
        return cap if d is None else min(d, cap)

    def _parent_of(self, env: dict):
        """The operation a request is nested in, or None.

        No deadlock, by construction: a thread running an operation holds its container's lock
        (in-memory + flock) and, while a delegate it exec'd runs, no other lock of ours (node
        locks for VF records, fixipam reservations and the sim table are taken and released
        within one plugin step, never across an exec). A call from that delegate presents the
        operation's token (NETMETA_OP, secret: only its delegates get it); it is served in the
        reader thread without the container lock and without the worker queue, so it waits for
        nothing its parent holds, and the locks it does take are free of any cycle with the
        parent. The in-memory table knows the daemon's own operations; the lock file names the
        holder's token for an in-process parent (the shim's fallback or thin mode)."""
        token, cid = env.get(OP_ENV.op, ""), env.get("CNI_CONTAINERID", "")
        if not token or not cid:
            return None
        with self._ops_guard:
            op = self._ops.get(token)
        if op is not None and op.container_id == cid:
            return op
        if oplock.held_by(self.lock_dir, cid, token):
            return operation.Op(token, cid, None, env=OP_ENV)
        return None

    def submit(self, env: dict, stdin: bytes) -> tuple:
        """Serve one request and wait for its answer (tests, and callers without a socket)."""
        name = env.get("NETMETA_PLUGIN", "netmeta")
        if name not in self.plugins:
            return 1, _error(DECODE_FAILURE, f"unknown plugin {name[:32]!r}")
        box: dict[str, Any] = {}
        done = threading.Event()

        class _Sink:   # a requests.Reply without a connection (the reaper reads .sent)
            sent = False

            def send(self, code, out):
                if self.sent:
                    return False
                self.sent = True
                box.update(code=code, out=out)
                done.set()
                return True
        self.submit_async(name, env, stdin, self._deadline(env), _Sink())
        done.wait()
        return box["code"], box["out"]

    def submit_async(self, name: str, env: dict, stdin: bytes, deadline: float, reply) -> None:
        """Queue the request for a worker; the answer goes to `reply`. A retry of a request that
        is still queued or running (same plugin, container, interface and command) joins it: it
        runs once, answers both, with the later deadline (idempotency of retried calls)."""
        if self._stopping.is_set():
            reply.send(1, _error(TRY_AGAIN, "the netmeta daemon is shutting down"))
            return
        key = (name, env.get("CNI_CONTAINERID", ""), env.get("CNI_IFNAME", ""), env.get("CNI_COMMAND", ""))
        assert self.reaper is not None and self.workers is not None     # start_pools() ran
        self.reaper.watch(reply, deadline, f"netmeta daemon: {key[3]} did not finish within its deadline "
                                           f"(requestTimeout {self.cfg.request_timeout:.0f}s or the shim's)")
        with self._ops_guard:
            job = self._jobs.get(key)
            if job is not None and job.stdin == stdin and requests.same_request(job.env, env):
                job.replies.append(reply)
                job.op.deadline = max(job.op.deadline, deadline)
                job.queued = time.monotonic()   # maxWait counts from the newest caller
                _log.info("%s %s for %s: a retry joins the request in flight", name, key[3], key[1][:12])
                return
            job = requests.Job(key, env, stdin, operation.Op(os.urandom(16).hex(), key[1], deadline,
                                                            socket=self.cfg.socket_path, env=OP_ENV), reply)
            self._jobs.setdefault(key, job)
        self.metrics.inflight.inc()
        if not self.workers.offer(self._work, name, job):
            self._finish(job, 1, _error(TRY_AGAIN, "the netmeta daemon is overloaded"))

    def _finish(self, job, code: int, out: bytes) -> None:
        with self._ops_guard:
            key = job.key
            if self._jobs.get(key) is job:
                del self._jobs[key]
            replies = list(job.replies)
        self.metrics.inflight.dec()
        for r in replies:
            if not r.send(code, out):
                _log.warning("%s for %s: answered after its caller gave up (code %d)", job.key[3], job.key[1][:12], code)

    @contextlib.contextmanager
    def _container_lock(self, cid: str, timeout: float | None = None):
        """One request at a time per container. An entry lives only while a request for its
        container is queued or running (counted), so the table holds the requests in flight,
        never every container ever seen, and an entry is never dropped while someone waits."""
        with self._locks_guard:
            entry = self._locks.get(cid)
            if entry is None:
                entry = self._locks[cid] = [threading.Lock(), 0]
            entry[1] += 1
        try:
            if not entry[0].acquire(timeout=-1 if timeout is None else max(0.0, timeout)):
                raise CNIError(TRY_AGAIN, f"container {cid[:12]} is busy with another request that did not finish in time")
            try:
                yield
            finally:
                entry[0].release()
        finally:
            with self._locks_guard:
                entry[1] -= 1
                if entry[1] == 0:
                    del self._locks[cid]

    def _work(self, name: str, job) -> None:
        """A worker: lock the container (in this daemon and node-wide), then run. Every wait is
        bounded by the request's deadline and maxWait; a request whose deadline passed before it
        could start is refused (11) and leaves no trace."""
        op, cid, cmd = job.op, job.key[1], job.key[3]
        lock = None
        try:
            code, out = 1, _error(TRY_AGAIN, "internal error before the request ran")
            self._start_check(job, f"{cmd} (queued)")
            waited = time.monotonic() - job.queued
            if waited > self.cfg.max_wait:
                raise CNIError(TRY_AGAIN, f"{cmd} waited {waited:.1f}s for a free worker (maxWait {self.cfg.max_wait:g}s)",
                               f"{self.cfg.max_concurrency} requests at once (maxConcurrency)")
            with self._container_lock(cid, min(op.remaining(), self.cfg.max_wait)):
                lock = oplock.ContainerLock(self.lock_dir, cid, registry.SHIM.product) if cid and cmd in LOCKED else None
                if lock is not None:
                    op.lock_fd = lock.acquire(op.token, time.time() + min(op.remaining(), self.cfg.max_wait))
                try:
                    self._start_check(job, cmd)   # e.g. the daemon was stopped while it waited
                    with self._ops_guard:
                        self._ops[op.token] = op
                    code, out = self._execute(name, job.env, job.stdin, op)
                finally:
                    with self._ops_guard:
                        self._ops.pop(op.token, None)
                    if lock is not None:
                        op.lock_fd = None
                        lock.release(close=False)   # unlocked now; its file closed after the answer
        except CNIError as e:
            if e.code == TRY_AGAIN:
                _log.warning("%s %s for %s refused: %s", name, cmd, cid[:12], e)
            self.metrics.errors.labels(plugin=name, command=cmd, code=str(e.code)).inc()
            code, out = 1, json.dumps(e.to_dict(skel.error_version(job.stdin))).encode() + b"\n"
            self.metrics.request(name, cmd, code, out, job.stdin)
        except OSError as e:
            code, out = 1, _error(5, f"netmeta daemon: container lock: {e}")
        finally:
            self._finish(job, code, out)
            if lock is not None:
                lock.close()

    def _start_check(self, job, what: str) -> None:
        """The deadline check before the request starts, atomic with a retry joining it: either
        the retry came first (and moved the deadline), or the job is closed to joiners first (the
        retry then becomes a job of its own) — never a retry answered with the refusal."""
        with self._ops_guard:
            try:
                job.op.check(what)
            except CNIError:
                key = job.key
                if self._jobs.get(key) is job:
                    del self._jobs[key]
                raise

    def _execute(self, name: str, env: dict, stdin: bytes, op) -> tuple:
        cmd = env.get("CNI_COMMAND", "?")
        try:
            fault.for_request(env.get("NETMETA_FAULT") if self.allow_faults else None)
            fault.point("daemon.run")
            t0 = time.perf_counter()
            with operation.running(op):
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
                    dev = Device(pf.get("sysfsRoot", "/sys"), pf.get("backend", "netlink"))
                    n = sriov._reclaim_stale(recs, pf["master"], dev)
                if n:
                    _log.info("reconcile: reclaimed %d stale VF record(s) on %s", n, pf["master"])
            except Exception as e:   # noqa: BLE001 - e.g. a netlink race with an in-process call
                # restoring the same record (issue 12, finding 14): never a reason not to start
                _log.error("reconcile of %s failed: %s", pf["master"], e)
        for n in engine.reclaim_dead_caches(self.cfg.cni_dir, own=self.delegates.own):
            _log.info("reconcile: removed attachments of %s (netns gone)", n)

    def _start_publisher(self) -> None:
        """Node VF availability: to the Node object (API) or, Kubernetes-free, a status file."""
        c = self.cfg
        if not c.pfs and not (c.kubeconfig and c.node_name) and not c.status_file:
            return   # nothing listed, nowhere to publish
        from .availability import NodeStatusPublisher
        opts: dict[str, Any] = {"window": c.coalesce_window, "period": c.reconcile_period, "min_interval": c.min_publish_interval}
        kube = None
        if c.kubeconfig and c.node_name:
            from meta.kube import api as k8s
            kube = self.kube or k8s.client(c.kubeconfig)
        pfs, discover = list(c.pfs), c.discover_pfs
        if c.node_settings:
            from . import nodesettings
            pfs, discover = nodesettings.apply(c.node_settings, c.node_name, self._node_labels(kube), pfs, discover)
        if kube is not None:
            assert c.node_name      # kube is made only with a node name
            self.publisher = pub = NodeStatusPublisher(c.node_name, pfs, kube=kube, **opts)
        elif c.status_file:
            self.publisher = pub = NodeStatusPublisher(c.node_name or "local", pfs, status_file=c.status_file, **opts)
        else:
            _log.warning("VF availability not published: set kubeconfig + nodeName, or statusFile")
            return
        from delegates.sriov import availability
        found = availability.pfs_with_records()   # used before a restart, still allocated
        if discover is not None:
            dp = discover
            found += availability.discover_pfs(dp.get("sysfsRoot", "/sys"), dp.get("include") or ["*"],
                                               dp.get("exclude") or [], dp.get("backend", "netlink"),
                                               dp.get("stateDir", "/var/lib/cni/netmeta/sriov"))
        for pf in found:
            pub.add_pf(pf)
        availability.on_pf_used(pub.add_pf)   # the PFs the networks on this node use
        if kube is not None and kube.nad_cache is not None:   # and those the cluster's NADs name
            from .availability import pfs_of_nads
            pub.pf_sources.append(lambda: pfs_of_nads(kube.nad_cache.values()))
        pub.start()
        self.metrics.watch_publisher(pub)

    def canary(self) -> tuple:
        """(ok, why): a VERSION round trip on our own CNI socket, through the accept loop and a
        reader, so health says whether CNI calls are actually served (cached CANARY_TTL s)."""
        at, ok, why = self._canary
        if time.monotonic() - at < CANARY_TTL:
            return ok, why
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            s.settimeout(3.0)
            s.connect(self.cfg.socket_path)
            s.sendall(wire.encode_request({"CNI_COMMAND": "VERSION", "NETMETA_PLUGIN": "netmeta"}, b"{}"))
            code, out = wire.decode_response(s.recv)
            ok, why = code == 0 and b"supportedVersions" in out, b"" if code == 0 else out[:200]
        except (OSError, EOFError, ValueError) as e:
            ok, why = False, str(e).encode()[:200]
        finally:
            s.close()
        self._canary = (time.monotonic(), ok, why)
        return ok, why

    def _node_labels(self, kube) -> dict:
        if kube is None:
            return {}
        try:
            return (kube.get_node(self.cfg.node_name).get("metadata") or {}).get("labels") or {}
        except CNIError as e:   # node settings by label need them; by name still work
            _log.error("cannot read the labels of node %s: %s", self.cfg.node_name, e)
            return {}

    def _health(self):
        ok, why = self.canary()
        return ok, b"ok\n" if ok else b"CNI socket not served: " + why + b"\n"

    def _readiness(self):
        if not self.ready or self._stopping.is_set():
            return False, b"not ready\n"
        ok, why = self.canary()
        return ok, b"ready\n" if ok else b"not ready: CNI socket not served: " + why + b"\n"

    def _metrics(self) -> bytes:
        from delegates.sriov.availability import pf_count
        from delegates.sriov.records import Records
        for pf in (self.publisher.pfs if self.publisher is not None else self.cfg.pfs):
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
    try:
        cfg = daemonconfig.load(a.config, {"socketPath": a.socket})
    except CNIError as e:
        print(f"netmeta daemon: {e}", flush=True, file=__import__("sys").stderr)
        return 2
    d = Daemon(cfg)
    # the engine's services: the daemon owns stderr's level (a config's logLevel applies to its
    # logFile only) and, with a kubeconfig, lends its client, status writer and event recorder
    services = engine.Services(file_log_level_only=True, delegates=d.delegates)
    if cfg.kubeconfig:   # a warm kube client with watch caches, before the first pod needs it
        from meta.kube import api as k8s
        kube = k8s.client(cfg.kubeconfig)
        kube.start_caches(cfg.node_name)
        d.kube = kube
        from meta import events

        from . import statuswriter
        pending = os.path.join(os.path.dirname(cfg.cni_dir.rstrip("/")), "status-pending")
        d.status_writer = writer = statuswriter.StatusWriter(kube, state_dir=pending).start()
        writer.load()   # writes a previous daemon left pending
        # our in-process delegates: sriov reads a stand-alone call's pod through its cache,
        # fixipam reserves cluster-wide through its client (as this node)
        from delegates.fixipam import cluster
        fixipam_api = cluster.node_api(kube.http, cfg.node_name, kube.count_call, kube.count_error)
        d.delegates = registry.Services(pod_lookup=kube.get_pod, fixipam_api=fixipam_api,
                                        host_root=d.delegates.host_root)
        d.plugins.update({name: d.delegates.own.plugin(name) for name in registry.OWN.in_process})
        # one identity and one set of caches per node: this client serves every request,
        # whatever kubeconfig a CNI config names
        services = engine.Services(
            kube=kube, file_log_level_only=True, events=events.Recorder(kube, cfg.node_name),
            delegates=d.delegates,
            status_sink=functools.partial(writer.submit,
                                          wait=min(statuswriter.SYNC_WAIT, cfg.request_timeout / 4)))
    from meta.plugin import MetaPlugin
    d.plugins["netmeta"] = MetaPlugin(services)   # the daemon's engines get its services
    if cfg.kubeconfig:
        d.metrics.add_api_source(lambda: dict(kube.calls))
        d.metrics.add_api_error_source(lambda: dict(kube.errors))
        d.metrics.watch_status_writer(writer)
        from delegates.fixipam import clustergc  # cluster-wide fixed IPs: the daemon's client
        if fixipam_api is not None:
            clustergc.ClusterGC(fixipam_api, cfg.fixipam_gc_period).start()
    try:
        d.start()
    except CNIError as e:   # e.g. a broken nodeSettings file: say so and exit, do not serve half-configured
        print(f"netmeta daemon: {e}", flush=True, file=__import__("sys").stderr)
        return 2
    d.serve_forever()
    return 0
