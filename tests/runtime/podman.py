"""Rootful podman 4.3 (Debian) with its CNI backend, private to one test: its own
containers.conf / storage.conf / network dir / storage, so nothing touches the machine's podman
state, and `reset()` removes what it made. Facts of this machine (shared/TESTING.md, Tier 4):
runc (crun 1.8 refuses the hybrid cgroup layout), cgroupfs, explicit ulimits (podman's default
1048576 makes runc fail "error setting rlimit type 7"). Storage driver vfs: the image is one
busybox layer, and vfs leaves no overlay mounts behind. The image is tests/runtime/image.py's
busybox-static tarball (no registry), loaded with `podman load`."""
import json
import os
import resource
import shutil
import subprocess

from tests.runtime import image

PODMAN = shutil.which("podman")


def available() -> str | None:
    """None when the tier can run, else why not."""
    if os.geteuid() != 0:
        return "needs root"
    for tool in ("podman", "runc"):
        if shutil.which(tool) is None:
            return f"needs {tool} (apt-get install podman runc)"
    if not os.path.exists(image.BUSYBOX):
        return "needs busybox-static"
    return None


class Podman:
    def __init__(self, work: str, plugin_dirs: list, env: dict | None = None, graphroot: str | None = None,
                 driver: str = "vfs"):
        """graphroot: keep images there across runs (a cache; its runroot beside it, as overlay
        storage records its mounts there), else both under `work`."""
        self.work = work
        self.netdir = os.path.join(work, "net.d")
        os.makedirs(self.netdir, exist_ok=True)
        nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
        conf = os.path.join(work, "containers.conf")
        with open(conf, "w") as f:
            f.write(f"""[containers]
default_ulimits = ["nofile={nofile}:{nofile}", "nproc=32768:32768"]
[network]
network_backend = "cni"
cni_plugin_dirs = {json.dumps(plugin_dirs)}
network_config_dir = "{self.netdir}"
[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "{work}/events.log"
runtime = "runc"
tmp_dir = "{work}/tmp"
""")
        storage = os.path.join(work, "storage.conf")
        with open(storage, "w") as f:
            f.write(f'[storage]\ndriver = "{driver}"\ngraphroot = "{graphroot or work + "/storage"}"\n'
                    f'runroot = "{graphroot + "-run" if graphroot else work + "/runroot"}"\n')
        self.env = dict(os.environ, CONTAINERS_CONF=conf, CONTAINERS_STORAGE_CONF=storage,
                        XDG_RUNTIME_DIR=os.path.join(work, "xdg"), **(env or {}))
        self.image = None

    def run(self, *args, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess:
        p = subprocess.run([PODMAN, *args], env=self.env, capture_output=True, text=True, timeout=timeout)
        if check and p.returncode != 0:
            raise RuntimeError(f"podman {' '.join(args)}: rc={p.returncode}\n{p.stdout}\n{p.stderr}")
        return p

    def load_image(self) -> str:
        tarball, ref = image.build()
        self.run("load", "-q", "-i", tarball)
        self.image = ref
        return ref

    def network(self, conflist: dict) -> None:
        """A CNI network podman lists (`podman network ls`) from our conflist."""
        with open(os.path.join(self.netdir, f"{conflist['name']}.conflist"), "w") as f:
            json.dump(conflist, f)

    def container(self, network: str, script: str, *opts, check: bool = True) -> subprocess.CompletedProcess:
        """`podman run --rm` a busybox shell on `network` (no --name: podman makes one up)."""
        return self.run("run", "--rm", "--network", network, *opts, "--entrypoint", "/bin/sh", self.image,
                        "-c", script, check=check)

    def reset(self) -> None:
        """Remove every container and image of this private podman, then its directories."""
        self.run("rm", "-af", "-t", "0", check=False)
        self.run("system", "reset", "-f", check=False)
        shutil.rmtree(self.work, ignore_errors=True)
