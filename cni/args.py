"""CNI_ARGS: `K=V;K2=V2` pairs in any order (libcni / kubelet / podman all differ in order)."""
from .errors import INVALID_ENV, CNIError

MAX_LEN = 64 * 1024


def parse_cni_args(raw: str | None) -> dict[str, str]:
    """Parse CNI_ARGS. An empty string is no args; a pair without '=' is an error (as Go's
    types.LoadArgs). Later duplicates win, matching libcni's map semantics."""
    out: dict[str, str] = {}
    if not raw:
        return out
    if len(raw) > MAX_LEN:
        raise CNIError(INVALID_ENV, "CNI_ARGS too long", f"{len(raw)} bytes > {MAX_LEN}")
    for pair in raw.split(";"):
        if not pair:
            continue
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise CNIError(INVALID_ENV, f"invalid CNI_ARGS pair {pair[:80]!r}", "expected KEY=VALUE")
        out[key] = value
    return out


def ignore_unknown(args: dict[str, str]) -> bool:
    """`IgnoreUnknown` as Go's types.UnmarshallableBool reads it: 1/true (any case) or 0/false."""
    v = args.get("IgnoreUnknown")
    if v is None:
        return False
    if v.lower() in ("1", "true"):
        return True
    if v.lower() in ("0", "false"):
        return False
    raise CNIError(INVALID_ENV, f"invalid CNI_ARGS IgnoreUnknown={v[:20]!r}", "expected 1, 0, true or false")


def require_known(args: dict[str, str], known) -> None:
    """Refuse keys a plugin does not know unless IgnoreUnknown is set, as Go's types.LoadArgs
    (containernetworking/cni pkg/types/args.go): "ARGS: unknown args [...]"."""
    unknown = sorted(k for k in args if k not in known and k != "IgnoreUnknown")
    if unknown and not ignore_unknown(args):
        raise CNIError(INVALID_ENV, f"ARGS: unknown args {unknown}",
                       "add IgnoreUnknown=1 to CNI_ARGS to pass arguments this plugin does not use")
