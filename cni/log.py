"""Logging: stderr (never stdout, which carries only the CNI result) and an optional file;
every line is tagged with the container ID being served.

An exec'd plugin (cni/skel.py) logs "lite": lines in the same format written straight to
stderr, without importing `logging` (~10 ms of a ~40 ms call). The first call that needs more
(a log file, exc_info, any Logger attribute) switches the process to `logging` for good; the
daemon and everything else use `logging` from the start.

The product's names come from the process's entry, not from here: `name_root(root, level_env)`
names the root logger ("<root>.<name>" for `get(name)`) and the variable holding the default
level; netmeta's entries pass delegates/registry.py SHIM's (cni/shim.py run, meta/main.py)."""
import os
import sys
from _thread import _local

_FMT = "%(asctime)s %(levelname)s %(name)s [%(container_id)s] %(message)s"
_LEVELS = {"DEBUG": 10, "INFO": 20, "WARNING": 30, "ERROR": 40, "CRITICAL": 50}


_current = _local()   # per thread: the daemon serves many containers at once (threading.local)
_classes: dict = {}   # the logging subclasses below, made on first use (logging imported then)


def _container_filter():
    if "filter" not in _classes:
        import logging

        class _ContainerFilter(logging.Filter):
            def filter(self, record):
                if not hasattr(record, "container_id"):
                    record.container_id = getattr(_current, "cid", "-")
                return True
        _classes["filter"] = _ContainerFilter
    return _classes["filter"]()


def set_container(cid: str) -> None:
    _current.cid = (cid or "-")[:12]


def current_container() -> str:
    """This thread's container ID tag (for a worker thread to take over: meta/parallel.py)."""
    return getattr(_current, "cid", "-")


MAX_FILE_HANDLERS = 8   # and each distinct logFile costs an fd for the daemon's life


def _rotating(path: str, opts: dict):
    if "rotating" not in _classes:
        import glob
        import logging.handlers
        import time

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
        _classes["rotating"] = _Rotating
    return _classes["rotating"](path, opts)


def _gzip_rotate(source: str, dest: str) -> None:
    import gzip
    import shutil
    with open(source, "rb") as src, gzip.open(dest, "wb") as dst:
        shutil.copyfileobj(src, dst)
    os.chmod(dest, 0o600)
    os.unlink(source)


_lite = {"on": False, "level": 20}
# the process's root logger and default-level variable: named once by its entry (name_root);
# like `logging`'s own handlers, a property of the process
_names = {"root": "", "level_env": ""}


def name_root(root: str, level_env: str) -> None:
    """Name this process's root logger (`get(x)` logs as "<root>.<x>") and the environment
    variable that gives the level when setup() is given none. Called by the process's entry
    before anything logs."""
    _names["root"], _names["level_env"] = root, level_env


def _full(name: str) -> str:
    return f"{_names['root']}.{name}" if _names["root"] else name


def _level_name(level: str | None) -> str:
    env = _names["level_env"]
    return (level or (os.environ.get(env) if env else None) or "info").upper()


def _level_of(level: str | None) -> int:
    return _LEVELS.get(_level_name(level), 20)


def setup(level: str | None = None, log_file: str | None = None, options: dict | None = None,
          lite: bool = False, file_level_only: bool = False):
    """Configure the process's root logger (name_root; stderr + `log_file`). lite=True (exec'd plugins): no
    `logging` import until something needs it; returns None while lite. file_level_only=True
    (a config's logging inside the daemon, which owns stderr's level): `level` applies to
    `log_file` only."""
    if lite and not log_file and "logging" not in sys.modules:
        _lite["on"] = True
        _lite["level"] = _level_of(level)
        return None
    if _lite["on"] and not log_file and not file_level_only:
        _lite["level"] = _level_of(level)
        return None
    _lite["on"] = False
    import logging
    root = logging.getLogger(_names["root"])
    lvl = getattr(logging, _level_name(level), logging.INFO)
    if not file_level_only:
        root.setLevel(lvl)
    if log_file and sum(1 for h in root.handlers if getattr(h, "baseFilename", None)) >= MAX_FILE_HANDLERS:
        log_file = None
    if not root.handlers:
        h = logging.StreamHandler(sys.stderr)
        h.setFormatter(logging.Formatter(_FMT))
        h.addFilter(_container_filter())
        root.addHandler(h)
        root.propagate = False
    if log_file and not any(getattr(h, "baseFilename", None) == os.path.abspath(log_file)
                            for h in root.handlers):
        fd = os.open(log_file, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        os.close(fd)
        fh = _rotating(log_file, options) if options else logging.FileHandler(log_file)
        fh.setFormatter(logging.Formatter(_FMT))
        fh.addFilter(_container_filter())
        if file_level_only:
            # the daemon: this file gets the config's level; stderr keeps the daemon's own
            for other in root.handlers:
                if not getattr(other, "baseFilename", None) and other.level == logging.NOTSET:
                    other.setLevel(root.level)
            fh.setLevel(lvl)
            root.setLevel(min(root.level, lvl))
        root.addHandler(fh)
    return root


def _to_logging() -> None:
    """Leave lite mode: the same handlers and level, now through `logging`."""
    if _lite["on"]:
        _lite["on"] = False
        setup(next(k for k, v in _LEVELS.items() if v == _lite["level"]))


class Logger:
    """logging.getLogger("<root>.<name>") for the methods netmeta calls; anything else (and
    every call when not lite) goes to the real Logger. The full name is taken at each call:
    modules make their loggers at import, before the entry names the root."""
    __slots__ = ("sub",)

    def __init__(self, sub: str):
        self.sub = sub

    @property
    def name(self) -> str:
        return _full(self.sub)

    def _log(self, level: int, lname: str, msg, args, kw) -> None:
        if not _lite["on"] or kw:
            _to_logging()
            import logging
            logging.getLogger(self.name).log(level, msg, *args, **kw)
            return
        if level < _lite["level"]:
            return
        if len(args) == 1 and isinstance(args[0], dict) and args[0]:
            args = args[0]          # as LogRecord.getMessage
        try:
            text = str(msg) % args if args else str(msg)
        except Exception:           # logging reports a bad format on stderr and goes on
            _to_logging()
            import logging
            logging.getLogger(self.name).log(level, msg, *args if isinstance(args, tuple) else (args,))
            return
        import time
        t = time.time()
        stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t))
        sys.stderr.write(f"{stamp},{int((t - int(t)) * 1000):03d} {lname} {self.name} "
                         f"[{getattr(_current, 'cid', '-')}] {text}\n")
        sys.stderr.flush()

    def debug(self, msg, *args, **kw):
        self._log(10, "DEBUG", msg, args, kw)

    def info(self, msg, *args, **kw):
        self._log(20, "INFO", msg, args, kw)

    def warning(self, msg, *args, **kw):
        self._log(30, "WARNING", msg, args, kw)

    def error(self, msg, *args, **kw):
        self._log(40, "ERROR", msg, args, kw)

    def exception(self, msg, *args, exc_info=True, **kw):
        self._log(40, "ERROR", msg, args, dict(kw, exc_info=exc_info))

    def critical(self, msg, *args, **kw):
        self._log(50, "CRITICAL", msg, args, kw)

    def __getattr__(self, attr):
        _to_logging()
        import logging
        return getattr(logging.getLogger(self.name), attr)


def get(name: str) -> Logger:
    return Logger(name)
