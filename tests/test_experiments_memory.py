"""The long-memory experiments' model presets (configs/adding_cells.py, copying_cells.py),
the copying objective's ``copied`` metric, and the vanishing/exploding-gradient study
(experiments/gradients.py) in its smoke mode.

Oracles: the papers' initialisations read off the initial params (the identity and a
zero bias for the IRNN, Le et al. 2015; an orthogonal ``W_hh``; a forget bias of 1;
chrono's ``b_f in [0, log(T - 1)]`` with ``b_i = -b_f``, Tallec & Ollivier 2018), and
a NumPy Elman recurrence written from ``h_t = f(x_t W_xh + h_{t-1} W_hh + b)`` for the
two Elman presets' outputs; NumPy cross-entropy and accuracy over the logits for the
copying metrics; a hand-derived BPTT through an IRNN at initialisation for the study's
gradient profile.
"""

import csv
import re
from pathlib import Path

import jax
import numpy as np
import pytest

from jaxrnn import tasks, training
from jaxrnn.cells.gru import GRUParams
from jaxrnn.cells.lstm import LSTMParams
from jaxrnn.sweep import engine, spec
from jaxrnn.training import ConfigError
from jaxrnn.training import experiment as experiment_lib

pytestmark = pytest.mark.usefixtures("standard_dtype_promotion")
ADDING = experiment_lib.load("adding_cells")
H = 6


def _model(preset: str, *overrides: str):
    config = experiment_lib.get_config(
        ADDING, [f"model.preset={preset}", f"model.hidden_size={H}", *overrides]
    )
    model = ADDING.module.get_model(config, None)
    return config, model, model.init(jax.random.key(3))


def _numpy_elman(params, xs, f):
    """``h_t = f(x_t W_xh + h_{t-1} W_hh + b)`` from h_0 = 0, read out at the last step."""
    cell = jax.tree.map(lambda a: np.asarray(a, np.float64), params.cell)
    h = np.zeros((xs.shape[0], H))
    for t in range(xs.shape[1]):
        h = f(xs[:, t] @ cell.W_xh + h @ cell.W_hh + cell.b)
    return h @ np.asarray(params.readout.W, np.float64) + np.asarray(params.readout.b)


@pytest.mark.parametrize(
    "preset, f",
    [("irnn", lambda z: np.maximum(z, 0.0)), ("tanh", np.tanh)],
    ids=["irnn", "tanh"],
)
def test_the_elman_presets_are_the_papers_networks(preset, f):
    _, model, params = _model(preset)
    W_hh, b = np.asarray(params.cell.W_hh), np.asarray(params.cell.b)
    if preset == "irnn":  # Le et al. (2015): identity recurrence, zero bias, ReLU
        np.testing.assert_array_equal(W_hh, np.eye(H))
        np.testing.assert_array_equal(b, np.zeros(H))
    else:  # orthogonal (Saxe et al. 2014), not the identity
        np.testing.assert_allclose(W_hh @ W_hh.T, np.eye(H), atol=1e-5)
        assert not np.allclose(W_hh, np.eye(H))
    xs = np.random.default_rng(0).uniform(-1, 1, (3, 7, 2)).astype(np.float32)
    np.testing.assert_allclose(
        np.asarray(model.apply(params, xs)), _numpy_elman(params, xs, f), rtol=1e-5, atol=1e-6
    )


def test_the_lstm_presets_set_the_forget_bias_or_chrono_over_t():
    _, _, params = _model("lstm")
    assert isinstance(params.cell, LSTMParams)
    b = np.asarray(params.cell.b).reshape(4, H)  # gates i, f, g, o
    np.testing.assert_array_equal(b[1], np.ones(H))
    config, _, params = _model("chrono_lstm", "task.length=400")
    assert config.model.chrono_t_max == 400.0
    b = np.asarray(params.cell.b).reshape(4, H)
    assert np.all(b[1] >= 0.0) and np.all(b[1] <= np.log(399.0)) and np.ptp(b[1]) > 0.5
    np.testing.assert_array_equal(b[0], -b[1])
    _, _, params = _model("gru")
    assert isinstance(params.cell, GRUParams)


def test_a_setting_that_contradicts_the_preset_is_refused_naming_both():
    with pytest.raises(ConfigError) as e:
        experiment_lib.get_config(ADDING, ["model.preset=lstm", "model.cell=gru"])
    message = str(e.value)
    assert "model.cell='gru'" in message and "model.preset='lstm'" in message
    assert "model.cell='lstm'" in message
    with pytest.raises(ConfigError, match=re.escape("model.recurrent_init='gaussian'")):
        experiment_lib.get_config(ADDING, ["model.preset=irnn", "model.recurrent_init=gaussian"])
    # A setting the preset leaves alone stays the user's.
    config = experiment_lib.get_config(ADDING, ["model.preset=irnn", "model.identity_scale=0.5"])
    assert config.model.identity_scale == 0.5 and config.model.recurrent_init == "identity"
    _, _, params = _model("tanh", "model.recurrent_init=gaussian")
    W_hh = np.asarray(params.cell.W_hh)
    assert not np.allclose(W_hh @ W_hh.T, np.eye(H), atol=0.1)  # Gaussian, not orthogonal


def test_the_sweep_is_four_cells_by_two_learning_rates_by_three_seeds_in_four_programs():
    s = spec.load("adding_cells")
    assert len(s.members) == 24
    groups = engine.plan(s.members)
    assert [len(g.members) for g in groups] == [6, 6, 6, 6]
    for group in groups:
        cells = {(m.config.model.cell, m.config.model.activation) for m in group.members}
        assert len(cells) == 1
        assert {m.config.optim.learning_rate for m in group.members} == {3e-4, 1e-3}


@pytest.fixture(scope="module")
def gradient_study(tmp_path_factory):
    """``python experiments/gradients.py --smoke``, its sweeps and figures in a tmp dir."""
    import importlib.util

    path = Path(__file__).resolve().parents[1] / "experiments" / "gradients.py"
    loaded = importlib.util.spec_from_file_location("gradients_study", path)
    study = importlib.util.module_from_spec(loaded)
    loaded.loader.exec_module(study)
    root = tmp_path_factory.mktemp("gradients")
    with jax.numpy_dtype_promotion("standard"):  # optax is not strict-promotion clean
        study.main(["--smoke", "--root", str(root / "sweeps"), "--out", str(root / "figures")])
    return study, root


def _csv(path: Path) -> list[dict]:
    with open(path) as f:
        return list(csv.DictReader(f))


def test_the_gradient_study_writes_every_figure_with_its_numbers(gradient_study):
    _, root = gradient_study
    figures = root / "figures"
    for name in ("vs_distance", "spectral_radius", "clipping", "init"):
        name = f"gradients_{name}"
        assert (figures / f"{name}.png").read_bytes()[:4] == b"\x89PNG"
    T = experiment_lib.get_config(ADDING, smoke=True).task.length
    profile = _csv(figures / "gradients_vs_distance.csv")
    assert len(profile) == 4 * 2 * T
    assert {(r["cell"], r["when"]) for r in profile} == {
        (c, w) for c in ("tanh", "irnn", "gru", "lstm") for w in ("init", "trained")
    }
    assert len(_csv(figures / "gradients_spectral_radius.csv")) == 4 * 2 * T
    clip = _csv(figures / "gradients_clipping.csv")
    assert {r["setting"] for r in clip} == {f"clip_norm={c}" for c in (None, 0.1, 1.0, 10.0)}
    assert {r["setting"] for r in _csv(figures / "gradients_init_profile.csv")} == {
        "recurrent_init=orthogonal",
        "recurrent_init=gaussian",
    }


def test_the_irnn_gradient_profile_at_initialisation_is_hand_derived_bptt(gradient_study):
    """With ``W_hh = I`` and ``b = 0`` BPTT is a product of ReLU masks: from the last
    output ``∂L/∂h_{T-1} = (2/B)(ŷ - y) W_out``, and ``∂L/∂h_{t-1} = ∂L/∂h_t ⊙ [z_t > 0]``
    with ``z_t = x_t W_xh + h_{t-1}``, written here in float64 NumPy."""
    study, root = gradient_study
    run = training.load_run(study.chosen_member(root / "sweeps" / "cells", "irnn"))
    params = jax.tree.map(lambda a: np.asarray(a, np.float64), study.initial_params(run))
    batch = study.test_batch(run)
    xs, y = np.asarray(batch.inputs, np.float64), np.asarray(batch.targets, np.float64)
    B, T, _ = xs.shape
    np.testing.assert_array_equal(params.cell.W_hh, np.eye(params.cell.W_hh.shape[0]))
    h, zs = np.zeros((B, params.cell.W_hh.shape[0])), []
    for t in range(T):
        zs.append(xs[:, t] @ params.cell.W_xh + h)
        h = np.maximum(zs[-1], 0.0)
    prediction = h @ params.readout.W[:, 0] + params.readout.b[0]
    g = (2.0 / B) * (prediction - y.reshape(-1))[:, None] * params.readout.W[:, 0]
    want = np.zeros(T)
    for t in reversed(range(T)):
        g = g * (zs[t] > 0)  # now ∂L/∂h_{t-1}, the carry entering step t
        want[t] = np.linalg.norm(g, axis=1).mean()
    rows = [
        r
        for r in _csv(root / "figures" / "gradients_vs_distance.csv")
        if (r["cell"], r["when"]) == ("irnn", "init")
    ]
    got = np.zeros(T)
    for r in rows:
        got[T - 1 - int(r["distance"])] = float(r["grad_norm"])
    np.testing.assert_allclose(got, want, rtol=1e-5)


COPYING = experiment_lib.load("copying_cells")


def test_copied_is_the_accuracy_over_the_last_ten_steps_and_loss_the_per_step_mean():
    config = experiment_lib.get_config(COPYING, ["model.hidden_size=6"], smoke=True)
    data = COPYING.module.get_data(config)
    model = COPYING.module.get_model(config, data)
    objective = COPYING.module.get_objective(config, model, data)
    params = model.init(jax.random.key(0))
    batch = data.train(jax.random.key(1), 0, 32)
    _, metrics = objective.loss(params, batch, None)
    logits = np.asarray(model.apply(params, batch.inputs, mask=batch.mask), np.float64)
    targets = np.asarray(batch.targets)
    log_p = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    nats = -np.take_along_axis(log_p, targets[..., None], -1)[..., 0]
    right = logits.argmax(-1) == targets
    got = {k: float(m.total / m.count) for k, m in metrics.items()}
    np.testing.assert_allclose(got["loss"], nats.mean(), rtol=1e-5)
    np.testing.assert_allclose(got["accuracy"], right.mean(), rtol=1e-6)
    np.testing.assert_allclose(got["copied"], right[:, -10:].mean(), rtol=1e-6)
    assert int(metrics["copied"].count) == 32 * 10
    assert objective.metrics["copied"] == "max"
    # The chrono preset's T is the copying sequence's length, delay + 20.
    config = experiment_lib.get_config(COPYING, ["model.preset=chrono_lstm", "task.delay=500"])
    assert config.model.chrono_t_max == 520.0


def test_a_span_named_like_a_metric_of_tokens_is_refused():
    with pytest.raises(ValueError, match=r"spans: \['accuracy'\]"):
        tasks.tokens(None, spans={"accuracy": lambda batch: batch.mask})
