"""Everything the benchmark creates is named with one per-run prefix and removed, even on Ctrl-C.

- Ctrl-C / SIGTERM / SIGHUP the first time only set a flag: the bench stops at the next
  iteration boundary (`check()`), so no CNI call is cut in half and every cleanup runs. A second
  one raises KeyboardInterrupt at once (the plugin being waited for is killed); the `finally`
  blocks still run, and later signals no longer interrupt them.
- The plugins are started in their own session (bench/cnicall.py), so a Ctrl-C in the terminal
  does not kill a plugin half-way through an ADD.
- `sweep()` is the safety net run last: it deletes any netns or link whose name carries the
  prefix (and the sims' private netns), whatever a section left behind.
"""
import json
import secrets
import signal
import subprocess
import sys

PREFIX = "nb" + secrets.token_hex(2)      # e.g. nb3f2a: netns, bridges, sim PFs of this run
_stop = {"requested": False}


class Stopped(KeyboardInterrupt):
    pass


def name(suffix: str) -> str:
    n = PREFIX + suffix
    assert len(n) <= 15, n   # IFNAMSIZ
    return n


def _handler(signum, frame):
    if _stop.get("aborting"):   # third and later: never interrupt the cleanup itself
        sys.stderr.write("\nbench: cleaning up, please wait\n")
        return
    if _stop["requested"]:
        _stop["aborting"] = True
        raise KeyboardInterrupt
    _stop["requested"] = True
    sys.stderr.write(f"\nbench: {signal.Signals(signum).name}: stopping after the current iteration "
                     "and cleaning up (again to abort at once; cleanup still runs)\n")


def install() -> None:
    for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(s, _handler)


def check() -> None:
    """Call between iterations, outside timed code."""
    if _stop["requested"]:
        raise Stopped("stopped by signal")


def requested() -> bool:
    return _stop["requested"]


def sh(*cmd, check: bool = True) -> subprocess.CompletedProcess:
    p = subprocess.run(list(cmd), capture_output=True, text=True, start_new_session=True)
    if check and p.returncode != 0:
        raise RuntimeError(f"failed to run {' '.join(cmd)}: {p.stderr.strip()}")
    return p


def ip_batch(lines: list, check: bool = True) -> None:
    """Many `ip` commands in one process (`ip -force -batch -`)."""
    if not lines:
        return
    p = subprocess.run(["ip", "-force", "-batch", "-"], input="\n".join(lines) + "\n",
                       capture_output=True, text=True, start_new_session=True)
    if check and p.returncode != 0:
        raise RuntimeError(f"failed to run ip -batch ({lines[0]} ...): {p.stderr.strip()[:400]}")


def netns_add(names: list) -> None:
    ip_batch([f"netns add {n}" for n in names])


def netns_del(names: list) -> None:
    ip_batch([f"netns del {n}" for n in names], check=False)


def our_netns() -> list:
    out = sh("ip", "-j", "netns", "list", check=False).stdout
    names = [n["name"] for n in json.loads(out or "[]")]
    return [n for n in names if n.startswith(PREFIX) or n.startswith("netmeta-sim-" + PREFIX)]


def our_links() -> list:
    out = sh("ip", "-j", "link", "show", check=False).stdout
    return [l["ifname"] for l in json.loads(out or "[]") if l["ifname"].startswith(PREFIX)]


def sweep() -> list:
    """Delete whatever of ours is left; returns what it had to delete (should be nothing)."""
    left = [f"netns {n}" for n in our_netns()] + [f"link {l}" for l in our_links()]
    netns_del(our_netns())
    for l in our_links():
        sh("ip", "link", "del", l, check=False)
    return left

