"""The daemon's view of the kubelet's device plugins, for coexistence: every VF of a managed PF
that a device plugin registered (PodResources GetAllocatableResources), that the kubelet
allocated to some pod (List), or that the daemon config puts in a device-plugin pool
(`pfs[].devicePluginVFs`) is written to the PF's `<stateDir>/kubelet-devices.json`
(delegates/sriov/reserved.py): sriov's own allocator skips those VFs and node availability
does not count them. Refreshed at start-up and every reconcile period; a kubelet that does not
answer leaves the last view in place (safer than handing its VFs out)."""
import threading
import time
from collections.abc import Iterable

from cni import log
from cni.errors import CNIError
from meta import podresources

_log = log.get("devicesync")


class DeviceSync:
    def __init__(self, pfs: Iterable[dict], socket: str, period: float, notify=None):
        self.pfs, self.socket, self.period, self.notify = list(pfs), socket, period, notify
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def kubelet_devices(self) -> set | None:
        import os
        if not os.path.exists(self.socket):
            return set()
        from meta.podresources import client
        out = set()
        try:
            for res in podresources.all_devices(self.socket).values():
                for ids in res.values():
                    out.update(ids)
            out.update(d for ids in client.allocatable(self.socket, 10.0).values() for d in ids)
        except CNIError as e:
            _log.warning("kubelet PodResources not answering (%s): keeping the last device view", e)
            return None
        return out

    def sync_once(self) -> bool:
        from delegates.sriov import reserved
        from delegates.sriov.topology import Topology
        kubelet = self.kubelet_devices()
        if kubelet is None:
            return False
        by_dir: dict = {}
        for pf in self.pfs:
            state_dir = pf.get("stateDir", "/var/lib/cni/netmeta/sriov")
            want = by_dir.setdefault(state_dir, set())
            try:
                vfs = Topology(pf.get("sysfsRoot", "/sys")).vfs(pf["master"])
            except Exception as e:   # a PF gone for now: its pool cannot be resolved
                _log.warning("device sync: cannot read the VFs of %s: %s", pf["master"], e)
                continue
            pool = set(pf.get("devicePluginVFs") or ())
            want.update(v.pci for v in vfs if v.pci in kubelet or v.index in pool)
        changed = False
        for state_dir, devices in by_dir.items():
            if reserved.store(state_dir, devices, time.time()):
                _log.info("device plugin owns %d VF(s) under %s", len(devices), state_dir)
                changed = True
        if changed and self.notify:
            self.notify()
        return changed

    def start(self) -> "DeviceSync":
        self.sync_once()
        self._thread = threading.Thread(target=self._loop, name="devicesync", daemon=True)
        self._thread.start()
        return self

    def _loop(self) -> None:
        while not self._stop.wait(self.period):
            try:
                self.sync_once()
            except Exception as e:   # never let the loop die
                _log.error("device sync failed: %s", e)

    def stop(self) -> None:
        self._stop.set()
