"""Run `netmeta daemon` as a real process for tests and benchmarks (started and ended by PID)."""
import contextlib
import json
import os
import signal
import socket
import subprocess
import time
import urllib.request

from tests.cnirun import VENV_BIN


def free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class DaemonProc:
    def __init__(self, tmp, **cfg):
        self.dir = str(tmp)
        self.socket = cfg.pop("socketPath", os.path.join(self.dir, "run", "netmeta.sock"))
        self.port = free_port()
        self.cfg = {"socketPath": self.socket, "httpAddr": f"127.0.0.1:{self.port}",
                    "cniDir": os.path.join(self.dir, "cache"), **cfg}
        self.cfg_path = os.path.join(self.dir, "daemon.json")
        self.log_path = os.path.join(self.dir, "daemon.log")
        self.proc = None

    def start(self, env: dict | None = None, timeout: float = 20.0, allow_faults: bool = True,
              new_session: bool = False, prefix: tuple = ()) -> "DaemonProc":
        """`prefix`: a command that runs the daemon, e.g. unshare for a PID namespace of its own."""
        os.makedirs(self.dir, exist_ok=True)
        with open(self.cfg_path, "w") as f:
            json.dump(self.cfg, f)
        e = {k: v for k, v in os.environ.items() if k != "NETMETA_ALLOW_FAULTS"}
        if allow_faults:
            e["NETMETA_ALLOW_FAULTS"] = "1"
        e.update(env or {})
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen([*prefix, f"{VENV_BIN}/netmeta", "daemon", "--config", self.cfg_path],
                                         stdout=log, stderr=log, env=e, start_new_session=new_session)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"daemon exited {self.proc.returncode}: {self.log()[-2000:]}")
            try:
                if self.get("/readyz")[0] == 200:
                    return self
            except OSError:
                pass
            time.sleep(0.05)
        raise TimeoutError(f"daemon not ready after {timeout:.0f} s: {self.log()[-2000:]}")

    def get(self, path: str):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=5) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()

    def metric(self, name: str, **labels) -> float:
        total = 0.0
        for line in self.get("/metrics")[1].splitlines():
            if line.startswith(name) and all(f'{k}="{v}"' in line for k, v in labels.items()):
                head = line.split(" ")[0]
                if head.split("{")[0] == name:
                    total += float(line.rsplit(" ", 1)[1])
        return total

    def log(self) -> str:
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def hang(self, timeout: float = 10.0) -> None:
        """SIGSTOP, and return once every thread is stopped: kill() returns before that (one
        thread takes the signal, then stops the others), and on a busy machine a worker could
        still answer in between (CI saw /healthz answered after SIGSTOP)."""
        self.proc.send_signal(signal.SIGSTOP)
        states: list = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            states = []
            for tid in os.listdir(f"/proc/{self.proc.pid}/task"):
                with contextlib.suppress(FileNotFoundError):
                    with open(f"/proc/{self.proc.pid}/task/{tid}/stat") as f:
                        states.append(f.read().rpartition(")")[2].split()[0])
            if states and all(s == "T" for s in states):
                return
            time.sleep(0.01)
        raise AssertionError(f"daemon {self.proc.pid} not stopped after SIGSTOP: thread states {states}")

    def kill(self, sig=signal.SIGKILL) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(30)

    def stop(self) -> int | None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode if self.proc else None
