"""Our per-pod SR-IOV override annotations, `networks-sriov-vlan` and `networks-sriov-txrate`:
their syntax (a non-negative integer for every SR-IOV attachment of the pod, or a JSON object
per network) and which value applies to one attachment. Syntax only: the limits a network allows
are applied by meta/overrides.py. Pure functions, stdlib only: this runs on every ADD."""
from __future__ import annotations

from collections.abc import Iterable, Mapping

from .annoterrors import MAX_ANNOTATION_BYTES, _fail, _q
from .gojson import _INT64_MAX, _json_kind, _loads, _Obj
from .govalues import _GO_SPACE
from .selection import Selection

SRIOV_VLAN_ANNOTATION = "networks-sriov-vlan"
SRIOV_TXRATE_ANNOTATION = "networks-sriov-txrate"


def _known_names(network_names: Iterable) -> set[str]:
    known: set[str] = set()
    for n in network_names:
        if isinstance(n, Selection):
            known.update((n.name, n.key))
        else:
            known.add(n)
            if "/" in n:
                known.add(n.split("/", 1)[1])
    return known


def parse_override(value: str, network_names: Iterable,
                   key: str = f"{SRIOV_VLAN_ANNOTATION} / {SRIOV_TXRATE_ANNOTATION}"
                   ) -> dict[str, int]:
    """Parse a per-pod SR-IOV override annotation (`networks-sriov-vlan`,
    `networks-sriov-txrate`; pass the annotation name as `key`, it is used in messages).

    Either a plain non-negative decimal integer, which applies to every SR-IOV attachment of the
    pod and is returned as {"*": n}, or a JSON object mapping a network (`name` or
    `namespace/name`, one of `network_names`: strings in either form, or Selections) to a
    non-negative integer. Syntax only: policy limits are applied by the caller. Use
    `override_for` to find the value for one attachment."""
    if value is None or not isinstance(value, str):
        raise _fail(key, "annotation", "must be a string")
    if len(value) > MAX_ANNOTATION_BYTES:
        raise _fail(key, "annotation", f"larger than {MAX_ANNOTATION_BYTES} bytes")
    text = value.strip(_GO_SPACE)
    where = _q(text)
    if not text:
        raise _fail(key, where, "empty value (a non-negative integer or a JSON object)")
    if text[0] != "{":
        if text.isascii() and text.isdigit():
            if len(text) > 1 and text[0] == "0":
                raise _fail(key, where, "leading zeros are not allowed")
            if len(text) > 19 or int(text) > _INT64_MAX:
                raise _fail(key, where, "integer out of range")
            return {"*": int(text)}
        if text[0] == "-" and text[1:].isascii() and text[1:].isdigit():
            raise _fail(key, where, "must not be negative")
        raise _fail(key, where, "must be a non-negative integer (for every SR-IOV network) or a "
                    'JSON object such as {"my-net": 100}')
    try:
        doc = _loads(text)
    except RecursionError:
        raise _fail(key, "annotation", "invalid JSON: nested too deeply") from None
    except ValueError as e:
        raise _fail(key, "annotation", f"invalid JSON: {e}") from None
    if not isinstance(doc, _Obj):
        raise _fail(key, where, f"must be a JSON object, not JSON {_json_kind(doc)}")
    known = _known_names(network_names)
    out: dict[str, int] = {}
    for name, v in doc:
        w = _q(name)
        if name in out:
            raise _fail(key, w, "network given twice")
        if name not in known:
            shown = ", ".join(sorted(known)) or "none"
            raise _fail(key, w, f"not one of this pod's networks ({_q(shown, 200)})")
        if isinstance(v, bool) or not isinstance(v, int):
            raise _fail(key, w, f"value must be a non-negative integer, not JSON {_json_kind(v)}"
                        + (f" {v!r}" if isinstance(v, float) else ""))
        if v < 0:
            raise _fail(key, w, f"value must not be negative ({v})")
        if v > _INT64_MAX:
            raise _fail(key, w, "value out of range")
        out[name] = v
    return out


def override_for(overrides: Mapping[str, int], selection: Selection) -> int | None:
    """The override that applies to one attachment: `namespace/name`, else `name`, else `*`."""
    for k in (selection.key, selection.name, "*"):
        if k in overrides:
            return overrides[k]
    return None


__all__ = ["SRIOV_TXRATE_ANNOTATION", "SRIOV_VLAN_ANNOTATION", "override_for", "parse_override"]
