"""The import rules DESIGN.md gives the packages, checked with `ast` over the source (nothing is
imported): cni/ is a protocol library that imports nothing of ours; delegates never import
meta; netmeta's plugin names live in one table (delegates/registry.py), with the two copies that
cannot read it (pyproject's [project.scripts], shim/netmeta-shim.c) checked equal to it.

`python tests/test_architecture.py` prints the import cycles that remain (reported, not asserted:
the simulator's, which the layout step removes)."""
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
    assert "meta.engine" in imports("meta.daemon", mods["meta.daemon"])


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


def test_delegates_never_import_meta():
    bad = {(name, m) for name, path in _modules("delegates").items() for m in imports(name, path)
           if m.split(".")[0] == "meta"}
    assert not bad, f"delegates must run without meta: {sorted(bad)}"


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


def test_the_only_import_cycle_left_is_the_simulators():
    """The cycles are reported (-s); the layout step removes the simulator's and then asserts none.
    Until then no new one may appear: every module in a cycle is in delegates/sriov/."""
    found = cycles()
    for comp in found:
        print("import cycle:", ", ".join(comp))
    assert all(m.startswith("delegates.sriov.") for comp in found for m in comp), found


if __name__ == "__main__":
    for comp in cycles():
        print(f"{len(comp)} modules: {', '.join(comp)}")
