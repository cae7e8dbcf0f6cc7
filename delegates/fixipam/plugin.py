"""fixipam: fixed-address IPAM plugin (ADD, DEL, CHECK, GC, STATUS)."""
import contextlib
import os
import time

from cni import fault, log
from cni.errors import ADDRESS_IN_USE, IO_FAILURE, CNIError, config_error
from cni.plugin import Plugin
from cni.result import IPConfig, Result, Route
from delegates import registry

from . import addresses, cluster, config, scope
from .store import Store, describe, is_owner

_log = log.get("fixipam")


class FixIPAM(Plugin):
    type_name = "fixipam"

    def __init__(self, services: registry.Services = registry.STANDALONE):
        """`services`: what the process lends its plugins (the node daemon's API client for
        cluster-wide reservations: delegates/registry.py Services)."""
        self.services = services

    def add(self, req) -> Result:
        cfg = config.load(req.config)
        source, texts = addresses.requested(req.config, req.args)
        wanted = addresses.validate(cfg, source, texts)
        for w in wanted:
            cfg.policy.check(w.interface.ip)
        store = Store(cfg.data_dir, cfg.network_name)
        api = scope.for_add(cfg.policy, cfg.network_name, store.dir, self.services.fixipam_api)
        with store.lock(), contextlib.ExitStack() as undo, scope.naming_holder(api, cfg.network_name):
            scope.mark(api, store.dir)
            for w in wanted:
                rec = store.owner(w.key)
                if rec and rec.get("damaged"):
                    raise CNIError(ADDRESS_IN_USE, f"address {w.key} on network {cfg.network_name} is held by a "
                                   f"damaged reservation", f"moved to {rec['damaged']}; GC (CNI GC or `netmeta gc`) "
                                   "releases it when no valid attachment uses it")
                if rec and not is_owner(rec, req.container_id, req.ifname):
                    raise CNIError(ADDRESS_IN_USE, f"address {w.key} is already reserved on this node "
                                   f"for network {cfg.network_name}", f"owner: {describe(rec)}")
                if rec is None:
                    store.reserve(w.key, req.container_id, req.ifname)
                    undo.callback(store.release, w.key)
            fault.point("fixipam.add.reserved")
            # node-local first, then cluster-wide, both under the network's node lock (API calls
            # included: a burst on one network and node is serialised; a crash in between leaves
            # only what DEL and GC find)
            if api is not None:
                scope.reserve(api, cfg.policy, cfg.network_name, [w.key for w in wanted],
                              cluster.Owner.from_request(req), undo)
            undo.pop_all()  # every reservation made: keep them
        _log.info("reserved %s on %s for %s/%s", ",".join(w.key for w in wanted),
                  cfg.network_name, req.container_id[:12], req.ifname)
        return self._result(cfg, wanted, req.cni_version)

    @staticmethod
    def _result(cfg, wanted, cni_version) -> Result:
        res = Result(cni_version=cni_version)
        for w in wanted:
            gw = str(w.subnet.gateway) if w.subnet.gateway else ""
            res.ips.append(IPConfig(str(w.interface), gw))
        res.routes = [Route(dst, gw) for dst, gw in cfg.routes]
        res.dns = dict(cfg.dns)
        return res

    def delete(self, req) -> None:
        # DEL must succeed even with a config we can no longer fully parse: fall back to
        # the raw name/dataDir so the reservation is still released.
        ipam = req.config.get("ipam") if isinstance(req.config.get("ipam"), dict) else {}
        data_dir = ipam.get("dataDir", config.DEFAULT_DATA_DIR)
        if not isinstance(data_dir, str) or not data_dir.startswith("/"):
            raise config_error("ipam.dataDir", "must be an absolute path")
        store = Store(data_dir, req.name)
        # cluster first, from the node-local records (kept until then: a crash in between
        # leaves them for the retried DEL); an API outage never blocks DEL (GC releases later)
        scope.release(ipam, req.name, set(store.owned_by(req.container_id, req.ifname)) |
                      scope.requested_keys(req), req.container_id, req.ifname, self.services.fixipam_api)
        with store.lock():
            fault.point("fixipam.del.locked")
            gone = store.release_owner(req.container_id, req.ifname)
        if gone:
            _log.info("released %s on %s", ",".join(gone), req.name)

    def check(self, req) -> None:
        cfg = config.load(req.config)
        store = Store(cfg.data_dir, cfg.network_name)
        owned = set(store.owned_by(req.container_id, req.ifname))
        source, texts = addresses.requested(req.config, req.args)
        keys = {w.key for w in addresses.validate(cfg, source, texts)} if texts else set()
        if not owned:
            raise CNIError(ADDRESS_IN_USE, f"no reservation for {req.container_id[:12]}/{req.ifname} "
                           f"on network {cfg.network_name}")
        missing = keys - owned
        if missing:
            raise CNIError(ADDRESS_IN_USE, f"address {sorted(missing)[0]} is not reserved for "
                           f"{req.container_id[:12]}/{req.ifname}")

    def gc(self, req) -> None:
        valid = req.config.get("cni.dev/valid-attachments")
        if not isinstance(valid, list):
            raise config_error("cni.dev/valid-attachments", "GC needs the list of valid attachments")
        keep = {(a.get("containerID"), a.get("ifname")) for a in valid if isinstance(a, dict)}
        scope.gc(req.config.get("ipam") or {}, req.name, keep, self.services.fixipam_api)   # this node's cluster ones
        ipam = req.config.get("ipam") or {}
        from . import gc  # the GC verb's only
        gc.collect(ipam.get("dataDir", config.DEFAULT_DATA_DIR), req.name, keep, time.time())

    def status(self, req) -> None:
        cfg = config.load(req.config)
        os.makedirs(cfg.data_dir, mode=0o700, exist_ok=True)
        if not os.access(cfg.data_dir, os.W_OK):
            raise CNIError(IO_FAILURE, f"reservation directory {cfg.data_dir} is not writable")
