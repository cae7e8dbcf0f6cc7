"""`netmeta` as a CNI plugin (the verbs, on top of the engine)."""
import collections
import threading

from cni.plugin import Plugin

from . import config
from .engine import Engine

_engines: collections.OrderedDict = collections.OrderedDict()
_lock = threading.Lock()
MAX_ENGINES = 32   # a node has a handful of netmeta configs; more is churn, not reuse


def engine_for(conf: dict) -> Engine:
    """A warm engine per distinct configuration (the daemon serves many calls with it); the
    least recently used ones are dropped past MAX_ENGINES."""
    import json
    key = json.dumps({k: v for k, v in conf.items() if k not in ("runtimeConfig", "prevResult", "args",
                                                                "cni.dev/valid-attachments")},
                     sort_keys=True)
    with _lock:
        eng = _engines.get(key)
        if eng is not None:
            _engines.move_to_end(key)
            return eng
    eng = Engine(config.load(conf))
    with _lock:
        _engines[key] = eng
        while len(_engines) > MAX_ENGINES:
            _engines.popitem(last=False)
    return eng


class MetaPlugin(Plugin):
    type_name = "netmeta"

    def add(self, req):
        return engine_for(req.config).add(req)

    def delete(self, req):
        return engine_for(req.config).delete(req)

    def check(self, req):
        return engine_for(req.config).check(req)

    def status(self, req):
        return engine_for(req.config).status(req)

    def gc(self, req):
        return engine_for(req.config).gc(req)
