"""ADD planning: from the config, the pod's annotations and the NADs to the ordered list of
attachments (default network first). Everything is resolved and validated here, before the
DEL cache is written and before any delegate runs, so bad input changes nothing."""
from cni import log
from cni.errors import INVALID_CONFIG, NAMESPACE_DENIED, NETWORK_NOT_FOUND, POLICY_DENIED, CNIError
from cni.request import is_network_name

from . import devices, networks
from .attachments import Attachment, copy_json

_log = log.get("plan")
NETWORKS_ANNOT = "k8s.v1.cni.cncf.io/networks"
DEFAULT_NET_ANNOT = "v1.multus-cni.io/default-network"


class Planner:
    def __init__(self, cfg, nads):
        self.cfg, self.nads = cfg, nads   # nads: .get_nad(ns, name) -> NAD object, or None

    # ---- networks by reference ----
    def nad(self, namespace: str, name: str) -> networks.Network:
        if self.nads is None:
            raise CNIError(NETWORK_NOT_FOUND, f"cannot resolve network {namespace}/{name}",
                           "no kubeconfig and no nadDir configured")
        try:
            return networks.from_nad(self.nads.get_nad(namespace, name), self.cfg.conf_dir)
        except CNIError as e:
            if e.code == NETWORK_NOT_FOUND:
                _log.warning("missing NetworkAttachmentDefinition %s/%s: %s", namespace, name, e.msg)
            raise

    def by_name(self, ref: str) -> networks.Network:
        """clusterNetwork / defaultNetworks entry, in Multus's order: a NAD in multusNamespace,
        a conf in confDir with that name, a directory (its first conf), a file."""
        import os
        if not ref.startswith("/"):
            if self.nads is not None:
                try:
                    return self.nad(self.cfg.multus_namespace, ref)
                except CNIError as e:
                    if e.code != NETWORK_NOT_FOUND:
                        raise
            conf = networks.conf_by_name(self.cfg.conf_dir, ref)
            if conf is not None:
                return networks.Network(conf.get("name", ref), conf)
            raise CNIError(NETWORK_NOT_FOUND, f"cannot find network {ref!r}",
                           f"not a NetworkAttachmentDefinition in {self.cfg.multus_namespace} nor a conf in {self.cfg.conf_dir}")
        path = ref
        if os.path.isdir(ref):
            found = networks.first_conf_in(ref)
            if found is None:
                raise CNIError(NETWORK_NOT_FOUND, f"no CNI config in directory {ref}")
            path = found
        if not os.path.isfile(path):
            raise CNIError(NETWORK_NOT_FOUND, f"cluster network file {ref} does not exist")
        conf = networks.load_file(path)
        return networks.Network(conf.get("name", ref), conf)

    def cluster_default(self) -> networks.Network:
        if self.cfg.delegates:
            conf = copy_json(self.cfg.delegates[0])
            return networks.Network(conf.get("name", "default"), conf)
        return self.by_name(self.cfg.cluster_network)

    # ---- the plan ----
    def plan(self, req, pod_ns: str | None, annots: dict) -> list:
        # Multus v4.1.4 pkg/k8sclient/k8sclient.go GetDefaultNetworks: a pod of systemNamespaces
        # gets no defaultNetworks; its own annotations (TryLoadPodDelegates) still apply
        system = pod_ns is None or pod_ns in self.cfg.system_namespaces
        base_args = _base_args(req)
        atts = []
        default_sel = None
        if pod_ns is not None and annots.get(DEFAULT_NET_ANNOT):
            # Multus: a pod's default network must be a NAD of multusNamespace
            default_sel = _parse(_ann().parse_default_network, annots[DEFAULT_NET_ANNOT], self.cfg.multus_namespace)
            if default_sel.namespace != self.cfg.multus_namespace:
                self._isolation(default_sel.namespace, pod_ns)
            default_net = self.nad(default_sel.namespace, default_sel.name)
        else:
            default_net = self.cluster_default()
        runtime = {k: v for k, v in (req.config.get("runtimeConfig") or {}).items()
              if k != "io.kubernetes.cri.pod-annotations"}
        atts.append(Attachment(default_net.name, req.ifname, default_net.conf, default=True,
                               runtime_config=runtime, cni_args=_base_args(req, keep_addresses=True),
                               resource_name=default_net.resource_name))
        extra = [] if system else [self.by_name(n) for n in self.cfg.default_networks]
        sels = []
        if pod_ns is not None and annots.get(NETWORKS_ANNOT):
            sels = _parse(_ann().parse_networks, annots[NETWORKS_ANNOT], pod_ns)
            _check(_ann().check_gateways, sels)
        if extra or sels:
            names = _parse(_ifnames, len(extra), sels, req.ifname)
            drops = _parse(_ann().gateway_filters, [None] * (1 + len(extra)) + list(sels))
        else:   # the cluster network alone: no name to give, no default route to filter (what they return then)
            names, drops = [], [(False, False)]
        n = 0
        for net in extra:
            atts.append(Attachment(net.name, names[n], net.conf, cni_args=base_args,
                                   resource_name=net.resource_name))
            n += 1
        # (no annotation: no override, and meta/overrides.py, with the sriov plugin's code, not loaded)
        vlan_o, rate_o = self._overrides(annots, sels) if pod_ns is not None and annots else ({}, {})
        for sel in sels:
            self._isolation(sel.namespace, pod_ns)
            net = self.nad(sel.namespace, sel.name)
            att = self._selected(net, sel, names[n], base_args, vlan_o, rate_o)
            atts.append(att)
            n += 1
        for att, (drop4, drop6) in zip(atts, drops):
            att.drop_default = [f for f, d in (("4", drop4), ("6", drop6)) if d]
        for att in atts:
            _check_name(att)
        devices.assign(atts, req, self.cfg)   # resourceName -> the kubelet's devices
        return atts

    def _isolation(self, target_ns: str, pod_ns: str | None) -> None:
        if not self.cfg.namespace_isolation or target_ns == pod_ns:
            return
        # Multus pkg/types/conf.go LoadNetConf: globalNamespaces, when set, replaces the default
        # non-isolated list ["default"] (defaultNonIsolatedNamespace)
        if target_ns in (self.cfg.global_namespaces or {"default"}):
            return
        raise CNIError(NAMESPACE_DENIED, f"namespace isolation: pod in namespace {pod_ns} may not use "
                       f"networks of namespace {target_ns}",
                       "add it to globalNamespaces to share its networks with every namespace")

    def _overrides(self, annots: dict, sels: list) -> tuple:
        names = {s.name for s in sels} | {f"{s.namespace}/{s.name}" for s in sels}
        out = []
        from . import overrides
        for key in (overrides.VLAN_ANNOT, overrides.TXRATE_ANNOT):
            out.append(_parse(_ann().parse_override, annots[key], names, key) if annots.get(key) not in (None, "") else {})
        return tuple(out)

    def _selected(self, net, sel, ifname, base_args, vlan_o, rate_o) -> Attachment:
        runtime: dict = {}
        for src, cap in (("ips", "ips"), ("mac", "mac"), ("port_mappings", "portMappings"),
                         ("bandwidth", "bandwidth"), ("device_id", "deviceID"),
                         ("infiniband_guid", "infinibandGUID")):
            v = getattr(sel, src, None)
            if v:
                runtime[cap] = list(v) if isinstance(v, tuple) else v
        conf = copy_json(net.conf)
        caps = _capabilities(conf)
        args = base_args
        # CNI_ARGS IP=/MAC= for delegates that do not declare the capability (e.g. static)
        if runtime.get("ips") and not caps.get("ips"):
            args += ";IP=" + ",".join(runtime["ips"])
        if runtime.get("mac") and not caps.get("mac"):
            args += ";MAC=" + runtime["mac"]
        if sel.cni_args:
            _merge_annotation_args(conf, dict(sel.cni_args))
        if runtime.get("deviceID"):
            _first_plugin(conf)["deviceID"] = runtime["deviceID"]
        ann = _ann()
        vlan, rate = ann.override_for(vlan_o, sel), ann.override_for(rate_o, sel)
        explicit = any(k in o for o in (vlan_o, rate_o) for k in (sel.key, sel.name))
        conf = _with_overrides(conf, net.name, vlan, rate, explicit)
        return Attachment(net.name, ifname, conf, runtime_config=runtime, cni_args=args,
                          gateways=list(sel.default_route or ()), resource_name=net.resource_name)


def _ann():
    """meta/annotations/parse.py, imported by the first plan that has a pod annotation to read
    or more than the cluster network to name: with what it brings (~2.5 ms of an exec'd call),
    a thin-mode pod on the cluster network alone never needs it."""
    from .annotations import parse
    return parse


def _parse(fn, *a):
    try:
        return fn(*a)
    except ValueError as e:   # fn is the parser's (or calls it): an error means the parser is loaded
        if isinstance(e, _ann().AnnotationError):
            raise CNIError(INVALID_CONFIG, str(e)) from None
        raise


_check = _parse


def _ifnames(n_extra: int, sels: list, default_ifname: str) -> list:
    # defaultNetworks take net1.. before the pod's own networks, like Multus
    return _ann().assign_interfaces([None] * n_extra + list(sels), first_index=1, reserved=(default_ifname,))


def _base_args(req, keep_addresses: bool = False) -> str:
    raw = req.raw_args or ""
    if "IgnoreUnknown=" not in raw:
        raw = "IgnoreUnknown=1" + (";" + raw if raw else "")
    if keep_addresses:
        return raw
    # the runtime's own IP=/MAC= (podman) are meant for the default network only
    return ";".join(p for p in raw.split(";") if p and not p.startswith(("IP=", "MAC=")))


def _first_plugin(conf: dict) -> dict:
    return conf["plugins"][0] if isinstance(conf.get("plugins"), list) else conf


def _capabilities(conf: dict) -> dict:
    return _first_plugin(conf).get("capabilities") or {}


def _merge_annotation_args(conf: dict, values: dict) -> None:
    """The selection's "cni-args" object (not CNI_ARGS) into each plugin's args.cni, as Multus does."""
    targets = conf["plugins"] if isinstance(conf.get("plugins"), list) else [conf]
    for p in targets:
        args = p.setdefault("args", {})
        args["cni"] = dict(args.get("cni") or {}, **values)


def _with_overrides(conf: dict, network: str, vlan, rate, explicit: bool) -> dict:
    """Apply pod overrides to the (first) sriov plugin of the network; podOverrides (a conflist
    may carry it at top level or in the sriov plugin) is removed before any delegate sees it."""
    is_list = isinstance(conf.get("plugins"), list)
    plugins = conf["plugins"] if is_list else [conf]
    top_policy = conf.get("podOverrides") if is_list else None
    out_plugins, done = [], False
    for p in plugins:
        if p.get("type") == "sriov" and not done:
            policy = p.get("podOverrides", top_policy)
            base = dict(p, podOverrides=policy) if policy is not None else p
            from . import overrides
            p = overrides.apply(base, network, vlan, rate)
            done = True
        else:
            p = {k: v for k, v in p.items() if k != "podOverrides"}
        out_plugins.append(p)
    if not done and explicit and (vlan is not None or rate is not None):
        raise CNIError(POLICY_DENIED, f"network {network} is not an SR-IOV network",
                       "networks-sriov-vlan / networks-sriov-txrate apply only to sriov attachments")
    if not is_list:
        return out_plugins[0]
    return dict({k: v for k, v in conf.items() if k != "podOverrides"}, plugins=out_plugins)


def _check_name(att) -> None:
    """A delegate config's name must be a CNI network name (the spec's rule; cni/request.py
    and the reference plugins' skel refuse a missing or other name, for ADD and DEL alike).
    Refused here, before the DEL cache is written: a delegate refusing it would refuse its DEL
    too, and the cache could never be cleared. (Multus v4.1.4 hands such a config on, and its
    DEL then fails the same way. A NAD's config without a name was named after the NAD by
    meta/networks.py, as Multus does.)"""
    name = att.conf.get("name")
    if name is None:
        raise CNIError(INVALID_CONFIG, f"network {att.network}: the delegate config has no name",
                       "a CNI network config needs a name; the plugins refuse one without (ADD and DEL)")
    if not is_network_name(name):
        raise CNIError(INVALID_CONFIG, f"network {att.network}: invalid network name {str(name)[:80]!r}",
                       "a CNI network name must match [a-zA-Z0-9][a-zA-Z0-9_.-]*")
