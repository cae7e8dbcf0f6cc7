"""JSON decoded as Go's encoding/json decodes it, which is how Multus reads the JSON form of the
annotations (into its NetworkSelectionElement, multus-cni pkg/types/types.go):
- objects are kept as their (key, value) pairs in document order (`JSONPairs`), so that keys can be
  matched onto a struct's fields as Go does (`fold_fields`): exact name first, else
  case-insensitively (simple Unicode folding); the last duplicate wins; unknown keys are
  ignored (returned separately, so the caller can report them);
- a JSON `null` value is the same as an absent key, a value of the wrong JSON type is an error
  (the callers check types with `json_kind`); Go integers are int64 (`is_go_int`);
- NaN / Infinity are refused (Go has no such literals);
- an `interface{}` value (`cni-args`) gets lone surrogates replaced by U+FFFD as Go's decoder
  does, and numbers that do not fit a float64 are refused, as Go refuses them (`cni_value`).
Stdlib only."""
from __future__ import annotations

import json
import math
import re

from cni.annotjson import INT64_MAX, JSONPairs, go_loads, json_kind, no_constant, quote  # noqa: F401 (re-exported)

from .selection import JSONObject

_SURROGATE = re.compile("[\ud800-\udfff]")


def _fold(key: str) -> str | None:
    """Go's encoding/json matches a key to a field name case-insensitively (bytes.EqualFold,
    simple Unicode folding). Our field names are ASCII, and the only non-ASCII runes that fold
    to ASCII letters are KELVIN SIGN (k) and LATIN SMALL LONG S (s)."""
    if not key.isascii():
        key = key.replace("\u212a", "k").replace("\u017f", "s")
        if not key.isascii():
            return None
    return key.lower()



def fold_fields(pairs: JSONPairs, table: dict) -> tuple[dict, list]:
    """Map an object's keys onto a Go struct's fields: the last duplicate wins; unknown keys are
    returned separately (Go ignores them)."""
    out: dict = {}
    unknown: list = []
    for k, v in pairs:
        f = _fold(k)
        f = table.get(f) if f is not None else None
        if f is None:
            unknown.append(k)
        else:
            out[f] = v
    return out, unknown


def is_go_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and -2**63 <= v <= INT64_MAX


def cni_value(v):
    """One value of `cni-args` (Go: interface{}): frozen; lone surrogates become U+FFFD as Go's
    decoder does; a number beyond float64 is refused as Go refuses it."""
    if isinstance(v, JSONPairs):
        return JSONObject({_fix_str(k): cni_value(x) for k, x in v})
    if isinstance(v, list):
        return tuple(cni_value(x) for x in v)
    if isinstance(v, str):
        return _fix_str(v)
    if isinstance(v, float):
        if not math.isfinite(v):  # 1e400 parses as inf in Python, Go refuses it
            raise ValueError("number out of range")
    elif isinstance(v, int) and not isinstance(v, bool):
        float(v)  # OverflowError beyond float64, as Go's ParseFloat
    return v


def _fix_str(s: str) -> str:
    return _SURROGATE.sub("\ufffd", s) if _SURROGATE.search(s) else s



def short_json(v) -> str:
    """A JSON value, shown briefly in a message."""
    if v is None or isinstance(v, bool):
        return json.dumps(v)
    if isinstance(v, (int, float)):
        return quote(repr(v), 40)[1:-1]
    if isinstance(v, str):
        return quote(v, 40)
    return f"a JSON {json_kind(v)}"

