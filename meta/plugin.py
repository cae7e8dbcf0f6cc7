"""`netmeta` as a CNI plugin (the verbs, on top of the engine)."""
from cni.plugin import Plugin

from . import config
from .engine import Engine

_engines: dict = {}


def engine_for(conf: dict) -> Engine:
    """A warm engine per distinct configuration (the daemon serves many calls with it)."""
    import json
    key = json.dumps({k: v for k, v in conf.items() if k not in ("runtimeConfig", "prevResult", "args",
                                                                "cni.dev/valid-attachments")},
                     sort_keys=True)
    if key not in _engines:
        _engines[key] = Engine(config.load(conf))
    return _engines[key]


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
