"""fixipam vs Debian `static`: ADD+DEL of one fixed address through each executable."""
import shutil
import tempfile

from bench.stats import interleave, table
from bench.cnicall import call as cni  # own session + no stray daemon (see cnicall)


def run(runs: int = 60) -> str:
    tmp = tempfile.mkdtemp(prefix="nmbench")
    try:
        fix = {"cniVersion": "1.0.0", "name": "bench", "ipam": {
            "type": "fixipam", "subnet": "10.99.0.0/24", "gateway": "10.99.0.1", "dataDir": tmp}}
        sta = {"cniVersion": "1.0.0", "name": "bench", "ipam": {"type": "static"}}
        args = "IgnoreUnknown=1;IP=10.99.0.5/24"

        def add_del(plugin, conf):
            def go():
                a = cni(plugin, "ADD", conf, netns="/x", args=args)
                d = cni(plugin, "DEL", conf, netns="/x", args=args)
                assert a.ok and d.ok, (a.stdout, d.stdout)
            return go

        res = interleave({"static ADD+DEL (Debian)": add_del("static", sta),
                          "fixipam ADD+DEL": add_del("fixipam", fix)}, runs)
        return "fixed-IP IPAM, one address, exec'd per call\n" + table(list(res.items()), "static ADD+DEL (Debian)")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    print(run())
