"""REST verbs over the store, with kube-apiserver's request handling (apiserver/pkg/endpoints/handlers).

Copied behaviours: discovery documents and `/version`; 404 for paths no served resource owns
(including a CRD-backed resource before its CRD exists); body decoding (JSON; 415 for other media
types; 400 for undecodable bodies); PATCH dispatch by Content-Type with 415 for strategic merge on
custom resources; `dryRun=All`; LIST with label/field selectors, `limit`/`continue`, list kinds
and the list resourceVersion (items of built-in lists carry no kind/apiVersion, as the real
server's typed lists); DELETE answering the object (pods, namespaces, CRDs, or anything not deleted
at once) or a `Success` Status (others); create 201, others 200.
"""

from __future__ import annotations

import base64
import json

from . import binding, errors, patch, watch
from .selectors import FieldSelector, LabelSelector

BODY_TYPES = ("application/json", "application/yaml", "application/vnd.kubernetes.protobuf")


def media_type(content_type):
    return (content_type or "").split(";")[0].strip().lower()


def decode_body(raw, content_type, kind="object"):
    mt = media_type(content_type)
    if mt not in ("", "application/json", "application/yaml", "*/*") and not mt.endswith("+json"):
        raise errors.unsupported_media_type(BODY_TYPES)
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError as e:
        raise errors.bad_request(f"couldn't get version/kind; json parse error: {e}") from None


def selectors_from(rt, query):
    ls = LabelSelector(query.get("labelSelector", ""))
    fs = FieldSelector(query.get("fieldSelector", ""))
    fs.check_supported(rt.supported_fields(), rt.builtin)
    return ls, fs


def version_info(git_version):
    major, minor = git_version.lstrip("v").split(".")[:2]
    return {"major": major, "minor": minor, "emulationMajor": major, "emulationMinor": minor,
            "minCompatibilityMajor": major, "minCompatibilityMinor": str(max(int(minor) - 1, 0)),
            "gitVersion": git_version, "gitCommit": "0" * 40, "gitTreeState": "clean",
            "buildDate": "2025-01-01T00:00:00Z", "goVersion": "go1.24.0", "compiler": "gc",
            "platform": "linux/amd64"}


def non_resource(store, info, server_address, git_version):
    """Discovery and info paths; -> (code, body, content_type)."""
    reg, p = store.registry, info.path.rstrip("/") or "/"
    parts = [x for x in p.split("/") if x]
    body = None
    if p in ("/healthz", "/livez", "/readyz"):
        return 200, b"ok", "text/plain; charset=utf-8"
    if p == "/version":
        body = version_info(git_version)
    elif p == "/api":
        body = reg.api_versions(server_address)
    elif p == "/apis":
        body = reg.api_group_list()
    elif len(parts) == 2 and parts[0] == "api":
        body = reg.resource_list("", parts[1])
    elif len(parts) == 2 and parts[0] == "apis":
        body = reg.api_group(parts[1])
    elif len(parts) == 3 and parts[0] == "apis":
        body = reg.resource_list(parts[1], parts[2])
    if body is None:
        raise errors.no_route()
    return 200, body, "application/json"


def resolve(store, info, method):
    """The ResourceType the request addresses, after the scope checks a real router makes."""
    rt = store.registry.lookup(info.group, info.version, info.resource)
    if rt is None:
        raise errors.no_route()
    if len(info.parts) > 3 or (info.subresource and info.subresource not in rt.subresources):
        raise errors.no_route()
    namespaced_path = bool(info.namespace) and rt.plural != "namespaces"
    if namespaced_path and not rt.namespaced:
        raise errors.no_route()
    if rt.namespaced and not info.namespace and (info.name or method not in ("GET", "HEAD")):
        raise errors.no_route()
    if info.subresource == "binding":        # pods/binding: create only (BindingREST)
        if method != "POST" or not info.name:
            raise errors.method_not_allowed()
        return rt
    if info.subresource and method not in ("GET", "PUT", "PATCH"):
        raise errors.method_not_allowed()
    if info.subresource == "finalize" and method != "PUT":
        raise errors.method_not_allowed()
    if info.name and method == "POST":
        raise errors.method_not_allowed()
    return rt


def _ns(rt, info):
    return info.namespace if rt.namespaced else ""


def _dry_run(query, body=None):
    values = query.get("dryRun", "")
    if isinstance(body, dict) and body.get("dryRun"):
        return True
    if values and values != "All":
        raise errors.bad_request(f'Invalid dry run option "{values}": supported values are "All"')
    return values == "All"


def _int(query, key, default=None):
    value = query.get(key)
    if value in (None, ""):
        return default
    try:
        return int(value)
    except ValueError:
        raise errors.bad_request(f'invalid value for {key}: "{value}"') from None


def _list(store, rt, info, query):
    ls, fs = selectors_from(rt, query)
    token, start = query.get("continue"), None
    if token:
        try:
            start = tuple(json.loads(base64.b64decode(token))["start"])
        except (ValueError, KeyError, TypeError):
            raise errors.bad_request("continue key is not valid: incorrect encoded start resourceVersion "
                                     "(version meta.k8s.io/v1)") from None
    limit = _int(query, "limit", 0)
    # only the page is rendered (a paged LIST of 20,000 nodes stays linear)
    items, rv, remaining = store.list_page(rt, _ns(rt, info), ls, fs, info.version, after=start, limit=limit)
    meta = {"resourceVersion": str(rv)}
    if limit and remaining:
        last = items[-1]["metadata"]
        meta["continue"] = base64.b64encode(json.dumps(
            {"v": "meta.k8s.io/v1", "rv": rv, "start": [last.get("namespace", ""), last["name"]]}
        ).encode()).decode()
        meta["remainingItemCount"] = remaining
    if rt.builtin:
        for item in items:
            item.pop("apiVersion", None)
            item.pop("kind", None)
    return {"apiVersion": rt.api_version(info.version), "kind": rt.list_kind, "metadata": meta,
            "items": items}


def _patch(store, rt, info, query, content_type, raw):
    mt = media_type(content_type)
    accepted = rt.patch_types()
    if mt not in accepted:
        raise errors.unsupported_media_type(accepted)
    try:
        body = json.loads(raw or b"null")
    except ValueError as e:
        raise errors.bad_request(f"error decoding patch: {e}") from None
    if body is None:
        raise errors.bad_request("the body of the request was empty")
    return store.update(rt, _ns(rt, info), info.name, subresource=info.subresource or None,
                        version=info.version, dry_run=_dry_run(query),
                        patch_fn=lambda current: patch.apply(mt, current, body, rt))


def _delete(store, rt, info, query, content_type, raw):
    opts = decode_body(raw, content_type) or {}
    if not isinstance(opts, dict):
        raise errors.bad_request("the body of the request was not a DeleteOptions object")
    grace = _int(query, "gracePeriodSeconds", opts.get("gracePeriodSeconds"))
    dry = _dry_run(query, opts)
    if info.name:
        obj, deleted = store.delete(rt, _ns(rt, info), info.name, grace, opts.get("preconditions"),
                                    info.version, dry)
        if deleted and not rt.return_deleted_object:
            md = obj["metadata"]
            details = {"name": md["name"], "kind": rt.plural, "uid": md["uid"]}
            if rt.group:
                details["group"] = rt.group
            return 200, {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                         "details": details}
        return 200, obj
    ls, fs = selectors_from(rt, query)
    items, rv = store.delete_collection(rt, _ns(rt, info), ls, fs, grace, info.version, dry)
    return 200, {"apiVersion": rt.api_version(info.version), "kind": rt.list_kind,
                 "metadata": {"resourceVersion": str(rv)}, "items": items}


def handle(store, info, method, query, content_type, raw):
    """A non-watch resource request -> (code, body)."""
    rt = resolve(store, info, method)
    ns = _ns(rt, info)
    if method == "GET":
        if info.name:
            return 200, store.get(rt, ns, info.name, info.version)
        return 200, _list(store, rt, info, query)
    if method == "POST" and info.subresource == "binding":
        return 201, binding.create(store, rt, ns, info.name, decode_body(raw, content_type), _dry_run(query))
    if method == "POST":
        body = decode_body(raw, content_type)
        return 201, store.create(rt, ns, body, info.version, _dry_run(query))
    if method == "PUT":
        body = decode_body(raw, content_type)
        return 200, store.update(rt, ns, info.name, body, info.subresource or None, info.version,
                                 _dry_run(query))
    if method == "PATCH":
        return 200, _patch(store, rt, info, query, content_type, raw)
    if method == "DELETE":
        return _delete(store, rt, info, query, content_type, raw)
    raise errors.method_not_allowed()


def watch_spec(store, info, query, default_timeout):
    """Everything a watch needs, validated before the response starts."""
    rt = resolve(store, info, "GET")
    ls, fs = selectors_from(rt, query)
    if info.name and info.legacy_watch:
        fs.terms.append(("metadata.name", "=", info.name))
    timeout = _int(query, "timeoutSeconds", None)
    send_initial = query.get("sendInitialEvents", "").lower() == "true"
    if send_initial and query.get("resourceVersionMatch") != "NotOlderThan":
        raise errors.invalid("ListOptions", "", [errors.FieldError(
            "forbidden", "resourceVersionMatch",
            detail="sendInitialEvents requires setting resourceVersionMatch to NotOlderThan")],
            "meta.k8s.io")
    return watch.WatchSpec(rt=rt, namespace=_ns(rt, info), label_selector=ls, field_selector=fs,
                           since=watch.parse_rv(query.get("resourceVersion")),
                           timeout=float(default_timeout if timeout is None else timeout),
                           bookmarks=query.get("allowWatchBookmarks", "").lower() in ("true", "1"),
                           send_initial=send_initial, version=info.version)
