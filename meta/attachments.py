"""One attachment = one delegate network on one pod interface, and how its delegate(s) run:
a conf, or a conflist run like libcni (ADD in order with prevResult chained, DEL in reverse,
CHECK in order), with runtimeConfig injected only for the capabilities each plugin declares."""
from cni import invoke
from cni.request import Request
from cni.result import Result
from delegates import registry

from . import deviceinfo


def copy_json(v):
    """copy.deepcopy(v) for JSON values (dicts, lists, strings, numbers, None; tuples) without
    the `copy` module (and weakref) on a plugin call's import path; any other object in it (a
    JSONObject of an annotation's cni-args) is handed to copy.deepcopy."""
    t = type(v)
    if t is dict:
        return {k: copy_json(x) for k, x in v.items()}
    if t is list:
        return [copy_json(x) for x in v]
    if t is str or t is int or t is float or t is bool or v is None:
        return v
    if t is tuple:
        return tuple(copy_json(x) for x in v)
    import copy
    return copy.deepcopy(v)


class Attachment:
    __slots__ = ("network", "ifname", "conf", "default", "runtime_config", "cni_args", "gateways",
                 "drop_default", "resource_name", "result", "serial")

    def __init__(self, network: str, ifname: str, conf: dict, default: bool = False,
                 runtime_config: dict | None = None, cni_args: str = "", gateways: list | None = None,
                 drop_default: list | None = None, resource_name: str | None = None,
                 result: dict | None = None, serial: bool = False) -> None:
        self.network = network             # "ns/name" of the NAD, or the cluster network's conf name
        self.ifname = ifname
        self.conf = conf                   # conf or conflist, as resolved
        self.default = default             # the cluster default network (eth0, primary result)
        self.runtime_config: dict = {} if runtime_config is None else runtime_config   # capability values
        self.cni_args = cni_args           # the CNI_ARGS its delegates get (an annotation's "cni-args"
        #                                    object goes into `conf`'s args.cni instead: meta/plan.py)
        self.gateways: list = [] if gateways is None else gateways               # default-route request
        self.drop_default: list = [] if drop_default is None else drop_default   # families ("4"/"6")
        #                                    whose default route goes
        self.resource_name = resource_name
        self.result = result               # the delegate's ADD result (its own cniVersion)
        self.serial = serial               # "serial": true in its network's config: never beside
        #                                    another (meta/parallel.py)

    def to_dict(self) -> dict:
        """Every attribute, values copied (what the DEL cache keeps)."""
        return {k: copy_json(getattr(self, k)) for k in self.__slots__}

    @classmethod
    def from_dict(cls, d: dict) -> "Attachment":
        return cls(**{k: d[k] for k in cls.__slots__ if k in d})

    @property
    def plugins(self) -> list:
        """[(plugin conf with name/cniVersion injected)] — one for a conf."""
        if isinstance(self.conf.get("plugins"), list):
            base = {"name": self.conf.get("name", self.network), "cniVersion": self.conf.get("cniVersion", "1.0.0")}
            return [dict(p, **base) for p in self.conf["plugins"]]
        return [self.conf]

    def _plugin_conf(self, p: dict, prev: dict | None) -> dict:
        conf = copy_json(p)
        caps = conf.get("capabilities") or {}
        runtime = {k: v for k, v in self.runtime_config.items() if caps.get(k)}
        if runtime:
            conf["runtimeConfig"] = dict(conf.get("runtimeConfig") or {}, **runtime)
        if prev is not None:
            conf["prevResult"] = prev
        if conf.get("type") == "sriov":   # the plan applied (or refused) the pod's SR-IOV overrides:
            conf["podOverridesApplied"] = True   # the sriov plugin must not read them again
        return conf


def _run(att: Attachment, req: Request, command: str, conf: dict, timeout: float, own):
    return invoke.delegate(conf["type"], command, conf, req, timeout=timeout, ifname=att.ifname,
                           cni_args=att.cni_args, own=own)


# `own`: our delegates that run in this process, with what it lends them (delegates/registry.py
# Own; the engine passes its services' `delegates.own`)

def add(att: Attachment, req: Request, timeout: float, own: registry.Own = registry.OWN) -> Result | None:
    deviceinfo.before_add(att)
    prev = None
    res = None
    for p in att.plugins:
        res = _run(att, req, "ADD", att._plugin_conf(p, prev), timeout, own)
        if res is None:
            res = Result(cni_version=p.get("cniVersion", "1.0.0"))
        prev = res.to_dict(res.cni_version)
    assert res is not None      # a conflist has at least one plugin (meta/networks.py refuses [])
    att.result = res.to_dict(res.cni_version) if res else None
    return res


def delete(att: Attachment, req: Request, timeout: float, own: registry.Own = registry.OWN) -> None:
    for p in reversed(att.plugins):
        _run(att, req, "DEL", att._plugin_conf(p, att.result), timeout, own)
    deviceinfo.clean(att)


def check(att: Attachment, req: Request, timeout: float, own: registry.Own = registry.OWN) -> None:
    if att.conf.get("disableCheck"):
        return
    for p in att.plugins:
        _run(att, req, "CHECK", att._plugin_conf(p, att.result), timeout, own)
