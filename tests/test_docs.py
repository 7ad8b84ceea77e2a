"""The documentation site builds with ``mkdocs build --strict``, offline, and every public name
has a docstring.

``--strict`` turns every warning into a failure: a cross-reference that does not resolve
(``[jaxrnn.scan][jaxrnn.rollout.scan.scan]``), a link to a missing page, a snippet include
of a missing file, a docstring griffe cannot parse. It does not see a missing docstring
(mkdocstrings leaves an undocumented name out), hence the second test.

The rule for "public": every module of the package whose dotted path has no component
starting with ``_``, except ``jaxrnn.cli`` (the command, documented by ``jaxrnn --help``
and the README; it is not part of the API reference); in those, the module itself, every
module-level function and class whose name does not start with ``_``, and every such
method of those classes; plus every function, class and module named in the ``__all__``
of ``jaxrnn`` and its subpackages (constants such as ``ACTIVATIONS`` cannot carry a
docstring and are left out; a NamedTuple's generated ``Name(a, b)`` does not count).
"""

import ast
import importlib
import inspect
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LIB = ROOT / "jaxrnn"
NOT_API = {"jaxrnn.cli"}


def _public_modules():
    for path in sorted(LIB.rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        if any(p.startswith("_") and p != "__init__" for p in parts):
            continue
        name = ".".join(p for p in parts if p != "__init__")
        if name not in NOT_API:
            yield name, path


def _undocumented_definitions():
    for module, path in _public_modules():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        if ast.get_docstring(tree) is None:
            yield f"{module} (module)"
        for node in tree.body:
            if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                continue
            if node.name.startswith("_"):
                continue
            if ast.get_docstring(node) is None:
                yield f"{module}.{node.name}"
            if isinstance(node, ast.ClassDef):
                for child in node.body:
                    if (
                        isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef)
                        and not child.name.startswith("_")
                        and ast.get_docstring(child) is None
                    ):
                        yield f"{module}.{node.name}.{child.name}"


def _own_docstring(obj) -> str | None:
    doc = obj.__dict__.get("__doc__") if inspect.isclass(obj) else obj.__doc__
    # typing.NamedTuple writes "Name(a, b)" (or "Name(a,)") when the class has no docstring.
    if inspect.isclass(obj) and isinstance(doc, str) and re.fullmatch(r"\w+\([\w, ]*\)", doc):
        return None
    return doc.strip() if isinstance(doc, str) and doc.strip() else None


def _undocumented_exports():
    subpackages = (p.parent.name for p in LIB.glob("*/__init__.py"))
    packages = ["jaxrnn", *sorted(f"jaxrnn.{p}" for p in subpackages if not p.startswith("_"))]
    for package in packages:
        module = importlib.import_module(package)
        for name in getattr(module, "__all__", []):
            obj = getattr(module, name)
            if not (inspect.ismodule(obj) or inspect.isclass(obj) or callable(obj)):
                continue  # a constant: no docstring of its own is possible
            if _own_docstring(obj) is None:
                yield f"{package}.{name}"


def test_every_public_name_has_a_docstring():
    missing = sorted(set(_undocumented_definitions()) | set(_undocumented_exports()))
    assert missing == [], f"{len(missing)} public names without a docstring: {missing}"


def test_the_site_builds_strict_and_offline(tmp_path):
    pytest.importorskip("mkdocs", reason="mkdocs is not installed: pip install -e '.[test]'")
    pytest.importorskip("material", reason="mkdocs-material is not installed")
    pytest.importorskip("mkdocstrings_handlers.python", reason="mkdocstrings-python is absent")
    # Offline: every HTTP(S) request through a proxy that refuses connections, so a plugin
    # or extension that fetched something at build time would fail here.
    refused = "http://127.0.0.1:9"
    env = {
        **os.environ,
        "HTTP_PROXY": refused,
        "HTTPS_PROXY": refused,
        "http_proxy": refused,
        "https_proxy": refused,
        "NO_PROXY": "",
        "no_proxy": "",
        "NO_MKDOCS_2_WARNING": "1",
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    site = tmp_path / "site"
    start = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--quiet", "-d", str(site)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    seconds = time.perf_counter() - start
    assert result.returncode == 0, f"mkdocs build --strict failed:\n{result.stderr[-6000:]}"
    print(f"mkdocs build --strict: {seconds:.1f} s")
    # The API reference holds the docstrings, and the pages their cross-references.
    api = (site / "api" / "cells" / "index.html").read_text(encoding="utf-8")
    assert "Hochreiter" in api and 'id="jaxrnn.cells.lstm.lstm"' in api
    # experiments/README.md is a page of the site (docs/experiments links to experiments/).
    experiments = (site / "experiments" / "index.html").read_text(encoding="utf-8")
    assert "Tree-LSTM vs sequence LSTM" in experiments
    assert (site / "experiments" / "figures" / "adding_lstm_loss.png").is_file()
    # Material links Google Fonts unless told not to; a locally served site stays offline.
    for page in site.rglob("*.html"):
        assert "fonts.googleapis.com" not in page.read_text(encoding="utf-8"), page
    shutil.rmtree(site)


def test_the_experiment_tutorial_shows_the_readme_experiment():
    """docs/tutorials/mackey_glass.py is the README's "Your own experiment" file."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(.*?)```", readme, flags=re.S)
    [block] = [b for b in blocks if b.startswith('"""jaxrnn train mackey_glass.py')]
    tutorial = (ROOT / "docs" / "tutorials" / "mackey_glass.py").read_text(encoding="utf-8")
    assert tutorial == block, "update docs/tutorials/mackey_glass.py from the README"


def test_every_public_module_has_a_place_in_the_api_reference():
    """A new module (``jaxrnn.interop.flax``, say) needs its ``::: module`` line in docs/api."""
    documented = set()
    for page in (ROOT / "docs" / "api").glob("*.md"):
        documented |= set(re.findall(r"^::: ([\w.]+)", page.read_text(encoding="utf-8"), re.M))
    missing = [name for name, _ in _public_modules() if name not in documented]
    assert missing == [], f"add `::: <module>` to the page of its package in docs/api: {missing}"
