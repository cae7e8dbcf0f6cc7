"""Where one thin-mode `netmeta` ADD (-> bridge + host-local) spends its time: the imports
(`python -X importtime`, top-level packages by cumulative time) and a cProfile of the whole
call (top functions by cumulative time). Not part of the timed run; as root:
    .venv/bin/python bench/metaprof.py [--top N]
(the profiled runs use the interpreter and flags of the entry script's #! line)."""
import argparse
import os
import pstats
import re
import shlex
import subprocess
import sys
from contextlib import ExitStack

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench import cnicall, fixtures, guard  # noqa: E402
from bench.meta import netmeta_conf  # noqa: E402
from tests.cnirun import CNI_PATH, VENV_BIN  # noqa: E402


def _interp(exe: str) -> list:
    with open(exe) as f:
        line = f.readline()
    return shlex.split(line[2:].strip()) if line.startswith("#!") else [sys.executable]


def _env(command: str, pod, ifname="eth0") -> dict:
    return dict(os.environ, CNI_COMMAND=command, CNI_CONTAINERID=pod.cid, CNI_NETNS=pod.path,
                CNI_IFNAME=ifname, CNI_ARGS=pod.args, CNI_PATH=CNI_PATH, **cnicall.ENV)


def importtime(exe: str, stdin: bytes, env: dict, top: int) -> str:
    p = subprocess.run(_interp(exe) + ["-X", "importtime", exe], input=stdin, env=env, capture_output=True)
    assert p.returncode == 0, p.stdout
    rows = []
    for line in p.stderr.decode().splitlines():
        m = re.match(r"import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)", line)
        if m and len(m.group(3)) <= 3:   # top-level imports and their direct children
            rows.append((int(m.group(2)) / 1000, len(m.group(3)) // 2, m.group(4)))
    total = sum(ms for ms, depth, _ in rows if depth == 0)
    out = [f"imports (python -X importtime), total of top-level imports {total:.0f} ms:"]
    for ms, depth, name in sorted(rows, reverse=True)[:top]:
        out.append(f"  {ms:8.1f} ms  {'  ' * depth}{name}")
    return "\n".join(out)


def cprofile(exe: str, stdin: bytes, env: dict, top: int, out_file: str) -> str:
    p = subprocess.run(_interp(exe) + ["-m", "cProfile", "-o", out_file, exe], input=stdin, env=env,
                       capture_output=True)
    assert p.returncode == 0, p.stdout
    st = pstats.Stats(out_file)
    total = st.total_tt * 1000
    rows = sorted(st.stats.items(), key=lambda kv: kv[1][3], reverse=True)
    out = [f"cProfile, whole process {total:.0f} ms (functions by cumulative time):"]
    for (fname, line, func), (_cc, _nc, tt, ct, _callers) in rows[:top]:
        where = f"{os.path.relpath(fname, '/work/main') if fname.startswith('/') else fname}:{line}"
        out.append(f"  {ct * 1000:8.1f} ms  {tt * 1000:7.1f} self  {func}  ({where[-60:]})")
    return "\n".join(out)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--top", type=int, default=25)
    a = ap.parse_args()
    cnicall.ENV["NETMETA_SOCKET"] = f"/nonexistent/{guard.PREFIX}/netmeta.sock"
    exe = f"{VENV_BIN}/netmeta"
    try:
        with ExitStack() as st:
            work = fixtures.scratch(st, "prof")
            conf = netmeta_conf(work, fixtures.bridge_conf(work, fixtures.bridge(st, "pbr")))
            stdin = cnicall.json.dumps(conf).encode()
            for label, fn in (("importtime", importtime), ("cprofile", cprofile)):
                warm = fixtures.pods(1)   # a first ADD+DEL makes the bridge: profile a steady-state ADD
                st.callback(fixtures.release, warm)
                warm[0].add("netmeta", conf, ips=1)
                warm[0].delete("netmeta", conf)
                pod = fixtures.pods(1)[0]
                st.callback(fixtures.release, [pod])
                pod.undo.append(("netmeta", conf, pod.kw()))
                args = (exe, stdin, _env("ADD", pod), a.top) + ((os.path.join(work, "add.prof"),) if label == "cprofile" else ())
                print(fn(*args) + "\n", flush=True)
    finally:
        guard.sweep()
    return 0


if __name__ == "__main__":
    sys.exit(main())
