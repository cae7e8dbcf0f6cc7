"""POST /api/v1/namespaces/<ns>/pods/<name>/binding, as kube-apiserver's BindingREST answers it
(pkg/registry/core/pod/storage/storage.go: Create, assignPod, setPodNodeAndMetadata; the Binding
validation of pkg/apis/core/validation ValidatePodBinding):
- the Binding's metadata.name must equal the URL's pod name (400 "name in URL does not match
  name in Binding object"); target.kind "" or "Node", target.name required (422);
- metadata.uid / resourceVersion, when given, are preconditions on the pod (409 "Precondition
  failed: UID in precondition: a, UID in object meta: b");
- a pod being deleted, or already bound, is refused: 409 Conflict on "pods/binding" with
  "pod x is being deleted, cannot be assigned to a host" / "pod x is already assigned to node "n"";
- otherwise spec.nodeName is set, the Binding's annotations are copied onto the pod, the
  PodScheduled condition becomes True, and the answer is 201 with a Success Status."""
from __future__ import annotations

from . import errors
from .store import now_rfc3339


def _conflict(name: str, why: str) -> errors.ApiError:
    return errors.conflict("pods/binding", name, why=why)


def create(store, rt, ns: str, name: str, body, dry_run: bool = False) -> dict:
    if not isinstance(body, dict) or body.get("kind") not in (None, "Binding"):
        raise errors.bad_request("not a Binding object")
    md = body.get("metadata") if isinstance(body.get("metadata"), dict) else {}
    if md.get("name", "") != name:
        raise errors.bad_request("name in URL does not match name in Binding object")
    target = body.get("target") if isinstance(body.get("target"), dict) else {}
    errs = []
    if target.get("kind") not in (None, "", "Node"):
        errs.append(errors.FieldError("notsupported", "target.kind", target.get("kind"),
                                      'supported values: "Node", "<empty>"'))
    if not target.get("name"):
        errs.append(errors.FieldError("required", "target.name", None, ""))
    if errs:
        raise errors.invalid("Binding", name, errs)
    uid, rv = md.get("uid") or "", md.get("resourceVersion") or ""
    node = target["name"]

    def assign(pod: dict) -> dict:
        pmd, spec = pod["metadata"], pod.setdefault("spec", {})
        if uid and pmd.get("uid") != uid:
            raise _conflict(name, f"Precondition failed: UID in precondition: {uid}, UID in object meta: {pmd.get('uid')}")
        if rv and pmd.get("resourceVersion") != rv:
            raise _conflict(name, f"Precondition failed: ResourceVersion in precondition: {rv}, "
                                  f"ResourceVersion in object meta: {pmd.get('resourceVersion')}")
        if pmd.get("deletionTimestamp"):
            raise _conflict(name, f"pod {name} is being deleted, cannot be assigned to a host")
        if spec.get("nodeName"):
            raise _conflict(name, f'pod {name} is already assigned to node "{spec["nodeName"]}"')
        spec["nodeName"] = node
        if md.get("annotations"):
            pmd.setdefault("annotations", {}).update(md["annotations"])
        conds = pod.setdefault("status", {}).setdefault("conditions", [])
        for c in conds:
            if c.get("type") == "PodScheduled":
                if c.get("status") != "True":
                    c.update(status="True", lastTransitionTime=now_rfc3339())
                break
        else:
            conds.append({"type": "PodScheduled", "status": "True", "lastProbeTime": None,
                          "lastTransitionTime": now_rfc3339()})
        return pod

    store.bind(rt, ns, name, assign, dry_run)
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}
