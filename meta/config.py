"""The `netmeta` CNI configuration: Multus's keys with Multus's meaning (so a Multus config is
a drop-in) plus ours. Parsed once into a read-only MetaConfig, validated before anything runs."""
import os

from cni.errors import config_error

DNS_LABEL_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-")
DNS_SUBDOMAIN_CHARS = DNS_LABEL_CHARS | {"."}
DEFAULT_CNI_DIR = "/var/lib/cni/netmeta/cache"
DEFAULT_CONF_DIR = "/etc/cni/multus/net.d"   # Multus's confDir: files for NADs without config
DEFAULT_SOCKET = "/run/netmeta/netmeta.sock"
# the kubelet's and the NPWG device-info spec's paths (resourceName -> deviceID)
DEFAULT_PODRESOURCES = "/var/lib/kubelet/pod-resources/kubelet.sock"
DEFAULT_CHECKPOINT = "/var/lib/kubelet/device-plugins/kubelet_internal_checkpoint"
DEFAULT_DEVINFO_DIR = "/var/run/k8s.cni.cncf.io/devinfo"

MULTUS_KEYS = {"kubeconfig", "delegates", "clusterNetwork", "defaultNetworks", "cniDir", "confDir",
               "binDir", "namespaceIsolation", "globalNamespaces", "systemNamespaces",
               "readinessindicatorfile", "logLevel", "logFile", "logToStderr", "logOptions",
               "multusNamespace", "retryDeleteOnError", "auxiliaryCNIChainName", "cniConf",
               # Multus thick mode's shim config (cmd/multus-shim): the socket lives elsewhere here
               "daemonSocketDir"}
CNI_KEYS = {"cniVersion", "name", "type", "capabilities", "runtimeConfig", "args", "prevResult",
            "cni.dev/valid-attachments", "cni.dev/attachments"}
OUR_KEYS = {"socketPath", "mode", "nadDir", "statusDir", "delegateTimeout", "nodeName", "readinessTimeout",
            "parallelAttachments", "podResourcesSocket", "deviceCheckpointFile", "deviceInfoDir"}
# Multus pkg/types/conf.go GetReadinessIndicatorFile: PollImmediate(1 s, 45 s)
READINESS_POLL, READINESS_TIMEOUT = 1.0, 45.0


class SetOnce:
    """A slotted class whose attributes are set once, by __init__, then read-only."""

    __slots__ = ()

    def __setattr__(self, name: str, value) -> None:
        if hasattr(self, name):   # already set (by __init__)
            raise AttributeError(f"{type(self).__name__} is read-only: cannot set {name}")
        object.__setattr__(self, name, value)


class MetaConfig(SetOnce):
    """The parsed configuration; read-only (each attribute is set once, by __init__)."""

    __slots__ = ("name", "kubeconfig", "delegates", "cluster_network", "default_networks", "cni_dir", "conf_dir",
                 "namespace_isolation", "global_namespaces", "system_namespaces", "multus_namespace",
                 "readiness_file", "log_level", "log_file", "socket_path", "mode", "nad_dir", "status_dir",
                 "delegate_timeout", "node_name", "readiness_timeout", "log_options", "unknown_keys", "parallel",
                 "podresources_socket", "checkpoint_file", "devinfo_dir")

    def __init__(self, *,
                 name: str,
                 kubeconfig: str | None,
                 delegates: tuple,  # inline delegate confs (Multus "delegates"); [0] = cluster default
                 cluster_network: str | None,
                 default_networks: tuple,
                 cni_dir: str,
                 conf_dir: str,
                 namespace_isolation: bool,
                 global_namespaces: frozenset,
                 system_namespaces: frozenset,
                 multus_namespace: str,
                 readiness_file: str | None,
                 log_level: str,
                 log_file: str | None,
                 socket_path: str,
                 mode: str,  # auto | daemon | thin
                 nad_dir: str | None,  # Kubernetes-free mode: NADs from <dir>/<ns>/<name>.json|yaml
                 status_dir: str | None,
                 delegate_timeout: float,
                 node_name: str | None,
                 readiness_timeout: float = READINESS_TIMEOUT,
                 log_options: tuple = (),  # Multus logOptions (lumberjack) items: maxSize MB, maxBackups, ...
                 unknown_keys: tuple = (),  # warned about, not refused (Multus ignores them)
                 parallel: int = 4,  # parallelAttachments: a pod's non-cluster attachments at once (1 = serial)
                 podresources_socket: str = DEFAULT_PODRESOURCES,
                 checkpoint_file: str = DEFAULT_CHECKPOINT,
                 devinfo_dir: str = DEFAULT_DEVINFO_DIR,
                 ) -> None:
        self.name = name
        self.kubeconfig = kubeconfig
        self.delegates = delegates
        self.cluster_network = cluster_network
        self.default_networks = default_networks
        self.cni_dir = cni_dir
        self.conf_dir = conf_dir
        self.namespace_isolation = namespace_isolation
        self.global_namespaces = global_namespaces
        self.system_namespaces = system_namespaces
        self.multus_namespace = multus_namespace
        self.readiness_file = readiness_file
        self.log_level = log_level
        self.log_file = log_file
        self.socket_path = socket_path
        self.mode = mode
        self.nad_dir = nad_dir
        self.status_dir = status_dir
        self.delegate_timeout = delegate_timeout
        self.node_name = node_name
        self.readiness_timeout = readiness_timeout
        self.log_options = log_options
        self.unknown_keys = unknown_keys
        self.parallel = parallel
        self.podresources_socket = podresources_socket
        self.checkpoint_file = checkpoint_file
        self.devinfo_dir = devinfo_dir


def dns_name(s: str, chars: frozenset, max_len: int | None = None) -> bool:
    """1..max_len characters of `chars` (DNS_LABEL_CHARS or DNS_SUBDOMAIN_CHARS), starting and
    ending with a letter or digit: r"[a-z0-9]([-a-z0-9]*[a-z0-9])?" (or with "." inside) as a
    fullmatch, without `re` on the plugin call's import path."""
    return (0 < len(s) and (max_len is None or len(s) <= max_len) and chars.issuperset(s)
            and s[0] not in "-." and s[-1] not in "-.")


def is_dns_label(s: str) -> bool:
    """A namespace name: what re.match(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", s) accepted before,
    including its one quirk: `$` also matches before a single trailing newline."""
    return dns_name(s[:-1] if s.endswith("\n") else s, DNS_LABEL_CHARS)


def _strs(conf, key, default=()):
    v = conf.get(key, default)
    if isinstance(v, str):   # Multus accepts "a,b" for globalNamespaces
        v = [s.strip() for s in v.split(",") if s.strip()]
    if not isinstance(v, (list, tuple)) or not all(isinstance(x, str) for x in v):
        raise config_error(key, "must be a list of strings (or a comma-separated string)")
    return tuple(v)


def _path(conf, key, default=None):
    if key in conf and conf[key] is None and default is not None:
        raise config_error(key, "must be an absolute path, not null")
    v = conf.get(key, default)
    if v is not None and (not isinstance(v, str) or not v.startswith("/")):
        raise config_error(key, "must be an absolute path")
    return v


def load(conf: dict) -> MetaConfig:
    # Multus unmarshals the config into its NetConf (pkg/types/conf.go LoadNetConf): a key it does
    # not know is ignored. Ours are logged as a warning (Engine); delegates' configs stay strict.
    unknown = tuple(sorted(set(conf) - MULTUS_KEYS - CNI_KEYS - OUR_KEYS))
    delegates = conf.get("delegates", [])
    if not isinstance(delegates, list) or not all(isinstance(d, dict) for d in delegates):
        raise config_error("delegates", "must be a list of CNI configurations")
    for i, d in enumerate(delegates):
        plugins = d.get("plugins") if isinstance(d.get("plugins"), list) else [d]
        if not plugins or not all(isinstance(p, dict) and isinstance(p.get("type"), str) for p in plugins):
            raise config_error(f"delegates[{i}]", "needs a type (conf) or plugins with a type each (conflist)")
        for p in plugins:
            from cni.invoke import validate_type
            try:
                validate_type(p["type"])
            except Exception:
                raise config_error(f"delegates[{i}].type", f"{str(p['type'])[:40]!r} is not a plain plugin name") from None
            if not isinstance(p.get("capabilities", {}), dict):
                raise config_error(f"delegates[{i}].capabilities", "must be an object")
    cluster = conf.get("clusterNetwork")
    if cluster is not None and (not isinstance(cluster, str) or not cluster):
        raise config_error("clusterNetwork", "must be a NAD name, a file or a directory")
    if cluster is None and not delegates:
        raise config_error("clusterNetwork", "set clusterNetwork or delegates (the cluster default network)")
    mode = conf.get("mode", "auto")
    if mode not in ("auto", "daemon", "thin"):
        raise config_error("mode", f"{str(mode)[:20]!r} must be auto, daemon or thin")
    iso = conf.get("namespaceIsolation", False)
    if not isinstance(iso, bool):
        raise config_error("namespaceIsolation", "must be a boolean")
    level = conf.get("logLevel", "info")
    if not isinstance(level, str) or level.lower() not in ("debug", "verbose", "info", "warning", "error", "panic"):
        raise config_error("logLevel", "must be debug, verbose, error or panic (Multus levels) or info/warning")
    timeout = conf.get("delegateTimeout", 60)
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not 0 < timeout <= 600:
        raise config_error("delegateTimeout", "must be a number of seconds in (0, 600]")
    rtimeout = conf.get("readinessTimeout", READINESS_TIMEOUT)
    if isinstance(rtimeout, bool) or not isinstance(rtimeout, (int, float)) or not 0 <= rtimeout <= 600:
        raise config_error("readinessTimeout", "must be a number of seconds in [0, 600]")
    parallel = conf.get("parallelAttachments", 4)
    if isinstance(parallel, bool) or not isinstance(parallel, int) or not 1 <= parallel <= 64:
        raise config_error("parallelAttachments", "must be an integer in [1, 64] (1: one after another)")
    log_options = conf.get("logOptions")
    if log_options is not None and not isinstance(log_options, dict):
        raise config_error("logOptions", "must be an object (maxSize, maxAge, maxBackups, compress)")
    for k in ("maxSize", "maxAge", "maxBackups"):
        v = (log_options or {}).get(k)
        if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 0):
            raise config_error(f"logOptions.{k}", "must be a non-negative integer")
    mns = conf.get("multusNamespace", "kube-system")
    if not isinstance(mns, str):
        raise config_error("multusNamespace", "must be a namespace name")
    for ns in (mns, *_strs(conf, "globalNamespaces"), *_strs(conf, "systemNamespaces")):
        if not is_dns_label(ns):
            raise config_error("globalNamespaces", f"{ns[:64]!r} is not a namespace name")
    return MetaConfig(
        name=conf.get("name", "netmeta"), kubeconfig=_path(conf, "kubeconfig"), delegates=tuple(delegates),
        cluster_network=cluster, default_networks=_strs(conf, "defaultNetworks"),
        cni_dir=_path(conf, "cniDir", DEFAULT_CNI_DIR), conf_dir=_path(conf, "confDir", DEFAULT_CONF_DIR),
        namespace_isolation=iso, global_namespaces=frozenset(_strs(conf, "globalNamespaces")),
        system_namespaces=frozenset(_strs(conf, "systemNamespaces", ["kube-system"])),
        multus_namespace=mns, readiness_file=_path(conf, "readinessindicatorfile"),
        log_level={"verbose": "debug", "panic": "critical"}.get(level.lower(), level.lower()),
        log_file=_path(conf, "logFile"), socket_path=_path(conf, "socketPath", DEFAULT_SOCKET), mode=mode,
        nad_dir=_path(conf, "nadDir"), status_dir=_path(conf, "statusDir"), delegate_timeout=float(timeout),
        node_name=conf.get("nodeName") or os.environ.get("NODE_NAME"), readiness_timeout=float(rtimeout),
        log_options=tuple(sorted((log_options or {}).items())), unknown_keys=unknown,
        parallel=parallel,
        podresources_socket=_path(conf, "podResourcesSocket", DEFAULT_PODRESOURCES),
        checkpoint_file=_path(conf, "deviceCheckpointFile", DEFAULT_CHECKPOINT),
        devinfo_dir=_path(conf, "deviceInfoDir", DEFAULT_DEVINFO_DIR))
