"""sriov: attach a VF (or, with pfOnly, the whole PF) to a pod and put everything back on DEL.

ADD = select + record (under the node lock) -> PF-side settings -> move the netdev into the
pod netns under a temporary name -> rename, MAC, MTU, up -> IPAM -> addresses, routes ->
announce. The record, written before anything changes, holds the original state; the undo of
a failed ADD, DEL, GC and the reclaim of a stale record are all the same `restore(record)`,
which undoes only the allocation the record names (its owner token), under the node lock.
"""
import contextlib
import os
import time

from cni import fault, invoke, log
from cni.errors import (
    DELEGATE_NOT_FOUND,
    DEVICE_BUSY,
    DEVICE_NOT_FOUND,
    NO_FREE_VF,
    UNKNOWN_CONTAINER,
    VF_CONFIG_FAILED,
    CNIError,
    config_error,
)
from cni.plugin import Plugin
from cni.request import Request
from cni.result import IPConfig, Result
from delegates import registry

from . import availability, callargs, config, damaged, devinfo, garp, netdev, owner, reserved
from .device import Device
from .records import Records, netns_alive, same
from .topology import TopologyError
from .vftable import VFState

_log = log.get("sriov")


def _pf_pci(dev: Device, pf: str) -> str | None:
    try:
        return dev.topo.pf_pci(pf)
    except Exception:   # only for the device-info file: never fail an attached VF for it
        return None


def is_stale(rec: dict, state_dir: str) -> bool:
    """A record nobody will finish: its ADD finished and the pod netns is gone, or the ADD that
    wrote it no longer runs (its owner token is not held). A running ADD is never judged dead,
    whatever PID namespace it runs in; if its netns went away, it fails and undoes itself."""
    token = (rec.get("owner") or {}).get("token")
    if rec.get("state") == "ready" or token is None:   # (no token: a record from before tokens)
        return not netns_alive(rec)
    return not owner.alive(state_dir, token)


def _must_sync(rec: dict) -> bool:
    """Whether an ADD's record write is fsync'd (files.atomic_write durable). Not for a VF with
    a netdev: its two writes per ADD then cost no fsync (four, under the node lock for the
    first). Readers always see a whole record (rename is atomic), and a killed process loses
    nothing (the page cache has the file); only a power loss or kernel crash can lose a write,
    and then nothing the record describes survives either: the pod netns are gone (tmpfs and
    kernel state), the VF netdev is back in the host, the NIC's VF table is reset by the
    driver when sriov_numvfs is set again. So on disk there is: no record (the VF is free,
    which it is), the "allocated" one (owner token dead: stale, restored), the "ready" one
    (netns gone: stale, restored), or on some file systems an empty file, which is set aside
    as damaged and the VF reclaimed once it is back in the host (damaged.reclaim_returned);
    DEL's unlink was never fsync'd either. A PF (pfOnly) or a userspace-driver VF has no
    netdev that proves it is back, so a damaged record would keep it: those stay durable."""
    return rec.get("vf") is None or rec.get("userspace") is not None


class SRIOVPlugin(Plugin):
    type_name = "sriov"

    def __init__(self, services: registry.Services = registry.STANDALONE):
        """`services`: what the process lends its plugins (the node daemon's pod getter; the
        delegates it runs in-process: delegates/registry.py Services)."""
        self.services = services

    # ---------------- ADD ----------------
    def add(self, req: Request) -> Result:
        cfg = config.load(callargs.effective(req.config, req.args, self.services.pod_lookup))
        if not netdev.netns_exists(req.netns):
            raise CNIError(UNKNOWN_CONTAINER, f"failed to open netns {req.netns}", "it does not exist")
        dev = Device(cfg.sysfs_root, cfg.backend)
        recs = Records(cfg.state_dir)
        # a previous ADD for this attachment that never got its DEL is undone first
        for old in recs.find(req.container_id, req.ifname):
            self.restore(old, req)
        with owner.Operation(cfg.state_dir) as op:   # held until the ADD is done or undone
            with recs.lock():
                pf, vf, host_name = self._select(cfg, dev, recs, req)
                rec = self._record(cfg, dev, req, pf, vf, op.token, host_name)
                recs.write(rec, durable=_must_sync(rec))
            try:
                self._step("sriov.add.recorded", recs, rec)
                result = self._attach(cfg, dev, rec, req, recs)
            except BaseException:
                self._undo(rec, req)
                raise
        _log.info("attached %s %s to %s as %s", pf, "PF" if vf is None else f"VF {vf}",
                  req.netns, req.ifname)
        availability.pf_used(pf, cfg.sysfs_root, cfg.backend, cfg.state_dir)
        return result

    def _select(self, cfg, dev: Device, recs: Records, req) -> tuple:
        """(PF, VF index or None for the PF itself, the VF's netdev in the host or None). The
        netdev name is the one the free-VF test read, handed to _record under the same node
        lock: the topology is read once per VF (on the simulated NIC each read refreshes the
        fake sysfs, the longest step under the lock in a burst of ADDs)."""
        if cfg.device_id:
            pf, vf = dev.locate(cfg.device_id, cfg.master)
        else:
            pf = cfg.master
            dev.require_pf(pf)
            vf = cfg.vf
        # Records are read BEFORE the VFs' netdevs are looked at: a DEL renames its VF back and
        # only then drops its record, so a VF whose record is gone is already back under its
        # own name; one freed after this read just looks taken.
        taken = {r["vf"]: r for r in self._reclaim(recs, pf, dev)[1]}
        if cfg.pf_only:
            if netdev.lookup(pf) is None:
                raise CNIError(DEVICE_BUSY, f"PF {pf} is not in the host network namespace")
            if taken:
                first = next(iter(taken.values()))
                raise CNIError(DEVICE_BUSY, f"PF {pf} is in use",
                               f"{len(taken)} allocation(s) on it, e.g. container {str(first.get('containerID', '?'))[:12]}")
            return pf, None, None
        if None in taken:
            raise CNIError(DEVICE_BUSY, f"PF {pf} is attached to a pod (pfOnly)")
        numvfs = dev.topo.numvfs(pf)
        if vf is not None:
            if vf >= numvfs:
                raise config_error("vf", f"VF {vf} does not exist: {pf} has {numvfs} VFs enabled")
            if vf in taken:
                raise CNIError(DEVICE_BUSY, f"VF {vf} of {pf} is allocated",
                               f"to container {str(taken[vf].get('containerID'))[:12]}")
            name = dev.topo.vf_netdev(pf, vf)
            if name is None and dev.userspace_driver(pf, vf) is None:
                raise CNIError(DEVICE_BUSY, f"VF {vf} of {pf} has no netdev in the host network namespace")
            return pf, vf, name
        kubelet = reserved.load(cfg.state_dir)   # the device plugin's VFs are never ours to hand out
        for n in range(numvfs):   # sysfs is read only for VFs that are free by the records
            if n in taken or n in cfg.exclude_vfs:
                continue
            name = dev.topo.vf_netdev(pf, n)
            if name and not (kubelet and dev.topo.vf_pci(pf, n) in kubelet):
                return pf, n, name
        raise CNIError(NO_FREE_VF, f"no free VF on {pf}",
                       f"{len(taken)} of {numvfs} VFs allocated, {len(cfg.exclude_vfs)} excluded"
                       + (f", {len(kubelet)} device(s) the kubelet's device plugin owns" if kubelet else ""))

    def _undo(self, rec: dict, req) -> None:
        """A failed ADD's rollback: its own record only. When the record is no longer ours (a
        DEL or reclaim undid this ADD while it was stopped, and another pod may have the VF
        now), only our own IP reservation is released."""
        _log.warning("ADD of %s/%s failed: restoring %s", rec["pf"], rec["vf"], rec["ifname"])
        try:
            if not self.restore(rec, req) and rec.get("ipam"):
                self._ipam_del(rec, req)
        except Exception as e:   # the ADD's own error is the one reported
            _log.error("rollback of %s/%s: %s", rec["pf"], rec["vf"], e)

    @staticmethod
    def _step(point: str, recs: Records, rec: dict) -> None:
        """Between ADD steps: the record must still be ours, else a DEL or reclaim has undone
        this ADD (while it was stopped) and the device may be another pod's now."""
        fault.point(point)
        cur = recs.read(rec["pf"], rec["vf"])
        if not same(cur, rec):
            raise CNIError(DEVICE_BUSY, f"{rec['pf']} {'PF' if rec['vf'] is None else 'VF %s' % rec['vf']} "
                           "was taken from this ADD",
                           f"its record now belongs to container {str(cur.get('containerID'))[:12]}" if cur
                           else "its record was removed (a DEL or reclaim undid this ADD)")

    def _record(self, cfg, dev: Device, req, pf: str, vf, token: str, vf_netdev: str | None) -> dict:
        """`vf_netdev`: the VF's netdev in the host as _select found it (same node lock)."""
        userspace = None
        host_name: str | None
        if vf is None:
            host_name, table = pf, None
        else:
            host_name = vf_netdev
            userspace = None if host_name else dev.userspace_driver(pf, vf)
            with dev.table(pf) as t:
                table = t.get(vf).to_dict()
        if userspace:   # DPDK: no netdev to save or move, only the PF table
            state = None
        else:
            state = netdev.lookup(host_name) if host_name is not None else None   # (no netdev, no driver)
            if state is None:
                raise CNIError(DEVICE_NOT_FOUND, f"failed to find netdev {host_name} of {pf}")
        return {"containerID": req.container_id, "ifname": req.ifname, "netns": req.netns,
                "network": cfg.name, "pf": pf, "vf": vf, "podUID": _pod_uid(req),
                "pci": dev.topo.vf_pci(pf, vf) if vf is not None else dev.topo.pf_pci(pf),
                "state": "allocated", "created": time.time(),
                "owner": {"token": token, "netns": owner.netns_identity(req.netns), "containerID": req.container_id},
                "tmpName": f"nmv{os.urandom(4).hex()}",
                "saved": {"table": table, "netdev": state and {k: state[k] for k in ("name", "mac", "mtu", "up")}},
                "userspace": userspace,
                "sysfsRoot": cfg.sysfs_root, "backend": cfg.backend, "stateDir": cfg.state_dir,
                "ipam": cfg.ipam, "cniVersion": req.cni_version, "cniPath": req.path}

    def _attach(self, cfg, dev: Device, rec: dict, req, recs: Records) -> Result:
        pf, vf = rec["pf"], rec["vf"]
        if vf is not None and cfg.pf_settings():
            with dev.table(pf) as t:
                t.set(vf, **cfg.pf_settings())
        self._step("sriov.add.pf-set", recs, rec)
        if rec.get("userspace"):
            return self._attach_userspace(cfg, dev, rec, req, recs)
        netdev.move(rec["saved"]["netdev"]["name"], req.netns, rec["tmpName"])
        self._step("sriov.add.moved", recs, rec)
        # the PF-table MAC (set above) is what the switch enforces; the netdev gets the same one
        state = netdev.setup(rec["tmpName"], req.netns, new_name=req.ifname, mac=cfg.mac, mtu=cfg.mtu, up=True)
        self._step("sriov.add.configured", recs, rec)
        res = Result(cni_version=req.cni_version)
        idx = res.add_interface(req.ifname, state["mac"], req.netns, pciID=rec["pci"], mtu=state["mtu"])
        if self._ipam_add(cfg, req, recs, rec, res, idx):
            netdev.configure_ips(req.netns, req.ifname, res)
            garp.announce(req.netns, req.ifname, state["mac"], [c.address for c in res.ips])
        self._step("sriov.add.addressed", recs, rec)
        rec.update(state="ready", mac=state["mac"])
        with recs.lock():   # every record write holds the lock (see Records.of_pf)
            self._step("sriov.add.ready", recs, rec)
            recs.write(rec, durable=_must_sync(rec))   # see _must_sync
        devinfo.write(req.config.get("runtimeConfig"), rec["pci"], _pf_pci(dev, pf), None)
        return res

    def _ipam_add(self, cfg, req, recs: Records, rec: dict, res: Result, idx: int) -> bool:
        """Run the configured IPAM plugin's ADD and put its addresses, routes and DNS on interface
        `idx` of `res`. False when the network has no IPAM."""
        if not cfg.ipam:
            return False
        ipam_res = invoke.delegate(cfg.ipam["type"], "ADD", self._ipam_conf(req.config), req, own=self.services.own)
        assert ipam_res is not None     # an ADD always returns a result
        self._step("sriov.add.ipam", recs, rec)
        res.ips = [IPConfig(c.address, c.gateway, idx) for c in ipam_res.ips]
        res.routes, res.dns = ipam_res.routes, ipam_res.dns
        return True

    def _attach_userspace(self, cfg, dev: Device, rec: dict, req, recs: Records) -> Result:
        """A VF bound to a userspace driver (DPDK): the PF-side settings (done), IPAM if
        configured, no netdev; the result names the interface in the sandbox with the VF's
        PCI address and admin MAC, like sriov-cni v2.8 in DPDKMode (cmd/sriov cmdAdd,
        config.GetMacAddressForResult)."""
        with dev.table(rec["pf"]) as t:
            mac = t.get(rec["vf"]).mac
        mac = cfg.mac or (mac if mac and mac != "00:00:00:00:00:00" else "")
        res = Result(cni_version=req.cni_version)
        idx = res.add_interface(req.ifname, mac, req.netns, pciID=rec["pci"])
        self._ipam_add(cfg, req, recs, rec, res, idx)
        rec.update(state="ready", mac=None)
        with recs.lock():   # every record write holds the lock (see Records.of_pf)
            self._step("sriov.add.ready", recs, rec)
            recs.write(rec)
        devinfo.write(req.config.get("runtimeConfig"), rec["pci"], _pf_pci(dev, rec["pf"]), rec["userspace"])
        _log.info("VF %s of %s is bound to %s: PF-side settings only, no netdev moved",
                  rec["vf"], rec["pf"], rec["userspace"])
        return res

    @staticmethod
    def _ipam_conf(conf: dict) -> dict:
        # the IPAM plugin gets the whole netconf, as libcni gives it to the main plugin
        return dict(conf)

    # ---------------- restore (undo / DEL / GC / reclaim) ----------------
    def restore(self, rec: dict, req: Request | None = None, locked: bool = False) -> bool:
        """Undo the allocation `rec` names, under the node lock (`locked`: the caller holds it).
        The record is read again under the lock and only that very allocation is undone, so
        two processes restoring one record after a crash do it once, and a record that now
        belongs to another pod is never touched. False when there was nothing of ours to undo."""
        recs = Records(rec.get("stateDir", config.DEFAULT_STATE_DIR))
        with contextlib.nullcontext() if locked else recs.lock():
            cur = recs.read(rec["pf"], rec["vf"], fix=True)
            if cur is None or not same(cur, rec):
                _log.info("%s %s: record of %s already undone or taken over, nothing to restore",
                          rec["pf"], rec["vf"], str(rec.get("containerID"))[:12])
                return False
            self._restore(cur, req, recs)
            return True

    def _restore(self, rec: dict, req: Request | None, recs: Records) -> None:
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
        gone = self._vanished(dev, pf, vf)
        if gone:   # the NIC came back with fewer VFs: nothing left to put back
            recs.set_aside(pf, f"vf{vf}.json", "vanished", gone)
            return
        if saved.get("netdev") is not None:   # a userspace-driver VF has none: PF table only
            self._restore_netdev(dev, rec)
        fault.point("sriov.del.netdev-restored")
        if vf is not None and saved.get("table"):
            with dev.table(pf) as t:
                t.set(vf, **VFState.from_dict(saved["table"]).to_dict())
        fault.point("sriov.del.table-restored")
        recs.remove(pf, vf)
        owner.alive(recs.dir, (rec.get("owner") or {}).get("token"))   # a dead owner's lock file goes
        _log.info("restored %s %s (was %s in %s)", pf, "PF" if vf is None else f"VF {vf}",
                  rec["ifname"], rec.get("netns"))
        if ipam_error is not None and ipam_error.code != DELEGATE_NOT_FOUND:
            raise ipam_error   # the runtime retries DEL: the IPAM release is tried again

    def _restore_netdev(self, dev: Device, rec: dict) -> None:
        pf, vf, saved = rec["pf"], rec["vf"], rec["saved"]
        orig = saved["netdev"]["name"]
        ns = rec.get("netns")
        host_name = None
        if netns_alive(rec):
            assert ns       # netns_alive() found it
            for name in (rec["ifname"], rec["tmpName"]):
                if self._is_ours(netdev.lookup(name, ns), rec):
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

    @staticmethod
    def _vanished(dev: Device, pf: str, vf) -> str | None:
        """Why VF `vf` no longer exists (sriov_numvfs went down), or None."""
        if vf is None:
            return None
        try:
            n = dev.topo.numvfs(pf)
        except TopologyError:
            return None   # no PF here (e.g. moved away): not proof that the VF is gone
        return f"VF {vf} no longer exists: {pf} has {n} VF(s) now" if vf >= n else None

    @staticmethod
    def _is_ours(st: dict | None, rec: dict) -> bool:
        """`st`: the netdev found in the pod under the record's name (netdev.lookup), or None."""
        if st is None:
            return False
        if rec.get("mac") is None:
            return True  # ADD died before it knew the MAC: the temp/if name is the evidence
        return st["mac"] == rec["mac"]

    @staticmethod
    def _host_name(dev: Device, rec: dict) -> str | None:
        """Where the device is in the host when it did not come back from the pod through us:
        under the temp name (ADD died mid-move back), where the kernel put it when its netns
        vanished (sysfs knows; the sim emulates), or never moved (its own name)."""
        if netdev.lookup(rec["tmpName"]) is not None:
            return rec["tmpName"]
        if rec["vf"] is not None:
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
        invoke.delegate(rec["ipam"]["type"], "DEL", conf, sub, own=self.services.own)

    def _reclaim_stale(self, recs: Records, pf: str, dev: Device | None = None) -> int:
        return self._reclaim(recs, pf, dev)[0]

    def _reclaim(self, recs: Records, pf: str, dev: Device | None = None) -> tuple[int, list]:
        """Restore the stale records of `pf` (caller holds the node lock); returns how many,
        and the records still standing (one read of the directory serves both). Damaged
        records are set aside on the way; with `dev`, VFs whose record was damaged are
        reclaimed once they are back in the host."""
        n, kept = 0, []
        for rec in recs.of_pf(pf, fix=True):
            if is_stale(rec, recs.dir):
                _log.info("reclaiming stale record %s %s of %s", pf, rec.get("vf"), rec.get("containerID"))
                try:
                    self.restore(rec, None, locked=True)
                    n += 1
                    continue
                except Exception as e:   # one record that cannot be undone must not block the PF
                    _log.warning("could not reclaim %s VF %s yet: %s", pf, rec.get("vf"), e)
            kept.append(rec)
        if dev is not None:
            try:
                damaged.reclaim_returned(recs, dev, pf, {r["vf"] for r in kept})
            except Exception as e:   # nor may a VF whose record was damaged
                _log.warning("could not reclaim VFs of %s with damaged records yet: %s", pf, e)
        return n, kept

    # ---------------- DEL / CHECK / GC / STATUS ----------------
    def delete(self, req: Request) -> None:
        cfg_state = req.config.get("stateDir", config.DEFAULT_STATE_DIR)
        recs = Records(cfg_state)
        with recs.lock():
            found = recs.find(req.container_id, req.ifname, fix=True)
            if not found:   # a VF whose record was damaged may still be in this pod
                damaged.reclaim_from_pod(recs, req)
        for rec in found:
            self.restore(rec, req)
        ipam = req.config.get("ipam")
        if not found and isinstance(ipam, dict) and isinstance(ipam.get("type"), str):
            # no record (ADD never got that far, or a second DEL): IPAM DEL is idempotent and
            # releases an address an interrupted ADD may have reserved
            try:
                invoke.delegate(ipam["type"], "DEL", dict(req.config), req, own=self.services.own)
            except CNIError as e:
                if e.code != DELEGATE_NOT_FOUND:   # a missing IPAM plugin holds nothing
                    raise
                _log.warning("IPAM DEL skipped: %s", e)

    def check(self, req: Request) -> None:
        cfg = config.load(callargs.effective(req.config, req.args, self.services.pod_lookup))
        recs = Records(cfg.state_dir).find(req.container_id, req.ifname)
        if not recs or recs[0].get("state") != "ready":
            raise CNIError(DEVICE_NOT_FOUND, f"no attachment {req.ifname} for container {req.container_id[:12]}")
        rec = recs[0]
        if not rec.get("userspace"):   # a userspace VF has no netdev: its PF table is all there is
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
            invoke.delegate(cfg.ipam["type"], "CHECK", dict(req.config), req, own=self.services.own)

    def gc(self, req: Request) -> None:
        valid = req.config.get("cni.dev/valid-attachments")
        if not isinstance(valid, list):
            raise config_error("cni.dev/valid-attachments", "GC needs the list of valid attachments")
        keep = {(a.get("containerID"), a.get("ifname")) for a in valid if isinstance(a, dict)}
        recs = Records(req.config.get("stateDir", config.DEFAULT_STATE_DIR))
        with recs.lock():
            gone = [r for r in recs.all(fix=True)
                    if r.get("network") == req.name and (r.get("containerID"), r.get("ifname")) not in keep]
            damaged.reclaim_all(recs, req.config)
        for rec in gone:
            self.restore(rec, req)
        ipam = req.config.get("ipam")
        if isinstance(ipam, dict) and isinstance(ipam.get("type"), str):
            invoke.delegate(ipam["type"], "GC", dict(req.config), req, own=self.services.own)

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
