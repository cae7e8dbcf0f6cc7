"""Stand-in CNI plugins (shell scripts) for the tests that attack netmeta's inputs
(test_hostile_meta.py, test_security.py): what they ran, and what must never run."""
import os

# a cluster network that only leaves a marker per container+ifname (DEL removes it)
OKPLUG = """#!/bin/sh
case "$CNI_COMMAND" in
VERSION) echo '{"cniVersion":"1.0.0","supportedVersions":["0.3.0","0.3.1","0.4.0","1.0.0","1.1.0"]}' ;;
ADD) touch "MARKS/$CNI_CONTAINERID-$CNI_IFNAME"
     printf '{"cniVersion":"1.0.0","interfaces":[{"name":"%s","sandbox":"%s"}],"ips":[]}\\n' "$CNI_IFNAME" "$CNI_NETNS" ;;
DEL) rm -f "MARKS/$CNI_CONTAINERID-$CNI_IFNAME" ;;
esac
exit 0
"""
# records the CNI_ARGS and the config it was called with
ARGSPY = """#!/bin/sh
case "$CNI_COMMAND" in
VERSION) echo '{"cniVersion":"1.0.0","supportedVersions":["1.0.0"]}' ;;
ADD) printf '%s' "$CNI_ARGS" > "SPY/args"; cat > "SPY/stdin"; echo '{"cniVersion":"1.0.0"}' ;;
esac
exit 0
"""
# planted outside CNI_PATH: netmeta must never run it
EVIL = """#!/bin/sh
touch "MARKER"
echo '{"cniVersion":"1.0.0","supportedVersions":["1.0.0"]}'
"""


def install(path, script: str, placeholder: str, value) -> None:
    """Write `script` to `path` (0755) with `placeholder` replaced by the path `value`."""
    with open(path, "w") as f:
        f.write(script.replace(placeholder, str(value)))
    os.chmod(path, 0o755)
# records the config it was given per command/container/ifname, then runs Debian's bridge on it
# unchanged (so the attachment is real): proves what cniVersion a delegate receives
CNISPY = """#!/bin/sh
[ "$CNI_COMMAND" = VERSION ] && exec /usr/lib/cni/bridge
f="SPY/$CNI_COMMAND-$CNI_CONTAINERID-$CNI_IFNAME.json"
cat > "$f"
exec /usr/lib/cni/bridge < "$f"
"""
