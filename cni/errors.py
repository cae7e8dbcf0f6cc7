"""CNI error codes and the exception every layer raises.

Codes 1-99 are the CNI spec's (SPEC.md "Error"); 100 and up are netmeta's own and are listed
here, in one place, so operators can look any of them up.
"""

# --- CNI spec codes ---
INCOMPATIBLE_VERSION = 1
UNSUPPORTED_FIELD = 2
UNKNOWN_CONTAINER = 3
INVALID_ENV = 4
IO_FAILURE = 5
DECODE_FAILURE = 6
INVALID_CONFIG = 7
TRY_AGAIN = 11
PLUGIN_NOT_AVAILABLE = 50
PLUGIN_NOT_AVAILABLE_LIMITED = 51

# --- netmeta codes (100+) ---
INTERNAL = 100           # a bug: an unexpected exception, reported with its type
DELEGATE_FAILED = 101    # a delegate plugin returned an error or crashed
DELEGATE_NOT_FOUND = 102  # `type` not found in CNI_PATH
DELEGATE_TIMEOUT = 103
ADDRESS_INVALID = 110    # fixipam: address malformed / outside subnet / reserved kind
ADDRESS_IN_USE = 111     # fixipam: address already reserved on this node for the network
NO_ADDRESS = 112         # fixipam: no address was given
NO_FREE_VF = 120         # sriov: every VF of the PF is allocated
DEVICE_NOT_FOUND = 121   # sriov: PF / VF / PCI address missing
DEVICE_BUSY = 122        # sriov: the requested VF is allocated or not in the host netns
VF_CONFIG_FAILED = 123   # sriov: the kernel (or sim) refused a VF setting
NO_DEVICE_ALLOCATED = 124  # a network's resourceName: the kubelet gave the pod no (more) device of it
POLICY_DENIED = 130      # a pod override outside the administrator's limits
NAMESPACE_DENIED = 131   # namespace isolation refused a NAD reference
NETWORK_NOT_FOUND = 132  # a NetworkAttachmentDefinition is missing
API_FAILED = 140         # the Kubernetes API refused or failed

NAMES = {v: k.lower() for k, v in dict(globals()).items() if k.isupper() and isinstance(v, int)}


class CNIError(Exception):
    """An error that becomes the CNI error JSON ({cniVersion, code, msg, details})."""

    def __init__(self, code: int, msg: str, details: str = ""):
        super().__init__(msg)
        self.code = int(code)
        self.msg = msg
        self.details = details

    def to_dict(self, cni_version: str) -> dict:
        out = {"cniVersion": cni_version, "code": self.code, "msg": self.msg}
        if self.details:
            out["details"] = self.details
        return out

    def __str__(self) -> str:
        return f"{self.msg}: {self.details}" if self.details else self.msg


def config_error(field: str, msg: str) -> CNIError:
    """Invalid network config, naming the field (code 7)."""
    return CNIError(INVALID_CONFIG, f"invalid config field {field!r}: {msg}", f"field={field}")
