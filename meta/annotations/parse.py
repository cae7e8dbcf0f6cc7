"""Pod network-selection annotations, parsed with Multus's semantics.

`k8s.v1.cni.cncf.io/networks` (the attachments) and `v1.multus-cni.io/default-network` (replace
the cluster default network), and what is decided across the attachments: default-route
gateways and interface names. Pure functions, stdlib only: this runs on every ADD.

Helpers live in their own modules (what callers use is re-exported here): the parsed values in
meta/annotations/selection.py, Go's JSON decoding in meta/annotations/gojson.py, Go-compatible value checks in
meta/annotations/govalues.py, AnnotationError in meta/annotations/errors.py, and our per-pod SR-IOV overrides
(`networks-sriov-vlan`, `networks-sriov-txrate`) in meta/annotations/sriov.py.

What Multus does, and where it comes from (multus-cni pkg/k8sclient/k8sclient.go, pkg/types):
- JSON or comma list: the value is JSON when it contains any of `[`, `{`, `"`
  (parsePodNetworkAnnotation); otherwise a comma list of `[namespace/]name[@ifname]`, each item and
  each part trimmed of (Go) white space, at most one '/' and one '@', namespace and name matching
  the DNS-1123 label pattern, interface name at most 15 bytes with no '/' or white space
  (parsePodNetworkObjectName). "[]" is no networks.
- JSON elements are NetworkSelectionElement objects (pkg/types/types.go); keys are matched as Go's
  encoding/json does (exact name first, else case-insensitively; the last duplicate wins; unknown
  keys are ignored, we report them in `Selection.ignored_keys` so the caller can log them);
  a JSON `null` value is the same as an absent key; a value of the wrong JSON type is an error
  (meta/annotations/gojson.py).
- namespace defaults to the pod's; `mac` and `infiniband-guid` must pass Go's net.ParseMAC; each
  `ips` entry is a CIDR when it contains '/', else a plain IP; `interfaceRequest` (deprecated) is
  used only when `interface` is empty (parsePodNetworkAnnotation); `default-route` entries are IPs
  (net.IP's UnmarshalText).
- more than one IPv4 (or IPv6) default-route gateway across the attachments is an error
  (types.CheckGatewayConfig); see `check_gateways` and `gateway_filters`.
- interface names: the requested one, else `net<N>` with N the delegate's position in Multus's
  delegate list (multus.go getIfname); see `assign_interfaces`.

Where we are deliberately stricter (each with its own error message), all of them cases Multus
would only fail later (a NAD lookup that cannot succeed, the kernel refusing a name, a nil
pointer) or silently pass on to a delegate:
- an empty item ("a,,b", a trailing comma, "ns/") is rejected here; Multus parses it into a
  network with an empty name and then fails the NAD lookup.
- a namespace longer than 63 characters or a name longer than 253 is rejected (no such object can
  exist); in the JSON form `name` is required and must be a DNS-1123 subdomain (what a NAD name
  is), `namespace` a DNS-1123 label (Multus does not check either in the JSON form).
- interface names, in both forms: printable ASCII, no '/', ':' or space, not "." or "..", at most
  15 bytes (the kernel's dev_valid_name plus ASCII); Multus checks only length, '/' and white space.
- the same interface name twice in one annotation is rejected (Multus fails when it creates the
  second link, after the first attachment was already added).
- JSON: the value must be a list of objects (Multus panics on `[null]`); `default-route` entries
  must be non-empty IP strings (Go turns "" and null into a nil IP); `portMappings` entries must be
  objects with ports 1..65535, protocol tcp/udp/sctp (any case) or empty, hostIP empty or an IP;
  `bandwidth` values non-negative; `deviceID` a non-empty string without '/', white space or
  control characters; numbers that do not fit a float64 in `cni-args` (Go refuses them too).
- an annotation larger than MAX_ANNOTATION_BYTES or with more than MAX_ATTACHMENTS attachments.
"""
from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence

from .errors import MAX_ANNOTATION_BYTES, AnnotationError, fail, quote
from .gojson import JSONPairs, cni_value, fold_fields, go_loads, is_go_int, json_kind, short_json
from .govalues import (
    GO_SPACE,
    IFNAME_OK,
    LABEL,
    SUBDOMAIN,
    canonical_ip,
    check_ifname,
    check_namespace,
    is_v4,
    parse_ip,
    parse_mac,
    valid_ip_or_cidr,
)
from .selection import JSONObject, Selection
from .sriov import SRIOV_TXRATE_ANNOTATION, SRIOV_VLAN_ANNOTATION, override_for, parse_override

NETWORKS_ANNOTATION = "k8s.v1.cni.cncf.io/networks"
DEFAULT_NETWORK_ANNOTATION = "v1.multus-cni.io/default-network"

MAX_ATTACHMENTS = 64
_PROTOCOLS = frozenset(("", "tcp", "udp", "sctp"))

# The Go structs' fields (NetworkSelectionElement, PortMapEntry, BandwidthEntry), as `fold_fields`
# matches JSON keys onto them.
_ELEMENT_FIELDS = {f.lower(): f for f in (
    "name", "namespace", "ips", "mac", "infiniband-guid", "interface", "interfaceRequest",
    "portMappings", "bandwidth", "deviceID", "cni-args", "default-route")}
_PORTMAP_FIELDS = {f.lower(): f for f in ("hostPort", "containerPort", "protocol", "hostIP")}
_BANDWIDTH_FIELDS = {f.lower(): f for f in ("ingressRate", "ingressBurst", "egressRate",
                                            "egressBurst")}


# ---------------------------------------------------------------------------------------------
# The networks annotation


def _parse_item(index: int, item: str, default_namespace: str, annot: str) -> Selection:
    """One comma-form item: [namespace/]name[@ifname] (Multus parsePodNetworkObjectName)."""
    item = item.strip(GO_SPACE)
    where = quote(item) if item else f"item {index} (empty)"

    def bad(rule: str) -> AnnotationError:
        return fail(annot, where, rule)

    parts = item.split("/")
    if len(parts) > 2:
        raise bad("more than one '/' (expected [namespace/]name[@interface])")
    namespace = parts[0].strip(GO_SPACE) if len(parts) == 2 else ""
    at = parts[-1].split("@")
    if len(at) > 2:
        raise bad("more than one '@' (expected [namespace/]name[@interface])")
    name = at[0].strip(GO_SPACE)
    ifname = at[1].strip(GO_SPACE) if len(at) == 2 else ""
    if namespace:  # "/name" keeps an empty namespace, which defaults (as in Multus)
        problem = check_namespace(namespace)
        if problem:
            raise bad(problem)
    if not name:
        raise bad("empty network name (from ',,', a leading or trailing ',', or 'namespace/')")
    if len(name) > 253 or not LABEL.fullmatch(name):
        raise bad(f"network name {quote(name)} is not valid (lower-case alphanumerics or '-', "
                  "starting and ending with an alphanumeric; at most 253 characters)")
    if ifname:  # "name@" means no interface request, as in Multus
        problem = check_ifname(ifname)
        if problem:
            raise bad(problem)
    return Selection(name=name, namespace=namespace or default_namespace, interface=ifname or None)


def _parse_element(index: int, obj, default_namespace: str, annot: str) -> Selection:
    """One JSON-form element (Multus NetworkSelectionElement + parsePodNetworkAnnotation)."""
    where = f"element {index}"
    if not isinstance(obj, JSONPairs):
        raise fail(annot, where, "must be a JSON object (got JSON "
                    f"{json_kind(obj)}), e.g. {{\"name\": \"my-net\"}}")
    raw, ignored = fold_fields(obj, _ELEMENT_FIELDS)
    name = raw.get("name")
    if isinstance(name, str) and name:
        where = f"element {index} ({quote(name)})"

    def bad(rule: str) -> AnnotationError:
        return fail(annot, where, rule)

    def text(key: str) -> str:
        v = raw.get(key)
        if v is None:  # Go: null leaves the string empty
            return ""
        if not isinstance(v, str):
            raise bad(f"{key} must be a string, not JSON {json_kind(v)}")
        return v

    def str_list(key: str) -> list | None:
        v = raw.get(key)
        if v is None:
            return None
        if isinstance(v, JSONPairs) or not isinstance(v, list):
            raise bad(f"{key} must be a list of strings, not JSON {json_kind(v)}")
        out = []
        for x in v:
            if x is None:
                x = ""  # Go: null into a string element leaves it empty
            elif not isinstance(x, str):
                raise bad(f"{key} must be a list of strings (found JSON {json_kind(x)})")
            out.append(x)
        return out

    name = text("name")
    if not name:
        raise bad("name is required")
    if len(name) > 253 or not SUBDOMAIN.fullmatch(name):
        raise bad(f"name {quote(name)} is not a valid network name (a DNS-1123 subdomain: at most "
                  "253 lower-case alphanumerics, '-' or '.', each part starting and ending with an "
                  "alphanumeric)")
    namespace = text("namespace")
    if namespace:
        problem = check_namespace(namespace)
        if problem:
            raise bad(problem)

    interface = text("interface")
    if not interface:  # deprecated alias, only when "interface" is empty (as Multus)
        interface = text("interfaceRequest")
    if interface:
        problem = check_ifname(interface)
        if problem:
            raise bad(problem)

    mac = text("mac")
    if mac:
        norm = parse_mac(mac)
        if norm is None:
            raise bad(f"mac {quote(mac)} is not a valid MAC address")
        mac = norm
    guid = text("infiniband-guid")
    if guid:
        norm = parse_mac(guid)
        if norm is None:
            raise bad(f"infiniband-guid {quote(guid)} is not a valid InfiniBand GUID")
        guid = norm

    ips = str_list("ips") or []
    for ip in ips:
        if not valid_ip_or_cidr(ip):
            kind = "CIDR" if "/" in ip else "IP address"
            raise bad(f"ips: {quote(ip)} is not a valid {kind}")

    routes = str_list("default-route")
    if routes is not None:
        canon = []
        for gw in routes:
            ip = parse_ip(gw)
            if ip is None:
                raise bad(f"default-route: {quote(gw)} is not a valid IP address")
            canon.append(canonical_ip(ip))
        routes = canon

    device_id = text("deviceID")
    if device_id and (len(device_id) > 256 or not IFNAME_OK.fullmatch(device_id)
                      or "/" in device_id):
        raise bad(f"deviceID {quote(device_id)} is not valid (printable ASCII without '/' or "
                  "white space)")

    cni_args = raw.get("cni-args")
    if cni_args is not None:
        if not isinstance(cni_args, JSONPairs):
            raise bad(f"cni-args must be a JSON object, not JSON {json_kind(cni_args)}")
        try:
            cni_args = cni_value(cni_args)
        except (ValueError, OverflowError):
            raise bad("cni-args holds a number out of range") from None

    port_mappings = raw.get("portMappings")
    if port_mappings is not None:
        if isinstance(port_mappings, JSONPairs) or not isinstance(port_mappings, list):
            raise bad(f"portMappings must be a list of objects, not JSON "
                      f"{json_kind(port_mappings)}")
        port_mappings = tuple(_port_mapping(pm, bad) for pm in port_mappings)

    bandwidth = raw.get("bandwidth")
    if bandwidth is not None:
        bandwidth = _bandwidth(bandwidth, bad)

    return Selection(
        name=name, namespace=namespace or default_namespace, interface=interface or None,
        ips=tuple(ips), mac=mac or None, default_route=tuple(routes or ()),
        cni_args=cni_args, port_mappings=port_mappings, bandwidth=bandwidth,
        device_id=device_id or None, infiniband_guid=guid or None,
        default_route_set=routes is not None, ignored_keys=tuple(ignored))


def _port_mapping(obj, bad) -> JSONObject:
    if not isinstance(obj, JSONPairs):
        raise bad(f"portMappings entries must be objects, not JSON {json_kind(obj)}")
    raw, _ = fold_fields(obj, _PORTMAP_FIELDS)
    ports = []
    for key in ("hostPort", "containerPort"):
        v = raw.get(key)
        v = 0 if v is None else v
        if not is_go_int(v) or not 1 <= v <= 65535:
            raise bad(f"portMappings: {key} must be an integer 1..65535, not {short_json(v)}")
        ports.append(v)
    strs = []
    for key in ("protocol", "hostIP"):
        v = raw.get(key)
        v = "" if v is None else v
        if not isinstance(v, str):
            raise bad(f"portMappings: {key} must be a string, not JSON {json_kind(v)}")
        strs.append(v)
    protocol, host_ip = strs
    if protocol.lower() not in _PROTOCOLS:
        raise bad(f"portMappings: protocol {quote(protocol)} is not tcp, udp or sctp")
    if host_ip and parse_ip(host_ip) is None:
        raise bad(f"portMappings: hostIP {quote(host_ip)} is not a valid IP address")
    out = {"hostPort": ports[0], "containerPort": ports[1]}
    if protocol:
        out["protocol"] = protocol
    if host_ip:
        out["hostIP"] = host_ip
    return JSONObject(out)


def _bandwidth(obj, bad) -> JSONObject:
    if not isinstance(obj, JSONPairs):
        raise bad(f"bandwidth must be a JSON object, not JSON {json_kind(obj)}")
    raw, _ = fold_fields(obj, _BANDWIDTH_FIELDS)
    out = {}
    for key in ("ingressRate", "ingressBurst", "egressRate", "egressBurst"):
        v = raw.get(key)
        v = 0 if v is None else v
        if not is_go_int(v) or v < 0:
            raise bad(f"bandwidth: {key} must be a non-negative integer, not {short_json(v)}")
        out[key] = v
    return JSONObject(out)



def _parse(value: str, default_namespace: str, annot: str) -> list[Selection]:
    size = len(value)
    if size > MAX_ANNOTATION_BYTES or len(value.encode("utf-8", "surrogatepass")) > MAX_ANNOTATION_BYTES:
        raise fail(annot, "annotation", f"larger than {MAX_ANNOTATION_BYTES} bytes")
    if any(c in value for c in '[{"'):  # Multus's test for the JSON form
        try:
            doc = go_loads(value)
        except RecursionError:
            raise fail(annot, "annotation", "invalid JSON: nested too deeply") from None
        except ValueError as e:  # JSONDecodeError, NaN/Infinity, over-long integers
            raise fail(annot, "annotation", f"invalid JSON: {e}") from None
        if isinstance(doc, JSONPairs) or not isinstance(doc, list):
            raise fail(annot, "annotation", "the JSON form must be a list of objects, "
                        f"e.g. [{{\"name\": \"my-net\"}}] (got JSON {json_kind(doc)})")
        if len(doc) > MAX_ATTACHMENTS:
            raise fail(annot, "annotation",
                        f"more than {MAX_ATTACHMENTS} networks ({len(doc)})")
        try:
            out = [_parse_element(i, obj, default_namespace, annot) for i, obj in enumerate(doc)]
        except RecursionError:
            raise fail(annot, "annotation", "cni-args nested too deeply") from None
    else:
        items = value.split(",")
        if len(items) > MAX_ATTACHMENTS:
            raise fail(annot, "annotation", f"more than {MAX_ATTACHMENTS} networks ({len(items)})")
        out = [_parse_item(i, item, default_namespace, annot) for i, item in enumerate(items)]
    seen: dict[str, str] = {}
    for sel in out:
        if sel.interface is not None:
            if sel.interface in seen:
                raise fail(annot, quote(sel.key), f"interface name {quote(sel.interface)} is "
                            f"requested twice (also by {seen[sel.interface]})")
            seen[sel.interface] = quote(sel.key)
    return out


def parse_networks(value: str | None, default_namespace: str) -> list[Selection]:
    """Parse `k8s.v1.cni.cncf.io/networks`. `default_namespace` is the pod's namespace.
    An absent or empty annotation is no networks (Multus GetPodNetwork); "[]" too."""
    if not value:
        return []
    return _parse(value, default_namespace, NETWORKS_ANNOTATION)


def parse_default_network(value: str, default_namespace: str) -> Selection:
    """Parse `v1.multus-cni.io/default-network` (Multus tryLoadK8sPodDefaultNetwork): the same
    syntax, exactly one network. Call it only when the annotation is present: present but empty
    is an error in Multus too.

    `default_namespace` must be Multus's `multusNamespace` (default "kube-system"), NOT the pod's:
    Multus resolves the pod's default network there, and does not apply namespace isolation to
    it. An `@ifname` / `interface` is kept: Multus's getIfname prefers the requested name even for
    the master plugin, so the pod's primary interface gets that name instead of CNI_IFNAME.
    Of the JSON fields, Multus honours `interface`, `cni-args` and `default-route` for the default
    network and ignores the runtime-config ones (`ips`, `mac`, `infiniband-guid`, `portMappings`,
    `bandwidth`, `deviceID`: mergeCNIRuntimeConfig skips the master plugin); they are parsed and
    validated here and left to the caller to ignore.
    """
    if not value:
        raise fail(DEFAULT_NETWORK_ANNOTATION, "annotation", "empty value (name one network)")
    nets = _parse(value, default_namespace, DEFAULT_NETWORK_ANNOTATION)
    if not nets:  # "[]": Multus indexes networks[0] and panics
        raise fail(DEFAULT_NETWORK_ANNOTATION, "annotation", "no network given (name one network)")
    if len(nets) > 1:
        raise fail(DEFAULT_NETWORK_ANNOTATION, "annotation",
                    f"more than one default network is specified ({len(nets)})")
    return nets[0]


# ---------------------------------------------------------------------------------------------
# Gateways and interface names


def _routes(selections: Iterable[Selection | None]) -> Iterator[tuple[Selection, str]]:
    for sel in selections:
        if sel is not None and sel.default_route:
            for gw in sel.default_route:
                yield sel, gw


def check_gateways(selections: Iterable[Selection | None]) -> None:
    """Multus CheckGatewayConfig: across all attachments (pass the default network's selection
    too, when the pod replaced it), at most one IPv4 and one IPv6 default-route gateway. An
    IPv4-mapped IPv6 gateway counts as IPv4 (Go's To4). `None` items (delegates with no
    selection, e.g. the cluster default network from the config) are skipped."""
    v4: list[str] = []
    v6: list[str] = []
    for sel, gw in _routes(selections):
        (v4 if is_v4(gw) else v6).append(f"{gw} ({sel.key})")
    for family, gws in (("IPv4", v4), ("IPv6", v6)):
        if len(gws) > 1:
            raise fail(NETWORKS_ANNOTATION, "default-route",
                        f"ECMP for default-route is not supported: more than one {family} "
                        f"gateway: {', '.join(gws)}")


def gateway_filters(selections: Sequence[Selection | None]) -> list[tuple[bool, bool]]:
    """For each delegate, in order (None = a delegate without a selection, such as the cluster
    default network from the config): (remove its IPv4 default route, remove its IPv6 default
    route), as Multus decides them (TryLoadPodDelegates + CheckGatewayConfig): nothing is removed
    unless some selection has a `default-route` key; then every delegate loses its default
    route(s) except for the family its own `default-route` names, so `"default-route": []`
    strips them everywhere, itself included. Raises like `check_gateways`."""
    if not any(s is not None and s.has_default_route for s in selections):
        return [(False, False)] * len(selections)
    check_gateways(selections)
    out = []
    for sel in selections:
        drop4 = drop6 = True
        for gw in sel.default_route if sel is not None else ():
            if is_v4(gw):
                drop4 = False
            else:
                drop6 = False
        out.append((drop4, drop6))
    return out


def assign_interfaces(selections: Sequence[Selection], first_index: int = 1, *,
                      reserved: Iterable[str] = ()) -> list[str]:
    """The pod interface name of each attachment, as Multus's getIfname gives them: the
    requested `interface` when set, else `net<N>` where N is the delegate's position in Multus's
    delegate list. Position 0 is the cluster default network and positions 1..k the config's
    `defaultNetworks` (not added for pods in `systemNamespaces`), so pass
    first_index = 1 + k; N counts EVERY attachment, including those with an explicit name
    ("a@foo,b" gives foo, net2).

    `selections` may hold placeholders for the config's defaultNetworks (anything with an
    `interface` attribute, None). `reserved` are names already taken in the pod (the default
    network's CNI_IFNAME); "lo" always is. A clash (explicit name equal to a generated or reserved one) is an error here; Multus
    fails only when it creates the second link (validateIfName), after adding the earlier ones."""
    taken = {"lo": "the loopback interface"}
    for name in reserved:
        taken[name] = "the default network"
    names = []
    for pos, sel in enumerate(selections, first_index):
        ifname = getattr(sel, "interface", None) or f"net{pos}"
        key = getattr(sel, "key", None)
        who = f"{quote(key)} (position {pos})" if key else f"the network at position {pos}"
        if ifname in taken:
            raise fail(NETWORKS_ANNOTATION, quote(key) if key else f"position {pos}",
                        f"interface name {quote(ifname)} is already used by {taken[ifname]}")
        taken[ifname] = who
        names.append(ifname)
    return names




__all__ = [
    "DEFAULT_NETWORK_ANNOTATION",
    "MAX_ANNOTATION_BYTES",
    "MAX_ATTACHMENTS",
    "NETWORKS_ANNOTATION",
    "SRIOV_TXRATE_ANNOTATION",
    "SRIOV_VLAN_ANNOTATION",
    "AnnotationError",
    "JSONObject",
    "Selection",
    "assign_interfaces",
    "check_gateways",
    "gateway_filters",
    "override_for",
    "parse_default_network",
    "parse_networks",
    "parse_override",
]
