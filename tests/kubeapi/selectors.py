"""Label and field selectors, parsed and matched as k8s.io/apimachinery/pkg/{labels,fields} do.

Label selectors: `k=v`, `k==v`, `k!=v`, `k in (a,b)`, `k notin (a,b)`, `k`, `!k`, `k>n`, `k<n`,
comma = AND; `!=`/`notin` also match objects without the label. Field selectors: `f=v`, `f==v`,
`f!=v` over the fields each resource supports (pods: metadata.name, metadata.namespace,
spec.nodeName, status.phase, ...); an unsupported field is a 400 BadRequest, like kube-apiserver.
"""

from __future__ import annotations

import re

from . import errors

_SPECIAL = set(" \t\n!=,()<>")
_NAME = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")
_DNS_SUB = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


def _tokens(text):
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c in " \t\n":
            i += 1
        elif text.startswith(("==", "!="), i):
            yield text[i:i + 2]
            i += 2
        elif c in "!=,()<>":
            yield c
            i += 1
        else:
            j = i
            while j < n and text[j] not in _SPECIAL:
                j += 1
            yield text[i:j]
            i = j


def _check_key(key):
    prefix, _, name = key.rpartition("/")
    ok = (0 < len(name) <= 63 and _NAME.match(name)
          and (not prefix and "/" not in key or (len(prefix) <= 253 and _DNS_SUB.match(prefix))))
    if not ok:
        raise errors.bad_request(
            f'unable to parse requirement: key: Invalid value: "{key}": name part must consist of '
            "alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric "
            "character")


def _check_value(value):
    if value and (len(value) > 63 or not _NAME.match(value)):
        raise errors.bad_request(
            f'unable to parse requirement: values[0]: Invalid value: "{value}": a valid label must be '
            "an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start "
            "and end with an alphanumeric character")


class LabelSelector:
    """A parsed label selector: a list of (key, operator, values) requirements, all must hold."""

    def __init__(self, text=""):
        self.text = text or ""
        self.reqs = self._parse(self.text) if self.text.strip() else []

    @staticmethod
    def _parse(text):
        toks = list(_tokens(text))
        reqs, i = [], 0

        def expect(what):
            nonlocal i
            got = toks[i] if i < len(toks) else "EOF"
            raise errors.bad_request(
                f"couldn't parse the selector string \"{text}\": unable to parse requirement: "
                f"found '{got}', expected: {what}")

        def ident():
            nonlocal i
            if i >= len(toks) or toks[i] in _SPECIAL or toks[i] in ("==", "!="):
                expect("identifier")
            i += 1
            return toks[i - 1]

        while True:
            negate = False
            if i < len(toks) and toks[i] == "!":
                negate, i = True, i + 1
            key = ident()
            _check_key(key)
            op = toks[i] if i < len(toks) else ","
            if negate:
                if op != ",":
                    expect("',' or 'end of string'")
                reqs.append((key, "!", ()))
            elif op == ",":
                reqs.append((key, "exists", ()))
            elif op in ("=", "==", "!="):
                i += 1
                val = ""
                if i < len(toks) and toks[i] not in (",",) and toks[i] not in _SPECIAL:
                    val = toks[i]
                    i += 1
                _check_value(val)
                reqs.append((key, "!=" if op == "!=" else "=", (val,)))
            elif op in ("in", "notin"):
                i += 1
                if i >= len(toks) or toks[i] != "(":
                    expect("'('")
                i += 1
                vals = []
                while True:
                    if i < len(toks) and toks[i] not in _SPECIAL:
                        vals.append(toks[i])
                        i += 1
                    else:
                        vals.append("")
                    if i < len(toks) and toks[i] == ",":
                        i += 1
                        continue
                    if i < len(toks) and toks[i] == ")":
                        i += 1
                        break
                    expect("',' or ')'")
                for v in vals:
                    _check_value(v)
                reqs.append((key, op, tuple(vals)))
            elif op in ("<", ">"):
                i += 1
                num = toks[i] if i < len(toks) else ""
                if not re.fullmatch(r"-?\d+", num):
                    raise errors.bad_request(
                        f"couldn't parse the selector string \"{text}\": unable to parse requirement: "
                        f"for 'Gt', 'Lt' operators, the value must be an integer")
                i += 1
                reqs.append((key, op, (num,)))
            else:
                expect("'=', '!=', '==', 'in', notin'")
            if i >= len(toks):
                return reqs
            if toks[i] != ",":
                expect("',' or 'end of string'")
            i += 1

    def matches(self, labels):
        labels = labels or {}
        for key, op, vals in self.reqs:
            has = key in labels
            v = labels.get(key)
            if op == "exists" and not has:
                return False
            if op == "!" and has:
                return False
            if op in ("=", "in") and (not has or v not in vals):
                return False
            if op in ("!=", "notin") and has and v in vals:
                return False
            if op in ("<", ">"):
                try:
                    n = int(v) if has else None
                except ValueError:
                    n = None
                if n is None or (op == ">" and not n > int(vals[0])) or (op == "<" and not n < int(vals[0])):
                    return False
        return True


def _split_unescaped(text, sep):
    parts, cur, i = [], [], 0
    while i < len(text):
        c = text[i]
        if c == "\\" and i + 1 < len(text):
            cur.append(text[i:i + 2])
            i += 2
            continue
        if c == sep:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(c)
        i += 1
    parts.append("".join(cur))
    return parts


def _unescape(s):
    return re.sub(r"\\(.)", r"\1", s)


class FieldSelector:
    """A parsed field selector: (field, "="|"!=", value) terms, all must hold."""

    def __init__(self, text=""):
        self.text = text or ""
        self.terms = []
        if not self.text.strip():
            return
        for part in _split_unescaped(self.text, ","):
            m = re.match(r"^((?:[^=!\\]|\\.)*?)(==|!=|=)(.*)$", part)
            if not m:
                raise errors.bad_request(f"invalid selector: '{self.text}'; can't understand '{part}'")
            self.terms.append((_unescape(m.group(1)).strip(), "!=" if m.group(2) == "!=" else "=",
                               _unescape(m.group(3))))

    def check_supported(self, supported, builtin):
        for field, _, _ in self.terms:
            if field not in supported:
                if builtin:
                    raise errors.bad_request(f"field label not supported: {field}")
                known = ", ".join(f'"{f}"' for f in supported)
                raise errors.bad_request(f'"{field}" is not a known field selector: only {known}')

    def matches(self, fields):
        for field, op, value in self.terms:
            actual = fields.get(field, "")
            if (op == "=") != (actual == value):
                return False
        return True


def _s(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    return "" if v is None else str(v)


def pod_fields(obj):
    md, spec, st = obj.get("metadata", {}), obj.get("spec", {}), obj.get("status", {})
    return {"metadata.name": md.get("name", ""), "metadata.namespace": md.get("namespace", ""),
            "spec.nodeName": _s(spec.get("nodeName")), "spec.restartPolicy": _s(spec.get("restartPolicy")),
            "spec.schedulerName": _s(spec.get("schedulerName")),
            "spec.serviceAccountName": _s(spec.get("serviceAccountName")),
            "spec.hostNetwork": _s(bool(spec.get("hostNetwork", False))),
            "status.phase": _s(st.get("phase")), "status.podIP": _s(st.get("podIP")),
            "status.nominatedNodeName": _s(st.get("nominatedNodeName"))}


def node_fields(obj):
    return {"metadata.name": obj["metadata"].get("name", ""),
            "spec.unschedulable": _s(bool(obj.get("spec", {}).get("unschedulable", False)))}


def namespace_fields(obj):
    return {"metadata.name": obj["metadata"].get("name", ""),
            "status.phase": _s(obj.get("status", {}).get("phase"))}


def meta_fields(obj):
    md = obj.get("metadata", {})
    out = {"metadata.name": md.get("name", "")}
    if md.get("namespace"):
        out["metadata.namespace"] = md["namespace"]
    return out
