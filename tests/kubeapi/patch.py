"""PATCH bodies by Content-Type, with kube-apiserver's semantics and error codes.

- application/json-patch+json: RFC 6902 (add, remove, replace, move, copy, test); a body that is not
  a list is 400 BadRequest, an operation that cannot apply (failed `test`, missing path) is 422 with
  the operation error as the cause, as in apiserver's patch handler.
- application/merge-patch+json: RFC 7386 (maps merge, `null` deletes, lists replace).
- application/strategic-merge-patch+json: built-in kinds only (apimachinery/strategicpatch): maps
  merge, `null` deletes, lists with `patchStrategy=merge` merge by their `patchMergeKey`
  (containers by name, conditions by type, finalizers as a set, ...), other lists replace;
  directives `$patch: replace|delete|merge`, `$deleteFromPrimitiveList/<f>`, `$setElementOrder/<f>`
  and `$retainKeys` are understood. CRD-backed kinds answer 415 UnsupportedMediaType before this runs.
"""

from __future__ import annotations

import copy

from . import errors

JSON_PATCH = "application/json-patch+json"
MERGE_PATCH = "application/merge-patch+json"
STRATEGIC = "application/strategic-merge-patch+json"
APPLY = "application/apply-patch+yaml"


class PatchError(Exception):
    pass


# -- RFC 6902 --------------------------------------------------------------------------------------

def _pointer(path):
    if path == "":
        return []
    if not path.startswith("/"):
        raise PatchError(f'invalid JSON pointer "{path}"')
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def _index(container, token, op, path, allow_end=False):
    if token == "-" and allow_end:
        return len(container)
    if not token.isdigit() or (len(token) > 1 and token[0] == "0"):
        raise PatchError(f"{op} operation does not apply: doc is missing path: \"{path}\": missing value")
    i = int(token)
    if i > len(container) or (i == len(container) and not allow_end):
        raise PatchError(f"{op} operation does not apply: doc is missing path: \"{path}\": missing value")
    return i


def _parent(doc, tokens, op, path):
    cur = doc
    for t in tokens[:-1]:
        if isinstance(cur, dict) and t in cur:
            cur = cur[t]
        elif isinstance(cur, list):
            cur = cur[_index(cur, t, op, path)]
        else:
            raise PatchError(f"{op} operation does not apply: doc is missing path: \"{path}\": missing value")
    return cur


def _get(doc, path, op):
    cur = doc
    for t in _pointer(path):
        if isinstance(cur, dict) and t in cur:
            cur = cur[t]
        elif isinstance(cur, list):
            cur = cur[_index(cur, t, op, path)]
        else:
            raise PatchError(f"{op} operation does not apply: doc is missing path: \"{path}\": missing value")
    return cur


def _add(doc, path, value, op="add"):
    tokens = _pointer(path)
    if not tokens:
        return value
    parent = _parent(doc, tokens, op, path)
    last = tokens[-1]
    if isinstance(parent, dict):
        parent[last] = value
    elif isinstance(parent, list):
        parent.insert(_index(parent, last, op, path, allow_end=True), value)
    else:
        raise PatchError(f"{op} operation does not apply: doc is missing path: \"{path}\": missing value")
    return doc


def _remove(doc, path, op="remove"):
    tokens = _pointer(path)
    if not tokens:
        raise PatchError(f"{op} operation does not apply: cannot remove the whole document")
    parent = _parent(doc, tokens, op, path)
    last = tokens[-1]
    if isinstance(parent, dict) and last in parent:
        return parent.pop(last)
    if isinstance(parent, list):
        return parent.pop(_index(parent, last, op, path))
    raise PatchError(f"{op} operation does not apply: doc is missing path: \"{path}\": missing value")


def json_patch(doc, ops):
    if not isinstance(ops, list):
        raise errors.bad_request("json: cannot unmarshal object into Go value of type jsonpatch.Patch")
    doc = copy.deepcopy(doc)
    try:
        for op in ops:
            if not isinstance(op, dict) or "op" not in op:
                raise errors.bad_request("Unexpected kind: missing op")
            kind, path = op["op"], op.get("path")
            if path is None:
                raise PatchError(f"{kind} operation does not apply: doc is missing path: \"\": missing value")
            if kind == "add":
                doc = _add(doc, path, copy.deepcopy(op.get("value")))
            elif kind == "remove":
                _remove(doc, path)
            elif kind == "replace":
                _get(doc, path, "replace")
                if _pointer(path):
                    _remove(doc, path, "replace")
                doc = _add(doc, path, copy.deepcopy(op.get("value")), "replace")
            elif kind == "move":
                value = _remove(doc, op.get("from", ""), "move")
                doc = _add(doc, path, value, "move")
            elif kind == "copy":
                doc = _add(doc, path, copy.deepcopy(_get(doc, op.get("from", ""), "copy")), "copy")
            elif kind == "test":
                try:
                    current = _get(doc, path, "test")
                except PatchError:
                    current = None
                if current != op.get("value"):
                    raise PatchError(f"testing value {path} failed: test failed")
            else:
                raise errors.bad_request(f"Unexpected kind: {kind}")
    except PatchError as e:
        raise errors.unprocessable(str(e)) from None
    return doc


# -- RFC 7386 --------------------------------------------------------------------------------------

def merge_patch(target, patch):
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


# -- strategic merge patch -------------------------------------------------------------------------

def _strip(value):
    """A patch value stored as-is: drop directives, keep null-free maps."""
    if isinstance(value, dict):
        return {k: _strip(v) for k, v in value.items() if not k.startswith("$") and v is not None}
    if isinstance(value, list):
        return [_strip(v) for v in value if not (isinstance(v, dict) and v.get("$patch") == "delete")]
    return value


def strategic_merge(original, patch, merge_lists):
    if not isinstance(patch, dict):
        raise errors.bad_request("unable to find api field in struct: strategic merge patch must be a map")
    result = _merge_map(copy.deepcopy(original), patch, (), merge_lists)
    return {} if result is None else result


def _merge_map(orig, patch, path, schema):
    directive = patch.get("$patch")
    if directive == "replace":
        return _strip(patch)
    if directive == "delete":
        return None
    if directive not in (None, "merge"):
        raise errors.bad_request(f"Unknown patch type: {directive} in map: {patch}")
    result = orig if isinstance(orig, dict) else {}
    orders = {}
    for key, value in patch.items():
        if key == "$patch" or key == "$retainKeys":
            continue
        if key.startswith("$setElementOrder/"):
            orders[key.split("/", 1)[1]] = value
            continue
        if key.startswith("$deleteFromPrimitiveList/"):
            field = key.split("/", 1)[1]
            if isinstance(result.get(field), list):
                result[field] = [v for v in result[field] if v not in (value or [])]
            continue
        if key.startswith("$"):
            raise errors.bad_request(f"unknown patch directive {key}")
        if value is None:
            result.pop(key, None)
        elif isinstance(value, dict):
            merged = _merge_map(result.get(key), value, path + (key,), schema)
            if merged is None:
                result.pop(key, None)
            else:
                result[key] = merged
        elif isinstance(value, list):
            result[key] = _merge_list(result.get(key), value, path + (key,), schema)
        else:
            result[key] = value
    retain = patch.get("$retainKeys")
    if isinstance(retain, list):
        for key in list(result):
            if key not in retain:
                del result[key]
    for field, order in orders.items():
        if isinstance(result.get(field), list):
            result[field] = _reorder(result[field], order, schema.get(path + (field,)))
    return result


def _merge_list(orig, patch, path, schema):
    if path not in schema or not isinstance(orig, list):
        return _strip(patch)
    key = schema[path]
    if any(isinstance(i, dict) and i.get("$patch") == "replace" for i in patch):
        return [_strip(i) for i in patch if not (isinstance(i, dict) and i.get("$patch") == "replace")]
    if key is None:
        return orig + [v for i, v in enumerate(patch) if v not in orig and v not in patch[:i]]
    result = list(orig)
    for item in patch:
        if not isinstance(item, dict) or key not in item:
            raise errors.bad_request(f"map: {item} does not contain declared merge key: {key}")
        idx = next((i for i, o in enumerate(result) if isinstance(o, dict) and o.get(key) == item[key]), None)
        if item.get("$patch") == "delete":
            result = [o for o in result if not (isinstance(o, dict) and o.get(key) == item[key])]
        elif idx is None:
            result.append(_strip(item))
        else:
            result[idx] = _merge_map(result[idx], item, path, schema)
    return result


def _reorder(items, order, key):
    if key is None:
        ranked = {v: i for i, v in enumerate(order)}
        return sorted(items, key=lambda v: ranked.get(v, len(ranked)))
    ranked = {o.get(key): i for i, o in enumerate(order) if isinstance(o, dict)}
    return sorted(items, key=lambda v: ranked.get(v.get(key) if isinstance(v, dict) else None, len(ranked)))


def apply(content_type, original, body, rt):
    """Apply a decoded PATCH body of `content_type` to `original` for resource type `rt`."""
    if content_type == JSON_PATCH:
        return json_patch(original, body)
    if content_type == MERGE_PATCH:
        if not isinstance(body, dict):
            raise errors.bad_request("json: cannot unmarshal array into Go value of type map[string]interface {}")
        return merge_patch(original, body)
    if content_type == STRATEGIC and rt.builtin:
        return strategic_merge(original, body, rt.merge_lists)
    raise errors.unsupported_media_type(rt.patch_types())
