"""The "with the daemon running" (thick) variants — on by default (`run.py --no-daemon` skips).

`start(stack)` runs `netmeta daemon` on a private socket for one section and returns a Daemon
whose `.env` makes our executables forward to it (NETMETA_SOCKET); sections then add one more
case next to their no-daemon ones:
  meta.py   "(b) netmeta thick -> bridge+host-local"   (netmeta conf + mode=daemon, socketPath)
  sriov.py  "sriov+fixipam via daemon (shim -> daemon)"
  startup.py "<plugin> VERSION via daemon"
  parallel.py "sriov+fixipam via daemon: 64 ADDs / DELs"
With --no-daemon, start() returns None and those cases are simply not run. The daemon is
stopped by its PID (SIGTERM, then SIGKILL) when the section ends.
"""
import json
import os
import signal
import socket
import subprocess
import time
from contextlib import ExitStack

from bench import fixtures
from tests.cnirun import VENV_BIN

ENABLED = {"on": False}


class Daemon:
    def __init__(self, proc, sock: str, log: str):
        self.proc, self.socket, self.log = proc, sock, log
        self.env = {"NETMETA_SOCKET": sock}

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(15)


def _answers(path: str) -> bool:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.connect(path)
        return True
    except OSError:
        return False
    finally:
        s.close()


def start(stack: ExitStack, pfs: tuple = (), **extra) -> Daemon | None:
    """`extra`: more daemon config keys (kubeconfig, nodeName, ...)."""
    if not ENABLED["on"]:
        return None
    work = fixtures.scratch(stack, "daemon")
    sock = os.path.join(work, "netmeta.sock")
    cfg = os.path.join(work, "daemon.json")
    with open(cfg, "w") as f:
        json.dump({"socketPath": sock, "httpAddr": "", "cniDir": os.path.join(work, "cache"),
                   "pfs": [dict(p) for p in pfs], **extra}, f)
    log = os.path.join(work, "daemon.log")
    with open(log, "ab") as lf:
        proc = subprocess.Popen([f"{VENV_BIN}/netmeta", "daemon", "--config", cfg], stdout=lf, stderr=lf,
                                start_new_session=True)
    d = Daemon(proc, sock, log)
    stack.callback(d.stop)
    deadline = time.monotonic() + 20
    while not _answers(sock):
        if proc.poll() is not None or time.monotonic() > deadline:
            with open(log, errors="replace") as f:
                raise RuntimeError(f"netmeta daemon did not come up: {f.read()[-1500:]}")
        time.sleep(0.05)
    return d
