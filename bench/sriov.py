"""Section `sriov`: stand-alone sriov + fixipam vs Debian host-device + static moving the SAME
stand-in VF (VF 0 of a simulated NIC, its host netdev read from the sim's topology) into a
fresh netns as net1 with 10.56.0.7/24, ADD+DEL per iteration."""
from contextlib import ExitStack

from bench import daemon, fixtures
from bench.stats import Case, Report, interleave, table

HD = "(e) host-device+static, VF 0 netdev (Debian)"
SR = "sriov+fixipam vf 0, no daemon (in-process)"
SR_D = "sriov+fixipam vf 0 via daemon (shim -> daemon)"
SEED_D = "the seed's example via daemon (no cniVersion, CNI_ARGS VF=0;MAC=;IP=)"
SEED_ARGS = "IgnoreUnknown=1;IP=10.56.0.7;VF=0;MAC=66:d8:02:77:aa:aa"


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

        # the seed plugin's README example as its users run it: 0.1.0 config, extra arguments in CNI_ARGS
        seed = {k: v for k, v in fixtures.sriov_conf(frag, work, 56, name="sriov-net").items()
                if k not in ("cniVersion", "capabilities")}

        def seed_once(env):
            def go(pod):
                pod.args = SEED_ARGS
                r = pod.add("sriov", seed, ifname="eth0", env=env)
                if r.out.get("ip4", {}).get("ip") != "10.56.0.7/24":
                    raise AssertionError(f"seed example gave {r.out}")
                pod.delete("sriov", seed, ifname="eth0", env=env)
            return go

        fresh = lambda: fixtures.pods(1)[0]   # noqa: E731
        cases = {HD: Case(once("host-device", hd), fresh, after_hd),
                 SR: Case(once("sriov", sr), fresh, lambda p: fixtures.release([p]))}
        d = daemon.start(st)
        if d:   # HOOK: the stand-alone executable's shim forwards to the daemon (warm imports)
            cases[SR_D] = Case(once("sriov", sr, d.env), fresh, lambda p: fixtures.release([p]))
            cases[SEED_D] = Case(seed_once(d.env), fresh, lambda p: fixtures.release([p]))
        res = interleave(cases, runs)
        rep = Report("3. one VF with a fixed IP: sriov+fixipam vs host-device+static (ADD+DEL)",
                     table(list(res.items()), HD),
                     f"sriov: {res[SR]['median'] / res[HD]['median']:.1f}x host-device"
                     + (f"; (e) via daemon {res[SR_D]['median'] / res[HD]['median']:.2f}x (target <= 2.0)"
                        f"; seed example via daemon {res[SEED_D]['median'] / res[HD]['median']:.2f}x"
                        if SR_D in res else ""))
        rep.target("1. sriov+fixipam without daemon / host-device+static", res[SR]["median"] / res[HD]["median"], 4)
        if SR_D in res:
            rep.target("2. sriov+fixipam via daemon / host-device+static", res[SR_D]["median"] / res[HD]["median"], 1.2)
        if fixtures.sriov_records(frag):
            rep.problems.append(f"sriov records left: {fixtures.sriov_records(frag)}")
        if fixtures.vf_netdev(frag, 0) != vf0:
            rep.problems.append(f"VF 0 netdev not back under its name {vf0}")
        return rep
