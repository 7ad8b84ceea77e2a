"""The repository keeps its promises: README commands, CI script, citation, lint, quickstart."""

import os
import re
import runpy
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import jax
import pytest

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def _bash_blocks():
    return re.findall(r"```bash\n(.*?)```", README, flags=re.S)


def test_ci_runs_the_readme_test_command_verbatim():
    test_commands = [
        line for block in _bash_blocks() for line in block.splitlines() if "pytest" in line
    ]
    assert len(test_commands) == 1, test_commands
    ci_lines = (ROOT / ".ci" / "run").read_text().splitlines()
    assert test_commands[0] in ci_lines
    assert "set -euo pipefail" in ci_lines


def test_readme_main_job_command_is_the_jaxrnn_train_default():
    (main_job,) = [
        line
        for block in _bash_blocks()
        for line in block.splitlines()
        if line.startswith("python3 -m venv") and "pytest" not in line
    ]
    # The default experiment; tests/test_training.py runs it and checks its target.
    assert main_job.endswith("pip install -e . && jaxrnn train")


def test_readme_links_exist():
    for link in re.findall(r"\]\(([^)#:]+)\)", README):
        assert (ROOT / link).exists(), link


def _python_block(heading: str) -> str:
    section = README[README.index(heading) :]
    return re.search(r"```python\n(.*?)```", section, flags=re.S).group(1)


def test_readme_example_runs():
    example = _python_block("## 30-second example")
    # A fresh interpreter: the user's defaults, not the test suite's x64/strict settings.
    subprocess.run([sys.executable, "-c", example], check=True, cwd=ROOT, timeout=300)


def test_built_in_experiments_run_by_name_from_an_installed_wheel(tmp_path):
    """A wheel carries configs/ as jaxrnn.configs: `jaxrnn train adding_lstm` from anywhere."""
    wheels, site, source = tmp_path / "wheels", tmp_path / "site", tmp_path / "source"
    # Built from a copy: setuptools writes build/ beside the sources.
    skip = (".venv*", ".git", "build", "runs", "sweeps", "*.egg-info", "__pycache__", ".*cache")
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(*skip))
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run(
        [*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", wheels, source],
        check=True,
        capture_output=True,
    )
    (wheel,) = wheels.glob("jaxrnn-*.whl")
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
    shipped = {f"jaxrnn/configs/{p.name}" for p in (ROOT / "configs").glob("*.py")}
    assert shipped <= names
    subprocess.run([*pip, "install", "--no-deps", "--target", site, wheel], check=True)
    # The installed copy comes first on the path (before this checkout's editable install),
    # and the command runs from a folder with no configs/ in sight.
    env = dict(os.environ, PYTHONPATH=str(site))
    code = (
        "import jaxrnn, sys\n"
        "from jaxrnn.training import experiment\n"
        "assert jaxrnn.__file__.startswith(sys.argv[1]), jaxrnn.__file__\n"
        "print(experiment.resolve('adding_lstm'))\n"
        "from jaxrnn.cli import main\n"
        "sys.exit(main(['train', 'adding_lstm', '--smoke', '--no-progress', '--workdir', 'run']))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(site)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.splitlines()[0] == str(site / "jaxrnn" / "configs" / "adding_lstm.py")
    assert "test split at step" in out.stdout


def test_citation_cff_is_valid():
    cffconvert = shutil.which("cffconvert") or str(Path(sys.executable).parent / "cffconvert")
    out = subprocess.run(
        [cffconvert, "--validate", "-i", str(ROOT / "CITATION.cff")],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "valid" in out.stdout
    assert "preferred-citation:" in (ROOT / "CITATION.cff").read_text()


@pytest.mark.parametrize("args", [["check"], ["format", "--check"]])
def test_ruff(args):
    subprocess.run([sys.executable, "-m", "ruff", *args, str(ROOT)], check=True, cwd=ROOT)


def test_import_jaxrnn_and_jaxrnn_help_do_not_import_jax():
    """``import jaxrnn`` and ``jaxrnn --help`` load no numerics (PEP 562: each public
    name is imported on first use); every public name is its module's object."""
    code = (
        "import contextlib, io, sys\n"
        "import jaxrnn\n"
        "from jaxrnn import cli\n"
        "with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):\n"
        "    cli.main(['--help'])\n"
        "print(sorted(m for m in ('jax', 'optax', 'numpy', 'flax') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
    import jaxrnn
    from jaxrnn.cells import initializers
    from jaxrnn.cells.lstm import lstm
    from jaxrnn.rollout import fused

    assert (jaxrnn.lstm, jaxrnn.fused, jaxrnn.initializers) == (lstm, fused, initializers)
    for name in jaxrnn.__all__:
        value = getattr(jaxrnn, name)
        assert getattr(value, "__name__", name).rpartition(".")[2] == name
    assert set(dir(jaxrnn)) >= set(jaxrnn.__all__)
    with pytest.raises(AttributeError, match="no attribute 'lstn'"):
        _ = jaxrnn.lstn


def test_library_never_imports_experiments_or_configs():
    for path in (ROOT / "jaxrnn").rglob("*.py"):
        text = path.read_text()
        assert not re.search(r"^\s*(from|import) (experiments|configs)\b", text, re.M), path


def test_quickstart_learns_the_adding_problem():
    main = runpy.run_path(str(ROOT / "experiments" / "quickstart.py"))["main"]
    # optax's Adam bias correction (float ** int32 step count) is not strict-promotion clean.
    with jax.numpy_dtype_promotion("standard"):
        test_mse = main(steps=300, length=10, hidden=32)
    # Target variance is 2/12 ≈ 0.167 (predicting the mean); learning must beat it clearly.
    assert test_mse < 0.05
