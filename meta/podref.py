"""The pod a CNI call is for, from CNI_ARGS (K8S_POD_NAMESPACE / K8S_POD_NAME / K8S_POD_UID).

Runtimes do not all pass Kubernetes names: podman's CNI backend passes the container's name as
K8S_POD_NAME (`laughing_bose`, `My.Box`), other tools anything they like. So any safe string is
accepted; with an API the name is looked up verbatim (URL-quoted, the API answers for it), and
without one it is only a label. What is refused (code 4) are strings that could never be a name
and could play tricks on a path or a log line: '/', '.', '..', control characters, text that is
not UTF-8, more than MAX_LEN characters. Wherever a name becomes a file name it goes through
filename(), never raw.
"""
import unicodedata

from cni.errors import INVALID_ENV, CNIError

MAX_LEN = 1024


def check(key: str, value: str) -> str:
    why = None
    if len(value) > MAX_LEN:
        why = f"longer than {MAX_LEN} characters"
    elif "/" in value or value in (".", ".."):
        why = "a name, not a path: no '/', not '.' or '..'"
    elif any(unicodedata.category(c) in ("Cc", "Cs") for c in value):
        why = "control characters or bytes that are not UTF-8"
    if why:
        raise CNIError(INVALID_ENV, f"invalid {key} {value[:64]!r}", why)
    return value


def filename(value: str) -> str:
    """A name as one safe file name: unchanged for DNS names ([a-z0-9.-]), every other byte
    %XX-escaped (so distinct names never collide), no leading dot, at most 255 bytes (a long
    one keeps a prefix and a hash of the whole)."""
    from urllib.parse import quote  # only with a statusDir: not on every plugin call's import path
    out = quote(value, safe="").replace("~", "%7E")   # '~' marks a hashed name below
    if out.startswith("."):
        out = "%2E" + out[1:]
    if len(out) > 200:
        import hashlib  # rare (a name over 200 bytes): not on every plugin call's import path
        out = out[:150] + "~" + hashlib.sha256(value.encode()).hexdigest()[:32]
    return out


class PodRef:
    def __init__(self, args: dict):
        self.namespace = args.get("K8S_POD_NAMESPACE") or None
        self.name = args.get("K8S_POD_NAME") or None
        self.uid = args.get("K8S_POD_UID") or None
        if self.namespace is not None:
            check("K8S_POD_NAMESPACE", self.namespace)
        if self.name is not None:
            check("K8S_POD_NAME", self.name)

    def to_dict(self):
        return {"namespace": self.namespace, "name": self.name, "uid": self.uid}
