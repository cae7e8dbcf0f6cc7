"""Section `startup`: what it costs just to start each executable, as wall time of a VERSION
call (stdin {"cniVersion": "1.0.0"}, as libcni sends it) with no daemon running, against
Debian's `static`. The venv interpreter doing nothing is shown as the floor. Then where each
Python entry's start-up goes on a real ADD without the daemon (bench/imports.py): fixipam
(static-like config), netmeta thin -> bridge+host-local, sriov+fixipam on a sim VF."""
import os
import subprocess
from contextlib import ExitStack

from bench import daemon, fixtures, imports
from bench.cnicall import must
from bench.stats import Report, interleave, table
from tests.cnirun import VENV_BIN

BASE = "static VERSION (Debian, Go)"
STDIN = b'{"cniVersion": "1.0.0"}'


def run(runs: int = 40) -> Report:
    def version(plugin, env=None):
        def go():
            r = must(plugin, "VERSION", STDIN, env=env)
            if "1.0.0" not in (r.out or {}).get("supportedVersions", []):
                raise AssertionError(f"{plugin} VERSION: {r.stdout[:200]!r}")
        return go

    def floor(*flags):
        def go():
            subprocess.run([f"{VENV_BIN}/python3", *flags, "-c", "pass"], check=True, start_new_session=True)
        return go

    with ExitStack() as st:
        cases = {BASE: version("static"),
                 "fixipam VERSION": version("fixipam"),
                 "sriov VERSION": version("sriov"),
                 "netmeta VERSION": version("netmeta"),
                 "(floor) venv python3 -c pass": floor(),
                 "(floor) venv python3 -I -S -c pass": floor("-I", "-S")}
        d = daemon.start(st)
        if d:   # HOOK: the stdlib-only shim answering through the daemon
            cases["netmeta VERSION via daemon"] = version("netmeta", d.env)
            cases["sriov VERSION via daemon"] = version("sriov", d.env)
        res = interleave(cases, runs)
        text = table(list(res.items()), BASE) + "\n\n" + _import_tables(st)
    worst = max(("fixipam VERSION", "sriov VERSION", "netmeta VERSION"), key=lambda k: res[k]["median"])
    return Report("5. start-up: VERSION answered, no daemon",
                  text,
                  f"startup: {worst.split()[0]} {res[worst]['median']:.0f} ms = "
                  f"{res[worst]['median'] / res[BASE]['median']:.0f}x static")


def _import_tables(st: ExitStack, runs: int = 3) -> str:
    """-X importtime of one ADD per Python entry (each followed, untimed, by its DEL)."""
    work = fixtures.scratch(st, "imp")
    out = []
    fix = {"cniVersion": "1.0.0", "name": "imp", "ipam": dict(fixtures.fixipam(work, 59), type="fixipam")}
    kw = dict(netns="/x", args="IgnoreUnknown=1;IP=10.59.0.5/24")
    out.append(imports.table("fixipam ADD (no netns)", imports.profile(
        "fixipam", "ADD", fix, runs, **kw, after=lambda: must("fixipam", "DEL", fix, **kw))))
    pod = fixtures.pods(1)[0]
    st.callback(fixtures.release, [pod])
    mconf = {"cniVersion": "1.0.0", "name": "netmeta", "type": "netmeta", "cniDir": os.path.join(work, "cache"),
             "delegates": [fixtures.bridge_conf(work, fixtures.bridge(st, "ibr"))]}
    out.append(imports.table("netmeta thin -> bridge ADD", imports.profile(
        "netmeta", "ADD", mconf, runs, **pod.kw(), after=lambda: must("netmeta", "DEL", mconf, **pod.kw()))))
    frag = fixtures.sim_nic(st, work, "i", 1)
    sr = fixtures.sriov_conf(frag, work, 60, name="sriov-imp", vf=0, runtimeConfig={"ips": ["10.60.0.7/24"]})
    out.append(imports.table("sriov+fixipam ADD (sim VF)", imports.profile(
        "sriov", "ADD", sr, runs, **pod.kw("net1"), after=lambda: must("sriov", "DEL", sr, **pod.kw("net1")))))
    return "\n".join(out)
