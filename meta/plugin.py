"""`netmeta` as a CNI plugin (the verbs, on top of the engine)."""
import _thread  # (threading's Lock; `threading` itself would rule out the exec'd call's fast exit: cni.shim.leave)
import collections

from cni import jsonlite
from cni.plugin import Plugin

from . import config
from .engine import THIN, Engine, Services

MAX_ENGINES = 32   # a node has a handful of netmeta configs; more is churn, not reuse


class MetaPlugin(Plugin):
    type_name = "netmeta"

    def __init__(self, services: Services = THIN):
        """`services`: what the hosting process lends the engines (meta/engine.py Services;
        the daemon passes its own, thin mode takes the defaults)."""
        self.services = services
        self._engines: collections.OrderedDict = collections.OrderedDict()
        self._lock = _thread.allocate_lock()

    def engine_for(self, conf: dict) -> Engine:
        """A warm engine per distinct configuration (the daemon serves many calls with it); the
        least recently used ones are dropped past MAX_ENGINES."""
        key = jsonlite.dumps({k: v for k, v in conf.items()
                              if k not in ("runtimeConfig", "prevResult", "args", "cni.dev/valid-attachments")},
                             sort_keys=True)
        with self._lock:
            eng = self._engines.get(key)
            if eng is not None:
                self._engines.move_to_end(key)
                return eng
        eng = Engine(config.load(conf), self.services)
        with self._lock:
            self._engines[key] = eng
            while len(self._engines) > MAX_ENGINES:
                self._engines.popitem(last=False)
        return eng

    def add(self, req):
        return self.engine_for(req.config).add(req)

    def delete(self, req):
        return self.engine_for(req.config).delete(req)

    def check(self, req):
        return self.engine_for(req.config).check(req)

    def status(self, req):
        return self.engine_for(req.config).status(req)

    def gc(self, req):
        return self.engine_for(req.config).gc(req)
