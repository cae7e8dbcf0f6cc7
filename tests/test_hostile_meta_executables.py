"""Hostile input for the meta plugin and the daemon (issue 7, item 5), family `executables`:
a corpus through the real `netmeta`, `sriov`, `fixipam` executables (native shim in
daemon and thin mode, the stand-alone delegates).

The contract every case is held to, the node under attack and the shared strategies are in
tests/hostile.py; the families were one module (test_hostile_meta.py) until issue 14 split them."""
import json

from tests.cnirun import cni
from tests.hostile import (  # noqa: F401 - fixtures
    ANNOTS,
    DEFAULT_NET,
    NETWORKS,
    POD_NS,
    RESULTS,
    daemon,
    deep,
    leftovers,
    node_defaults_untouched,
    report,
    scrub,
    world,
)


def test_corpus_through_the_executables(world, daemon):
    """The native shim (daemon mode and thin mode, so both the daemon and the in-process engine
    answer) and the stand-alone delegates: stdout is exactly one JSON error, exit non-zero, no
    traceback on stderr, nothing left."""
    cases = [b"", b"{", b"[" * 100000, b"\xff\xfe", json.dumps({"cniVersion": "1.1.0", "name": "x"}).encode()]
    bad_types = []
    for mode in ("thin", "daemon"):
        base = dict(world.conf, mode=mode, socketPath=daemon.socket)
        cases += [json.dumps(dict(base, runtimeConfig={ANNOTS: a})).encode() for a in
                  ({NETWORKS: "../../x"}, {NETWORKS: "pl@$(id)"}, {NETWORKS: deep(5000)}, {DEFAULT_NET: "other/x;y"},
                   {NETWORKS: json.dumps([{"name": "h0", "ips": ["10.62.0.9/24\n"]}])})]
        bad_types += [json.dumps(dict(base, delegates=[{"cniVersion": "1.0.0", "name": "d", "type": t}])).encode()
                      for t in ("../bin/evil", str(world.root / "bin" / "evil"), "..")]
        cases += [json.dumps(dict(base, cniDir="relative")).encode(), json.dumps(dict(base, delegateTimeout=-1)).encode()]
    cases += bad_types
    for raw in cases:
        for plugin, env in (("netmeta", {}), ("sriov", {"NETMETA_SOCKET": daemon.socket}),
                            ("fixipam", {"NETMETA_SOCKET": daemon.socket})):
            kw = {"container_id": "exe1", "netns": world.nspath, "path": str(world.plug), "timeout": 60,
                  "extra_env": env, "args": f"IgnoreUnknown=1;K8S_POD_NAMESPACE={POD_NS};K8S_POD_NAME=hp"}
            r = cni(plugin, "ADD", raw, **kw)     # stdout must be exactly one JSON document (cni() parses it)
            assert "Traceback" not in r.stderr, (plugin, raw[:80], r.stderr[-500:])
            if r.ok:   # e.g. an interface named "$(id)": legal, and never run by a shell
                RESULTS["executables"]["ok"] += 1
            else:
                assert isinstance(r.out, dict) and isinstance(r.out.get("code"), int) and r.out["code"] != 100, \
                    (plugin, raw[:80], r.out)
                RESULTS["executables"][r.out["code"]] += 1
                if raw in bad_types and plugin == "netmeta" and leftovers(world):   # refused, but see
                    RESULTS["executables"]["left (bad-type-leaves-cache)"] += 1    # test_security
                    scrub(world)
                assert leftovers(world) == {}, (plugin, raw[:80], r.out, leftovers(world))
            if plugin != "netmeta":   # their DEL of a config without ipam/stateDir falls back to the
                continue              # node's default dirs (/var/lib/cni/netmeta/...): not here
            d = cni(plugin, "DEL", raw, **kw)
            assert d.ok or not r.ok, (plugin, raw[:80], d.out)
            assert leftovers(world) == {}, (plugin, raw[:80], leftovers(world))
    assert not world.marker.exists(), "a delegate type escaping CNI_PATH was executed"
    assert daemon.proc.poll() is None and "Traceback" not in daemon.log()
