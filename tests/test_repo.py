"""The repository keeps its promises: README commands, CI script, citation, lint, quickstart."""

import re
import runpy
import shutil
import subprocess
import sys
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


def test_readme_example_runs():
    (example,) = re.findall(r"```python\n(.*?)```", README, flags=re.S)
    # A fresh interpreter: the user's defaults, not the test suite's x64/strict settings.
    subprocess.run([sys.executable, "-c", example], check=True, cwd=ROOT, timeout=300)


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
