"""CNI spec versions: what we speak, comparison and negotiation with a delegate.

Every version from 0.1.0 on, as libcni and Go's skel (version.All): a config without
`cniVersion` is 0.1.0 (pkg/version/conf.go ConfigDecoder.Decode); 0.1.0 and 0.2.0 results
have the legacy shape (pkg/types/020), see result.py."""
from .errors import INCOMPATIBLE_VERSION, CNIError

SUPPORTED = ("0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0")
LEGACY = ("0.1.0", "0.2.0")     # results with ip4/ip6 instead of interfaces/ips/routes
CURRENT = "1.1.0"
DEFAULT = "0.1.0"               # what a config without cniVersion speaks


def parse(v: str) -> tuple[int, int, int]:
    try:
        parts = tuple(int(p) for p in str(v).split("."))
    except ValueError:
        raise CNIError(INCOMPATIBLE_VERSION, f"invalid cniVersion {v!r}") from None
    if len(parts) != 3 or min(parts) < 0:
        raise CNIError(INCOMPATIBLE_VERSION, f"invalid cniVersion {v!r}")
    return parts     # len() narrowed it to tuple[int, int, int]


def at_least(v: str, minimum: str) -> bool:
    return parse(v) >= parse(minimum)


def is_legacy(v: str) -> bool:
    return v in LEGACY


def of_config(conf: dict) -> str:
    """The cniVersion a network config speaks: missing or empty is 0.1.0, as libcni decodes it."""
    v = conf.get("cniVersion")
    if v is None or v == "":
        return DEFAULT
    if not isinstance(v, str):
        raise CNIError(INCOMPATIBLE_VERSION, f"invalid cniVersion {str(v)[:20]!r}", "must be a string")
    return v


def require_supported(v: str) -> str:
    if v not in SUPPORTED:
        raise CNIError(INCOMPATIBLE_VERSION, f"incompatible CNI versions: config is {v!r}, "
                       f"plugin supports {list(SUPPORTED)}")
    return v


def negotiate(plugin_supported, ours=SUPPORTED) -> str:
    """Highest version both we and the delegate speak."""
    common = [v for v in ours if v in set(plugin_supported or ())]
    if not common:
        raise CNIError(INCOMPATIBLE_VERSION, "no common CNI version with delegate",
                       f"delegate supports {list(plugin_supported or [])}, we support {list(ours)}")
    return max(common, key=parse)


def version_info() -> dict:
    return {"cniVersion": CURRENT, "supportedVersions": list(SUPPORTED)}
