"""Logging: stderr (never stdout, which carries only the CNI result) and an optional file;
every line is tagged with the container ID being served."""
import logging
import os
import sys
import threading

_FMT = "%(asctime)s %(levelname)s %(name)s [%(container_id)s] %(message)s"


_current = threading.local()   # per thread: the daemon serves many containers at once


class _ContainerFilter(logging.Filter):
    def filter(self, record):
        if not hasattr(record, "container_id"):
            record.container_id = getattr(_current, "cid", "-")
        return True


def set_container(cid: str) -> None:
    _current.cid = (cid or "-")[:12]


FROZEN = False        # the daemon owns its level: a config's logLevel does not change it
MAX_FILE_HANDLERS = 8   # and each distinct logFile costs an fd for the daemon's life


def setup(level: str | None = None, log_file: str | None = None) -> logging.Logger:
    root = logging.getLogger("netmeta")
    if not FROZEN:
        lvl = (level or os.environ.get("NETMETA_LOG_LEVEL") or "info").upper()
        root.setLevel(getattr(logging, lvl, logging.INFO))
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
        fh = logging.FileHandler(log_file)
        fh.setFormatter(logging.Formatter(_FMT))
        fh.addFilter(_ContainerFilter())
        root.addHandler(fh)
    return root


def get(name: str) -> logging.Logger:
    return logging.getLogger(f"netmeta.{name}")
