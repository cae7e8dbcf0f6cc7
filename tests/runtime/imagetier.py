"""The image tier's pieces: a local Debian base (debootstrap, no registry), the image built from
conf/Containerfile the way `make image` builds it, and the DaemonSet's two containers run as the
kubelet would run them, with every host path the DaemonSet mounts replaced by a throw-away
directory and the pod network (hostNetwork) a throw-away network namespace.

Cache: /var/cache/netmeta/image-tier holds the debootstrap rootfs tarball and podman's storage
(the base and the build's layers), so a second run only rebuilds what changed."""
import os
import subprocess
import tarfile

import yaml

from tests.cnirun import REPO

CACHE = "/var/cache/netmeta/image-tier"
BASE_REF = "localhost/netmeta-base:bookworm"
IMAGE_REF = "localhost/netmeta:tier"
MIRROR = "http://deb.debian.org/debian"
# DaemonSet host paths that get a throw-away directory; the others (/sys, /var/run/netns, /) are
# the machine's own, as on a node
THROWAWAY = ("/opt/cni/bin", "/etc/cni/net.d", "/run/netmeta", "/var/lib/cni", "/run/xtables.lock")


def base_tarball() -> str:
    """debootstrap --variant=minbase bookworm, as a tarball (cached)."""
    tarball = os.path.join(CACHE, "bookworm-minbase.tar")
    if os.path.exists(tarball):
        return tarball
    os.makedirs(CACHE, exist_ok=True)
    root = os.path.join(CACHE, "rootfs.tmp")
    subprocess.run(["rm", "-rf", root], check=True)
    subprocess.run(["debootstrap", "--variant=minbase", "bookworm", root, MIRROR], check=True,
                   capture_output=True, timeout=1800)
    with tarfile.open(tarball + ".tmp", "w") as tf:
        tf.add(root, arcname=".")
    os.rename(tarball + ".tmp", tarball)
    subprocess.run(["rm", "-rf", root], check=True)
    return tarball


def ensure_base(pm) -> str:
    if pm.run("image", "exists", BASE_REF, check=False).returncode != 0:
        pm.run("import", "-q", base_tarball(), BASE_REF, timeout=600)
    return BASE_REF


def build(pm, env: dict) -> str:
    """`make wheels` (host pip, pinned + hashed), then the Containerfile on the local base."""
    subprocess.run(["make", "-s", "wheels"], cwd=REPO, check=True, capture_output=True, timeout=600)
    pm.run("build", "-q", "--network", "host", "-f", "conf/Containerfile", "--build-arg", f"BASE={ensure_base(pm)}",
           "-t", IMAGE_REF,
           os.path.join(REPO, "."), timeout=1800)
    return IMAGE_REF


def image_size(pm, ref: str) -> int:
    return int(pm.run("image", "inspect", "--format", "{{.Size}}", ref).stdout.strip())


def manifests() -> tuple:
    """(DaemonSet, ConfigMap) as shipped."""
    docs = {}
    for f in ("daemonset.yaml", "configmap.yaml"):
        with open(os.path.join(REPO, "conf", f)) as fh:
            for d in yaml.safe_load_all(fh):
                docs[d["kind"]] = d
    return docs["DaemonSet"], docs["ConfigMap"]


def podman_args(container: dict, volumes: dict, host: dict) -> list:
    """`podman run` options for one of the DaemonSet's containers: its volume mounts (hostPath
    through `host`, a map of host path -> throw-away path; configMap and emptyDir as given in
    `host` by volume name), env, user and privileges from its securityContext."""
    args = []
    for m in container.get("volumeMounts", []):
        vol = volumes[m["name"]]
        if "hostPath" in vol:
            src = host.get(vol["hostPath"]["path"], vol["hostPath"]["path"])
        else:
            src = host[m["name"]]
        opts = ["ro"] if m.get("readOnly") else []
        if m.get("mountPropagation") == "HostToContainer":
            opts.append("rslave")
        args += ["-v", f"{src}:{m['mountPath']}" + (":" + ",".join(opts) if opts else "")]
    for e in container.get("env", []):
        if "value" in e:
            args += ["-e", f"{e['name']}={e['value']}"]
    sc = container.get("securityContext", {})
    if sc.get("privileged"):
        args.append("--privileged")
    if "runAsUser" in sc:
        args += ["--user", str(sc["runAsUser"])]
    if "ALL" in (sc.get("capabilities") or {}).get("drop", []):
        args += ["--cap-drop", "ALL"]
    if sc.get("readOnlyRootFilesystem"):
        args.append("--read-only")
    return args


# run a CNI call as the runtime on the node would: in a private mount namespace where the
# throw-away directories sit at the host paths (/run and /opt get a private tmpfs first, so
# nothing is created on the machine; /run/netns is carried over)
CNI_CALL = r"""set -e
mount --make-rprivate /
mkdir -p "$T/keep-netns" && mount --rbind /run/netns "$T/keep-netns"
mount -t tmpfs tmpfs /run && mkdir -p /run/netns /run/netmeta && mount --rbind "$T/keep-netns" /run/netns
mount --bind "$T/run/netmeta" /run/netmeta
mount -t tmpfs tmpfs /opt && mkdir -p /opt/cni/bin && mount --bind "$T/opt/cni/bin" /opt/cni/bin
mount --bind "$T/etc/cni/net.d" /etc/cni/net.d
exec /opt/cni/bin/netmeta
"""


def cni_call(throwaway: str, netns_for_runtime: str, env: dict, stdin: bytes) -> subprocess.CompletedProcess:
    e = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "T": throwaway, **env}
    return subprocess.run(["ip", "netns", "exec", netns_for_runtime, "unshare", "--mount", "sh", "-c", CNI_CALL],
                          input=stdin, env=e, capture_output=True, timeout=120)
