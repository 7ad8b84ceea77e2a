"""jaxrnn.models against a Python loop over ``cell.apply`` plus NumPy pooling and readout."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

import jaxrnn
from jaxrnn import models

B, T, I, H, O = 3, 7, 4, 5, 2

MASKS = {
    "none": None,
    # Right-padded with different lengths (one sequence of length 1).
    "padded": np.arange(T) < np.array([7, 4, 1])[:, None],
    # Holes: "last" means the last True step, which is not the mask's sum.
    "holey": np.array(
        [
            [1, 0, 1, 1, 0, 1, 0],
            [0, 1, 1, 0, 0, 0, 0],
            [1, 1, 1, 1, 1, 1, 1],
        ],
        bool,
    ),
}


def loop_outputs(cell, params, xs, mask):
    """``ys [B, T, Y]``: each sequence stepped alone, skipping masked steps (zero output)."""
    xs = np.asarray(xs)
    mask = np.ones(xs.shape[:2], bool) if mask is None else np.asarray(mask)
    step = jax.jit(cell.apply)  # compiled once: op-by-op dispatch would dominate the run time
    out = []
    for b in range(xs.shape[0]):
        carry, ys = cell.initial_carry(params), []
        for t in range(xs.shape[1]):
            new_carry, y = step(params, carry, jnp.asarray(xs[b, t]))
            if mask[b, t]:
                carry = new_carry
                ys.append(np.asarray(y))
            else:
                ys.append(np.zeros_like(np.asarray(y)))
        out.append(np.stack(ys))
    return np.stack(out)


@functools.cache
def lstm_loop_outputs(mask_name):
    """The loop oracle for the shared LSTM cell parameters (the same in every test)."""
    cell, xs, params = _lstm_setup()
    return loop_outputs(cell, params, xs, MASKS[mask_name])


def np_pool(ys, mask, pooling):
    mask = np.ones(ys.shape[:2], bool) if mask is None else mask
    pooled = []
    for b in range(ys.shape[0]):
        valid = ys[b][mask[b]]
        if pooling == "last":
            pooled.append(ys[b, np.flatnonzero(mask[b])[-1]])
        elif pooling == "mean":
            pooled.append(valid.mean(axis=0))
        else:
            pooled.append(valid.max(axis=0))
    return np.stack(pooled)


def np_readout(readout, h):
    return h @ np.asarray(readout.W) + np.asarray(readout.b)


CELL = jaxrnn.lstm(H, dtype=jnp.float64)
K_X, K_MODEL = jax.random.split(jax.random.key(1))


def _lstm_setup():
    xs = jax.random.normal(K_X, (B, T, I), jnp.float64)
    # A model's init splits its key into (cell, readout): these are its cell params.
    return CELL, xs, CELL.init(jax.random.split(K_MODEL)[0], I)


@pytest.fixture(scope="module")
def lstm_setup():
    _, xs, _ = _lstm_setup()
    return CELL, xs, K_MODEL


def _random_readout(params, key):
    """Non-zero readout bias, so a test would notice a missing bias."""
    k_w, k_b = jax.random.split(key)
    W = params.readout.W + 0.3 * jax.random.normal(k_w, params.readout.W.shape, jnp.float64)
    b = jax.random.normal(k_b, params.readout.b.shape, jnp.float64)
    return params._replace(readout=models.Linear(W, b))


@pytest.mark.parametrize("mask_name", sorted(MASKS))
@pytest.mark.parametrize("pooling", ["last", "mean", "max"])
def test_many_to_one_matches_loop_pool_readout(lstm_setup, pooling, mask_name):
    cell, xs, k_p = lstm_setup
    mask = MASKS[mask_name]
    model = models.many_to_one(cell, O, pooling=pooling)
    params = _random_readout(model.init(k_p, I), jax.random.key(2))
    got = model.apply(params, xs, mask=None if mask is None else jnp.asarray(mask))
    expected = np_readout(params.readout, np_pool(lstm_loop_outputs(mask_name), mask, pooling))
    assert got.shape == (B, O) and got.dtype == jnp.float64
    np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-12)


def test_many_to_one_all_masked_sequence_pools_to_zero(lstm_setup):
    cell, xs, k_p = lstm_setup
    mask = np.array(MASKS["padded"])
    mask[1] = False
    for pooling in ("last", "mean", "max"):
        model = models.many_to_one(cell, O, pooling=pooling)
        params = _random_readout(model.init(k_p, I), jax.random.key(2))
        got = np.asarray(model.apply(params, xs, mask=jnp.asarray(mask)))
        # The empty sequence reads out the bias alone; the others are unaffected.
        np.testing.assert_allclose(got[1], np.asarray(params.readout.b), rtol=1e-12)
        ys = lstm_loop_outputs("padded")[::2]
        expected = np_readout(params.readout, np_pool(ys, mask[::2], pooling))
        np.testing.assert_allclose(got[::2], expected, rtol=1e-10, atol=1e-12)


V, E = 11, I  # token ids 0..10, embedded in the LSTM's input size


def test_embedded_model_reads_the_table_rows_of_its_tokens():
    tokens = np.array([[3, 0, 10, 3, 5, 1, 2], [7, 7, 7, 0, 0, 0, 0], [9, 4, 6, 8, 2, 1, 0]])
    mask = MASKS["padded"]
    inner = models.many_to_one(CELL, O, pooling="mean")
    model = models.embedded(inner, V, E, dtype=jnp.float64)
    params = model.init(jax.random.key(3))
    params = params._replace(model=_random_readout(params.model, jax.random.key(2)))
    got = model.apply(params, jnp.asarray(tokens), mask=jnp.asarray(mask))
    # The oracle: the rows picked by NumPy indexing, stepped by the Python loop.
    xs = np.asarray(params.embedding.table)[tokens]
    ys = loop_outputs(CELL, params.model.cell, xs, mask)
    expected = np_readout(params.model.readout, np_pool(ys, mask, "mean"))
    np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-12)
    assert params.embedding.table.shape == (V, E)


def test_embedded_gradient_reaches_only_the_rows_of_the_batch_tokens():
    tokens = jnp.array([[3, 0, 3, 5], [7, 7, 0, 5]])
    inner = models.many_to_one(CELL, O)
    model = models.embedded(inner, V, E, dtype=jnp.float64)
    params = model.init(jax.random.key(4))
    grads = jax.grad(lambda p: jnp.sum(model.apply(p, tokens) ** 2))(params)
    # d/dtable = scatter-add of d/dinputs over the positions of each id.
    d_inputs = jax.grad(lambda xs: jnp.sum(inner.apply(params.model, xs) ** 2))(
        params.embedding.table[tokens]
    )
    expected = np.zeros((V, E))
    np.add.at(expected, np.asarray(tokens), np.asarray(d_inputs))
    np.testing.assert_allclose(grads.embedding.table, expected, rtol=1e-10, atol=1e-14)
    unused = np.setdiff1d(np.arange(V), np.asarray(tokens))
    assert not np.any(np.asarray(grads.embedding.table)[unused])


def test_embedded_model_refuses_float_inputs_and_a_wrong_input_size():
    model = models.embedded(models.many_to_one(CELL, O), V, E, dtype=jnp.float64)
    params = model.init(jax.random.key(0), V)
    with pytest.raises(TypeError, match="tokens: expected an integer array, got dtype float"):
        model.apply(params, jnp.zeros((1, 3)))
    with pytest.raises(ValueError, match="input_size: the model was built for 11, got 4"):
        model.init(jax.random.key(0), 4)


@pytest.mark.parametrize("mask_name", ["none", "holey"])
def test_many_to_many_is_per_step_readout(lstm_setup, mask_name):
    cell, xs, k_p = lstm_setup
    mask = MASKS[mask_name]
    model = models.many_to_many(cell, O)
    params = _random_readout(model.init(k_p, I), jax.random.key(3))
    got = model.apply(params, xs, mask=None if mask is None else jnp.asarray(mask))
    expected = np_readout(params.readout, lstm_loop_outputs(mask_name))
    assert got.shape == (B, T, O)
    np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize(
    "cell, width",
    [
        (jaxrnn.lstm(6, projection_size=3), 3),
        (jaxrnn.stack(jaxrnn.gru(6), jaxrnn.lstm(4, projection_size=2)), 2),
    ],
)
def test_readout_init_uses_cell_output_width(cell, width, key):
    for model in (models.many_to_one(cell, O), models.many_to_many(cell, O)):
        params = model.init(key, I)
        assert params.readout.W.shape == (width, O)
        assert params.readout.b.shape == (O,)
        assert params.readout.W.dtype == params.readout.b.dtype == jnp.float32
        np.testing.assert_array_equal(params.readout.b, 0.0)
        # The cell part is exactly the cell's own init with the first split key.
        k_cell, _ = jax.random.split(key)
        expected = cell.init(k_cell, I)
        jax.tree.map(np.testing.assert_array_equal, params.cell, expected)


def test_float32_model_runs_and_matches_loop(key):
    cell = jaxrnn.gru(H)
    model = models.many_to_one(cell, O)
    params = model.init(key, I)
    xs = jax.random.normal(jax.random.key(5), (B, T, I), jnp.float32)
    mask = MASKS["padded"]
    got = jax.jit(model.apply)(params, xs, mask=jnp.asarray(mask))
    assert got.dtype == jnp.float32
    ys = loop_outputs(cell, params.cell, xs, mask)
    np.testing.assert_allclose(
        got, np_readout(params.readout, np_pool(ys, mask, "last")), rtol=1e-5
    )


def test_gradients_match_finite_differences(lstm_setup):
    cell, xs, k_p = lstm_setup
    xs = xs[:2, :5]
    mask = jnp.asarray(MASKS["holey"][:2, :5])
    heads = [models.many_to_one(cell, O, pooling=p) for p in ("last", "mean", "max")]
    heads.append(models.many_to_many(cell, O))
    params = _random_readout(heads[0].init(k_p, I), jax.random.key(4))

    # Every head shares the params' structure: one function (one compile) checks them all.
    def f(p, x):
        return jnp.concatenate([m.apply(p, x, mask=mask).reshape(-1) for m in heads])

    check_grads(jax.jit(f), (params, xs), order=1, modes=["rev"], eps=1e-6)


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="pooling: expected 'last', 'mean' or 'max', got 'sum'"):
        models.many_to_one(jaxrnn.gru(4), O, pooling="sum")
    with pytest.raises(ValueError, match="output_size: expected a positive int, got 0"):
        models.many_to_one(jaxrnn.gru(4), 0)
    with pytest.raises(ValueError, match="output_size"):
        models.many_to_many(jaxrnn.gru(4), -1)
