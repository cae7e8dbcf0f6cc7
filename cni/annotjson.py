"""What every pod-annotation parser shares (the meta plugin's, meta/annotations/parse.py, and the
stand-alone sriov plugin's, delegates/sriov/podannotations.py): the error it raises, the size
limit it applies first, the quoting of untrusted text in its messages, and JSON decoded as Go's
encoding/json decodes it (objects as their ordered (key, value) pairs so duplicates can be seen;
NaN / Infinity refused; int64 limits; Go's strings.TrimSpace whitespace). Stdlib only."""
from __future__ import annotations

import json

MAX_ANNOTATION_BYTES = 64 * 1024
INT64_MAX = 2**63 - 1
# unicode.IsSpace, what Go's strings.TrimSpace strips
GO_SPACE = ("\t\n\v\f\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008"
             "\u2009\u200a\u2028\u2029\u202f\u205f\u3000")


class AnnotationError(ValueError):
    """A pod annotation that cannot be honoured; the message names the annotation, the item and
    the rule: `failed to parse <annotation>: <item>: <rule>`."""


def quote(text: str, limit: int = 80) -> str:
    """Quote untrusted text for a message: JSON-escaped (no control characters), truncated."""
    if len(text) > limit:
        text = text[:limit] + "..."
    return json.dumps(text)


def fail(annot: str, where: str, rule: str) -> AnnotationError:
    return AnnotationError(f"failed to parse {annot}: {where}: {rule}")


class JSONPairs(list):
    """A JSON object as its (key, value) pairs, in document order (json object_pairs_hook)."""


def no_constant(name: str):
    raise ValueError(f"invalid JSON literal {name}")


def go_loads(text: str):
    """json.loads as Go's decoder: objects kept as ordered pairs, NaN/Infinity refused."""
    return json.loads(text, object_pairs_hook=JSONPairs, parse_constant=no_constant)


def json_kind(v) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "boolean"
    if isinstance(v, (int, float)):
        return "number"
    if isinstance(v, str):
        return "string"
    if isinstance(v, JSONPairs):
        return "object"
    return "array"
