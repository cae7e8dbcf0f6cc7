"""CNI spec versions: what we speak, comparison and negotiation with a delegate."""
from .errors import CNIError, INCOMPATIBLE_VERSION

SUPPORTED = ("0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0")
CURRENT = "1.1.0"


def parse(v: str) -> tuple[int, int, int]:
    try:
        parts = tuple(int(p) for p in str(v).split("."))
    except ValueError:
        raise CNIError(INCOMPATIBLE_VERSION, f"invalid cniVersion {v!r}") from None
    if len(parts) != 3 or min(parts) < 0:
        raise CNIError(INCOMPATIBLE_VERSION, f"invalid cniVersion {v!r}")
    return parts  # type: ignore[return-value]


def at_least(v: str, minimum: str) -> bool:
    return parse(v) >= parse(minimum)


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
