"""A private containerd 1.6 with its CRI plugin, for the kubelet path (TESTING.md, Tier 4).

Everything lives under one work directory: root, state, the gRPC/ttrpc sockets, runc's state
(`options.Root`), the opt plugin dir, the CNI bin_dir (ONE directory: symlinks to the plugins,
recorders in front of the ones named in `record`) and conf_dir (the conflist given). Not under
it, because containerd 1.6 hard-codes them: pod netns in /var/run/netns/cni-<uuid> (removed by
StopPodSandbox, and by `stop()` for those the client saw) and shim sockets in
/run/containerd/s/<sha256 of our socket/ns/id> (removed by each shim when it exits, by `stop()`
for a shim it had to kill; /run/containerd/{s,} themselves only if this run created them).

`stop()` ends what `start()` started and nothing else: remaining sandboxes are stopped and
removed over CRI (as kubelet would), containerd gets SIGTERM (SIGKILL after a grace period),
shims are the processes whose argv holds `-address <our socket>`, killed with their children;
then leftover mounts under the work directory and the netns the client saw are removed.
"""
import hashlib
import json
import os
import shutil
import signal
import subprocess
import time

from . import image, procs, recorder

NETNS_DIR = "/var/run/netns"
SHIM_SOCKET_DIRS = ("/run/containerd/s", "/run/containerd")   # created by containerd 1.6 itself
BINARIES = ("containerd", "containerd-shim-runc-v2", "ctr", "runc")

_CONFIG = """version = 2
root = "{root}"
state = "{state}"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",
                    "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.zfs",
                    "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing"]
[grpc]
  address = "{sock}"
[ttrpc]
  address = "{sock}.ttrpc"
[debug]
  level = "{level}"
[plugins."io.containerd.internal.v1.opt"]
  path = "{opt}"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{pause}"
  # runc here cannot set the sandbox's oom_score_adj=-998 ("can't get final child's PID")
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        Root = "{runc_root}"
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "{bin_dir}"
    conf_dir = "{conf_dir}"
    max_conf_num = 1
"""


class RuntimeUnavailable(RuntimeError):
    """containerd cannot be run here (not installed, or it does not start)."""


def missing_binaries() -> list:
    return [b for b in BINARIES if shutil.which(b, path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin") is None]


class Containerd:
    def __init__(self, workdir: str, conflist: dict, plugins: dict, plugin_dirs=("/usr/lib/cni",),
                 record=("netmeta",), log_level: str = "info"):
        """plugins: {type: executable} linked into bin_dir after everything in plugin_dirs;
        record: types whose calls go through `recorder` (log: `self.record_log`)."""
        self.workdir = os.path.abspath(workdir)
        w = self.workdir
        self.socket = os.path.join(w, "ctrd.sock")
        self.root, self.state = os.path.join(w, "root"), os.path.join(w, "state")
        self.bin_dir, self.conf_dir = os.path.join(w, "cni-bin"), os.path.join(w, "net.d")
        self.config_file, self.log_file = os.path.join(w, "config.toml"), os.path.join(w, "containerd.log")
        self.record_log = os.path.join(w, "cni-calls.jsonl")
        self.conflist, self.plugins, self.plugin_dirs = conflist, dict(plugins), plugin_dirs
        self.record, self.log_level = tuple(record), log_level
        self.proc = None
        self._made_dirs = []
        self.stopped = False
        self.client = None
        self.pause_ref = None
        self.startup_s = None

    # ---- set-up ----
    def _fill_bin_dir(self) -> None:
        os.makedirs(self.bin_dir, exist_ok=True)
        links = {}
        for d in self.plugin_dirs:
            for name in sorted(os.listdir(d)):
                links[name] = os.path.join(d, name)
        links.update(self.plugins)
        for name, target in links.items():
            dst = os.path.join(self.bin_dir, name)
            if os.path.lexists(dst):
                os.unlink(dst)
            if name in self.record:
                recorder.install(self.bin_dir, name, target, self.record_log)
            else:
                os.symlink(target, dst)

    def _write_config(self) -> None:
        os.makedirs(self.conf_dir, exist_ok=True)
        name = self.conflist.get("name", "net")
        with open(os.path.join(self.conf_dir, f"10-{name}.conflist"), "w") as f:
            json.dump(self.conflist, f, indent=2)
        with open(self.config_file, "w") as f:
            f.write(_CONFIG.format(root=self.root, state=self.state, sock=self.socket, level=self.log_level,
                                   opt=os.path.join(self.workdir, "opt"), pause=self.pause_ref,
                                   runc_root=os.path.join(self.workdir, "runc"), bin_dir=self.bin_dir,
                                   conf_dir=self.conf_dir))

    def log_tail(self, n: int = 30) -> str:
        try:
            with open(self.log_file, errors="replace") as f:
                return "".join(f.readlines()[-n:])
        except OSError:
            return ""

    def start(self, timeout: float = 30.0) -> "Containerd":
        missing = missing_binaries()
        if missing:
            raise RuntimeUnavailable(f"not installed: {', '.join(missing)} (run tests/runtime/install.sh)")
        os.makedirs(self.workdir, exist_ok=True)
        self._made_dirs = [d for d in SHIM_SOCKET_DIRS if not os.path.exists(d)]
        tarball, self.pause_ref = image.build()
        self._fill_bin_dir()
        self._write_config()
        t0 = time.monotonic()
        with open(self.log_file, "ab") as log:
            self.proc = subprocess.Popen(["containerd", "--config", self.config_file], stdout=log,
                                         stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         start_new_session=True)
        try:
            self._wait_ready(t0 + timeout)
            self.startup_s = time.monotonic() - t0
            self._ctr("images", "import", tarball)
            if not self.client.image_present(self.pause_ref):
                raise RuntimeUnavailable(f"pause image {self.pause_ref} not visible to CRI after import")
            self._wait_network_ready(t0 + timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_ready(self, deadline: float) -> None:
        while not os.path.exists(self.socket):
            self._check_alive()
            if time.monotonic() > deadline:
                raise RuntimeUnavailable(f"containerd socket did not appear\n{self.log_tail()}")
            time.sleep(0.02)
        from .cri import CRIClient  # grpc stubs: imported only once containerd runs
        self.client = CRIClient(self.socket)
        while True:
            self._check_alive()
            try:
                self.client.version(timeout=2)
                return
            except Exception as e:
                if time.monotonic() > deadline:
                    raise RuntimeUnavailable(f"CRI did not answer: {e}\n{self.log_tail()}") from None
                time.sleep(0.05)

    def _wait_network_ready(self, deadline: float) -> None:
        while True:
            st = self.client.status().get("NetworkReady")
            if st and st[0]:
                return
            if time.monotonic() > deadline:
                raise RuntimeUnavailable(f"CRI network not ready: {st}\n{self.log_tail()}")
            time.sleep(0.05)

    def _check_alive(self) -> None:
        if self.proc.poll() is not None:
            raise RuntimeUnavailable(f"containerd exited with {self.proc.returncode}\n{self.log_tail()}")

    def _ctr(self, *args: str) -> str:
        p = subprocess.run(["ctr", "-a", self.socket, "-n", "k8s.io", *args], capture_output=True, text=True,
                           timeout=60)
        if p.returncode:
            raise RuntimeUnavailable(f"ctr {' '.join(args)} failed: {p.stderr.strip()}")
        return p.stdout

    # ---- inspection ----
    def shims(self) -> list:
        return procs.with_args("-address", self.socket)

    def leftovers(self) -> dict:
        """What a stopped runtime must not leave: processes, mounts, netns the client saw."""
        return {"containerd": bool(self.proc and procs.alive(self.proc.pid)), "shims": self.shims(),
                "mounts": procs.mounts_under(self.workdir),
                "netns": sorted(p for p in (self.client.netns_seen if self.client else ()) if os.path.lexists(p))}

    def _shim_socket(self, pid: int) -> str | None:
        """containerd 1.6 (runtime/v2/shim.SocketAddress): /run/containerd/s/sha256(<address>/<ns>/<id>)."""
        argv = procs.cmdline(pid)
        opts = dict(zip(argv[1::2], argv[2::2])) if len(argv) > 2 else {}
        if "-namespace" not in opts or "-id" not in opts:
            return None
        key = os.path.join(self.socket, opts["-namespace"], opts["-id"]).encode()
        return os.path.join(SHIM_SOCKET_DIRS[0], hashlib.sha256(key).hexdigest())

    # ---- tear-down ----
    def stop(self, grace: float = 10.0) -> dict:
        """End containerd and everything it spawned; returns what had to be forced (for tests)."""
        forced = {"sandboxes": [], "killed": False, "shims": [], "mounts": [], "netns": []}
        if self.proc is None or self.stopped:   # idempotent: a test may stop it before the fixture
            return forced
        if self.proc.poll() is None and self.client is not None:
            try:
                forced["sandboxes"] = self.client.remove_all()
            except Exception:
                pass
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(grace)
            except subprocess.TimeoutExpired:
                forced["killed"] = True
                procs.kill_tree(self.proc.pid)
                self.proc.wait(5)
        for pid in self.shims():
            sock = self._shim_socket(pid)
            forced["shims"].append(pid)
            procs.kill_tree(pid)
            if sock and os.path.exists(sock):   # a killed shim cannot remove its own socket
                os.unlink(sock)
        forced["mounts"] = procs.umount_under(self.workdir)
        if self.client is not None:
            forced["netns"] = [p for p in sorted(self.client.netns_seen) if procs.remove_netns(p)]
            self.client.close()
        for d in self._made_dirs:   # only the empty ones this run created
            try:
                os.rmdir(d)
            except OSError:
                pass
        self.stopped = True
        return forced

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
