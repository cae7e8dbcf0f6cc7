"""URL -> request attributes, as k8s.io/apiserver/pkg/endpoints/request.RequestInfoFactory.

`/api/v1/...` (core) and `/apis/<group>/<version>/...`; `namespaces/<ns>/<resource>[/<name>[/<sub>]]`
or `<resource>[/<name>[/<sub>]]`; the legacy `/watch/` prefix. Verb from the HTTP method: GET on a
collection is `list` (`watch` with `?watch=true|1`), GET on a name `get`, POST `create`, PUT
`update`, PATCH `patch`, DELETE `delete` / `deletecollection`. For the `namespaces` resource the
request's namespace is the object's name, as RBAC sees it.
"""

from __future__ import annotations

from dataclasses import dataclass

NAMESPACE_SUBRESOURCES = ("status", "finalize")
_VERBS = {"POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete", "GET": "get",
          "HEAD": "get"}


@dataclass
class RequestInfo:
    path: str
    verb: str
    is_resource: bool = False
    group: str = ""
    version: str = ""
    resource: str = ""
    subresource: str = ""
    namespace: str = ""
    name: str = ""
    selector_name: str = ""       # list/watch narrowed by fieldSelector metadata.name=<x>
    parts: tuple = ()
    legacy_watch: bool = False


def truthy(value):
    return str(value).lower() in ("true", "1")


def parse(method, path, query):
    verb = _VERBS.get(method, method.lower())
    info = RequestInfo(path=path, verb=verb)
    parts = [p for p in path.split("/") if p]
    if not parts or parts[0] not in ("api", "apis"):
        return info
    if parts[0] == "api":
        if len(parts) < 2:
            return info
        info.version, rest = parts[1], parts[2:]
    else:
        if len(parts) < 3:
            return info
        info.group, info.version, rest = parts[1], parts[2], parts[3:]
    if not rest:
        return info
    info.is_resource = True
    if rest[0] == "watch":
        info.legacy_watch = True
        rest = rest[1:]
    if rest and rest[0] == "namespaces":
        if len(rest) > 1:  # the namespace of /namespaces/<ns> itself is <ns>, as RBAC sees it
            info.namespace = rest[1]
            if len(rest) > 2 and rest[2] not in NAMESPACE_SUBRESOURCES:
                rest = rest[2:]
    info.parts = tuple(rest)
    if rest:
        info.resource = rest[0]
    if len(rest) > 1:
        info.name = rest[1]
    if len(rest) > 2:
        info.subresource = rest[2]
    if method in ("GET", "HEAD") and not info.name:
        info.verb = "watch" if info.legacy_watch or truthy(query.get("watch", "")) else "list"
        for term in (query.get("fieldSelector") or "").split(","):
            key, _, value = term.partition("=")
            if key.strip() == "metadata.name" and value and not value.startswith("="):
                info.selector_name = value.strip()
    elif method == "GET" and info.legacy_watch:
        info.verb = "watch"
    if method == "DELETE" and not info.name:
        info.verb = "deletecollection"
    return info
