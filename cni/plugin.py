"""Plugin base class and dispatch of one validated request to it (shared by the exec'd
entry points, the daemon and in-process delegation)."""
from . import log, version
from .errors import INTERNAL, CNIError
from .request import Request
from .result import Result

_log = log.get("plugin")


class Plugin:
    """One CNI plugin: override add/delete and what else it supports."""
    type_name = "plugin"

    def add(self, req: Request) -> Result:
        raise NotImplementedError

    def delete(self, req: Request) -> None:
        raise NotImplementedError

    def check(self, req: Request) -> None:
        raise CNIError(INTERNAL, f"{self.type_name} does not implement CHECK")

    def status(self, req: Request) -> None:
        return None

    def gc(self, req: Request) -> None:
        return None


def dispatch(plugin: Plugin, req: Request) -> dict | None:
    """Run the verb; returns the JSON object to print (or None). Raises CNIError."""
    log.set_container(req.container_id)
    if req.command == "VERSION":
        return version.version_info()
    if req.command == "ADD":
        res = plugin.add(req)
        try:
            return res.to_dict(req.cni_version)
        except CNIError:
            # a result the config's version cannot carry (0.1.0/0.2.0 without any IP): the
            # caller gets an error, so nothing may stay attached
            _log.warning("result does not fit cniVersion %s: undoing the ADD", req.cni_version)
            plugin.delete(req)
            raise
    if req.command == "DEL":
        plugin.delete(req)
    elif req.command == "CHECK":
        plugin.check(req)
    elif req.command == "STATUS":
        plugin.status(req)
    elif req.command == "GC":
        plugin.gc(req)
    return None
