"""CNI protocol core: env/stdin validation, CNI_ARGS, versions, results, errors, invoking."""
import json
import os
import stat

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cni import errors, files, invoke, version
from cni.args import parse_cni_args
from cni.errors import CNIError
from cni.request import from_env, validate_ifname
from cni.result import Result
from delegates import registry
from tests.cnirun import DEBIAN_CNI

BASE = {"CNI_COMMAND": "ADD", "CNI_CONTAINERID": "abc-1.x_y", "CNI_NETNS": "/var/run/netns/x",
        "CNI_IFNAME": "eth0", "CNI_PATH": "/opt/cni/bin"}
CONF = json.dumps({"cniVersion": "1.0.0", "name": "n1", "type": "x"}).encode()


def code_of(fn, *a):
    with pytest.raises(CNIError) as e:
        fn(*a)
    return e.value.code


@pytest.mark.parametrize("raw,expected", [
    ("", {}),
    ("IgnoreUnknown=1;K8S_POD_NAME=a;K8S_POD_NAMESPACE=b", {"IgnoreUnknown": "1", "K8S_POD_NAME": "a",
                                                           "K8S_POD_NAMESPACE": "b"}),
    ("K8S_POD_NAMESPACE=b;IgnoreUnknown=1", {"K8S_POD_NAMESPACE": "b", "IgnoreUnknown": "1"}),
    ("IP=10.0.0.1/24,fd00::1/64", {"IP": "10.0.0.1/24,fd00::1/64"}),
    ("A=;B=x=y", {"A": "", "B": "x=y"}),
    (";;A=1;", {"A": "1"}),
])
def test_cni_args_pairs(raw, expected):
    assert parse_cni_args(raw) == expected


@pytest.mark.parametrize("raw", ["A", "=1", "A=1;B", "A=1;=2"])
def test_cni_args_malformed_is_code_4(raw):
    assert code_of(parse_cni_args, raw) == errors.INVALID_ENV


@given(st.text(max_size=300))
def test_cni_args_never_crashes(raw):
    try:
        out = parse_cni_args(raw)
    except CNIError as e:
        assert e.code == errors.INVALID_ENV
    else:
        assert all(isinstance(k, str) and k for k in out)


@pytest.mark.parametrize("var", ["CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME", "CNI_PATH"])
def test_add_requires_env(var):
    env = {k: v for k, v in BASE.items() if k != var}
    with pytest.raises(CNIError) as e:
        from_env(env, CONF)
    assert e.value.code == errors.INVALID_ENV and var in e.value.msg


def test_del_does_not_require_netns():
    env = dict(BASE, CNI_COMMAND="DEL")
    del env["CNI_NETNS"]
    assert from_env(env, CONF).netns == ""


@pytest.mark.parametrize("cid", ["", "-abc", "a b", "a/b", "a;b", "ä"])
def test_bad_container_id(cid):
    env = dict(BASE, CNI_CONTAINERID=cid)
    assert code_of(from_env, env, CONF) == errors.INVALID_ENV


@pytest.mark.parametrize("name,ok", [("eth0", True), ("net1", True), ("a" * 15, True), ("a" * 16, False),
                                     (".", False), ("..", False), ("a/b", False), ("a:b", False),
                                     ("a b", False), ("", False)])
def test_ifname_rules(name, ok):
    if ok:
        assert validate_ifname(name) == name
    else:
        assert code_of(validate_ifname, name) == errors.INVALID_ENV


@pytest.mark.parametrize("stdin,code", [
    (b"{", errors.DECODE_FAILURE), (b"[]", errors.DECODE_FAILURE), (b"\xff", errors.DECODE_FAILURE),
    (b'{"cniVersion":1,"name":"n"}', errors.INCOMPATIBLE_VERSION),
    (b'{"cniVersion":"9.9.9","name":"n"}', errors.INCOMPATIBLE_VERSION),
    (b'{"cniVersion":"1.0.0","name":"bad name"}', errors.INVALID_CONFIG),
])
def test_bad_stdin(stdin, code):
    assert code_of(from_env, BASE, stdin) == code


@pytest.mark.parametrize("cmd,v", [("CHECK", "0.3.1"), ("GC", "1.0.0"), ("STATUS", "1.0.0")])
def test_verb_needs_version(cmd, v):
    env = dict(BASE, CNI_COMMAND=cmd)
    conf = json.dumps({"cniVersion": v, "name": "n"}).encode()
    assert code_of(from_env, env, conf) == errors.INCOMPATIBLE_VERSION


def test_unknown_command():
    assert code_of(from_env, dict(BASE, CNI_COMMAND="FOO"), CONF) == errors.INVALID_ENV


def test_negotiate_highest_common():
    assert version.negotiate(["0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0"]) == "1.0.0"
    assert version.negotiate(["0.3.1"]) == "0.3.1"
    assert version.negotiate(["0.1.0", "0.2.0"]) == "0.2.0"   # a legacy delegate
    assert code_of(version.negotiate, ["0.0.9"]) == errors.INCOMPATIBLE_VERSION


RESULT_10 = {
    "cniVersion": "1.0.0",
    "interfaces": [{"name": "br0", "mac": "0a:00:00:00:00:01"},
                   {"name": "eth0", "mac": "0a:00:00:00:00:02", "sandbox": "/var/run/netns/x"}],
    "ips": [{"interface": 1, "address": "10.1.0.5/24", "gateway": "10.1.0.1"},
            {"interface": 1, "address": "fd00::5/64", "gateway": "fd00::1"}],
    "routes": [{"dst": "0.0.0.0/0", "gw": "10.1.0.1"}, {"dst": "::/0"}],
    "dns": {"nameservers": ["10.1.0.2"], "domain": "example", "search": ["a"], "options": ["ndots:2"]},
}


@pytest.mark.parametrize("v", ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"])
def test_result_round_trip(v):
    out = Result.from_dict(RESULT_10).to_dict(v)
    assert out["cniVersion"] == v
    if v < "1.0.0":
        assert [ip["version"] for ip in out["ips"]] == ["4", "6"]
    else:
        assert all("version" not in ip for ip in out["ips"])
    back = Result.from_dict(out).to_dict("1.0.0")
    assert back == RESULT_10


def test_result_11_fields_only_in_11():
    d = dict(RESULT_10, cniVersion="1.1.0",
             interfaces=[{"name": "net1", "mtu": 9000, "pciID": "0000:3b:02.1"}],
             ips=[{"interface": 0, "address": "10.1.0.5/24"}],
             routes=[{"dst": "10.2.0.0/16", "gw": "10.1.0.1", "table": 100, "mtu": 1400}])
    r = Result.from_dict(d)
    assert r.to_dict("1.1.0")["interfaces"][0]["pciID"] == "0000:3b:02.1"
    assert r.to_dict("1.1.0")["routes"][0]["table"] == 100
    assert "pciID" not in r.to_dict("1.0.0")["interfaces"][0]
    assert "table" not in r.to_dict("1.0.0")["routes"][0]


@pytest.mark.parametrize("bad", [
    {"cniVersion": "1.0.0", "ips": [{"address": "10.1.0.5"}]},
    {"cniVersion": "1.0.0", "ips": [{"address": "nope/24"}]},
    {"cniVersion": "1.0.0", "ips": [{"address": "10.1.0.5/24", "interface": 3}]},
    {"cniVersion": "0.3.1", "ips": [{"version": "6", "address": "10.1.0.5/24"}]},
    {"cniVersion": "1.0.0", "routes": [{"gw": "10.1.0.1"}]},
    {"cniVersion": "1.0.0", "interfaces": "x"},
    {"cniVersion": "0.2.0", "ip4": {"ip": "10.0.0.1"}},
    {"cniVersion": "0.2.0", "ip4": {"ip": "fd00::1/64"}},
    {"cniVersion": "0.1.0", "ip6": "fd00::1/64"},
    {"cniVersion": "0.2.0", "ip4": {"ip": "10.0.0.1/24", "routes": [{"gw": "10.0.0.1"}]}},
    {"cniVersion": "0.9.0", "ips": []},
    # numbers are not addresses (ipaddress would read them as 10.0.0.1 / 0.0.0.0/32)
    {"cniVersion": "1.0.0", "ips": [{"address": "10.0.0.5/24", "gateway": 167772161}]},
    {"cniVersion": "1.0.0", "routes": [{"dst": 0}]},
])
def test_result_rejects_malformed(bad):
    with pytest.raises(CNIError):
        Result.from_dict(bad)


def test_error_json_shape():
    e = CNIError(errors.INVALID_CONFIG, "bad thing", "because")
    assert e.to_dict("1.0.0") == {"cniVersion": "1.0.0", "code": 7, "msg": "bad thing", "details": "because"}


def test_atomic_write_mode_and_replace(tmp_path):
    p = str(tmp_path / "sub" / "f.json")
    old = os.umask(0)
    try:
        files.write_json(p, {"a": 1})
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(p).st_mode) == 0o600
    files.write_json(p, {"a": 2})
    assert files.read_json(p) == {"a": 2}
    assert os.listdir(tmp_path / "sub") == ["f.json"]


@pytest.mark.parametrize("t", ["../bin/sh", "/bin/sh", "a/b", "..", "", "x" * 65, "a b"])
def test_delegate_type_must_be_plain_name(t):
    assert code_of(invoke.validate_type, t) == errors.INVALID_CONFIG


def test_plugin_versions_of_debian_plugin():
    if not os.path.exists(f"{DEBIAN_CNI}/static"):
        pytest.skip("Debian containernetworking-plugins not installed")
    vers = invoke.plugin_versions(f"{DEBIAN_CNI}/static")
    assert "1.0.0" in vers and version.negotiate(vers) == "1.0.0"


def _script(path, body):
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)
    return str(path)


def _req(path, conf=None, command="ADD"):
    env = dict(BASE, CNI_COMMAND=command, CNI_PATH=":".join(path))
    return from_env(env, json.dumps(conf or {"cniVersion": "0.3.1", "name": "n1"}).encode())


def test_delegate_exec_gets_its_own_version_and_converts():
    if not os.path.exists(f"{DEBIAN_CNI}/static"):
        pytest.skip("Debian containernetworking-plugins not installed")
    req = _req([DEBIAN_CNI], {"cniVersion": "0.3.1", "name": "n1"})
    conf = {"cniVersion": "0.3.1", "name": "n1", "type": "static",
            "ipam": {"type": "static", "addresses": [{"address": "10.3.0.4/24"}]}}
    res = invoke.delegate("static", "ADD", conf, req)
    assert res.cni_version == "0.3.1"          # the config's own version, unchanged (libcni, Multus)
    assert res.to_dict("1.0.0")["ips"][0] == {"address": "10.3.0.4/24"}
    assert res.to_dict("0.3.1")["ips"][0] == {"version": "4", "address": "10.3.0.4/24"}


def test_delegate_not_found_and_bad_type(tmp_path):
    req = _req([str(tmp_path)])
    assert code_of(invoke.delegate, "nosuch", "ADD", {"type": "nosuch"}, req) == errors.DELEGATE_NOT_FOUND
    assert code_of(invoke.delegate, "../x", "ADD", {}, req) == errors.INVALID_CONFIG


VERSION_OK = 'if [ "$CNI_COMMAND" = VERSION ]; then echo \'{"cniVersion":"1.0.0","supportedVersions":["0.3.1","1.0.0"]}\'; exit 0; fi\n'  # noqa: E501


def test_delegate_error_json_is_passed_on(tmp_path):
    _script(tmp_path / "foreign", VERSION_OK + 'echo \'{"cniVersion":"1.0.0","code":7,"msg":"nope","details":"d"}\'; exit 1\n')
    e = pytest.raises(CNIError, invoke.delegate, "foreign", "ADD", {"type": "foreign"}, _req([str(tmp_path)])).value
    assert e.code == 7 and "foreign" in e.msg and "nope" in e.msg and e.details == "d"


def test_delegate_garbage_and_timeout(tmp_path):
    _script(tmp_path / "garbage", VERSION_OK + "echo not json; exit 0\n")
    _script(tmp_path / "crash", VERSION_OK + "echo boom >&2; exit 3\n")
    _script(tmp_path / "slow", VERSION_OK + "sleep 30\n")
    req = _req([str(tmp_path)])
    assert code_of(invoke.delegate, "garbage", "ADD", {}, req) == errors.DECODE_FAILURE
    e = pytest.raises(CNIError, invoke.delegate, "crash", "ADD", {}, req).value
    assert e.code == errors.DELEGATE_FAILED and "boom" in e.details
    assert pytest.raises(CNIError, invoke.delegate, "slow", "ADD", {}, req, timeout=0.5).value.code == \
        errors.DELEGATE_TIMEOUT


def test_own_type_runs_in_process_but_foreign_namesake_is_execd(tmp_path, data_dir):
    from tests.cnirun import VENV_BIN
    conf = {"cniVersion": "1.0.0", "name": "n1", "type": "fixipam",
            "ipam": {"type": "fixipam", "subnet": "10.4.0.0/24", "dataDir": data_dir}}
    assert invoke._is_own(os.path.join(VENV_BIN, "fixipam"), registry.OWN.markers)
    req = from_env(dict(BASE, CNI_PATH=VENV_BIN, CNI_ARGS="IP=10.4.0.2"), json.dumps(conf).encode())
    assert invoke.delegate("fixipam", "ADD", conf, req, own=registry.OWN).ips[0].address == "10.4.0.2/24"
    invoke.delegate("fixipam", "DEL", conf, req, own=registry.OWN)
    marker = tmp_path / "ran"
    _script(tmp_path / "fixipam", VERSION_OK + f'touch {marker}; echo \'{{"cniVersion":"1.0.0"}}\'\n')
    req2 = from_env(dict(BASE, CNI_PATH=f"{tmp_path}:{VENV_BIN}"), json.dumps(conf).encode())
    invoke.delegate("fixipam", "ADD", conf, req2, own=registry.OWN)
    assert marker.exists()   # the foreign plugin first in CNI_PATH was exec'd, not shadowed


def test_shim_version_reply_equals_the_protocol_core():
    from cni import shim
    assert json.loads(shim.VERSION_REPLY) == version.version_info()
