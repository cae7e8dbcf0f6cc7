"""Bad input never produces a traceback: always one error JSON with a code, a non-zero exit,
and nothing reserved. Property-based over CNI_ARGS, netconf JSON and IP values, through the
same top-level handler the executables use (skel.handle), plus a sample through the real
executable."""
import json
import os

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cni import skel
from delegates.fixipam.plugin import FixIPAM
from tests.cnirun import cni

ENV = {"CNI_COMMAND": "ADD", "CNI_CONTAINERID": "c1", "CNI_NETNS": "/x", "CNI_IFNAME": "eth0",
       "CNI_PATH": "/usr/lib/cni"}
SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=10), c, max_size=4),
    max_leaves=20)


def _assert_error(code, out, tmp):
    assert code != 0
    err = json.loads(out)
    assert set(err) >= {"cniVersion", "code", "msg"} and isinstance(err["code"], int)
    assert err["code"] != 100, err  # 100 = internal error: a bug, not a validation
    for _root, _dirs, fnames in os.walk(tmp):
        assert all(f == ".lock" for f in fnames), fnames


def _conf(tmp, **ipam):
    base = {"type": "fixipam", "subnet": "10.5.0.0/24", "gateway": "10.5.0.1", "dataDir": tmp}
    base.update(ipam)
    return {"cniVersion": "1.0.0", "name": "hostile", "ipam": base}


@SETTINGS
@given(raw=st.text(max_size=200))
def test_cni_args_strings(tmp_path, raw):
    tmp = str(tmp_path)
    code, out = skel.handle(FixIPAM(), dict(ENV, CNI_ARGS=raw), json.dumps(_conf(tmp)).encode())
    if code == 0:  # only a valid IP= in the subnet may succeed
        assert json.loads(out)["ips"][0]["address"].startswith("10.5.0.")
        skel.handle(FixIPAM(), dict(ENV, CNI_COMMAND="DEL"), json.dumps(_conf(tmp)).encode())
    else:
        _assert_error(code, out, tmp)


@SETTINGS
@given(ipam=st.dictionaries(st.sampled_from(["subnet", "gateway", "ranges", "routes", "dns", "dataDir",
                                              "type", "x"]), json_values, max_size=5),
       top=st.dictionaries(st.sampled_from(["cniVersion", "name", "runtimeConfig", "args", "prevResult"]),
                           json_values, max_size=3))
def test_netconf_json(tmp_path, ipam, top):
    tmp = str(tmp_path)
    ipam = {k: v for k, v in ipam.items() if k != "dataDir"}
    conf = dict(_conf(tmp, **ipam), **top)
    code, out = skel.handle(FixIPAM(), dict(ENV, CNI_ARGS="IP=10.5.0.9"), json.dumps(conf).encode())
    if code != 0:
        _assert_error(code, out, tmp)
    else:
        skel.handle(FixIPAM(), dict(ENV, CNI_COMMAND="DEL"), json.dumps(conf).encode())


@SETTINGS
@given(raw=st.binary(max_size=300))
def test_raw_stdin_bytes(tmp_path, raw):
    code, out = skel.handle(FixIPAM(), ENV, raw)
    _assert_error(code, out, str(tmp_path))


ip_texts = st.one_of(
    st.ip_addresses().map(str),
    st.tuples(st.ip_addresses(), st.integers(-1, 200)).map(lambda t: f"{t[0]}/{t[1]}"),
    st.text(alphabet="0123456789abcdef.:/, ", max_size=40))


@SETTINGS
@given(ips=st.lists(ip_texts, max_size=3))
def test_ip_values(tmp_path, ips):
    tmp = str(tmp_path)
    conf = _conf(tmp, ranges=[[{"subnet": "fd05::/64"}]])
    conf["runtimeConfig"] = {"ips": ips}
    code, out = skel.handle(FixIPAM(), ENV, json.dumps(conf).encode())
    if code == 0:
        for ip in json.loads(out)["ips"]:
            assert ip["address"].startswith(("10.5.0.", "fd05:"))
        skel.handle(FixIPAM(), dict(ENV, CNI_COMMAND="DEL"), json.dumps(conf).encode())
    else:
        _assert_error(code, out, tmp)


CORPUS = [
    b"", b"{", b"null", b"[]", b'"x"', b"\x00\x01", b'{"cniVersion":"1.0.0"}',
    b'{"cniVersion":"1.0.0","name":"n"}', b'{"cniVersion":"1.0.0","name":"n","ipam":[]}',
    b'{"cniVersion":"1.0.0","name":"n","ipam":{"subnet":"10.0.0.0/24"},"runtimeConfig":{"ips":[1,2]}}',
    json.dumps({"cniVersion": "1.0.0", "name": "n" * 5000}).encode(),
    b'{"cniVersion":"1.0.0","name":"n","ipam":' + b'{"a":' * 200 + b"1" + b"}" * 200 + b"}",
    b"[" * 100000,
]


def test_corpus_through_executable(tmp_path):
    """The real executable: stdout is one JSON error document, exit non-zero, a log line."""
    for raw in CORPUS:
        r = cni("fixipam", "ADD", raw, netns="/x", args="IP=10.0.0.5")
        assert r.rc != 0 and isinstance(r.out["code"], int) and r.out["msg"], raw[:60]
        assert "Traceback" not in r.stderr and r.stderr.strip(), raw[:60]
    bad_env = cni("fixipam", "ADD", _conf(str(tmp_path)), netns="/x", args="IP=10.5.0.5", ifname="a/b")
    assert bad_env.rc != 0 and bad_env.out["code"] == 4
