"""sriov network configuration, parsed once into a SriovConfig and validated before
anything is touched. Keys follow upstream sriov-cni where they overlap, so its configs work
unchanged; an unknown key is an error, not silence."""
from cni.errors import config_error

from . import vftable

_HEX = frozenset("0123456789abcdefABCDEF")
DEFAULT_STATE_DIR = "/var/lib/cni/netmeta/sriov"

# keys the CNI spec, libcni, Multus or the device plugin inject: known, not ours to validate
INJECTED = {"cniVersion", "name", "type", "runtimeConfig", "args", "prevResult", "pciBusID",
            "capabilities", "cni.dev/valid-attachments", "cni.dev/attachments", "logLevel",
            "logFile", "dns", "sriovNetworkName"}
OURS = {"master", "deviceID", "vf", "pfOnly", "vlan", "vlanQoS", "vlanProto", "mac",
        "min_tx_rate", "max_tx_rate", "spoofchk", "trust", "link_state", "mtu", "ipam",
        "sysfsRoot", "backend", "stateDir", "excludeVFs"}
# the seed plugin's `kubernetes` (a bool it never used), and what stand-alone pod overrides read
SEED_AND_POD = {"kubernetes", "kubeconfig", "podOverrides", "podOverridesApplied"}
VF_ONLY = ("vf", "vlan", "vlanQoS", "vlanProto", "min_tx_rate", "max_tx_rate", "spoofchk",
           "trust", "link_state", "excludeVFs")


class SriovConfig:
    """One sriov network's validated settings (load() builds it; read-only by convention).
    None: not set. `proto`: "802.1Q" | "802.1ad"; `exclude_vfs`: a frozenset of VF indices."""
    __slots__ = ("name", "master", "device_id", "vf", "pf_only", "vlan", "qos", "proto", "mac", "min_tx_rate",
                 "max_tx_rate", "spoofchk", "trust", "link_state", "mtu", "ipam", "sysfs_root", "backend",
                 "state_dir", "exclude_vfs")

    def __init__(self, name: str, master: str | None, device_id: str | None, vf: int | None, pf_only: bool,
                 vlan: int | None, qos: int | None, proto: str | None, mac: str | None,
                 min_tx_rate: int | None, max_tx_rate: int | None, spoofchk: bool | None, trust: bool | None,
                 link_state: str | None, mtu: int | None, ipam: dict | None, sysfs_root: str, backend: str,
                 state_dir: str, exclude_vfs: frozenset):
        self.name = name
        self.master = master
        self.device_id = device_id
        self.vf = vf
        self.pf_only = pf_only
        self.vlan = vlan
        self.qos = qos
        self.proto = proto
        self.mac = mac
        self.min_tx_rate = min_tx_rate
        self.max_tx_rate = max_tx_rate
        self.spoofchk = spoofchk
        self.trust = trust
        self.link_state = link_state
        self.mtu = mtu
        self.ipam = ipam
        self.sysfs_root = sysfs_root
        self.backend = backend
        self.state_dir = state_dir
        self.exclude_vfs = exclude_vfs

    def pf_settings(self) -> dict:
        """The VF-table changes this config asks for (only those it sets)."""
        out: dict[str, object] = {}
        if self.vlan is not None or self.qos is not None or self.proto is not None:
            out.update(vlan=self.vlan or 0, qos=self.qos or 0, proto=self.proto or "802.1Q")
        for k in ("mac", "min_tx_rate", "max_tx_rate", "spoofchk", "trust", "link_state"):
            if getattr(self, k) is not None:
                out[k] = getattr(self, k)
        return out


def _int(conf, key, lo, hi):
    v = conf.get(key)
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
        raise config_error(key, f"{v!r} is not an integer in {lo}..{hi}")
    return v


def _onoff(conf, key):
    v = conf.get(key)
    if v is None or v == "":
        return None
    if isinstance(v, bool):
        return v
    if isinstance(v, str) and v.lower() in ("on", "off"):
        return v.lower() == "on"
    raise config_error(key, f"{v!r} must be \"on\", \"off\" or a boolean")


def _hex(s: str) -> bool:
    return all(c in _HEX for c in s)


def _dollar(test, s: str) -> bool:
    """`test(s)`, or s ends with one newline and test holds without it: what a `^...$`
    pattern's match() accepts (`$` matches before a trailing newline too)."""
    return test(s) or (s[-1:] == "\n" and test(s[:-1]))


def _is_pci(s: str) -> bool:
    """dddd:bb:dd.f, hex of either case (the sysfs form is checked by topology.parse_pci)."""
    return (len(s) == 12 and s[4] == ":" and s[7] == ":" and s[10] == "." and s[11] in "01234567"
            and _hex(s[:4] + s[5:7] + s[8:10]))


def is_pci(s: str) -> bool:
    """What the config accepts as a PCI address (deviceID): `^[0-9a-fA-F]{4}:[0-9a-fA-F]{2}:[0-9a-fA-F]{2}\\.[0-7]$`."""
    return _dollar(_is_pci, s)


def is_mac(s: str) -> bool:
    """What the config accepts as a MAC address: `^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$`."""
    return _dollar(vftable.is_mac, s)


def check_mac(v, key):
    if v in (None, ""):
        return None
    if not isinstance(v, str) or not is_mac(v):
        raise config_error(key, f"{str(v)[:40]!r} is not a MAC address")
    if int(v[:2], 16) & 1:
        raise config_error(key, f"{v} is a multicast MAC address")
    if v.replace(":", "") == "000000000000":
        raise config_error(key, "all-zero MAC address")
    return v.lower()


def load(conf: dict) -> SriovConfig:
    unknown = set(conf) - INJECTED - OURS - SEED_AND_POD
    if unknown:
        raise config_error(sorted(unknown)[0], "unknown key for the sriov plugin")
    if not isinstance(conf.get("kubernetes", False), bool):
        raise config_error("kubernetes", "must be a boolean")
    if not isinstance(conf.get("kubeconfig", ""), str):
        raise config_error("kubeconfig", "must be a path")
    if conf.get("podOverrides") is not None:
        from .podoverrides import policy_of
        policy_of(conf, conf.get("name", ""))   # its syntax, whether or not a pod asks
    runtime = conf.get("runtimeConfig")
    if not isinstance(runtime, dict):
        runtime = {}
    master = conf.get("master")
    if master is not None and (not isinstance(master, str) or not 0 < len(master) <= 15 or "/" in master):
        raise config_error("master", f"{str(master)[:40]!r} is not an interface name")
    device_id = conf.get("deviceID") or runtime.get("deviceID") or conf.get("pciBusID")
    if device_id is not None and (not isinstance(device_id, str) or not is_pci(device_id)):
        raise config_error("deviceID", f"{str(device_id)[:40]!r} is not a PCI address (dddd:bb:dd.f)")
    pf_only = conf.get("pfOnly", False)
    if not isinstance(pf_only, bool):
        raise config_error("pfOnly", "must be a boolean")
    if master is None and device_id is None:
        raise config_error("master", "set master (the PF) or deviceID (a VF PCI address)")
    vlan, qos = _int(conf, "vlan", 0, 4095), _int(conf, "vlanQoS", 0, 7)
    if qos and not vlan:
        raise config_error("vlanQoS", "a QoS priority needs a non-zero vlan")
    proto = conf.get("vlanProto")
    if proto is not None:
        if not isinstance(proto, str) or proto.lower() not in ("802.1q", "802.1ad"):
            raise config_error("vlanProto", f"{str(proto)[:20]!r} must be 802.1q or 802.1ad")
        proto = "802.1Q" if proto.lower() == "802.1q" else "802.1ad"
        if proto == "802.1ad" and not vlan:
            raise config_error("vlanProto", "802.1ad needs a non-zero vlan")
    min_rate, max_rate = _int(conf, "min_tx_rate", 0, 10**7), _int(conf, "max_tx_rate", 0, 10**7)
    if min_rate and max_rate and min_rate > max_rate:
        raise config_error("min_tx_rate", f"min_tx_rate {min_rate} exceeds max_tx_rate {max_rate}")
    link_state = conf.get("link_state")
    if link_state not in (None, "", "auto", "enable", "disable"):
        raise config_error("link_state", f"{str(link_state)[:20]!r} must be auto, enable or disable")
    mac = check_mac(runtime.get("mac") or conf.get("mac"), "mac")
    ipam = conf.get("ipam")
    if ipam == {}:   # the operator's template emits "ipam":{} for none (sriov-cni: IPAM.Type == "")
        ipam = None
    if ipam is not None and (not isinstance(ipam, dict) or not isinstance(ipam.get("type"), str)):
        raise config_error("ipam", "must be an object with a type")
    if ipam is not None:
        from cni.invoke import validate_type
        validate_type(ipam["type"])
    backend = conf.get("backend", "netlink")
    if backend not in ("netlink", "sim"):
        raise config_error("backend", f"{str(backend)[:20]!r} must be netlink or sim")
    for key in ("sysfsRoot", "stateDir"):
        v = conf.get(key)
        if v is not None and (not isinstance(v, str) or not v.startswith("/")):
            raise config_error(key, "must be an absolute path")
    exclude = conf.get("excludeVFs", [])
    if not isinstance(exclude, list) or not all(isinstance(x, int) and not isinstance(x, bool) for x in exclude):
        raise config_error("excludeVFs", "must be a list of VF indices")
    cfg = SriovConfig(
        name=conf.get("name", ""), master=master, device_id=device_id.lower() if device_id else None,
        vf=_int(conf, "vf", 0, 4095), pf_only=pf_only, vlan=vlan, qos=qos, proto=proto, mac=mac,
        min_tx_rate=min_rate, max_tx_rate=max_rate, spoofchk=_onoff(conf, "spoofchk"),
        trust=_onoff(conf, "trust"), link_state=link_state or None, mtu=_int(conf, "mtu", 68, 65535),
        ipam=ipam, sysfs_root=conf.get("sysfsRoot", "/sys"), backend=backend,
        state_dir=conf.get("stateDir", DEFAULT_STATE_DIR), exclude_vfs=frozenset(exclude))
    if pf_only:
        bad = [k for k in VF_ONLY if conf.get(k) not in (None, [], "")]
        if bad or cfg.device_id:
            raise config_error(bad[0] if bad else "deviceID", "not allowed with pfOnly (it moves the whole PF)")
        if master is None:
            raise config_error("master", "pfOnly needs master")
    return cfg
