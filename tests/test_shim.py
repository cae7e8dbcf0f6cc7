"""The executables the runtime calls: the native shim (shim/netmeta-shim.c) named netmeta,
sriov, fixipam, with the Python entries it falls back to."""
import json
import os
import subprocess

from cni import invoke, version
from delegates import registry
from tests.cnirun import VENV_BIN, cni


def test_installed_executables_are_the_native_shim_and_ours():
    for name in registry.NAMES:
        with open(os.path.join(VENV_BIN, name), "rb") as f:
            assert f.read(4) == b"\x7fELF"
        assert invoke._is_own(os.path.join(VENV_BIN, name), registry.OWN.markers)   # so our types run in-process


def test_version_is_answered_without_stdin_or_daemon():
    for name in ("netmeta", "sriov", "fixipam"):
        p = subprocess.run([os.path.join(VENV_BIN, name)], env={"CNI_COMMAND": "VERSION"}, stdin=subprocess.DEVNULL,
                           capture_output=True)
        assert p.returncode == 0 and json.loads(p.stdout) == version.version_info()


def test_cli_passes_through_to_python():
    p = subprocess.run([os.path.join(VENV_BIN, "netmeta"), "version"], capture_output=True, text=True)
    assert p.returncode == 0 and p.stdout.startswith("netmeta ")


def test_fallback_gets_the_same_stdin_and_argv0_picks_the_plugin(tmp_path):
    conf = {"cniVersion": "1.0.0", "name": "fx", "ipam": {"type": "fixipam", "subnet": "10.58.0.0/24",
                                                         "dataDir": str(tmp_path)}}
    env = {"NETMETA_SOCKET": str(tmp_path / "none.sock")}
    r = cni("fixipam", "ADD", conf, netns="/x", args="IP=10.58.0.4", extra_env=env)
    assert r.ok and r.out["ips"][0]["address"] == "10.58.0.4/24", r.stdout
    assert cni("fixipam", "DEL", conf, netns="/x", extra_env=env).ok


def test_daemon_mode_without_daemon_is_try_again(tmp_path):
    conf = {"cniVersion": "0.4.0", "name": "n", "type": "netmeta", "mode": "daemon",
            "socketPath": str(tmp_path / "none.sock"), "delegates": [{"type": "bridge"}]}
    r = cni("netmeta", "ADD", conf, netns="/x")
    assert r.rc == 1 and r.out == {"cniVersion": "0.4.0", "code": 11, "msg": "the netmeta daemon is not running",
                                   "details": "start the daemon (netmeta daemon) or set mode auto to run in-process"}


def test_only_a_top_level_mode_counts(tmp_path):
    """libcni sorts keys: "delegates" (with macvlan's own "mode") comes before ours."""
    conf = {"cniVersion": "1.0.0", "name": "n", "type": "netmeta",
            "delegates": [{"type": "macvlan", "mode": "thin", "master": "x", "x": '"mode": "thin"'}],
            "mode": "daemon", "socketPath": str(tmp_path / "none.sock")}
    raw = json.dumps(conf, sort_keys=True)
    assert raw.index('"mode": "thin"') < raw.index('"mode": "daemon"')
    r = cni("netmeta", "ADD", raw, netns="/x")
    assert r.rc == 1 and r.out["code"] == 11, r.out


REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _leave(body: str, tmp_path) -> subprocess.CompletedProcess:
    """Run `body` then `leave(rc)` (the entry scripts' last line) in a fresh `python3 -I -S`,
    as the entries run; a module-level object reports when the interpreter finalizes it."""
    code = ("import os, sys\n"
            f"sys.path.insert(0, {REPO!r})\n"
            "from cni.shim import leave\n"
            "class Fin:\n"
            "    def __del__(self): os.write(2, b'finalized')\n"
            "fin = Fin()\n" + body)
    return subprocess.run(["/usr/bin/python3.11", "-I", "-S", "-c", code], capture_output=True, timeout=60,
                          cwd=tmp_path)


def test_leave_ends_at_once_with_the_answer_flushed(tmp_path):
    """Nothing asked for an orderly shutdown: the process ends without tearing modules down
    (no finalizer runs), with every byte it printed delivered and its exit code."""
    r = _leave("sys.stdout.write('x' * (1 << 20)); sys.stderr.write('log line'); leave(3)\n", tmp_path)
    assert r.returncode == 3 and r.stdout == b"x" * (1 << 20) and r.stderr == b"log line"


def test_leave_shuts_down_in_order_when_something_registered_for_it(tmp_path):
    """atexit handlers (logging, tempfile/weakref.finalize, the kube client's temp files) run,
    and a running thread is joined, as with sys.exit."""
    flag, done = tmp_path / "atexit-ran", tmp_path / "thread-done"
    r = _leave(f"import atexit; atexit.register(lambda: open({str(flag)!r}, 'w').close()); leave(4)\n", tmp_path)
    assert r.returncode == 4 and flag.exists() and b"finalized" in r.stderr
    r = _leave("import threading, time\n"
               f"threading.Thread(target=lambda: (time.sleep(0.3), open({str(done)!r}, 'w').close())).start()\n"
               "leave(0)\n", tmp_path)
    assert r.returncode == 0 and done.exists()


def test_leave_keeps_sys_exit_meaning_for_none_and_messages(tmp_path):
    assert _leave("leave(None)\n", tmp_path).returncode == 0
    r = _leave("leave('netmeta: bad usage')\n", tmp_path)
    assert r.returncode == 1 and b"netmeta: bad usage" in r.stderr
