"""The seed plugin's per-call "extra arguments" in CNI_ARGS: `VF=` (VF index; a free VF is
allocated when absent), `VLAN=` (802.1Q VLAN id) and `MAC=` (the VF's MAC address), e.g.
`IgnoreUnknown=1;IP=10.55.206.46;VF=1;MAC=66:d8:02:77:aa:aa`. `IP=` is the IPAM plugin's
(fixipam, static) and passes through untouched.

Precedence among the places a value can come from:
  netconf (`vf`, `vlan`, `mac`: the administrator's network)
  < pod annotations `networks-sriov-vlan` / `networks-sriov-txrate` (only inside the network's
    `podOverrides`; they replace `vlan` / `max_tx_rate`)
  < runtimeConfig (`mac`, `deviceID`: what the runtime or Multus asks through capabilities;
    replaces netconf `mac`, as upstream sriov-cni)
CNI_ARGS `VF=` / `VLAN=` / `MAC=` fill in what nothing else sets; where another source already
sets the same thing to a different value the call is refused, naming the argument: a silent
winner would attach a pod to a VLAN or with a MAC someone did not ask for.

Unknown CNI_ARGS keys are refused unless `IgnoreUnknown=1`, as the CNI spec (and Go's
types.LoadArgs) say.
"""
from cni.args import require_known
from cni.errors import INVALID_ENV, CNIError

from . import config, podannotations

# what this plugin reads, plus the pod identity every runtime passes (kubelet, podman, Multus)
KNOWN = {"IP", "VF", "VLAN", "MAC", "K8S_POD_NAMESPACE", "K8S_POD_NAME",
         "K8S_POD_INFRA_CONTAINER_ID", "K8S_POD_UID"}


def _bad(key: str, raw: str, why: str) -> CNIError:
    return CNIError(INVALID_ENV, f"invalid CNI_ARGS {key}={raw[:40]!r}: {why}", f"argument={key}")


def is_uint(raw: str) -> bool:
    """1-5 ASCII digits, maybe followed by one newline: what `^[0-9]{1,5}$` matches (int() takes both)."""
    digits = raw[:-1] if raw[-1:] == "\n" else raw
    return 0 < len(digits) <= 5 and digits.isascii() and digits.isdigit()


def _int(key: str, raw: str, hi: int) -> int:
    if not is_uint(raw) or int(raw) > hi:
        raise _bad(key, raw, f"expected an integer 0..{hi}")
    return int(raw)


def check_mac(raw: str) -> str:
    try:
        return config.check_mac(raw, "MAC")
    except CNIError as e:
        raise _bad("MAC", raw, e.msg.split(": ", 1)[-1]) from None


def parse(args: dict) -> dict:
    """{"vf": int, "vlan": int, "mac": str} for the arguments present (validated)."""
    out: dict[str, int | str] = {}
    if "VF" in args:
        out["vf"] = _int("VF", args["VF"], 4095)
    if "VLAN" in args:
        out["vlan"] = _int("VLAN", args["VLAN"], 4095)
    if "MAC" in args:
        if not args["MAC"]:
            raise _bad("MAC", "", "empty")
        out["mac"] = check_mac(args["MAC"])
    return out


def _conflict(key: str, val, what: str, other) -> CNIError:
    return CNIError(INVALID_ENV, f"CNI_ARGS {key}={val} conflicts with {what} {other}",
                    f"argument={key}: set it in one place only")


def effective(conf: dict, args: dict, pod_lookup=None) -> dict:
    """What ADD / CHECK configure: the network config with the pod's annotations (within
    podOverrides; read through `pod_lookup` when the daemon lends one) and then the call's
    CNI_ARGS folded in (a copy), or a CNIError."""
    require_known(args, KNOWN)
    return apply(podannotations.apply(conf, args, pod_lookup), args)


def apply(conf: dict, args: dict) -> dict:
    """The network config with the call's CNI_ARGS folded in (a copy), or a CNIError."""
    require_known(args, KNOWN)
    extra = parse(args)
    if not extra:
        return conf
    out = dict(conf)
    runtime = conf.get("runtimeConfig")
    if not isinstance(runtime, dict):
        runtime = {}
    if conf.get("pfOnly") is True:
        for key, field in (("VF", "vf"), ("VLAN", "vlan")):
            if field in extra:
                raise CNIError(INVALID_ENV, f"CNI_ARGS {key}= is not allowed with pfOnly (it moves the whole PF)",
                               f"argument={key}")
    if "vf" in extra:
        dev = conf.get("deviceID") or runtime.get("deviceID") or conf.get("pciBusID")
        if dev:
            raise _conflict("VF", extra["vf"], "deviceID", dev)
        if conf.get("vf") is not None and conf["vf"] != extra["vf"]:
            raise _conflict("VF", extra["vf"], "the config's vf", conf["vf"])
        out["vf"] = extra["vf"]
    if "vlan" in extra:
        if conf.get("vlan") is not None and conf["vlan"] != extra["vlan"]:
            raise _conflict("VLAN", extra["vlan"], "the vlan of the config (or the pod's networks-sriov-vlan)",
                            conf["vlan"])
        out["vlan"] = extra["vlan"]
    if "mac" in extra:
        for what, other in (("runtimeConfig.mac", runtime.get("mac")), ("the config's mac", conf.get("mac"))):
            if isinstance(other, str) and other and other.lower() != extra["mac"]:
                raise _conflict("MAC", extra["mac"], what, other)
        out["mac"] = extra["mac"]
    return out
