"""Section `macvlan`: the shipped sample conf/samples/nad-fixipam-macvlan.yaml's shape, macvlan
with fixipam IPAM through the daemon (the netmeta shim -> daemon -> exec'd macvlan -> fixipam),
beside Debian's macvlan + static called directly, the same fixed IP on the same master (a veth
end in the host netns). One ADD+DEL per iteration in a fresh netns. Needs the daemon (skipped
with --no-daemon): the number the issue asks for is the daemon path's ratio.

fixipam is called by macvlan, not by netmeta: a nested call. How it is served (forwarded to the
daemon as part of the operation in progress, or the executable's in-process fallback) is the
daemon's business (DESIGN.md "ADD, step by step"); this section times whatever it does."""
import os
from contextlib import ExitStack

from bench import daemon, fixtures, guard
from bench.meta import netmeta_conf
from bench.stats import Case, Report, interleave, table

DIRECT = "macvlan+static direct (Debian)"
THICK = "netmeta thick (daemon) -> macvlan+fixipam"
IP = "10.61.0.7/24"


def run(runs: int = 20) -> Report:
    with ExitStack() as st:
        work = fixtures.scratch(st, "macvlan")
        master = guard.name("mv")
        guard.sh("ip", "link", "add", master, "type", "veth", "peer", "name", master + "p")
        st.callback(guard.sh, "ip", "link", "del", master, check=False)
        guard.sh("ip", "link", "set", master, "up")
        static = {"cniVersion": "1.0.0", "name": "mv-static", "type": "macvlan", "master": master, "mode": "bridge",
                  "ipam": {"type": "static", "addresses": [{"address": IP}]}}
        fix = {"cniVersion": "1.0.0", "name": "mv-fixipam", "type": "macvlan", "master": master, "mode": "bridge",
               "capabilities": {"ips": True}, "ipam": fixtures.fixipam(work, 61)}

        def once(plugin, conf, env=None):
            def go(pod):
                r = pod.add(plugin, conf, ips=1, env=env)
                if r.out["ips"][0]["address"] != IP:
                    raise AssertionError(f"{plugin} gave {r.out['ips']}")
                pod.delete(plugin, conf, env=env)
            return Case(go, prepare=lambda: fixtures.pods(1)[0], cleanup=lambda p: fixtures.release([p]))

        d = daemon.start(st)
        if not d:
            return Report("macvlan: skipped (--no-daemon)", "", "macvlan: skipped")
        mconf = netmeta_conf(work, fix, mode="daemon", socketPath=d.socket, runtimeConfig={"ips": [IP]})
        res = interleave({DIRECT: once("macvlan", static), THICK: once("netmeta", mconf, d.env)}, runs)
        r = Report("macvlan with a fixed IP: macvlan+fixipam via the daemon vs macvlan+static direct (ADD+DEL)",
                   table(list(res.items()), DIRECT),
                   f"macvlan: via daemon {res[THICK]['median'] / res[DIRECT]['median']:.2f}x direct")
        left = [f for f in os.listdir(os.path.join(work, "cache"))] if os.path.isdir(os.path.join(work, "cache")) else []
        if left:
            r.problems.append(f"DEL caches left: {left}")
        return r
