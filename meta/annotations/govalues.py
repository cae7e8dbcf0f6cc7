"""Go-compatible value checks for the annotation parsers: text accepted and refused exactly as
the Go functions Multus relies on do (strings.TrimSpace's white space, net.ParseIP,
net.ParseCIDR, net.IP's To4, net.ParseMAC), and the name rules: a namespace is a DNS-1123 label,
an interface name what the kernel's dev_valid_name takes, in printable ASCII (stricter than
Multus's parsePodNetworkObjectName; see `check_ifname`).

The `_check_*` functions return None for a valid value, else the rule broken (for the caller's
error message); the `_parse_*` ones return the parsed value, or None when invalid."""
from __future__ import annotations

import ipaddress
import re

# GO_SPACE: Go's unicode.IsSpace, which strings.TrimSpace uses (Python's str.strip also strips
# \x1c-\x1f); shared with the stand-alone sriov plugin's annotation parser
from cni.annotjson import GO_SPACE, quote  # noqa: F401 (GO_SPACE re-exported)

IFNAMSIZ = 16  # the kernel's, including the NUL: names are at most 15 bytes

LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
IFNAME_OK = re.compile(r"[!-~]+")  # printable ASCII without space
_HEX = frozenset("0123456789abcdefABCDEF")


def check_namespace(ns: str) -> str | None:
    if len(ns) > 63 or not LABEL.fullmatch(ns):
        return (f"namespace {quote(ns)} is not a valid namespace (a DNS-1123 label: at most 63 "
                "lower-case alphanumerics or '-', starting and ending with an alphanumeric)")
    return None


def check_ifname(name: str) -> str | None:
    """Multus (parsePodNetworkObjectName): at most IFNAMSIZ-1 bytes, no '/' or white space.
    Stricter, as the kernel's dev_valid_name plus ASCII: no ':', not "." / "..", printable."""
    if len(name.encode("utf-8", "surrogatepass")) > IFNAMSIZ - 1:
        return f"interface name {quote(name)} is longer than {IFNAMSIZ - 1} bytes"
    if not IFNAME_OK.fullmatch(name) or "/" in name or ":" in name or name in (".", ".."):
        return (f"interface name {quote(name)} is not valid (printable ASCII without '/', ':' or "
                "white space, not '.' or '..')")
    return None


def parse_ip(text: str):
    """Go's net.ParseIP: IPv4 dotted quad or IPv6, no zone. None when invalid."""
    if not text or "%" in text or not text.isascii():
        return None
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def valid_ip_or_cidr(text: str) -> bool:
    """Multus: a CIDR (Go's net.ParseCIDR: address, '/', decimal prefix up to the address
    length; host bits allowed) when the text contains '/', else a plain IP."""
    if "/" not in text:
        return parse_ip(text) is not None
    addr, _, prefix = text.partition("/")
    ip = parse_ip(addr)
    if ip is None or not prefix or not prefix.isascii() or not prefix.isdigit():
        return False
    prefix = prefix.lstrip("0") or "0"  # Go's dtoi takes leading zeros
    return len(prefix) <= 3 and int(prefix) <= ip.max_prefixlen


def canonical_ip(ip) -> str:
    mapped = getattr(ip, "ipv4_mapped", None)
    return str(mapped if mapped is not None else ip)


def is_v4(text: str) -> bool:
    """Go's `gw.To4() != nil`: IPv4, or IPv4-mapped IPv6."""
    ip = ipaddress.ip_address(text)
    return ip.version == 4 or ip.ipv4_mapped is not None


def parse_mac(s: str) -> str | None:
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
