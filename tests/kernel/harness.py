"""Kernel test tier: run commands inside a throw-away QEMU guest with a real kernel + netdevsim.

The guest boots Debian's 6.1 kernel (extracted from the .deb by ``setup_guest.sh``, never
installed) under QEMU TCG, with the host root filesystem shared read-only over 9p under a tmpfs
overlay: the guest runs the host's python, the repository's ``.venv`` and the project at the
same paths, and everything it writes is discarded at power-off.

How results come back: each run gets a host temp directory shared read-write with the guest
(9p tag ``netmeta_run``, mounted at ``/run/netmeta`` in the guest). The host writes ``cmd``,
``params`` and ``env`` there; the guest's init (``guest_init.sh``) writes ``setup.log``,
``output`` (the command's stdout+stderr) and ``rc`` (its exit status) and powers off with
sysrq. The guest console goes to ``console.log`` in the same directory.

Environment seen by the command inside the guest (see guest_init.sh)::

    NETMETA_IN_GUEST=1
    NETMETA_REPO=<repo root>              (also the cwd)
    NETMETA_KERNEL_VERSION=6.1.0-NN-amd64
    NETMETA_KERNEL_PF=eth0                 netdevsim PF netdev (the guest has no other NIC)
    NETMETA_KERNEL_PF_IFINDEX=<ifindex>
    NETMETA_KERNEL_NUMVFS=8                sriov_numvfs already set
    NETMETA_KERNEL_NSIM_ID=10
    NETMETA_KERNEL_NSIM_SYSFS=/sys/bus/netdevsim/devices/netdevsim10
    NETMETA_KERNEL_NSIM_DEBUGFS=/sys/kernel/debug/netdevsim/netdevsim10
    HOME=/root LANG=C.UTF-8 TERM=dumb PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
    PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
    + whatever ``env=`` passes to run_in_guest().

Host environment knobs: NETMETA_KERNEL_CACHE (artifact dir), NETMETA_KERNEL_VERSION,
NETMETA_KERNEL_ACCEL (auto|tcg|kvm), NETMETA_KERNEL_CPU (TCG cpu model, default max),
NETMETA_KERNEL_SMP (default 1), NETMETA_KERNEL_MEM (default 1024M),
NETMETA_KERNEL_KEEP=1 (keep the run directory for debugging), NETMETA_KERNEL_APPEND (extra
kernel command line, e.g. "loglevel=7" to see the boot on the console).
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
DEFAULT_REPO = HERE.parent.parent
SETUP_SCRIPT = HERE / "setup_guest.sh"
QEMU = "qemu-system-x86_64"
GUEST_RUN_DIR = "/run/netmeta"

#: exit status of setup_guest.sh meaning "prerequisites cannot be had on this host"
SETUP_UNAVAILABLE = 3
#: GuestResult.returncode values not coming from the command itself
RC_TIMEOUT = 124
RC_INFRA = 125


class SetupError(RuntimeError):
    """setup_guest.sh failed. ``unavailable`` is True when the host cannot provide the
    prerequisites (not root, apt failure, not x86_64...): callers should skip, not fail."""

    def __init__(self, message: str, unavailable: bool):
        super().__init__(message)
        self.unavailable = unavailable


@dataclass
class GuestResult:
    returncode: int
    output: str
    setup_log: str = ""
    console: str = ""
    duration: float = 0.0
    timed_out: bool = False
    #: set when the guest never reported an exit status (boot/infra failure or timeout)
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and self.error is None

    def describe(self) -> str:
        """Everything useful for a failure message."""
        parts = [f"guest rc={self.returncode} in {self.duration:.1f}s"]
        if self.error:
            parts.append(f"error: {self.error}")
        parts.append("----- guest setup.log -----\n" + self.setup_log.rstrip())
        parts.append("----- guest output -----\n" + self.output.rstrip())
        if self.error or self.returncode == RC_INFRA:
            tail = "\n".join(self.console.splitlines()[-60:])
            parts.append("----- guest console (tail) -----\n" + tail)
        return "\n".join(parts)


_artifacts: dict[str, Path] = {}


def cache_dir() -> Path:
    return Path(os.environ.get("NETMETA_KERNEL_CACHE", "/var/cache/netmeta/kernel-vm"))


def ensure_artifacts() -> Path:
    """Run setup_guest.sh (once per process; it is itself cached on disk) and return the cache
    directory. Progress goes to stderr. Raises SetupError."""
    key = str(cache_dir())
    if key in _artifacts:
        return _artifacts[key]
    proc = subprocess.Popen(
        ["/bin/bash", str(SETUP_SCRIPT)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        errors="replace",
    )
    tail: deque[str] = deque(maxlen=40)
    assert proc.stderr is not None and proc.stdout is not None
    for line in proc.stderr:  # stream progress (apt, build) while keeping the tail
        sys.stderr.write(line)
        sys.stderr.flush()
        tail.append(line.rstrip("\n"))
    out = proc.stdout.read()
    rc = proc.wait()
    if rc != 0:
        why = [ln for ln in tail if "UNAVAILABLE:" in ln or "ERROR:" in ln]
        msg = (why[-1].split(": ", 2)[-1] if why else f"setup_guest.sh exited {rc}")
        raise SetupError(
            msg + "\n--- setup_guest.sh stderr (tail) ---\n" + "\n".join(tail),
            unavailable=(rc == SETUP_UNAVAILABLE),
        )
    path = Path(out.strip().splitlines()[-1]) if out.strip() else Path(key)
    _artifacts[key] = path
    return path


_qemu_checked: tuple[bool, str] | None = None


def qemu_available() -> tuple[bool, str]:
    """(True, description) if qemu-system-x86_64 with virtio-9p is usable, else (False, why)."""
    global _qemu_checked
    if _qemu_checked is not None:
        return _qemu_checked
    exe = shutil.which(QEMU)
    if exe is None:
        _qemu_checked = (False, f"{QEMU} not found on PATH (apt-get install qemu-system-x86)")
        return _qemu_checked
    try:
        ver = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=30)
        dev = subprocess.run([exe, "-device", "help"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError) as exc:
        _qemu_checked = (False, f"{exe} does not run: {exc}")
        return _qemu_checked
    if ver.returncode != 0:
        _qemu_checked = (False, f"{exe} --version failed: {ver.stderr.strip()}")
    elif "virtio-9p" not in dev.stdout + dev.stderr:
        _qemu_checked = (False, f"{exe} has no virtio-9p device (virtfs support)")
    else:
        _qemu_checked = (True, f"{ver.stdout.splitlines()[0]}; accel {_accel()}")
    return _qemu_checked


def _accel() -> str:
    accel = os.environ.get("NETMETA_KERNEL_ACCEL", "auto")
    if accel != "auto":
        return accel
    # /dev/kvm may be a paravirtual KVM (kvm_pvm) that runs stock kernels impossibly slowly:
    # only use KVM when it is the real kvm_intel/kvm_amd.
    real_kvm = os.path.isdir("/sys/module/kvm_intel") or os.path.isdir("/sys/module/kvm_amd")
    if os.access("/dev/kvm", os.W_OK) and real_kvm and not os.path.isdir("/sys/module/kvm_pvm"):
        return "kvm"
    return "tcg"


def _die_with_parent() -> None:
    """In the qemu child: get SIGKILL if the test process dies without cleaning up."""
    try:
        import ctypes
        import signal

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except Exception:  # best effort
        pass


def _read_stamp(cache: Path) -> str:
    for line in (cache / "stamp").read_text().splitlines():
        if line.startswith("kver="):
            return line[len("kver="):]
    raise SetupError(f"no kver= in {cache / 'stamp'}", unavailable=False)


def _qopt(path: Path) -> str:
    """A path as a QEMU option value (commas doubled)."""
    return str(path).replace(",", ",,")


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except FileNotFoundError:
        return ""


def run_in_guest(
    command: list[str] | str,
    timeout: float = 300,
    env: dict[str, str] | None = None,
    repo: str | os.PathLike | None = None,
    numvfs: int = 8,
    nsim_id: int = 10,
    share: str | os.PathLike | None = None,
) -> GuestResult:
    """Boot the guest, run ``command`` as root in ``repo`` (default: the repository holding this
    file) with netdevsim set up, power off, and return its exit status and stdout+stderr.

    ``command``: an argv list, or a string run by bash. ``env``: extra environment variables.
    ``share``: a host directory mounted read-write at the same path in the guest (everything
    else the guest writes is discarded). QEMU is killed once ``timeout`` seconds have passed
    (result: returncode 124, ``timed_out`` True, partial output).
    """
    cache = ensure_artifacts()
    kver = _read_stamp(cache)
    kdir = cache / f"kernel-{kver}"
    repo_path = Path(repo).resolve() if repo is not None else DEFAULT_REPO
    if not repo_path.is_dir():
        raise FileNotFoundError(f"repo {repo_path} is not a directory")
    script = command if isinstance(command, str) else shlex.join(command)

    run = Path(tempfile.mkdtemp(prefix="netmeta-guest-"))
    try:
        run.chmod(0o755)
        (run / "cmd").write_text(script + "\n")
        (run / "params").write_text(
            f"REPO={shlex.quote(str(repo_path))}\nNSIM_ID={int(nsim_id)}\nNUMVFS={int(numvfs)}\n"
        )
        for key in env or {}:
            if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
                raise ValueError(f"invalid environment variable name {key!r}")
        (run / "env").write_text(
            "".join(f"export {k}={shlex.quote(str(v))}\n" for k, v in (env or {}).items())
        )
        (run / "share").write_text(str(Path(share).resolve()) if share else "")

        if _accel() == "kvm":
            accel = ["-accel", "kvm", "-cpu", "host"]
        else:
            accel = ["-accel", "tcg,thread=multi",
                     "-cpu", os.environ.get("NETMETA_KERNEL_CPU", "max")]
        argv = [
            QEMU, *accel, "-machine", "q35",
            "-smp", os.environ.get("NETMETA_KERNEL_SMP", "1"),
            "-m", os.environ.get("NETMETA_KERNEL_MEM", "1024M"),
            "-nodefaults", "-no-user-config", "-display", "none", "-no-reboot",
            "-serial", f"file:{run / 'console.log'}", "-monitor", "none", "-parallel", "none",
            "-nic", "none",
            "-kernel", str(kdir / "vmlinux"),
            "-initrd", str(cache / f"initrd-{kver}.img"),
            "-append",
            "console=ttyS0 quiet loglevel=4 panic=-1 oops=panic mitigations=off "
            "i8042.noaux i8042.nokbd i8042.nopnp "
            f"netmeta.mods={kdir / 'lib' / 'modules' / kver} "
            + os.environ.get("NETMETA_KERNEL_APPEND", ""),
            "-virtfs",
            "local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap",
            "-virtfs",
            f"local,path={_qopt(run)},mount_tag=netmeta_run,security_model=none,multidevs=remap",
        ]
        if share:
            argv += ["-virtfs", f"local,path={_qopt(Path(share).resolve())},"
                     "mount_tag=netmeta_share,security_model=none,multidevs=remap"]

        t0 = time.monotonic()
        timed_out = False
        with open(run / "qemu.log", "wb") as qlog:
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=qlog,
                                    stderr=subprocess.STDOUT, start_new_session=True,
                                    preexec_fn=_die_with_parent)
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                timed_out = True
            finally:
                if proc.poll() is None:  # timeout, or KeyboardInterrupt in wait()
                    proc.kill()
                    proc.wait()
        duration = time.monotonic() - t0

        rc_text = _read(run / "rc").strip()
        result = GuestResult(
            returncode=int(rc_text) if rc_text else (RC_TIMEOUT if timed_out else RC_INFRA),
            output=_read(run / "output"),
            setup_log=_read(run / "setup.log"),
            console=_read(run / "console.log"),
            duration=duration,
            timed_out=timed_out,
        )
        setup_failed = _read(run / "setup_failed").strip()
        if setup_failed:
            result.error = f"guest setup failed, command not run: {setup_failed}"
        elif timed_out and not rc_text:
            result.error = f"timeout after {timeout:.0f}s: qemu killed"
        elif not rc_text:
            result.error = (f"guest reported no exit status (qemu exit {proc.returncode}): "
                            + _read(run / "qemu.log").strip()[-2000:])
        return result
    finally:
        if os.environ.get("NETMETA_KERNEL_KEEP") == "1":
            print(f"harness: kept run directory {run}", file=sys.stderr)
        else:
            shutil.rmtree(run, ignore_errors=True)


def main(argv: list[str]) -> int:
    """``python tests/kernel/harness.py CMD...``: run CMD in the guest (handy by hand)."""
    if not argv:
        print("usage: harness.py CMD [ARG...]", file=sys.stderr)
        return 2
    res = run_in_guest(argv if len(argv) > 1 else argv[0],
                       timeout=float(os.environ.get("NETMETA_KERNEL_TIMEOUT", "300")))
    sys.stdout.write(res.output)
    if res.error or res.returncode == RC_INFRA:
        print(res.describe(), file=sys.stderr)
    print(f"harness: rc={res.returncode} wall={res.duration:.2f}s", file=sys.stderr)
    return res.returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
