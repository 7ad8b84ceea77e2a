"""The library's shape, read from its source (AST): floors, public names, docstrings, packages.

The floors (``../shared/STYLE.md``, principle 16) are::

    cells -> rollout -> combinators and trees -> models -> tasks -> training -> sweep -> CLI

and imports point down only, with no exception: a cell declares its fast path's
pieces (``jaxrnn.cells.base.Step``) and the rollout's engines use them. No module
imports another module's underscore names, at least 90% of public functions and
classes have docstrings, the training loop and the sweep engine hold no task-name
``if`` chains, and ``pyproject.toml`` installs every package.
"""

import ast
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LIB = ROOT / "jaxrnn"

FLOORS = {
    "jaxrnn.cells": 1,
    "jaxrnn.rollout": 2,
    "jaxrnn.combinators": 3,
    "jaxrnn.trees": 3,
    "jaxrnn.models": 4,
    "jaxrnn.interop": 4,  # adapters of the cells and layers to PyTorch and Flax
    "jaxrnn.testing": 4,  # check_cell, check_tree_cell: above the rollout and trees they check
    "jaxrnn.tasks": 5,
    "jaxrnn.training": 6,
    "jaxrnn.sweep": 7,
    "jaxrnn.cli": 8,
}
# Names of the built-in tasks and experiments, which the loop must never branch on.
TASK_NAMES = {
    "adding",
    "copying",
    "parity",
    "digits",
    "addition",
    "shakespeare",
    "expressions",
    "adding_lstm",
    "copying_gru",
    "parity_lstm",
    "digits_lstm",
    "addition_seq2seq",
    "shakespeare_char",
    "expressions_treelstm",
    "regression",
    "classification",
    "tokens",
    "seq2seq",
}


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in sorted(LIB.rglob("*.py"))}
TREES = {name: ast.parse(path.read_text(), str(path)) for name, path in MODULES.items()}


def _floor(module: str) -> int | None:
    for prefix, floor in FLOORS.items():
        if module == prefix or module.startswith(prefix + "."):
            return floor
    return None


def _package(module: str) -> str:
    path = MODULES[module]
    return module if path.name == "__init__.py" else module.rpartition(".")[0]


def _imports(module: str):
    """``(line, imported module, names)`` of every jaxrnn import of ``module``, lazy ones too."""
    for node in ast.walk(TREES[module]):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "jaxrnn":
                    yield node.lineno, alias.name, ()
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolved against the package
                base = ".".join([*_package(module).split(".")[: 1 - node.level or None], base])
            if base.split(".")[0] != "jaxrnn":
                continue
            for alias in node.names:
                target = f"{base}.{alias.name}"
                yield node.lineno, target if target in MODULES else base, (alias.name,)


def test_every_module_has_a_floor():
    floorless = [m for m in MODULES if m != "jaxrnn" and _floor(m) is None]
    assert floorless == []


def test_imports_point_down_the_floors():
    upward = []
    for module in MODULES:
        if module == "jaxrnn":
            continue  # the facade re-exports the public surface
        for line, target, _ in _imports(module):
            if target == "jaxrnn":
                upward.append(f"{module}:{line} imports the jaxrnn facade; import the module")
                continue
            if _floor(target) > _floor(module):
                upward.append(f"{module}:{line} imports {target} from a floor above")
    assert upward == []


def test_no_module_imports_another_modules_underscore_names():
    found = []
    for module in MODULES:
        aliases = {}
        for line, target, names in _imports(module):
            for name in names:
                if name.startswith("_") and not name.startswith("__") and target != module:
                    found.append(f"{module}:{line} imports {target}.{name}")
        for node in ast.walk(TREES[module]):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("jaxrnn"):
                for alias in node.names:
                    if f"{node.module}.{alias.name}" in MODULES:
                        aliases[alias.asname or alias.name] = f"{node.module}.{alias.name}"
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name.startswith("jaxrnn") and alias.asname:
                        aliases[alias.asname] = alias.name
        for node in ast.walk(TREES[module]):
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id in aliases
                and node.attr.startswith("_")
                and not node.attr.startswith("__")
            ):
                found.append(f"{module}:{node.lineno} uses {aliases[node.value.id]}.{node.attr}")
    assert found == []


def _public_definitions():
    """Public module-level functions and classes, and public methods of public classes."""
    for module, tree in TREES.items():
        for node in tree.body:
            if isinstance(node, ast.FunctionDef | ast.ClassDef) and not node.name.startswith("_"):
                yield module, node
                if isinstance(node, ast.ClassDef):
                    for child in node.body:
                        if isinstance(child, ast.FunctionDef) and not child.name.startswith("_"):
                            yield module, child


def test_docstring_coverage_is_at_least_90_percent():
    definitions = list(_public_definitions())
    missing = [f"{m}.{n.name}" for m, n in definitions if ast.get_docstring(n) is None]
    coverage = 1 - len(missing) / len(definitions)
    assert coverage >= 0.9, f"{coverage:.1%} documented; missing: {missing}"


@pytest.mark.parametrize("package", ["jaxrnn.training", "jaxrnn.sweep"])
def test_the_loop_and_the_sweep_never_branch_on_a_task_name(package):
    branches = []
    for module, tree in TREES.items():
        if not module.startswith(package):
            continue
        for node in ast.walk(tree):
            operands = []
            if isinstance(node, ast.Compare):
                operands = [node.left, *node.comparators]
            elif isinstance(node, ast.Dict):
                operands = [k for k in node.keys if k is not None]
            elif isinstance(node, ast.Match):
                operands = [c.pattern for c in node.cases]
            for operand in operands:
                for leaf in ast.walk(operand):
                    if isinstance(leaf, ast.Constant) and leaf.value in TASK_NAMES:
                        branches.append(f"{module}:{node.lineno} compares with {leaf.value!r}")
    assert branches == []


def test_pyproject_installs_every_package_and_the_built_in_experiments():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    packages = {_module_name(p) for p in LIB.rglob("__init__.py")}
    assert set(project["packages"]) == packages | {"jaxrnn.configs"}
    assert project["package-dir"] == {"jaxrnn.configs": "configs"}


def test_the_top_level_holds_only_the_facade_the_cli_and_the_conformance_kit():
    """``jaxrnn.testing`` is for researchers' own cells (``check_cell``), as ``numpy.testing``."""
    top = sorted(p.name for p in LIB.glob("*.py"))
    assert top == ["__init__.py", "cli.py", "testing.py"]
