"""``jaxrnn train --extend``: a finished run continued to more steps (issue 14, item 5)."""

import hashlib
import json
import subprocess
import sys

import jax
import numpy as np
import pytest

from jaxrnn import cli, training
from jaxrnn.training import rundir

pytestmark = pytest.mark.usefixtures("standard_dtype_promotion")
TIMING = {"steps_per_s", "tokens_per_s"}


def _quiet(_):
    pass


def _digest(workdir, step):
    h = hashlib.sha256()
    for x in jax.tree.leaves(training.load_run(workdir, step).params):
        h.update(np.asarray(x).tobytes())
    return h.hexdigest()


def _train_log(workdir):
    return [
        {k: v for k, v in r.items() if k not in TIMING}
        for r in rundir.read_log(workdir / rundir.LOG)
        if r["kind"] != "test"
    ]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A 20-step smoke run extended to 40 steps, and a 40-step run from the start."""
    root = tmp_path_factory.mktemp("extend")
    with jax.numpy_dtype_promotion("standard"):  # optax's Adam is not strict-clean
        return _runs(root)


def _runs(root):
    training.train("adding_lstm", [], smoke=True, workdir=root / "short", echo=_quiet)
    extended = training.extend(root / "short", ["train.steps=40"], echo=_quiet)
    whole = training.train(
        "adding_lstm", ["train.steps=40"], smoke=True, workdir=root / "whole", echo=_quiet
    )
    return root, extended, whole


def test_an_extended_run_equals_one_started_with_the_larger_budget(runs):
    """With a schedule that does not depend on train.steps (the default ``constant``)."""
    root, extended, whole = runs
    assert extended["status"] == whole["status"] == "finished" and extended["step"] == 40
    assert _digest(root / "short", 40) == _digest(root / "whole", 40)
    assert _train_log(root / "short") == _train_log(root / "whole")  # the history is kept
    assert extended["loss"] == whole["loss"] and extended["chosen_step"] == whole["chosen_step"]


def test_the_lineage_is_recorded_in_the_manifest(runs):
    root, _, _ = runs
    manifest = json.loads((root / "short" / "manifest.json").read_text())
    (record,) = manifest["extended"]
    assert record["at_step"] == 20 and record["steps"] == [20, 40]
    assert record["config_hash"][1] == manifest["config_hash"] != record["config_hash"][0]
    assert json.loads((root / "short" / "config.json").read_text())["train"]["steps"] == 40


def test_only_the_budget_evaluation_and_logging_may_change(runs):
    root, _, _ = runs
    with pytest.raises(rundir.RunDirError) as refused:
        training.extend(
            root / "whole", ["train.steps=60", "model.hidden_size=3", "optim.learning_rate=0.1"]
        )
    message = str(refused.value)
    assert "model.hidden_size:" in message
    assert "optim.learning_rate" in message and "train.steps" not in message.split("differ:")[1]
    with pytest.raises(rundir.RunDirError, match="expected more than the 40 steps"):
        training.extend(root / "whole", ["train.steps=30"])


def test_without_extend_the_refusal_names_the_keys_and_the_way_to_extend(runs, tmp_path):
    root, _, _ = runs
    proc = subprocess.run(
        [sys.executable, "-m", "jaxrnn.cli", "train", "adding_lstm", "--smoke",
         "--no-progress", "train.steps=80", "--workdir", str(root / "whole")],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == cli.EXIT_USAGE, proc.stdout + proc.stderr
    out = " ".join(proc.stdout.split())
    assert "train.steps: 40 there, 80 here" in out and "--extend" in out
    assert "Traceback" not in proc.stdout + proc.stderr


def test_an_unfinished_run_is_not_extended(tmp_path):
    workdir = tmp_path / "cut"
    training.train("adding_lstm", [], smoke=True, workdir=workdir, echo=_quiet)
    status = json.loads((workdir / "status.json").read_text())
    rundir.write_status(workdir, "interrupted", step=10, last_checkpoint=10)
    with pytest.raises(rundir.RunDirError, match="interrupted, not finished"):
        training.extend(workdir, ["train.steps=40"])
    rundir.write_status(workdir, **status)


def test_a_run_directory_in_use_is_not_extended_and_not_written(runs, capsys, held_elsewhere):
    root, _, _ = runs
    workdir = root / "whole"
    files = {p: p.read_bytes() for p in workdir.iterdir() if p.is_file() and p.name != ".lock"}
    with held_elsewhere(workdir):
        code = cli.main(["train", "--extend", str(workdir), "train.steps=60", "--no-progress"])
    assert code == cli.EXIT_FAILED  # in use: it may succeed later, unlike bad input (2)
    assert "in use by pid" in capsys.readouterr().out
    assert {p: p.read_bytes() for p in files} == files  # neither lineage nor status written
