"""Recurrent initialisers: per-gate orthogonal blocks, identity (IRNN), gate biases, chrono."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxrnn
from jaxrnn.cells import initializers as ini

H = 6
F64 = jnp.float64


def blocks(W, num_gates):
    return np.split(np.asarray(W), num_gates, axis=-1)


@pytest.mark.parametrize("num_gates", [3, 4])
def test_fused_orthogonal_is_orthogonal_per_gate_block(num_gates, key):
    W = ini.fused(*[ini.orthogonal()] * num_gates)(key, (H, num_gates * H), F64)
    assert W.shape == (H, num_gates * H) and W.dtype == F64
    for Q in blocks(W, num_gates):
        np.testing.assert_allclose(Q @ Q.T, np.eye(H), atol=1e-12)
        np.testing.assert_allclose(Q.T @ Q, np.eye(H), atol=1e-12)
    # The blocks are distinct draws, not one matrix repeated.
    assert not np.allclose(blocks(W, num_gates)[0], blocks(W, num_gates)[1])


def test_single_orthogonal_matrix_is_not_orthogonal_per_block(key):
    """Why ``fused`` exists: one orthogonal [H, 4H] matrix has non-orthogonal blocks."""
    W = ini.orthogonal()(key, (H, 4 * H), F64)
    Q = blocks(W, 4)[0]
    assert not np.allclose(Q @ Q.T, np.eye(H), atol=1e-3)


def test_cells_default_recurrent_init_is_orthogonal_per_gate(key):
    for cell, gates in ((jaxrnn.lstm(H, dtype=F64), 4), (jaxrnn.gru(H, dtype=F64), 3)):
        for Q in blocks(cell.init(key, 3).W_hh, gates):
            np.testing.assert_allclose(Q @ Q.T, np.eye(H), atol=1e-12)


@pytest.mark.parametrize("dtype", [jnp.bfloat16, jnp.float16])
def test_orthogonal_in_low_precision_is_the_float32_matrix_rounded(dtype, key):
    """LAPACK has no half-precision QR: the matrix is computed in float32 and cast,
    so a bfloat16 LSTM can be initialised at all."""
    W = ini.orthogonal()(key, (6, 6), dtype)
    assert W.dtype == dtype
    np.testing.assert_array_equal(
        np.asarray(W, np.float32),
        np.asarray(ini.orthogonal()(key, (6, 6)).astype(dtype), np.float32),
    )
    np.testing.assert_allclose(np.asarray(W.T @ W, np.float32), np.eye(6), atol=0.05)
    assert jaxrnn.lstm(4, dtype=dtype).init(key, 3).W_hh.dtype == dtype


def test_fused_applies_each_initializer_to_its_own_block(key):
    b = ini.fused(ini.zeros, ini.ones, ini.constant(2.5))(key, (2, 9), F64)
    np.testing.assert_array_equal(b, np.repeat([[0.0, 1.0, 2.5]], 3, axis=1).repeat(2, axis=0))


@pytest.mark.parametrize("scale", [1.0, 0.5])
def test_identity(scale, key):
    W = ini.identity(scale)(key, (H, H), F64)
    assert W.dtype == F64
    np.testing.assert_array_equal(W, scale * np.eye(H))


def test_gaussian_is_normal_with_variance_one_over_fan_in(key):
    """Kolmogorov-Smirnov against N(0, 1/H) (scipy), and the circular law: the spectral
    radius of a large square draw is near 1, its singular values spread over [0, 2]."""
    from scipy import stats

    n = 400
    W = np.asarray(ini.gaussian()(key, (n, n), F64))
    assert W.dtype == np.float64
    assert stats.kstest(W.ravel() * np.sqrt(n), "norm").pvalue > 1e-3
    assert abs(np.max(np.abs(np.linalg.eigvals(W))) - 1.0) < 0.1
    s = np.linalg.svd(W, compute_uv=False)
    assert s.max() > 1.9 and s.min() < 0.05  # not an isometry, unlike orthogonal
    # A [n, 2n] matrix's variance follows its fan-in, n.
    assert abs(np.std(np.asarray(ini.gaussian()(key, (n, 2 * n), F64))) * np.sqrt(n) - 1) < 0.01


@pytest.mark.parametrize("cell", ["elman", "gru", "lstm"])
def test_a_config_draws_gaussian_recurrent_weights_per_gate_and_cites_them(cell, key):
    from jaxrnn.training import ModelConfig, make_cell

    model = ModelConfig(cell=cell, hidden_size=H, recurrent_init="gaussian")
    gates = {"elman": 1, "gru": 3, "lstm": 4}[cell]
    W_hh = make_cell(model).init(key, input_size=2).W_hh
    # Per gate block, the same key split as the orthogonal default: independent blocks.
    want = ini.fused(*[ini.gaussian()] * gates) if gates > 1 else ini.gaussian()
    k_h = jax.random.split(key, 5 if cell == "lstm" else 3)[1]  # the cells' own split
    assert W_hh.shape == (H, gates * H)
    np.testing.assert_array_equal(W_hh, want(k_h, (H, gates * H)))
    assert any("Gaussian recurrent weights" in r.method for r in model.references())


def test_lstm_bias_blocks(key):
    b = ini.lstm_bias(1.5)(key, (4 * H,), F64)
    i, f, g, o = np.split(np.asarray(b), 4)
    np.testing.assert_array_equal(f, 1.5)
    for other in (i, g, o):
        np.testing.assert_array_equal(other, 0.0)


@pytest.mark.parametrize("t_max", [3.0, 50.0])
def test_chrono_lstm_bias(t_max, key):
    b = ini.chrono_lstm_bias(t_max)(key, (4 * H,), F64)
    assert b.dtype == F64
    b_i, b_f, b_g, b_o = np.split(np.asarray(b), 4)
    np.testing.assert_array_equal(b_i, -b_f)
    assert np.all(np.exp(b_f) >= 1.0 - 1e-12) and np.all(np.exp(b_f) <= t_max - 1.0 + 1e-12)
    assert np.unique(b_f).size == H  # one draw per unit
    np.testing.assert_array_equal(b_g, 0.0)
    np.testing.assert_array_equal(b_o, 0.0)
    # Used as the LSTM's bias_init, it lands in the fused bias unchanged.
    params = jaxrnn.lstm(H, bias_init=ini.chrono_lstm_bias(t_max), dtype=F64).init(key, 3)
    i2, f2 = np.split(np.asarray(params.b), 4)[:2]
    np.testing.assert_array_equal(i2, -f2)
    assert np.all(np.exp(f2) <= t_max - 1.0 + 1e-12)


def test_chrono_gru_bias(key):
    t_max = 20.0
    b_r, b_z, b_n = np.split(np.asarray(ini.chrono_gru_bias(t_max)(key, (3 * H,), F64)), 3)
    assert np.all(np.exp(b_z) >= 1.0 - 1e-12) and np.all(np.exp(b_z) <= t_max - 1.0 + 1e-12)
    assert np.all(b_z > 0.0)  # the update gate starts biased towards keeping h
    np.testing.assert_array_equal(b_r, 0.0)
    np.testing.assert_array_equal(b_n, 0.0)


def test_errors_are_named(key):
    with pytest.raises(ValueError, match=r"identity: expected a square 2-D shape, got \(3, 4\)"):
        ini.identity()(key, (3, 4))
    with pytest.raises(ValueError, match=r"fused: last axis 10 is not divisible by 4 gate"):
        ini.fused(*[ini.zeros] * 4)(key, (3, 10))
    for chrono in (ini.chrono_lstm_bias, ini.chrono_gru_bias):
        with pytest.raises(ValueError, match=r"t_max: expected a value > 2, got 2"):
            chrono(2)
    with pytest.raises(ValueError, match=r"chrono_lstm_bias: expected a 1-D shape divisible by 4"):
        ini.chrono_lstm_bias(10.0)(key, (10,))
    with pytest.raises(ValueError, match=r"chrono_gru_bias: .* divisible by 3 gates, got \(7,\)"):
        ini.chrono_gru_bias(10.0)(key, (7,))


def irnn_rollout(recurrent_init, key):
    cell = jaxrnn.elman(H, activation="relu", recurrent_init=recurrent_init, dtype=F64)
    params = cell.init(key, 3)
    h0 = jax.random.uniform(key, (2, H), F64, 0.1, 1.0)  # a positive state
    final, ys = jaxrnn.scan(cell, params, jnp.zeros((2, 10, 3), F64), jaxrnn.ElmanCarry(h0))
    return h0, final, ys


def test_irnn_keeps_a_positive_state_with_zero_input(key):
    """Le et al. (2015): relu(I h + 0) = h for h >= 0, so the state is remembered."""
    h0, final, ys = irnn_rollout(ini.identity(1.0), key)
    np.testing.assert_array_equal(final.h, h0)
    np.testing.assert_array_equal(ys, np.broadcast_to(h0[:, None], ys.shape))
    # The property is the identity's: with an orthogonal or scaled identity it fails.
    for other in (ini.orthogonal(), ini.identity(0.9)):
        h0, final, _ = irnn_rollout(other, key)
        assert not np.allclose(final.h, h0, atol=1e-3)
