"""Bearer-token authentication and RBAC-style authorization, as kube-apiserver answers them.

- no or unknown `Authorization: Bearer` token: 401 `Unauthorized` Status;
- a known token whose rules do not allow the request: 403 `Forbidden` Status with the real message,
  e.g. `pods "x" is forbidden: User "u" cannot patch resource "pods" in API group "" in the
  namespace "ns"` (`... at the cluster scope` for cluster-wide requests);
- discovery paths (/api, /apis, /version, /healthz, ...) are open to every authenticated user, as
  the `system:discovery` / `system:public-info-viewer` roles make them.

Token table: `{token: "*" | [rule, ...] | {"user": name, "rules": "*" | [rule, ...]}}`; the user
name defaults to the token. A rule is `(verbs, resources)` or `(verbs, resources, namespace)`:
- verbs: "get", "list", "watch", "create", "update", "patch", "delete", "deletecollection",
  "*", or several as a list / comma-separated string;
- resources: plural names as RBAC writes them: "pods", "pods/status" (a subresource needs its own
  rule, as in RBAC), "pods/*", "*/status", "*"; optionally group-qualified:
  "network-attachment-definitions.k8s.cni.cncf.io"; a list or comma-separated string;
- namespace: omitted or "*" = cluster-wide (a ClusterRoleBinding), else only that namespace (a
  RoleBinding; it never grants cluster-scoped resources or all-namespace lists).
"""

from __future__ import annotations

from . import errors

OPEN_PATHS = ("/api", "/apis", "/version", "/healthz", "/livez", "/readyz", "/openapi")


def _names(value):
    if isinstance(value, str):
        return tuple(v.strip() for v in value.split(",") if v.strip())
    return tuple(value)


class Rule:
    def __init__(self, verbs, resources, namespace=None):
        self.verbs = _names(verbs)
        self.resources = _names(resources)
        self.namespace = None if namespace in (None, "*") else namespace

    def _resource_ok(self, group, resource, sub):
        for item in self.resources:
            if item == "*":
                return True
            res, _, rsub = item.partition("/")
            res, _, rgroup = res.partition(".")
            if rgroup and rgroup != group:
                continue
            if res != "*" and res != resource:
                continue
            if rsub == "*" and sub:
                return True
            if (rsub or "") == (sub or "") and not (res == "*" and not rsub):
                return True
        return False

    def allows(self, verb, group, resource, sub, namespace):
        if self.namespace is not None and namespace != self.namespace:
            return False
        return ("*" in self.verbs or verb in self.verbs) and self._resource_ok(group, resource, sub)


class Grant:
    def __init__(self, user, rules):
        self.user = user
        self.all = rules == "*"
        self.rules = [] if self.all else [r if isinstance(r, Rule) else Rule(*r) for r in rules]

    def allows(self, verb, group, resource, sub, namespace):
        return self.all or any(r.allows(verb, group, resource, sub, namespace) for r in self.rules)


def make_grants(tokens):
    grants = {}
    for token, spec in (tokens or {}).items():
        if isinstance(spec, dict):
            grants[token] = Grant(spec.get("user", token), spec.get("rules", []))
        else:
            grants[token] = Grant(token, spec)
    return grants


def authenticate(grants, header):
    """-> (token, Grant); 401 Unauthorized for a missing or unknown bearer token."""
    if header and header[:7].lower() == "bearer ":
        token = header[7:].strip()
        if token in grants:
            return token, grants[token]
    raise errors.unauthorized()


def authorize(grant, info):
    """403 Forbidden unless grant allows the request described by RequestInfo `info`."""
    if not info.is_resource:
        if info.path == "/" or any(info.path == p or info.path.startswith(p + "/") for p in OPEN_PATHS):
            return
        raise errors.forbidden_path(f'User "{grant.user}" cannot {info.verb} path "{info.path}"')
    if grant.allows(info.verb, info.group, info.resource, info.subresource, info.namespace):
        return
    res = info.resource + (f"/{info.subresource}" if info.subresource else "")
    where = (f'in the namespace "{info.namespace}"' if info.namespace else "at the cluster scope")
    why = (f'User "{grant.user}" cannot {info.verb} resource "{res}" in API group "{info.group}" {where}')
    raise errors.forbidden(info.resource, info.name or info.selector_name, info.group, why)
