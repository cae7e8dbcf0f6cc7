"""What an exec'd plugin call loads (issue 19: the no-daemon path imports only what the call
needs), and the "lite" logging that keeps `logging` out of it writing the same lines.

The calls run the real Python entries (.venv/libexec/netmeta/*, what the native shim execs
when no daemon answers) under `python3 -IS -X importtime`; the assertions are on which modules
were imported, never on how long anything took."""
import json
import os
import re
import subprocess
import sys

import pytest

from tests.cnirun import CNI_PATH, REPO, cni, ip_json
from tests.daemonproc import DaemonProc
from tests.polling import wait_for

LIBEXEC = os.path.join(REPO, ".venv", "libexec", "netmeta")
# none of these is needed by a plain plugin call (kube client, metrics, YAML, HTTP, the daemon)
NEVER = ("logging", "traceback", "yaml", "prometheus_client", "urllib3", "cni.kube.client",
         "meta.kube.api", "meta.daemon.server", "meta.daemon.metrics", "argparse")
# issue 19, item 1: nor these, which a thin ADD / DEL (netmeta on the cluster network alone, no
# kubeconfig) and a node-scope fixipam call do not use: typing (TYPE_CHECKING is a module-level
# False), datetime (meta/events.py: events need a kubeconfig), urllib.parse (status file names),
# status files (no statusDir), the pod-annotation parser and the sriov overrides (no annotation),
# fixipam's GC
LAZY = ("typing", "datetime", "urllib.parse", "meta.events", "meta.statusfile", "meta.annotations.parse",
        "meta.annotations.gojson", "cni.annotjson", "meta.overrides", "delegates.sriov.podoverrides",
        "delegates.fixipam.gc")
# issue 19, target 1: an exec'd fixipam call (the no-daemon path) runs on plain classes, str
# checks and cni/jsonlite.py (json's own C scanner/encoder, `_json`): none of these modules
# (dataclasses brings inspect, ast, dis, tokenize; json and re bring enum; ~20 ms in all)
LEAN = ("dataclasses", "re", "json", "enum", "inspect")
LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (DEBUG|INFO|WARNING|ERROR|CRITICAL) "
                  r"netmeta\.[\w.]+ \[[^\]]*\] .*$")


def entry_call(entry: str, command: str, conf: dict, **env) -> tuple:
    """(rc, stdout JSON, stderr log lines, imported modules) of one call of a libexec entry."""
    return entry_imports(entry, command, conf, **env)[:4]


def run_importtime(entry: str, command: str, conf: dict, **env) -> subprocess.CompletedProcess:
    """One call of a libexec entry as the shim runs it (its #! python, -IS) under -X importtime."""
    script = os.path.join(LIBEXEC, entry)
    python = open(script).readline()[2:].split()[0]
    full = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "CNI_COMMAND": command, "CNI_CONTAINERID": "ctr1",
            "CNI_NETNS": "/x", "CNI_IFNAME": "eth0", "CNI_ARGS": "", "CNI_PATH": CNI_PATH,
            "NETMETA_SOCKET": "/nonexistent/netmeta.sock", **env}
    return subprocess.run([python, "-IS", "-X", "importtime", script], input=json.dumps(conf).encode(),
                          env=full, capture_output=True, timeout=120)


def entry_imports(entry: str, command: str, conf: dict, **env) -> tuple:
    """entry_call's answer and {module: the module whose import loaded it (None: the entry script)},
    from -X importtime's indentation (a module shows once: under whoever imported it first)."""
    p = run_importtime(entry, command, conf, **env)
    err = p.stderr.decode(errors="replace").splitlines()
    rows = [ln.split("|")[2] for ln in err if ln.startswith("import time:") and "cumulative" not in ln]
    mods = {r.strip() for r in rows}
    # a module's line comes after those of the modules it imported, indented one step deeper
    parents: dict = {}
    open_rows: list = []     # (depth, name) of lines still waiting for their importer
    for r in rows:
        depth, name = (len(r) - len(r.lstrip())) // 2, r.strip()
        while open_rows and open_rows[-1][0] > depth:
            parents[open_rows.pop()[1]] = name
        open_rows.append((depth, name))
    parents.update((name, None) for _, name in open_rows)
    logs = [ln for ln in err if not ln.startswith("import time:")]
    return p.returncode, json.loads(p.stdout) if p.stdout.strip() else None, logs, mods, parents


def first_of_ours(parents: dict, mod: str) -> str | None:
    """The first of our modules (cni, meta, delegates) on the chain that imported `mod`."""
    while mod is not None and mod.split(".")[0] not in ("cni", "meta", "delegates"):
        mod = parents.get(mod)
    return mod


def fix_conf(data_dir: str) -> dict:
    return {"cniVersion": "1.0.0", "name": "impnet", "ipam": {
        "type": "fixipam", "subnet": "10.98.0.0/24", "gateway": "10.98.0.1", "dataDir": data_dir}}


def test_fixipam_add_del_import_nothing_they_do_not_use(data_dir):
    conf = fix_conf(data_dir)
    args = "IgnoreUnknown=1;IP=10.98.0.5/24"
    rc, out, logs, mods = entry_call("fixipam", "ADD", conf, CNI_ARGS=args, CNI_CONTAINERID="c0ffee")
    assert rc == 0 and out["ips"] == [{"address": "10.98.0.5/24", "gateway": "10.98.0.1"}], (out, logs)
    assert {"delegates.fixipam.plugin", "_json"} <= mods     # the table is real
    assert not set(NEVER) & mods, sorted(set(NEVER) & mods)
    assert not set(LEAN) & mods, sorted(set(LEAN) & mods)
    assert not any(m == "pyroute2" or m.startswith("pyroute2.") for m in mods)
    assert "subprocess" not in mods and "shutil" not in mods
    assert not set(LAZY) & mods, sorted(set(LAZY) & mods)
    assert "threading" not in mods     # threading.local / Lock from _thread: no thread in this process
    # tokens from os.urandom, cluster-scope hashing imported where used: no OpenSSL in a node-scope call
    assert not {"secrets", "hmac", "hashlib", "_hashlib"} & mods, sorted({"secrets", "hmac", "hashlib", "_hashlib"} & mods)
    # the lite logger's line is logging's format, tagged with the container
    assert [ln for ln in logs if "reserved 10.98.0.5" in ln], logs
    assert all(LINE.match(ln) for ln in logs), logs
    assert "INFO netmeta.fixipam [c0ffee] reserved 10.98.0.5 on impnet for c0ffee/eth0" in logs[-1]
    rc, out, logs, mods = entry_call("fixipam", "DEL", conf, CNI_ARGS=args, CNI_CONTAINERID="c0ffee")
    assert rc == 0 and out is None and not set(NEVER) & mods
    assert not (set(LAZY) | {"threading"}) & mods, sorted((set(LAZY) | {"threading"}) & mods)
    assert "delegates.fixipam.store" in mods and not set(LEAN) & mods, sorted(set(LEAN) & mods)
    assert os.listdir(os.path.join(data_dir, "impnet")) == [".lock"]


def test_fixipam_error_answers_in_protocol_without_logging(data_dir):
    """A CNI error: error JSON on stdout, the log line on stderr in the same format, still lite."""
    rc, out, logs, mods = entry_call("fixipam", "ADD", fix_conf(data_dir), CNI_ARGS="IgnoreUnknown=1;IP=10.97.0.5/24")
    assert rc == 1 and out["code"] == 110 and "outside" in out["msg"]
    assert len(logs) == 1 and LINE.match(logs[0]) and " ERROR netmeta.skel [ctr1] ADD fixipam failed: code 110" in logs[0]
    assert "logging" not in mods
    assert not set(LEAN) & mods, sorted(set(LEAN) & mods)     # the error JSON too


def test_meta_thin_to_bridge_imports_no_kube_client_metrics_or_yaml(netns, uid, tmp_path):
    ns = netns()
    bridge = f"nmib{uid}"
    conf = {"cniVersion": "1.0.0", "name": "netmeta", "type": "netmeta", "cniDir": str(tmp_path / "cache"),
            "delegates": [{"cniVersion": "1.0.0", "name": "cluster-net", "type": "bridge", "bridge": bridge,
                           "ipam": {"type": "host-local", "subnet": "10.96.9.0/24",
                                    "dataDir": str(tmp_path / "hl")}}]}
    env = {"CNI_NETNS": f"/var/run/netns/{ns}", "CNI_CONTAINERID": f"c{uid}",
           "CNI_ARGS": f"IgnoreUnknown=1;K8S_POD_NAMESPACE=ns;K8S_POD_NAME=p{uid};K8S_POD_UID=u{uid}"}
    try:
        rc, out, logs, mods, parents = entry_imports("netmeta", "ADD", conf, **env)
        assert rc == 0 and len(out["ips"]) == 1, (out, logs)
        assert "meta.engine" in mods
        _thin_lean(mods, parents)
        assert not set(NEVER) & mods, sorted(set(NEVER) & mods)
        assert not any(m == "pyroute2" or m.startswith("pyroute2.") for m in mods)
        assert not set(LAZY) & mods, sorted(set(LAZY) & mods)
        assert {"meta.plan", "cni.childproc"} <= mods     # planned, and the bridge exec'd
        # exec'd by posix_spawn (cni/childproc.py): no subprocess, and through it no locale/re/selectors
        assert not {"subprocess", "locale", "selectors"} & mods, sorted({"subprocess", "locale", "selectors"} & mods)
        assert all(LINE.match(ln) for ln in logs), logs
        rc, out, logs, mods, parents = entry_imports("netmeta", "DEL", conf, **env)
        assert rc == 0, logs
        assert "meta.engine" in mods and not set(NEVER) & mods, sorted(set(NEVER) & mods)
        _thin_lean(mods, parents)
        # a DEL runs from its cache: no plan (meta/plan.py, meta/networks.py, the sriov overrides)
        lazy_del = set(LAZY) | {"meta.plan", "meta.networks", "meta.devices"}
        assert not lazy_del & mods, sorted(lazy_del & mods)
        assert not os.listdir(tmp_path / "cache"), os.listdir(tmp_path / "cache")     # the DEL did its work
    finally:
        subprocess.run(["ip", "link", "del", bridge], check=False, capture_output=True)


def _thin_lean(mods: set, parents: dict) -> None:
    """issue 19, target 1: a thin ADD / DEL runs on plain classes, cni/jsonlite.py and
    cni/childproc.py (posix_spawn): no dataclasses (with inspect, ast, dis, tokenize), no copy,
    no json, re, enum, no subprocess (with locale, selectors) and no threading, so the entry
    ends by cni.shim.leave's fast exit (tests/test_thinlean_plain.py pins that no meta module
    imports json, re, dataclasses or copy at all)."""
    lean = set(LEAN) | {"copy", "subprocess", "locale", "selectors", "threading"}
    assert not lean & mods, sorted((m, first_of_ours(parents, m)) for m in lean & mods)
    assert {"_json", "cni.jsonlite"} <= mods


# pyroute2's IPRoute and what it brings (asyncio: ~200 modules, ~40 ms of an exec'd call, ~11 MB
# of daemon RSS): the sim NIC's per-call paths (refresh, revival, bind) run on cni/rtnl.py
HEAVY = ("pyroute2.iproute", "asyncio", "_asyncio")


def heavy(mods: set) -> list:
    """The HEAVY modules (or any of their submodules) among `mods`. (-X importtime logs import
    statements, not importlib.import_module: a package loaded that way still shows its own
    imports, e.g. asyncio's submodules.)"""
    return sorted(m for m in mods if any(m == h or m.startswith(h + ".") for h in HEAVY))


def _sim_conf(nic: dict, data_dir: str) -> dict:
    return {"cniVersion": "1.0.0", "name": "impsim", "type": "sriov", **nic, "vf": 0,
            "ipam": {"type": "fixipam", "subnet": "10.98.1.0/24", "gateway": "10.98.1.1", "dataDir": data_dir}}


def _peer_gone(nic: dict, vf: int) -> bool:
    """VF `vf`'s veth died (its pod netns is gone): its peer left the sim NIC's private netns."""
    ns = f"netmeta-sim-{nic['master']}"
    return not any(lk["ifname"] == f"vf{vf}" for lk in ip_json("link", "show", netns=ns))


def importers(stderr: str) -> dict:
    """{module: the chain of modules whose import imported it, outermost first} from -X importtime
    lines (a module's line comes after those of the modules it imported, one level deeper)."""
    rows = [ln.split("|")[2] for ln in stderr.splitlines() if ln.startswith("import time:") and "cumulative" not in ln]
    out, stack = {}, []
    for raw in reversed(rows):
        name = raw.strip()
        depth = (len(raw) - len(raw.lstrip()) - 1) // 2
        del stack[depth:]
        out[name] = tuple(stack)
        stack.append(name)
    return out


# issue 19: none of these is imported by an exec'd sriov call at all; and no module of the sriov
# plugin (or its simulator) imports any of SRIOV_NEVER_IMPORTS, directly or through another
# (enum and threading still come with the stdlib socket module and cni/netns.py, delegates/sriov/garp.py)
SRIOV_LEAN = ("dataclasses", "inspect", "typing", "re", "json", "subprocess", "delegates.sriov.podoverrides", "cni.annotjson")
SRIOV_NEVER_IMPORTS = ("dataclasses", "typing", "re", "inspect", "logging", "json", "enum")


def _ours(chain: tuple) -> str:
    """The innermost of our modules (cni, delegates, meta) in an import chain: whose import it was."""
    return next((c for c in reversed(chain) if c.split(".")[0] in ("cni", "delegates", "meta")), "")


def sriov_entry_call(command: str, conf: dict, **env) -> tuple:
    """entry_call("sriov", ...) (the same call) plus, for each SRIOV_NEVER_IMPORTS module a
    delegates.sriov module imported (itself or through stdlib modules), (module, its chain of
    importers)."""
    p = run_importtime("sriov", command, conf, **env)
    err = p.stderr.decode(errors="replace")
    chains = importers(err)
    logs = [ln for ln in err.splitlines() if not ln.startswith("import time:")]
    by_sriov = sorted((m, chain) for m, chain in chains.items()
                      if m.split(".")[0] in SRIOV_NEVER_IMPORTS and _ours(chain).startswith("delegates.sriov"))
    return p.returncode, json.loads(p.stdout) if p.stdout.strip() else None, logs, set(chains), by_sriov


def test_sriov_add_del_on_a_sim_vf_imports_no_iproute_or_asyncio(nic, netns, uid, data_dir):
    """An exec'd `sriov` ADD + DEL on a VF of the simulated NIC: the sim refreshes its tree
    before each read of netdev names (and, after the pod netns died, brings the VF netdev back
    with a new veth) over cni/rtnl.py, never pyroute2's IPRoute. Issue 19: the plugin's modules
    import no dataclasses, typing, re, inspect or logging (`typing` nobody imports at all), nor
    the pod-annotation parser and pod overrides when the pod has none."""
    conf = _sim_conf(nic, data_dir)
    vf0 = next(lk for lk in ip_json("link", "show") if lk["ifname"] == f"{nic['master']}v0")
    args = "IgnoreUnknown=1;IP=10.98.1.5/24"
    for revive in (False, True):
        ns = netns()
        env = {"CNI_NETNS": f"/var/run/netns/{ns}", "CNI_IFNAME": "net1", "CNI_CONTAINERID": f"c{uid}{int(revive)}",
               "CNI_ARGS": args}
        rc, out, logs, mods, by_sriov = sriov_entry_call("ADD", conf, **env)
        assert rc == 0 and out["ips"][0]["address"] == "10.98.1.5/24", (out, logs)
        assert "delegates.sriov.sim.nic" in mods and "cni.rtnl" in mods      # the sim ran, in this process
        assert not heavy(mods), heavy(mods)
        assert not set(SRIOV_LEAN) & mods and not by_sriov, (sorted(set(SRIOV_LEAN) & mods), by_sriov)
        assert not set(NEVER) & mods, sorted(set(NEVER) & mods)
        assert "pyroute2.config" not in mods      # lean_pyroute2 defers it to a name asked of the package
        assert not any(lk["ifname"] == vf0["ifname"] for lk in ip_json("link", "show"))   # in the pod
        if revive:   # the pod netns dies first: the VF's veth with it, the sim revives it
            subprocess.run(["ip", "netns", "del", ns], check=True)
            wait_for(lambda: _peer_gone(nic, 0), timeout=10)
        rc, out, logs, mods, by_sriov = sriov_entry_call("DEL", conf, **env)
        assert rc == 0 and out is None, logs
        assert not heavy(mods), heavy(mods)
        assert not set(SRIOV_LEAN) & mods and not by_sriov, (sorted(set(SRIOV_LEAN) & mods), by_sriov)
        back = [lk for lk in ip_json("link", "show") if lk.get("ifalias") == f"netmeta-sim:{nic['master']}:0"]
        assert len(back) == 1 and back[0]["ifname"] == vf0["ifname"], back     # DEL restored its name
        if revive:   # revived by this DEL's refresh (a new veth, same ifindex), as dev<ifindex>
            assert back[0]["ifindex"] == vf0["ifindex"], back
            assert any(f"port 0 lost its netdev with its netns; back as dev{vf0['ifindex']}" in ln for ln in logs), logs


def _vf_count(status: str) -> str | None:
    try:
        with open(status) as f:
            return json.load(f)["annotations"].get("sriov/vfCount")
    except (OSError, ValueError, KeyError):
        return None


def test_daemon_serving_sim_sriov_add_del_imports_no_iproute_or_asyncio(tmp_path, nic, netns, uid, data_dir):
    """The node daemon with a sim PF (its availability count refreshes the sim NIC at start-up
    and after every request) serves an `sriov` ADD + DEL: it never imports pyroute2's IPRoute or
    asyncio. The daemon runs as the native shim runs it, plus `-X importtime`: every import the
    process makes, at any time, is a line on its stderr (the daemon log); and the loaded shared
    objects (/proc/PID/maps) show no _asyncio."""
    script = os.path.join(LIBEXEC, "netmeta")
    python = open(script).readline()[2:].split()[0]
    # DaemonProc runs [*prefix, .venv/bin/netmeta, "daemon", ...]: run the same entry the shim execs instead
    prefix = ("/bin/sh", "-c", f'shift; exec {python} -X importtime -IS {script} "$@"', "sh")
    status = str(tmp_path / "status.json")
    d = DaemonProc(tmp_path / "d", statusFile=status, reconcilePeriod=0.5,
                   pfs=[{k: nic[k] for k in ("master", "sysfsRoot", "backend", "stateDir")}])
    conf = _sim_conf(nic, data_dir)
    ns = netns()
    kw = dict(netns=f"/var/run/netns/{ns}", ifname="net1", args="IgnoreUnknown=1;IP=10.98.1.6/24",
              container_id=f"c{uid}", extra_env={"NETMETA_SOCKET": d.socket})
    try:
        os.makedirs(d.dir, exist_ok=True)
        d.start(prefix=prefix)
        wait_for(lambda: _vf_count(status) == "8", timeout=20)
        r = cni("sriov", "ADD", conf, **kw)
        assert r.ok and r.out["ips"][0]["address"] == "10.98.1.6/24", r.stdout + r.stderr.encode()
        assert cni("sriov", "DEL", conf, **kw).ok
        assert d.metric("netmeta_cni_request_seconds_count", plugin="sriov") == 2    # served by the daemon
        wait_for(lambda: _vf_count(status) == "8", timeout=20)   # counted again after the DEL
        with open(f"/proc/{d.proc.pid}/maps") as f:
            maps = f.read()
        log = d.log()
    finally:
        d.stop()
    mods = {ln.split("|")[2].strip() for ln in log.splitlines()
            if ln.startswith("import time:") and "cumulative" not in ln}
    assert "meta.daemon.server" in mods and "delegates.sriov.sim.nic" in mods, sorted(mods)[:20]
    assert not heavy(mods), heavy(mods)
    assert "python3" in maps and "_asyncio" not in maps     # (the interpreter is mapped: a real maps file)


def test_log_file_and_tracebacks_switch_to_logging(tmp_path):
    """In-process: lite lines equal logging's; a log file or exc_info brings in `logging` with
    the same format and handlers, and later lines go there too."""
    code = r"""
import sys
from cni import log
from delegates.registry import SHIM
log.name_root(SHIM.product, SHIM.env_prefix + "LOG_LEVEL")   # as the entries do (cni/shim.py run)
log.setup(lite=True)
log.set_container("abc")
lg = log.get("t")
lg.debug("hidden %s", 1)
lg.info("one %s %d", "a", 2)
assert "logging" not in sys.modules
try:
    raise ValueError("boom")
except ValueError:
    lg.exception("failed %s", "x")
assert "logging" in sys.modules
log.setup(None, sys.argv[1])
lg.warning("to the file too")
"""
    logf = tmp_path / "nm.log"
    p = subprocess.run([sys.executable, "-IS", "-c", f"import sys; sys.path[:0] = [{REPO!r}]\n" + code, str(logf)],
                       capture_output=True, text=True, timeout=60, env={"PATH": os.environ["PATH"]})
    assert p.returncode == 0, p.stderr
    lines = p.stderr.splitlines()
    assert "hidden" not in p.stderr
    assert LINE.match(lines[0]) and lines[0].endswith(" INFO netmeta.t [abc] one a 2")
    assert LINE.match(lines[1]) and lines[1].endswith(" ERROR netmeta.t [abc] failed x")
    assert "Traceback" in p.stderr and "ValueError: boom" in p.stderr
    assert lines[-1].endswith(" WARNING netmeta.t [abc] to the file too") and LINE.match(lines[-1])
    assert oct(os.stat(logf).st_mode & 0o777) == "0o600"
    flines = logf.read_text().splitlines()
    assert len(flines) == 1 and LINE.match(flines[0]) and flines[0].endswith("to the file too")


@pytest.mark.parametrize("plugin", ["fixipam"])
def test_shim_executable_same_answer(plugin, data_dir):
    """The native shim (the executable a runtime calls) falls back to the same entry."""
    conf = fix_conf(data_dir)
    args = "IgnoreUnknown=1;IP=10.98.0.6/24"
    r = cni(plugin, "ADD", conf, args=args, netns="/x", extra_env={"NETMETA_SOCKET": "/nonexistent/s"})
    assert r.ok and r.out["ips"][0]["address"] == "10.98.0.6/24", r.stderr
    assert all(LINE.match(ln) for ln in r.stderr.splitlines()), r.stderr
    assert cni(plugin, "DEL", conf, args=args, netns="/x", extra_env={"NETMETA_SOCKET": "/nonexistent/s"}).ok


def test_lean_pyroute2_gives_the_same_objects_and_the_whole_package_on_demand():
    code = r"""
import sys
from cni.leanimport import lean_pyroute2
lean_pyroute2()
from pyroute2.netlink.exceptions import NetlinkError as first   # what cni/rtnl.py takes: nothing else loads
assert not {"logging", "typing", "pyroute2.config", "pyroute2.netlink.nlsocket"} & set(sys.modules)
from pyroute2 import IPRoute, NetlinkError, netns
from pyroute2.netlink.rtnl.ifinfmsg import ifinfmsg
import pyroute2.netlink
assert first is NetlinkError and pyroute2.netlink.nlmsg.__module__ == "pyroute2.netlink"   # the real __init__ ran
assert "pyroute2.ndb.main" not in sys.modules and "pyroute2.ipdb" not in sys.modules
import logging
assert any(type(h).__name__ == "NullHandler" for h in logging.getLogger("pyroute2").handlers)
with IPRoute() as ipr:
    assert ipr.link("get", index=1)[0].get_attr("IFLA_IFNAME") == "lo"
import pyroute2
assert pyroute2.NDB.__module__ == "pyroute2.ndb.main" and pyroute2.__version__
from pyroute2 import IPRoute as again, NetlinkError as err2, netns as ns2
assert again is IPRoute and err2 is NetlinkError and ns2 is netns
try:
    pyroute2.no_such_name
except AttributeError:
    pass
else:
    raise AssertionError("no AttributeError")
print("ok")
"""
    _run_isolated(code)


def test_the_daemons_metrics_load_no_http_servers_and_prometheus_client_still_works_whole():
    """The daemon's metrics (meta/daemon/metrics.py) import prometheus_client's submodules
    without its package __init__ (cni/leanimport.lean_package): neither the daemon's start-up
    nor a /metrics scrape loads the library's HTTP/WSGI exposition servers, and the daemon's
    op tokens do not pull in hmac/OpenSSL (secrets). Any name of the package still gives the
    whole library, the same objects."""
    code = r"""
import sys
import meta.daemon.server
from meta.daemon import metrics
m = metrics.Metrics()
m.latency.labels(plugin="netmeta", command="ADD").observe(0.01)
assert m.render().startswith(b"# HELP ")
never = {"http.server", "wsgiref", "urllib.request", "email", "prometheus_client.exposition", "secrets", "hmac",
         "_hashlib"}
assert not never & set(sys.modules), never & set(sys.modules)
import prometheus_client
from prometheus_client import Counter, generate_latest
from prometheus_client.metrics import Counter as C2
assert Counter is C2 and generate_latest(m.registry) == m.render()
try:
    prometheus_client.no_such_name
except AttributeError:
    pass
else:
    raise AssertionError("no AttributeError")
print("ok")
"""
    _run_isolated(code)


def _run_isolated(code: str) -> None:
    """Run `code` in a fresh `python -IS` with this checkout and site-packages on the path; it
    must print exactly "ok"."""
    site = [p for p in sys.path if p.endswith("site-packages")]
    p = subprocess.run([sys.executable, "-IS", "-c", f"import sys; sys.path[:0] = {[REPO] + site!r}\n" + code],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0 and p.stdout == "ok\n", p.stderr
