"""One CNI invocation: the CNI_* environment and the stdin network config, validated as the
spec (and Go's pkg/skel) does before a plugin sees it."""
from . import jsonlite, version
from .args import parse_cni_args
from .errors import DECODE_FAILURE, INCOMPATIBLE_VERSION, INVALID_CONFIG, INVALID_ENV, CNIError

COMMANDS = ("ADD", "DEL", "CHECK", "VERSION", "STATUS", "GC")
# Which variables each command requires (Go skel's reqForCmd table).
REQUIRED = {
    "CNI_CONTAINERID": ("ADD", "DEL", "CHECK"),
    "CNI_NETNS": ("ADD", "CHECK"),
    "CNI_IFNAME": ("ADD", "DEL", "CHECK"),
    "CNI_PATH": ("ADD", "DEL", "CHECK", "GC", "STATUS"),
}
# Minimum spec version of the config for a verb (CHECK is 0.4.0, GC/STATUS are 1.1.0).
MIN_VERSION = {"CHECK": "0.4.0", "GC": "1.1.0", "STATUS": "1.1.0"}
_ALNUM = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
_NAME_CHARS = _ALNUM | frozenset("_.-")
MAX_STDIN = 4 * 1024 * 1024


def is_plain_name(s: str) -> bool:
    """`[a-zA-Z0-9][a-zA-Z0-9_.-]*` (ASCII only), the spec's rule for container IDs and network
    names (as a regex fullmatch; str methods: no `re` import on an exec'd plugin's path)."""
    return bool(s) and s[0] in _ALNUM and _NAME_CHARS.issuperset(s)


def is_network_name(name) -> bool:
    """The spec's network name: a plain name (is_plain_name) of at most 200 characters."""
    return isinstance(name, str) and is_plain_name(name) and len(name) <= 200


def validate_ifname(name: str) -> str:
    """Linux interface name rules (dev_valid_name): 1-15 bytes, not . or .., no / : or space."""
    if not name:
        raise CNIError(INVALID_ENV, "interface name is empty")
    if len(name.encode()) > 15:
        raise CNIError(INVALID_ENV, f"interface name {name[:32]!r} is longer than 15 characters")
    if name in (".", ".."):
        raise CNIError(INVALID_ENV, f"interface name {name!r} is not allowed")
    if any(c in name for c in "/:") or any(c.isspace() for c in name):
        raise CNIError(INVALID_ENV, f"interface name {name!r} contains '/', ':' or whitespace")
    return name


def validate_container_id(cid: str) -> str:
    # 192: state files are named <containerID>-<ifname>.json and a name may not exceed 255 bytes
    if not is_plain_name(cid) or len(cid) > 192:
        raise CNIError(INVALID_ENV, f"invalid container ID {cid[:80]!r}",
                       "must match [a-zA-Z0-9][a-zA-Z0-9_.-]*")
    return cid


class Request:
    """One validated call: the CNI_* variables (CNI_ARGS parsed into `args`, CNI_PATH split into
    `path`) and the network config."""
    __slots__ = ("command", "container_id", "netns", "ifname", "args", "raw_args", "path", "config")

    def __init__(self, command: str, container_id: str = "", netns: str = "", ifname: str = "",
                 args: dict | None = None, raw_args: str = "", path: list | None = None,
                 config: dict | None = None):
        self.command = command
        self.container_id = container_id
        self.netns = netns
        self.ifname = ifname
        self.args = {} if args is None else args
        self.raw_args = raw_args
        self.path = [] if path is None else path
        self.config = {} if config is None else config

    @property
    def cni_version(self) -> str:
        v = self.config.get("cniVersion")
        return v if isinstance(v, str) and v else version.DEFAULT

    @property
    def name(self) -> str:
        return str(self.config.get("name", ""))

    def env(self, **over) -> dict:
        """The CNI_* variables for calling another plugin on behalf of this request."""
        env = {"CNI_COMMAND": self.command, "CNI_CONTAINERID": self.container_id,
               "CNI_NETNS": self.netns, "CNI_IFNAME": self.ifname, "CNI_ARGS": self.raw_args,
               "CNI_PATH": ":".join(self.path)}
        env.update(over)
        return env


def decode_config(stdin: bytes) -> dict:
    if len(stdin) > MAX_STDIN:
        raise CNIError(DECODE_FAILURE, "network config too large", f"{len(stdin)} bytes")
    try:
        conf = jsonlite.loads(stdin or b"{}")
    except (ValueError, UnicodeDecodeError, RecursionError) as e:
        raise CNIError(DECODE_FAILURE, "failed to decode network config", str(e)[:300]) from None
    if not isinstance(conf, dict):
        raise CNIError(DECODE_FAILURE, "failed to decode network config", "not a JSON object")
    return conf


def from_env(environ, stdin: bytes) -> Request:
    cmd = environ.get("CNI_COMMAND", "")
    if cmd not in COMMANDS:
        raise CNIError(INVALID_ENV, f"unknown CNI_COMMAND {cmd[:32]!r}", f"expected one of {COMMANDS}")
    for var, cmds in REQUIRED.items():
        if cmd in cmds and not environ.get(var):
            raise CNIError(INVALID_ENV, f"required env variable {var} missing")
    req = Request(command=cmd, container_id=environ.get("CNI_CONTAINERID", ""),
                  netns=environ.get("CNI_NETNS", ""), ifname=environ.get("CNI_IFNAME", ""),
                  raw_args=environ.get("CNI_ARGS", ""),
                  path=[p for p in environ.get("CNI_PATH", "").split(":") if p])
    if req.container_id:
        validate_container_id(req.container_id)
    if req.ifname:
        validate_ifname(req.ifname)
    req.args = parse_cni_args(req.raw_args)
    if cmd == "VERSION":
        try:
            req.config = decode_config(stdin)
        except CNIError:
            req.config = {}
        return req
    req.config = decode_config(stdin)
    v = version.of_config(req.config)   # none: 0.1.0, as libcni and Go's skel
    version.require_supported(v)
    if cmd in MIN_VERSION and not version.at_least(v, MIN_VERSION[cmd]):
        raise CNIError(INCOMPATIBLE_VERSION,
                       f"config version {v} does not allow {cmd}",
                       f"{cmd} needs cniVersion >= {MIN_VERSION[cmd]}")
    name = req.config.get("name")
    if not is_network_name(name):
        raise CNIError(INVALID_CONFIG, f"invalid network name {str(name)[:80]!r}",
                       "must match [a-zA-Z0-9][a-zA-Z0-9_.-]*")
    return req
