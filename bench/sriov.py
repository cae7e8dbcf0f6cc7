"""Section `sriov`: stand-alone sriov + fixipam vs Debian host-device + static moving the SAME
stand-in VF (VF 0 of a simulated NIC, its host netdev read from the sim's topology) into a
fresh netns as net1 with 10.56.0.7/24, ADD+DEL per iteration."""
from contextlib import ExitStack

from bench import daemon, fixtures
from bench.stats import Case, Report, interleave, table

HD = "(e) host-device+static, VF 0 netdev (Debian)"
SR = "sriov+fixipam vf 0, no daemon (in-process)"
SR_D = "sriov+fixipam vf 0 via daemon (shim -> daemon)"


def run(runs: int = 30) -> Report:
    with ExitStack() as st:
        work = fixtures.scratch(st, "sriov")
        frag = fixtures.sim_nic(st, work, "s", 1)
        vf0 = fixtures.vf_netdev(frag, 0)
        hd = {"cniVersion": "1.0.0", "name": "hd-net", "type": "host-device", "device": vf0,
              "ipam": {"type": "static", "addresses": [{"address": "10.56.0.7/24"}]}}
        sr = fixtures.sriov_conf(frag, work, 56, name="sriov-net", vf=0, runtimeConfig={"ips": ["10.56.0.7/24"]})

        def once(plugin, conf, env=None):
            def go(pod):
                r = pod.add(plugin, conf, ifname="net1", ips=1, env=env)
                if r.out["ips"][0]["address"] != "10.56.0.7/24":
                    raise AssertionError(f"{plugin} gave {r.out['ips']}")
                pod.delete(plugin, conf, ifname="net1", env=env)
            return go

        def after_hd(pod):
            fixtures.release([pod])
            fixtures.restore_sim_aliases(frag, {0: vf0})

        fresh = lambda: fixtures.pods(1)[0]   # noqa: E731
        cases = {HD: Case(once("host-device", hd), fresh, after_hd),
                 SR: Case(once("sriov", sr), fresh, lambda p: fixtures.release([p]))}
        d = daemon.start(st)
        if d:   # HOOK: the stand-alone executable's shim forwards to the daemon (warm imports)
            cases[SR_D] = Case(once("sriov", sr, d.env), fresh, lambda p: fixtures.release([p]))
        res = interleave(cases, runs)
        rep = Report("3. one VF with a fixed IP: sriov+fixipam vs host-device+static (ADD+DEL)",
                     table(list(res.items()), HD),
                     f"sriov: {res[SR]['median'] / res[HD]['median']:.1f}x host-device"
                     + (f"; (e) via daemon {res[SR_D]['median'] / res[HD]['median']:.2f}x (target <= 2.0)"
                        if SR_D in res else ""))
        if fixtures.sriov_records(frag):
            rep.problems.append(f"sriov records left: {fixtures.sriov_records(frag)}")
        if fixtures.vf_netdev(frag, 0) != vf0:
            rep.problems.append(f"VF 0 netdev not back under its name {vf0}")
        return rep
