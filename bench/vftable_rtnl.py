"""The `netlink` VF-table backend on cni/rtnl.py against the pyroute2 IPRoute code it replaced
(tests/vftable_pyroute2_ref.py keeps that code's spec/decoder).

    python -m bench.vftable_rtnl imports OLD_REPO NEW_REPO   # what an exec'd sriov call loads
    python -m bench.vftable_rtnl codec                       # encode/decode only (any host)
    python -m bench.vftable_rtnl kernel                      # real VF table: in the kernel-tier
                                                             # guest (netdevsim PF), as root

`imports`: per repo, 7 fresh `python -I -X importtime` processes import what the sriov entry
imports on its in-process path with the netlink backend (cni.leanimport, delegates.sriov.plugin,
the backend) and read `lo`'s VF table once; median total import time, wall, max RSS, modules.
`codec`: median µs to encode each group's message, and to decode an N-VF answer into VFStates.
`kernel`: median µs per get_all() (RTM_GETLINK + decode of N VFs) and per one-group set
(RTM_NEWLINK + ACK), old vs new, for N = 8, 64, 256 (sriov_numvfs changed, put back to 8).
"""
from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time

PROBE = r"""
import sys, time
t0 = time.perf_counter()
from cni.leanimport import lean_pyroute2
lean_pyroute2()
import delegates.sriov.plugin
from delegates.sriov.vftable import open_vftable
with open_vftable("netlink", "lo", "/sys") as t:
    t.num_vfs()
import resource
print(time.perf_counter() - t0, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
      len(sys.modules), "asyncio" in sys.modules, "pyroute2.iproute" in sys.modules,
      file=sys.stderr)
"""


def _median_us(fn, n: int) -> float:
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1e6


def imports(old: str, new: str, runs: int = 7) -> None:
    for label, repo in (("old", old), ("new", new)):
        py = os.path.join(repo, ".venv", "bin", "python")
        tot, wall, rss, mods = [], [], [], None
        for _ in range(runs):
            p = subprocess.run([py, "-I", "-X", "importtime", "-c", PROBE], cwd=repo,
                               capture_output=True, text=True, env={"PYTHONPATH": repo,
                                                                    "PATH": os.environ["PATH"]})
            lines = p.stderr.splitlines()
            t = sum(int(ln.split("|")[1]) for ln in lines if ln.startswith("import time:")
                    and "cumulative" not in ln and not ln.split("|")[2][1:].startswith(" "))
            tot.append(t / 1000)
            last = lines[-1].split()
            wall.append(float(last[0]) * 1000)
            rss.append(int(last[1]))
            mods = last[2:]
        print(f"{label}: imports {statistics.median(tot):.1f} ms (importtime, top level), "
              f"probe wall {statistics.median(wall):.1f} ms, max RSS {statistics.median(rss) / 1024:.1f} MB, "
              f"modules {mods[0]}, asyncio {mods[1]}, "
              f"pyroute2.iproute {mods[2]}")


def codec() -> None:
    from delegates.sriov import vftable_netlink as vn
    from delegates.sriov.vftable import GROUPS, VFState
    from tests.test_vftable_rtnl_codec import encode_link, new_dump, pyroute2_request
    from tests.vftable_pyroute2_ref import old_dump, old_spec
    s = VFState(mac="02:11:22:33:44:55", vlan=100, qos=3, proto="802.1ad", min_tx_rate=1,
                max_tx_rate=2, spoofchk=True, trust=True, link_state="enable")
    for group in GROUPS:
        old = _median_us(lambda g=group: pyroute2_request("set", index=7, vf=old_spec(3, g, s)),
                         300)
        new = _median_us(lambda g=group: vn.set_request(7, 3, g, s), 3000)
        print(f"encode {group:10s}: pyroute2 {old:7.1f} µs   ours {new:5.1f} µs")
    info = {"IFLA_VF_MAC": "02:aa:bb:cc:dd:ee", "IFLA_VF_VLAN": (100, 3),
            "IFLA_VF_VLAN_LIST": [{"vf": 0, "vlan": 100, "qos": 3, "proto": 0x8100}],
            "IFLA_VF_TX_RATE": 0, "IFLA_VF_RATE": (0, 0), "IFLA_VF_SPOOFCHK": 1,
            "IFLA_VF_LINK_STATE": 0, "IFLA_VF_RSS_QUERY_EN": 0, "IFLA_VF_TRUST": 0}
    for n in (8, 64, 256):
        data = encode_link([info] * n, n)
        old = _median_us(lambda d=data: old_dump(d), 20 if n > 64 else 100)
        new = _median_us(lambda d=data: new_dump(d), 200)
        print(f"decode {n:3d} VFs ({len(data)} B): pyroute2 {old / 1000:7.2f} ms   "
              f"ours {new / 1000:6.3f} ms")


def kernel() -> None:
    from pyroute2 import IPRoute

    from delegates.sriov.vftable import VFState, open_vftable
    from tests.vftable_pyroute2_ref import old_spec, old_state_of
    pf = os.environ["NETMETA_KERNEL_PF"]
    sysfs, debugfs = os.environ["NETMETA_KERNEL_NSIM_SYSFS"], os.environ["NETMETA_KERNEL_NSIM_DEBUGFS"]

    def numvfs(n: int) -> None:
        for path, v in ((f"{sysfs}/sriov_numvfs", 0), (f"{debugfs}/max_vfs", n),
                        (f"{sysfs}/sriov_numvfs", n)):
            with open(path, "w") as f:
                f.write(str(v))

    state = VFState(mac="02:11:22:33:44:55", vlan=100, qos=3)
    try:
        for n in (8, 64, 256):
            numvfs(n)
            with open_vftable("netlink", pf, "/sys") as table, IPRoute() as ipr:
                index = ipr.link_lookup(ifname=pf)[0]

                def old_read(ipr=ipr, index=index):
                    msg = ipr.link("get", index=index, ext_mask=1)[0]
                    vfl = msg.get_attr("IFLA_VFINFO_LIST")
                    return [old_state_of(i) for i in (vfl.get_attrs("IFLA_VF_INFO") if vfl else [])]

                reps = 10 if n > 64 else 50
                got_old, got_new = len(old_read()), len(table.get_all())
                r_old = _median_us(old_read, reps)
                r_new = _median_us(table.get_all, reps)
                s_old = _median_us(lambda ipr=ipr, i=index: ipr.link(
                    "set", index=i, vf=old_spec(1, "vlan", state)), 50)
                s_new = _median_us(lambda t=table: t._send(1, "vlan", state), 50)
                print(f"{n:3d} VFs: read pyroute2 {r_old / 1000:7.2f} ms ({got_old} VFs)   "
                      f"ours {r_new / 1000:6.2f} ms ({got_new} VFs);   set one group pyroute2 "
                      f"{s_old / 1000:5.2f} ms   ours {s_new / 1000:5.2f} ms", flush=True)
    finally:
        numvfs(8)


if __name__ == "__main__":
    sys.path.insert(0, os.getcwd())
    mode = sys.argv[1] if len(sys.argv) > 1 else "codec"
    if mode == "imports":
        imports(sys.argv[2], sys.argv[3])
    elif mode == "kernel":
        kernel()
    else:
        codec()
