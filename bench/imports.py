"""Where an exec'd Python entry's start-up goes: one real CNI call of a libexec entry (what the
native shim runs when no daemon answers) under `python3 -IS -X importtime`, repeated, each
module's cumulative import time as the median over the runs. Top modules by cumulative time,
the total (sum of the top-level imports) and how many modules were loaded."""
import json
import os
import statistics
import subprocess
import sys

from bench import cnicall
from tests.cnirun import CNI_PATH, VENV_BIN

LIBEXEC = os.path.join(os.path.dirname(VENV_BIN), "libexec", "netmeta")


def _parse(stderr: str) -> tuple[dict, float]:
    """{module: cumulative ms} and the total (top-level imports), from -X importtime lines."""
    mods, total = {}, 0.0
    for line in stderr.splitlines():
        if not line.startswith("import time:") or "cumulative" in line:
            continue
        _, cum, name = line[len("import time:"):].split("|", 2)
        ms = int(cum) / 1000.0
        mods[name.strip()] = ms
        if not name[1:].startswith(" "):      # " name": top level; "   name": imported by another
            total += ms
    return mods, total


def profile(entry: str, command: str, conf: dict, runs: int = 3, *, container_id: str = "ctr1",
            netns: str = "", ifname: str = "eth0", args: str = "", env: dict | None = None,
            after=None) -> dict:
    """The entry's import profile for `command`; `after()` runs after each call (e.g. its DEL)."""
    full = {"PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"), "CNI_COMMAND": command,
            "CNI_CONTAINERID": container_id, "CNI_NETNS": netns, "CNI_IFNAME": ifname,
            "CNI_ARGS": args, "CNI_PATH": CNI_PATH, **cnicall.ENV, **(env or {})}
    samples, totals, counts = {}, [], []
    script = os.path.join(LIBEXEC, entry)
    python = open(script).readline()[2:].split()[0]
    for _ in range(runs):
        p = subprocess.run([python, "-IS", "-X", "importtime", script], input=json.dumps(conf).encode(),
                           env=full, capture_output=True, timeout=120, start_new_session=True)
        try:
            ok = p.returncode == 0 and (command != "ADD" or "ips" in json.loads(p.stdout))
        except ValueError:
            ok = False
        if after:
            after()
        if not ok:
            raise AssertionError(f"{entry} {command} under -X importtime failed: rc {p.returncode} "
                                 f"{p.stdout[:200]!r} {p.stderr.decode(errors='replace')[-300:]!r}")
        mods, total = _parse(p.stderr.decode(errors="replace"))
        totals.append(total)
        counts.append(len(mods))
        for m, ms in mods.items():
            samples.setdefault(m, []).append(ms)
    return {"total": statistics.median(totals), "modules": int(statistics.median(counts)),
            "cum": {m: statistics.median(v + [0.0] * (runs - len(v))) for m, v in samples.items()}}


def table(title: str, prof: dict, top: int = 12) -> str:
    rows = sorted(prof["cum"].items(), key=lambda kv: -kv[1])[:top]
    out = [f"{title}: imports {prof['total']:.1f} ms in {prof['modules']} modules (median); "
           f"top by cumulative ms:"]
    out += [f"    {ms:7.1f}  {m}" for m, ms in rows]
    return "\n".join(out)


if __name__ == "__main__":   # quick look: fixipam ADD (+ its DEL) in a scratch dataDir
    import tempfile
    d = tempfile.mkdtemp(prefix="nmimp")
    conf = {"cniVersion": "1.0.0", "name": "imp", "ipam": {"type": "fixipam", "subnet": "10.99.0.0/24",
                                                           "gateway": "10.99.0.1", "dataDir": d}}
    cnicall.ENV["NETMETA_SOCKET"] = "/nonexistent/netmeta.sock"
    kw = dict(netns="/x", args="IgnoreUnknown=1;IP=10.99.0.5/24")
    prof = profile("fixipam", "ADD", conf, int(sys.argv[1]) if sys.argv[1:] else 3, **kw,
                   after=lambda: cnicall.call("fixipam", "DEL", conf, **kw))
    print(table("fixipam ADD", prof, 25))
    import shutil
    shutil.rmtree(d, ignore_errors=True)
