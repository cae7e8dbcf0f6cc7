"""The daemon's `hostRoot` (Multus thick's `chrootDir`): exec'd delegates run chrooted in the
host's root, so a cluster plugin that needs host-only files (flannel's /run/flannel/subnet.env,
Calico's /var/lib/calico) works from a containerised daemon; our own plugins keep running in
the daemon.

The "host root" here is a stand-in: a temporary directory holding a static busybox (Debian's
busybox-static) as /bin/sh, a delegate script, the host-only file it needs, and the pod's netns
bind-mounted at its host path. Multus v4.1.4 pins the same behaviour in
pkg/server/exec_chroot.go (ChrootExec.ExecPlugin: SysProcAttr{Chroot: chrootDir})."""
import json
import os
import shutil
import subprocess

import pytest

from cni import hostroot
from cni.errors import CNIError
from meta.daemon import config as daemonconfig
from tests.cnirun import cni, ip_json
from tests.daemonproc import DaemonProc
from tests.simnic import records, snapshot

BUSYBOX = "/bin/busybox"
pytestmark = pytest.mark.skipif(not os.path.exists(BUSYBOX), reason="needs busybox-static")

# A cluster network plugin that, like flannel, reads its subnet from a file only the host has.
DELEGATE = r"""#!/bin/sh
[ "$CNI_COMMAND" = VERSION ] && { echo '{"cniVersion":"1.0.0","supportedVersions":["0.4.0","1.0.0"]}'; exit 0; }
[ "$CNI_COMMAND" = DEL ] && { rm -f "/var/lib/hostnet-@UID@/$CNI_CONTAINERID"; exit 0; }
env=/run/hostnet-@UID@/subnet.env
if [ ! -r "$env" ]; then
  printf '{"cniVersion":"1.0.0","code":100,"msg":"failed to load %s: no such file"}' "$env"; exit 1
fi
if [ ! -e "$CNI_NETNS" ]; then
  printf '{"cniVersion":"1.0.0","code":100,"msg":"netns %s not found"}' "$CNI_NETNS"; exit 1
fi
. "$env"
[ "$CNI_COMMAND" = CHECK ] && exit 0
mkdir -p /var/lib/hostnet-@UID@ && echo "$CNI_NETNS" > "/var/lib/hostnet-@UID@/$CNI_CONTAINERID"
printf '{"cniVersion":"1.0.0","interfaces":[{"name":"%s","sandbox":"%s"}],"ips":[{"address":"%s","interface":0}]}' \
  "$CNI_IFNAME" "$CNI_NETNS" "$SUBNET_IP"
"""


@pytest.fixture
def host(tmp_path, uid, netns):
    """The stand-in host root, the plugin dir (same path in both views) and the pod's netns."""
    root = tmp_path / "hostroot"
    (root / "bin").mkdir(parents=True)
    shutil.copy(BUSYBOX, root / "bin" / "busybox")
    for applet in ("sh", "mkdir", "rm", "cat"):
        os.symlink("busybox", root / "bin" / applet)
    script = DELEGATE.replace("@UID@", uid)
    # in our view: a plain file; in the host's: an absolute symlink into the host's /usr/lib
    # (resolved inside the host root, never in the daemon's own /usr/lib)
    plugdir = tmp_path / "cnibin"
    plugdir.mkdir()
    (plugdir / "hostnet").write_text(script)
    (plugdir / "hostnet").chmod(0o755)
    (root / "usr/lib/hostnet").mkdir(parents=True)
    (root / "usr/lib/hostnet/hostnet").write_text(script)
    (root / "usr/lib/hostnet/hostnet").chmod(0o755)
    inroot = root / str(plugdir).lstrip("/")
    inroot.mkdir(parents=True)
    os.symlink("/usr/lib/hostnet/hostnet", inroot / "hostnet")
    (root / f"run/hostnet-{uid}").mkdir(parents=True)
    (root / f"run/hostnet-{uid}/subnet.env").write_text("SUBNET_IP=10.244.9.17/24\n")
    (root / "var").mkdir()
    os.symlink("../run", root / "var" / "run")
    ns = netns()
    (root / "run/netns").mkdir()
    (root / "run/netns" / ns).touch()
    subprocess.run(["mount", "--bind", f"/run/netns/{ns}", str(root / "run/netns" / ns)], check=True)
    yield root, plugdir, ns
    subprocess.run(["umount", "-l", str(root / "run/netns" / ns)], check=False)
    shutil.rmtree(f"/var/lib/hostnet-{uid}", ignore_errors=True)   # only if a run leaked it


def conf_for(d, tmp, nic, plugdir):
    """netmeta: the host-only plugin as the cluster network, an SR-IOV attachment (in-process
    sriov + fixipam on the simulated NIC, whose sysfs only the daemon's view has)."""
    nad_dir = tmp / "nads" / "default"
    nad_dir.mkdir(parents=True, exist_ok=True)
    sriov = dict(nic, cniVersion="1.0.0", type="sriov", capabilities={"ips": True},
                 ipam={"type": "fixipam", "subnet": "10.56.0.0/24", "dataDir": str(tmp / "fixipam")})
    (nad_dir / "sriov-a.json").write_text(json.dumps({"metadata": {"name": "sriov-a"},
                                                      "spec": {"config": json.dumps(sriov)}}))
    return {"cniVersion": "1.0.0", "name": "netmeta", "type": "netmeta", "socketPath": d.socket, "mode": "daemon",
            "cniDir": d.cfg["cniDir"], "nadDir": str(tmp / "nads"),
            "delegates": [{"cniVersion": "1.0.0", "name": "cluster-net", "type": "hostnet"}],
            "runtimeConfig": {"io.kubernetes.cri.pod-annotations": {
                "k8s.v1.cni.cncf.io/networks": json.dumps([{"name": "sriov-a", "ips": ["10.56.0.7/24"]}])}}}


def call(conf, ns, cid, command, plugdir):
    return cni("netmeta", command, conf, container_id=cid, netns=f"/var/run/netns/{ns}", ifname="eth0",
               args=f"IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=p{cid}",
               path=f"{plugdir}:/usr/lib/cni")


def daemon_for(tmp_path, name, nic, **cfg):
    pf = {k: nic[k] for k in ("master", "sysfsRoot", "backend", "stateDir")}
    return DaemonProc(tmp_path / name, pfs=[pf], requestTimeout=30, **cfg)


def test_a_delegate_needing_a_host_only_file_works_only_with_host_root(host, tmp_path, nic, uid):
    root, plugdir, ns = host
    before = snapshot(nic)
    state = root / f"var/lib/hostnet-{uid}"

    # without hostRoot the delegate runs in the daemon's view: no subnet.env there
    plain = daemon_for(tmp_path, "plain", nic).start()
    try:
        conf = conf_for(plain, tmp_path, nic, plugdir)
        r = call(conf, ns, "h1", "ADD", plugdir)
        assert r.rc != 0 and f"/run/hostnet-{uid}/subnet.env" in r.out["msg"], r.stdout
        assert call(conf, ns, "h1", "DEL", plugdir).ok
    finally:
        plain.stop()
    assert snapshot(nic) == before and records(nic) == []
    assert sorted(l["ifname"] for l in ip_json("link", "show", netns=ns)) == ["lo"]

    # with it: the delegate sees the host's file, its netns and state dir; sriov + fixipam
    # still run in the daemon (their simulated sysfs is not inside the host root)
    d = daemon_for(tmp_path, "chrooted", nic, hostRoot=str(root)).start()
    try:
        conf = conf_for(d, tmp_path, nic, plugdir)
        r = call(conf, ns, "h2", "ADD", plugdir)
        assert r.ok, r.stdout + r.stderr.encode() + d.log()[-3000:].encode()
        # the cluster network's result, as from Multus; the SR-IOV attachment's address is on net1
        assert [ip["address"] for ip in r.out["ips"]] == ["10.244.9.17/24"]
        net1 = ip_json("addr", "show", "dev", "net1", netns=ns)[0]["addr_info"]
        assert [a["local"] for a in net1 if a["family"] == "inet"] == ["10.56.0.7"]
        assert (state / "h2").read_text().strip() == f"/var/run/netns/{ns}"
        assert not os.path.exists(f"/var/lib/hostnet-{uid}")       # written in the host's view only
        assert sorted(l["ifname"] for l in ip_json("link", "show", netns=ns)) == ["lo", "net1"]
        assert len(records(nic)) == 1
        assert call(conf, ns, "h2", "CHECK", plugdir).ok
        assert call(conf, ns, "h2", "DEL", plugdir).ok
        assert not (state / "h2").exists()
    finally:
        d.stop()
    assert snapshot(nic) == before and records(nic) == []


def test_host_root_lookup_follows_links_inside_the_root(tmp_path):
    """CNI_PATH entries are host paths: an absolute symlink restarts at the host root and '..'
    never climbs out of it (the kernel's view after chroot)."""
    root = tmp_path / "r"
    (root / "usr/lib/cni").mkdir(parents=True)
    (root / "usr/lib/cni/p").write_text("x")
    (root / "opt/cni").mkdir(parents=True)
    os.symlink("/usr/lib/cni", root / "opt/cni/bin")
    os.symlink("../../../../../../../../usr/lib/cni/p", root / "opt/up")
    view = hostroot.HostRoot(str(root))
    assert view.local("/opt/cni/bin/p") == str(root / "usr/lib/cni/p")
    assert view.local("/opt/up") == str(root / "usr/lib/cni/p")
    assert view.local("/../../etc/passwd") == str(root / "etc/passwd")
    assert view.argv("/opt/cni/bin/p")[1:] == [str(root), "/opt/cni/bin/p"]
    own = hostroot.HostRoot(None)
    assert own.local("/opt/cni/bin/p") == "/opt/cni/bin/p" and own.argv("/x") == ["/x"]


def test_host_root_setting_is_checked_at_start(tmp_path):
    cfg = tmp_path / "d.json"
    cfg.write_text(json.dumps({"hostRoot": str(tmp_path / "missing")}))
    with pytest.raises(CNIError, match="hostRoot"):
        daemonconfig.load(str(cfg))
    cfg.write_text(json.dumps({"chrootDir": str(tmp_path)}))   # Multus's name for it
    assert daemonconfig.load(str(cfg)).host_root == str(tmp_path)
    cfg.write_text(json.dumps({"chrootDir": str(tmp_path), "hostRoot": "/"}))
    with pytest.raises(CNIError, match="alias"):
        daemonconfig.load(str(cfg))
