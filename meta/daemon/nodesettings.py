"""Per-node availability settings for a heterogeneous cluster: ONE file, typically a ConfigMap
mounted into every daemon pod (daemon key `nodeSettings: /etc/netmeta/nodes/settings.yaml`), with
sections keyed by node name or node label. The daemon adds the section that applies to its node
to its own `pfs` / `discoverPFs`:

  nodes:                                   # by node name: wins over any label section
    worker-7: {pfs: [{master: ens1f0}]}
  labels:                                  # "key=value" of a node label; first match in file order
    "netmeta.io/nic=cx6": {discoverPFs: {include: ["ens2f*"]}}

A section may hold `pfs` (added to the daemon's list) and `discoverPFs` (replaces the daemon's);
both are validated as the daemon config validates them."""
from cni import log
from cni.errors import config_error

from . import config as daemonconfig

_log = log.get("nodesettings")
SECTION_KEYS = {"pfs", "discoverPFs"}


def load(path: str) -> dict:
    import yaml
    try:
        with open(path) as f:
            doc = yaml.safe_load(f) or {}
    except (OSError, yaml.YAMLError) as e:
        raise config_error("nodeSettings", f"cannot read {path}: {str(e)[:200]}") from None
    if not isinstance(doc, dict) or set(doc) - {"nodes", "labels"}:
        raise config_error("nodeSettings", "a mapping with `nodes` and/or `labels`")
    for part in ("nodes", "labels"):
        sections = doc.get(part) or {}
        if not isinstance(sections, dict):
            raise config_error(f"nodeSettings.{part}", "must be a mapping")
        for key, sec in sections.items():
            if part == "labels" and (not isinstance(key, str) or "=" not in key):
                raise config_error(f"nodeSettings.labels.{key}", "keys are key=value of a node label")
            if not isinstance(sec, dict) or set(sec) - SECTION_KEYS:
                raise config_error(f"nodeSettings.{part}.{key}", "a section holds pfs and/or discoverPFs")
            daemonconfig.load(None, dict(sec))   # same rules as the daemon's own keys
    return doc


def section(doc: dict, node_name: str | None, labels: dict | None) -> tuple[str, dict]:
    """(which section applied, its settings) for this node; ("", {}) when none does."""
    nodes = doc.get("nodes") or {}
    if node_name and node_name in nodes:
        return f"nodes.{node_name}", nodes[node_name]
    for key, sec in (doc.get("labels") or {}).items():
        k, _, v = key.partition("=")
        if (labels or {}).get(k) == v:
            return f"labels.{key}", sec
    return "", {}


def apply(path: str, node_name: str | None, labels: dict | None, pfs: list, discover: dict | None) -> tuple:
    """The daemon's (pfs, discoverPFs) with this node's section of `path` added."""
    which, sec = section(load(path), node_name, labels)
    if not which:
        _log.info("node settings %s: no section for node %s", path, node_name)
        return pfs, discover
    _log.info("node settings %s: using section %s", path, which)
    return list(pfs) + [dict(p) for p in sec.get("pfs") or []], sec.get("discoverPFs", discover)
