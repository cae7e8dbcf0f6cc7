"""cni/request.py's container-ID / network-name rule without `re` (str checks, so an exec'd
plugin never imports it) accepts exactly what the regex it replaced accepted:
`re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.\\-]*$").fullmatch`, on arbitrary strings, unicode and
newlines included (`$` matches before a trailing newline: fullmatch still refuses it)."""
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cni import errors
from cni.errors import CNIError
from cni.request import from_env, is_plain_name, validate_container_id

OLD = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.\-]*$")
# what the rule turns on, plus look-alikes: other digits/letters, Kelvin sign, dotless i, newlines
TRICKY = "aZ09_.-/ :\n\r\t\x00\x0b\x85\u2028é\u0130\u0131\u212a\u0660\uff10ß" + "ab"
names = st.text(alphabet=st.sampled_from(TRICKY), max_size=12) | st.text(max_size=12)


def old_container_id_ok(cid: str) -> bool:
    return bool(OLD.fullmatch(cid)) and len(cid) <= 192


@given(names)
def test_plain_name_is_the_old_regex(s):
    assert is_plain_name(s) == bool(OLD.fullmatch(s))


@given(names | st.builds(lambda a, n: a * n, st.sampled_from(["a", "0", "a.", "é"]), st.integers(180, 200)))
def test_container_id_rule_unchanged(cid):
    try:
        validate_container_id(cid)
        ok = True
    except CNIError as e:
        assert e.code == errors.INVALID_ENV and e.details == "must match [a-zA-Z0-9][a-zA-Z0-9_.-]*"
        ok = False
    assert ok == old_container_id_ok(cid)


@given(names)
def test_network_name_rule_unchanged(name):
    env = {"CNI_COMMAND": "DEL", "CNI_CONTAINERID": "c1", "CNI_IFNAME": "eth0", "CNI_PATH": "/x"}
    conf = ('{"cniVersion": "1.0.0", "name": %s}' % __import__("json").dumps(name)).encode()
    try:
        assert from_env(env, conf).name == name
        ok = True
    except CNIError as e:
        assert e.code == errors.INVALID_CONFIG
        ok = False
    assert ok == (bool(OLD.fullmatch(name)) and len(name) <= 200)


@pytest.mark.parametrize("s,ok", [
    ("a", True), ("abc123", True), ("A-b_c.d", True), ("0", True), ("a" * 500, True),
    ("", False), ("-a", False), (".a", False), ("_a", False), ("abc\n", False), ("\nabc", False),
    ("a\nb", False), ("abc\r", False), ("abc ", False), ("é", False), ("a\u212a", False),
    ("\u0660", False), ("\uff10", False), ("a/b", False), ("a:b", False), ("a\x00", False),
])
def test_plain_name_cases(s, ok):
    assert is_plain_name(s) is ok and bool(OLD.fullmatch(s)) is ok


OLD_TYPE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$")   # cni/invoke.py's TYPE_RE, as fullmatch'd


@given(names | st.builds(lambda a, n: a * n, st.sampled_from(["a", "0", "a.", "é"]), st.integers(60, 70)))
def test_plugin_type_rule_unchanged(t):
    """cni/invoke.validate_type: what `TYPE_RE.fullmatch(t) and t not in (".", "..")` accepted."""
    from cni.invoke import validate_type
    try:
        ok = validate_type(t) == t
    except CNIError as e:
        assert e.code == errors.INVALID_CONFIG and "invalid plugin type" in e.msg
        ok = False
    assert ok == (bool(OLD_TYPE.fullmatch(t)) and t not in (".", ".."))
