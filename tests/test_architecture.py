"""The package's layering: no import cycles, and generic layers never import physics parts.

Imports are read from the source (every `import` and `from ... import`, also inside
functions, except under `if TYPE_CHECKING:`), resolved to ffjord_kit modules.
"""

import ast
from pathlib import Path

PKG = Path(__file__).resolve().parents[1] / "ffjord_kit"

# The physics problems and what sits on top of them (experiments, tutorials).
PHYSICS = ("ffjord_kit.toys", "ffjord_kit.images", "ffjord_kit.calorimeter",
           "ffjord_kit.flashsim", "ffjord_kit.klm", "ffjord_kit.experiments")
GENERIC = ("ffjord_kit.flows", "ffjord_kit.training", "ffjord_kit.distributed",
           "ffjord_kit.inference", "ffjord_kit.evaluation", "ffjord_kit.backbones",
           "ffjord_kit.networks", "ffjord_kit.transforms", "ffjord_kit.train_step",
           "ffjord_kit.fit", "ffjord_kit.config", "ffjord_kit.cli_args", "ffjord_kit.fileio",
           "ffjord_kit.errors", "ffjord_kit.quiet")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PKG.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def imports_of(path: Path, modules: set[str]) -> set[str]:
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    tree = ast.parse(path.read_text())
    skip = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skip.update(id(n) for n in ast.walk(node))
    found = set()
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(up + ([base] if base else []))
            targets = [base] + [f"{base}.{a.name}" for a in node.names]
        else:
            continue
        for t in targets:
            while t and t not in modules:
                t = t.rpartition(".")[0]
            if t and t != name and t.startswith("ffjord_kit."):
                found.add(t)
    return found


def graph() -> dict[str, set[str]]:
    files = {module_name(p): p for p in PKG.rglob("*.py")}
    return {m: imports_of(p, set(files)) for m, p in files.items()}


def test_no_import_cycles():
    g = graph()
    state, stack, cycles = {}, [], []

    def visit(m):
        state[m] = "open"
        stack.append(m)
        for n in sorted(g.get(m, ())):
            # a package's __init__ importing its own submodules is not a cycle of layers
            if m.startswith(n + ".") or n.startswith(m + "."):
                continue
            if state.get(n) == "open":
                cycles.append(stack[stack.index(n):] + [n])
            elif n not in state:
                visit(n)
        stack.pop()
        state[m] = "done"

    for m in sorted(g):
        if m not in state:
            visit(m)
    assert not cycles, "import cycles: " + "; ".join(" -> ".join(c) for c in cycles)


def test_every_module_is_placed_in_a_layer():
    unplaced = [m for m in graph() if m != "ffjord_kit" and not m.startswith(PHYSICS + GENERIC)]
    assert not unplaced, unplaced


def test_generic_layers_never_import_physics():
    bad = [f"{m} imports {n}" for m, deps in graph().items() if m.startswith(GENERIC)
           for n in deps if n.startswith(PHYSICS)]
    assert not bad, "\n".join(bad)


def test_the_checker_sees_a_cycle(tmp_path, monkeypatch):
    """The cycle test can fail: two modules importing each other are found."""
    g = {"ffjord_kit.a": {"ffjord_kit.b"}, "ffjord_kit.b": {"ffjord_kit.a"}}
    monkeypatch.setitem(globals(), "graph", lambda: g)
    try:
        test_no_import_cycles()
    except AssertionError as exc:
        assert "ffjord_kit.a -> ffjord_kit.b -> ffjord_kit.a" in str(exc)
    else:
        raise AssertionError("a cycle went unnoticed")
