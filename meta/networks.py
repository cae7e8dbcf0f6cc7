"""Resolving network references into delegate CNI configurations (conf or conflist):
NetworkAttachmentDefinitions from the API or, in Kubernetes-free mode, from a directory
(<nadDir>/<namespace>/<name>.json|.yaml); NADs without spec.config and the cluster default
network from files, as Multus does."""
import os

from cni import jsonlite, log
from cni.errors import INVALID_CONFIG, NETWORK_NOT_FOUND, CNIError

from .config import DNS_LABEL_CHARS, DNS_SUBDOMAIN_CHARS, dns_name

_log = log.get("networks")
RESOURCE_ANNOT = "k8s.v1.cni.cncf.io/resourceName"
CONF_EXT = (".conf", ".conflist", ".json")


class Network:
    __slots__ = ("name", "conf", "resource_name")

    def __init__(self, name: str, conf: dict, resource_name: str | None = None) -> None:
        self.name = name                    # "namespace/name" for a NAD, the conf's name otherwise
        self.conf = conf                    # a CNI conf, or a conflist (has "plugins")
        self.resource_name = resource_name

    @property
    def is_list(self) -> bool:
        return isinstance(self.conf.get("plugins"), list)

    @property
    def main_type(self) -> str:
        return self.conf["plugins"][0]["type"] if self.is_list else self.conf.get("type", "")


def _parse_conf(raw, where: str) -> dict:
    try:
        conf = jsonlite.loads(raw) if isinstance(raw, (str, bytes)) else raw
    except (ValueError, RecursionError) as e:
        raise CNIError(INVALID_CONFIG, f"invalid CNI config in {where}", str(e)[:200]) from None
    if not isinstance(conf, dict):
        raise CNIError(INVALID_CONFIG, f"invalid CNI config in {where}", "not a JSON object")
    if isinstance(conf.get("plugins"), list):
        if not conf["plugins"] or not all(isinstance(p, dict) and isinstance(p.get("type"), str)
                                          for p in conf["plugins"]):
            raise CNIError(INVALID_CONFIG, f"invalid conflist in {where}", "every plugin needs a type")
        plugins = conf["plugins"]
    elif not isinstance(conf.get("type"), str):
        raise CNIError(INVALID_CONFIG, f"invalid CNI config in {where}", "no type")
    else:
        plugins = [conf]
    from cni.invoke import validate_type
    for p in plugins:   # refused here, before any cache is written: DEL could never run it
        try:
            validate_type(p["type"])
        except CNIError as e:
            raise CNIError(INVALID_CONFIG, f"invalid CNI config in {where}: {e.msg}", e.details) from None
        if not isinstance(p.get("capabilities", {}), dict):
            raise CNIError(INVALID_CONFIG, f"invalid CNI config in {where}", "capabilities must be an object")
    return conf


def load_file(path: str) -> dict:
    with open(path, "rb") as f:
        return _parse_conf(f.read(), path)


def first_conf_in(directory: str) -> str | None:
    for name in sorted(os.listdir(directory)):
        if name.endswith(CONF_EXT):
            return os.path.join(directory, name)
    return None


def conf_by_name(conf_dir: str, name: str) -> dict | None:
    """The conf/conflist in conf_dir whose `name` is `name` (Multus: GetCNIConfigFromFile)."""
    if not os.path.isdir(conf_dir):
        return None
    for fname in sorted(os.listdir(conf_dir)):
        if fname.endswith(CONF_EXT):
            try:
                conf = load_file(os.path.join(conf_dir, fname))
            except (CNIError, OSError):
                continue
            if conf.get("name") == name:
                return conf
    return None


def from_nad(nad: dict, conf_dir: str) -> Network:
    if not isinstance(nad, dict) or not isinstance(nad.get("metadata") or {}, dict) or \
            not isinstance(nad.get("spec") or {}, dict) or \
            not isinstance((nad.get("metadata") or {}).get("annotations") or {}, dict):
        raise CNIError(INVALID_CONFIG, "invalid NetworkAttachmentDefinition", "metadata/spec/annotations must be objects")
    meta = nad.get("metadata") or {}
    ns, name = meta.get("namespace", ""), meta.get("name", "")
    raw = (nad.get("spec") or {}).get("config")
    conf: dict | None
    if raw:
        conf = _parse_conf(raw, f"network-attachment-definition {ns}/{name}")
    else:
        found = conf_by_name(conf_dir, name)
        if found is None:
            raise CNIError(NETWORK_NOT_FOUND, f"network-attachment-definition {ns}/{name} has no config",
                           f"and no file in {conf_dir} has name {name!r}")
        conf = found
    # Multus v4.1.4 (vendor network-attachment-definition-client utils GetCNIConfigFromSpec) names
    # the config after the NAD only when it has no name: the name keys the delegate's state
    # (host-local's lease directory), which must stay where Multus left it
    if not conf.get("name"):
        conf = dict(conf, name=name)
    return Network(f"{ns}/{name}", conf, (meta.get("annotations") or {}).get(RESOURCE_ANNOT))


def _yaml(raw: bytes):
    """YAML without aliases: a few bytes of nested aliases expand to gigabytes (billion laughs)."""
    import yaml

    class NoAliases(yaml.SafeLoader):
        def fetch_alias(self):
            raise yaml.YAMLError("YAML aliases are not allowed in NAD files")
    return yaml.load(raw.decode("utf-8"), Loader=NoAliases)


class DirNADs:
    """Kubernetes-free mode: <dir>/<namespace>/<name>.json|.yaml holding a NAD object."""

    def __init__(self, directory: str):
        self.dir = directory

    def get_nad(self, namespace: str, name: str) -> dict:
        # re.fullmatch(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?", namespace), and with "." and 253 for the name
        if not dns_name(namespace or "", DNS_LABEL_CHARS, 63) or not dns_name(name or "", DNS_SUBDOMAIN_CHARS, 253):
            raise CNIError(INVALID_CONFIG, f"invalid network reference {namespace[:64]!r}/{name[:64]!r}",
                           "namespace and name must be DNS-1123 names")
        for ext in (".json", ".yaml", ".yml"):
            p = os.path.join(self.dir, namespace, name + ext)
            if os.path.isfile(p):
                with open(p, "rb") as f:
                    raw = f.read(1024 * 1024 + 1)
                try:
                    if len(raw) > 1024 * 1024:
                        raise ValueError("larger than 1 MiB")
                    obj = jsonlite.loads(raw) if ext == ".json" else _yaml(raw)
                except (ValueError, RecursionError, UnicodeDecodeError) as e:
                    raise CNIError(INVALID_CONFIG, f"invalid NetworkAttachmentDefinition file {p}", str(e)[:200]) from None
                except Exception as e:   # yaml.YAMLError
                    raise CNIError(INVALID_CONFIG, f"invalid NetworkAttachmentDefinition file {p}", str(e)[:200]) from None
                if not isinstance(obj, dict) or not isinstance(obj.get("metadata") or {}, dict):
                    raise CNIError(INVALID_CONFIG, f"invalid NetworkAttachmentDefinition file {p}")
                obj.setdefault("metadata", {}).update(namespace=namespace, name=name)
                return obj
        raise CNIError(NETWORK_NOT_FOUND, f"cannot find a network-attachment-definition ({name}) "
                       f"in namespace ({namespace})", f"no {self.dir}/{namespace}/{name}.json|.yaml")
