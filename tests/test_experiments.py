"""Experiments as plug-ins: a file outside the repository gets the whole runner.

The README's "Your own experiment" file is written to a folder outside the
repository and run through the ``jaxrnn`` command: training, exact resume after
``kill -9``, a 2 × 2 sweep whose members equal their solo runs, the summary table,
``jaxrnn eval`` of a sweep member, and a moved or edited file. Smaller experiment
files written here test the rest of the plug-in form against oracles: a stateful
objective against a hand-written truncated-BPTT loop, host-side metrics and
each-example-once test scoring against NumPy, model choice and early stopping
that agree between a solo run and a sweep member, a two-stage protocol, and the
errors a broken experiment file gets before any compute.
"""

import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import jax
import numpy as np
import optax
import pytest

from jaxrnn import cli, sweep, training
from jaxrnn.sweep import summary as summary_lib
from jaxrnn.training import experiment as experiment_lib
from jaxrnn.training import loop, rundir, runs
from jaxrnn.training import program as program_lib
from jaxrnn.training.optim import make_optimizer

ROOT = Path(__file__).resolve().parents[1]
JAXRNN = [sys.executable, "-m", "jaxrnn.cli"]
TIMING = {"steps_per_s", "tokens_per_s"}
LONG = ["train.steps=150", "train.checkpoint_every=10", "train.eval_every=50"]
# Sweep members and their solo runs: XLA compiles the two programs apart and may
# fuse differently, so they agree to float32 rounding, not bit for bit (README).
MEMBER_RTOL = 1e-5

standard_promotion = pytest.mark.usefixtures("standard_dtype_promotion")


def _readme_experiment() -> str:
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## Your own experiment") :]
    return re.search(r"```python\n(.*?)```", section, flags=re.S).group(1)


@pytest.fixture(scope="module")
def outside(tmp_path_factory) -> Path:
    """A folder outside the repository holding the README's experiment file."""
    folder = tmp_path_factory.mktemp("my_research")
    assert ROOT not in folder.parents
    (folder / "mackey_glass.py").write_text(_readme_experiment())
    return folder


def _jaxrnn(args, cwd, **kwargs):
    return subprocess.run(
        [*JAXRNN, *args], cwd=cwd, capture_output=True, text=True, timeout=600, **kwargs
    )


def _digest(workdir: Path, step: int | None = None) -> str:
    """The step and sha256 of a run's params at ``step`` (default: the chosen one)."""
    run = training.load_run(workdir, step)
    h = hashlib.sha256()
    for x in jax.tree.leaves(run.params):
        h.update(np.asarray(x).tobytes())
    return f"{run.step} {h.hexdigest()}"


def _log(workdir: Path) -> list[dict]:
    return [
        {k: v for k, v in r.items() if k not in TIMING}
        for r in rundir.read_log(workdir / rundir.LOG)
    ]


# ------------------------------------------------------ the README's file, from outside


@pytest.fixture(scope="module")
def smoke_run(outside):
    proc = _jaxrnn(["train", "mackey_glass.py", "--smoke", "--no-progress"], outside)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (workdir,) = (outside / "runs").iterdir()
    return workdir, proc.stdout


def test_the_readme_experiment_trains_from_outside_the_repository(outside, smoke_run):
    workdir, out = smoke_run
    status = json.loads((workdir / "status.json").read_text())
    assert status["status"] == "finished"
    assert set(status["final"]) == {"loss", "r2"}
    assert status["directions"] == {"loss": "min", "r2": "max"}
    # The baseline is the file's own, on the test windows: persistence, by NumPy.
    exp = experiment_lib.load(outside / "mackey_glass.py")
    data = exp.module.get_data(exp.module.get_config(smoke=True))
    test = data.test
    persistence = np.mean((test.inputs[..., 0] - test.targets) ** 2)
    assert status["baseline"] == {"name": "persistence", "loss": pytest.approx(persistence)}
    assert "for persistence" in out
    # The run records its experiment: path, content hash, and a copy.
    source = (outside / "mackey_glass.py").read_bytes()
    manifest = json.loads((workdir / "manifest.json").read_text())
    assert manifest["experiment"] == {
        "name": "mackey_glass",
        "path": str(outside / "mackey_glass.py"),
        "sha256": hashlib.sha256(source).hexdigest(),
    }
    assert (workdir / "experiment.py").read_bytes() == source
    assert workdir.name == f"mackey_glass-{manifest['run_hash']}"
    for name in ("config.json", "run.json", "CITATION.bib", "loss.png", "metrics.jsonl"):
        assert (workdir / name).is_file()


def _wait_for_checkpoint(workdir: Path, proc: subprocess.Popen, timeout=180.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ckpts = workdir / "checkpoints"
        if ckpts.exists() and any(p.name.isdigit() for p in ckpts.iterdir()):
            return
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.05)
    raise TimeoutError("no checkpoint appeared")


COMMAND = ["train", "mackey_glass.py", "--smoke", "--no-progress", *LONG]


@pytest.fixture(scope="module")
def whole(outside, tmp_path_factory) -> Path:
    """The uninterrupted run that interrupted ones must equal."""
    workdir = tmp_path_factory.mktemp("whole")
    reference = _jaxrnn([*COMMAND, "--workdir", str(workdir)], outside)
    assert reference.returncode == 0, reference.stderr
    return workdir


def test_kill_9_mid_run_then_the_same_command_resumes_bit_identically(outside, whole, tmp_path):
    command = COMMAND
    killed = tmp_path / "killed"
    proc = subprocess.Popen(
        [*JAXRNN, *command, "--workdir", str(killed)],
        cwd=outside,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    _wait_for_checkpoint(killed, proc)
    time.sleep(np.random.default_rng(os.getpid()).uniform(0.0, 1.0))  # an arbitrary moment
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert json.loads((killed / "status.json").read_text())["status"] == "running"
    resumed = _jaxrnn([*command, "--workdir", str(killed)], outside)
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming" in resumed.stdout
    # The same status, but for the process that wrote it (liveness.Heartbeat's fields).
    process = {"host", "pid", "started", "heartbeat", "heartbeat_every"}
    want = json.loads((whole / "status.json").read_text())
    got = json.loads((killed / "status.json").read_text())
    assert process <= got.keys()
    assert {k: v for k, v in got.items() if k not in process} == {
        k: v for k, v in want.items() if k not in process
    }
    assert _digest(killed, 150) == _digest(whole, 150)
    assert _digest(killed) == _digest(whole)  # the chosen checkpoint too
    assert _log(killed) == _log(whole)


def test_sigterm_checkpoints_exits_cleanly_and_the_same_command_resumes(outside, whole, tmp_path):
    workdir = tmp_path / "terminated"
    proc = subprocess.Popen(
        [*JAXRNN, *COMMAND, "--workdir", str(workdir)],
        cwd=outside,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    _wait_for_checkpoint(workdir, proc)
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 75, out  # EX_TEMPFAIL: resume it (README, "Exit codes")
    status = json.loads((workdir / "status.json").read_text())
    assert status["status"] == "interrupted", out
    assert f"SIGTERM received: saved a checkpoint at step {status['step']}" in out
    assert "Resume with the same command" in out
    assert str(status["step"]) in os.listdir(workdir / "checkpoints")
    resumed = _jaxrnn([*COMMAND, "--workdir", str(workdir)], outside)
    assert resumed.returncode == 0, resumed.stderr
    assert _digest(workdir, 150) == _digest(whole, 150)
    assert _log(workdir) == _log(whole)


@pytest.fixture(scope="module")
def swept(outside, tmp_path_factory):
    """A 2 × 2 ``jaxrnn sweep`` (learning rate × seed) of the README's file, and each
    member alone by ``jaxrnn train``: both in this process, from the file's folder."""
    root = tmp_path_factory.mktemp("swept")
    grid = ["--grid", "optim.learning_rate=0.003,0.03", "--seeds", "0-1"]
    here, make_program, built = Path.cwd(), program_lib.make_program, []

    def recording(*args):
        built.append(make_program(*args))
        return built[-1]

    os.chdir(outside)
    program_lib.make_program = recording
    try:
        with jax.numpy_dtype_promotion("standard"):  # optax is not strict-promotion clean
            argv = ["sweep", "mackey_glass.py", "--smoke", "--no-progress", *grid]
            assert cli.main([*argv, "--sweep-dir", str(root)]) == 0
            # One program for the group, its step compiled once; its evaluation once per
            # batch shape (the smoke data set has 1 validation and 3 test windows).
            assert len(built) == 1 and built[0].step._cache_size() == 1
            assert built[0].evaluate._cache_size() == 2
            # Again: the finished sweep is reported, not re-run; a different one is refused.
            assert cli.main([*argv, "--sweep-dir", str(root)]) == 0 and len(built) == 1
            other = ["--grid", "optim.learning_rate=0.003", "--sweep-dir", str(root)]
            assert cli.main([*argv[:4], *other]) == cli.EXIT_USAGE  # before any compute
            members = json.loads((root / "sweep.json").read_text())["members"]
            for m in members:
                overrides = [f"{k}={v}" for k, v in m["overrides"].items()]
                solo = ["train", "mackey_glass.py", "--smoke", "--no-progress", *overrides]
                assert cli.main([*solo, "--workdir", str(root / "solo" / m["id"])]) == 0
    finally:
        os.chdir(here)
        program_lib.make_program = make_program
    return root, members


def _params(workdir: Path, step: int | None = None):
    return jax.tree.leaves(training.load_run(workdir, step).params)


def test_sweep_members_equal_their_solo_runs(swept):
    root, members = swept
    assert len(members) == 4 and len({m["group"] for m in members}) == 1  # one program
    described = json.loads((root / "sweep.json").read_text())
    assert described["grid"] == {"optim.learning_rate": ["0.003", "0.03"]}
    assert described["seeds"] == [0, 1] and described["versions"]["jax"] == jax.__version__
    exp = experiment_lib.load(Path(described["experiment"]["path"]))
    assert described["experiment"]["sha256"] == exp.sha256
    for m in members:
        member, solo = sweep.member_dir(root, m["id"]), root / "solo" / m["id"]
        got, want = (json.loads((d / "status.json").read_text()) for d in (member, solo))
        assert got["status"] == want["status"] == "finished"
        assert got["chosen_step"] == want["chosen_step"]
        assert (member / "config.json").read_text() == (solo / "config.json").read_text()
        assert (member / "loss.png").is_file() and (member / "experiment.py").is_file()
        for name, value in want["final"].items():
            np.testing.assert_allclose(got["final"][name], value, rtol=MEMBER_RTOL)
        for a, b in zip(_params(member, 20), _params(solo, 20), strict=True):
            np.testing.assert_allclose(a, b, rtol=MEMBER_RTOL, atol=1e-7)
        # Same steps logged, evaluated and checkpointed, same decisions.
        assert [(r["kind"], r["step"]) for r in _log(member)] == [
            (r["kind"], r["step"]) for r in _log(solo)
        ]
        assert sorted(os.listdir(member / "checkpoints")) == sorted(
            os.listdir(solo / "checkpoints")
        )


def test_the_summary_table_is_mean_and_std_of_the_members_test_records(swept):
    root, members = swept
    rows = summary_lib.records(summary_lib.read(root))
    for row in rows:
        ids = [
            m["id"]
            for m in members
            if m["overrides"]["optim.learning_rate"] == row["optim.learning_rate"]
        ]
        tests = [
            [
                r
                for r in rundir.read_log(sweep.member_dir(root, i) / rundir.LOG)
                if r["kind"] == "test"
            ]
            for i in ids
        ]
        for metric in ("loss", "r2"):
            values = np.array([t[-1][metric] for t in tests])
            assert row[f"{metric}_mean"] == pytest.approx(values.mean(), rel=1e-12)
            assert row[f"{metric}_std"] == pytest.approx(values.std(ddof=1), rel=1e-12)
    assert (root / "summary.md").is_file() and (root / "summary.tex").is_file()
    assert any((root / "plots").glob("curves_r2.png"))


def test_eval_of_a_sweep_member_rebuilds_its_experiment(swept, outside, capsys):
    root, _ = swept
    member = sweep.member_dir(root, "m000")
    status = json.loads((member / "status.json").read_text())
    assert cli.main(["eval", str(member)]) == 0
    out = capsys.readouterr().out
    assert f"test split at step {status['chosen_step']}" in out
    run = training.load_run(member)
    np.testing.assert_allclose(training.evaluate(run)["loss"], status["final"]["loss"], rtol=1e-6)
    manifest = json.loads((member / "manifest.json").read_text())
    assert run.experiment.sha256 == manifest["experiment"]["sha256"]
    assert cli.main(["eval", str(root / "nowhere")]) == 2
    assert "is not a directory" in capsys.readouterr().out
    assert cli.main(["eval", str(root)]) == 2
    assert "not a run directory" in capsys.readouterr().out


@standard_promotion
def test_a_moved_file_resumes_and_an_edited_file_is_refused(
    outside, smoke_run, tmp_path, capsys, monkeypatch
):
    workdir, _ = smoke_run
    moved = tmp_path / "elsewhere" / "mackey_glass.py"
    moved.parent.mkdir()
    moved.write_text((outside / "mackey_glass.py").read_text())
    argv = ["train", str(moved), "--smoke", "--no-progress"]
    assert cli.main([*argv, "--workdir", str(workdir)]) == 0  # finished: reported again
    assert "test split at step" in capsys.readouterr().out
    moved.write_text(moved.read_text().replace("0.8 * len(w)", "0.7 * len(w)"))
    assert cli.main([*argv, "--workdir", str(workdir)]) == cli.EXIT_USAGE
    out = " ".join(capsys.readouterr().out.split())
    assert "the experiment changed since the run started" in out and str(moved) in out
    # Without --workdir the edited file starts a run directory of its own.
    monkeypatch.chdir(moved.parent)
    assert cli.main(argv) == 0
    (new_dir,) = (moved.parent / "runs").iterdir()
    assert new_dir.name != workdir.name
    # The run keeps a copy of its file: evaluation needs neither the original nor its folder.
    moved.unlink()
    run = training.load_run(new_dir)
    assert run.experiment.path == new_dir / "experiment.py"
    assert training.evaluate(run)["loss"] == pytest.approx(
        json.loads((new_dir / "status.json").read_text())["final"]["loss"], rel=1e-6
    )


def test_a_run_keeps_the_bytes_it_loaded_when_the_file_is_edited_before_it_starts(
    outside, tmp_path
):
    """A sweep loads its file once and starts each group's run directories later; an
    edit in between must not put other bytes under the recorded hash (the run could
    then not be rebuilt, and its copy would not be what ran)."""
    from jaxrnn.training import rundir
    from jaxrnn.training.runs import load_experiment

    path = tmp_path / "mackey_glass.py"
    path.write_text((outside / "mackey_glass.py").read_text())
    loaded = experiment_lib.load(str(path))
    config = experiment_lib.get_config(loaded, smoke=True)
    original = path.read_bytes()
    path.write_text(path.read_text().replace("0.8 * len(w)", "0.7 * len(w)"))
    rundir.prepare(tmp_path / "run", config, loaded)
    assert (tmp_path / "run" / "experiment.py").read_bytes() == original
    path.unlink()
    assert load_experiment(tmp_path / "run").sha256 == loaded.sha256


# ---------------------------------------------------------- smaller experiment files

STATEFUL = '''
"""A stateful test experiment: truncated BPTT over 4 contiguous streams of tokens,
the carry kept across steps and reset at the start of every 7-token document."""
import jax
import jax.numpy as jnp
import numpy as np

import jaxrnn
from jaxrnn import models, tasks
from jaxrnn.training import Config, ModelConfig, TrainConfig

T, STREAMS, DOC, LENGTH = 5, 4, 7, 400
TOKENS = np.random.default_rng(0).integers(0, 3, (STREAMS, LENGTH)).astype(np.int32)


def windows(offset):
    def batch(key, step, batch_size):
        positions = (offset + step * T + jnp.arange(T + 1)) % LENGTH
        tokens = jnp.asarray(TOKENS)[:batch_size][:, positions]
        resets = jnp.broadcast_to(positions[:-1] % DOC == 0, (batch_size, T))
        return {"x": jax.nn.one_hot(tokens[:, :-1], 3, dtype=jnp.float32),
                "y": tokens[:, 1:], "resets": resets}
    return batch


def get_config(smoke=False):
    return Config(
        name="stateful",
        model=ModelConfig(cell="elman", hidden_size=6),
        train=TrainConfig(steps=12, batch_size=STREAMS, eval_every=6, eval_batch_size=STREAMS,
                          eval_batches=3, checkpoint_every=3, best_metric="accuracy"),
    )


def get_data(config):
    return tasks.Stream(windows(0), windows(200), windows(300))


def get_model(config, data):
    return models.many_to_many(jaxrnn.elman(6), 3, input_size=3)


def get_objective(config, model, data):
    cell = jaxrnn.elman(6)

    def loss(params, carry, batch, key):
        # A document that starts inside the window starts from zeros, not from the carry.
        zeros = cell.initial_carry(params.cell, batch["x"].shape[:1])
        carry, ys = jaxrnn.scan(
            cell, params.cell, batch["x"], carry, resets=batch["resets"], reset_to=zeros
        )
        logits = models.linear(params.readout, ys)
        ce = tasks.cross_entropy(logits, batch["y"])
        return ce, ({"loss": ce, "accuracy": tasks.accuracy(logits, batch["y"])}, carry)

    def carry(params, size):
        return cell.initial_carry(params.cell, (size,))

    return tasks.Objective(loss, {"accuracy": "max"}, carry=carry)
'''

COUNTED = '''
"""A finite test data set of 37 test examples, scored in batches of 16: example ids
as metrics show that each is scored exactly once; a host-side metric too."""
import jax.numpy as jnp
import numpy as np

import jaxrnn
from jaxrnn import models, tasks
from jaxrnn.training import Config, ModelConfig, TrainConfig

N = {"train": 50, "validation": 21, "test": 37}


def examples(split, start):
    n = N[split]
    rng = np.random.default_rng(start)
    x = rng.standard_normal((n, 3, 2)).astype(np.float32)
    return {"x": x, "y": x.sum(axis=(1, 2)), "id": np.arange(start, start + n, dtype=np.float32)}


def get_config(smoke=False):
    return Config(
        name="counted",
        model=ModelConfig(cell="gru", hidden_size=5),
        train=TrainConfig(steps=8, batch_size=10, eval_every=4, eval_batch_size=16,
                          checkpoint_every=4, best_metric="loss"),
    )


def get_data(config):
    return tasks.Dataset(examples("train", 0), examples("validation", 1000), examples("test", 2000))


def get_model(config, data):
    return models.many_to_one(jaxrnn.gru(5), 1, input_size=2)


def get_objective(config, model, data):
    def loss(params, batch, key):
        mse = tasks.mse(model.apply(params, batch["x"])[:, 0], batch["y"])
        return mse, {"loss": mse, "mean_id": jnp.mean(batch["id"]),
                     "sum_id": tasks.Mean(jnp.sum(batch["id"]), jnp.asarray(1.0, jnp.float32))}

    def host(params, batches):
        ids = np.concatenate([np.asarray(b["id"]) for b in batches])
        return {"host_examples": float(len(ids)), "host_unique": float(len(set(ids.tolist())))}

    metrics = {"mean_id": "max", "sum_id": "max", "host_examples": "max", "host_unique": "max"}
    return tasks.Objective(loss, metrics, evaluate=host)
'''


def _write(folder: Path, name: str, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.py"
    path.write_text(text)
    return path


@standard_promotion
def test_a_stateful_objective_equals_a_hand_written_truncated_bptt_loop(tmp_path):
    path = _write(tmp_path / "exp", "stateful", STATEFUL)
    run = training.train(path, workdir=tmp_path / "run", echo=lambda s: None)
    assert run["status"] == "finished"
    # The oracle: the same data, init, optimizer and carry, by a Python loop.
    exp = experiment_lib.load(path)
    cfg = exp.module.get_config()
    data, model = exp.module.get_data(cfg), exp.module.get_model(cfg, None)
    objective = exp.module.get_objective(cfg, model, data)
    k_init, _ = jax.random.split(jax.random.key(cfg.seed))
    params = model.init(k_init)
    optimizer = make_optimizer(cfg.optim, cfg.train.steps)
    opt_state, carry = optimizer.init(params), objective.carry(params, 4)
    grad = jax.jit(jax.value_and_grad(objective.loss, has_aux=True))
    for step in range(cfg.train.steps):
        batch = data.train(jax.random.key(cfg.seed + 1), step, 4)
        (_, (_, carry)), grads = grad(params, carry, batch, None)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        params = optax.apply_updates(params, updates)
    final = training.load_run(tmp_path / "run", step=cfg.train.steps).state.train
    for got, want in zip(
        jax.tree.leaves((final.params, final.carry)), jax.tree.leaves((params, carry)), strict=True
    ):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    # Evaluation threads its own carry through the test stream, in order.
    chosen = training.load_run(tmp_path / "run")
    carry, total = objective.carry(chosen.params, 4), 0.0
    for i in range(cfg.train.eval_batches):
        batch = data.test(jax.random.fold_in(jax.random.key(0), 2), i, 4)
        loss, (_, carry) = objective.loss(chosen.params, carry, batch, None)
        total += float(loss) / cfg.train.eval_batches
    assert run["loss"] == pytest.approx(total, rel=1e-5)


class _StopAtStep(loop.Stop):
    """As if SIGTERM arrived during step ``at``: the loop reads ``signum`` once a step."""

    at = 5

    def __init__(self):
        self.reads = 0

    @property
    def signum(self):
        self.reads += 1
        return signal.SIGTERM if self.reads >= self.at else None


@standard_promotion
def test_the_carry_is_checkpointed_so_an_interrupted_run_resumes_exactly(tmp_path, monkeypatch):
    path = _write(tmp_path / "exp", "stateful", STATEFUL)
    whole = training.train(path, workdir=tmp_path / "whole", echo=lambda s: None)
    with monkeypatch.context() as m:
        m.setattr(runs, "Stop", _StopAtStep)
        cut = training.train(path, workdir=tmp_path / "cut", echo=lambda s: None)
        assert cut["status"] == "interrupted" and cut["step"] == 5
    resumed = training.train(path, workdir=tmp_path / "cut", echo=lambda s: None)
    assert {k: v for k, v in resumed.items() if k != "workdir"} == {
        k: v for k, v in whole.items() if k != "workdir"
    }
    a, b = (training.load_run(tmp_path / d, step=12).state for d in ("whole", "cut"))
    for x, y in zip(
        jax.tree.leaves((a.train.params, a.train.carry, a.train.opt_state)),
        jax.tree.leaves((b.train.params, b.train.carry, b.train.opt_state)),
        strict=True,
    ):
        np.testing.assert_array_equal(x, y)
    assert _log(tmp_path / "whole") == _log(tmp_path / "cut")


@standard_promotion
def test_each_test_example_is_scored_exactly_once_and_host_metrics_are_logged(tmp_path):
    path = _write(tmp_path / "exp", "counted", COUNTED)
    result = training.train(path, workdir=tmp_path / "run", echo=lambda s: None)
    test_ids = np.arange(2000, 2037)
    assert result["mean_id"] == pytest.approx(test_ids.mean(), rel=1e-7)
    assert result["sum_id"] == pytest.approx(test_ids.sum() / 3, rel=1e-7)  # 3 batches: 16, 16, 5
    assert (result["host_examples"], result["host_unique"]) == (37.0, 37.0)
    evals = [r for r in rundir.read_log(tmp_path / "run" / rundir.LOG) if r["kind"] == "eval"]
    assert [r["step"] for r in evals] == [4, 8]
    assert all(r["mean_id"] == pytest.approx(1010.0) and r["host_examples"] == 21 for r in evals)


PATIENT = '''
"""A test experiment whose validation loss worsens after a few steps (a learning
rate far too high), for model choice and early stopping."""
import jaxrnn
from jaxrnn import models, tasks
from jaxrnn.training import Config, ModelConfig, OptimConfig, TrainConfig


def get_config(smoke=False):
    return Config(
        name="patient",
        model=ModelConfig(cell="gru", hidden_size=6),
        optim=OptimConfig(name="sgd", learning_rate=0.05, clip_norm=None),
        train=TrainConfig(steps=60, batch_size=8, eval_every=3, eval_batch_size=32,
                          eval_batches=1, checkpoint_every=12, keep_best=1, keep_last=1,
                          patience=3, best_metric="loss"),
    )


def get_data(config):
    return tasks.adding(6)


def get_model(config, data):
    return models.many_to_one(jaxrnn.gru(6), 1, input_size=2)


def get_objective(config, model, data):
    return tasks.regression(model)
'''


@standard_promotion
def test_model_choice_and_early_stopping_agree_between_a_solo_run_and_a_sweep_member(tmp_path):
    path = _write(tmp_path / "exp", "patient", PATIENT)
    overrides = ["optim.learning_rate=2.0"]  # diverges slowly: validation worsens
    solo = training.train(
        path, [*overrides, "seed=1"], workdir=tmp_path / "solo", echo=lambda s: None
    )
    spec = sweep.load(path, overrides, seeds="0-1")
    results = sweep.run(
        spec.experiment, spec.members, tmp_path / "sweep", progress=False, echo=lambda s: None
    )
    member = sweep.member_dir(tmp_path / "sweep", "m001")
    got, want = (json.loads((d / "status.json").read_text()) for d in (member, tmp_path / "solo"))
    assert "stopped_early_at" in want and want["stopped_early_at"] < 60
    for key in ("chosen_step", "stopped_early_at", "step", "status"):
        assert got[key] == want[key], key
    assert sorted(os.listdir(member / "checkpoints")) == sorted(
        os.listdir(tmp_path / "solo" / "checkpoints")
    )
    # The chosen step is the best validation record.
    evals = [r for r in _log(tmp_path / "solo") if r["kind"] == "eval"]
    best = min(evals, key=lambda r: (r["loss"], r["step"]))
    assert want["chosen_step"] == best["step"]
    assert evals[-1]["step"] == want["stopped_early_at"]
    # Its params are exactly those of a run that stops at that step.
    upto = [*overrides, "seed=1", f"train.steps={best['step']}", "train.patience=none"]
    training.train(path, upto, workdir=tmp_path / "upto", echo=lambda s: None)
    run = training.load_run(tmp_path / "solo")
    assert run.step == best["step"]
    at_best = training.load_run(tmp_path / "upto", step=best["step"]).params
    for a, b in zip(jax.tree.leaves(run.params), jax.tree.leaves(at_best), strict=True):
        np.testing.assert_array_equal(a, b)
    # The test score is theirs, read back and scored again.
    assert training.evaluate(run)["loss"] == pytest.approx(solo["loss"], rel=1e-6)
    assert results["m001"]["loss"] == pytest.approx(solo["loss"], rel=MEMBER_RTOL)


TWO_STAGE = '''
"""A two-stage protocol: choose the steps on validation, then refit on train + validation."""
import dataclasses

import numpy as np

import jaxrnn
from jaxrnn import models, tasks
from jaxrnn.training import Config, ModelConfig, TrainConfig, load_run, section


@section
class Stage:
    refit_from: str | None = None  # the first run's directory


def examples(n, seed):
    x = np.random.default_rng(seed).standard_normal((n, 4, 1)).astype(np.float32)
    return tasks.Batch(x, x.sum(axis=(1, 2)), np.ones((n, 4), bool))


def get_config(smoke=False):
    return Config(name="two_stage", task=Stage(), model=ModelConfig(cell="gru", hidden_size=4),
                  train=TrainConfig(steps=12, batch_size=8, eval_every=4, eval_batch_size=64,
                                    checkpoint_every=4))


def finalize_config(config):
    if config.task.refit_from is None:
        return config
    chosen = load_run(config.task.refit_from).step
    return dataclasses.replace(config, train=dataclasses.replace(config.train, steps=chosen))


def get_data(config):
    train, val, test = examples(40, 0), examples(16, 1), examples(16, 2)
    if config.task.refit_from is None:
        return tasks.Dataset(train, val, test)
    both = tasks.Batch(*(np.concatenate(pair) for pair in zip(train, val)))
    return tasks.Dataset(both, None, test)


def get_model(config, data):
    return models.many_to_one(jaxrnn.gru(4), 1, input_size=1)


def get_objective(config, model, data):
    return tasks.regression(model)
'''


@standard_promotion
def test_a_second_run_can_refer_to_the_first(tmp_path):
    path = _write(tmp_path / "exp", "two_stage", TWO_STAGE)
    first = training.train(path, workdir=tmp_path / "first", echo=lambda s: None)
    second = training.train(
        path,
        [f"task.refit_from={tmp_path / 'first'}"],
        workdir=tmp_path / "second",
        echo=lambda s: None,
    )
    config = json.loads((tmp_path / "second" / "config.json").read_text())
    assert config["train"]["steps"] == first["chosen_step"] == second["step"]
    assert second["chosen_step"] == second["step"]  # no validation split: the last step
    assert not [r for r in _log(tmp_path / "second") if r["kind"] == "eval"]


DERIVED = """
import dataclasses

import numpy as np

import jaxrnn
from jaxrnn import models, tasks
from jaxrnn.training import Config, ModelConfig, TrainConfig, section


@section
class Lanes:
    lanes: int = 1


def get_config(smoke=False):
    return Config(name="derived", task=Lanes(), model=ModelConfig(cell="gru", hidden_size=4),
                  train=TrainConfig(steps=4, batch_size=8))


def finalize_config(config):
    # Derived from the task, as configs/shakespeare_tbptt.py derives its evaluation lanes
    # from the split, and refused where the config already holds another value.
    want = 16 * config.task.lanes
    if config.train.eval_batch_size not in (want, TrainConfig().eval_batch_size):
        raise ValueError(f"train.eval_batch_size={config.train.eval_batch_size}: expected {want}")
    train = dataclasses.replace(config.train, eval_batch_size=want)
    return dataclasses.replace(config, train=train)


def get_data(config):
    x = np.ones((32, 4, 1), np.float32)
    batch = tasks.Batch(x, x.sum(axis=(1, 2)), np.ones((32, 4), bool))
    return tasks.Dataset(batch, batch, batch)


def get_model(config, data):
    return models.many_to_one(jaxrnn.gru(4), 1, input_size=1)


def get_objective(config, model, data):
    return tasks.regression(model)
"""


def test_each_sweep_member_is_finalized_from_its_own_overrides_not_from_the_base(tmp_path):
    """A grid value that changes what ``finalize_config`` derives: each member gets its
    own derived value (a member finalized on top of the finalized base was refused,
    which broke ``jaxrnn sweep shakespeare_tbptt --grid task.split=C``)."""
    path = _write(tmp_path / "exp", "derived", DERIVED)
    spec = sweep.load(path, ["task.lanes=2"], grid=["task.lanes=1,3"])
    assert [m.config.train.eval_batch_size for m in spec.members] == [16, 48]
    pytest.importorskip("optuna")
    from jaxrnn.sweep import search

    found = search.load(path, ["task.lanes=2"], trials=2, batch=1, grid=["task.lanes=1,3"])
    assert search.member(found, 0, {"task.lanes": 3}).config.train.eval_batch_size == 48


# ------------------------------------------------------------- errors before compute


GOOD = STATEFUL


@pytest.mark.parametrize(
    "edit, fragments",
    [
        (("def get_model(", "def get_modell("), ["missing get_model(config, data)", "get_modell"]),
        (
            ("return tasks.Stream(windows(0), windows(200), windows(300))", "return [1, 2]"),
            ["get_data()", "expected a jaxrnn.tasks.Stream or jaxrnn.tasks.Dataset, got list"],
        ),
        (
            ("return models.many_to_many(jaxrnn.elman(6), 3, input_size=3)", "return 3"),
            ["get_model()", "expected a model with init(key) -> params, got int"],
        ),
        (
            ("return ce, ({", "return ce * jnp.ones(2, ce.dtype), ({"),
            ["get_objective()", "scalar loss", "float32[2]"],
        ),
        (
            ('{"accuracy": "max"}, carry', "{}, carry"),
            ["get_objective()", "metrics ['accuracy'] have no direction"],
        ),
        (
            ('{"accuracy": "max"}, carry=carry', '{"accuracy": "up"}, carry=carry'),
            ["Objective.metrics['accuracy'] = 'up': expected 'min' or 'max'"],
        ),
        (("def get_config(smoke=False):", "def get_config():"), ["get_config", "smoke"]),
        (
            ("import jaxrnn\n", "import jaxrnn\nimport no_such_module\n"),
            ["importing it failed", "no_such_module"],
        ),
    ],
)
def test_a_broken_piece_is_named_with_the_file_and_what_was_found(
    tmp_path, edit, fragments, capsys
):
    path = _write(tmp_path, "broken", GOOD.replace(*edit))
    assert GOOD.replace(*edit) != GOOD
    argv = ["train", str(path), "--no-progress", "--workdir", str(tmp_path / "run")]
    assert cli.main(argv) == cli.EXIT_USAGE
    out = capsys.readouterr().out
    for fragment in [str(path), *fragments]:
        assert fragment in " ".join(out.split()), out
    assert not (tmp_path / "run" / "metrics.jsonl").exists()  # nothing computed


def test_unknown_experiment_names_suggest_the_closest(capsys):
    assert cli.main(["train", "adding_lstmm"]) == 2
    out = " ".join(capsys.readouterr().out.split())
    assert "no built-in experiment of that name" in out and "did you mean 'adding_lstm'" in out
    assert "copying_gru" in out


def test_best_metric_must_be_one_the_evaluation_reports(tmp_path, capsys):
    path = _write(tmp_path, "stateful", STATEFUL)
    assert (
        cli.main(["train", str(path), "train.best_metric=acc", "--workdir", str(tmp_path / "r")])
        == cli.EXIT_USAGE
    )
    out = " ".join(capsys.readouterr().out.split())
    assert "train.best_metric='acc'" in out and "accuracy, loss" in out


def test_a_directory_of_another_schema_or_config_is_refused(outside, smoke_run, tmp_path, capsys):
    old = tmp_path / "old"
    old.mkdir()
    (old / "config.json").write_text("{}")
    argv = ["train", str(outside / "mackey_glass.py"), "--smoke", "--no-progress", "--workdir"]
    assert cli.main([*argv, str(old)]) == cli.EXIT_USAGE
    assert "run-directory schema 1" in capsys.readouterr().out
    assert cli.main([*argv, str(smoke_run[0]), "optim.learning_rate=0.1"]) == cli.EXIT_USAGE
    out = " ".join(capsys.readouterr().out.split())
    assert "holds a run of a different config (optim.learning_rate: 0.003 there, 0.1 here)" in out


@pytest.mark.parametrize("flag", [[], ["--no-compile-cache"]])
def test_commands_that_compile_use_the_cache_unless_told_not_to(flag, tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(cli, "use_compilation_cache", lambda: calls.append(1))
    for command in (["eval", str(tmp_path / "nowhere")], ["sample", str(tmp_path / "nowhere")]):
        assert cli.main([*command, *flag]) == 2  # no such run: before any compute
    (tmp_path / "run").mkdir()  # a run to list (an empty folder is an error)
    rundir.write_json(tmp_path / "run" / "status.json", {"status": "finished", "step": 1})
    assert cli.main(["runs", str(tmp_path)]) == 0  # compiles nothing
    assert len(calls) == (0 if flag else 2)


def test_the_compilation_cache_is_in_the_user_cache_folder(tmp_path):
    """Without JAX's own variables the CLI's programs land in <user cache>/jaxrnn/xla
    (platformdirs reads XDG_CACHE_HOME on Linux); with them, theirs win."""
    script = (
        "import jax; from jaxrnn import cli; cli.use_compilation_cache(); "
        "jax.jit(lambda x: x * 2 + 1)(jax.numpy.arange(3.0)).block_until_ready(); "
        "print(jax.config.jax_compilation_cache_dir)"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("JAX_")}
    env["XDG_CACHE_HOME"] = str(tmp_path / "cache")
    out = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True
    ).stdout
    folder = tmp_path / "cache" / "jaxrnn" / "xla"
    assert out.strip() == str(folder) and any(folder.iterdir())
    env["JAX_COMPILATION_CACHE_DIR"] = str(tmp_path / "mine")
    out = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == str(tmp_path / "mine") and any((tmp_path / "mine").iterdir())
