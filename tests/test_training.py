"""The run loop: exact resume after SIGKILL, SIGTERM checkpoints, clipping, no recompiles,
determinism, non-finite policies, every config's smoke mode, the CLI, the default experiment.

Runs that must match bit for bit are real subprocesses of the ``jaxrnn`` command (the
test process enables x64, which changes default integer dtypes inside JAX).
"""

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxrnn import cli
from jaxrnn.training import config as config_lib
from jaxrnn.training import loop
from jaxrnn.training.optim import injected_hyperparams

ROOT = Path(__file__).resolve().parents[1]
RUN = [sys.executable, "-m", "jaxrnn.cli", "train", "adding_lstm", "--smoke", "--no-progress"]
LONG = ["train.steps=300", "train.checkpoint_every=10", "train.eval_every=100"]
TIMING = {"steps_per_s", "tokens_per_s"}

# optax's own code (e.g. Adam's bias correction) is not strict-promotion clean.
standard_promotion = pytest.mark.usefixtures("standard_dtype_promotion")


def _params_digest(workdir: Path) -> str:
    """sha256 over the final checkpoint's params, computed in a fresh interpreter."""
    code = (
        "import hashlib, sys, jax, numpy as np\n"
        "from jaxrnn.training import loop\n"
        "cfg, exp, state = loop.final_params(sys.argv[1])\n"
        "h = hashlib.sha256()\n"
        "[h.update(np.asarray(x).tobytes()) for x in jax.tree.leaves(state.params)]\n"
        "print(int(state.step), h.hexdigest())\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(workdir)], capture_output=True, text=True, check=True
    )
    return out.stdout.strip()


def _train_log(workdir: Path) -> list[dict]:
    return [
        {k: v for k, v in r.items() if k not in TIMING}
        for r in loop.read_log(workdir / "metrics.jsonl")
    ]


def _wait_for_checkpoint(workdir: Path, proc: subprocess.Popen, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ckpts = workdir / "checkpoints"
        if ckpts.exists() and any(p.name.isdigit() for p in ckpts.iterdir()):
            return
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.05)
    raise TimeoutError("no checkpoint appeared")


@pytest.fixture(scope="module")
def reference_run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("reference")
    subprocess.run([*RUN, "--workdir", str(workdir), *LONG], check=True, capture_output=True)
    return workdir


def test_sigkill_then_resume_is_bit_identical(reference_run, tmp_path):
    workdir = tmp_path / "killed"
    proc = subprocess.Popen(
        [*RUN, "--workdir", str(workdir), *LONG],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    _wait_for_checkpoint(workdir, proc)
    time.sleep(random.Random(os.getpid()).uniform(0.0, 1.0))  # an arbitrary moment
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    status = json.loads((workdir / "status.json").read_text())["status"]
    assert status == "running"  # killed mid-run, not finished
    out = subprocess.run(
        [*RUN, "--workdir", str(workdir), *LONG], check=True, capture_output=True, text=True
    )
    assert "resuming" in out.stdout
    assert _params_digest(workdir) == _params_digest(reference_run)
    assert _train_log(workdir) == _train_log(reference_run)


def test_sigterm_checkpoints_and_exits_cleanly_then_resumes(reference_run, tmp_path):
    workdir = tmp_path / "terminated"
    proc = subprocess.Popen(
        [*RUN, "--workdir", str(workdir), *LONG],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    _wait_for_checkpoint(workdir, proc)
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0, out
    status = json.loads((workdir / "status.json").read_text())
    assert status["status"] == "interrupted", out
    assert f"SIGTERM received: saved a checkpoint at step {status['step']}" in out
    assert "Resume with the same command" in out
    assert str(status["step"]) in os.listdir(workdir / "checkpoints")
    subprocess.run([*RUN, "--workdir", str(workdir), *LONG], check=True, capture_output=True)
    assert _params_digest(workdir) == _params_digest(reference_run)


def _smoke(overrides=(), name="adding_lstm"):
    return config_lib.load(name, overrides, smoke=True)


@standard_promotion
def test_clipping_bounds_the_update_and_logs_the_preclip_norm():
    cfg = _smoke(["optim.name=sgd", "optim.learning_rate=1.0", "optim.clip_norm=0.01"])
    exp = loop.build(cfg)
    state = loop.init_state(cfg, exp)
    params0 = jax.tree.map(jnp.copy, state.params)
    batch = exp.task.batch(jax.random.key(3), 0, 8)

    def loss(params):  # independent of the train step: the model and MSE by hand
        return jnp.mean((exp.model.apply(params, batch.inputs)[..., 0] - batch.targets) ** 2)

    want_norm = optax.tree.norm(jax.grad(loss)(params0))
    state, metrics = exp.train_step(state, batch)
    np.testing.assert_allclose(metrics["grad_norm"], want_norm, rtol=1e-5)
    assert want_norm > 0.01 and bool(metrics["clipped"])
    update = jax.tree.map(lambda a, b: a - b, state.params, params0)
    np.testing.assert_allclose(optax.tree.norm(update), 0.01, rtol=1e-4)


@standard_promotion
def test_changing_the_learning_rate_does_not_recompile():
    cfg = _smoke()
    exp = loop.build(cfg)
    state = loop.init_state(cfg, exp)
    batch = exp.task.batch(jax.random.key(0), 0, 8)
    state, m1 = exp.train_step(state, batch)
    compiled = exp.train_step._cache_size()
    hparams = injected_hyperparams(state.opt_state)
    hparams["learning_rate"] = jnp.asarray(1e-4, hparams["learning_rate"].dtype)
    state, m2 = exp.train_step(state, batch)
    assert exp.train_step._cache_size() == compiled
    np.testing.assert_allclose(m2["learning_rate"], 1e-4, rtol=1e-6)
    assert float(m1["learning_rate"]) == pytest.approx(cfg.optim.learning_rate)


@standard_promotion
def test_same_seed_same_metrics_different_seed_different(tmp_path):
    cfg = _smoke()
    loop.train(cfg, tmp_path / "a", progress=False)
    loop.train(cfg, tmp_path / "b", progress=False)
    loop.train(_smoke(["seed=1"]), tmp_path / "c", progress=False)
    assert _train_log(tmp_path / "a") == _train_log(tmp_path / "b")
    assert _train_log(tmp_path / "a") != _train_log(tmp_path / "c")


@standard_promotion
@pytest.mark.parametrize("name", config_lib.available_configs())
def test_every_config_smoke_run_learns(name, tmp_path):
    cfg = _smoke(name=name)
    exp = loop.build(cfg)
    before = loop.evaluate(cfg, exp, loop.init_state(cfg, exp).params)["loss"]
    result = loop.train(cfg, tmp_path, progress=False)
    assert result["status"] == "finished"
    assert result["loss"] < before, (before, result)
    for name in ("config.json", "manifest.json", "metrics.jsonl", "status.json", "loss.png"):
        assert (tmp_path / name).is_file()
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["config_hash"] == config_lib.config_hash(cfg)
    assert manifest["device_count"] >= 1 and manifest["jax"] == jax.__version__


DIVERGE = ["optim.name=sgd", "optim.learning_rate=1e30", "optim.clip_norm=none"]


@standard_promotion
def test_nonfinite_stop_names_the_step_and_keeps_the_last_good_checkpoint(tmp_path):
    cfg = _smoke([*DIVERGE, "train.nonfinite=stop", "train.checkpoint_every=1"])
    with pytest.raises(loop.NonFiniteError, match=r"step \d+: non-finite loss or gradient"):
        loop.train(cfg, tmp_path, progress=False)
    _, _, state = loop.final_params(tmp_path, cfg)
    assert all(bool(jnp.all(jnp.isfinite(x))) for x in jax.tree.leaves(state.params))


@standard_promotion
def test_nonfinite_skip_counts_and_never_applies_the_update(tmp_path):
    cfg = _smoke([*DIVERGE, "train.nonfinite=skip", "train.log_every=1"])
    loop.train(cfg, tmp_path, progress=False)
    records = [r for r in loop.read_log(tmp_path / "metrics.jsonl") if r["kind"] == "train"]
    assert records[-1]["nonfinite_skipped"] > 0
    _, _, state = loop.final_params(tmp_path, cfg)
    assert all(bool(jnp.all(jnp.isfinite(x))) for x in jax.tree.leaves(state.params))


class _StopAtStep6(loop._Stop):
    """As if SIGTERM arrived during step 6: the loop reads ``signum`` once a step."""

    def __init__(self):
        self.reads = 0

    @property
    def signum(self):
        self.reads += 1
        return signal.SIGTERM if self.reads >= 6 else None


@standard_promotion
def test_a_resumed_run_keeps_counting_skipped_steps(tmp_path, monkeypatch):
    cfg = _smoke([*DIVERGE, "train.nonfinite=skip", "train.log_every=3"])
    loop.train(cfg, tmp_path / "whole", progress=False)
    with monkeypatch.context() as m:
        m.setattr(loop, "_Stop", _StopAtStep6)
        assert loop.train(cfg, tmp_path / "split", progress=False)["status"] == "interrupted"
    loop.train(cfg, tmp_path / "split", progress=False)

    def skipped(run):
        log = loop.read_log(tmp_path / run / "metrics.jsonl")
        return {r["step"]: r["nonfinite_skipped"] for r in log if r["kind"] == "train"}

    whole, split = skipped("whole"), skipped("split")
    assert max(whole.values()) > 6  # steps after the interruption were skipped too
    assert {step: split[step] for step in whole} == whole


@standard_promotion
def test_rerunning_a_finished_run_reports_the_same_final_metrics(tmp_path):
    first = loop.train(_smoke(), tmp_path, progress=False)
    again = loop.train(_smoke(), tmp_path, progress=False)
    assert again == first
    assert json.loads((tmp_path / "status.json").read_text())["final"]["loss"] == first["loss"]


@standard_promotion
def test_a_different_config_refuses_to_resume_in_the_same_workdir(tmp_path):
    loop.train(_smoke(), tmp_path, progress=False)
    with pytest.raises(ValueError, match="holds a run of a different config"):
        loop.train(_smoke(["optim.learning_rate=0.1"]), tmp_path, progress=False)


@standard_promotion
def test_cli_train_eval_runs(tmp_path, capsys):
    root = tmp_path / "runs"
    assert cli.main(["train", "optim.lr=1"]) == 2
    assert "unknown key 'optim.lr'" in capsys.readouterr().out
    argv = ["train", "adding_lstm", "--smoke", "--no-progress", "--workdir", str(root / "a")]
    assert cli.main(argv) == 0
    out = capsys.readouterr().out
    assert "final evaluation" in out and "best input-independent predictor" in out
    assert cli.main(["eval", str(root / "a")]) == 0
    assert "at step 20" in capsys.readouterr().out
    assert cli.main(["runs", str(root)]) == 0
    assert "finished" in capsys.readouterr().out


def test_default_experiment_reaches_the_target(tmp_path):
    """The README's main job: no arguments, an LSTM on adding T = 100, test MSE < 0.01."""
    out = subprocess.run(
        [Path(sys.executable).parent / "jaxrnn", "train", "--no-progress", "--workdir", tmp_path],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    )
    status = json.loads((tmp_path / "status.json").read_text())
    assert status["status"] == "finished", out.stdout
    assert status["final"]["loss"] < 0.01, out.stdout
    assert "best input-independent predictor" in out.stdout
