"""cni/jsonlite.py is the json module's loads/dumps, value for value, byte for byte, error for
error: compared with the json module on arbitrary JSON values, documents, broken documents
and byte strings (every encoding json.detect_encoding knows), and edge cases."""
import json
import os
import subprocess
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cni import jsonlite
from tests.cnirun import REPO

scalars = (st.none() | st.booleans() | st.integers() | st.integers(min_value=-10**80, max_value=10**80)
           | st.floats() | st.text())
values = st.recursive(scalars, lambda kids: st.lists(kids, max_size=5)
                      | st.dictionaries(st.text(max_size=8), kids, max_size=5), max_leaves=30)
# keys json.dumps converts (int, float, bool, None) or refuses (tuple), mixed or not
keys = st.text(max_size=4) | st.integers() | st.floats() | st.booleans() | st.none() | st.tuples(st.integers())
SEPARATORS = (None, (",", ":"), (", ", ": "), (" , ", " : "))


def outcome(fn, *a, **kw):
    """What a call gives: ("ok", repr of the value: 1 != 1.0, True != 1, nan == nan, key order
    kept) or ("raise", type, message, position fields of a JSONDecodeError)."""
    try:
        return "ok", repr(fn(*a, **kw))
    except (ValueError, TypeError, RecursionError) as e:
        return "raise", type(e), str(e), getattr(e, "pos", None), getattr(e, "lineno", None), \
            getattr(e, "colno", None), getattr(e, "doc", None)


def same(a, b):
    assert outcome(jsonlite.loads, a) == outcome(json.loads, a)
    return outcome(json.loads, a)


@given(values, st.booleans(), st.sampled_from(SEPARATORS))
def test_dumps_is_json_dumps(value, sort_keys, separators):
    kw = {"sort_keys": sort_keys, "separators": separators}
    assert outcome(jsonlite.dumps, value, **kw) == outcome(json.dumps, value, **kw)


def test_dumps_default_arguments_are_json_dumps_defaults():
    v = {"b": [1, 2.5, None, True], "a": "é\u2028\ud800", "c": {"z": 1, "y": float("nan")}}
    assert jsonlite.dumps(v) == json.dumps(v)
    assert jsonlite.dumps(v, sort_keys=True, separators=(",", ":")) == json.dumps(v, sort_keys=True, separators=(",", ":"))


@given(st.dictionaries(keys, scalars, max_size=6), st.booleans())
def test_dumps_non_string_keys_as_json(d, sort_keys):
    assert outcome(jsonlite.dumps, d, sort_keys=sort_keys) == outcome(json.dumps, d, sort_keys=sort_keys)


@pytest.mark.parametrize("value", [
    float("nan"), float("inf"), -float("inf"), [float("-inf")], 10**300, -(10**4000), 1e308, -0.0, 5e-324,
    "\x00\x1f\x7f\u2028\U0001f600\udfff", "", [], {}, (1, 2), {"a": (1,)}, True, None,
    {1: 1, "1": 2}, {None: 1, True: 2, 1.5: 3}, {(1,): 2}, {1: 1, "a": 2}, b"x", {1, 2}, object(),
    [[[[[]]]]], float("1e400"),
], ids=repr)
def test_dumps_edge_cases(value):
    for kw in ({}, {"sort_keys": True}, {"sort_keys": True, "separators": (",", ":")}):
        assert outcome(jsonlite.dumps, value, **kw) == outcome(json.dumps, value, **kw)


def test_dumps_of_an_int_past_the_digit_limit_raises_as_json():
    for v in (10**5000, [-(10**5000)], {"a": 10**4300}):
        assert outcome(jsonlite.dumps, v) == outcome(json.dumps, v)
        assert outcome(jsonlite.dumps, v)[1] is ValueError


def test_dumps_refuses_a_circular_structure_as_json_does():
    a: list = []
    a.append(a)
    d: dict = {}
    d["d"] = d
    for v in (a, d):
        assert outcome(jsonlite.dumps, v) == outcome(json.dumps, v)
        assert outcome(jsonlite.dumps, v)[1] is ValueError
    assert jsonlite.dumps([a[:0], a[:0]]) == "[[], []]"     # the same object twice is no cycle


@given(values, st.sampled_from(SEPARATORS), st.sampled_from(["", " ", "\n\t ", "\r\n"]))
def test_loads_is_json_loads_on_documents(value, separators, ws):
    doc = ws + json.dumps(value, separators=separators, ensure_ascii=False) + ws
    assert same(doc, doc)[0] == "ok"
    same(doc.encode(), doc.encode())
    same(bytearray(doc.encode()), None)


@given(values, st.data())
def test_loads_is_json_loads_on_broken_documents(value, data):
    doc = json.dumps(value)
    cut = data.draw(st.integers(0, len(doc)))
    junk = data.draw(st.text(max_size=3))
    for broken in (doc[:cut], doc[:cut] + junk + doc[cut:], doc + junk, junk + doc):
        same(broken, None)
        same(broken.encode("utf-8", "surrogatepass"), None)


@given(st.text())
def test_loads_is_json_loads_on_any_text(text):
    same(text, None)
    same(text.encode("utf-8", "surrogatepass"), None)


@given(st.binary(max_size=40))
def test_loads_is_json_loads_on_any_bytes(raw):
    same(raw, None)


@given(values, st.sampled_from(["utf-8-sig", "utf-16", "utf-16-le", "utf-16-be", "utf-32", "utf-32-le",
                                "utf-32-be"]))
def test_loads_reads_every_encoding_json_detects(value, encoding):
    raw = json.dumps(value).encode(encoding)
    assert same(raw, None)[0] == "ok"


@pytest.mark.parametrize("doc", [
    "NaN", "-Infinity", "[Infinity, -Infinity, NaN]", "nan", "inf", "-NaN", "Infinity1",
    "1" * 5000, "-" + "9" * 4300, "1e400", "-0", "-0.0", "0.1e-400", "01", "1.", ".5", "+1",
    '{"a": 1, "a": 2}', '{"a": 1, "b": 2, "a": 3}', '"x"', "null", "true", "[]", "{}", " 1 ",
    "", " ", "\ufeff{}", "{} {}", "[1,]", '{"a":1,}', "[1 2]", '{"a" 1}', "{'a': 1}", '"\\x"',
    '"\\ud800"', '"\\ud83d\\ude00"', '"\x00"', '"\n"', '"\t"', '"\\u00e9"', '"é"', "[" * 100 + "]" * 100,
    "[" * 100000, "\u00a0{}", "{}\u00a0", "{}\x0c", "\x0b1", '{"a": [1, {"b": null}]}\n',
])
def test_loads_edge_cases(doc):
    same(doc, None)
    same(doc.encode("utf-8", "surrogatepass"), None)


@pytest.mark.parametrize("raw", [
    b"", b"\xef\xbb\xbf{}", b"\xff\xfe{\x00}\x00", b"\xfe\xff\x00{\x00}", b"\x00\x00\x00{", b"{\x00\x00\x00",
    b"1\x00", b"\x001", b"{\x00", b"\xff", b"\xc3(", b'"\xed\xa0\x80"', b"[1,\xff]", b"12\x00",
])
def test_loads_bytes_edge_cases(raw):
    same(raw, None)
    same(bytearray(raw), None)


@pytest.mark.parametrize("bad", [None, 1, 1.5, [], {}, memoryview(b"{}")])
def test_loads_refuses_other_types_as_json(bad):
    assert outcome(jsonlite.loads, bad) == outcome(json.loads, bad)
    assert outcome(jsonlite.loads, bad)[1] is TypeError


def test_loads_error_is_json_decode_error_with_its_position():
    with pytest.raises(json.JSONDecodeError) as e:
        jsonlite.loads('{"a":\n [1, }')
    assert (e.value.pos, e.value.lineno, e.value.colno) == (11, 2, 6) and e.value.msg == "Expecting value"
    with pytest.raises(json.JSONDecodeError) as e:
        jsonlite.loads("{} x")
    assert (e.value.msg, e.value.pos) == ("Extra data", 3)
    assert issubclass(json.JSONDecodeError, ValueError)


def _fresh(code: str) -> str:
    """stdout of `code` in a new interpreter (-I -S, as the exec'd entries run) with the repo on its path."""
    p = subprocess.run([sys.executable, "-I", "-S", "-c", f"import sys; sys.path.insert(0, {REPO!r})\n" + code],
                       capture_output=True, text=True, timeout=60, env={"PATH": os.environ.get("PATH", "")})
    assert p.returncode == 0, p.stderr
    return p.stdout


def test_imports_neither_json_nor_re_until_an_error():
    out = _fresh("from cni import jsonlite\n"
                 "v = jsonlite.loads(b' {\"a\": [1, 2.5, NaN, \"\\\\u00e9\"]} ')\n"
                 "s = jsonlite.dumps(v, sort_keys=True, separators=(',', ':')) + jsonlite.dumps(v)\n"
                 "print(sorted(m for m in ('json', 're', 'enum', 'json.decoder') if m in sys.modules))\n"
                 "try:\n    jsonlite.loads('[1,')\nexcept ValueError as e:\n    print(type(e).__name__, e.pos)\n")
    assert out.splitlines() == ["[]", "JSONDecodeError 3"]


BROKEN = ['{"a" 1}', '[1 2]', '{"a": 1,}', '"abc', '{"a": tru}', '[1,', '1 2', '', '{"a": "\x01"}',
          '{"a": "\\q"}', '["\\ud800\\u"]', '{1: 2}', '[' * 100000]


@pytest.mark.parametrize("as_bytes", [False, True])
def test_errors_in_a_process_that_has_not_imported_json(as_bytes):
    """The first error of a process (json not imported yet: an exec'd plugin reading a torn
    state file) is json's JSONDecodeError with json's position, as every later one."""
    want = [outcome(json.loads, d)[1:5] for d in BROKEN]
    out = _fresh("from cni import jsonlite\n"
                 f"for d in {BROKEN!r}:\n"
                 "    try:\n"
                 f"        jsonlite.loads(d.encode() if {as_bytes} else d)\n"
                 "    except (ValueError, RecursionError) as e:\n"
                 "        print(repr((type(e).__module__, type(e).__name__, str(e), getattr(e, 'pos', None),"
                 " getattr(e, 'lineno', None))))\n")
    assert out.splitlines() == [repr((t.__module__, t.__name__, m, p, ln)) for t, m, p, ln in want]


def test_without_the_c_module_it_is_the_json_module():
    out = _fresh("sys.modules['_json'] = None\n"
                 "import json\nfrom cni import jsonlite\n"
                 "print(jsonlite.loads is not json.loads and jsonlite.loads('[1, NaN]')[0] == 1,\n"
                 "      jsonlite.dumps({'b': 1, 'a': 2}, sort_keys=True, separators=(',', ':')),\n"
                 "      jsonlite.dumps('é'), json.scanner.c_make_scanner)\n"
                 "try:\n    jsonlite.loads('[1,')\nexcept json.JSONDecodeError as e:\n    print(e.pos)\n")
    assert out.splitlines() == ['True {"a":2,"b":1} "\\u00e9" None', "3"]
