"""Exec'd delegates in the host's filesystem view: when the daemon runs in a container, the
host's `/` is mounted into it (e.g. at /hostroot) and every plugin it execs runs chrooted there,
so flannel finds /run/flannel/subnet.env, Calico /var/lib/calico, iptables the host's lock
and binaries, host-local its state dir. CNI_PATH, CNI_NETNS and any path inside a config are
then host paths, resolved in the host's view. Our own plugins keep running in the daemon.

Multus v4.1.4 does the same (`chrootDir` in the thick daemon's config): pkg/server/server.go
NewCNIServer wraps invoke.Exec in a ChrootExec when ChrootDir is set, and
pkg/server/exec_chroot.go ChrootExec.ExecPlugin execs the plugin with
SysProcAttr{Chroot: chrootDir} (the child chroots before execve). Its FindInPath searches the
container's view; we search the host's, so a plugin the container lacks is still found.

Python cannot chroot only a child without preexec_fn (unsafe in a threaded daemon), so the
delegate is exec'd through coreutils' chroot(8): chroot(root), chdir("/"), execvp(plugin).
"""
import os

from .errors import INVALID_CONFIG, CNIError


def validate(root: str) -> tuple:
    """(the root's real path, chroot(8)) or CNIError."""
    if not os.path.isabs(root) or not os.path.isdir(root):
        raise CNIError(INVALID_CONFIG, f"invalid hostRoot {root[:200]!r}", "must be an existing absolute directory")
    import shutil  # only a daemon with hostRoot: shutil costs a plugin call ~3 ms (bz2, lzma)
    chroot = shutil.which("chroot", path="/usr/sbin:/usr/bin:/sbin:/bin")
    if chroot is None:
        raise CNIError(INVALID_CONFIG, "hostRoot needs chroot(8) (coreutils) in the daemon's image")
    return os.path.realpath(root), chroot


class HostRoot:
    """The filesystem view exec'd delegates run in: the host's `/` mounted at `root`, or our own
    (root None, "" or "/": thin mode, a daemon on the host). The daemon makes one from its
    `hostRoot` setting and lends it with its delegate services (delegates/registry.py Services,
    as `own.host_root` to cni/invoke.py)."""

    def __init__(self, root: str | None = None):
        self.root: str | None
        self.root, self._chroot = (None, None) if root in (None, "", "/") else validate(root)

    def local(self, path: str) -> str:
        """Where the host path `path` is in our view: itself without a host root, else resolved
        inside the root, following symlinks the way the host would (an absolute link target
        restarts at the root, '..' never climbs above it)."""
        root = self.root
        if root is None:
            return path
        parts = [p for p in path.split("/") if p not in ("", ".")]
        done: list = []
        hops = 0
        while parts:
            p = parts.pop(0)
            if p == "..":
                if done:
                    done.pop()
                continue
            cand = os.path.join(root, *done, p)
            if os.path.islink(cand):
                hops += 1
                if hops > 40:   # ELOOP, as the kernel would say
                    return os.path.join(root, *done, p)
                target = os.readlink(cand)
                if target.startswith("/"):
                    done = []
                parts = [x for x in target.split("/") if x not in ("", ".")] + parts
                continue
            done.append(p)
        return os.path.join(root, *done)

    def argv(self, exe: str) -> list:
        """The argv that runs the host path `exe` in the host's view."""
        return [exe] if self.root is None else [self._chroot, self.root, exe]


OWN_VIEW = HostRoot(None)   # exec in our own view
