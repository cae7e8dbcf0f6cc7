"""fixipam vs Debian `static`: ADD+DEL of one fixed address through each executable, without
the daemon (in-process) and, by default, with it (the native shim forwards)."""
import shutil
import tempfile
from contextlib import ExitStack

from bench import daemon
from bench.cnicall import call as cni  # own session + no stray daemon (see cnicall)
from bench.stats import interleave, table


def run(runs: int = 60) -> str:
    tmp = tempfile.mkdtemp(prefix="nmbench")
    try:
        with ExitStack() as stack:
            fix = {"cniVersion": "1.0.0", "name": "bench", "ipam": {
                "type": "fixipam", "subnet": "10.99.0.0/24", "gateway": "10.99.0.1", "dataDir": tmp}}
            sta = {"cniVersion": "1.0.0", "name": "bench", "ipam": {"type": "static"}}
            args = "IgnoreUnknown=1;IP=10.99.0.5/24"

            def add_del(plugin, conf, env=None):
                def go():
                    a = cni(plugin, "ADD", conf, netns="/x", args=args, env=env)
                    d = cni(plugin, "DEL", conf, netns="/x", args=args, env=env)
                    assert a.ok and d.ok, (a.stdout, d.stdout)
                return go

            cases = {"static ADD+DEL (Debian)": add_del("static", sta),
                     "fixipam ADD+DEL, no daemon": add_del("fixipam", fix)}
            d = daemon.start(stack)
            if d:
                cases["fixipam ADD+DEL via daemon"] = add_del("fixipam", fix, d.env)
            res = interleave(cases, runs)
        return "fixed-IP IPAM, one address, exec'd per call\n" + table(list(res.items()), "static ADD+DEL (Debian)")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    print(run())
