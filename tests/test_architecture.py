"""The import rules DESIGN.md gives the packages, checked with `ast` over the source (nothing is
imported): cni/ is a protocol library that imports nothing of ours; delegates never import
meta; netmeta's plugin names live in one table (delegates/registry.py), with the two copies that
cannot read it (pyproject's [project.scripts], shim/netmeta-shim.c) checked equal to it.

The layout rules each package's `__init__` docstring states are checked here too: the engine (meta's
top level) builds none of the programs on top of it (daemon/, install/, extender/), the extender
never imports the node daemon, annotations/ and kube/ are leaves of meta, the sriov product path
never imports its simulator (the registry names it as a backend), and the graph has no cycle.
`python tests/test_architecture.py` prints any cycle."""
import ast
import os
import re
import sys
import tomllib

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from delegates import registry  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OURS = ("cni", "meta", "delegates")


def _modules(pkg: str) -> dict:
    """dotted module name -> path, for every .py under `pkg`."""
    out = {}
    for d, _, files in os.walk(os.path.join(ROOT, pkg)):
        for f in files:
            if f.endswith(".py"):
                rel = os.path.relpath(os.path.join(d, f), ROOT)[:-3].replace(os.sep, ".")
                out[rel.removesuffix(".__init__")] = os.path.join(d, f)
    return out


def imports(name: str, path: str) -> set:
    """The absolute module names `name` imports anywhere (top level or inside functions)."""
    with open(path, encoding="utf-8") as f:
        tree = ast.parse(f.read(), path)
    pkg = name if path.endswith("__init__.py") else name.rpartition(".")[0]
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = ".".join(pkg.split(".")[:len(pkg.split(".")) - node.level + 1])
                mod = f"{base}.{node.module}" if node.module else base
            else:
                mod = node.module
            out.add(mod)
            out.update(f"{mod}.{a.name}" for a in node.names)   # `from pkg import module`
    return out


def _all_modules() -> dict:
    mods = {}
    for p in OURS:
        mods.update(_modules(p))
    return mods


def _ours(mod: str) -> bool:
    return mod.split(".")[0] in OURS + ("tests",)


def test_the_rules_see_imports_at_every_depth():
    """The checker itself: relative, absolute and function-level imports all count."""
    mods = _all_modules()
    assert "delegates.registry" in imports("delegates.sriov.plugin", mods["delegates.sriov.plugin"])
    assert "cni.invoke" in imports("delegates.sriov.config", mods["delegates.sriov.config"])  # in a function
    assert "meta.engine" in imports("meta.daemon.server", mods["meta.daemon.server"])


def test_cni_imports_nothing_of_ours():
    bad = {(name, m) for name, path in _modules("cni").items() for m in imports(name, path)
           if _ours(m) and m.split(".")[0] != "cni"}
    assert not bad, f"cni/ is a protocol library for any plugin; these name ours: {sorted(bad)}"


def test_cni_names_no_module_of_ours_in_its_code():
    """Nor through strings: importlib targets ("delegates.x.plugin:Class") or patterns matching
    our entry scripts ("from meta.main import main") are the registry's, passed in."""
    pat = re.compile(r"\b(meta|delegates)(\\?\.)[a-z_]")
    bad = []
    for name, path in _modules("cni").items():
        with open(path, encoding="utf-8") as f:
            tree = ast.parse(f.read(), path)
        docs = {id(n.value) for n in ast.walk(tree) if isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant)}
        for n in ast.walk(tree):
            if isinstance(n, ast.Constant) and isinstance(n.value, (str, bytes)) and id(n) not in docs:
                v = n.value.decode("latin-1") if isinstance(n.value, bytes) else n.value
                if pat.search(v):
                    bad.append((name, n.lineno, v[:60]))
    assert not bad, bad


def _code_strings(path: str):
    """(line, text) of every string/bytes constant in the code of `path`, docstrings excepted."""
    with open(path, encoding="utf-8") as f:
        tree = ast.parse(f.read(), path)
    docs = {id(n.value) for n in ast.walk(tree) if isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant)}
    for n in ast.walk(tree):
        if isinstance(n, ast.Constant) and isinstance(n.value, (str, bytes)) and id(n) not in docs:
            yield n.lineno, n.value.decode("latin-1") if isinstance(n.value, bytes) else n.value


def test_cni_names_no_product_in_its_code():
    """Nor the product: "netmeta" / NETMETA_* (socket path, env variables, config keys' owner,
    messages, the log root and its level variable, the fault variable, the kube client's
    User-Agent and temp-dir prefixes) come from the caller: its profile (delegates/registry.py
    SHIM) or an argument. Docstrings and comments may mention it."""
    bad = []
    for name, path in _modules("cni").items():
        for line, v in _code_strings(path):
            if "netmeta" in v.lower():
                bad.append((name, line, v[:60]))
    assert not bad, bad


def test_delegates_never_import_meta():
    bad = {(name, m) for name, path in _modules("delegates").items() for m in imports(name, path)
           if m.split(".")[0] == "meta"}
    assert not bad, f"delegates must run without meta: {sorted(bad)}"


def private_uses(name: str, path: str) -> list:
    """(line, module, name) for each private name (`_x`, not dunder) of another module of ours
    that `name` uses: `from mod import _x`, or `mod._x` on a module of ours it imported."""
    with open(path, encoding="utf-8") as f:
        tree = ast.parse(f.read(), path)
    pkg = name if path.endswith("__init__.py") else name.rpartition(".")[0]
    mods = _all_modules()
    private = re.compile(r"^_(?!_)")
    aliases, out = {}, []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = ".".join(pkg.split(".")[:len(pkg.split(".")) - node.level + 1])
                mod = f"{base}.{node.module}" if node.module else base
            else:
                mod = node.module or ""
            if not _ours(mod):
                continue
            for a in node.names:
                if f"{mod}.{a.name}" in mods:
                    aliases[a.asname or a.name] = f"{mod}.{a.name}"
                elif private.match(a.name) and mod != name:
                    out.append((node.lineno, mod, a.name))
        elif isinstance(node, ast.Import):
            for a in node.names:
                if _ours(a.name):
                    aliases[a.asname or a.name.partition(".")[0]] = a.asname and a.name or a.name.partition(".")[0]
    for node in ast.walk(tree):
        if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in aliases
                and private.match(node.attr) and aliases[node.value.id] != name):
            out.append((node.lineno, aliases[node.value.id], node.attr))
    return out


def test_private_names_stay_in_their_module():
    """A `_name` is its module's own: another module of ours that needs it gets a public name
    (tests/ may reach into privates)."""
    bad = [(name, *use) for name, path in _all_modules().items() for use in private_uses(name, path)]
    assert not bad, bad


def test_the_private_name_rule_sees_both_forms(tmp_path):
    src = tmp_path / "m.py"
    src.write_text("from .errors import _fail, quote\nfrom cni import skel\nimport cni.log as lg\n"
                   "def f():\n    return skel._error_version(b''), lg._lite, skel.main\n")
    uses = {(m, n) for _, m, n in private_uses("meta.annotations.x", str(src))}
    assert uses == {("meta.annotations.errors", "_fail"), ("cni.skel", "_error_version"), ("cni.log", "_lite")}


def _names_in_literals(path: str) -> list:
    """(line, names) of every list/tuple/set/dict literal naming two or more of our plugins."""
    with open(path, encoding="utf-8") as f:
        tree = ast.parse(f.read(), path)
    found = []
    for node in ast.walk(tree):
        elts = node.keys if isinstance(node, ast.Dict) else getattr(node, "elts", None) \
            if isinstance(node, (ast.List, ast.Tuple, ast.Set)) else None
        names = {e.value for e in elts or [] if isinstance(e, ast.Constant) and e.value in registry.PLUGINS}
        if len(names) >= 2:
            found.append((node.lineno, sorted(names)))
    return found


def test_plugin_names_are_listed_in_one_table():
    tables = {os.path.relpath(p, ROOT): hits for p in _all_modules().values() if (hits := _names_in_literals(p))}
    assert list(tables) == [os.path.join("delegates", "registry.py")], tables
    with open(os.path.join(ROOT, "Makefile"), encoding="utf-8") as f:
        recipes = [ln for ln in f if ln.startswith("\t")]
    listed = [ln for ln in recipes if sum(re.search(rf"\b{n}\b", ln) is not None for n in registry.NAMES) >= 2]
    assert not listed, f"the Makefile lists plugins itself: {listed}"
    assert any("-m delegates.registry" in ln for ln in recipes)


def test_pyproject_scripts_match_the_registry():
    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as f:
        scripts = tomllib.load(f)["project"]["scripts"]
    assert scripts == {name: f"{mod}:main" for name, mod in registry.MAIN.items()}


def test_the_native_shim_knows_the_same_names():
    with open(os.path.join(ROOT, "shim", "netmeta-shim.c"), encoding="utf-8") as f:
        src = f.read()
    line = re.search(r"const char \*plugin = (.*);", src).group(1)   # its name -> plugin choice
    assert set(re.findall(r'"([^"]+)"', line)) == set(registry.NAMES)
    assert f'MARKER[] = "{registry.MARKER}"' in src   # how cni.invoke knows the binary as ours
    assert registry.MARKER.encode() in registry.OWN.markers


def test_registry_entries_exist_and_dispatch_only_delegates():
    mods = _all_modules()
    for name, p in registry.PLUGINS.items():
        assert p["main"] in mods, name
        mod, _, cls = p["plugin"].partition(":")
        with open(mods[mod], encoding="utf-8") as f:
            assert any(isinstance(n, ast.ClassDef) and n.name == cls for n in ast.walk(ast.parse(f.read()))), name
    # in-process dispatch (cni.invoke) runs delegates only: never the meta plugin inside itself
    assert all(t.startswith("delegates.") for t in registry.OWN.in_process.values())


def cycles() -> list:
    """The strongly connected components (size > 1) of our import graph (Tarjan)."""
    mods = _all_modules()
    graph = {n: sorted({m if m in mods else m.rpartition(".")[0] for m in imports(n, p)} & set(mods) - {n})
             for n, p in mods.items()}
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))
    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_the_import_graph_has_no_cycle():
    found = cycles()
    assert not found, "import cycles: " + "; ".join(", ".join(c) for c in found)


def _edges(src_pkg: str, exclude: tuple = ()) -> set:
    """(module, imported module of ours) for every module under `src_pkg` (not in `exclude`)."""
    return {(name, m) for name, path in _modules(src_pkg.replace(".", os.sep)).items()
            if not any(name == e or name.startswith(e + ".") for e in exclude)
            for m in imports(name, path) if _ours(m)}


def _under(mod: str, *pkgs: str) -> bool:
    return any(mod == p or mod.startswith(p + ".") for p in pkgs)


PROGRAMS = ("meta.daemon", "meta.install", "meta.extender")


def test_the_engine_imports_none_of_the_programs_built_on_it():
    """meta's top level is the engine; daemon/, install/ and extender/ build on it. Only
    meta/main.py, the `netmeta` executable, dispatches to them."""
    bad = {(n, m) for n, m in _edges("meta", exclude=PROGRAMS + ("meta.main",)) if _under(m, *PROGRAMS)}
    assert not bad, sorted(bad)


def test_the_programs_stay_apart():
    """The extender runs in the control plane, never beside the node daemon: neither imports the
    other; the installer imports neither."""
    pairs = [("meta.extender", "meta.daemon"), ("meta.daemon", "meta.extender"),
             ("meta.install", "meta.daemon"), ("meta.install", "meta.extender"),
             ("meta.daemon", "meta.install"), ("meta.extender", "meta.install")]
    bad = {(n, m) for src, dst in pairs for n, m in _edges(src) if _under(m, dst)}
    assert not bad, sorted(bad)


def test_annotations_and_kube_are_leaves_of_meta():
    """Pure parsers and the API wrapper: they import nothing else of meta (nor daemon state)."""
    for pkg in ("meta.annotations", "meta.kube", "meta.podresources"):
        bad = {(n, m) for n, m in _edges(pkg) if _under(m, "meta") and not _under(m, pkg)}
        assert not bad, sorted(bad)


def test_the_sriov_product_never_imports_its_simulator():
    """The sim is a VF-table backend named in delegates/registry.py and loaded by name; the
    product path has no sync hook and no import of it."""
    bad = {(n, m) for n, m in _edges("delegates", exclude=("delegates.sriov.sim",))
           if _under(m, "delegates.sriov.sim")}
    assert not bad, sorted(bad)
    for part in ("table", "topology"):
        assert registry.sriov_backend("sim", part).__module__.startswith("delegates.sriov.sim.")
        assert not registry.sriov_backend("netlink", part).__module__.startswith("delegates.sriov.sim")


if __name__ == "__main__":
    for comp in cycles():
        print(f"{len(comp)} modules: {', '.join(comp)}")
