"""The object store: etcd + the generic registry (k8s.io/apiserver/pkg/registry/generic/registry).

Copied behaviours:
- one global, monotonically increasing resourceVersion (etcd's revision) stamped on every write,
  returned as a string; LIST carries the store's current revision;
- optimistic concurrency: an update whose metadata.resourceVersion is set and stale is a 409
  Conflict; CRs and CRDs refuse unconditional updates (422), built-in kinds allow them;
- a write that changes nothing is a no-op (no new resourceVersion, no watch event);
- create: 409 AlreadyExists, generateName (+5 random chars), uid, creationTimestamp, namespace
  from the URL (400 on mismatch), 404 `namespaces "x" not found` when the namespace is missing,
  500 when the body already carries a resourceVersion;
- delete: preconditions (409), finalizers (deletionTimestamp, removed when the last finalizer is),
  graceful pod deletion (a scheduled, non-terminal pod lingers with deletionTimestamp until it is
  deleted with grace 0), namespace and CRD deletion cascade to their contents (immediately);
- a bounded event history, so a watch from a compacted resourceVersion gets 410 Expired.
"""

from __future__ import annotations

import collections
import copy
import json
import random
import threading
import time
import uuid

from . import errors, resources, schema, validation

PROTECTED_NAMESPACES = ("default", "kube-system", "kube-public")


def now_rfc3339(offset=0.0):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + offset))


def _random_suffix():
    return "".join(random.choice("bcdfghjklmnpqrstvwxz2456789") for _ in range(5))


def _same(a, b):
    def strip(o):
        o = copy.deepcopy(o)
        o.get("metadata", {}).pop("resourceVersion", None)
        o.get("metadata", {}).pop("managedFields", None)
        return json.dumps(o, sort_keys=True)
    return strip(a) == strip(b)


def _spec_part(rt, obj):
    if rt.plural == "pods" and rt.builtin:
        return obj.get("spec")
    skip = ("apiVersion", "kind", "metadata") + (("status",) if rt.status_subresource else ())
    return {k: v for k, v in obj.items() if k not in skip}


class Event:
    __slots__ = ("rv", "type", "key", "namespace", "obj", "old")

    def __init__(self, rv, type_, key, namespace, obj, old):
        self.rv, self.type, self.key, self.namespace, self.obj, self.old = rv, type_, key, namespace, obj, old


class Store:
    def __init__(self, registry=None, history_size=1000):
        self.registry = registry or resources.Registry()
        self.lock = threading.RLock()
        self.cond = threading.Condition(self.lock)
        self.rv = 0
        self.objects = collections.defaultdict(dict)     # (group, plural) -> {(ns, name): obj}
        self.history = collections.deque()
        self.history_size = history_size
        self.compacted_rv = 0                            # events <= this are gone from history
        self.closed = False

    # -- helpers -----------------------------------------------------------------------------------

    def _bump(self):
        self.rv += 1
        return self.rv

    def _record(self, type_, rt, obj, old=None):
        self.history.append(Event(self.rv, type_, rt.key, obj["metadata"].get("namespace", ""),
                                  copy.deepcopy(obj), old))
        while len(self.history) > self.history_size:
            self.compacted_rv = self.history.popleft().rv
        self.cond.notify_all()

    def compact(self, rv=None):
        """Forget events up to rv (default: all), as etcd compaction does."""
        with self.lock:
            rv = self.rv if rv is None else rv
            while self.history and self.history[0].rv <= rv:
                self.history.popleft()
            self.compacted_rv = max(self.compacted_rv, rv)

    def render(self, rt, obj, version=None):
        out = copy.deepcopy(obj)
        out["apiVersion"] = rt.api_version(version)
        out["kind"] = rt.kind
        return out

    def namespace_exists(self, ns):
        return ("", ns) in self.objects[("", "namespaces")]

    def _check_alive(self, rt):
        if not rt.builtin and self.registry.by_key(*rt.key) is None:
            raise errors.no_route()

    def _check_type(self, rt, obj, version):
        want = rt.api_version(version)
        api_version, kind = obj.get("apiVersion"), obj.get("kind")
        if api_version is None and kind is None:
            return
        if kind and kind != rt.kind:
            raise errors.bad_request(f'{kind} in version "{(api_version or want).rpartition("/")[2]}" '
                                     f'cannot be handled as a {rt.kind}: no kind "{kind}" is registered '
                                     f'for the object {want}, Kind={rt.kind}')
        if api_version and api_version != want:
            raise errors.bad_request(f"the API version in the data ({api_version}) does not match the "
                                     f"expected API version ({want})")

    def _check_schema(self, rt, obj, version):
        if rt.builtin:
            return
        crd = self.objects[("apiextensions.k8s.io", "customresourcedefinitions")].get(
            ("", f"{rt.plural}.{rt.group}"))
        errs = schema.prune_and_validate(obj, schema.schema_for(crd or {}, version or rt.version))
        if errs:
            raise errors.invalid(rt.kind, obj["metadata"].get("name", ""), errs, rt.group)

    def _after_write(self, rt):
        if rt.key == resources.CRDS.key:
            self.registry.sync(self.objects[rt.key].values())

    # -- reads -------------------------------------------------------------------------------------

    def get(self, rt, ns, name, version=None):
        with self.lock:
            self._check_alive(rt)
            obj = self.objects[rt.key].get((ns or "", name))
            if obj is None:
                raise errors.not_found(rt.plural, name, rt.group)
            return self.render(rt, obj, version)

    def list(self, rt, ns=None, label_selector=None, field_selector=None, version=None):
        """(items sorted by namespace/name as etcd keys are, list resourceVersion)."""
        items, rv, _ = self.list_page(rt, ns, label_selector, field_selector, version)
        return items, rv

    def list_page(self, rt, ns=None, label_selector=None, field_selector=None, version=None,
                  after=None, limit=0):
        """One page of a LIST: the matches whose (namespace, name) key sorts after `after`, at
        most `limit` (0: all) rendered; (items, list resourceVersion, matches left after them)."""
        with self.lock:
            self._check_alive(rt)
            keys = []
            for key, obj in sorted(self.objects[rt.key].items()):
                if (ns and key[0] != ns) or (after is not None and key <= after):
                    continue
                if label_selector and not label_selector.matches(obj["metadata"].get("labels")):
                    continue
                if field_selector and not field_selector.matches(rt.field_getter(obj)):
                    continue
                keys.append(key)
            shown = keys[:limit] if limit else keys
            items = [self.render(rt, self.objects[rt.key][k], version) for k in shown]
            return items, self.rv, len(keys) - len(shown)

    # -- create ------------------------------------------------------------------------------------

    def create(self, rt, ns, body, version=None, dry_run=False):
        if not isinstance(body, dict):
            raise errors.bad_request(f"the object provided is unrecognized (must be of type {rt.kind})")
        obj = copy.deepcopy(body)
        self._check_type(rt, obj, version)
        md = obj.setdefault("metadata", {})
        if not isinstance(md, dict):
            raise errors.bad_request(f"{rt.kind} in version \"{rt.version}\" cannot be handled as a {rt.kind}")
        if md.get("resourceVersion"):
            raise errors.ApiError(500, "", "resourceVersion should not be set on objects to be created")
        if rt.namespaced:
            if md.get("namespace") and md["namespace"] != ns:
                raise errors.bad_request("the namespace of the provided object does not match the "
                                         "namespace sent on the request")
            md["namespace"] = ns
        else:
            md.pop("namespace", None)
        for k in ("uid", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds",
                  "generation", "selfLink", "managedFields"):
            md.pop(k, None)
        obj["apiVersion"], obj["kind"] = rt.api_version(), rt.kind
        with self.lock:
            self._check_alive(rt)
            if rt.namespaced and not self.namespace_exists(ns):
                raise errors.not_found("namespaces", ns)
            table = self.objects[rt.key]
            if not md.get("name") and md.get("generateName"):
                md["name"] = md["generateName"] + _random_suffix()
                while (ns or "", md["name"]) in table:
                    md["name"] = md["generateName"] + _random_suffix()
            now = now_rfc3339()
            validation.prepare_create(rt, obj, now)
            validation.normalize(rt, obj)
            md = obj["metadata"]
            self._check_schema(rt, obj, version)
            validation.validate(rt, obj)
            if (ns or "", md["name"]) in table:
                raise errors.already_exists(rt.plural, md["name"], rt.group)
            md["uid"] = str(uuid.uuid4())
            md["creationTimestamp"] = now
            if rt.plural in ("pods", "customresourcedefinitions") or not rt.builtin:
                md["generation"] = 1
            if dry_run:
                return self.render(rt, obj, version)
            md["resourceVersion"] = str(self._bump())
            table[(ns or "", md["name"])] = obj
            self._record("ADDED", rt, obj)
            self._after_write(rt)
            return self.render(rt, obj, version)

    # -- update / patch ----------------------------------------------------------------------------

    def update(self, rt, ns, name, body=None, subresource=None, version=None, dry_run=False,
               patch_fn=None):
        """PUT (body) or PATCH (patch_fn(current object) -> patched object)."""
        with self.lock:
            self._check_alive(rt)
            old = self.objects[rt.key].get((ns or "", name))
            if old is None:
                raise errors.not_found(rt.plural, name, rt.group)
            new = patch_fn(self.render(rt, old, version)) if patch_fn else copy.deepcopy(body)
            if not isinstance(new, dict) or not isinstance(new.setdefault("metadata", {}), dict):
                raise errors.bad_request(f"the object provided is unrecognized (must be of type {rt.kind})")
            self._check_type(rt, new, version)
            md = new["metadata"]
            if md.get("name", "") != name:
                raise errors.bad_request(f"the name of the object ({md.get('name', '')}) does not match "
                                         f"the name on the URL ({name})")
            if rt.namespaced and md.get("namespace") and md["namespace"] != ns:
                raise errors.bad_request(f"the namespace of the object ({md['namespace']}) does not match "
                                         f"the namespace on the request ({ns})")
            old_md = old["metadata"]
            if md.get("resourceVersion"):
                if md["resourceVersion"] != old_md["resourceVersion"]:
                    raise errors.conflict(rt.plural, name, rt.group)
            elif not rt.allow_unconditional_update:
                raise errors.invalid(rt.kind, name, [errors.FieldError(
                    "invalid", "metadata.resourceVersion", errors.Raw("0x0"),
                    "must be specified for an update")], rt.group)
            new["apiVersion"], new["kind"] = rt.api_version(), rt.kind
            validation.prepare_update(rt, new, old, subresource)
            validation.normalize(rt, new)
            md = new["metadata"]
            if rt.namespaced:
                md["namespace"] = ns
            else:
                md.pop("namespace", None)
            md.pop("managedFields", None)
            md.pop("selfLink", None)
            if not md.get("uid"):
                md["uid"] = old_md["uid"]
            md["creationTimestamp"] = old_md["creationTimestamp"]
            for k in ("deletionTimestamp", "deletionGracePeriodSeconds", "generation"):
                md.pop(k, None)
                if k in old_md:
                    md[k] = old_md[k]
            if rt.plural == "customresourcedefinitions" and rt.builtin and subresource is None:
                new["status"] = copy.deepcopy(old.get("status", {}))
            self._check_schema(rt, new, version)
            validation.validate(rt, new, old)
            if "generation" in md and _spec_part(rt, new) != _spec_part(rt, old):
                md["generation"] = old_md["generation"] + 1
            md["resourceVersion"] = old_md["resourceVersion"]
            if _same(new, old):
                return self.render(rt, old, version)
            if dry_run:
                return self.render(rt, new, version)
            md["resourceVersion"] = str(self._bump())
            if (not new["metadata"].get("finalizers") and old_md.get("finalizers")
                    and md.get("deletionTimestamp") and md.get("deletionGracePeriodSeconds", 0) == 0):
                self._remove(rt, ns, name, new)
            else:
                self.objects[rt.key][(ns or "", name)] = new
                self._record("MODIFIED", rt, new, old)
            self._after_write(rt)
            return self.render(rt, new, version)

    def bind(self, rt, ns, name, assign, dry_run=False):
        """pods/binding (tests/kubeapi/binding.py): assign(copy of the pod) -> the bound pod, or
        raises; stored atomically with the check, as GuaranteedUpdate does."""
        with self.lock:
            self._check_alive(rt)
            old = self.objects[rt.key].get((ns or "", name))
            if old is None:
                raise errors.not_found(rt.plural, name, rt.group)
            new = assign(copy.deepcopy(old))
            if dry_run:
                return self.render(rt, new)
            new["metadata"]["resourceVersion"] = str(self._bump())
            self.objects[rt.key][(ns or "", name)] = new
            self._record("MODIFIED", rt, new, old)
            self._after_write(rt)
            return self.render(rt, new)

    # -- delete ------------------------------------------------------------------------------------

    def _remove(self, rt, ns, name, final):
        self.objects[rt.key].pop((ns or "", name), None)
        final["metadata"]["resourceVersion"] = str(self.rv)
        self._record("DELETED", rt, final)

    def _cascade(self, rt, obj):
        """Namespace / CRD deletion removes what lives in it, as the controllers would."""
        targets = []
        if rt.key == resources.NAMESPACES.key:
            ns = obj["metadata"]["name"]
            for key, table in self.objects.items():
                targets += [(key, k) for k in table if k[0] == ns and key != rt.key]
        elif rt.key == resources.CRDS.key:
            spec = obj["spec"]
            key = (spec["group"], spec["names"]["plural"])
            targets += [(key, k) for k in self.objects.get(key, {})]
        for key, (ons, oname) in sorted(targets):
            child_rt = self.registry.by_key(*key)
            gone = copy.deepcopy(self.objects[key][(ons, oname)])
            self._bump()
            if child_rt is None:
                self.objects[key].pop((ons, oname))
                continue
            self._remove(child_rt, ons, oname, gone)

    def delete(self, rt, ns, name, grace_period=None, preconditions=None, version=None, dry_run=False):
        """Returns (object, deleted_now)."""
        with self.lock:
            self._check_alive(rt)
            old = self.objects[rt.key].get((ns or "", name))
            if old is None:
                raise errors.not_found(rt.plural, name, rt.group)
            md = old["metadata"]
            if rt.key == resources.NAMESPACES.key and name in PROTECTED_NAMESPACES:
                raise errors.forbidden("namespaces", name, "", "this namespace may not be deleted")
            pre = preconditions or {}
            if pre.get("uid") and pre["uid"] != md.get("uid"):
                raise errors.conflict(rt.plural, name, rt.group,
                                      f"Precondition failed: UID in precondition: {pre['uid']}, "
                                      f"UID in object meta: {md.get('uid')}")
            if pre.get("resourceVersion") and pre["resourceVersion"] != md.get("resourceVersion"):
                raise errors.conflict(rt.plural, name, rt.group,
                                      f"Precondition failed: ResourceVersion in precondition: "
                                      f"{pre['resourceVersion']}, ResourceVersion in object meta: "
                                      f"{md.get('resourceVersion')}")
            grace = 0
            if rt.key == resources.PODS.key:
                spec, phase = old.get("spec", {}), old.get("status", {}).get("phase")
                grace = grace_period if grace_period is not None else spec.get("terminationGracePeriodSeconds", 30)
                if not spec.get("nodeName") or phase in ("Succeeded", "Failed"):
                    grace = 0
                if md.get("deletionTimestamp") is not None and grace >= md.get("deletionGracePeriodSeconds", 0):
                    return self.render(rt, old, version), False
            new = copy.deepcopy(old)
            if grace > 0 or md.get("finalizers"):
                nmd = new["metadata"]
                if nmd.get("deletionTimestamp") is None or grace < nmd.get("deletionGracePeriodSeconds", 0):
                    nmd["deletionTimestamp"] = now_rfc3339(grace)
                    nmd["deletionGracePeriodSeconds"] = grace
                if _same(new, old) or dry_run:
                    return self.render(rt, new, version), False
                nmd["resourceVersion"] = str(self._bump())
                self.objects[rt.key][(ns or "", name)] = new
                self._record("MODIFIED", rt, new, old)
                return self.render(rt, new, version), False
            if dry_run:
                return self.render(rt, new, version), True
            self._cascade(rt, old)
            if rt.key == resources.NAMESPACES.key:
                new["metadata"]["deletionTimestamp"] = now_rfc3339()
                new["status"] = {"phase": "Terminating"}
            self._bump()
            self._remove(rt, ns, name, new)
            self._after_write(rt)
            return self.render(rt, new, version), True

    def delete_collection(self, rt, ns, label_selector=None, field_selector=None, grace_period=None,
                          version=None, dry_run=False):
        with self.lock:
            items, _ = self.list(rt, ns, label_selector, field_selector, version)
            out = []
            for item in items:
                md = item["metadata"]
                obj, _ = self.delete(rt, md.get("namespace", ""), md["name"], grace_period,
                                     version=version, dry_run=dry_run)
                out.append(obj)
            return out, self.rv

    def close(self):
        with self.lock:
            self.closed = True
            self.cond.notify_all()
