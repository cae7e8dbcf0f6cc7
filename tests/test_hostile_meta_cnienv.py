"""Hostile input for the meta plugin and the daemon (issue 7, item 5), family `cnienv`:
CNI_ARGS (pod identity, IP=/MAC=, injection) and the other CNI_* variables.

The contract every case is held to, the node under attack and the shared strategies are in
tests/hostile.py; the families were one module (test_hostile_meta.py) until issue 14 split them."""
import json
import os

from hypothesis import given
from hypothesis import strategies as st

from cni import skel
from meta.plugin import MetaPlugin
from tests.hostile import (  # noqa: F401 - fixtures
    ANNOTS,
    NETWORKS,
    RESULTS,
    SETTINGS,
    env_for,
    judge,
    leftovers,
    meta_call,
    node_defaults_untouched,
    report,
    scrub,
    texts,
    world,
)


def envsafe(s: str) -> str:
    """What an environment variable can hold: no NUL (execve refuses it), and only the lone
    surrogates Python's surrogateescape makes of undecodable bytes (U+DC80..U+DCFF)."""
    return "".join(c if c != "\x00" and not ("\ud800" <= c <= "\udfff" and not "\udc80" <= c <= "\udcff") else "?"
                   for c in s)


ARG_KEYS = ["K8S_POD_NAMESPACE", "K8S_POD_NAME", "K8S_POD_UID", "K8S_POD_INFRA_CONTAINER_ID", "IgnoreUnknown", "IP",
            "MAC", "GATEWAY", "X"]
cni_args = st.one_of(
    st.text(max_size=200),
    st.lists(st.tuples(st.sampled_from(ARG_KEYS) | texts, texts), max_size=6).map(
        lambda kv: ";".join(f"{k}={v}" for k, v in kv)),
    st.sampled_from(["K8S_POD_NAMESPACE=../other;K8S_POD_NAME=p", "K8S_POD_NAMESPACE=team;K8S_POD_NAMESPACE=other",
                     "IP=10.62.0.5;K8S_POD_NAMESPACE=team", "IP=$(id)", "=", ";;;", "a", "K8S_POD_NAME=a\x00b",
                     "K8S_POD_NAMESPACE=team;MAC=02:00:00:00:00:01;IP=10.62.0.300", "x=" + "y" * 70000]))


@SETTINGS
@given(args=cni_args, annot=st.sampled_from(["", "pl", "sr-raw", "other/pl", "[{\"name\":\"pl\",\"ips\":[\"10.62.0.9/24\"]}]"]))
def test_cni_args(world, args, annot):
    meta_call("cni-env", world, world.conf, {NETWORKS: annot} if annot else {}, CNI_ARGS=envsafe(args))


env_values = texts | st.sampled_from(["ADD", "DEL", "CHECK", "GC", "STATUS", "VERSION", "add", "/proc/1/ns/net",
                                      "/var/run/netns/nope", "eth0", "a" * 16, "net1", "lo", "c-1", ".", "-x"])


@SETTINGS
@given(var=st.sampled_from(["CNI_COMMAND", "CNI_CONTAINERID", "CNI_IFNAME", "CNI_NETNS", "CNI_PATH"]), value=env_values)
def test_cni_env(world, var, value):
    value = envsafe(value)
    if var == "CNI_NETNS" and value not in ("", world.nspath):
        value = value if not value.startswith("/") else "/var/run/netns/nope-" + value.replace("/", "_")[:50]
    if var == "CNI_PATH":
        value = value.replace("/", "_")   # relative entries only: never a real directory of plugins
    env = env_for(world, **{var: value})
    conf = dict(world.conf, runtimeConfig={ANNOTS: {}})
    stdin = json.dumps(conf).encode()
    if env["CNI_COMMAND"] == "GC":
        stdin = json.dumps(dict(conf, **{"cni.dev/valid-attachments": []})).encode()
    if var == "CNI_PATH" and value:   # the cluster network's plugin is not found: code 102, and the
        # DEL cache stays until a DEL can run it (see test_add_whose_plugin_is_missing_leaves_nothing)
        code, out = skel.handle(MetaPlugin(), env, stdin)
        assert code != 0 and json.loads(out)["code"] == 102, out
        RESULTS["cni-env"][102] += 1
        assert skel.handle(MetaPlugin(), env_for(world, "DEL"), stdin)[0] == 0
        assert leftovers(world) == {}
        return
    judge("cni-env", world, MetaPlugin(), env, stdin, del_env=env_for(world, **({var: value} if var != "CNI_COMMAND" else {})),
          ctx={"_env": env})


def test_a_long_container_id_is_refused_or_served(world):
    """CNI_CONTAINERID is accepted up to 1024 characters (cni/request.py validate_container_id),
    but the DEL cache is the file <containerID>-<ifname>.json, and a file name holds 255 bytes:
    an ID of 300 characters makes ADD and DEL fail with code 100 (OSError: File name too long).
    Fix: refuse IDs longer than ~200 characters with code 4 (runtimes use 64), or name the cache
    file by a hash of a long ID."""
    cid = "x" * 300
    conf = json.dumps(dict(world.conf, runtimeConfig={ANNOTS: {}})).encode()
    code, out = skel.handle(MetaPlugin(), env_for(world, CNI_CONTAINERID=cid), conf)
    dcode, dout = skel.handle(MetaPlugin(), env_for(world, "DEL", CNI_CONTAINERID=cid), conf)
    scrub(world)
    assert code == 0 or json.loads(out)["code"] == 4, out
    assert dcode == 0 or json.loads(dout)["code"] == 4, dout


def test_add_whose_plugin_is_missing_leaves_nothing(world):
    conf = json.dumps(dict(world.conf, runtimeConfig={ANNOTS: {}})).encode()
    env = env_for(world, CNI_PATH=str(world.root / "bin-missing"))
    _, out = skel.handle(MetaPlugin(), env, conf)
    dcode, dout = skel.handle(MetaPlugin(), dict(env, CNI_COMMAND="DEL"), conf)
    left = leftovers(world)
    skel.handle(MetaPlugin(), env_for(world, "DEL"), conf)
    assert json.loads(out)["code"] == 102
    assert dcode == 0 and left == {}, (dout, left)


def test_gc_keeps_a_valid_attachment_whose_ifname_has_a_dash(world):
    """CNI_IFNAME may contain '-' (dev_valid_name allows it). The DEL cache is named
    <containerID>-<ifname>.json and meta/cache.py entries() splits the name at the LAST '-'
    (`cid, _, ifname = name[:-5].rpartition("-")`), so GC (and the start-up reconcile) see
    container "c1-eth" ifname "0" for c1/eth-0: GC drops the cache of an attachment listed in
    cni.dev/valid-attachments and runs the delegates' DEL with the wrong container ID, so their
    state (here the stand-in's marker; a lease, a VF) is leaked for good. Fix: take containerID
    and ifname from the entry itself (files are written with both)."""
    conf = dict(world.conf, runtimeConfig={ANNOTS: {}})
    env = env_for(world, CNI_CONTAINERID="c1", CNI_IFNAME="eth-0")
    try:
        code, out = skel.handle(MetaPlugin(), env, json.dumps(conf).encode())
        assert code == 0, out
        gc = dict(conf, **{"cni.dev/valid-attachments": [{"containerID": "c1", "ifname": "eth-0"}]})
        assert skel.handle(MetaPlugin(), env_for(world, "GC"), json.dumps(gc).encode())[0] == 0
        assert os.listdir(world.cache) == ["c1-eth-0.json"], "GC removed the DEL cache of a valid attachment"
    finally:
        skel.handle(MetaPlugin(), dict(env, CNI_COMMAND="DEL"), json.dumps(conf).encode())
        for f in os.listdir(world.marks):   # what the wrong-container DEL leaked
            os.unlink(world.marks / f)
        for f in os.listdir(world.cache):
            os.unlink(world.cache / f)
