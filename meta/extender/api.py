"""The kube-scheduler extender wire format, as k8s.io/kube-scheduler/extender/v1 types.go defines
it and kube-scheduler's HTTPExtender (pkg/scheduler/extender.go) sends and reads it.

Those Go types carry no json tags, so kube-scheduler's encoding/json writes the Go field names:
    ExtenderArgs         {"Pod": <v1.Pod>, "Nodes": <v1.NodeList> | null, "NodeNames": [...] | null}
(`NodeNames` when the extender is configured `nodeCacheCapable`, else `Nodes`), POSTed to
<urlPrefix>/<filterVerb> and <urlPrefix>/<prioritizeVerb>. It reads the answers with encoding/json,
which matches keys case-insensitively; we answer with the Go field names:
    ExtenderFilterResult {"Nodes": <v1.NodeList> | null, "NodeNames": [...] | null,
                          "FailedNodes": {name: reason}, "FailedAndUnresolvableNodes": {name: reason},
                          "Error": ""}
    HostPriorityList     [{"Host": name, "Score": 0..10}]     (MaxExtenderPriority = 10)
With `bindVerb` configured, kube-scheduler lets the extender bind the pod it placed:
    ExtenderBindingArgs  {"PodName", "PodNamespace", "PodUID", "Node"}  POSTed to <urlPrefix>/<bindVerb>
    ExtenderBindingResult {"Error": ""}    (non-empty: the binding failed; the pod is retried)
A filter answer must carry the form it was asked in: with `NodeNames` asked and none answered,
kube-scheduler takes it as "no node passed". A non-empty `Error` fails the pod's scheduling
attempt (it is retried); a non-200 status is an error too. Keys are read as encoding/json reads
them: an exact match or a case-insensitive one, the last such key winning.
"""
from __future__ import annotations

import json
from dataclasses import dataclass

MAX_PRIORITY = 10     # extenderv1.MaxExtenderPriority


class BadRequest(ValueError):
    """A request that is not an ExtenderArgs (answered 400 with the result's Error)."""


def go_field(obj: dict, name: str):
    """The value encoding/json would decode into the struct field `name` (None if absent)."""
    value, folded = None, name.casefold()
    for key, v in obj.items():
        if key == name or key.casefold() == folded:
            value = v
    return value


def _kind(v) -> str:
    return {dict: "object", list: "array", str: "string", bool: "boolean", type(None): "null"}.get(
        type(v), "number")


@dataclass
class Args:
    pod: dict
    names: list            # candidate node names, in the order given
    node_names: list | None = None    # the NodeNames form (nodeCacheCapable), as given
    node_list: dict | None = None     # the Nodes form: the NodeList as given
    by_name: dict | None = None       # Nodes form: name -> Node object

    @property
    def uid(self) -> str:
        md = self.pod.get("metadata") or {}
        uid = md.get("uid") if isinstance(md, dict) else None
        if isinstance(uid, str) and uid:
            return uid
        return f"{md.get('namespace') or 'default'}/{md.get('name') or ''}" if isinstance(md, dict) else "/"

    @property
    def pod_name(self) -> str:
        md = self.pod.get("metadata")
        if not isinstance(md, dict):
            md = {}
        return f"{md.get('namespace') or 'default'}/{md.get('name') or '?'}"


def parse_args(body: bytes) -> Args:
    try:
        doc = json.loads(body)
    except RecursionError:
        raise BadRequest("malformed ExtenderArgs: JSON nested too deeply") from None
    except ValueError as e:     # JSONDecodeError, UnicodeDecodeError
        raise BadRequest(f"malformed ExtenderArgs: invalid JSON: {e}") from None
    if not isinstance(doc, dict):
        raise BadRequest(f"malformed ExtenderArgs: a JSON object is needed, not JSON {_kind(doc)}")
    pod = go_field(doc, "Pod")
    if not isinstance(pod, dict):
        raise BadRequest("malformed ExtenderArgs: Pod must be a v1.Pod object, not "
                         + ("missing" if pod is None else f"JSON {_kind(pod)}"))
    for key in ("metadata", "spec"):
        if go_field(pod, key) is not None and not isinstance(go_field(pod, key), dict):
            raise BadRequest(f"malformed ExtenderArgs: Pod.{key} must be an object")
    pod = dict(pod, metadata=go_field(pod, "metadata") or {})
    names, nodes = go_field(doc, "NodeNames"), go_field(doc, "Nodes")
    if names is None and nodes is None:
        raise BadRequest("malformed ExtenderArgs: neither Nodes nor NodeNames is given")
    args = Args(pod, [])
    if names is not None:
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise BadRequest("malformed ExtenderArgs: NodeNames must be an array of strings")
        args.node_names = names
        args.names = list(names)
    if nodes is not None:
        if not isinstance(nodes, dict):
            raise BadRequest(f"malformed ExtenderArgs: Nodes must be a v1.NodeList, not JSON {_kind(nodes)}")
        items = go_field(nodes, "items")
        if items is not None and not isinstance(items, list):
            raise BadRequest("malformed ExtenderArgs: Nodes.items must be an array")
        args.node_list, args.by_name = nodes, {}
        for i, node in enumerate(items or ()):
            md = go_field(node, "metadata") if isinstance(node, dict) else None
            name = go_field(md, "name") if isinstance(md, dict) else None
            if not isinstance(name, str) or not name:
                raise BadRequest(f"malformed ExtenderArgs: Nodes.items[{i}] has no metadata.name")
            args.by_name[name] = node
            if names is None:
                args.names.append(name)
    return args


@dataclass(frozen=True)
class Binding:
    namespace: str
    name: str
    uid: str
    node: str


def parse_binding(body: bytes) -> Binding:
    """ExtenderBindingArgs (k8s.io/kube-scheduler/extender/v1), read as encoding/json reads it."""
    try:
        doc = json.loads(body)
    except RecursionError:
        raise BadRequest("malformed ExtenderBindingArgs: JSON nested too deeply") from None
    except ValueError as e:
        raise BadRequest(f"malformed ExtenderBindingArgs: invalid JSON: {e}") from None
    if not isinstance(doc, dict):
        raise BadRequest(f"malformed ExtenderBindingArgs: a JSON object is needed, not JSON {_kind(doc)}")
    out = {}
    for field_name in ("PodName", "PodNamespace", "PodUID", "Node"):
        v = go_field(doc, field_name)
        if v is None:
            v = ""
        if not isinstance(v, str):
            raise BadRequest(f"malformed ExtenderBindingArgs: {field_name} must be a string, not JSON {_kind(v)}")
        out[field_name] = v
    for required in ("PodName", "Node"):
        if not out[required]:
            raise BadRequest(f"malformed ExtenderBindingArgs: {required} is empty")
    return Binding(out["PodNamespace"] or "default", out["PodName"], out["PodUID"], out["Node"])


def binding_result(error: str = "") -> dict:
    return {"Error": error}


def filter_result(args: Args, passed, failed: dict, unresolvable: dict) -> dict:
    """The ExtenderFilterResult, in the form(s) the request used."""
    out: dict[str, object] = {"Nodes": None, "NodeNames": None, "FailedNodes": failed,
           "FailedAndUnresolvableNodes": unresolvable, "Error": ""}
    if args.node_names is not None:
        out["NodeNames"] = list(passed)
    if args.node_list is not None:
        keep = set(passed)
        items = [n for n in go_field(args.node_list, "items") or ()
                 if go_field(go_field(n, "metadata"), "name") in keep]
        out["Nodes"] = {**{k: v for k, v in args.node_list.items() if k.casefold() != "items"},
                        "items": items}
    return out


def error_result(message: str) -> dict:
    return {"Nodes": None, "NodeNames": None, "FailedNodes": None,
            "FailedAndUnresolvableNodes": None, "Error": message}


def host_priorities(scores: dict) -> list:
    """HostPriorityList from {node: score}."""
    return [{"Host": name, "Score": int(score)} for name, score in scores.items()]


def dumps(obj) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()
