"""`netmeta install`: the CNI config it writes (completed from the cluster's primary config
like Multus's auto mode when it names no cluster default network: the rules are in
meta/install/main.py's docstring, which is also `netmeta install --help`) and the kubeconfig from
the pod's service account (token, CA, KUBERNETES_SERVICE_HOST/PORT)."""
import json
import os

from cni.errors import CNIError

from .files import KUBECONFIG_MARK, InstallError, is_our_conf, read_text

POD_ANNOTATIONS = "io.kubernetes.cri.pod-annotations"
CONF_EXT = (".conf", ".conflist", ".json")   # what libcni (containerd, CRI-O) loads, by name


# ---------------- the CNI config ----------------
def conf_names(conf_dir: str) -> list:
    try:
        names = sorted(os.listdir(conf_dir))
    except FileNotFoundError:
        return []
    return [n for n in names if n.endswith(CONF_EXT) and os.path.isfile(os.path.join(conf_dir, n))]


def find_primary(conf_dir: str, own_name: str, name: str | None = None) -> tuple | None:
    """(path, conf) of the cluster's primary CNI config: `name`, else the first by name that is
    not ours; None when there is none (yet)."""
    from meta.networks import load_file
    for n in ([name] if name else conf_names(conf_dir)):
        path = os.path.join(conf_dir, n)
        data = read_text(path)
        if n == own_name or data is None or (is_our_conf(data) and not name):
            continue
        if is_our_conf(data):
            raise InstallError(f"--primary {path} is a netmeta config, not the cluster's network")
        try:
            conf = load_file(path)
        except (CNIError, OSError) as e:
            raise InstallError(f"cannot use {path} as the primary CNI config: {e}") from None
        first = conf["plugins"][0] if isinstance(conf.get("plugins"), list) else conf
        if first.get("type") == "multus":
            raise InstallError(f"{path} is a Multus config: netmeta replaces Multus, remove it first "
                               "(or name the cluster network's config with --primary)")
        return path, conf
    return None


def capabilities(delegate: dict) -> dict:
    plugins = delegate["plugins"] if isinstance(delegate.get("plugins"), list) else [delegate]
    caps = {}
    for p in plugins:
        for k, v in ((p.get("capabilities") if isinstance(p, dict) else None) or {}).items():
            if v is True:
                caps[k] = True
    return caps


def needs_primary(base: dict | None) -> bool:
    plugin = split_conf(base or {})[1]
    return "delegates" not in plugin and "clusterNetwork" not in plugin


def split_conf(base: dict) -> tuple:
    """(outer keys, plugin conf) of a netmeta conf or one-plugin conflist."""
    base = dict(base)
    if "plugins" in base:
        plugins = base.pop("plugins")
        if not isinstance(plugins, list) or len(plugins) != 1 or not isinstance(plugins[0], dict):
            raise InstallError("--config: a conflist must hold exactly one plugin, netmeta")
        return base, dict(plugins[0])
    outer = {k: base.pop(k) for k in ("cniVersion", "name") if k in base}
    return outer, base


def generate(base: dict | None, primary: dict | None, kubeconfig: str | None) -> dict:
    """The netmeta conflist: `base` (--config) completed with the primary network (auto), the
    kubeconfig path and the capabilities; validated by meta/config.load."""
    from cni import version
    from meta.config import load
    outer, plugin = split_conf(base or {})
    if plugin.setdefault("type", "netmeta") != "netmeta":
        raise InstallError(f"--config: type is {str(plugin['type'])[:40]!r}, not netmeta")
    if "delegates" not in plugin and "clusterNetwork" not in plugin:
        if primary is None:
            raise InstallError("no cluster default network to embed")
        plugin["delegates"] = [primary]
    if kubeconfig and "kubeconfig" not in plugin:
        plugin["kubeconfig"] = kubeconfig
    caps = plugin.pop("capabilities", None)
    if caps is None:
        caps = {POD_ANNOTATIONS: True}
        for d in plugin.get("delegates") or []:
            if isinstance(d, dict):
                caps.update(capabilities(d))
        caps = dict(sorted(caps.items()))
    delegates = plugin.get("delegates") or [{}]
    cni_version = outer.pop("cniVersion", None) or (delegates[0] or {}).get("cniVersion") or version.CURRENT
    name = outer.pop("name", None) or "netmeta"
    ordered = {"type": plugin.pop("type"), "capabilities": caps}
    ordered.update((k, v) for k, v in plugin.items() if k != "delegates")
    if "delegates" in plugin:
        ordered["delegates"] = plugin["delegates"]
    try:
        version.require_supported(cni_version)
        load(dict(ordered, name=name, cniVersion=cni_version))
    except CNIError as e:
        raise InstallError(f"the netmeta config would be rejected: {e}") from None
    return {"cniVersion": cni_version, "name": name, **outer, "plugins": [ordered]}


# ---------------- the kubeconfig ----------------
def kubeconfig_text(sa_dir: str, env) -> str:
    host, port = env.get("KUBERNETES_SERVICE_HOST", ""), env.get("KUBERNETES_SERVICE_PORT") or "443"
    import base64
    parts = {}
    for fname in ("token", "ca.crt"):
        try:
            with open(os.path.join(sa_dir, fname), "rb") as f:
                parts[fname] = f.read()
        except OSError as e:
            raise InstallError(f"failed to read the service account's {fname}: {e} "
                               "(automountServiceAccountToken off? or pass --no-kubeconfig)") from None
    token = parts["token"].decode("ascii", "replace").strip()
    if not token or any(c.isspace() or not c.isprintable() for c in token):
        raise InstallError(f"the service account token in {sa_dir} is empty or malformed")
    if not port.isdigit() or any(c in host for c in "/ \"'\n"):
        raise InstallError(f"bad KUBERNETES_SERVICE_HOST/PORT {host!r}:{port!r}")
    server = f"https://[{host}]:{port}" if ":" in host else f"https://{host}:{port}"
    return "\n".join([
        KUBECONFIG_MARK, "apiVersion: v1", "kind: Config", "clusters:", "- name: local", "  cluster:",
        f"    server: {json.dumps(server)}",
        f"    certificate-authority-data: {base64.b64encode(parts['ca.crt']).decode()}",
        "users:", "- name: netmeta", "  user:", f"    token: {json.dumps(token)}",
        "contexts:", "- name: netmeta", "  context:", "    cluster: local", "    user: netmeta",
        "current-context: netmeta", ""])
