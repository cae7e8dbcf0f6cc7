"""Pod network-selection annotations, parsed with Multus's semantics.

`k8s.v1.cni.cncf.io/networks` (the attachments), `v1.multus-cni.io/default-network` (replace the
cluster default network) and our own per-pod SR-IOV overrides (`networks-sriov-vlan`,
`networks-sriov-txrate`). Pure functions, stdlib only: this runs on every ADD.

What Multus does, and where it comes from (multus-cni pkg/k8sclient/k8sclient.go, pkg/types):
- JSON or comma list: the value is JSON when it contains any of `[`, `{`, `"`
  (parsePodNetworkAnnotation); otherwise a comma list of `[namespace/]name[@ifname]`, each item and
  each part trimmed of (Go) white space, at most one '/' and one '@', namespace and name matching
  the DNS-1123 label pattern, interface name at most 15 bytes with no '/' or white space
  (parsePodNetworkObjectName). "[]" is no networks.
- JSON elements are NetworkSelectionElement objects (pkg/types/types.go); keys are matched as Go's
  encoding/json does (exact name first, else case-insensitively; the last duplicate wins; unknown
  keys are ignored, we report them in `Selection.ignored_keys` so the caller can log them);
  a JSON `null` value is the same as an absent key; a value of the wrong JSON type is an error.
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

import ipaddress
import json
import math
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field

NETWORKS_ANNOTATION = "k8s.v1.cni.cncf.io/networks"
DEFAULT_NETWORK_ANNOTATION = "v1.multus-cni.io/default-network"
SRIOV_VLAN_ANNOTATION = "networks-sriov-vlan"
SRIOV_TXRATE_ANNOTATION = "networks-sriov-txrate"

MAX_ANNOTATION_BYTES = 64 * 1024
MAX_ATTACHMENTS = 64
IFNAMSIZ = 16  # the kernel's, including the NUL: names are at most 15 bytes
_INT64_MAX = 2**63 - 1

# Go's unicode.IsSpace, which strings.TrimSpace uses (Python's str.strip also strips \x1c-\x1f).
_GO_SPACE = ("\t\n\v\f\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008"
             "\u2009\u200a\u2028\u2029\u202f\u205f\u3000")
_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_IFNAME_OK = re.compile(r"[!-~]+")  # printable ASCII without space
_HEX = frozenset("0123456789abcdefABCDEF")
_SURROGATE = re.compile("[\ud800-\udfff]")
_PROTOCOLS = frozenset(("", "tcp", "udp", "sctp"))


class AnnotationError(ValueError):
    """A pod annotation that cannot be honoured; the message names the annotation, the item and
    the rule: `failed to parse <annotation>: <item>: <rule>`."""


def _q(text: str, limit: int = 80) -> str:
    """Quote untrusted text for a message: JSON-escaped (no control characters), truncated."""
    if len(text) > limit:
        text = text[:limit] + "..."
    return json.dumps(text)


def _fail(annot: str, where: str, rule: str) -> AnnotationError:
    return AnnotationError(f"failed to parse {annot}: {where}: {rule}")


# ---------------------------------------------------------------------------------------------
# Value types


class JSONObject(dict):
    """A read-only, hashable JSON object (`cni-args`, a `portMappings` entry, `bandwidth`).
    It is a dict, so json.dumps, dict(...) and ** work on it as they do on the parsed value;
    nested objects are JSONObjects and arrays are tuples (json.dumps writes them as arrays);
    the mutating methods raise TypeError. `thaw()` gives back plain dicts and lists."""

    __slots__ = ("_hash",)

    def __init__(self, items: Mapping | Iterable = ()):
        super().__init__((k, _freeze_value(v)) for k, v in dict(items).items())
        self._hash = None

    def _readonly(self, *args, **kwargs):
        raise TypeError("JSONObject is read-only (use thaw() for a mutable copy)")

    __setitem__ = __delitem__ = __ior__ = _readonly
    clear = pop = popitem = setdefault = update = _readonly

    def __hash__(self) -> int:
        if self._hash is None:
            self._hash = hash(frozenset(self.items()))
        return self._hash

    def __repr__(self) -> str:
        return f"JSONObject({dict.__repr__(self)})"

    def __reduce__(self):
        return (JSONObject, (dict(self),))

    def thaw(self) -> dict:
        return {k: _thaw_value(v) for k, v in self.items()}


def _freeze_value(v):
    if isinstance(v, dict) and not isinstance(v, JSONObject):
        return JSONObject(v)
    if isinstance(v, (list, tuple)):
        return tuple(_freeze_value(x) for x in v)
    return v


def _thaw_value(v):
    if isinstance(v, JSONObject):
        return v.thaw()
    if isinstance(v, tuple):
        return [_thaw_value(x) for x in v]
    return v


@dataclass(frozen=True, slots=True)
class Selection:
    """One selected network (Multus NetworkSelectionElement), validated.

    `default_route` holds canonical IP strings (an IPv4-mapped IPv6 address is written as IPv4,
    as Go's net.IP does); `default_route_set` is True when the `default-route` key was present,
    even as `[]`: Multus treats that differently from an absent key (any `default-route` makes
    it strip the default routes of the attachments that do not claim one; see
    `gateway_filters`). `port_mappings` (JSONObjects with hostPort, containerPort and, when
    given, protocol and hostIP) and `bandwidth` (a JSONObject with ingressRate, ingressBurst,
    egressRate, egressBurst; a missing one is 0 as in Go) are None when absent: Multus then
    passes the runtime's own pod-level values on to the delegate, while `[]` overrides them with
    nothing. Both are already in the CNI capability (runtimeConfig) format.
    `ips` are kept as written (Multus passes the strings through); `mac` and `infiniband_guid`
    are normalised to lower-case colon form. `ignored_keys` lists JSON keys Multus ignores too
    (not compared, not written back by `to_dict`).
    """
    name: str
    namespace: str
    interface: str | None = None
    ips: tuple[str, ...] = ()
    mac: str | None = None
    default_route: tuple[str, ...] = ()
    cni_args: JSONObject | None = None
    port_mappings: tuple[JSONObject, ...] | None = None
    bandwidth: JSONObject | None = None
    device_id: str | None = None
    infiniband_guid: str | None = None
    default_route_set: bool = False
    ignored_keys: tuple[str, ...] = field(default=(), compare=False)

    @property
    def key(self) -> str:
        """`namespace/name`, the NAD reference (and Multus's delegate name)."""
        return f"{self.namespace}/{self.name}"

    @property
    def has_default_route(self) -> bool:
        """The `default-route` key was given (possibly empty)."""
        return self.default_route_set or bool(self.default_route)

    def to_dict(self) -> dict:
        """The element in Multus's JSON field names (for the DEL cache and logs);
        `parse_networks(json.dumps([s.to_dict(), ...]), ns)` gives the selections back."""
        d: dict = {"name": self.name, "namespace": self.namespace}
        if self.interface:
            d["interface"] = self.interface
        if self.ips:
            d["ips"] = list(self.ips)
        if self.mac:
            d["mac"] = self.mac
        if self.infiniband_guid:
            d["infiniband-guid"] = self.infiniband_guid
        if self.port_mappings is not None:
            d["portMappings"] = [p.thaw() for p in self.port_mappings]
        if self.bandwidth is not None:
            d["bandwidth"] = self.bandwidth.thaw()
        if self.device_id:
            d["deviceID"] = self.device_id
        if self.cni_args is not None:
            d["cni-args"] = self.cni_args.thaw()
        if self.has_default_route:
            d["default-route"] = list(self.default_route)
        return d


# ---------------------------------------------------------------------------------------------
# Field validators (each returns the value to store, or raises through `bad(rule)`)


def _check_namespace(ns: str) -> str | None:
    if len(ns) > 63 or not _LABEL.fullmatch(ns):
        return (f"namespace {_q(ns)} is not a valid namespace (a DNS-1123 label: at most 63 "
                "lower-case alphanumerics or '-', starting and ending with an alphanumeric)")
    return None


def _check_ifname(name: str) -> str | None:
    """Multus (parsePodNetworkObjectName): at most IFNAMSIZ-1 bytes, no '/' or white space.
    Stricter, as the kernel's dev_valid_name plus ASCII: no ':', not "." / "..", printable."""
    if len(name.encode("utf-8", "surrogatepass")) > IFNAMSIZ - 1:
        return f"interface name {_q(name)} is longer than {IFNAMSIZ - 1} bytes"
    if not _IFNAME_OK.fullmatch(name) or "/" in name or ":" in name or name in (".", ".."):
        return (f"interface name {_q(name)} is not valid (printable ASCII without '/', ':' or "
                "white space, not '.' or '..')")
    return None


def _parse_ip(text: str):
    """Go's net.ParseIP: IPv4 dotted quad or IPv6, no zone. None when invalid."""
    if not text or "%" in text or not text.isascii():
        return None
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def _valid_ip_or_cidr(text: str) -> bool:
    """Multus: a CIDR (Go's net.ParseCIDR: address, '/', decimal prefix up to the address
    length; host bits allowed) when the text contains '/', else a plain IP."""
    if "/" not in text:
        return _parse_ip(text) is not None
    addr, _, prefix = text.partition("/")
    ip = _parse_ip(addr)
    if ip is None or not prefix or not prefix.isascii() or not prefix.isdigit():
        return False
    prefix = prefix.lstrip("0") or "0"  # Go's dtoi takes leading zeros
    return len(prefix) <= 3 and int(prefix) <= ip.max_prefixlen


def _canonical_ip(ip) -> str:
    mapped = getattr(ip, "ipv4_mapped", None)
    return str(mapped if mapped is not None else ip)


def _is_v4(text: str) -> bool:
    """Go's `gw.To4() != nil`: IPv4, or IPv4-mapped IPv6."""
    ip = ipaddress.ip_address(text)
    return ip.version == 4 or ip.ipv4_mapped is not None


def _parse_mac(s: str) -> str | None:
    """Go's net.ParseMAC (6, 8 or 20 bytes; xx:xx.., xx-xx.. or xxxx.xxxx.. forms), normalised
    to lower-case colon form. None when invalid."""
    n = len(s)
    if n < 14 or not s.isascii():
        return None
    out = []
    if s[2] in ":-":
        if (n + 1) % 3:
            return None
        count = (n + 1) // 3
        if count not in (6, 8, 20):
            return None
        sep = s[2]
        for i in range(count):
            x = 3 * i
            pair = s[x:x + 2]
            if len(pair) != 2 or not _HEX.issuperset(pair):
                return None
            if i < count - 1 and s[x + 2] != sep:
                return None
            out.append(pair.lower())
    elif s[4] == ".":
        if (n + 1) % 5:
            return None
        count = 2 * (n + 1) // 5
        if count not in (6, 8, 20):
            return None
        for g in range(count // 2):
            x = 5 * g
            quad = s[x:x + 4]
            if len(quad) != 4 or not _HEX.issuperset(quad):
                return None
            if g < count // 2 - 1 and s[x + 4] != ".":
                return None
            out += [quad[:2].lower(), quad[2:].lower()]
    else:
        return None
    return ":".join(out)


# ---------------------------------------------------------------------------------------------
# JSON decoding with Go's encoding/json rules


class _Obj(list):
    """A JSON object as its (key, value) pairs, in document order (json object_pairs_hook)."""


def _no_constant(name: str):
    raise ValueError(f"invalid JSON literal {name}")


def _loads(text: str):
    """json.loads as Go's decoder: objects kept as ordered pairs, NaN/Infinity refused."""
    return json.loads(text, object_pairs_hook=_Obj, parse_constant=_no_constant)


def _fold(key: str) -> str | None:
    """Go's encoding/json matches a key to a field name case-insensitively (bytes.EqualFold,
    simple Unicode folding). Our field names are ASCII, and the only non-ASCII runes that fold
    to ASCII letters are KELVIN SIGN (k) and LATIN SMALL LONG S (s)."""
    if not key.isascii():
        key = key.replace("\u212a", "k").replace("\u017f", "s")
        if not key.isascii():
            return None
    return key.lower()


_ELEMENT_FIELDS = {f.lower(): f for f in (
    "name", "namespace", "ips", "mac", "infiniband-guid", "interface", "interfaceRequest",
    "portMappings", "bandwidth", "deviceID", "cni-args", "default-route")}
_PORTMAP_FIELDS = {f.lower(): f for f in ("hostPort", "containerPort", "protocol", "hostIP")}
_BANDWIDTH_FIELDS = {f.lower(): f for f in ("ingressRate", "ingressBurst", "egressRate",
                                            "egressBurst")}


def _fields(pairs: _Obj, table: dict) -> tuple[dict, list]:
    """Map an object's keys onto a Go struct's fields: the last duplicate wins; unknown keys are
    returned separately (Go ignores them)."""
    out: dict = {}
    unknown: list = []
    for k, v in pairs:
        f = _fold(k)
        f = table.get(f) if f is not None else None
        if f is None:
            unknown.append(k)
        else:
            out[f] = v
    return out, unknown


def _go_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and -2**63 <= v <= _INT64_MAX


def _cni_value(v):
    """One value of `cni-args` (Go: interface{}): frozen; lone surrogates become U+FFFD as Go's
    decoder does; a number beyond float64 is refused as Go refuses it."""
    if isinstance(v, _Obj):
        return JSONObject({_fix_str(k): _cni_value(x) for k, x in v})
    if isinstance(v, list):
        return tuple(_cni_value(x) for x in v)
    if isinstance(v, str):
        return _fix_str(v)
    if isinstance(v, float):
        if not math.isfinite(v):  # 1e400 parses as inf in Python, Go refuses it
            raise ValueError("number out of range")
    elif isinstance(v, int) and not isinstance(v, bool):
        float(v)  # OverflowError beyond float64, as Go's ParseFloat
    return v


def _fix_str(s: str) -> str:
    return _SURROGATE.sub("\ufffd", s) if _SURROGATE.search(s) else s


# ---------------------------------------------------------------------------------------------
# The networks annotation


def _parse_item(index: int, item: str, default_namespace: str, annot: str) -> Selection:
    """One comma-form item: [namespace/]name[@ifname] (Multus parsePodNetworkObjectName)."""
    item = item.strip(_GO_SPACE)
    where = _q(item) if item else f"item {index} (empty)"

    def bad(rule: str) -> AnnotationError:
        return _fail(annot, where, rule)

    parts = item.split("/")
    if len(parts) > 2:
        raise bad("more than one '/' (expected [namespace/]name[@interface])")
    namespace = parts[0].strip(_GO_SPACE) if len(parts) == 2 else ""
    at = parts[-1].split("@")
    if len(at) > 2:
        raise bad("more than one '@' (expected [namespace/]name[@interface])")
    name = at[0].strip(_GO_SPACE)
    ifname = at[1].strip(_GO_SPACE) if len(at) == 2 else ""
    if namespace:  # "/name" keeps an empty namespace, which defaults (as in Multus)
        problem = _check_namespace(namespace)
        if problem:
            raise bad(problem)
    if not name:
        raise bad("empty network name (from ',,', a leading or trailing ',', or 'namespace/')")
    if len(name) > 253 or not _LABEL.fullmatch(name):
        raise bad(f"network name {_q(name)} is not valid (lower-case alphanumerics or '-', "
                  "starting and ending with an alphanumeric; at most 253 characters)")
    if ifname:  # "name@" means no interface request, as in Multus
        problem = _check_ifname(ifname)
        if problem:
            raise bad(problem)
    return Selection(name=name, namespace=namespace or default_namespace, interface=ifname or None)


def _parse_element(index: int, obj, default_namespace: str, annot: str) -> Selection:
    """One JSON-form element (Multus NetworkSelectionElement + parsePodNetworkAnnotation)."""
    where = f"element {index}"
    if not isinstance(obj, _Obj):
        raise _fail(annot, where, "must be a JSON object (got JSON "
                    f"{_json_kind(obj)}), e.g. {{\"name\": \"my-net\"}}")
    raw, ignored = _fields(obj, _ELEMENT_FIELDS)
    name = raw.get("name")
    if isinstance(name, str) and name:
        where = f"element {index} ({_q(name)})"

    def bad(rule: str) -> AnnotationError:
        return _fail(annot, where, rule)

    def text(key: str) -> str:
        v = raw.get(key)
        if v is None:  # Go: null leaves the string empty
            return ""
        if not isinstance(v, str):
            raise bad(f"{key} must be a string, not JSON {_json_kind(v)}")
        return v

    def str_list(key: str) -> list | None:
        v = raw.get(key)
        if v is None:
            return None
        if isinstance(v, _Obj) or not isinstance(v, list):
            raise bad(f"{key} must be a list of strings, not JSON {_json_kind(v)}")
        out = []
        for x in v:
            if x is None:
                x = ""  # Go: null into a string element leaves it empty
            elif not isinstance(x, str):
                raise bad(f"{key} must be a list of strings (found JSON {_json_kind(x)})")
            out.append(x)
        return out

    name = text("name")
    if not name:
        raise bad("name is required")
    if len(name) > 253 or not _SUBDOMAIN.fullmatch(name):
        raise bad(f"name {_q(name)} is not a valid network name (a DNS-1123 subdomain: at most "
                  "253 lower-case alphanumerics, '-' or '.', each part starting and ending with an "
                  "alphanumeric)")
    namespace = text("namespace")
    if namespace:
        problem = _check_namespace(namespace)
        if problem:
            raise bad(problem)

    interface = text("interface")
    if not interface:  # deprecated alias, only when "interface" is empty (as Multus)
        interface = text("interfaceRequest")
    if interface:
        problem = _check_ifname(interface)
        if problem:
            raise bad(problem)

    mac = text("mac")
    if mac:
        norm = _parse_mac(mac)
        if norm is None:
            raise bad(f"mac {_q(mac)} is not a valid MAC address")
        mac = norm
    guid = text("infiniband-guid")
    if guid:
        norm = _parse_mac(guid)
        if norm is None:
            raise bad(f"infiniband-guid {_q(guid)} is not a valid InfiniBand GUID")
        guid = norm

    ips = str_list("ips") or []
    for ip in ips:
        if not _valid_ip_or_cidr(ip):
            kind = "CIDR" if "/" in ip else "IP address"
            raise bad(f"ips: {_q(ip)} is not a valid {kind}")

    routes = str_list("default-route")
    if routes is not None:
        canon = []
        for gw in routes:
            ip = _parse_ip(gw)
            if ip is None:
                raise bad(f"default-route: {_q(gw)} is not a valid IP address")
            canon.append(_canonical_ip(ip))
        routes = canon

    device_id = text("deviceID")
    if device_id and (len(device_id) > 256 or not _IFNAME_OK.fullmatch(device_id)
                      or "/" in device_id):
        raise bad(f"deviceID {_q(device_id)} is not valid (printable ASCII without '/' or "
                  "white space)")

    cni_args = raw.get("cni-args")
    if cni_args is not None:
        if not isinstance(cni_args, _Obj):
            raise bad(f"cni-args must be a JSON object, not JSON {_json_kind(cni_args)}")
        try:
            cni_args = _cni_value(cni_args)
        except (ValueError, OverflowError):
            raise bad("cni-args holds a number out of range") from None

    port_mappings = raw.get("portMappings")
    if port_mappings is not None:
        if isinstance(port_mappings, _Obj) or not isinstance(port_mappings, list):
            raise bad(f"portMappings must be a list of objects, not JSON "
                      f"{_json_kind(port_mappings)}")
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
    if not isinstance(obj, _Obj):
        raise bad(f"portMappings entries must be objects, not JSON {_json_kind(obj)}")
    raw, _ = _fields(obj, _PORTMAP_FIELDS)
    ports = []
    for key in ("hostPort", "containerPort"):
        v = raw.get(key)
        v = 0 if v is None else v
        if not _go_int(v) or not 1 <= v <= 65535:
            raise bad(f"portMappings: {key} must be an integer 1..65535, not {_short_json(v)}")
        ports.append(v)
    strs = []
    for key in ("protocol", "hostIP"):
        v = raw.get(key)
        v = "" if v is None else v
        if not isinstance(v, str):
            raise bad(f"portMappings: {key} must be a string, not JSON {_json_kind(v)}")
        strs.append(v)
    protocol, host_ip = strs
    if protocol.lower() not in _PROTOCOLS:
        raise bad(f"portMappings: protocol {_q(protocol)} is not tcp, udp or sctp")
    if host_ip and _parse_ip(host_ip) is None:
        raise bad(f"portMappings: hostIP {_q(host_ip)} is not a valid IP address")
    out = {"hostPort": ports[0], "containerPort": ports[1]}
    if protocol:
        out["protocol"] = protocol
    if host_ip:
        out["hostIP"] = host_ip
    return JSONObject(out)


def _bandwidth(obj, bad) -> JSONObject:
    if not isinstance(obj, _Obj):
        raise bad(f"bandwidth must be a JSON object, not JSON {_json_kind(obj)}")
    raw, _ = _fields(obj, _BANDWIDTH_FIELDS)
    out = {}
    for key in ("ingressRate", "ingressBurst", "egressRate", "egressBurst"):
        v = raw.get(key)
        v = 0 if v is None else v
        if not _go_int(v) or v < 0:
            raise bad(f"bandwidth: {key} must be a non-negative integer, not {_short_json(v)}")
        out[key] = v
    return JSONObject(out)


def _json_kind(v) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "boolean"
    if isinstance(v, (int, float)):
        return "number"
    if isinstance(v, str):
        return "string"
    if isinstance(v, _Obj):
        return "object"
    return "array"


def _short_json(v) -> str:
    """A JSON value, shown briefly in a message."""
    if v is None or isinstance(v, bool):
        return json.dumps(v)
    if isinstance(v, (int, float)):
        return _q(repr(v), 40)[1:-1]
    if isinstance(v, str):
        return _q(v, 40)
    return f"a JSON {_json_kind(v)}"


def _parse(value: str, default_namespace: str, annot: str) -> list[Selection]:
    size = len(value)
    if size > MAX_ANNOTATION_BYTES or len(value.encode("utf-8", "surrogatepass")) > MAX_ANNOTATION_BYTES:
        raise _fail(annot, "annotation", f"larger than {MAX_ANNOTATION_BYTES} bytes")
    if any(c in value for c in '[{"'):  # Multus's test for the JSON form
        try:
            doc = _loads(value)
        except RecursionError:
            raise _fail(annot, "annotation", "invalid JSON: nested too deeply") from None
        except ValueError as e:  # JSONDecodeError, NaN/Infinity, over-long integers
            raise _fail(annot, "annotation", f"invalid JSON: {e}") from None
        if isinstance(doc, _Obj) or not isinstance(doc, list):
            raise _fail(annot, "annotation", "the JSON form must be a list of objects, "
                        f"e.g. [{{\"name\": \"my-net\"}}] (got JSON {_json_kind(doc)})")
        if len(doc) > MAX_ATTACHMENTS:
            raise _fail(annot, "annotation",
                        f"more than {MAX_ATTACHMENTS} networks ({len(doc)})")
        try:
            out = [_parse_element(i, obj, default_namespace, annot) for i, obj in enumerate(doc)]
        except RecursionError:
            raise _fail(annot, "annotation", "cni-args nested too deeply") from None
    else:
        items = value.split(",")
        if len(items) > MAX_ATTACHMENTS:
            raise _fail(annot, "annotation", f"more than {MAX_ATTACHMENTS} networks ({len(items)})")
        out = [_parse_item(i, item, default_namespace, annot) for i, item in enumerate(items)]
    seen: dict[str, str] = {}
    for sel in out:
        if sel.interface is not None:
            if sel.interface in seen:
                raise _fail(annot, _q(sel.key), f"interface name {_q(sel.interface)} is "
                            f"requested twice (also by {seen[sel.interface]})")
            seen[sel.interface] = _q(sel.key)
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
        raise _fail(DEFAULT_NETWORK_ANNOTATION, "annotation", "empty value (name one network)")
    nets = _parse(value, default_namespace, DEFAULT_NETWORK_ANNOTATION)
    if not nets:  # "[]": Multus indexes networks[0] and panics
        raise _fail(DEFAULT_NETWORK_ANNOTATION, "annotation", "no network given (name one network)")
    if len(nets) > 1:
        raise _fail(DEFAULT_NETWORK_ANNOTATION, "annotation",
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
        (v4 if _is_v4(gw) else v6).append(f"{gw} ({sel.key})")
    for family, gws in (("IPv4", v4), ("IPv6", v6)):
        if len(gws) > 1:
            raise _fail(NETWORKS_ANNOTATION, "default-route",
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
            if _is_v4(gw):
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
        who = f"{_q(key)} (position {pos})" if key else f"the network at position {pos}"
        if ifname in taken:
            raise _fail(NETWORKS_ANNOTATION, _q(key) if key else f"position {pos}",
                        f"interface name {_q(ifname)} is already used by {taken[ifname]}")
        taken[ifname] = who
        names.append(ifname)
    return names


# ---------------------------------------------------------------------------------------------
# Our SR-IOV per-pod overrides


def _known_names(network_names: Iterable) -> set[str]:
    known: set[str] = set()
    for n in network_names:
        if isinstance(n, Selection):
            known.update((n.name, n.key))
        else:
            known.add(n)
            if "/" in n:
                known.add(n.split("/", 1)[1])
    return known


def parse_override(value: str, network_names: Iterable,
                   key: str = f"{SRIOV_VLAN_ANNOTATION} / {SRIOV_TXRATE_ANNOTATION}"
                   ) -> dict[str, int]:
    """Parse a per-pod SR-IOV override annotation (`networks-sriov-vlan`,
    `networks-sriov-txrate`; pass the annotation name as `key`, it is used in messages).

    Either a plain non-negative decimal integer, which applies to every SR-IOV attachment of the
    pod and is returned as {"*": n}, or a JSON object mapping a network (`name` or
    `namespace/name`, one of `network_names`: strings in either form, or Selections) to a
    non-negative integer. Syntax only: policy limits are applied by the caller. Use
    `override_for` to find the value for one attachment."""
    if value is None or not isinstance(value, str):
        raise _fail(key, "annotation", "must be a string")
    if len(value) > MAX_ANNOTATION_BYTES:
        raise _fail(key, "annotation", f"larger than {MAX_ANNOTATION_BYTES} bytes")
    text = value.strip(_GO_SPACE)
    where = _q(text)
    if not text:
        raise _fail(key, where, "empty value (a non-negative integer or a JSON object)")
    if text[0] != "{":
        if text.isascii() and text.isdigit():
            if len(text) > 1 and text[0] == "0":
                raise _fail(key, where, "leading zeros are not allowed")
            if len(text) > 19 or int(text) > _INT64_MAX:
                raise _fail(key, where, "integer out of range")
            return {"*": int(text)}
        if text[0] == "-" and text[1:].isascii() and text[1:].isdigit():
            raise _fail(key, where, "must not be negative")
        raise _fail(key, where, "must be a non-negative integer (for every SR-IOV network) or a "
                    'JSON object such as {"my-net": 100}')
    try:
        doc = _loads(text)
    except RecursionError:
        raise _fail(key, "annotation", "invalid JSON: nested too deeply") from None
    except ValueError as e:
        raise _fail(key, "annotation", f"invalid JSON: {e}") from None
    if not isinstance(doc, _Obj):
        raise _fail(key, where, f"must be a JSON object, not JSON {_json_kind(doc)}")
    known = _known_names(network_names)
    out: dict[str, int] = {}
    for name, v in doc:
        w = _q(name)
        if name in out:
            raise _fail(key, w, "network given twice")
        if name not in known:
            shown = ", ".join(sorted(known)) or "none"
            raise _fail(key, w, f"not one of this pod's networks ({_q(shown, 200)})")
        if isinstance(v, bool) or not isinstance(v, int):
            raise _fail(key, w, f"value must be a non-negative integer, not JSON {_json_kind(v)}"
                        + (f" {v!r}" if isinstance(v, float) else ""))
        if v < 0:
            raise _fail(key, w, f"value must not be negative ({v})")
        if v > _INT64_MAX:
            raise _fail(key, w, "value out of range")
        out[name] = v
    return out


def override_for(overrides: Mapping[str, int], selection: Selection) -> int | None:
    """The override that applies to one attachment: `namespace/name`, else `name`, else `*`."""
    for k in (selection.key, selection.name, "*"):
        if k in overrides:
            return overrides[k]
    return None


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
