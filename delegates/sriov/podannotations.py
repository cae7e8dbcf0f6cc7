"""The seed's pod annotations `networks-sriov-vlan` / `networks-sriov-txrate`: their syntax
(shared with the meta plugin: meta/annotations/sriov.py re-exports it) and, for a stand-alone
`sriov` (under upstream Multus, or as the only plugin), reading them for the pod being
attached and applying them under the network's own `podOverrides` policy (podoverrides.py).

Where the pod's annotations come from, first that answers:
  1. runtimeConfig "io.kubernetes.cri.pod-annotations" (containerd passes them with that capability);
  2. the node daemon's kube client and watch cache, when the daemon runs this call
     (the `pod_lookup` it lends the plugin: delegates/registry.py Services);
  3. a `kubeconfig` key in the sriov config (one GET of the pod, with the `kubernetes` package).
The pod is known from CNI_ARGS K8S_POD_NAMESPACE / K8S_POD_NAME (K8S_POD_UID, when given, must
match). Without any of these the annotations cannot be seen and nothing is applied.

When the meta plugin planned the attachment it has already applied them (and removed
`podOverrides`); it marks the config with `podOverridesApplied`, so they are not applied twice.
"""
from __future__ import annotations

from cni import log
from cni.errors import API_FAILED, INVALID_CONFIG, CNIError

# typing.TYPE_CHECKING without importing typing: mypy takes any `TYPE_CHECKING` as true. The
# annotation parser (cni/annotjson.py), json and podoverrides.py are imported where used: a
# call whose pod's annotations cannot be seen, or carry no override, needs none of them.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

_log = log.get("sriov")
APPLIED = "podOverridesApplied"
CRI_ANNOTATIONS = "io.kubernetes.cri.pod-annotations"


SRIOV_VLAN_ANNOTATION = "networks-sriov-vlan"
SRIOV_TXRATE_ANNOTATION = "networks-sriov-txrate"


def _known_names(network_names: Iterable) -> set[str]:
    known: set[str] = set()
    for n in network_names:
        if not isinstance(n, str):   # a Selection (meta/annotations/selection.py): its name and ns/name
            known.update((n.name, n.key))
        else:
            known.add(n)
            if "/" in n:
                known.add(n.split("/", 1)[1])
    return known


def parse_override(value: str, network_names: Iterable,
                   key: str = f"{SRIOV_VLAN_ANNOTATION} / {SRIOV_TXRATE_ANNOTATION}",
                   other_networks_ok: bool = False) -> dict[str, int]:
    """Parse a per-pod SR-IOV override annotation (`networks-sriov-vlan`,
    `networks-sriov-txrate`; pass the annotation name as `key`, it is used in messages).

    Either a plain non-negative decimal integer, which applies to every SR-IOV attachment of the
    pod and is returned as {"*": n}, or a JSON object mapping a network (`name` or
    `namespace/name`, one of `network_names`: strings in either form, or Selections) to a
    non-negative integer. Syntax only: policy limits are applied by the caller. Use
    `override_for` to find the value for one attachment. The meta plugin knows every network of
    the pod and refuses other names; a stand-alone sriov plugin knows only its own
    (`other_networks_ok`: entries for other networks are syntax-checked and skipped)."""
    from cni.annotjson import GO_SPACE, INT64_MAX, MAX_ANNOTATION_BYTES, JSONPairs, fail, go_loads, json_kind, quote
    if value is None or not isinstance(value, str):
        raise fail(key, "annotation", "must be a string")
    if len(value) > MAX_ANNOTATION_BYTES:
        raise fail(key, "annotation", f"larger than {MAX_ANNOTATION_BYTES} bytes")
    text = value.strip(GO_SPACE)
    where = quote(text)
    if not text:
        raise fail(key, where, "empty value (a non-negative integer or a JSON object)")
    if text[0] != "{":
        if text.isascii() and text.isdigit():
            if len(text) > 1 and text[0] == "0":
                raise fail(key, where, "leading zeros are not allowed")
            if len(text) > 19 or int(text) > INT64_MAX:
                raise fail(key, where, "integer out of range")
            return {"*": int(text)}
        if text[0] == "-" and text[1:].isascii() and text[1:].isdigit():
            raise fail(key, where, "must not be negative")
        raise fail(key, where, "must be a non-negative integer (for every SR-IOV network) or a "
                    'JSON object such as {"my-net": 100}')
    try:
        doc = go_loads(text)
    except RecursionError:
        raise fail(key, "annotation", "invalid JSON: nested too deeply") from None
    except ValueError as e:
        raise fail(key, "annotation", f"invalid JSON: {e}") from None
    if not isinstance(doc, JSONPairs):
        raise fail(key, where, f"must be a JSON object, not JSON {json_kind(doc)}")
    known = _known_names(network_names)
    out: dict[str, int] = {}
    for name, v in doc:
        w = quote(name)
        if name in out:
            raise fail(key, w, "network given twice")
        if name not in known and not other_networks_ok:
            shown = ", ".join(sorted(known)) or "none"
            raise fail(key, w, f"not one of this pod's networks ({quote(shown, 200)})")
        if isinstance(v, bool) or not isinstance(v, int):
            raise fail(key, w, f"value must be a non-negative integer, not JSON {json_kind(v)}"
                        + (f" {v!r}" if isinstance(v, float) else ""))
        if v < 0:
            raise fail(key, w, f"value must not be negative ({v})")
        if v > INT64_MAX:
            raise fail(key, w, "value out of range")
        out[name] = v
    return out


def override_for(overrides: Mapping[str, int], selection) -> int | None:
    """The override that applies to one attachment: `namespace/name`, else `name`, else `*`."""
    for k in (selection.key, selection.name, "*"):
        if k in overrides:
            return overrides[k]
    return None


def _get_pod(kubeconfig: str, ns: str, name: str) -> dict:
    try:
        import json

        from kubernetes import client, config
        api = config.new_client_from_config(config_file=kubeconfig)
        with api:
            resp = client.CoreV1Api(api).read_namespaced_pod(name, ns, _request_timeout=10, _preload_content=False)
            # _preload_content=False: the raw urllib3 response, not the V1Pod the stubs declare
            return json.loads(resp.data)  # type: ignore[attr-defined]
    except Exception as e:   # unreachable, 401/403/404, a bad kubeconfig: the policy cannot be checked
        raise CNIError(API_FAILED, f"failed to get pod {ns}/{name} for its {SRIOV_VLAN_ANNOTATION} / "
                       f"{SRIOV_TXRATE_ANNOTATION} annotations", f"{type(e).__name__}: {str(e)[:300]}") from None


def pod_annotations(conf: dict, args: dict, lookup=None) -> dict | None:
    """The pod's annotations, or None when the pod or a way to see it is unknown. `lookup`:
    the daemon's cached pod getter, (namespace, name, uid) -> pod dict (raises CNIError)."""
    ns, name = args.get("K8S_POD_NAMESPACE"), args.get("K8S_POD_NAME")
    if not ns or not name:
        return None
    runtime = conf.get("runtimeConfig")
    if isinstance(runtime, dict) and isinstance(runtime.get(CRI_ANNOTATIONS), dict):
        return runtime[CRI_ANNOTATIONS]
    uid = args.get("K8S_POD_UID") or None
    if lookup is not None:
        pod = lookup(ns, name, uid)
    elif isinstance(conf.get("kubeconfig"), str) and conf["kubeconfig"]:
        pod = _get_pod(conf["kubeconfig"], ns, name)
    else:
        _log.debug("pod %s/%s: no API access (no daemon, no kubeconfig): its %s / %s annotations are not read",
                   ns, name, SRIOV_VLAN_ANNOTATION, SRIOV_TXRATE_ANNOTATION)
        return None
    meta = pod.get("metadata") or {}
    if uid and meta.get("uid") != uid:
        raise CNIError(API_FAILED, f"pod {ns}/{name} has UID {meta.get('uid')}, expected {uid}",
                       "the pod was deleted and re-created")
    return meta.get("annotations") or {}


def apply(conf: dict, args: dict, lookup=None) -> dict:
    """The config with this pod's overrides applied under its podOverrides (a copy), or a
    CNIError naming the setting that would allow them. `lookup`: see pod_annotations."""
    if conf.get(APPLIED) is True:   # the meta plugin did it
        return conf
    annots = pod_annotations(conf, args, lookup)
    if not annots:
        return conf
    network = str(conf.get("name", ""))
    sel = _Selection(network, f"{args.get('K8S_POD_NAMESPACE')}/{network}")
    found: list[int | None] = []
    for key in (SRIOV_VLAN_ANNOTATION, SRIOV_TXRATE_ANNOTATION):
        raw = annots.get(key)
        if raw in (None, ""):
            found.append(None)
            continue
        from cni.annotjson import AnnotationError
        try:
            found.append(override_for(parse_override(raw, [network, sel.key], key, other_networks_ok=True), sel))
        except AnnotationError as e:
            raise CNIError(INVALID_CONFIG, str(e)) from None
    vlan, rate = found
    if vlan is None and rate is None:
        return conf
    _log.info("pod %s applies %s", sel.key, {k: v for k, v in (("vlan", vlan), ("max_tx_rate", rate)) if v is not None})
    from . import podoverrides
    return podoverrides.apply(conf, network, vlan, rate)


class _Selection:
    """The attachment override_for() looks up: the network's `name` and `namespace/name`."""
    __slots__ = ("name", "key")

    def __init__(self, name: str, key: str):
        self.name, self.key = name, key
