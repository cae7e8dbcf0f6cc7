"""The resource registry and discovery documents, as kube-apiserver + apiextensions-apiserver.

Built-in kinds (core/v1 nodes, namespaces, pods; apiextensions.k8s.io/v1 CRDs) are always served.
A custom resource is served only while an Established CustomResourceDefinition for it exists: its
group/version appears in `/apis` and its paths answer; before that (or after the CRD is deleted)
the paths are a 404 like a real server's. Discovery (`/api`, `/api/v1`, `/apis`, `/apis/<g>`,
`/apis/<g>/<v>`) is generated from this registry.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from . import selectors

ALL_VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")

# Lists that strategic merge patch merges (patchStrategy=merge) instead of replacing, keyed by the
# path of field names from the object root; value = patchMergeKey (None: list of primitives).
_META_LISTS = {("metadata", "finalizers"): None, ("metadata", "ownerReferences"): "uid"}
_CONTAINER_LISTS = {"env": "name", "ports": "containerPort", "volumeMounts": "mountPath",
                    "volumeDevices": "devicePath", "resizePolicy": "resourceName"}
_POD_LISTS = {("spec", "volumes"): "name", ("spec", "imagePullSecrets"): "name",
              ("spec", "hostAliases"): "ip", ("spec", "resourceClaims"): "name",
              ("status", "conditions"): "type", ("status", "podIPs"): "ip", ("status", "hostIPs"): "ip",
              ("status", "resourceClaimStatuses"): "name"}
for _c in ("containers", "initContainers", "ephemeralContainers"):
    _POD_LISTS[("spec", _c)] = "name"
    for _f, _k in _CONTAINER_LISTS.items():
        _POD_LISTS[("spec", _c, _f)] = _k
_NODE_LISTS = {("spec", "podCIDRs"): None, ("status", "conditions"): "type",
               ("status", "addresses"): "type"}
_NS_LISTS = {("status", "conditions"): "type"}


@dataclass(frozen=True)
class ResourceType:
    group: str
    versions: tuple
    plural: str
    singular: str
    kind: str
    namespaced: bool
    short_names: tuple = ()
    builtin: bool = True
    status_subresource: bool = True
    subresources: tuple = ("status",)
    merge_lists: dict = field(default_factory=dict, hash=False, compare=False)
    field_getter: object = selectors.meta_fields
    allow_unconditional_update: bool = True
    name_rule: str = "subdomain"            # "subdomain" | "label"
    return_deleted_object: bool = False
    categories: tuple = ()

    @property
    def key(self):
        return (self.group, self.plural)

    @property
    def version(self):
        return self.versions[0]

    @property
    def list_kind(self):
        return self.kind + "List"

    def api_version(self, version=None):
        v = version or self.version
        return f"{self.group}/{v}" if self.group else v

    def supported_fields(self):
        return tuple(self.field_getter({"metadata": {"name": "", "namespace": "x"}}))

    def patch_types(self):
        """Media types PATCH accepts here: no strategic merge for CRD-backed kinds."""
        types = ["application/json-patch+json", "application/merge-patch+json"]
        if self.builtin:
            types.append("application/strategic-merge-patch+json")
        return types


NODES = ResourceType("", ("v1",), "nodes", "node", "Node", False, ("no",),
                     merge_lists={**_META_LISTS, **_NODE_LISTS}, field_getter=selectors.node_fields)
NAMESPACES = ResourceType("", ("v1",), "namespaces", "namespace", "Namespace", False, ("ns",),
                          subresources=("status", "finalize"), merge_lists={**_META_LISTS, **_NS_LISTS},
                          field_getter=selectors.namespace_fields, name_rule="label",
                          return_deleted_object=True)
PODS = ResourceType("", ("v1",), "pods", "pod", "Pod", True, ("po",), subresources=("status", "binding"),
                    merge_lists={**_META_LISTS, **_POD_LISTS}, field_getter=selectors.pod_fields,
                    return_deleted_object=True, categories=("all",))
CRDS = ResourceType("apiextensions.k8s.io", ("v1",), "customresourcedefinitions",
                    "customresourcedefinition", "CustomResourceDefinition", False, ("crd", "crds"),
                    merge_lists=dict(_META_LISTS), allow_unconditional_update=False,
                    return_deleted_object=True, categories=("api-extensions",))
# core/v1 Events, as client-go's record.EventSinkImpl creates them (no status subresource)
EVENTS = ResourceType("", ("v1",), "events", "event", "Event", True, ("ev",), status_subresource=False,
                      subresources=(), merge_lists=dict(_META_LISTS))
BUILTINS = (NODES, NAMESPACES, PODS, CRDS, EVENTS)


def from_crd(crd):
    """The ResourceType a CRD object defines, or None if it serves no version."""
    spec = crd.get("spec", {})
    names = spec.get("names", {})
    served = [v for v in spec.get("versions", []) if v.get("served")]
    if not served:
        return None
    served.sort(key=lambda v: not v.get("storage"))
    status = any("status" in (v.get("subresources") or {}) for v in served)
    return ResourceType(
        group=spec["group"], versions=tuple(v["name"] for v in served), plural=names["plural"],
        singular=names.get("singular") or names["kind"].lower(), kind=names["kind"],
        namespaced=spec.get("scope") == "Namespaced", short_names=tuple(names.get("shortNames") or ()),
        builtin=False, status_subresource=status, subresources=("status",) if status else (),
        merge_lists=dict(_META_LISTS), allow_unconditional_update=False,
        categories=tuple(names.get("categories") or ()))


class Registry:
    """Which resources are served; rebuilt from the CRDs in the store after every CRD write."""

    def __init__(self):
        self._custom = {}

    def sync(self, crds):
        custom = {}
        for crd in crds:
            conds = {c.get("type"): c.get("status") for c in crd.get("status", {}).get("conditions", [])}
            if crd["metadata"].get("deletionTimestamp") or conds.get("Established") != "True":
                continue
            rt = from_crd(crd)
            if rt:
                custom[rt.key] = rt
        self._custom = custom

    def all(self):
        return list(BUILTINS) + list(self._custom.values())

    def lookup(self, group, version, plural):
        for rt in self.all():
            if rt.group == group and rt.plural == plural and version in rt.versions:
                return rt
        return None

    def by_key(self, group, plural):
        for rt in self.all():
            if rt.key == (group, plural):
                return rt
        return None

    def by_kind(self, api_version, kind):
        group, _, version = api_version.rpartition("/")
        for rt in self.all():
            if rt.group == group and rt.kind == kind and version in rt.versions:
                return rt
        return None

    def by_plural(self, plural):
        """Find by "plural" or "plural.group"."""
        name, _, group = plural.partition(".")
        hits = [rt for rt in self.all() if rt.plural == name and (not group or rt.group == group)]
        return hits[0] if hits else None

    # -- discovery -------------------------------------------------------------------------------

    def groups(self):
        out = {}
        for rt in self.all():
            if rt.group:
                out.setdefault(rt.group, [])
                for v in rt.versions:
                    if v not in out[rt.group]:
                        out[rt.group].append(v)
        return out

    def api_versions(self, server_address):
        return {"kind": "APIVersions", "versions": ["v1"],
                "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0",
                                                "serverAddress": server_address}]}

    def api_group(self, group):
        versions = self.groups().get(group)
        if not versions:
            return None
        gvs = [{"groupVersion": f"{group}/{v}", "version": v} for v in versions]
        return {"kind": "APIGroup", "apiVersion": "v1", "name": group, "versions": gvs,
                "preferredVersion": gvs[0]}

    def api_group_list(self):
        groups = [self.api_group(g) for g in sorted(self.groups())]
        for g in groups:
            del g["kind"], g["apiVersion"]
        return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}

    def resource_list(self, group, version):
        rts = [rt for rt in self.all() if rt.group == group and version in rt.versions]
        if not rts:
            return None
        resources = []
        for rt in sorted(rts, key=lambda r: r.plural):
            res = {"name": rt.plural, "singularName": rt.singular, "namespaced": rt.namespaced,
                   "kind": rt.kind, "verbs": list(ALL_VERBS)}
            if rt.short_names:
                res["shortNames"] = list(rt.short_names)
            if rt.categories:
                res["categories"] = list(rt.categories)
            resources.append(res)
            for sub in rt.subresources:
                verbs = ["update"] if sub == "finalize" else ["get", "patch", "update"]
                resources.append({"name": f"{rt.plural}/{sub}", "singularName": "",
                                  "namespaced": rt.namespaced, "kind": rt.kind, "verbs": verbs})
        gv = f"{group}/{version}" if group else version
        return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv,
                "resources": resources}
