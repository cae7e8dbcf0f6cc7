"""`netmeta daemon --config FILE` configuration (YAML or JSON), validated at start-up.

  socketPath: /run/netmeta/netmeta.sock   # root-only unix socket the shims talk to
  kubeconfig: /etc/netmeta/kubeconfig     # optional: Kubernetes-free mode without it
  nodeName: node1                         # default: $NODE_NAME
  cniDir: /var/lib/cni/netmeta/cache      # the meta plugin's DEL caches (start-up reconcile)
  pfs:                                    # managed PFs, counted for node VF availability
    - {master: ens1f0, sysfsRoot: /sys, backend: netlink, stateDir: /var/lib/cni/netmeta/sriov}
                                          # (optional: the PFs sriov calls use are counted too)
                                          # per PF, devicePluginVFs: [0, 1, 2, 3] = the VFs the SR-IOV
                                          # device plugin's pool holds: never netmeta's
  nodeSettings: /etc/netmeta/nodes/settings.yaml   # optional: per-node pfs/discoverPFs (see
                                          # meta/daemon/nodesettings.py; one ConfigMap for the cluster)
  discoverPFs:                            # optional: also count every SR-IOV PF found in sysfs
    {sysfsRoot: /sys, include: ["ens*"], exclude: ["ens9*"], backend: netlink, stateDir: ...}
  podResourcesSocket: /var/lib/kubelet/pod-resources/kubelet.sock   # kubelet devices (devicesync)
  maxConcurrency: 16                      # requests served at once; more wait their turn
  requestTimeout: 90                      # seconds; then the shim gets code 11 (try again); the
                                          # shim's own deadline (90 s, cni/shim.py) applies too
  maxWait: 30                             # seconds a request may wait for a worker, and for its
                                          # container's lock; then code 11
  httpAddr: 127.0.0.1:9641                # /healthz /readyz /metrics ("" = off)
  reconcilePeriod: 30                     # seconds between availability reconciles
  coalesceWindow: 0.2                     # seconds a burst of VF changes is merged into one PATCH
  minPublishInterval: 2.0                 # a count-only change waits this long after the last
                                          # PATCH (label changes never wait)
  statusFile: /run/netmeta/node-status.json   # Kubernetes-free: availability written here
  hostRoot: /hostroot                     # the host's / mounted into the daemon's container:
                                          # exec'd delegates run chrooted there (Multus thick's
                                          # `chrootDir`, accepted as an alias); our own plugins
                                          # run in the daemon. Unset or "/" = no chroot.
  fixipamGcPeriod: 60                     # seconds between GC passes of cluster-wide fixed-IP
                                          # reservations (delegates/fixipam/clustergc.py)
"""
import os
from dataclasses import dataclass
from typing import Any

from cni import hostroot
from cni.errors import config_error
from meta.config import DEFAULT_CNI_DIR, DEFAULT_PODRESOURCES, DEFAULT_SOCKET


@dataclass(frozen=True)
class DaemonConfig:
    socket_path: str = DEFAULT_SOCKET
    kubeconfig: str | None = None
    node_name: str | None = None
    cni_dir: str = DEFAULT_CNI_DIR
    pfs: tuple = ()
    max_concurrency: int = 16
    request_timeout: float = 90.0
    max_wait: float = 30.0
    http_addr: str = "127.0.0.1:9641"
    reconcile_period: float = 30.0
    coalesce_window: float = 0.2
    min_publish_interval: float = 2.0
    status_file: str | None = None
    host_root: str | None = None
    fixipam_gc_period: float = 60.0
    discover_pfs: dict | None = None
    node_settings: str | None = None
    podresources_socket: str = DEFAULT_PODRESOURCES


KEYS = {"socketPath", "kubeconfig", "nodeName", "cniDir", "pfs", "maxConcurrency", "requestTimeout", "maxWait",
        "httpAddr", "reconcilePeriod", "coalesceWindow", "minPublishInterval", "statusFile", "hostRoot",
        "chrootDir", "fixipamGcPeriod", "discoverPFs", "nodeSettings",
        "podResourcesSocket"}


def _num(d, key, lo, hi, default):
    v = d.get(key, default)
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not lo <= v <= hi:
        raise config_error(key, f"must be a number in [{lo}, {hi}]")
    return v


def load(path: str | None, overrides: dict | None = None) -> DaemonConfig:
    d: dict[str, Any] = {}
    if path:
        import yaml
        with open(path) as f:
            d = yaml.safe_load(f) or {}
        if not isinstance(d, dict):
            raise config_error("daemon config", "must be a mapping")
    d.update({k: v for k, v in (overrides or {}).items() if v is not None})
    unknown = set(d) - KEYS
    if unknown:
        raise config_error(sorted(unknown)[0], "unknown key in the daemon configuration")
    pfs = d.get("pfs", [])
    if not isinstance(pfs, list):
        raise config_error("pfs", "must be a list")
    for i, pf in enumerate(pfs):
        if not isinstance(pf, dict) or not isinstance(pf.get("master"), str):
            raise config_error(f"pfs[{i}]", "needs master (the PF netdev)")
        if set(pf) - {"master", "sysfsRoot", "backend", "stateDir", "devicePluginVFs"}:
            raise config_error(f"pfs[{i}]", "allowed keys: master, sysfsRoot, backend, stateDir, devicePluginVFs")
        pool = pf.get("devicePluginVFs", [])
        if not isinstance(pool, list) or not all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in pool):
            raise config_error(f"pfs[{i}].devicePluginVFs", "must be a list of VF indices")
    if "chrootDir" in d:   # Multus thick's name for it
        if d.get("hostRoot", d["chrootDir"]) != d["chrootDir"]:
            raise config_error("chrootDir", "is an alias of hostRoot: set one of them")
        d["hostRoot"] = d.pop("chrootDir")
    disc = d.get("discoverPFs")
    if disc is not None:
        if not isinstance(disc, dict) or set(disc) - {"sysfsRoot", "include", "exclude", "backend", "stateDir"}:
            raise config_error("discoverPFs", "a mapping of sysfsRoot, include, exclude, backend, stateDir")
        for k in ("include", "exclude"):
            if not isinstance(disc.get(k, []), list) or not all(isinstance(p, str) for p in disc.get(k, [])):
                raise config_error(f"discoverPFs.{k}", "must be a list of name globs")
        if disc.get("backend", "netlink") not in ("netlink", "sim"):
            raise config_error("discoverPFs.backend", "must be netlink or sim")
        for k in ("sysfsRoot", "stateDir"):
            if k in disc and (not isinstance(disc[k], str) or not disc[k].startswith("/")):
                raise config_error(f"discoverPFs.{k}", "must be an absolute path")
    for key in ("socketPath", "kubeconfig", "cniDir", "statusFile", "hostRoot", "nodeSettings", "podResourcesSocket"):
        v = d.get(key)
        if v is not None and (not isinstance(v, str) or not v.startswith("/")):
            raise config_error(key, "must be an absolute path")
    if d.get("hostRoot") not in (None, "/"):
        hostroot.validate(d["hostRoot"])   # refused at start-up, not at the first pod
    return DaemonConfig(
        socket_path=d.get("socketPath", DEFAULT_SOCKET), kubeconfig=d.get("kubeconfig"),
        node_name=d.get("nodeName") or os.environ.get("NODE_NAME"), cni_dir=d.get("cniDir", DEFAULT_CNI_DIR),
        pfs=tuple(dict(pf) for pf in pfs), max_concurrency=int(_num(d, "maxConcurrency", 1, 1024, 16)),
        request_timeout=float(_num(d, "requestTimeout", 1, 3600, 90)), max_wait=float(_num(d, "maxWait", 0, 3600, 30)),
        http_addr=str(d.get("httpAddr", "127.0.0.1:9641")),
        reconcile_period=float(_num(d, "reconcilePeriod", 0.1, 86400, 30)),
        coalesce_window=float(_num(d, "coalesceWindow", 0, 60, 0.2)),
        min_publish_interval=float(_num(d, "minPublishInterval", 0, 300, 2.0)), status_file=d.get("statusFile"),
        host_root=d.get("hostRoot"), fixipam_gc_period=float(_num(d, "fixipamGcPeriod", 0.1, 86400, 60)),
        discover_pfs=dict(disc) if disc is not None else None, node_settings=d.get("nodeSettings"),
        podresources_socket=d.get("podResourcesSocket", DEFAULT_PODRESOURCES))
