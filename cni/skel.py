"""The one top-level place that turns a CNI call into exactly one JSON document on stdout:
the result, or the error JSON for ANY exception, with a non-zero exit and a log line."""
import contextlib
import os
import sys

from . import jsonlite, log, version
from .errors import INTERNAL, IO_FAILURE, CNIError
from .plugin import Plugin, dispatch
from .request import from_env

_log = log.get("skel")


def error_version(stdin: bytes) -> str:
    try:
        v = version.of_config(jsonlite.loads(stdin))
        return v if v in version.SUPPORTED else version.CURRENT
    except Exception:
        return version.CURRENT


def handle(plugin: Plugin, environ, stdin: bytes) -> tuple[int, bytes]:
    """(exit code, stdout bytes) for one call; never raises."""
    try:
        req = from_env(environ, stdin)
        out = dispatch(plugin, req)
        return 0, (jsonlite.dumps(out).encode() + b"\n") if out is not None else b""
    except CNIError as e:
        _log.error("%s %s failed: code %d: %s", environ.get("CNI_COMMAND", "?"),
                   plugin.type_name, e.code, e)
        return 1, jsonlite.dumps(e.to_dict(error_version(stdin))).encode() + b"\n"
    except OSError as e:   # a state file or directory we cannot write: an I/O failure, not a bug
        _log.error("%s %s failed: I/O error: %s", environ.get("CNI_COMMAND", "?"), plugin.type_name, e)
        err = CNIError(IO_FAILURE, f"I/O failure in {plugin.type_name}: {e.strerror or e}", str(e)[:500])
        return 1, jsonlite.dumps(err.to_dict(error_version(stdin))).encode() + b"\n"
    except Exception as e:  # a bug, still answered in the protocol
        import traceback
        _log.error("internal error in %s: %s", plugin.type_name, traceback.format_exc())
        err = CNIError(INTERNAL, f"internal error in {plugin.type_name}: {type(e).__name__}",
                       str(e)[:1000])
        return 1, jsonlite.dumps(err.to_dict(error_version(stdin))).encode() + b"\n"


def main(plugin: Plugin, stdin: bytes | None = None) -> int:
    """Entry point of an exec'd plugin. Anything printed by accident (by us or a library) goes
    to stderr: fd 1 is pointed at stderr while the plugin runs and restored for the answer."""
    log.setup(lite=True)   # `logging` only if a log file or a traceback needs it
    if stdin is None:
        stdin = b"" if os.environ.get("CNI_COMMAND") == "VERSION" and sys.stdin.isatty() else sys.stdin.buffer.read()
    real_stdout = os.dup(1)
    os.dup2(2, 1)
    try:
        with contextlib.redirect_stdout(sys.stderr):
            code, out = handle(plugin, os.environ, stdin)
    finally:
        sys.stdout.flush()
        os.dup2(real_stdout, 1)
        os.close(real_stdout)
    while out:  # a pipe may take less than all of it in one write
        out = out[os.write(1, out):]
    if "logging" in sys.modules:
        sys.modules["logging"].shutdown()
    return code
