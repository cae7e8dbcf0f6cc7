"""Kubeconfig credentials cni/kube/client.py's small loader lacks, read by the `kubernetes`
package's own loader: exec credential plugins (client.authentication.k8s.io ExecCredential),
auth-providers (oidc, gcp, azure), basic auth, several KUBECONFIG files merged, a chosen
context. netmeta's small client still makes every request (the pattern kopf uses: its own API
client, credentials piggybacked on the official library's loader: nolar/kopf
kopf/_core/intents/piggybacking.py, login_via_client, which reads host, CA, client cert and
get_api_key_with_prefix() off a loaded Configuration as we do). Imported only for such a
kubeconfig: `kubernetes` costs ~20 MB RSS and ~190 ms to import, which a token or certificate
kubeconfig and the in-cluster service account never pay.

Refresh: the loader hooks `Configuration.refresh_api_key_hook`, which re-runs an exec plugin
once its ExecCredential's expirationTimestamp has passed (kubernetes 37.0.3
config/kube_config.py, KubeConfigLoader._set_config: 5 minutes early); the Endpoint asks it on
every request, which costs a dict lookup until then. A 401 reloads the whole kubeconfig (the
plugin runs again; kopf invalidates its credentials on a 401 and logs in again the same way:
kopf/_cogs/clients/auth.py, reauthenticated_request). A plugin that hands out client
certificates is read once: its certificate is not renewed without a restart.
"""
import os
import tempfile

_TMP = None   # the loader writes CA / client cert data to files: ours go in one private 0700 dir


class CredentialError(Exception):
    """The kubeconfig cannot be loaded (cni/kube/client.py reports it as its ConfigError)."""


class Credentials:
    """A kubeconfig as the official loader reads it: where the server is, its TLS files, and
    `header(force)`, the Authorization value ("Bearer ...", "Basic ...") or None. Nothing of
    ours is imported here: cni/kube/client.py builds its Endpoint from these."""

    def __init__(self, path: str, context: str | None = None, product: str = ""):
        """`product`: the caller's name, for the temp directory's prefix and the pip extra
        named when `kubernetes` is missing (netmeta's: delegates/registry.py SHIM.product)."""
        if context is None and os.pathsep in path:
            context = _first_current_context(path)
        self.path, self.context, self.product = path, context, product
        self.cfg = self.load()

    def load(self):
        global _TMP
        try:
            from kubernetes.client import Configuration
            from kubernetes.config import kube_config
        except ImportError:
            hint = f"pip install '{self.product}[kube-credentials]'" if self.product else "pip install kubernetes"
            raise CredentialError(f"kubeconfig {self.path}: its credentials need the `kubernetes` Python "
                                  f"package ({hint})") from None
        if _TMP is None:
            import atexit
            import shutil
            _TMP = tempfile.mkdtemp(prefix=f"{self.product}-kubecreds-" if self.product else "kubecreds-")
            # the library's atexit removes the files it writes there, not the directory
            atexit.register(shutil.rmtree, _TMP, True)
        cfg = Configuration()
        try:
            kube_config.load_kube_config(self.path, self.context, client_configuration=cfg,
                                         persist_config=False, temp_file_path=_TMP)
        except Exception as e:   # ConfigException, yaml, OSError, an auth-provider's own errors
            raise CredentialError(f"kubeconfig {self.path}: {type(e).__name__}: {str(e)[:300]}") from None
        if not cfg.host or not cfg.host.startswith(("https://", "http://")):
            raise CredentialError(f"kubeconfig {self.path}: cluster server {cfg.host!r} is not an http(s) URL")
        if not cfg.api_key.get("BearerToken") and not cfg.cert_file:
            # the loader logs a failed exec plugin and carries on without a credential
            raise CredentialError(f"kubeconfig {self.path}: its user gives no credential "
                                  "(an exec plugin or auth-provider that failed?)")
        return cfg

    def header(self, force: bool = False) -> str | None:
        if force:            # after a 401: run the plugin again even before expirationTimestamp
            self.cfg = self.load()
        return self.cfg.get_api_key_with_prefix("BearerToken")   # runs the refresh hook


def _first_current_context(paths: str) -> str | None:
    """kubectl merges KUBECONFIG files with "the first file to set a particular value or map key
    wins" (kubernetes.io/docs/concepts/configuration/organize-cluster-access-kubeconfig,
    "Merging kubeconfig files"), current-context included; the `kubernetes` package's merger
    lets the last file's current-context win (37.0.3 KubeConfigMerger.load_config)."""
    import yaml
    for p in paths.split(os.pathsep):
        try:
            with open(os.path.expanduser(p), encoding="utf-8") as f:
                doc = yaml.safe_load(f)
        except (OSError, yaml.YAMLError):
            continue   # a missing file is skipped, as both do; a broken one fails in the loader
        if isinstance(doc, dict) and doc.get("current-context"):
            return doc["current-context"]
    return None
