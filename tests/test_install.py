"""`netmeta install` (meta/install/main.py) into temporary host directories: the CNI config generated
from the cluster's primary config (Multus's auto mode) or given, the executables (atomic,
runnable, never failing a shim being executed), the kubeconfig from a service account,
permissions, idempotence, refusal to clobber, and --cleanup-on-exit removing exactly what was
written (as a subprocess, stopped with SIGTERM)."""
import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import threading
import time

import pytest

from meta import config as meta_config
from meta.install import main as install
from meta.install.entrypoints import MARKER

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
POD_ANNOTATIONS = "io.kubernetes.cri.pod-annotations"

BRIDGE = {"cniVersion": "1.0.0", "name": "mynet", "plugins": [
    {"type": "bridge", "bridge": "cni0", "isGateway": True, "ipMasq": True,
     "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.88.0.0/16"}]], "routes": [{"dst": "0.0.0.0/0"}]}},
    {"type": "portmap", "capabilities": {"portMappings": True}, "snat": True},
    {"type": "bandwidth", "capabilities": {"bandwidth": True}},
    {"type": "firewall"}]}
FLANNEL = {"name": "cbr0", "cniVersion": "0.3.1", "type": "flannel",
           "delegate": {"hairpinMode": True, "isDefaultGateway": True}}
FOREIGN_EXE = b"\x7fELF\x02\x01\x01\x00 an upstream plugin binary"


@pytest.fixture
def host(tmp_path, monkeypatch):
    """Temporary stand-ins for the host's /opt/cni/bin and /etc/cni/net.d; no service account."""
    for k in ("KUBERNETES_SERVICE_HOST", "KUBERNETES_SERVICE_PORT"):
        monkeypatch.delenv(k, raising=False)
    h = type("Host", (), {})()
    h.root = tmp_path
    h.bin = tmp_path / "opt/cni/bin"
    h.conf = tmp_path / "etc/cni/net.d"
    h.bin.mkdir(parents=True)
    h.conf.mkdir(parents=True)
    # the Python entries as the executables (the native shim has its own tests below)
    h.args = ["--bin-dir", str(h.bin), "--conf-dir", str(h.conf), "--shim", "none"]
    return h


def put(path, obj, mode=0o644):
    data = obj if isinstance(obj, bytes) else json.dumps(obj).encode()
    path.write_bytes(data)
    path.chmod(mode)
    return path


def conflist(host, name="00-netmeta.conflist"):
    return json.loads((host.conf / name).read_text())


def loads_as_runtime_passes_it(cl):
    """meta/config.load of the plugin conf as the runtime hands it over (name, cniVersion in)."""
    return meta_config.load(dict(cl["plugins"][0], name=cl["name"], cniVersion=cl["cniVersion"]))


def snapshot(root):
    out = {}
    for d, dirs, files in os.walk(root):
        for n in dirs + files:
            p = os.path.join(d, n)
            st = os.lstat(p)
            data = None
            if not stat.S_ISDIR(st.st_mode):
                with open(p, "rb") as f:
                    data = f.read()
            out[os.path.relpath(p, root)] = (stat.S_IMODE(st.st_mode), data)
    return out


def sa_dir(tmp_path, token="tok-1.abc_DEF"):
    d = tmp_path / "serviceaccount"
    d.mkdir(exist_ok=True)
    (d / "token").write_text(token)
    (d / "ca.crt").write_text("-----BEGIN CERTIFICATE-----\nMIIBfake\n-----END CERTIFICATE-----\n")
    (d / "namespace").write_text("kube-system")
    return d


def version_of(exe, env=None):
    p = subprocess.run([str(exe)], stdin=subprocess.DEVNULL, capture_output=True, timeout=30, check=False,
                       env=dict(os.environ, CNI_COMMAND="VERSION", NETMETA_MODE="thin",
                            NETMETA_SOCKET="/nonexistent/netmeta.sock", **(env or {})))
    return p.returncode, p.stdout, p.stderr


# ---------------- the generated config ----------------
def test_generated_from_a_bridge_conflist(host, capsys):
    put(host.conf / "10-bridge.conflist", BRIDGE)
    put(host.conf / "20-other.conf", FLANNEL)            # not first: ignored
    assert install.main(host.args) == 0
    cl = conflist(host)
    assert cl["cniVersion"] == "1.0.0" and cl["name"] == "netmeta" and len(cl["plugins"]) == 1
    plugin = cl["plugins"][0]
    assert plugin["type"] == "netmeta"
    assert plugin["capabilities"] == {POD_ANNOTATIONS: True, "portMappings": True, "bandwidth": True}
    assert plugin["delegates"] == [BRIDGE]
    assert "kubeconfig" not in plugin          # no service account: Kubernetes-free
    cfg = loads_as_runtime_passes_it(cl)
    assert cfg.delegates[0] == BRIDGE and cfg.cluster_network is None
    assert "wrote" in capsys.readouterr().err


def test_generated_from_a_flannel_like_conf_keeps_its_version(host):
    put(host.conf / "10-flannel.conf", FLANNEL)
    put(host.conf / "99-loopback.conf", {"cniVersion": "1.0.0", "name": "lo", "type": "loopback"})
    assert install.main(host.args) == 0
    cl = conflist(host)
    assert cl["cniVersion"] == "0.3.1"
    assert cl["plugins"][0]["capabilities"] == {POD_ANNOTATIONS: True}
    assert loads_as_runtime_passes_it(cl).delegates[0] == FLANNEL
    assert cl["plugins"][0]["delegates"][0] == json.loads((host.conf / "10-flannel.conf").read_text())


def test_primary_named_explicitly_and_dry_run_writes_nothing(host, capsys):
    put(host.conf / "10-bridge.conflist", BRIDGE)
    put(host.conf / "30-flannel.conf", FLANNEL)
    before = snapshot(host.root)
    assert install.main(host.args + ["--primary", "30-flannel.conf", "--dry-run"]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out)["plugins"][0]["delegates"] == [FLANNEL]
    assert "would write" in err and snapshot(host.root) == before


def test_given_config_is_completed_with_the_primary(host, tmp_path):
    put(host.conf / "10-bridge.conflist", BRIDGE)
    given = put(tmp_path / "netmeta.conf", {"name": "netmeta", "type": "netmeta", "mode": "daemon",
                                             "namespaceIsolation": True, "globalNamespaces": ["default"]})
    assert install.main(host.args + ["--config", str(given)]) == 0
    cl = conflist(host)
    cfg = loads_as_runtime_passes_it(cl)
    assert cfg.namespace_isolation and cfg.mode == "daemon" and cfg.global_namespaces == {"default"}
    assert cfg.delegates == (BRIDGE,) and cl["cniVersion"] == "1.0.0"


def test_given_config_with_its_own_default_network_is_installed_as_given(host, tmp_path):
    given = put(tmp_path / "n.conflist", {"cniVersion": "1.1.0", "name": "nm", "plugins": [
        {"type": "netmeta", "clusterNetwork": "/etc/cni/net.d/10-calico.conflist"}]})
    assert install.main(host.args + ["--config", str(given)]) == 0    # no primary needed
    cl = conflist(host)
    assert cl["name"] == "nm" and cl["cniVersion"] == "1.1.0"
    assert cl["plugins"][0] == {"type": "netmeta", "capabilities": {POD_ANNOTATIONS: True},
                                "clusterNetwork": "/etc/cni/net.d/10-calico.conflist"}


@pytest.mark.parametrize("given,msg", [
    ({"type": "netmeta", "mode": "fast"}, "would be rejected"),
    ({"type": "bridge"}, "not netmeta"),
    ({"type": "netmeta", "logOptions": "rotate"}, "would be rejected"),   # unknown keys only warn (Multus)
])
def test_a_config_netmeta_would_reject_is_not_installed(host, tmp_path, capsys, given, msg):
    put(host.conf / "10-bridge.conflist", BRIDGE)
    given = put(tmp_path / "c.json", given)
    before = snapshot(host.root)
    assert install.main(host.args + ["--config", str(given)]) == 1
    assert msg in capsys.readouterr().err
    assert snapshot(host.root) == before


def test_no_primary_is_a_clear_error_and_wait_primary_waits(host, capsys):
    assert install.main(host.args) == 1
    err = capsys.readouterr().err
    assert "no primary CNI config" in err and "--wait-primary" in err
    assert not (host.bin / "netmeta").exists()
    t = threading.Timer(1.0, put, (host.conf / "10-bridge.conflist", BRIDGE))
    t.start()
    t0 = time.monotonic()
    assert install.main(host.args + ["--wait-primary", "20"]) == 0
    assert 0.9 < time.monotonic() - t0 < 15
    assert conflist(host)["plugins"][0]["delegates"] == [BRIDGE]


def test_a_multus_or_broken_primary_is_refused(host, capsys):
    put(host.conf / "10-multus.conf", {"cniVersion": "0.3.1", "name": "multus-cni-network", "type": "multus",
                                       "delegates": [BRIDGE]})
    assert install.main(host.args) == 1
    assert "Multus" in capsys.readouterr().err
    (host.conf / "10-multus.conf").unlink()
    (host.conf / "10-broken.conflist").write_text('{"cniVersion": "1.0.0", "plugins": [')
    assert install.main(host.args) == 1
    assert "cannot use" in capsys.readouterr().err and not (host.conf / "00-netmeta.conflist").exists()


def test_our_config_must_sort_first(host, capsys):
    put(host.conf / "10-bridge.conflist", BRIDGE)
    put(host.conf / "00-aaa.conflist", BRIDGE)
    assert install.main(host.args) == 1
    assert "00-aaa.conflist sorts before 00-netmeta.conflist" in capsys.readouterr().err
    assert install.main(host.args + ["--conf-name", "00-0-netmeta.conflist"]) == 0
    assert (host.conf / "00-0-netmeta.conflist").exists()


# ---------------- executables ----------------
def test_executables_are_runnable_and_answer_version(host):
    put(host.conf / "10-bridge.conflist", BRIDGE)
    assert install.main(host.args) == 0
    for name in ("netmeta", "sriov", "fixipam"):
        exe = host.bin / name
        assert MARKER in exe.read_text().splitlines()[1]
        rc, out, err = version_of(exe)
        assert rc == 0, err
        assert "1.1.0" in json.loads(out)["supportedVersions"]


def _native_shim() -> str:
    path = os.path.join(sys.prefix, "bin", "netmeta")     # what `make dev` built
    with open(path, "rb") as f:
        if f.read(4) != b"\x7fELF":
            pytest.skip("no native shim was built here (no C compiler)")
    return path


def _cni_add(exe, conf: dict) -> dict:
    p = subprocess.run([str(exe)], input=json.dumps(conf).encode(), capture_output=True, timeout=60,
                       env=dict(os.environ, CNI_COMMAND="ADD", CNI_CONTAINERID="c1", CNI_NETNS="/x",
                                CNI_IFNAME="net1", CNI_PATH="/usr/lib/cni",
                                NETMETA_SOCKET="/nonexistent/netmeta.sock"))
    assert p.returncode == 1, p.stderr.decode()
    return json.loads(p.stdout)


def test_native_shim_is_installed_with_its_python_entries_and_removed_again(host):
    """--shim PATH: BIN/netmeta|sriov|fixipam are the native shim (static when it could be
    built so), the Python entries it falls back to are written first into BIN/.netmeta; with
    no daemon a call runs in-process through them (an error only the Python plugin gives, not
    the shim's own code 5); cleanup leaves the bin dir as it was."""
    shim = _native_shim()
    put(host.conf / "10-bridge.conflist", BRIDGE)
    # the entries' interpreter notes each start: proof the shim ran ITS entry beside it
    used = host.root / "python-used"
    py = put(host.root / "py", f'#!/bin/sh\necho "$1 $2" >> {used}\nexec {os.path.realpath(sys.executable)} "$@"\n'.encode(),
             0o755)
    args = host.args[:-2] + ["--shim", shim, "--python", str(py)]
    before = snapshot(host.bin)

    def installer():
        a = install.parser().parse_args(args)
        a.plugins = a.plugins.split(",")      # as install.main() does
        return install.Installer(a, {})
    inst = installer()
    order = [os.path.relpath(p, host.bin) for p, *_ in inst.plan()]
    assert order[:3] == [".netmeta/netmeta", ".netmeta/sriov", ".netmeta/fixipam"]
    assert order[3:6] == ["netmeta", "sriov", "fixipam"]
    inst.install()
    for name in ("netmeta", "sriov", "fixipam"):
        assert (host.bin / name).read_bytes() == open(shim, "rb").read()
        assert MARKER in (host.bin / ".netmeta" / name).read_text().splitlines()[1]
        assert stat.S_IMODE(os.stat(host.bin / name).st_mode) == 0o755
        rc, out, err = version_of(host.bin / name)      # the shim answers VERSION itself
        assert rc == 0 and "1.1.0" in json.loads(out)["supportedVersions"], err
    assert not used.exists()
    err = _cni_add(host.bin / "fixipam", {"cniVersion": "1.0.0", "name": "n", "type": "fixipam"})
    assert err["code"] == 7 and "ipam" in err["msg"], err
    assert used.read_text().split() == ["-IS", str(host.bin / ".netmeta" / "fixipam")]
    assert installer().install() == 0   # idempotent
    inst.cleanup()
    assert snapshot(host.bin) == before


def test_shim_choice_is_checked_before_anything_is_written(host, capsys):
    put(host.conf / "10-bridge.conflist", BRIDGE)
    put(host.root / "not-a-shim", FOREIGN_EXE, 0o755)
    assert install.main(host.args[:-2] + ["--shim", str(host.root / "not-a-shim")]) == 1
    assert "not the netmeta native shim" in capsys.readouterr().err
    assert os.listdir(host.bin) == [] and not (host.conf / "00-netmeta.conflist").exists()
    with pytest.raises(SystemExit):
        install.main(host.args[:-2] + ["--shim", "relative/shim"])


def test_lib_dir_copy_runs_with_only_the_hosts_python(host):
    """--lib-dir: the executables import netmeta from a copy on the host (here without any
    other path: the shim and VERSION need nothing but the stdlib)."""
    put(host.conf / "10-bridge.conflist", BRIDGE)
    lib = host.bin / "netmeta.d"
    assert install.main(host.args + ["--lib-dir", str(lib), "--python", "/usr/bin/python3",
                                     "--plugins", "netmeta,fixipam"]) == 0
    (copy,) = [p for p in lib.iterdir()]
    assert copy.name.startswith("lib-") and (copy / "meta" / "install" / "main.py").is_file()
    assert not any("__pycache__" in p for p, _, _ in os.walk(copy))
    assert f"sys.path[:0] = [{str(copy)!r}]" in (host.bin / "netmeta").read_text()
    assert not (host.bin / "sriov").exists()
    for name in ("netmeta", "fixipam"):
        rc, out, err = version_of(host.bin / name)
        assert rc == 0 and b"supportedVersions" in out, err
    before = snapshot(host.root)                      # idempotent: the same copy is kept
    assert install.main(host.args + ["--lib-dir", str(lib), "--python", "/usr/bin/python3",
                                     "--plugins", "netmeta,fixipam"]) == 0
    assert {k for k in snapshot(host.root) if "__pycache__" not in k} == {k for k in before if "__pycache__" not in k}


def test_old_library_copies_are_retired_then_removed(host, monkeypatch):
    put(host.conf / "10-bridge.conflist", BRIDGE)
    lib = host.bin / "netmeta.d"
    args = host.args + ["--lib-dir", str(lib)]
    real = install.lib_sources()
    assert install.main(args) == 0
    (old,) = list(lib.iterdir())
    monkeypatch.setattr(install, "lib_sources", lambda: real + [("meta/_extra.py", b"X = 1\n")])
    assert install.main(args) == 0
    assert (old / install.RETIRED).exists()          # a shim started before the switch still imports it
    new = next(p for p in lib.iterdir() if p != old)
    assert str(new) in (host.bin / "netmeta").read_text()
    monkeypatch.setattr(install, "RETIRE_AFTER", 0.0)
    time.sleep(0.05)
    assert install.main(args) == 0
    assert sorted(lib.iterdir()) == [new]


def test_reinstall_while_the_previous_shim_runs_in_a_loop(host):
    """The issue's install test: a shim of the previous version is executed in a loop while
    install replaces it again and again; no execution fails, no temp file is left."""
    put(host.conf / "10-bridge.conflist", BRIDGE)
    import sysconfig
    deps = sysconfig.get_paths()["purelib"]
    variants = [host.args,
                host.args + ["--lib-dir", str(host.bin / "netmeta.d"), "--paths", deps],
                host.args + ["--paths", f"{deps}:{REPO}"]]
    assert install.main(variants[0]) == 0
    results, stop = [], threading.Event()

    def loop(name):
        while not stop.is_set():
            results.append((name,) + version_of(host.bin / name))

    threads = [threading.Thread(target=loop, args=(n,)) for n in ("netmeta", "sriov")]
    for t in threads:
        t.start()
    try:
        installs = 0
        end = time.monotonic() + 4
        while time.monotonic() < end or installs < 6:
            assert install.main(variants[installs % len(variants)]) == 0
            installs += 1
            time.sleep(0.05)
    finally:
        stop.set()
        for t in threads:
            t.join()
    failed = [r for r in results if r[1] != 0 or b"supportedVersions" not in r[2]]
    assert not failed, failed[:3]
    assert len(results) >= 10 and installs >= 6
    assert not [n for n in os.listdir(host.bin) if ".tmp" in n]


# ---------------- kubeconfig, permissions, idempotence ----------------
def test_kubeconfig_from_the_service_account(host, tmp_path, monkeypatch):
    put(host.conf / "10-bridge.conflist", BRIDGE)
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "fd00:10:96::1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", "6443")
    sa = sa_dir(tmp_path)
    assert install.main(host.args + ["--service-account-dir", str(sa)]) == 0
    kc = host.conf / "netmeta.d" / "netmeta.kubeconfig"
    assert conflist(host)["plugins"][0]["kubeconfig"] == str(kc)
    import base64

    import yaml
    doc = yaml.safe_load(kc.read_text())
    assert doc["clusters"][0]["cluster"]["server"] == "https://[fd00:10:96::1]:6443"
    assert base64.b64decode(doc["clusters"][0]["cluster"]["certificate-authority-data"]) == (sa / "ca.crt").read_bytes()
    assert doc["users"][0]["user"]["token"] == "tok-1.abc_DEF"
    from kubernetes import client, config
    c = client.Configuration()
    config.load_kube_config(config_file=str(kc), client_configuration=c)
    assert c.host == "https://[fd00:10:96::1]:6443" and "Bearer tok-1.abc_DEF" in c.api_key.values()


def test_kubeconfig_talks_to_an_api_server(host, tmp_path, monkeypatch):
    """The written kubeconfig works for netmeta's own client against the test API server."""
    from meta.kube.api import Kube
    from tests.kubeapi import KubeAPIServer, objects
    put(host.conf / "10-bridge.conflist", BRIDGE)
    srv = KubeAPIServer(tokens={"admin-token": "*", "sa-token": [("get", "pods")]}).start()
    try:
        srv.create(objects.pod("p1", namespace="default"))
        host_, _, port = srv.url.rpartition("//")[2].rpartition(":")
        monkeypatch.setenv("KUBERNETES_SERVICE_HOST", host_)
        monkeypatch.setenv("KUBERNETES_SERVICE_PORT", port)
        sa = sa_dir(tmp_path, token="sa-token")
        shutil.copyfile(srv.ca_file, sa / "ca.crt")
        assert install.main(host.args + ["--service-account-dir", str(sa)]) == 0
        kube = Kube(conflist(host)["plugins"][0]["kubeconfig"], timeout=5)
        assert kube.get_pod("default", "p1")["metadata"]["name"] == "p1"
    finally:
        srv.stop()


def test_missing_service_account_is_a_clear_error(host, tmp_path, monkeypatch, capsys):
    put(host.conf / "10-bridge.conflist", BRIDGE)
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.96.0.1")
    assert install.main(host.args + ["--service-account-dir", str(tmp_path / "none")]) == 1
    assert "service account's token" in capsys.readouterr().err
    assert not (host.bin / "netmeta").exists()
    assert install.main(host.args + ["--no-kubeconfig"]) == 0
    assert "kubeconfig" not in conflist(host)["plugins"][0]


def test_permissions_whatever_the_umask(host, tmp_path, monkeypatch):
    put(host.conf / "10-bridge.conflist", BRIDGE)
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.96.0.1")
    old = os.umask(0o000)
    try:
        assert install.main(host.args + ["--service-account-dir", str(sa_dir(tmp_path)),
                                         "--lib-dir", str(host.bin / "netmeta.d")]) == 0
    finally:
        os.umask(old)

    def mode(p):
        return stat.S_IMODE(os.stat(p).st_mode)
    assert mode(host.conf / "00-netmeta.conflist") == 0o600
    assert mode(host.conf / "netmeta.d" / "netmeta.kubeconfig") == 0o600
    assert mode(host.conf / "netmeta.d") == 0o700
    for name in ("netmeta", "sriov", "fixipam"):
        assert mode(host.bin / name) == 0o755
    for d, _dirs, files in os.walk(host.bin / "netmeta.d"):
        assert mode(d) == 0o755
        assert all(mode(os.path.join(d, f)) == 0o644 for f in files)


def test_rerun_changes_nothing_and_repairs_what_differs(host, tmp_path, monkeypatch, capsys):
    put(host.conf / "10-bridge.conflist", BRIDGE)
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.96.0.1")
    args = host.args + ["--service-account-dir", str(sa_dir(tmp_path))]
    assert install.main(args) == 0
    inodes = {p: os.stat(host.root / p).st_ino for p, (_, data) in snapshot(host.root).items() if data is not None}
    capsys.readouterr()
    assert install.main(args) == 0
    assert "wrote" not in capsys.readouterr().err
    assert {p: os.stat(host.root / p).st_ino for p in inodes} == inodes
    (host.bin / "sriov").chmod(0o700)
    put(host.conf / "10-bridge.conflist", dict(BRIDGE, name="renamed"))
    sa_dir(tmp_path, token="rotated")
    assert install.main(args) == 0
    err = capsys.readouterr().err
    assert err.count("wrote") == 3
    assert stat.S_IMODE(os.stat(host.bin / "sriov").st_mode) == 0o755
    assert conflist(host)["plugins"][0]["delegates"][0]["name"] == "renamed"
    assert "rotated" in (host.conf / "netmeta.d" / "netmeta.kubeconfig").read_text()


# ---------------- refusal to clobber ----------------
@pytest.mark.parametrize("victim", ["bin/sriov", "conf/00-netmeta.conflist", "conf/netmeta.d/netmeta.kubeconfig"])
def test_a_foreign_file_is_not_replaced_without_force(host, tmp_path, monkeypatch, capsys, victim):
    put(host.conf / "10-bridge.conflist", BRIDGE)
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.96.0.1")
    args = host.args + ["--service-account-dir", str(sa_dir(tmp_path))]
    where, name = victim.split("/", 1)
    path = (host.bin if where == "bin" else host.conf) / name
    path.parent.mkdir(exist_ok=True)
    foreign = FOREIGN_EXE if where == "bin" else b'{"cniVersion": "1.0.0", "name": "x", "type": "bridge"}\n'
    put(path, foreign, 0o755)
    before = snapshot(host.root)
    assert install.main(args) == 1
    err = capsys.readouterr().err
    assert f"refusing to replace {path}" in err and "--force" in err
    assert snapshot(host.root) == before                 # nothing at all was written
    assert install.main(args + ["--force"]) == 0
    assert path.read_bytes() != foreign
    assert install.main(args) == 0                       # now ours: re-runs are fine


def test_plugins_subset_leaves_an_upstream_plugin_alone(host):
    put(host.conf / "10-bridge.conflist", BRIDGE)
    put(host.bin / "sriov", FOREIGN_EXE, 0o755)
    assert install.main(host.args + ["--plugins", "netmeta,fixipam"]) == 0
    assert (host.bin / "sriov").read_bytes() == FOREIGN_EXE


@pytest.mark.parametrize("args", [["--plugins", "sriov,bogus"], ["--plugins", "sriov"],
                                  ["--conf-name", "00-netmeta.conf"], ["--bin-dir", "relative"],
                                  ["--", "sleep", "1"]])
def test_usage_errors(host, args):
    with pytest.raises(SystemExit) as e:
        install.main(host.args + args)
    assert e.value.code == 2


# ---------------- --cleanup-on-exit ----------------
def start(host, *extra, env=None):
    ready = host.root / "ready"
    p = subprocess.Popen([sys.executable, "-m", "meta.install.main", *host.args, "--ready-file", str(ready),
                          "--cleanup-on-exit", *extra], cwd=REPO, env=dict(os.environ, **(env or {})),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    end = time.monotonic() + 30
    while not ready.exists():
        if p.poll() is not None or time.monotonic() > end:
            p.kill()
            raise AssertionError(p.communicate()[1].decode())
        time.sleep(0.05)
    return p


def stop(p, sig=signal.SIGTERM):
    p.send_signal(sig)
    _, err = p.communicate(timeout=30)
    return p.returncode, err.decode()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_cleanup_on_exit_removes_exactly_what_was_written(host, tmp_path, sig):
    put(host.conf / "10-bridge.conflist", BRIDGE)
    put(host.bin / "bridge", FOREIGN_EXE, 0o755)
    (host.conf / "netmeta.d").mkdir()
    put(host.conf / "netmeta.d" / "notes.txt", b"someone else's\n")
    sa = sa_dir(tmp_path)
    before = snapshot(host.root)
    p = start(host, "--lib-dir", str(host.bin / "netmeta.d"), "--service-account-dir", str(sa),
              env={"KUBERNETES_SERVICE_HOST": "10.96.0.1", "KUBERNETES_SERVICE_PORT": "443"})
    try:
        during = snapshot(host.root)
        written = set(during) - set(before)
        assert {"opt/cni/bin/netmeta", "opt/cni/bin/sriov", "opt/cni/bin/fixipam", "opt/cni/bin/netmeta.d",
                "etc/cni/net.d/00-netmeta.conflist", "etc/cni/net.d/netmeta.d/netmeta.kubeconfig", "ready"} <= written
        assert version_of(host.bin / "netmeta")[0] == 0
    finally:
        rc, err = stop(p, sig)
    assert rc == 0, err
    assert "removed" in err
    assert snapshot(host.root) == before


def test_cleanup_leaves_a_file_changed_since_and_dirs_it_did_not_create(host):
    put(host.conf / "10-bridge.conflist", BRIDGE)
    p = start(host, "--no-kubeconfig")
    try:
        put(host.bin / "fixipam", b"#!/bin/sh\n# replaced by the operator\n", 0o755)
    finally:
        rc, err = stop(p)
    assert rc == 0
    assert "left" in err and (host.bin / "fixipam").exists()
    assert not (host.bin / "netmeta").exists() and not (host.conf / "00-netmeta.conflist").exists()
    assert host.bin.is_dir() and host.conf.is_dir()


def test_cleanup_on_exit_refreshes_a_changed_primary_and_token(host, tmp_path):
    put(host.conf / "10-bridge.conflist", BRIDGE)
    sa = sa_dir(tmp_path)
    p = start(host, "--refresh", "0.3", "--service-account-dir", str(sa), env={"KUBERNETES_SERVICE_HOST": "10.96.0.1"})
    try:
        put(host.conf / "10-bridge.conflist", dict(BRIDGE, name="changed"))
        sa_dir(tmp_path, token="rotated-token")
        end = time.monotonic() + 15
        while time.monotonic() < end:
            kc = (host.conf / "netmeta.d" / "netmeta.kubeconfig").read_text()
            if conflist(host)["plugins"][0]["delegates"][0]["name"] == "changed" and "rotated-token" in kc:
                break
            time.sleep(0.1)
        else:
            raise AssertionError("not refreshed")
        (host.conf / "10-bridge.conflist").unlink()          # the primary goes away: ours is kept
        time.sleep(1.0)
        assert (host.conf / "00-netmeta.conflist").exists() and p.poll() is None
    finally:
        rc, err = stop(p)
    assert rc == 0 and "keeping" in err
    assert sorted(os.listdir(host.conf)) == [] and sorted(os.listdir(host.bin)) == []


def test_wrapper_mode_stops_the_command_first_then_cleans_up(host):
    put(host.conf / "10-bridge.conflist", BRIDGE)
    marker = host.root / "child-saw-config"
    child = ("import os, signal, sys, time\n"
             f"open({str(marker)!r}, 'w').write(str(os.path.exists({str(host.conf / '00-netmeta.conflist')!r})))\n"
             "signal.signal(signal.SIGTERM, lambda *a: sys.exit(7))\n"
             "time.sleep(60)\n")
    p = start(host, "--no-kubeconfig", "--", sys.executable, "-c", child)
    end = time.monotonic() + 20
    while not marker.exists() and time.monotonic() < end:
        time.sleep(0.05)
    rc, err = stop(p)
    assert marker.read_text() == "True"                  # installed before the command started
    assert rc == 7, err                                  # the command's exit code
    assert err.index("exited with 7") < err.index("removed")
    assert sorted(os.listdir(host.bin)) == []


def test_wrapper_mode_cleans_up_when_the_command_exits_by_itself(host):
    put(host.conf / "10-bridge.conflist", BRIDGE)
    ready = host.root / "ready"
    p = subprocess.run([sys.executable, "-m", "meta.install.main", *host.args, "--no-kubeconfig", "--ready-file",
                        str(ready), "--cleanup-on-exit", "--", sys.executable, "-c", "raise SystemExit(3)"],
                       cwd=REPO, capture_output=True, timeout=60, check=False)
    assert p.returncode == 3
    assert sorted(os.listdir(host.bin)) == [] and os.listdir(host.conf) == ["10-bridge.conflist"]
    assert not ready.exists()


def test_sigterm_while_waiting_for_the_primary_leaves_nothing(host):
    p = subprocess.Popen([sys.executable, "-m", "meta.install.main", *host.args, "--no-kubeconfig",
                          "--wait-primary", "60", "--cleanup-on-exit"], cwd=REPO,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    time.sleep(1.5)                                      # started and waiting
    assert p.poll() is None
    _, err = stop(p)
    assert "waiting" in err and "stopped while waiting" in err
    assert sorted(os.listdir(host.bin)) == [] and os.listdir(host.conf) == []
