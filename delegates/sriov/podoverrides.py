"""Per-pod SR-IOV overrides (`networks-sriov-vlan`, `networks-sriov-txrate`): honoured only
inside the limits the network's own configuration sets in `podOverrides`, refused otherwise
with an error that names the setting that would allow them.

  "podOverrides": {"vlan": "100-199,300", "maxTxRate": 1000}

`podOverrides` is read (and removed) by the meta plugin before the delegate sees the config, and
by the stand-alone sriov plugin itself when no meta plugin wraps it (see podannotations.py)."""
from cni.errors import POLICY_DENIED, CNIError, config_error

VLAN_ANNOT = "networks-sriov-vlan"
TXRATE_ANNOT = "networks-sriov-txrate"


def parse_ranges(spec, field: str) -> list:
    """"100-199,300" or [100, "200-210"] -> [(100, 199), (300, 300)]"""
    items = spec.split(",") if isinstance(spec, str) else spec
    if not isinstance(items, list):
        raise config_error(field, "must be a range string like \"100-199,300\" or a list")
    out = []
    for it in items:
        if isinstance(it, bool):
            raise config_error(field, f"{it!r} is not a VLAN or range")
        if isinstance(it, int):
            lo = hi = it
        else:
            a, sep, b = str(it).strip().partition("-")
            try:
                lo, hi = int(a), int(b) if sep else int(a)
            except ValueError:
                raise config_error(field, f"{str(it)[:20]!r} is not a VLAN or range") from None
        if not 0 <= lo <= hi <= 4095:
            raise config_error(field, f"{it!r} is outside 0-4095")
        out.append((lo, hi))
    return out


def policy_of(conf: dict, network: str) -> dict:
    p = conf.get("podOverrides")
    if p is None:
        return {}
    if not isinstance(p, dict) or set(p) - {"vlan", "maxTxRate"}:
        raise config_error(f"{network}: podOverrides", "allowed keys are vlan and maxTxRate")
    out: dict[str, list[tuple[int, int]] | int] = {}
    if "vlan" in p:
        out["vlan"] = parse_ranges(p["vlan"], f"{network}: podOverrides.vlan")
    if "maxTxRate" in p:
        m = p["maxTxRate"]
        if isinstance(m, bool) or not isinstance(m, int) or m < 0:
            raise config_error(f"{network}: podOverrides.maxTxRate", "must be a non-negative integer (Mbps)")
        out["maxTxRate"] = m
    return out


def apply(conf: dict, network: str, vlan: int | None, txrate: int | None) -> dict:
    """The delegate conf with the pod's overrides applied (or an error); podOverrides removed."""
    policy = policy_of(conf, network)
    out = {k: v for k, v in conf.items() if k != "podOverrides"}
    if vlan is not None:
        allowed = policy.get("vlan")
        if not allowed:
            raise CNIError(POLICY_DENIED, f"{VLAN_ANNOT}={vlan} is not allowed for network {network}",
                           "set podOverrides.vlan (e.g. \"100-199\") in that network's config to allow it")
        if not any(lo <= vlan <= hi for lo, hi in allowed):
            raise CNIError(POLICY_DENIED, f"{VLAN_ANNOT}={vlan} is outside podOverrides.vlan of network {network}",
                           f"allowed: {','.join(f'{a}-{b}' if a != b else str(a) for a, b in allowed)}")
        out["vlan"] = vlan
    if txrate is not None:
        if "maxTxRate" not in policy:
            raise CNIError(POLICY_DENIED, f"{TXRATE_ANNOT}={txrate} is not allowed for network {network}",
                           "set podOverrides.maxTxRate (Mbps) in that network's config to allow it")
        if txrate > policy["maxTxRate"] or (txrate == 0 and policy["maxTxRate"] > 0):
            raise CNIError(POLICY_DENIED, f"{TXRATE_ANNOT}={txrate} exceeds podOverrides.maxTxRate "
                           f"{policy['maxTxRate']} of network {network}", "0 (unlimited) needs maxTxRate 0")
        out["max_tx_rate"] = txrate
    return out
