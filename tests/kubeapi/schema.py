"""Custom resources against their CRD's openAPIV3Schema, as apiextensions-apiserver does it.

Copies three structural-schema behaviours: unknown fields are pruned (silently dropped) unless
`x-kubernetes-preserve-unknown-fields: true`; `null` in a non-nullable field is pruned; a value of
the wrong `type` or a missing `required` field is a 422 Invalid with the real message shape
(`spec.config: Invalid value: "integer": spec.config in body must be of type string: "integer"`).
Formats, patterns, enums, CEL rules and defaults are not evaluated.
"""

from __future__ import annotations

from .errors import FieldError

_ROOT_KEEP = ("apiVersion", "kind", "metadata")


def _type_name(v):
    if isinstance(v, bool):
        return "boolean"
    if isinstance(v, int):
        return "integer"
    if isinstance(v, float):
        return "number"
    if isinstance(v, str):
        return "string"
    if isinstance(v, list):
        return "array"
    if isinstance(v, dict):
        return "object"
    return "null"


def _type_ok(want, v):
    got = _type_name(v)
    return got == want or (want == "number" and got == "integer")


def schema_for(crd, version):
    for v in crd.get("spec", {}).get("versions", []):
        if v.get("name") == version:
            return (v.get("schema") or {}).get("openAPIV3Schema")
    return None


def prune_and_validate(obj, schema):
    """Prune `obj` in place; return a list of FieldError."""
    if not schema:
        return []
    errs = []
    _walk(obj, schema, "", errs, root=True)
    return errs


def _walk(value, schema, path, errs, root=False):
    if schema.get("x-kubernetes-int-or-string"):
        if not isinstance(value, (int, str)) or isinstance(value, bool):
            errs.append(FieldError("invalid", path, _type_name(value),
                                   f"{path} in body must be of type int-or-string: \"{_type_name(value)}\""))
        return
    want = schema.get("type")
    if want and not root and not _type_ok(want, value):
        errs.append(FieldError("invalid", path, _type_name(value),
                               f"{path} in body must be of type {want}: \"{_type_name(value)}\""))
        return
    if isinstance(value, dict):
        props = schema.get("properties")
        addl = schema.get("additionalProperties")
        keep_unknown = schema.get("x-kubernetes-preserve-unknown-fields")
        for key in list(value):
            if root and key in _ROOT_KEEP:
                continue
            sub = (props or {}).get(key)
            if sub is None and isinstance(addl, dict):
                sub = addl
            child = f"{path}.{key}" if path else key
            if value[key] is None and not (sub or {}).get("nullable"):
                del value[key]
                continue
            if sub is None:
                if not (keep_unknown or addl is True):
                    del value[key]
                continue
            _walk(value[key], sub, child, errs)
        for req in schema.get("required") or []:
            if req not in value:
                errs.append(FieldError("required", f"{path}.{req}" if path else req))
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for i, item in enumerate(value):
            _walk(item, schema["items"], f"{path}[{i}]", errs)
