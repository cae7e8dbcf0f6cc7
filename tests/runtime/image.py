"""A local pause image: busybox-static's `sleep infinity` in a one-layer docker-archive tarball,
built reproducibly (fixed mtimes/owners) and cached under /var/cache/netmeta so later runs only
`ctr images import` it."""
import hashlib
import io
import json
import os
import tarfile

BUSYBOX = "/bin/busybox"
CACHE_DIR = "/var/cache/netmeta"
REPO_NAME = "localhost/netmeta-pause"


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _tar(entries) -> bytes:
    """entries: (TarInfo, bytes | None); every header normalised so the bytes are reproducible."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tf:
        for info, data in entries:
            info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "", ""
            tf.addfile(info, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


def _entry(name, data=None, mode=0o755, kind=tarfile.REGTYPE, link=""):
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.linkname = kind, mode, link
    if data is not None:
        info.size = len(data)
    return info, data


def _layer(busybox: bytes) -> bytes:
    entries = [_entry("bin/", kind=tarfile.DIRTYPE), _entry("bin/busybox", busybox)]
    entries += [_entry(f"bin/{a}", kind=tarfile.SYMTYPE, mode=0o777, link="busybox") for a in ("sh", "sleep")]
    entries += [_entry(f"{d}/", kind=tarfile.DIRTYPE) for d in ("dev", "etc", "proc", "sys", "tmp")]
    return _tar(entries)


def build(busybox_path: str = BUSYBOX, cache_dir: str = CACHE_DIR) -> tuple[str, str]:
    """(tarball path, image reference); reuses the cached tarball of this busybox binary."""
    with open(busybox_path, "rb") as f:
        busybox = f.read()
    tag = _sha(busybox)[:12]
    ref = f"{REPO_NAME}:{tag}"
    path = os.path.join(cache_dir, f"pause-{tag}.tar")
    if os.path.exists(path):
        return path, ref
    layer = _layer(busybox)
    config = json.dumps({
        "architecture": "amd64", "os": "linux", "created": "1970-01-01T00:00:00Z",
        "config": {"Entrypoint": ["/bin/sleep", "infinity"], "Env": ["PATH=/bin"], "WorkingDir": "/"},
        "rootfs": {"type": "layers", "diff_ids": [f"sha256:{_sha(layer)}"]},
        "history": [{"created": "1970-01-01T00:00:00Z", "created_by": "netmeta tests/runtime/image.py"}],
    }, sort_keys=True).encode()
    cfg_name, layer_dir = f"{_sha(config)}.json", _sha(layer)
    manifest = json.dumps([{"Config": cfg_name, "RepoTags": [ref], "Layers": [f"{layer_dir}/layer.tar"]}]).encode()
    archive = _tar([_entry(f"{layer_dir}/", kind=tarfile.DIRTYPE), _entry(f"{layer_dir}/layer.tar", layer, 0o644),
                    _entry(cfg_name, config, 0o644), _entry("manifest.json", manifest, 0o644)])
    os.makedirs(cache_dir, exist_ok=True)
    tmp = f"{path}.tmp.{os.getpid()}"
    with open(tmp, "wb") as f:
        f.write(archive)
    os.replace(tmp, path)
    return path, ref
