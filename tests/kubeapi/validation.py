"""Create/update strategies and validation of built-in kinds, after k8s.io/kubernetes/pkg/registry.

What it copies: name rules (DNS-1123 subdomain for most kinds, DNS-1123 label for namespaces),
label/annotation key and value rules, the `Pod "x" is invalid: <field>: <error>` 422 messages,
defaulting (pods: status Pending + QoS class, restartPolicy, dnsPolicy, ...; namespaces: phase
Active, `kubernetes` finalizer, `kubernetes.io/metadata.name` label; nodes: empty nodeInfo), the
status-subresource split (the main endpoint ignores status, `/status` ignores spec), pod spec
immutability on update, and CRD validation (name = `<plural>.<group>`, one storage version).
"""

from __future__ import annotations

import json
import re

from .errors import FieldError, invalid

SUBDOMAIN_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
LABEL_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
QNAME_RE = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")

SUBDOMAIN_MSG = ("a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, "
                 "'-' or '.', and must start and end with an alphanumeric character (e.g. "
                 "'example.com', regex used for validation is "
                 "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')")
LABEL_MSG = ("a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', "
             "and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', "
             "regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')")
QNAME_MSG = ("name part must consist of alphanumeric characters, '-', '_' or '.', and must start and "
             "end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex "
             "used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')")
LABEL_VALUE_MSG = ("a valid label must be an empty string or consist of alphanumeric characters, '-', "
                   "'_' or '.', and must start and end with an alphanumeric character (e.g. "
                   "'MyValue',  or 'my_value',  or '12345', regex used for validation is "
                   "'(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')")

POD_MUTABLE = ("`spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,"
               "`spec.tolerations` (only additions to existing tolerations),"
               "`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously "
               "negative)")


def name_errors(name, rule, field="metadata.name"):
    if rule == "label":
        if len(name) > 63:
            return [FieldError("invalid", field, name, "must be no more than 63 characters")]
        return [] if LABEL_RE.match(name) else [FieldError("invalid", field, name, LABEL_MSG)]
    if len(name) > 253:
        return [FieldError("invalid", field, name, "must be no more than 253 characters")]
    return [] if SUBDOMAIN_RE.match(name) else [FieldError("invalid", field, name, SUBDOMAIN_MSG)]


def qualified_name_errors(key, field):
    prefix, slash, name = key.rpartition("/")
    errs = []
    if slash and (not prefix or len(prefix) > 253 or not SUBDOMAIN_RE.match(prefix)):
        errs.append(FieldError("invalid", field, key, "prefix part " + SUBDOMAIN_MSG))
    if not name or len(name) > 63 or not QNAME_RE.match(name):
        errs.append(FieldError("invalid", field, key, QNAME_MSG if name else "name part must be non-empty"))
    return errs


def metadata_errors(rt, obj):
    md = obj.get("metadata") or {}
    errs = []
    name = md.get("name") or ""
    if not name:
        errs.append(FieldError("required", "metadata.name", detail="name or generateName is required"))
    else:
        errs += name_errors(name, rt.name_rule)
    labels = md.get("labels") or {}
    if not isinstance(labels, dict):
        return errs + [FieldError("invalid", "metadata.labels", str(labels), "must be a map")]
    for k, v in labels.items():
        errs += qualified_name_errors(k, "metadata.labels")
        if not isinstance(v, str) or len(v) > 63 or (v and not QNAME_RE.match(v)):
            errs.append(FieldError("invalid", "metadata.labels", v, LABEL_VALUE_MSG))
    annotations = md.get("annotations") or {}
    for k, v in annotations.items():
        errs += qualified_name_errors(k.lower(), "metadata.annotations")
        if not isinstance(v, str):
            errs.append(FieldError("invalid", f"metadata.annotations[{k}]", v, "must be a string"))
    if len(json.dumps(annotations)) > 256 * 1024:
        errs.append(FieldError("toolong", "metadata.annotations", detail="may not be more than 262144 bytes"))
    return errs


# -- pods ------------------------------------------------------------------------------------------

def _qos(pod):
    containers = pod.get("spec", {}).get("containers", []) or []
    any_set, guaranteed = False, bool(containers)
    for c in containers:
        res = c.get("resources") or {}
        lim, req = res.get("limits") or {}, res.get("requests") or {}
        any_set = any_set or bool(lim) or bool(req)
        for r in ("cpu", "memory"):
            if r not in lim or req.get(r, lim[r]) != lim[r]:
                guaranteed = False
    if not any_set:
        return "BestEffort"
    return "Guaranteed" if guaranteed else "Burstable"


def default_pod_spec(spec):
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("securityContext", {})
    spec.setdefault("schedulerName", "default-scheduler")
    spec.setdefault("enableServiceLinks", True)
    spec.setdefault("priority", 0)
    spec.setdefault("preemptionPolicy", "PreemptLowerPriority")
    for key in ("containers", "initContainers"):
        for c in spec.get(key) or []:
            if not isinstance(c, dict):
                continue
            image = str(c.get("image", ""))
            tag = image.rsplit("/", 1)[-1]
            latest = "@" not in image and (":" not in tag or tag.endswith(":latest"))
            c.setdefault("imagePullPolicy", "Always" if latest else "IfNotPresent")
            c.setdefault("resources", {})
            c.setdefault("terminationMessagePath", "/dev/termination-log")
            c.setdefault("terminationMessagePolicy", "File")


def _pod_create_errors(pod):
    spec = pod.get("spec")
    if not isinstance(spec, dict):
        return [FieldError("required", "spec")]
    containers = spec.get("containers")
    if not containers:
        return [FieldError("required", "spec.containers")]
    errs, seen = [], set()
    for i, c in enumerate(containers):
        name = c.get("name") if isinstance(c, dict) else None
        if not name:
            errs.append(FieldError("required", f"spec.containers[{i}].name"))
        else:
            errs += name_errors(name, "label", f"spec.containers[{i}].name")
            if name in seen:
                errs.append(FieldError("duplicate", f"spec.containers[{i}].name", name))
            seen.add(name)
        if not (isinstance(c, dict) and c.get("image")):
            errs.append(FieldError("required", f"spec.containers[{i}].image"))
    node = spec.get("nodeName")
    if node:
        errs += name_errors(node, "subdomain", "spec.nodeName")
    return errs


def _pod_spec_frozen(spec):
    spec = json.loads(json.dumps(spec))
    for key in ("containers", "initContainers"):
        for c in spec.get(key) or []:
            c.pop("image", None)
    for key in ("activeDeadlineSeconds", "tolerations", "terminationGracePeriodSeconds", "schedulingGates"):
        spec.pop(key, None)
    return spec


# -- CRDs ------------------------------------------------------------------------------------------

def _crd_errors(crd):
    spec = crd.get("spec") or {}
    names = spec.get("names") or {}
    group, plural, kind = spec.get("group", ""), names.get("plural", ""), names.get("kind", "")
    errs = []
    if not group:
        errs.append(FieldError("required", "spec.group"))
    elif "." not in group:
        errs.append(FieldError("invalid", "spec.group", group, "should be a domain with at least one dot"))
    if not plural:
        errs.append(FieldError("required", "spec.names.plural"))
    elif not LABEL_RE.match(plural):
        errs.append(FieldError("invalid", "spec.names.plural", plural, LABEL_MSG))
    if not kind:
        errs.append(FieldError("required", "spec.names.kind"))
    if crd["metadata"].get("name") != f"{plural}.{group}":
        errs.append(FieldError("invalid", "metadata.name", crd["metadata"].get("name", ""),
                               'must be spec.names.plural+"."+spec.group'))
    if spec.get("scope") not in ("Namespaced", "Cluster"):
        errs.append(FieldError("notsupported", "spec.scope", spec.get("scope", ""),
                               'supported values: "Cluster", "Namespaced"'))
    versions = spec.get("versions") or []
    if not versions:
        errs.append(FieldError("invalid", "spec.versions", None, "must have exactly one version marked as storage version"))
    elif sum(1 for v in versions if v.get("storage")) != 1:
        errs.append(FieldError("invalid", "spec.versions", None,
                               "must have exactly one version marked as storage version"))
    return errs


def _crd_default(crd, now):
    spec = crd.setdefault("spec", {})
    names = spec.setdefault("names", {})
    if names.get("kind"):
        names.setdefault("singular", names["kind"].lower())
        names.setdefault("listKind", names["kind"] + "List")
    spec.setdefault("conversion", {"strategy": "None"})
    storage = [v["name"] for v in spec.get("versions", []) if v.get("storage")]
    crd["status"] = {
        "acceptedNames": dict(names),
        "conditions": [
            {"type": "NamesAccepted", "status": "True", "lastTransitionTime": now,
             "reason": "NoConflicts", "message": "no conflicts found"},
            {"type": "Established", "status": "True", "lastTransitionTime": now,
             "reason": "InitialNamesAccepted", "message": "the initial names have been accepted"}],
        "storedVersions": storage,
    }


def _drop_nulls(value):
    if isinstance(value, dict):
        return {k: _drop_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_drop_nulls(v) for v in value]
    return value


def normalize(rt, obj):
    """What a decode/encode round trip through Go types does: ObjectMeta fields are `omitempty`
    (an emptied `finalizers` or `labels` disappears); a typed (built-in) object cannot hold null."""
    md = obj.get("metadata")
    if isinstance(md, dict):
        for key in [k for k, v in md.items() if v in (None, "", [], {})]:
            del md[key]
    if rt.builtin:
        cleaned = _drop_nulls(obj)
        obj.clear()
        obj.update(cleaned)


# -- strategies ------------------------------------------------------------------------------------

def prepare_create(rt, obj, now):
    """PrepareForCreate + defaulting, per kind."""
    if rt.plural == "pods":
        spec = obj.setdefault("spec", {})
        if isinstance(spec, dict):
            default_pod_spec(spec)
        obj["status"] = {"phase": "Pending", "qosClass": _qos(obj)}
    elif rt.plural == "namespaces":
        obj["spec"] = {"finalizers": ["kubernetes"]}
        obj["status"] = {"phase": "Active"}
        obj["metadata"].setdefault("labels", {})["kubernetes.io/metadata.name"] = obj["metadata"]["name"]
    elif rt.plural == "nodes":
        obj.setdefault("spec", {})
        status = obj.setdefault("status", {})
        status.setdefault("daemonEndpoints", {"kubeletEndpoint": {"Port": 0}})
        info = status.setdefault("nodeInfo", {})
        for k in ("machineID", "systemUUID", "bootID", "kernelVersion", "osImage",
                  "containerRuntimeVersion", "kubeletVersion", "kubeProxyVersion",
                  "operatingSystem", "architecture"):
            info.setdefault(k, "")
    elif rt.plural == "customresourcedefinitions" and rt.builtin:
        _crd_default(obj, now)
    elif rt.status_subresource:
        obj.pop("status", None)


def prepare_update(rt, new, old, subresource):
    """PrepareForUpdate: which parts of `new` the endpoint may change; the rest comes from `old`."""
    if subresource == "finalize":           # namespaces/<ns>/finalize: only spec.finalizers
        finalizers = (new.get("spec") or {}).get("finalizers")
        new.clear()
        new.update(json.loads(json.dumps(old)))
        new["spec"]["finalizers"] = finalizers or []
        return
    if subresource == "status":
        if rt.builtin:
            for key in list(new):
                if key not in ("apiVersion", "kind", "metadata", "status"):
                    new.pop(key)
            for key in old:
                if key not in ("apiVersion", "kind", "metadata", "status"):
                    new[key] = json.loads(json.dumps(old[key]))
            refs = old["metadata"].get("ownerReferences")
            new["metadata"].pop("ownerReferences", None)
            if refs is not None:
                new["metadata"]["ownerReferences"] = refs
        else:
            status = new.get("status")
            new.clear()
            new.update(json.loads(json.dumps(old)))
            new.pop("status", None)
            if status is not None:
                new["status"] = status
        return
    if rt.plural == "namespaces" and rt.builtin:
        new["spec"] = json.loads(json.dumps(old.get("spec", {})))
        new["metadata"].setdefault("labels", {})["kubernetes.io/metadata.name"] = old["metadata"]["name"]
    if rt.status_subresource:
        new.pop("status", None)
        if "status" in old:
            new["status"] = json.loads(json.dumps(old["status"]))
    if rt.plural == "pods" and isinstance(new.get("spec"), dict):
        default_pod_spec(new["spec"])


def validate(rt, obj, old=None):
    """Raise the 422 Invalid a real server answers for this create (old=None) or update."""
    md = obj["metadata"]
    errs = metadata_errors(rt, obj)
    if rt.plural == "pods" and rt.builtin:
        errs += _pod_create_errors(obj)
        if old is not None and not errs and _pod_spec_frozen(obj["spec"]) != _pod_spec_frozen(old["spec"]):
            errs.append(FieldError("forbidden", "spec",
                                   detail=f"pod updates may not change fields other than {POD_MUTABLE}"))
    if rt.plural == "events" and rt.builtin:
        errs += _event_errors(obj)
    if rt.plural == "customresourcedefinitions" and rt.builtin:
        errs += _crd_errors(obj)
        if old is not None and not errs:
            for path in (("group",), ("names", "plural"), ("scope",)):
                a, b = obj["spec"], old["spec"]
                for p in path:
                    a, b = a.get(p), b.get(p)
                if a != b:
                    errs.append(FieldError("invalid", "spec." + ".".join(path), a, "field is immutable"))
    if old is not None and md.get("uid") and md["uid"] != old["metadata"].get("uid"):
        errs.append(FieldError("invalid", "metadata.uid", md["uid"], "field is immutable"))
    if errs:
        raise invalid(rt.kind, md.get("name", ""), errs, rt.group)


def _event_errors(ev):
    """k8s.io/kubernetes pkg/apis/core/validation/events.go ValidateEventCreate (core/v1): the
    involved object's namespace must be the event's, reason and message within their limits."""
    errs = []
    ref = ev.get("involvedObject") if isinstance(ev.get("involvedObject"), dict) else {}
    ns = ev["metadata"].get("namespace", "")
    if ref.get("namespace") and ref["namespace"] != ns:
        errs.append(FieldError("invalid", "involvedObject.namespace", ref["namespace"], "does not match event.namespace"))
    if len(str(ev.get("reason", ""))) > 128:
        errs.append(FieldError("toolong", "reason", detail="must have at most 128 bytes"))
    if len(str(ev.get("message", ""))) > 4096:
        errs.append(FieldError("toolong", "message", detail="must have at most 4096 bytes"))
    return errs
