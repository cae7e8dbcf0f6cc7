"""Logging: stderr (never stdout, which carries only the CNI result) and an optional file;
every line is tagged with the container ID being served."""
import glob
import gzip
import logging
import logging.handlers
import os
import shutil
import sys
import threading
import time

_FMT = "%(asctime)s %(levelname)s %(name)s [%(container_id)s] %(message)s"


_current = threading.local()   # per thread: the daemon serves many containers at once


class _ContainerFilter(logging.Filter):
    def filter(self, record):
        if not hasattr(record, "container_id"):
            record.container_id = getattr(_current, "cid", "-")
        return True


def set_container(cid: str) -> None:
    _current.cid = (cid or "-")[:12]


def current_container() -> str:
    """This thread's container ID tag (for a worker thread to take over: meta/parallel.py)."""
    return getattr(_current, "cid", "-")


FROZEN = False        # the daemon owns stderr's level: a config's logLevel applies to its logFile only
MAX_FILE_HANDLERS = 8   # and each distinct logFile costs an fd for the daemon's life


class _Rotating(logging.handlers.RotatingFileHandler):
    """A logFile rotated as Multus's logOptions (lumberjack) say: maxSize MB per file (default
    100), maxBackups old files (0 = lumberjack's "all": 100 here), maxAge days, compress (gzip)."""

    def __init__(self, path: str, opts: dict):
        self.max_age = float(opts.get("maxAge") or 0) * 86400
        super().__init__(path, maxBytes=int(opts.get("maxSize") or 100) * 1024 * 1024,
                         backupCount=int(opts.get("maxBackups") or 100))
        if opts.get("compress"):
            self.namer = lambda name: name + ".gz"
            self.rotator = _gzip_rotate

    def _open(self):   # a new file after a rollover is 0600 too
        fd = os.open(self.baseFilename, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        return os.fdopen(fd, "a", encoding=self.encoding)

    def doRollover(self):
        super().doRollover()
        if self.max_age:
            for old in glob.glob(glob.escape(self.baseFilename) + ".*"):
                if time.time() - os.path.getmtime(old) > self.max_age:
                    os.unlink(old)


def _gzip_rotate(source: str, dest: str) -> None:
    with open(source, "rb") as src, gzip.open(dest, "wb") as dst:
        shutil.copyfileobj(src, dst)
    os.chmod(dest, 0o600)
    os.unlink(source)


def setup(level: str | None = None, log_file: str | None = None, options: dict | None = None) -> logging.Logger:
    root = logging.getLogger("netmeta")
    lvl = getattr(logging, (level or os.environ.get("NETMETA_LOG_LEVEL") or "info").upper(), logging.INFO)
    if not FROZEN:
        root.setLevel(lvl)
    if log_file and sum(1 for h in root.handlers if getattr(h, "baseFilename", None)) >= MAX_FILE_HANDLERS:
        log_file = None
    if not root.handlers:
        h = logging.StreamHandler(sys.stderr)
        h.setFormatter(logging.Formatter(_FMT))
        h.addFilter(_ContainerFilter())
        root.addHandler(h)
        root.propagate = False
    if log_file and not any(getattr(h, "baseFilename", None) == os.path.abspath(log_file)
                            for h in root.handlers):
        fd = os.open(log_file, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        os.close(fd)
        fh = _Rotating(log_file, options) if options else logging.FileHandler(log_file)
        fh.setFormatter(logging.Formatter(_FMT))
        fh.addFilter(_ContainerFilter())
        if FROZEN:
            # the daemon: this file gets the config's level; stderr keeps the daemon's own
            for h in root.handlers:
                if not getattr(h, "baseFilename", None) and h.level == logging.NOTSET:
                    h.setLevel(root.level)
            fh.setLevel(lvl)
            root.setLevel(min(root.level, lvl))
        root.addHandler(fh)
    return root


def get(name: str) -> logging.Logger:
    return logging.getLogger(f"netmeta.{name}")
