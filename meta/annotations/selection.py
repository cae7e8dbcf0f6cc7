"""What parsing a pod's network-selection annotations gives (meta/annotations/parse.py): `Selection`,
one Multus NetworkSelectionElement (multus-cni pkg/types/types.go), validated, and `JSONObject`,
the read-only, hashable JSON object its free-form parts (`cni-args`, `portMappings`,
`bandwidth`) are kept in. Stdlib only."""
from __future__ import annotations

from collections.abc import Iterable, Mapping


class JSONObject(dict):
    """A read-only, hashable JSON object (`cni-args`, a `portMappings` entry, `bandwidth`).
    It is a dict, so json.dumps, dict(...) and ** work on it as they do on the parsed value;
    nested objects are JSONObjects and arrays are tuples (json.dumps writes them as arrays);
    the mutating methods raise TypeError. `thaw()` gives back plain dicts and lists."""

    __slots__ = ("_hash",)

    def __init__(self, items: Mapping | Iterable = ()):
        super().__init__((k, _freeze_value(v)) for k, v in dict(items).items())
        self._hash: int | None = None

    def _readonly(self, *args, **kwargs):
        raise TypeError("JSONObject is read-only (use thaw() for a mutable copy)")

    __setitem__ = __delitem__ = __ior__ = _readonly
    clear = pop = popitem = setdefault = update = _readonly

    # dict declares `__hash__ = None`; this dict is read-only, so it may be hashed
    def __hash__(self) -> int:  # type: ignore[override]
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

    Read-only and hashable; equality, hash and repr as the frozen dataclass it was (fields in
    this order, `ignored_keys` not compared): a plain class keeps `dataclasses` (and `inspect`,
    `ast`, ...: ~6 ms of an exec'd call) off the plugin call's import path.
    """

    __slots__ = ("name", "namespace", "interface", "ips", "mac", "default_route", "cni_args", "port_mappings",
                 "bandwidth", "device_id", "infiniband_guid", "default_route_set", "ignored_keys")
    name: str
    namespace: str
    interface: str | None
    ips: tuple[str, ...]
    mac: str | None
    default_route: tuple[str, ...]
    cni_args: JSONObject | None
    port_mappings: tuple[JSONObject, ...] | None
    bandwidth: JSONObject | None
    device_id: str | None
    infiniband_guid: str | None
    default_route_set: bool
    ignored_keys: tuple[str, ...]

    def __init__(self, name: str, namespace: str, interface: str | None = None, ips: tuple[str, ...] = (),
                 mac: str | None = None, default_route: tuple[str, ...] = (), cni_args: JSONObject | None = None,
                 port_mappings: tuple[JSONObject, ...] | None = None, bandwidth: JSONObject | None = None,
                 device_id: str | None = None, infiniband_guid: str | None = None, default_route_set: bool = False,
                 ignored_keys: tuple[str, ...] = ()) -> None:
        for k, v in (("name", name), ("namespace", namespace), ("interface", interface), ("ips", ips), ("mac", mac),
                     ("default_route", default_route), ("cni_args", cni_args), ("port_mappings", port_mappings),
                     ("bandwidth", bandwidth), ("device_id", device_id), ("infiniband_guid", infiniband_guid),
                     ("default_route_set", default_route_set), ("ignored_keys", ignored_keys)):
            object.__setattr__(self, k, v)

    def __setattr__(self, name: str, value) -> None:
        raise AttributeError(f"Selection is read-only: cannot set {name}")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"Selection is read-only: cannot delete {name}")

    def _compared(self) -> tuple:
        return tuple(getattr(self, k) for k in self.__slots__[:-1])   # not ignored_keys

    def __eq__(self, other) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        return self._compared() == other._compared()

    def __hash__(self) -> int:
        return hash(self._compared())

    def __repr__(self) -> str:
        return f"Selection({', '.join(f'{k}={getattr(self, k)!r}' for k in self.__slots__)})"

    def __reduce__(self):
        return (Selection, tuple(getattr(self, k) for k in self.__slots__))

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



__all__ = ["JSONObject", "Selection"]
