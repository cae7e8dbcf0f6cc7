"""Section `startup`: what it costs just to start each executable, as wall time of a VERSION
call (stdin {"cniVersion": "1.0.0"}, as libcni sends it) with no daemon running, against
Debian's `static`. The venv interpreter doing nothing is shown as the floor."""
import subprocess
from contextlib import ExitStack

from bench import daemon
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
    worst = max(("fixipam VERSION", "sriov VERSION", "netmeta VERSION"), key=lambda k: res[k]["median"])
    return Report("5. start-up: VERSION answered, no daemon",
                  table(list(res.items()), BASE),
                  f"startup: {worst.split()[0]} {res[worst]['median']:.0f} ms = "
                  f"{res[worst]['median'] / res[BASE]['median']:.0f}x static")
