"""`netmeta install`: put netmeta on a node, from a DaemonSet's init (sidecar) container.

  netmeta install [--bin-dir /opt/cni/bin] [--conf-dir /etc/cni/net.d]
                  [--conf-name 00-netmeta.conflist] [--config FILE | --no-config]
                  [--primary NAME] [--wait-primary SECONDS]
                  [--kubeconfig PATH | --no-kubeconfig] [--service-account-dir DIR]
                  [--python PATH] [--paths DIR:DIR...] [--lib-dir DIR] [--plugins netmeta,sriov,fixipam]
                  [--shim auto|none|PATH]
                  [--force] [--dry-run] [--ready-file PATH]
                  [--cleanup-on-exit [--refresh SECONDS] [-- COMMAND ARGS...]]

What it writes, in this order, so the runtime never selects a config whose plugin is missing:
  1. --lib-dir (optional): a copy of netmeta's own packages for the host, in a directory named
     after their content hash, renamed into place whole (a running shim keeps its old copy);
  2. the executables into the CNI bin dir (0755): the native shim (shim/netmeta-shim.c, ~2 ms
     to reach the daemon) named netmeta/sriov/fixipam, with the Python entries it falls back to
     (meta/install/entrypoints.py scripts: `python -IS`) in BIN_DIR/.netmeta/, written first; or, with
     no native shim (--shim none, or auto finding none), the Python entries themselves;
  3. a kubeconfig from the pod's service account (token, CA, KUBERNETES_SERVICE_HOST/PORT), 0600;
  4. the netmeta CNI config (a conflist, 0600) into the conf dir, named to sort first.
Each file is written atomically (temp file + rename: a running shim never sees a torn file or
"text file busy"). A file of the same name that netmeta install did not write is refused
(nothing is written) unless --force. Re-running changes nothing that is already right.

The CNI config is --config FILE (a netmeta plugin conf or a one-plugin conflist). When that
names no cluster default network (neither `delegates` nor `clusterNetwork`), or there is no
--config, it is completed like Multus's auto mode: the first *.conf / *.conflist / *.json by
name in the conf dir that is not ours (or --primary) becomes `delegates[0]` unchanged, its
cniVersion is kept, and `capabilities` (unless given) are io.kubernetes.cri.pod-annotations
plus every capability the delegate declares.

--cleanup-on-exit stays running (as the daemon's sidecar, or as the wrapper of `-- COMMAND`),
re-applies every --refresh seconds (a rewritten primary config, a rotated token), and on
SIGTERM/SIGINT (after COMMAND has exited) removes what it wrote, so a removed netmeta never breaks
new pods: the runtime falls back to the primary config.
"""
# The parts, beside this module (the Installer and the command line):
#   meta/install/files.py  InstallError, the log, and whose file is it (ours, or someone else's)
#   meta/install/conf.py   the CNI config (Multus auto mode: the primary as delegates[0]) and the kubeconfig
#   meta/install/libdir.py    the content-addressed library copy (--lib-dir) and the retirement of old ones
import argparse
import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import time

from cni.files import atomic_write
from delegates import registry

from . import entrypoints
from .conf import CONF_EXT as CONF_EXT
from .conf import POD_ANNOTATIONS as POD_ANNOTATIONS
from .conf import capabilities as capabilities
from .conf import conf_names, find_primary, generate, kubeconfig_text, needs_primary
from .conf import split_conf as split_conf
from .files import ELF as ELF
from .files import KUBECONFIG_MARK as KUBECONFIG_MARK
from .files import InstallError, find_shim, is_our_conf, is_our_exe, is_our_kubeconfig, read_text, say

# The Installer looks lib_sources and RETIRE_AFTER up here, in this module, at each use: tests
# patch install.lib_sources and install.RETIRE_AFTER.
from .libdir import LIB_MARK, RETIRE_AFTER, RETIRED, lib_name, lib_sources, retire_old, write_lib
from .libdir import PACKAGES as PACKAGES

SA_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
ENTRY_DIR = ".netmeta"       # beside the native shim: the Python entries it falls back to


# ---------------- the installer ----------------
class Installer:
    def __init__(self, a, env):
        self.a, self.env = a, env
        self.conf_path = os.path.join(a.conf_dir, a.conf_name)
        self.kube_path = a.kubeconfig or os.path.join(a.conf_dir, "netmeta.d", "netmeta.kubeconfig")
        self.kube_on = not a.no_kubeconfig and bool(env.get("KUBERNETES_SERVICE_HOST"))
        self.base = self._load_base() if a.config else None
        self.sources: list | None = None
        self.lib: str | None = None
        if a.lib_dir:
            self.sources = lib_sources()
            self.lib = os.path.join(a.lib_dir, lib_name(self.sources))
        self.shim = find_shim(a.shim)
        self.written: dict = {}       # path -> the bytes we put there (or found already right)
        self.lib_written = False
        self.created_dirs: list = []
        self.stopping = 0             # the signal that asked us to stop
        self.kept = False             # the primary vanished and we kept our config (logged once)

    def _load_base(self) -> dict:
        try:
            with open(self.a.config, "rb") as f:
                base = json.loads(f.read())
        except (OSError, ValueError) as e:
            raise InstallError(f"failed to read --config {self.a.config}: {e}") from None
        if not isinstance(base, dict):
            raise InstallError(f"--config {self.a.config}: not a JSON object")
        return base

    def _sleep(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while not self.stopping and time.monotonic() < end:
            time.sleep(min(0.2, max(0.0, end - time.monotonic())))

    # --- planning: everything is computed and checked before anything is written ---
    def config(self, wait: float = 0.0) -> dict | None:
        primary = None
        if needs_primary(self.base):
            found = find_primary(self.a.conf_dir, self.a.conf_name, self.a.primary)
            end = time.monotonic() + wait
            if found is None and wait > 0:
                say(f"waiting up to {wait:.0f}s for the cluster network's CNI config in {self.a.conf_dir}")
            while found is None and time.monotonic() < end and not self.stopping:
                self._sleep(1.0)
                found = find_primary(self.a.conf_dir, self.a.conf_name, self.a.primary)
            if found is None:
                if self.stopping:
                    raise InstallError("stopped while waiting for the primary CNI config")
                if self.conf_path in self.written:   # refresh: the primary went away, keep ours
                    if not self.kept:
                        say(f"no primary CNI config in {self.a.conf_dir} any more; keeping {self.conf_path}")
                    self.kept = True
                    return None
                where = self.a.primary or f"no *.conf / *.conflist / *.json in {self.a.conf_dir} but ours"
                raise InstallError(f"no primary CNI config to embed as the cluster default network ({where}): "
                                   "install the cluster's network first, wait for it with --wait-primary, "
                                   "or give --config with delegates or clusterNetwork")
            primary = found[1]
            self.kept = False
        return generate(self.base, primary, self.kube_path if self.kube_on else None)

    def plan(self, wait: float = 0.0) -> list:
        """[(path, bytes, mode, is_ours)] in write order."""
        a, out = self.a, []
        paths: list[str] | None
        if a.lib_dir:
            assert self.lib is not None     # __init__ sets it with lib_dir
            paths = [self.lib] + (a.paths.split(":") if a.paths else [])
        else:
            paths = a.paths.split(":") if a.paths else None
        if paths is None:
            paths = _default_paths()
        python = a.python or os.path.realpath(sys.executable)
        for name in a.plugins:     # the fallback first: a shim must never miss its entry
            script = entrypoints.script(registry.MAIN[name], python, paths).encode()
            if self.shim is None:
                out.append((os.path.join(a.bin_dir, name), script, 0o755, is_our_exe))
            else:
                out.append((os.path.join(a.bin_dir, ENTRY_DIR, name), script, 0o755, is_our_exe))
        if self.shim is not None:
            out += [(os.path.join(a.bin_dir, name), self.shim, 0o755, is_our_exe) for name in a.plugins]
        if self.kube_on:
            out.append((self.kube_path, kubeconfig_text(a.service_account_dir, self.env).encode(), 0o600,
                        is_our_kubeconfig))
        if not a.no_config:
            conf = self.config(wait)
            if conf is not None:
                first = next((n for n in conf_names(a.conf_dir) if n != a.conf_name), None)
                if first is not None and first < a.conf_name:
                    raise InstallError(f"{first} sorts before {a.conf_name} in {a.conf_dir}: the runtime uses the "
                                       "first config by name and would never call netmeta; pass a --conf-name "
                                       "that sorts first")
                out.append((self.conf_path, (json.dumps(conf, indent=2) + "\n").encode(), 0o600, is_our_conf))
        for path, _, _, ours in out:
            current = read_text(path)
            if current is not None and current != self.written.get(path) and not ours(current):
                if not a.force:
                    raise InstallError(f"refusing to replace {path}: netmeta install did not write it "
                                       "(move it away, or pass --force)")
                say(f"replacing {path}, which netmeta install did not write (--force)")
        if self.lib and os.path.isdir(self.lib) and not os.path.isfile(os.path.join(self.lib, LIB_MARK)) \
                and not a.force:
            raise InstallError(f"refusing to replace {self.lib}: netmeta install did not write it (--force)")
        return out

    # --- writing ---
    def _mkdirs(self, d: str, mode: int) -> None:
        missing = []
        while d and not os.path.isdir(d):
            missing.append(d)
            d = os.path.dirname(d)
        for m in reversed(missing):
            os.mkdir(m, mode)
            os.chmod(m, mode)
            self.created_dirs.append(m)

    def install(self, wait: float = 0.0) -> int:
        """Write what differs; returns how many files changed."""
        plan = self.plan(wait)
        changed = 0
        if self.lib:
            self._mkdirs(self.a.lib_dir, 0o755)
            if os.path.isdir(self.lib) and not os.path.isfile(os.path.join(self.lib, LIB_MARK)):
                shutil.rmtree(self.lib)   # --force (plan refused otherwise)
            if not os.path.isdir(self.lib):
                assert self.sources is not None     # __init__ sets both with lib_dir
                write_lib(self.lib, self.sources)
                say(f"wrote {self.lib}")
                changed += 1
            with_retired = os.path.join(self.lib, RETIRED)
            if os.path.exists(with_retired):
                os.unlink(with_retired)
            self.lib_written = True
        for path, data, mode, _ in plan:
            self._mkdirs(os.path.dirname(path), 0o700 if path == self.kube_path else 0o755)
            st = os.stat(path) if os.path.exists(path) else None
            if st is None or read_text(path) != data or stat.S_IMODE(st.st_mode) != mode:
                atomic_write(path, data, mode=mode)
                say(f"wrote {path}")
                changed += 1
            self.written[path] = data
        if self.lib:
            retire_old(self.a.lib_dir, self.lib, RETIRE_AFTER)
        return changed

    def cleanup(self) -> None:
        """Remove what we wrote (config first, so the runtime stops selecting netmeta), but not
        a file someone changed since; then the library copy and the directories we created."""
        for path, data in reversed(list(self.written.items())):
            current = read_text(path)
            if current is None:
                continue
            if current != data:
                say(f"left {path}: changed since netmeta install wrote it")
                continue
            os.unlink(path)
            say(f"removed {path}")
        self.written.clear()
        if self.lib_written:
            for n in os.listdir(self.a.lib_dir):
                p = os.path.join(self.a.lib_dir, n)
                if p == self.lib or (n.startswith("lib-") and os.path.isfile(os.path.join(p, RETIRED))):
                    shutil.rmtree(p, ignore_errors=True)
                    say(f"removed {p}")
            self.lib_written = False
        for d in reversed(self.created_dirs):
            try:
                os.rmdir(d)
            except OSError:
                pass
        self.created_dirs.clear()

    def run(self, command: list) -> int:
        """--cleanup-on-exit: install, stay (refreshing), clean up on SIGTERM/SIGINT."""
        def on_signal(signum, _frame):
            self.stopping = signum
        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
        child = None
        rc = 0
        try:
            self.install(wait=self.a.wait_primary)
            if self.stopping:
                return 0
            self._ready(True)
            say(f"installed; cleaning up on SIGTERM/SIGINT (refresh every {self.a.refresh:g}s)")
            if command:
                try:
                    child = subprocess.Popen(command)
                except OSError as e:
                    raise InstallError(f"failed to start {command[0]}: {e}") from None
            next_refresh = time.monotonic() + self.a.refresh
            while not self.stopping and (child is None or child.poll() is None):
                time.sleep(0.2)
                if time.monotonic() >= next_refresh and not self.stopping:
                    next_refresh = time.monotonic() + self.a.refresh
                    try:
                        self.install()
                    except (InstallError, OSError) as e:
                        say(f"refresh failed (will retry): {e}")
            if child is not None:
                if child.poll() is None:
                    child.send_signal(self.stopping)
                rc = child.wait()
                rc = 128 - rc if rc < 0 else rc
                say(f"{command[0]} exited with {rc}")
            return rc
        finally:
            self._ready(False)
            if child is not None and child.poll() is None:
                child.kill()
                child.wait()
            self.cleanup()

    def _ready(self, on: bool) -> None:
        if self.a.ready_file:
            if on:
                atomic_write(self.a.ready_file, "installed\n")
            else:
                try:
                    os.unlink(self.a.ready_file)
                except FileNotFoundError:
                    pass


def _default_paths() -> list:
    """meta/install/entrypoints.py's default: this checkout or site-packages, and site-packages."""
    import sysconfig
    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    return [repo, sysconfig.get_paths()["purelib"]]


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="netmeta install", description=__doc__.split("\n\n")[0])
    ap.add_argument("--bin-dir", default="/opt/cni/bin", help="the host's CNI bin dir (default %(default)s)")
    ap.add_argument("--conf-dir", default="/etc/cni/net.d", help="the host's CNI conf dir (default %(default)s)")
    ap.add_argument("--conf-name", default="00-netmeta.conflist", help="file name; must sort first (default %(default)s)")
    g = ap.add_mutually_exclusive_group()
    g.add_argument("--config", metavar="FILE", help="netmeta conf or conflist to install (completed from the primary "
                   "when it has neither delegates nor clusterNetwork)")
    g.add_argument("--no-config", action="store_true", help="write no CNI config (executables only)")
    ap.add_argument("--primary", metavar="NAME", help="the cluster network's config file in --conf-dir "
                    "(default: the first by name that is not ours)")
    ap.add_argument("--wait-primary", type=float, default=0.0, metavar="SECONDS",
                    help="wait this long for the primary config to appear (default 0)")
    g = ap.add_mutually_exclusive_group()
    g.add_argument("--kubeconfig", metavar="PATH", help="where to write the kubeconfig "
                   "(default CONF_DIR/netmeta.d/netmeta.kubeconfig); written when KUBERNETES_SERVICE_HOST is set")
    g.add_argument("--no-kubeconfig", action="store_true", help="write no kubeconfig (Kubernetes-free mode)")
    ap.add_argument("--service-account-dir", default=SA_DIR, metavar="DIR", help="token and ca.crt (default %(default)s)")
    ap.add_argument("--python", metavar="PATH", help="interpreter the executables run with, as the host sees it "
                    "(default: this one)")
    ap.add_argument("--paths", metavar="DIR:DIR", help="sys.path entries of the executables (default: this "
                    "installation's; with --lib-dir: added after the library copy)")
    ap.add_argument("--lib-dir", metavar="DIR", help="copy netmeta's packages here (a host path) and point the "
                    "executables at the copy")
    ap.add_argument("--plugins", default=",".join(registry.NAMES), help="executables to install (default %(default)s)")
    ap.add_argument("--shim", default="auto", metavar="auto|none|PATH",
                    help="the native shim to install as the executables: a path, none (Python entries "
                    "only), or auto: this installation's, if it was built (default %(default)s)")
    ap.add_argument("--force", action="store_true", help="replace files of the same name netmeta did not write")
    ap.add_argument("--dry-run", action="store_true", help="print the CNI config and the files, write nothing")
    ap.add_argument("--ready-file", metavar="PATH", help="created once installed, removed at cleanup (startupProbe)")
    ap.add_argument("--cleanup-on-exit", action="store_true", help="stay running; on SIGTERM/SIGINT remove what was written")
    ap.add_argument("--refresh", type=float, default=10.0, metavar="SECONDS",
                    help="with --cleanup-on-exit: re-apply this often (default %(default)s)")
    return ap


def main(argv: list) -> int:
    argv = list(argv)
    command = []
    if "--" in argv:
        i = argv.index("--")
        argv, command = argv[:i], argv[i + 1:]
    ap = parser()
    a = ap.parse_args(argv)
    a.plugins = [p for p in a.plugins.split(",") if p]
    bad = [p for p in a.plugins if p not in registry.PLUGINS]
    if bad:
        ap.error(f"--plugins: unknown {bad[0]!r} (choose from {', '.join(registry.NAMES)})")
    if "netmeta" not in a.plugins and not a.no_config:
        ap.error("--plugins without netmeta needs --no-config (the CNI config calls netmeta)")
    if not a.conf_name.endswith(".conflist") or "/" in a.conf_name:
        ap.error("--conf-name must be a file name ending in .conflist")
    if command and not a.cleanup_on_exit:
        ap.error("-- COMMAND needs --cleanup-on-exit")
    if a.refresh <= 0 or a.wait_primary < 0:
        ap.error("--refresh must be > 0 and --wait-primary >= 0")
    if a.shim not in ("auto", "none") and not os.path.isabs(a.shim):
        ap.error("--shim must be auto, none or an absolute path")
    for opt in ("bin_dir", "conf_dir", "lib_dir", "kubeconfig", "python"):
        v = getattr(a, opt)
        if v is not None and not os.path.isabs(v):
            ap.error(f"--{opt.replace('_', '-')} must be an absolute path")
    try:
        inst = Installer(a, os.environ)
        if a.dry_run:
            for path, data, mode, _ in inst.plan(a.wait_primary):
                say(f"would write {path} ({len(data)} bytes, mode {mode:o})")
                if path == inst.conf_path:
                    sys.stdout.write(data.decode())
            return 0
        if a.cleanup_on_exit:
            return inst.run(command)
        inst.install(wait=a.wait_primary)
        inst._ready(True)
        return 0
    except InstallError as e:
        say(f"error: {e}")
        return 1
    except OSError as e:
        say(f"error: failed to install: {e}")
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
