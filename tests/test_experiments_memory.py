"""The long-memory experiments' model presets (configs/adding_cells.py).

Oracles: the papers' initialisations read off the initial params (the identity and a
zero bias for the IRNN, Le et al. 2015; an orthogonal ``W_hh``; a forget bias of 1;
chrono's ``b_f in [0, log(T - 1)]`` with ``b_i = -b_f``, Tallec & Ollivier 2018), and
a NumPy Elman recurrence written from ``h_t = f(x_t W_xh + h_{t-1} W_hh + b)`` for the
two Elman presets' outputs.
"""

import re

import jax
import numpy as np
import pytest

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
    with pytest.raises(ConfigError, match=re.escape("model.recurrent_init='identity'")):
        experiment_lib.get_config(ADDING, ["model.preset=tanh", "model.recurrent_init=identity"])
    # A setting the preset leaves alone stays the user's.
    config = experiment_lib.get_config(ADDING, ["model.preset=irnn", "model.identity_scale=0.5"])
    assert config.model.identity_scale == 0.5 and config.model.recurrent_init == "identity"


def test_the_sweep_is_four_cells_by_two_learning_rates_by_three_seeds_in_four_programs():
    s = spec.load("adding_cells")
    assert len(s.members) == 24
    groups = engine.plan(s.members)
    assert [len(g.members) for g in groups] == [6, 6, 6, 6]
    for group in groups:
        cells = {(m.config.model.cell, m.config.model.activation) for m in group.members}
        assert len(cells) == 1
        assert {m.config.optim.learning_rate for m in group.members} == {3e-4, 1e-3}
