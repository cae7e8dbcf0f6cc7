"""CNI_ARGS: `K=V;K2=V2` pairs in any order (libcni / kubelet / podman all differ in order)."""
from .errors import CNIError, INVALID_ENV

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
