"""The meta plugin's engine: ADD / DEL / CHECK / STATUS / GC for one pod, usable in-process
(thin mode, the daemon) — see DESIGN.md "ADD, step by step"."""
import os
import time
from collections.abc import Callable

from cni import fault, log
from cni.errors import (
    DELEGATE_NOT_FOUND,
    NETWORK_NOT_FOUND,
    PLUGIN_NOT_AVAILABLE,
    TRY_AGAIN,
    UNKNOWN_CONTAINER,
    CNIError,
    config_error,
)
from cni.request import Request
from cni.result import Result
from delegates import registry

from . import attachments, cache, config, netnsid, parallel, routes
from . import networkstatus as status
from .attachments import Attachment
from .podref import PodRef

# typing.TYPE_CHECKING without importing typing (~3 ms of an exec'd call, which needs nothing of
# it): mypy takes any `TYPE_CHECKING` as true
TYPE_CHECKING = False
if TYPE_CHECKING:   # imported where used: thin mode without a kubeconfig never loads them
    from .events import Recorder
    from .kube.api import Kube
# and meta/plan.py, meta/networks.py (with what they bring: ~1 ms of an exec'd call) where a
# plan is made: ADD, a DEL whose cache is corrupt; not a DEL, CHECK, STATUS or GC from the cache

_log = log.get("meta")
ANNOTS_KEY = "io.kubernetes.cri.pod-annotations"


class Services(config.SetOnce):
    """What the process hosting the engine lends it. The defaults are thin mode's (the exec'd
    plugin): a kube client per kubeconfig, network-status PATCHed at once, events posted
    synchronously, the config's logLevel for stderr too. The daemon passes its own
    (meta/daemon/server.py main). Read-only (each attribute is set once, by __init__)."""

    __slots__ = ("kube", "status_sink", "events", "file_log_level_only", "delegates")

    def __init__(self, *,
                 # the client for every request, whatever kubeconfig a config names
                 kube: "Kube | None" = None,
                 # (namespace, name, uid, value): the daemon's StatusWriter.submit with a short wait
                 # (the write lands before ADD returns, or stays pending in the background past that wait)
                 status_sink: Callable[[str, str, str | None, str], object] | None = None,
                 events: "Recorder | None" = None,   # an events.Recorder (the daemon's is asynchronous)
                 # a config's logLevel applies to its logFile only (the daemon owns stderr's level)
                 file_log_level_only: bool = False,
                 # what our in-process delegates (sriov, fixipam) get: the daemon's pod getter and
                 # cluster client for fixipam (delegates/registry.py Services); its `own` runs them
                 delegates: registry.Services = registry.STANDALONE) -> None:
        self.kube = kube
        self.status_sink = status_sink
        self.events = events
        self.file_log_level_only = file_log_level_only
        self.delegates = delegates


THIN = Services()


class Engine:
    """One per config; the daemon keeps them warm (the kube client inside is reused)."""

    def __init__(self, cfg: config.MetaConfig, services: Services = THIN):
        self.cfg = cfg
        self.services = services
        self._own = services.delegates.own
        log.setup(cfg.log_level, cfg.log_file, dict(cfg.log_options) or None,
                  file_level_only=services.file_log_level_only)
        self._kube: "Kube | None" = None
        self._events: "Recorder | None" = None
        if cfg.unknown_keys:
            # Multus ignores keys it does not know (json.Unmarshal into its NetConf): warn, go on
            _log.warning("ignoring unknown key(s) in the netmeta configuration: %s", ", ".join(cfg.unknown_keys))

    # ---- sources ----
    @property
    def kube(self):
        if self._kube is None and self.cfg.kubeconfig:
            if self.services.kube is not None:
                self._kube = self.services.kube
            else:
                from .kube import api as k8s
                self._kube = k8s.client(self.cfg.kubeconfig)
        return self._kube

    def nad_source(self):
        if self.cfg.kubeconfig:
            return self.kube
        if self.cfg.nad_dir:
            from .networks import DirNADs
            return DirNADs(self.cfg.nad_dir)
        return None

    def pod_annotations(self, req: Request, pod: PodRef, is_del: bool = False) -> dict | None:
        """The pod's annotations; None on DEL when the pod is gone or is another pod now."""
        runtime = req.config.get("runtimeConfig") or {}
        if ANNOTS_KEY in runtime and isinstance(runtime[ANNOTS_KEY], (dict, type(None))):
            # the runtime passed them (containerd sends null for a pod without any): no API call
            return {str(k): str(v) for k, v in (runtime[ANNOTS_KEY] or {}).items()}
        if not (pod.name and pod.namespace and self.kube):
            return {}
        from .kube import api as k8s
        obj = self.kube.wait_pod(pod.namespace, pod.name, pod.uid, is_del)
        if obj is None:
            return None
        meta = obj.get("metadata") or {}
        # Multus v4.1.4 pkg/multus/multus.go GetPod: a static pod's mirror has another UID than
        # the kubelet's (IsStaticPod); on DEL a mismatch only means "work from the cache"
        if pod.uid and meta.get("uid") and meta["uid"] != pod.uid and not k8s.is_static_pod(obj):
            msg = f"expected pod {pod.namespace}/{pod.name} UID {pod.uid!r} but got {meta['uid']!r} from the Kubernetes API"
            if is_del:
                _log.warning("%s: not this pod any more", msg)
                return None
            raise CNIError(UNKNOWN_CONTAINER, msg)
        return meta.get("annotations") or {}

    def wait_ready(self) -> None:
        """Multus v4.1.4 pkg/multus/multus.go CmdAdd -> pkg/types/conf.go GetReadinessIndicatorFile:
        ADD waits for the readiness indicator file, polling every second, 45 s at most."""
        f = self.cfg.readiness_file
        if not f:
            return
        deadline = time.monotonic() + self.cfg.readiness_timeout
        while not os.path.exists(f):
            if time.monotonic() >= deadline:
                raise CNIError(TRY_AGAIN, "have you checked that your default network is ready? still waiting "
                               f"for readinessindicatorfile @ {f}",
                               f"not there after {self.cfg.readiness_timeout:.0f} s")
            time.sleep(min(config.READINESS_POLL, max(0.0, deadline - time.monotonic())))

    # ---- events ----
    def _eventful(self, pod: PodRef) -> bool:
        """Events go to the API: only with a kubeconfig, for a pod with a name and namespace."""
        return bool(self.cfg.kubeconfig and pod.name and pod.namespace)

    def event(self, pod: PodRef, type_: str, reason: str, message: str) -> None:
        if not self._eventful(pod):
            return
        rec = self.services.events
        if rec is None:
            try:
                if self._events is None:
                    from . import events
                    self._events = events.Recorder(self.kube, self.cfg.node_name, asynchronous=False)
                rec = self._events
            except CNIError as e:
                _log.warning("no events: %s", e)
                return
        rec.event(pod.to_dict(), type_, reason, message)

    def _added_event(self, pod: PodRef, att: Attachment, res: Result) -> None:
        # Multus v4.1.4 pkg/multus/multus.go DelegateAdd: "Add <ifname> <ips> from <name>"
        # when the result has interfaces or IPs
        if res is None or not (res.interfaces or res.ips) or not self._eventful(pod):
            return    # (before the import: meta/events.py brings datetime, which thin mode never needs)
        from .events import go_list
        self.event(pod, "Normal", "AddedInterface", f"Add {att.ifname} {go_list(c.address for c in res.ips)} "
                                                     f"from {att.network}")

    # ---- ADD ----
    def add(self, req: Request) -> Result:
        pod = PodRef(req.args)
        self.wait_ready()
        self._undo_previous(req)
        annots = self.pod_annotations(req, pod)
        try:
            assert annots is not None   # None only on DEL (pod_annotations)
            from .plan import Planner
            atts = Planner(self.cfg, self.nad_source()).plan(req, pod.namespace, annots)
            for att in atts:
                parallel.take_serial(att)
        except CNIError as e:
            if e.code == NETWORK_NOT_FOUND:   # Multus getKubernetesDelegate: Warning NoNetworkFound
                self.event(pod, "Warning", "NoNetworkFound", f"{e.msg}: {e.details}" if e.details else e.msg)
            raise
        entry = {"containerID": req.container_id, "ifname": req.ifname, "netns": req.netns,
                 "netnsId": netnsid.of(req.netns),   # which namespace the path names now
                 "pod": pod.to_dict(), "cniVersion": req.cni_version, "cniPath": req.path,
                 "state": "adding", "created": time.time(),
                 "attachments": [a.to_dict() for a in atts]}
        cache.write(self.cfg.cni_dir, entry)   # before any delegate runs
        fault.point("meta.add.cached")

        def add_one(i):   # may run in a worker thread (meta/parallel.py): touches only atts[i]
            att = atts[i]
            fault.point(f"meta.add.before-{i}")
            res = attachments.add(att, req, self.cfg.delegate_timeout, self._own)
            fault.point(f"meta.add.after-{i}")
            _log.info("added %s on %s for pod %s/%s", att.network, att.ifname, pod.namespace, pod.name)
            return res

        done: dict[int, Result] = {}                    # filled by parallel.add
        failed: list[tuple[int, BaseException]] = []
        started: set[int] = set()
        try:
            # the cluster network alone first, then the others in waves (concurrently)
            parallel.add(atts, add_one, self.cfg.parallel, done, failed, started)
            # no cache write per delegate: the cache written before the first one already
            # lists every attachment, and every delegate's DEL is idempotent
            for i in sorted(done):
                entry["attachments"][i] = atts[i].to_dict()
                self._added_event(pod, atts[i], done[i])
            if failed:
                raise failed[0][1]
            results = [done[i] for i in range(len(atts))]
            routes.apply(req.netns, atts, results)
            fault.point("meta.add.attached")
            entry["state"] = "ready"
            cache.write(self.cfg.cni_dir, entry, replacing=True)   # a full disk fails the ADD here, rolled back
        except BaseException as e:
            _log.warning("ADD failed (%s): rolling back %d attachment(s)", e, len(started))
            self._rollback(req, atts, started)
            if isinstance(e, CNIError) and failed:
                bad = atts[failed[0][0]]
                self.event(pod, "Warning", "FailedAddInterface", f"failed to add {bad.ifname} from {bad.network}: {e.msg}")
            raise
        fault.point("meta.add.ready")
        entries = [status.entry(a, r) for a, r in zip(atts, results)]
        self._publish_status(pod, entries, req.container_id)
        return primary(atts, results, req.cni_version)

    def _undo_previous(self, req: Request) -> None:
        """An earlier ADD of this container/interface that never got its DEL (its daemon died
        mid-way, the runtime retried) is undone first, from its cache."""
        try:
            old = cache.read(self.cfg.cni_dir, req.container_id, req.ifname)
        except ValueError:
            old = True
        if old:
            _log.warning("ADD for %s/%s finds an earlier attachment: undoing it first", req.container_id[:12], req.ifname)
            self.delete(Request(command="DEL", container_id=req.container_id, netns=req.netns, ifname=req.ifname,
                                args=req.args, raw_args=req.raw_args, path=req.path, config=req.config))

    def _rollback(self, req: Request, atts: list, started) -> None:
        """DEL of every attachment in `started` (the failed ones too), concurrently as ADD ran."""
        def del_one(i):
            try:
                attachments.delete(atts[i], req, self.cfg.delegate_timeout, self._own)
            except CNIError as e:
                if e.code != DELEGATE_NOT_FOUND:   # e.g. the very plugin whose absence failed the ADD
                    raise
        failed = parallel.delete(atts, del_one, self.cfg.parallel, started)
        for i, e in failed:   # keep the cache: the runtime's DEL will retry
            _log.error("rollback of %s on %s failed: %s", atts[i].network, atts[i].ifname, e)
        if not failed:
            cache.remove(self.cfg.cni_dir, req.container_id, req.ifname)

    def _publish_status(self, pod: PodRef, entries: list, container_id: str) -> None:
        if not (pod.name and pod.namespace and (self.cfg.kubeconfig or self.cfg.status_dir)):
            return   # nowhere to publish it (thin mode on a bare host): not even formatted
        value = status.annotation(entries)
        sink = self.services.status_sink
        if self.cfg.kubeconfig and sink is not None:
            sink(pod.namespace, pod.name, pod.uid, value)
        elif self.cfg.kubeconfig:
            try:
                self.kube.patch_pod_annotations(pod.namespace, pod.name, {status.ANNOTATION: value}, uid=pod.uid)
            except CNIError as e:   # the pod has its networks; a lost annotation must not undo them
                _log.error("failed to write network-status of %s/%s: %s", pod.namespace, pod.name, e)
        elif self.cfg.status_dir:
            from cni import files

            from . import statusfile  # with a statusDir only
            try:
                files.atomic_write(statusfile.path(self.cfg.status_dir, pod.to_dict(), container_id), value)
            except (CNIError, OSError) as e:   # as with the API: a lost status must not undo the networks
                _log.error("failed to write network-status of %s/%s: %s", pod.namespace, pod.name, e)

    # ---- DEL ----
    def delete(self, req: Request) -> None:
        if self.cfg.readiness_file and not os.path.exists(self.cfg.readiness_file):
            # Multus v4.1.4 CmdDel (ReadinessIndicatorExistsNow): a warning, never a failed DEL
            _log.warning("readinessindicatorfile @ %s does not exist on CNI DEL", self.cfg.readiness_file)
        try:
            entry = cache.read(self.cfg.cni_dir, req.container_id, req.ifname)
        except ValueError:
            _log.error("DEL cache of %s/%s is corrupt: rebuilding it", req.container_id[:12], req.ifname)
            entry = self._rebuild(req)
        if entry is None:
            _log.info("no DEL cache for %s/%s: nothing was attached, or it is already gone",
                      req.container_id[:12], req.ifname)
            cache.remove(self.cfg.cni_dir, req.container_id, req.ifname)   # and no temp file either
            return
        atts = [Attachment.from_dict(a) for a in entry["attachments"]]
        sub = self._del_request(req, entry)

        def del_one(i):   # may run in a worker thread (meta/parallel.py)
            fault.point(f"meta.del.before-{i}")
            try:
                attachments.delete(atts[i], sub, self.cfg.delegate_timeout, self._own)
            except CNIError as e:
                if e.code != DELEGATE_NOT_FOUND:
                    raise
                _log.warning("DEL of %s skipped: %s", atts[i].network, e)   # it holds no state
        errors = parallel.delete(atts, del_one, self.cfg.parallel)
        for i, e in errors:
            _log.error("DEL of %s on %s failed: %s", atts[i].network, atts[i].ifname, e)
        if errors:
            raise errors[-1][1]   # cache kept: the runtime retries DEL and finishes the rest
        fault.point("meta.del.done")
        cache.remove(self.cfg.cni_dir, req.container_id, req.ifname)
        self._remove_status_file(entry.get("pod") or {}, req.container_id)
        _log.info("deleted %d attachment(s) of %s", len(atts), req.container_id[:12])

    def _remove_status_file(self, pod: dict, container_id: str) -> None:
        """Only this sandbox's file: a live pod of the same name has its own (meta/statusfile.py)."""
        if self.cfg.status_dir and pod.get("namespace") and pod.get("name"):
            from . import statusfile
            statusfile.remove(self.cfg.status_dir, pod, container_id)

    @staticmethod
    def _del_request(req: Request, entry: dict) -> Request:
        # the CRI's second DEL carries no netns: use the path ADD saw only while it still names
        # the same namespace; another pod's netns may sit at that path now. Else DEL runs with an
        # empty CNI_NETNS, as the CNI spec allows ("plugins should ... clean up as much as possible").
        netns = req.netns or (entry.get("netns") or "" if netnsid.same(entry.get("netns"), entry.get("netnsId")) else "")
        return Request(command="DEL", container_id=req.container_id, netns=netns, ifname=req.ifname,
                       args=req.args, raw_args=req.raw_args, path=req.path or entry.get("cniPath", []),
                       config=req.config)

    def _rebuild(self, req: Request):
        """A corrupt DEL cache. Multus v4.1.4 (pkg/multus/multus.go CmdDel) then runs no delegate
        at all and succeeds ("cannot properly delete"): the cluster network's IP lease leaks
        (Multus issue #1087). Here: the pod's whole plan while the API still has this pod (same
        UID); else the networks the config alone names (the cluster default network and
        defaultNetworks), which every pod of this config had. The rebuilt entry replaces the
        corrupt file, so a delegate DEL that fails is retried like any other; nothing here makes
        DEL fail for good (a pod that is gone, another pod, no API: the config's networks)."""
        try:
            pod = PodRef(req.args)
        except CNIError:
            pod = PodRef({})
        from .plan import Planner
        planner = Planner(self.cfg, self.nad_source())
        atts = None
        if pod.name and pod.namespace and self.kube:
            try:
                annots = self.pod_annotations(req, pod, is_del=True)
                if annots is not None:
                    atts = planner.plan(req, pod.namespace, annots)
                    for att in atts:
                        parallel.take_serial(att)
            except CNIError as e:
                _log.warning("cannot re-plan pod %s/%s for DEL (%s): the config's networks only", pod.namespace, pod.name, e)
        if atts is None:
            try:
                atts = planner.plan(req, pod.namespace, {})
            except CNIError as e:
                _log.error("cannot rebuild the DEL cache of %s: %s; nothing to undo from it", req.container_id[:12], e)
                cache.remove(self.cfg.cni_dir, req.container_id, req.ifname)
                return None
        entry = {"containerID": req.container_id, "ifname": req.ifname, "netns": req.netns, "pod": pod.to_dict(),
                 "cniVersion": req.cni_version, "cniPath": req.path, "state": "rebuilt", "created": time.time(),
                 "attachments": [a.to_dict() for a in atts]}
        cache.write(self.cfg.cni_dir, entry)
        _log.info("DEL cache of %s rebuilt: %s", req.container_id[:12], ", ".join(a.network for a in atts))
        return entry

    # ---- CHECK / STATUS / GC ----
    def check(self, req: Request) -> None:
        entry = cache.read(self.cfg.cni_dir, req.container_id, req.ifname)
        if not entry or entry.get("state") != "ready":
            raise CNIError(UNKNOWN_CONTAINER, f"no attachments recorded for container {req.container_id[:12]}")
        for a in entry["attachments"]:
            attachments.check(Attachment.from_dict(a), req, self.cfg.delegate_timeout, self._own)

    def status(self, req: Request) -> None:
        f = self.cfg.readiness_file
        if f and not os.path.exists(f):
            raise CNIError(PLUGIN_NOT_AVAILABLE, "cluster default network is not ready",
                           f"readiness indicator file {f} does not exist")

    def gc(self, req: Request) -> None:
        valid = req.config.get("cni.dev/valid-attachments")
        if not isinstance(valid, list):
            raise config_error("cni.dev/valid-attachments", "GC needs the list of valid attachments")
        keep = {(a.get("containerID"), a.get("ifname")) for a in valid if isinstance(a, dict)}
        started = time.time()
        listed = list(cache.entries(self.cfg.cni_dir))
        for cid, ifname, entry in listed:
            if (cid, ifname) in keep:
                if entry is None:
                    _log.error("gc: DEL cache of %s/%s is corrupt; kept: the runtime says it is in use",
                               cid[:12], ifname)
                continue
            if entry is None:
                _log.warning("gc: DEL cache of %s/%s is corrupt: undoing the config's networks", cid[:12], ifname)
            sub = Request(command="DEL", container_id=cid, ifname=ifname, path=req.path,
                          config=req.config, raw_args=req.raw_args, args=req.args)
            try:
                self.delete(sub)
                _log.info("gc: removed attachments of %s/%s", cid[:12], ifname)
            except CNIError as e:
                _log.error("gc: could not remove %s/%s yet: %s", cid[:12], ifname, e)
        # then the reservations no DEL could release (damaged, or whose cache is lost)
        from . import ipamgc
        live = [e for cid, ifname, e in listed if (cid, ifname) in keep]
        ipamgc.collect(ipamgc.networks([e for _, _, e in listed]), ipamgc.owners(live), started,
                       {cid for cid, _ in keep})


def reclaim_dead_caches(cni_dir: str, timeout: float = 60.0, own: registry.Own = registry.OWN) -> list:
    """Undo the attachments of every DEL cache whose pod netns no longer exists (node reboot,
    crashed runtime); returns the container IDs done. The runtime's own DEL later finds no
    cache and succeeds. `own`: as attachments.delete's (the daemon passes its services')."""
    done = []
    for cid, ifname, entry in list(cache.entries(cni_dir)):
        if entry is None:
            # which networks it held is only known with the network config: the runtime's DEL
            # or a CNI GC (engine.gc) rebuilds it from there
            _log.error("reconcile: DEL cache %s is corrupt; left for the runtime's DEL or CNI GC, which carry "
                       "the network config", cache.path(cni_dir, cid, ifname))
            continue
        ns = entry.get("netns")
        if not ns or _netns_alive(entry):
            continue
        req = Request(command="DEL", container_id=cid, ifname=ifname, path=entry.get("cniPath", []),
                      raw_args="IgnoreUnknown=1", config={"cniVersion": entry.get("cniVersion", "1.0.0"),
                                                          "name": "netmeta"})
        try:
            for a in reversed(entry["attachments"]):
                try:
                    attachments.delete(Attachment.from_dict(a), req, timeout, own)
                except CNIError as e:
                    if e.code != DELEGATE_NOT_FOUND:
                        raise
        except CNIError as e:
            _log.error("could not undo attachments of %s yet: %s", cid[:12], e)
            continue
        cache.remove(cni_dir, cid, ifname)
        done.append(cid)
    return done


def _netns_alive(entry: dict) -> bool:
    """The cache's pod netns still exists: its path is there and (when ADD recorded it) still
    names the same namespace, not a new pod's at a reused path."""
    if not os.path.exists(entry["netns"]):
        return False
    return entry.get("netnsId") is None or netnsid.same(entry["netns"], entry["netnsId"])


def primary(atts: list, results: list, version: str) -> Result:
    """The result for the runtime: the cluster default network's, as Multus v4.1.4 returns it
    (pkg/multus/multus.go CmdAdd: "Master plugin result is always used if present"). Runtimes
    take the IPs of the result as the pod's IPs: a secondary network's would be wrong there.
    Every attachment's interfaces and IPs are in network-status."""
    for att, res in zip(atts, results):
        if att.default:
            return Result(cni_version=version, interfaces=list(res.interfaces), ips=list(res.ips),
                          routes=list(res.routes), dns=dict(res.dns))
    return Result(cni_version=version)
