"""`netmeta status` and `netmeta gc`: the operator's view of the node, from the same files the
plugins and the daemon use (daemon config for the PFs, VF records, DEL caches, node status).

  netmeta status [--config DAEMON_CONFIG] [-o json]
  netmeta gc [--config DAEMON_CONFIG]

Without --config both read the daemon's config where the shipped DaemonSet puts it
(DEFAULT_CONFIG, or $NETMETA_DAEMON_CONFIG), and say so on stderr when there is none (then the
built-in defaults apply).
"""
import argparse
import json
import os
import sys
import time

from cni import files
from cni.errors import CNIError
from meta import cache

from . import config as daemonconfig


def _pods_by_container(cni_dir: str) -> dict:
    out = {}
    for cid, _ifname, entry in cache.entries(cni_dir):
        if entry:
            pod = entry.get("pod") or {}
            out[cid] = f"{pod.get('namespace') or '-'}/{pod.get('name') or '-'}"
    return out


def collect(cfg: daemonconfig.DaemonConfig) -> dict:
    from delegates.sriov.availability import pf_count
    from delegates.sriov.device import Device
    from delegates.sriov.records import Records
    pods = _pods_by_container(cfg.cni_dir)
    pfs = []
    for pf in cfg.pfs:
        root, backend = pf.get("sysfsRoot", "/sys"), pf.get("backend", "netlink")
        state = pf.get("stateDir", "/var/lib/cni/netmeta/sriov")
        entry = {"pf": pf["master"], "vfs": []}
        try:
            # records that are damaged, set aside, or of VFs that vanished: why a VF is not where a record says
            entry["recordProblems"] = [dict({k: a[k] for k in ("file", "kind", "vf", "why")}, setAside=a["ns"] > 0)
                                       for a in Records(state).report(pf["master"])]
            count = pf_count(pf["master"], root, backend, state)
            entry.update(count.to_dict())
            recs = {r["vf"]: r for r in Records(state).of_pf(pf["master"])}
            entry["pfRecord"] = recs.pop(None, None)
            dev = Device(root, backend)
            from delegates.sriov import reserved
            kubelet = reserved.load(state)
            if not count.pf_attached:
                with dev.table(pf["master"]) as t:
                    table = t.get_all()
                for info in dev.topo.vfs(pf["master"]):
                    rec = recs.get(info.index) or {}
                    st = table[info.index].to_dict() if info.index < len(table) else {}
                    entry["vfs"].append({
                        "vf": info.index, "pci": info.pci, "hostName": info.netdev,
                        "container": (rec.get("containerID") or "")[:12] or None,
                        "pod": pods.get(rec.get("containerID")), "ifname": rec.get("ifname"),
                        "network": rec.get("network"), "mac": st.get("mac"), "vlan": st.get("vlan"),
                        "qos": st.get("qos"), "maxTxRate": st.get("max_tx_rate"), "minTxRate": st.get("min_tx_rate"),
                        "spoofchk": st.get("spoofchk"), "trust": st.get("trust"),
                        "driver": dev.userspace_driver(pf["master"], info.index), "devicePlugin": info.pci in kubelet})
        except CNIError as e:
            entry["error"] = str(e)
        pfs.append(entry)
    free = sum(p.get("free", 0) for p in pfs)
    node = {"name": cfg.node_name, "vfCount": free, "freeVFAvailable": free > 0}
    if cfg.status_file:
        try:
            node["published"] = files.read_json(cfg.status_file)
        except (CNIError, OSError, ValueError):
            node["published"] = None
    from meta import ipamgc
    fixipam = ipamgc.report([e for _, _, e in cache.entries(cfg.cni_dir)])
    return {"node": node, "pfs": pfs, "fixipam": fixipam}


_ASIDE = {"damaged": "unusable (a VF it names is reclaimed once back in the host, or by the DEL that finds it in its pod)",
          "reclaimed": "its VF was reclaimed", "vanished": "its VF no longer exists, the record was released"}


def render(st: dict) -> str:
    n = st["node"]
    lines = [f"node {n['name'] or '-'}: {n['vfCount']} free VF(s); label sriov/freeVFAvailable="
             f"{'true' if n['freeVFAvailable'] else '(absent)'}"]
    for f in st.get("fixipam", ()):
        lines.append(f"fixipam network {f['network']}: DAMAGED reservation(s) of {', '.join(f['damaged'])} "
                     f"quarantined in {f['dataDir']}/{f['network']}/.quarantine (held until `netmeta gc`)")
    for pf in st["pfs"]:
        for a in pf.get("recordProblems", []):
            state = "set aside" if a["setAside"] else "NOT YET SET ASIDE"
            lines.append(f"\nPF {pf['pf']}: record {a['file']} {state} ({a['kind']}"
                         f"{', VF %s' % a['vf'] if a['vf'] is not None else ''}): {_ASIDE[a['kind']]}"
                         f"{': ' + a['why'] if a['why'] else ''}")
        if "error" in pf:
            lines.append(f"\nPF {pf['pf']}: ERROR {pf['error']}")
            continue
        if pf.get("pfAttached"):
            rec = pf.get("pfRecord") or {}
            lines.append(f"\nPF {pf['pf']}: attached whole (pfOnly) to container {str(rec.get('containerID'))[:12]} "
                         f"as {rec.get('ifname')}")
            continue
        lines.append(f"\nPF {pf['pf']}: {pf['free']} free of {pf['total']}")
        lines.append(f"  {'VF':>3} {'PCI':13} {'host name':15} {'pod':24} {'if':6} {'VLAN':>5} {'QoS':>3} "
                     f"{'rate':>6} MAC")
        for v in pf["vfs"]:
            where = v["hostName"] or (f"({v['driver']})" if v.get("driver") else "(in pod)")
            who = v["pod"] or v["container"] or ("(device plugin)" if v.get("devicePlugin") else "-")
            lines.append(f"  {v['vf']:>3} {v['pci']:13} {where:15} {who:24} "
                         f"{v['ifname'] or '-':6} {v['vlan'] or '-':>5} {v['qos'] or '-':>3} "
                         f"{v['maxTxRate'] or '-':>6} {v['mac']}")
    return "\n".join(lines)


DEFAULT_CONFIG = "/etc/netmeta/daemon.yaml"   # conf/daemonset.yaml: netmeta daemon --config


def _config_path(prog: str, given: str | None) -> str | None:
    if given:
        return given
    default = os.environ.get("NETMETA_DAEMON_CONFIG") or DEFAULT_CONFIG
    if os.path.exists(default):
        return default
    print(f"{prog}: no daemon config at {default} (the default) and no --config: using the built-in "
          "defaults (no PFs, DEL caches in the default cniDir)", file=sys.stderr)
    return None


def status_main(argv: list) -> int:
    ap = argparse.ArgumentParser(prog="netmeta status")
    ap.add_argument("--config", help="the daemon's config file (PFs, cniDir, statusFile)")
    ap.add_argument("-o", "--output", choices=("table", "json"), default="table")
    a = ap.parse_args(argv)
    try:
        st = collect(daemonconfig.load(_config_path("netmeta status", a.config)))
    except (CNIError, OSError) as e:
        print(f"netmeta status: {e}", file=sys.stderr)
        return 1
    print(json.dumps(st, indent=2) if a.output == "json" else render(st))
    return 0


def gc_main(argv: list) -> int:
    ap = argparse.ArgumentParser(prog="netmeta gc")
    ap.add_argument("--config", help="the daemon's config file")
    a = ap.parse_args(argv)
    from cni import log
    log.setup()
    from .server import Daemon
    try:
        cfg = daemonconfig.load(_config_path("netmeta gc", a.config))
    except (CNIError, OSError) as e:
        print(f"netmeta gc: {e}", file=sys.stderr)
        return 1
    d = Daemon(cfg)
    started = time.time()
    before = [e for _, _, e in cache.entries(cfg.cni_dir)]
    d.reconcile()   # the daemon's start-up reconcile, run once now (no server, no threads)
    _gc_fixipam(cfg, before, started)
    return 0


def _gc_fixipam(cfg: daemonconfig.DaemonConfig, seen: list, started: float) -> None:
    """Reservations of the fixipam networks the caches name whose owner is no live attachment
    on this node: after the reconcile every remaining DEL cache is live, and so is every VF
    record (stand-alone sriov + fixipam pods have no DEL cache of ours)."""
    from delegates.sriov.records import Records
    from meta import ipamgc
    remaining = list(cache.entries(cfg.cni_dir))   # corrupt ones too: their pods may be live
    live = [e for _, _, e in remaining]
    keep = ipamgc.owners(live)
    containers = {cid for cid, _, _ in remaining}
    for pf in cfg.pfs:
        try:
            recs = Records(pf.get("stateDir", "/var/lib/cni/netmeta/sriov")).all()
        except (CNIError, OSError) as e:   # cannot tell who is live: release nothing
            print(f"netmeta gc: fixipam not collected: VF records of {pf['master']}: {e}", file=sys.stderr)
            return
        keep.update((r.get("containerID"), r.get("ifname")) for r in recs)
    for network, gone in ipamgc.collect(ipamgc.networks(seen + live), keep, started, containers).items():
        print(f"netmeta gc: released {', '.join(gone)} on {network}", file=sys.stderr)
