"""pyroute2 without its package __init__ for exec'd plugin calls.

`import pyroute2` (0.9) imports every part of the library (IPDB, NDB, conntrack, ipset, nl80211,
wireguard, plan9 ...), some 370 modules, although a plugin call uses IPRoute and NetlinkError.
`lean_pyroute2()` registers the package with its search path but without running __init__.py,
so `from pyroute2 import IPRoute` loads pyroute2.iproute (what __init__ takes it from) only.
Any other name first runs the real __init__.py into the module, so every use still works.
The exec'd `sriov` entry (delegates/sriov/main.py) and `netmeta daemon` (meta/main.py: ~6 MB
less idle RSS) call it; netmeta's CNI entry imports pyroute2 as usual."""
import sys

# names netmeta takes from the package -> the submodule pyroute2/__init__.py takes them from
_FROM = {"IPRoute": "pyroute2.iproute", "NetlinkError": "pyroute2.netlink.exceptions",
         "netns": "pyroute2.netns"}


def lean_pyroute2() -> None:
    if "pyroute2" in sys.modules:
        return
    from importlib.machinery import PathFinder
    spec = PathFinder.find_spec("pyroute2")
    if spec is None or not spec.submodule_search_locations:
        return      # not installed: the real import raises where it is used
    mod = type(sys)("pyroute2")
    mod.__spec__, mod.__loader__, mod.__file__ = spec, spec.loader, spec.origin
    mod.__path__, mod.__package__ = list(spec.submodule_search_locations), "pyroute2"
    full: list[bool] = []
    loader = spec.loader
    assert loader is not None    # a package found on sys.path has a loader

    def __getattr__(name: str):
        # what __init__ does first: the 'pyroute2' logger's NullHandler. Deferred to the first
        # name asked of the package (IPRoute, netns ...: code that logs): pyroute2.config's
        # __init__ imports logging, multiprocessing and platform (~15 ms in an exec'd call),
        # and a call that needs only pyroute2.netlink.exceptions (cni/rtnl) never asks.
        __import__("pyroute2.config.log")
        if name in _FROM and not full:
            __import__(_FROM[name])
            sub = sys.modules[_FROM[name]]
            value = sub if name == "netns" else getattr(sub, name)
        elif not full and PathFinder.find_spec(f"pyroute2.{name}", mod.__path__):
            value = __import__(f"pyroute2.{name}", fromlist=["_"])   # a subpackage, e.g. `protocols`
        elif not full:
            full.append(True)        # the whole package, as `import pyroute2` gives it
            loader.exec_module(mod)
            if name not in mod.__dict__:
                raise AttributeError(f"module 'pyroute2' has no attribute {name!r}")
            return mod.__dict__[name]
        else:
            raise AttributeError(f"module 'pyroute2' has no attribute {name!r}")
        setattr(mod, name, value)
        return value

    mod.__dict__["__getattr__"] = __getattr__     # a module-level __getattr__ (PEP 562)
    sys.modules["pyroute2"] = mod
    # pyroute2.netlink's __init__ (logging, typing, the message classes: ~17 ms in an exec'd
    # call) is not needed for its exceptions module, all cni/rtnl.py takes from pyroute2
    lean_package("pyroute2.netlink")


def lean_package(name: str) -> None:
    """Register package `name` with its search path but without running its __init__.py, so
    importing one of its submodules loads that submodule only. Any attribute of the package
    itself first runs the real __init__.py into the module (`from name import X` still works).
    The daemon uses it for prometheus_client: its __init__ imports the HTTP/WSGI exposition
    servers (http.server, wsgiref, urllib.request, ssl: ~5 MB RSS) and registers process and
    platform collectors on a global registry the daemon does not serve."""
    if name in sys.modules:
        return
    from importlib.machinery import PathFinder
    parent_name, _, last = name.rpartition(".")
    parent = sys.modules.get(parent_name) if parent_name else None
    if parent_name and parent is None:
        return      # a subpackage is made lean under its (lean or loaded) parent only
    spec = PathFinder.find_spec(name, getattr(parent, "__path__", None))
    if spec is None or not spec.submodule_search_locations or spec.loader is None:
        return      # not installed (or not a package): the real import raises where it is used
    mod = type(sys)(name)
    mod.__spec__, mod.__loader__, mod.__file__ = spec, spec.loader, spec.origin
    mod.__path__, mod.__package__ = list(spec.submodule_search_locations), name
    loader = spec.loader
    full: list[bool] = []

    def __getattr__(attr: str):
        if not full and PathFinder.find_spec(f"{name}.{attr}", mod.__path__):
            return __import__(f"{name}.{attr}", fromlist=["_"])   # a submodule (`from . import x`)
        if not full:
            full.append(True)
            del mod.__dict__["__getattr__"]
            loader.exec_module(mod)
            if attr in mod.__dict__:
                return mod.__dict__[attr]
        raise AttributeError(f"module {name!r} has no attribute {attr!r}")

    mod.__dict__["__getattr__"] = __getattr__
    sys.modules[name] = mod
    if parent is not None:
        setattr(parent, last, mod)      # as the import system binds a submodule to its parent
