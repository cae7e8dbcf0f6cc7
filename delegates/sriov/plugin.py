"""sriov: attach a VF (or, with pfOnly, the whole PF) to a pod and put everything back on DEL.

ADD = select + record (under the node lock) -> PF-side settings -> move the netdev into the
pod netns under a temporary name -> rename, MAC, MTU, up -> IPAM -> addresses, routes ->
announce. The record, written before anything changes, holds the original state; the undo of
a failed ADD, DEL, GC and the reclaim of a stale record are all the same `restore(record)`.
"""
import contextlib
import os
import secrets
import time

from cni import fault, invoke, log
from cni.errors import (DELEGATE_NOT_FOUND, DEVICE_BUSY, DEVICE_NOT_FOUND, NO_FREE_VF, UNKNOWN_CONTAINER, VF_CONFIG_FAILED, CNIError,
                        config_error)
from cni.plugin import Plugin
from cni.request import Request
from cni.result import IPConfig, Result

from . import config, garp, netdev
from .device import Device
from .records import Records, netns_alive
from .vftable import VFState

_log = log.get("sriov")


def _pid_alive(pid) -> bool:
    try:
        os.kill(int(pid), 0)
        return True
    except (OSError, ValueError, TypeError):
        return False


def is_stale(rec: dict) -> bool:
    """A record nobody will finish: its pod netns is gone, or the ADD that wrote it died."""
    if rec.get("corrupt"):
        return False  # never guess about a file we cannot read; GC/operator decides
    if rec.get("state") == "ready":
        return not netns_alive(rec)
    return not _pid_alive(rec.get("pid")) or not netns_alive(rec)


class SRIOVPlugin(Plugin):
    type_name = "sriov"

    # ---------------- ADD ----------------
    def add(self, req: Request) -> Result:
        cfg = config.load(req.config)
        if not netdev.netns_exists(req.netns):
            raise CNIError(UNKNOWN_CONTAINER, f"failed to open netns {req.netns}", "it does not exist")
        dev = Device(cfg.sysfs_root, cfg.backend)
        recs = Records(cfg.state_dir)
        # a previous ADD for this attachment that never got its DEL is undone first
        for old in recs.find(req.container_id, req.ifname):
            self.restore(old, req)
        with recs.lock():
            pf, vf = self._select(cfg, dev, recs, req)
            rec = self._record(cfg, dev, req, pf, vf)
            recs.write(rec)
        try:
            fault.point("sriov.add.recorded")
            result = self._attach(cfg, dev, rec, req, recs)
        except BaseException:
            _log.warning("ADD of %s/%s failed: restoring %s", pf, vf, req.ifname)
            with contextlib.suppress(Exception):
                self.restore(recs.read(pf, vf) or rec, req)
            raise
        _log.info("attached %s %s to %s as %s", pf, "PF" if vf is None else f"VF {vf}",
                  req.netns, req.ifname)
        return result

    def _select(self, cfg, dev: Device, recs: Records, req) -> tuple:
        if cfg.device_id:
            pf, vf = dev.locate(cfg.device_id, cfg.master)
        else:
            pf = cfg.master
            dev.require_pf(pf)
            vf = cfg.vf
        # Records are read BEFORE the topology is refreshed: a concurrent DEL renames its VF
        # back and only then drops its record (without our lock), so a VF whose record is gone
        # is already back under its own name; one freed after this read just looks taken.
        taken = {r["vf"]: r for r in self._reclaim(recs, pf)[1]}
        dev.sync(pf)   # the sim's sysfs view (a no-op for real sysfs, which is always live)
        if cfg.pf_only:
            if netdev.lookup(pf) is None:
                raise CNIError(DEVICE_BUSY, f"PF {pf} is not in the host network namespace")
            if taken:
                first = next(iter(taken.values()))
                raise CNIError(DEVICE_BUSY, f"PF {pf} is in use",
                               f"{len(taken)} allocation(s) on it, e.g. container {str(first.get('containerID', '?'))[:12]}")
            return pf, None
        if None in taken:
            raise CNIError(DEVICE_BUSY, f"PF {pf} is attached to a pod (pfOnly)")
        numvfs = dev.topo.numvfs(pf)
        if vf is not None:
            if vf >= numvfs:
                raise config_error("vf", f"VF {vf} does not exist: {pf} has {numvfs} VFs enabled")
            if vf in taken:
                raise CNIError(DEVICE_BUSY, f"VF {vf} of {pf} is allocated",
                               f"to container {str(taken[vf].get('containerID'))[:12]}")
            if dev.topo.vf_netdev(pf, vf) is None:
                raise CNIError(DEVICE_BUSY, f"VF {vf} of {pf} has no netdev in the host network namespace")
            return pf, vf
        for n in range(numvfs):   # sysfs is read only for VFs that are free by the records
            if n not in taken and n not in cfg.exclude_vfs and dev.topo.vf_netdev(pf, n):
                return pf, n
        raise CNIError(NO_FREE_VF, f"no free VF on {pf}",
                       f"{len(taken)} of {numvfs} VFs allocated, {len(cfg.exclude_vfs)} excluded")

    def _record(self, cfg, dev: Device, req, pf: str, vf) -> dict:
        if vf is None:
            host_name, table = pf, None
        else:
            host_name = dev.topo.vf_netdev(pf, vf)
            with dev.table(pf) as t:
                table = t.get(vf).to_dict()
        state = netdev.lookup(host_name)
        if state is None:
            raise CNIError(DEVICE_NOT_FOUND, f"failed to find netdev {host_name} of {pf}")
        return {"containerID": req.container_id, "ifname": req.ifname, "netns": req.netns,
                "network": cfg.name, "pf": pf, "vf": vf, "podUID": _pod_uid(req),
                "pci": dev.topo.vf_pci(pf, vf) if vf is not None else dev.topo.pf_pci(pf),
                "state": "allocated", "pid": os.getpid(), "created": time.time(),
                "tmpName": f"nmv{secrets.token_hex(4)}",
                "saved": {"table": table, "netdev": {k: state[k] for k in ("name", "mac", "mtu", "up")}},
                "sysfsRoot": cfg.sysfs_root, "backend": cfg.backend, "stateDir": cfg.state_dir,
                "ipam": cfg.ipam, "cniVersion": req.cni_version, "cniPath": req.path}

    def _attach(self, cfg, dev: Device, rec: dict, req, recs: Records) -> Result:
        pf, vf = rec["pf"], rec["vf"]
        if vf is not None and cfg.pf_settings():
            with dev.table(pf) as t:
                t.set(vf, **cfg.pf_settings())
        fault.point("sriov.add.pf-set")
        netdev.move(rec["saved"]["netdev"]["name"], req.netns, rec["tmpName"])
        fault.point("sriov.add.moved")
        # the PF-table MAC (set above) is what the switch enforces; the netdev gets the same one
        state = netdev.setup(rec["tmpName"], req.netns, new_name=req.ifname, mac=cfg.mac, mtu=cfg.mtu, up=True)
        fault.point("sriov.add.configured")
        res = Result(cni_version=req.cni_version)
        idx = res.add_interface(req.ifname, state["mac"], req.netns, pciID=rec["pci"], mtu=state["mtu"])
        if cfg.ipam:
            ipam_res = invoke.delegate(cfg.ipam["type"], "ADD", self._ipam_conf(req.config), req)
            fault.point("sriov.add.ipam")
            res.ips = [IPConfig(c.address, c.gateway, idx) for c in ipam_res.ips]
            res.routes, res.dns = ipam_res.routes, ipam_res.dns
            netdev.configure_ips(req.netns, req.ifname, res)
            garp.announce(req.netns, req.ifname, state["mac"], [c.address for c in res.ips])
        fault.point("sriov.add.addressed")
        rec.update(state="ready", mac=state["mac"])
        recs.write(rec)
        if vf is not None:
            dev.sync(pf)  # the sim learns the pod-side name a real VF returns with
        return res

    @staticmethod
    def _ipam_conf(conf: dict) -> dict:
        # the IPAM plugin gets the whole netconf, as libcni gives it to the main plugin
        return dict(conf)

    # ---------------- restore (undo / DEL / GC / reclaim) ----------------
    def restore(self, rec: dict, req: Request | None = None) -> None:
        """Put the device back exactly as the record saved it, then drop the record.
        Every step tolerates the state a crash at any point of ADD can leave."""
        pf, vf = rec["pf"], rec["vf"]
        dev = Device(rec.get("sysfsRoot", "/sys"), rec.get("backend", "netlink"))
        saved = rec["saved"]
        ipam_error = None
        if rec.get("ipam"):
            try:
                self._ipam_del(rec, req)
            except CNIError as e:   # the VF comes back all the same; the error is reported after
                ipam_error = e
                _log.error("IPAM DEL for %s %s failed: %s", pf, vf, e)
        fault.point("sriov.del.ipam-released")
        orig = saved["netdev"]["name"]
        ns = rec.get("netns")
        host_name = None
        if netns_alive(rec):
            for name in (rec["ifname"], rec["tmpName"]):
                if netdev.lookup(name, ns) is not None and self._is_ours(name, ns, rec):
                    netdev.move(name, None, rec["tmpName"], src_netns=ns)
                    fault.point("sriov.del.moved-back")
                    host_name = rec["tmpName"]
                    break
        if host_name is None:
            host_name = self._host_name(dev, rec)
        if host_name is not None:
            netdev.setup(host_name, None, new_name=orig, mac=saved["netdev"]["mac"] or None,
                         mtu=saved["netdev"]["mtu"], up=saved["netdev"]["up"])
        elif not (vf is None and not netns_alive(rec)):
            raise CNIError(DEVICE_NOT_FOUND, f"failed to find the netdev of {pf} "
                           f"{'PF' if vf is None else f'VF {vf}'} to restore it")
        fault.point("sriov.del.netdev-restored")
        if vf is not None and saved.get("table"):
            with dev.table(pf) as t:
                t.set(vf, **VFState.from_dict(saved["table"]).to_dict())
        fault.point("sriov.del.table-restored")
        Records(rec.get("stateDir", config.DEFAULT_STATE_DIR)).remove(pf, vf)
        _log.info("restored %s %s (was %s in %s)", pf, "PF" if vf is None else f"VF {vf}",
                  rec["ifname"], rec.get("netns"))
        if ipam_error is not None and ipam_error.code != DELEGATE_NOT_FOUND:
            raise ipam_error   # the runtime retries DEL: the IPAM release is tried again

    @staticmethod
    def _is_ours(name: str, ns: str, rec: dict) -> bool:
        if rec.get("mac") is None:
            return True  # ADD died before it knew the MAC: the temp/if name is the evidence
        st = netdev.lookup(name, ns)
        return st is not None and st["mac"] == rec["mac"]

    @staticmethod
    def _host_name(dev: Device, rec: dict) -> str | None:
        """Where the device is in the host when it did not come back from the pod through us:
        under the temp name (ADD died mid-move back), where the kernel put it when its netns
        vanished (sysfs knows; the sim emulates), or never moved (its own name)."""
        if netdev.lookup(rec["tmpName"]) is not None:
            return rec["tmpName"]
        if rec["vf"] is not None:
            dev.sync(rec["pf"])  # the sim emulates a VF coming back when its netns vanished
            name = dev.topo.vf_netdev(rec["pf"], rec["vf"])
            if name is not None and netdev.lookup(name) is not None:
                return name
        orig = rec["saved"]["netdev"]["name"]
        return orig if netdev.lookup(orig) is not None else None

    def _ipam_del(self, rec: dict, req: Request | None) -> None:
        conf = {"cniVersion": rec.get("cniVersion", "1.0.0"), "name": rec.get("network"),
                "type": "sriov", "ipam": rec["ipam"]}
        sub = Request(command="DEL", container_id=rec["containerID"], netns=rec.get("netns", ""),
                      ifname=rec["ifname"], path=req.path if req else rec.get("cniPath", []),
                      config=conf)
        if req is not None:
            sub.raw_args, sub.args = req.raw_args, req.args
        invoke.delegate(rec["ipam"]["type"], "DEL", conf, sub)

    def _reclaim_stale(self, recs: Records, pf: str) -> int:
        return self._reclaim(recs, pf)[0]

    def _reclaim(self, recs: Records, pf: str) -> tuple[int, list]:
        """Restore the stale records of `pf` (caller holds the node lock); returns how many,
        and the records still standing (one read of the directory serves both)."""
        n, kept = 0, []
        for rec in recs.of_pf(pf):
            if is_stale(rec):
                _log.info("reclaiming stale record %s %s of %s", pf, rec.get("vf"), rec.get("containerID"))
                try:
                    self.restore(rec, None)
                    n += 1
                    continue
                except CNIError as e:
                    _log.warning("could not reclaim %s VF %s yet: %s", pf, rec.get("vf"), e)
            kept.append(rec)
        return n, kept

    # ---------------- DEL / CHECK / GC / STATUS ----------------
    def delete(self, req: Request) -> None:
        cfg_state = req.config.get("stateDir", config.DEFAULT_STATE_DIR)
        recs = Records(cfg_state)
        found = recs.find(req.container_id, req.ifname)
        for rec in found:
            self.restore(rec, req)
        ipam = req.config.get("ipam")
        if not found and isinstance(ipam, dict) and isinstance(ipam.get("type"), str):
            # no record (ADD never got that far, or a second DEL): IPAM DEL is idempotent and
            # releases an address an interrupted ADD may have reserved
            try:
                invoke.delegate(ipam["type"], "DEL", dict(req.config), req)
            except CNIError as e:
                if e.code != DELEGATE_NOT_FOUND:   # a missing IPAM plugin holds nothing
                    raise
                _log.warning("IPAM DEL skipped: %s", e)

    def check(self, req: Request) -> None:
        cfg = config.load(req.config)
        recs = Records(cfg.state_dir).find(req.container_id, req.ifname)
        if not recs or recs[0].get("state") != "ready":
            raise CNIError(DEVICE_NOT_FOUND, f"no attachment {req.ifname} for container {req.container_id[:12]}")
        rec = recs[0]
        st = netdev.lookup(req.ifname, req.netns)
        if st is None:
            raise CNIError(DEVICE_NOT_FOUND, f"interface {req.ifname} is missing in {req.netns}")
        if st["mac"] != rec.get("mac"):
            raise CNIError(VF_CONFIG_FAILED, f"{req.ifname} has MAC {st['mac']}, expected {rec.get('mac')}")
        if rec["vf"] is not None:
            with Device(cfg.sysfs_root, cfg.backend).table(rec["pf"]) as t:
                now = t.get(rec["vf"]).to_dict()
            for k, want in cfg.pf_settings().items():
                if now.get(k) != want:
                    raise CNIError(VF_CONFIG_FAILED, f"VF {rec['vf']} of {rec['pf']}: {k} is {now.get(k)!r}, "
                                   f"expected {want!r}")
        if cfg.ipam:
            invoke.delegate(cfg.ipam["type"], "CHECK", dict(req.config), req)

    def gc(self, req: Request) -> None:
        valid = req.config.get("cni.dev/valid-attachments")
        if not isinstance(valid, list):
            raise config_error("cni.dev/valid-attachments", "GC needs the list of valid attachments")
        keep = {(a.get("containerID"), a.get("ifname")) for a in valid if isinstance(a, dict)}
        recs = Records(req.config.get("stateDir", config.DEFAULT_STATE_DIR))
        for rec in recs.all():
            if rec.get("network") == req.name and (rec.get("containerID"), rec.get("ifname")) not in keep:
                self.restore(rec, req)
        ipam = req.config.get("ipam")
        if isinstance(ipam, dict) and isinstance(ipam.get("type"), str):
            invoke.delegate(ipam["type"], "GC", dict(req.config), req)

    def status(self, req: Request) -> None:
        cfg = config.load(req.config)
        if cfg.master:
            Device(cfg.sysfs_root, cfg.backend).require_pf(cfg.master)


def _pod_uid(req) -> str | None:
    """The pod's UID from CNI_ARGS (kubelet via CRI, Multus and netmeta pass K8S_POD_UID): node
    availability names the pods holding VFs with it, so the scheduler extender can tell which
    of the pods it placed the published count already includes."""
    uid = req.args.get("K8S_POD_UID")
    return uid if isinstance(uid, str) and 0 < len(uid) <= 128 and uid.isprintable() else None
