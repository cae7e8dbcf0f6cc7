"""Stand-in CNI plugins (shell scripts) for the tests that attack netmeta's inputs
(tests/hostile.py and the test_hostile_meta_* modules, test_security.py): what they ran, and what must never run."""
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
# a foreign plugin that calls our `sriov` (found in CNI_PATH) with its "delegate" config, as a
# chained or meta plugin of another project would: the nested call must join the operation
CHAINSRIOV = """#!/usr/bin/python3 -I
import json, os, subprocess, sys
if os.environ.get("CNI_COMMAND") == "VERSION":
    print('{"cniVersion":"1.0.0","supportedVersions":["0.4.0","1.0.0"]}')
    sys.exit(0)
conf = json.load(sys.stdin)
inner = dict(conf["delegate"], name=conf["name"], cniVersion=conf["cniVersion"])
exe = next(os.path.join(d, "sriov") for d in os.environ["CNI_PATH"].split(":") if os.path.isfile(os.path.join(d, "sriov")))
p = subprocess.run([exe], input=json.dumps(inner).encode(), capture_output=True)
sys.stderr.buffer.write(p.stderr)
sys.stdout.buffer.write(p.stdout)
sys.exit(p.returncode)
"""
# a cluster network that leaves MARKS/<container>-<ifname>.started when its ADD begins and answers
# after SECONDS (DEL removes the markers): holds an operation open at a known point
HOLDPLUG = """#!/bin/sh
case "$CNI_COMMAND" in
VERSION) echo '{"cniVersion":"1.0.0","supportedVersions":["0.3.0","0.3.1","0.4.0","1.0.0","1.1.0"]}' ;;
ADD) touch "MARKS/$CNI_CONTAINERID-$CNI_IFNAME.started"; sleep SECONDS
     touch "MARKS/$CNI_CONTAINERID-$CNI_IFNAME"
     printf '{"cniVersion":"1.0.0","interfaces":[{"name":"%s","sandbox":"%s"}],"ips":[]}\\n' "$CNI_IFNAME" "$CNI_NETNS" ;;
DEL) rm -f "MARKS/$CNI_CONTAINERID-$CNI_IFNAME" "MARKS/$CNI_CONTAINERID-$CNI_IFNAME.started" ;;
esac
exit 0
"""
