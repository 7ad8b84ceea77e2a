"""Combinators (rnn, bidirectional, stack, stack_layers, dropout, zoneout) vs Python-loop oracles.

Every oracle runs the wrapped cells one unbatched step at a time with a plain
Python loop over ``cell.apply``, reversing, compacting and splitting the
sequences by hand, and merges or mixes with NumPy.
"""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

import jaxrnn

F64 = jnp.float64
B, T, I = 3, 7, 4

LENGTHS = np.array([7, 4, 0], np.int32)
HOLEY = np.array(
    [
        [1, 0, 1, 1, 0, 1, 1],
        [0, 1, 1, 0, 1, 0, 0],
        [1, 1, 1, 1, 1, 1, 0],
    ],
    bool,
)
RESETS = np.array(
    [
        [1, 0, 0, 1, 0, 0, 0],
        [0, 0, 1, 0, 1, 1, 0],
        [0, 0, 0, 0, 0, 0, 1],
    ],
    bool,
)


def xs_f64(key, shape=(B, T, I)):
    return jax.random.normal(key, shape, F64)


_STEPS = {}


def step_fn(cell):
    """``cell.apply`` jitted once per cell (the oracle loops call it many times)."""
    if id(cell) not in _STEPS:
        _STEPS[id(cell)] = (cell, jax.jit(cell.apply))
    return _STEPS[id(cell)][1]


def run_seq(cell, params, xs, out_size, carry=None):
    """Plain Python loop of ``cell.apply`` over one unbatched sequence ``xs: [n, I]``."""
    c = cell.initial_carry(params, ()) if carry is None else carry
    apply = step_fn(cell)
    ys = []
    for x in xs:
        c, y = apply(params, c, jnp.asarray(x))
        ys.append(np.asarray(y))
    return c, (np.stack(ys) if ys else np.zeros((0, out_size)))


def stack_trees(trees):
    return jax.tree.map(lambda *xs: np.stack([np.asarray(x) for x in xs]), *trees)


def bidir_oracle(fw, bw, params, xs, valid, starts, out_size):
    """Per row: split at resets, compact the valid steps of each segment, run the
    forward cell over them and the backward cell over them reversed, scatter back."""
    xs = np.asarray(xs)
    nb, nt, _ = xs.shape
    ys_f, ys_b = np.zeros((nb, nt, out_size)), np.zeros((nb, nt, out_size))
    c_fw, c_bw = [], []
    for b in range(nb):
        bounds = [0, *[t for t in range(1, nt) if starts[b, t]], nt]
        for s, e in itertools.pairwise(bounds):
            idx = [t for t in range(s, e) if valid[b, t]]
            cf, ys_f[b, idx] = run_seq(fw, params.forward, xs[b, idx], out_size)
            cb, ys_b[b, idx[::-1]] = run_seq(bw, params.backward, xs[b, idx[::-1]], out_size)
            if s == 0:
                first_cb = cb  # the backward pass ends at the first segment
        c_fw.append(cf)
        c_bw.append(first_cb)
    return jaxrnn.BidirectionalCarry(stack_trees(c_fw), stack_trees(c_bw)), ys_f, ys_b


def assert_trees_close(a, b, **kw):
    jax.tree.map(lambda x, y: np.testing.assert_allclose(np.asarray(x), y, **kw), a, b)


NO_RESETS = np.zeros((B, T), bool)
ALL_VALID = np.ones((B, T), bool)
LENGTH_MASK = np.arange(T)[None, :] < LENGTHS[:, None]

MERGES = {
    "concat": lambda f, b: np.concatenate([f, b], -1),
    "sum": lambda f, b: f + b,
    "mean": lambda f, b: (f + b) / 2,
}


# ---------------------------------------------------------------- bidirectional


@pytest.mark.parametrize("merge", ["concat", "sum", "mean", "callable"])
def test_bidirectional_lengths_vs_reversed_prefix_loop(key, merge):
    H = 5
    layer_merge = (lambda f, b: f * b) if merge == "callable" else merge
    np_merge = (lambda f, b: f * b) if merge == "callable" else MERGES[merge]
    fw, bw = jaxrnn.gru(H, dtype=F64), jaxrnn.lstm(H, dtype=F64)
    layer = jaxrnn.bidirectional(fw, bw, merge=layer_merge)
    k1, k2 = jax.random.split(key)
    params = layer.init(k1, I)
    xs = xs_f64(k2)
    carry, ys = layer.apply(params, xs, lengths=jnp.asarray(LENGTHS))
    want_c, yf, yb = bidir_oracle(fw, bw, params, xs, LENGTH_MASK, NO_RESETS, H)
    np.testing.assert_allclose(ys, np_merge(yf, yb), atol=1e-12)
    assert isinstance(carry, jaxrnn.BidirectionalCarry)
    assert_trees_close(carry, want_c, atol=1e-12)


def test_bidirectional_backward_defaults_to_own_params(key):
    layer = jaxrnn.bidirectional(jaxrnn.elman(3, dtype=F64))
    params = layer.init(key, I)
    assert not np.allclose(params.forward.W_xh, params.backward.W_xh)
    _, ys = layer.apply(params, xs_f64(key))
    assert ys.shape == (B, T, 6)


def test_bidirectional_holey_mask_equals_compacted_runs(key):
    H = 4
    fw = jaxrnn.lstm(H, dtype=F64)
    layer = jaxrnn.bidirectional(fw)
    params = layer.init(key, I)
    xs = xs_f64(jax.random.fold_in(key, 1))
    carry, ys = layer.apply(params, xs, mask=jnp.asarray(HOLEY))
    want_c, yf, yb = bidir_oracle(fw, fw, params, xs, HOLEY, NO_RESETS, H)
    np.testing.assert_allclose(ys, np.concatenate([yf, yb], -1), atol=1e-12)
    assert_trees_close(carry, want_c, atol=1e-12)


@pytest.mark.parametrize("with_mask", [False, True])
def test_bidirectional_resets_equal_separate_runs(key, with_mask):
    H = 4
    fw, bw = jaxrnn.elman(H, dtype=F64), jaxrnn.gru(H, dtype=F64)
    layer = jaxrnn.bidirectional(fw, bw, merge="sum")
    params = layer.init(key, I)
    xs = xs_f64(jax.random.fold_in(key, 2))
    valid = HOLEY if with_mask else ALL_VALID
    carry, ys = layer.apply(
        params, xs, resets=jnp.asarray(RESETS), mask=jnp.asarray(valid) if with_mask else None
    )
    want_c, yf, yb = bidir_oracle(fw, bw, params, xs, valid, RESETS, H)
    np.testing.assert_allclose(ys, yf + yb, atol=1e-12)
    assert_trees_close(carry, want_c, atol=1e-12)


def test_bidirectional_given_carry(key):
    H = 3
    fw = jaxrnn.elman(H, dtype=F64)
    layer = jaxrnn.bidirectional(fw)
    params = layer.init(key, I)
    xs = xs_f64(key, (1, 5, I))
    h_f, h_b = (jax.random.normal(jax.random.fold_in(key, i), (1, H), F64) for i in (3, 4))
    given = jaxrnn.BidirectionalCarry(jaxrnn.ElmanCarry(h_f), jaxrnn.ElmanCarry(h_b))
    _, ys = layer.apply(params, xs, carry=given)
    _, yf = run_seq(fw, params.forward, xs[0], H, jaxrnn.ElmanCarry(h_f[0]))
    _, yb = run_seq(fw, params.backward, xs[0, ::-1], H, jaxrnn.ElmanCarry(h_b[0]))
    np.testing.assert_allclose(ys[0], np.concatenate([yf, yb[::-1]], -1), atol=1e-12)


def test_rnn_layer_equals_scan_loop(key):
    H = 4
    cell = jaxrnn.gru(H, dtype=F64)
    params = cell.init(key, I)
    xs = xs_f64(jax.random.fold_in(key, 1))
    for reverse in (False, True):
        carry, ys = jaxrnn.rnn(cell, reverse=reverse).apply(
            params, xs, lengths=jnp.asarray(LENGTHS)
        )
        for b in range(B):
            n = LENGTHS[b]
            seq = xs[b, :n][::-1] if reverse else xs[b, :n]
            c, y = run_seq(cell, params, seq, H)
            np.testing.assert_allclose(ys[b, :n], y[::-1] if reverse else y, atol=1e-12)
            np.testing.assert_array_equal(ys[b, n:], 0.0)
            np.testing.assert_allclose(carry.h[b], c.h, atol=1e-12)


# ---------------------------------------------------------------- stacks


def stack_cells(H=5):
    return (jaxrnn.gru(H, dtype=F64), jaxrnn.lstm(H, dtype=F64), jaxrnn.elman(H, dtype=F64))


@pytest.mark.parametrize("residual", [False, True])
def test_stack_cell_vs_step_loop(key, residual):
    H = 5
    cells = stack_cells(H)
    deep = jaxrnn.stack(*cells, residual=residual)
    params = deep.init(key, I)
    xs = xs_f64(jax.random.fold_in(key, 1))
    carry, ys = jaxrnn.scan(deep, params, xs, lengths=jnp.asarray(LENGTHS))
    assert isinstance(carry, jaxrnn.StackCarry) and carry.key is None
    steps = [step_fn(c) for c in cells]
    for b in range(B):
        cs = [c.initial_carry(p, ()) for c, p in zip(cells, params.layers, strict=True)]
        for t in range(LENGTHS[b]):
            y = xs[b, t]
            for l, (p, apply) in enumerate(zip(params.layers, steps, strict=True)):
                cs[l], out = apply(p, cs[l], y)
                y = out + y if residual and l > 0 else out
            np.testing.assert_allclose(ys[b, t], y, atol=1e-12)
        np.testing.assert_array_equal(ys[b, LENGTHS[b] :], 0.0)
        for l in range(3):
            assert_trees_close(
                jax.tree.map(lambda x, b=b: x[b], carry.layers[l]), cs[l], atol=1e-12
            )


@pytest.mark.parametrize("residual", [False, True])
def test_stack_layers_vs_layer_by_layer_loop(key, residual):
    H = 5
    cells = stack_cells(H)
    deep = jaxrnn.stack_layers(*cells, residual=residual)
    params = deep.init(key, I)
    xs = np.asarray(xs_f64(jax.random.fold_in(key, 1)))
    carry, ys = deep.apply(params, xs, lengths=jnp.asarray(LENGTHS))
    assert isinstance(params, jaxrnn.StackParams) and isinstance(carry, tuple)
    for b in range(B):
        n = LENGTHS[b]
        y = xs[b, :n]
        for l, (cell, p) in enumerate(zip(cells, params.layers, strict=True)):
            c, out = run_seq(cell, p, y, H)
            y = out + y if residual and l > 0 else out
            assert_trees_close(jax.tree.map(lambda x, b=b: x[b], carry[l]), c, atol=1e-12)
        np.testing.assert_allclose(ys[b, :n], y, atol=1e-12)
        np.testing.assert_array_equal(ys[b, n:], 0.0)


def test_deep_bidirectional_vs_manual_composition(key):
    H = 3
    c1, c2 = jaxrnn.gru(H, dtype=F64), jaxrnn.lstm(H, dtype=F64)
    deep = jaxrnn.stack_layers(jaxrnn.bidirectional(c1), jaxrnn.bidirectional(c2))
    params = deep.init(key, I)
    xs = xs_f64(jax.random.fold_in(key, 1))
    carry, ys = deep.apply(params, xs, mask=jnp.asarray(HOLEY))
    assert params.layers[1].forward.W_xh.shape == (2 * H, 4 * H)
    c_1, f1, b1 = bidir_oracle(c1, c1, params.layers[0], xs, HOLEY, NO_RESETS, H)
    h1 = np.concatenate([f1, b1], -1)
    c_2, f2, b2 = bidir_oracle(c2, c2, params.layers[1], h1, HOLEY, NO_RESETS, H)
    np.testing.assert_allclose(ys, np.concatenate([f2, b2], -1), atol=1e-12)
    assert_trees_close(carry, (c_1, c_2), atol=1e-12)


def key_data_tree(tree):
    return jax.tree.map(
        lambda x: (
            jax.random.key_data(x) if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key) else x
        ),
        tree,
    )


@pytest.mark.parametrize("residual", [False, True])
def test_stack_equals_stack_layers_with_dropout(key, residual):
    H = 6
    inner = jaxrnn.variational_dropout(jaxrnn.lstm(H, dtype=F64), input_rate=0.2, state_rate=0.3)
    cells = (jaxrnn.gru(H, dtype=F64), inner, jaxrnn.elman(H, dtype=F64))
    step = jaxrnn.stack(*cells, residual=residual, dropout=0.4)
    seq = jaxrnn.stack_layers(*cells, residual=residual, dropout=0.4)
    params = step.init(key, I)
    jax.tree.map(np.testing.assert_array_equal, params, seq.init(key, I))  # the same init too
    xs = xs_f64(jax.random.fold_in(key, 1))
    k = jax.random.key(7)
    lengths = jnp.asarray(LENGTHS)
    c_step, y_step = jaxrnn.scan(step, params, xs, lengths=lengths, key=k)
    c_seq, y_seq = seq.apply(params, xs, lengths=lengths, key=k)
    # The masks are bit-identical (see the next test); the two differently fused
    # XLA programs may still round differently, by an ulp or so.
    np.testing.assert_allclose(y_step, y_seq, rtol=0, atol=1e-13)
    jax.tree.map(
        lambda a, b: np.testing.assert_allclose(a, b, rtol=0, atol=1e-13),
        key_data_tree(c_step.layers),
        key_data_tree(c_seq),
    )
    # The key must matter, or equality would prove nothing about the masks.
    _, y_eval = jaxrnn.scan(step, params, xs, lengths=lengths)
    assert np.abs(np.asarray(y_step) - np.asarray(y_eval)).max() > 0.1


def test_between_layer_masks_bitwise_equal_stepwise_and_layerwise(key):
    """The shared helper draws the same bits for one step and for a whole sequence."""
    from jaxrnn.combinators.stack import layer_input

    ys = jax.random.normal(key, (B, T, 16), jnp.float32)
    k = jax.random.key(11)
    whole = layer_input(ys, 2, dropout=0.3, key=k, time_axis=True)
    for t in range(T):
        np.testing.assert_array_equal(whole[:, t], layer_input(ys[:, t], 2, dropout=0.3, key=k))
    assert not np.array_equal(whole, ys)
    np.testing.assert_array_equal(layer_input(ys, 0, dropout=0.3, key=k, time_axis=True), ys)


def identity_elman(D, dtype=F64, W_hh=None):
    """An Elman cell with identity activation, W_xh = I, b = 0: y_t = x_t + h_{t-1} W_hh."""
    cell = jaxrnn.elman(D, activation="identity", dtype=dtype)
    params = jaxrnn.ElmanParams(
        W_xh=jnp.eye(D, dtype=dtype),
        W_hh=jnp.zeros((D, D), dtype) if W_hh is None else W_hh,
        b=jnp.zeros((D,), dtype),
    )
    return cell, params


def test_stack_layers_dropout_is_one_mask_per_sequence(key):
    D, nb, p = 16, 64, 0.5
    cell, p_id = identity_elman(D)
    deep = jaxrnn.stack_layers(cell, cell, dropout=p)
    params = jaxrnn.StackParams((p_id, p_id))
    xs = jnp.ones((nb, T, D), F64)
    _, ys = deep.apply(params, xs, key=jax.random.key(3))
    # Layer 1 outputs ones; layer 2 copies its dropped input: ys = m / (1 - p).
    ys = np.asarray(ys)
    np.testing.assert_array_equal(ys, np.broadcast_to(ys[:, :1], ys.shape))  # tied across time
    assert set(np.unique(ys)) <= {0.0, 1 / (1 - p)}
    assert not all(np.array_equal(ys[0, 0], ys[b, 0]) for b in range(1, nb))
    assert abs(ys.mean() - 1.0) < 4 * np.sqrt(p / (1 - p) / (nb * D))
    _, ys_eval = deep.apply(params, xs)
    np.testing.assert_array_equal(ys_eval, 1.0)  # no key: no dropout


def test_stack_initial_carry_passes_keys_to_inner_cells(key):
    drop = jaxrnn.variational_dropout(jaxrnn.elman(3), input_rate=0.5)
    deep = jaxrnn.stack(drop, drop)
    params = deep.init(key, I)
    carry = deep.initial_carry(params, (2,), key=jax.random.key(1))
    assert carry.key is None  # dropout=0 between layers
    k0, k1 = carry.layers[0].key, carry.layers[1].key
    assert k0 is not None and not np.array_equal(jax.random.key_data(k0), jax.random.key_data(k1))
    assert deep.initial_carry(params, (2,)).layers[0].key is None


# ---------------------------------------------------------------- variational dropout


def test_variational_dropout_eval_equals_wrapped_cell(key):
    cell = jaxrnn.lstm(5, dtype=F64)
    drop = jaxrnn.variational_dropout(cell, input_rate=0.3, state_rate=0.4)
    params = drop.init(key, I)
    xs = xs_f64(jax.random.fold_in(key, 1))
    c_d, y_d = jaxrnn.scan(drop, params, xs, mask=jnp.asarray(HOLEY))
    c, y = jaxrnn.scan(cell, params, xs, mask=jnp.asarray(HOLEY))
    np.testing.assert_array_equal(y_d, y)
    jax.tree.map(np.testing.assert_array_equal, c_d.cell, c)
    assert c_d.key is None


def test_variational_dropout_rate_zero_with_key_equals_cell(key):
    cell = jaxrnn.gru(5, dtype=F64)
    drop = jaxrnn.variational_dropout(cell)
    params = drop.init(key, I)
    xs = xs_f64(jax.random.fold_in(key, 1))
    _, y_d = jaxrnn.scan(drop, params, xs, key=jax.random.key(5))
    _, y = jaxrnn.scan(cell, params, xs)
    np.testing.assert_array_equal(y_d, y)


def test_variational_dropout_input_mask_tied_across_time(key):
    D, nb, p = 16, 64, 0.5
    cell, params = identity_elman(D)  # W_hh = 0: y_t = x_t ⊙ m / (1 - p)
    drop = jaxrnn.variational_dropout(cell, input_rate=p)
    xs = jax.random.uniform(key, (nb, T, D), F64, 1.0, 2.0)
    _, ys = jaxrnn.scan(drop, params, xs, key=jax.random.key(1))
    m = np.asarray(ys) / np.asarray(xs) * (1 - p)  # the mask, read off per step
    np.testing.assert_allclose(m, np.round(m), atol=1e-12)
    np.testing.assert_array_equal(np.round(m), np.broadcast_to(np.round(m[:, :1]), m.shape))
    assert not all(np.array_equal(m[0, 0], m[b, 0]) for b in range(1, nb))
    assert abs(m.mean() - (1 - p)) < 4 * np.sqrt(p * (1 - p) / (nb * D))
    # Scaling by 1 / (1 - p): the output has the input's mean.
    ones = jnp.ones((nb, T, D), F64)
    _, y1 = jaxrnn.scan(drop, params, ones, key=jax.random.key(2))
    assert abs(float(np.mean(y1)) - 1.0) < 4 * np.sqrt(p / (1 - p) / (nb * D))


def test_variational_dropout_state_mask_tied_across_time(key):
    D, nb, p = 8, 16, 0.5
    cell, params = identity_elman(D, W_hh=jnp.eye(D, dtype=F64))  # h_t = x_t + m ⊙ h_{t-1}/(1-p)
    drop = jaxrnn.variational_dropout(cell, state_rate=p)
    xs = jnp.ones((nb, T, D), F64)
    _, ys = jaxrnn.scan(drop, params, xs, key=jax.random.key(4))
    ys = np.asarray(ys)
    m = np.round((ys[:, 1] - 1.0) * (1 - p))  # h_1 = 1, h_2 = 1 + m / (1 - p)
    assert set(np.unique(m)) == {0.0, 1.0}
    h = np.zeros((nb, D))
    for t in range(T):  # NumPy recurrence with the one mask read off at t = 1
        h = 1.0 + m * h / (1 - p)
        np.testing.assert_allclose(ys[:, t], h, atol=1e-12)


def test_variational_dropout_holey_mask_keeps_carry(key):
    cell = jaxrnn.lstm(4, dtype=F64)
    drop = jaxrnn.variational_dropout(cell, input_rate=0.3, state_rate=0.3)
    params = drop.init(key, I)
    xs = np.asarray(xs_f64(jax.random.fold_in(key, 1)))
    k = jax.random.key(9)
    carry, ys = jaxrnn.scan(drop, params, jnp.asarray(xs), mask=jnp.asarray(HOLEY), key=k)
    run = jax.jit(lambda x, n: jaxrnn.scan(drop, params, x, lengths=n, key=k))
    # The masks are tied to the sequence (and drawn per batch row), so skipping
    # steps equals compacting them away: row b of a batch holding row b's valid steps.
    for b in range(B):
        idx = np.flatnonzero(HOLEY[b])
        np.testing.assert_array_equal(ys[b, ~HOLEY[b]], 0.0)
        compact = np.zeros_like(xs)
        compact[:, : len(idx)] = xs[:, idx]
        lengths = jnp.full((B,), len(idx), jnp.int32)
        c_c, y_c = run(jnp.asarray(compact), lengths)
        np.testing.assert_allclose(ys[b, idx], y_c[b, : len(idx)], atol=1e-12)
        assert_trees_close(
            jax.tree.map(lambda x, b=b: x[b], carry.cell),
            jax.tree.map(lambda x, b=b: np.asarray(x[b]), c_c.cell),
            atol=1e-12,
        )


# ---------------------------------------------------------------- zoneout


def test_zoneout_eval_is_expectation(key):
    H = 5
    cell = jaxrnn.lstm(H, dtype=F64)
    rates = {"h": 0.05, "c": 0.5}
    zo = jaxrnn.zoneout(cell, rates)
    params = zo.init(key, I)
    xs = np.asarray(xs_f64(jax.random.fold_in(key, 1)))
    carry, ys = jaxrnn.scan(zo, params, xs)
    apply = step_fn(cell)
    for b in range(B):
        h, c = np.zeros(H), np.zeros(H)
        for t in range(T):
            new, _ = apply(params, jaxrnn.LSTMCarry(jnp.asarray(h), jnp.asarray(c)), xs[b, t])
            h = rates["h"] * h + (1 - rates["h"]) * np.asarray(new.h)
            c = rates["c"] * c + (1 - rates["c"]) * np.asarray(new.c)
            np.testing.assert_allclose(ys[b, t], h, atol=1e-12)
        np.testing.assert_allclose(carry.cell.h[b], h, atol=1e-12)
        np.testing.assert_allclose(carry.cell.c[b], c, atol=1e-12)


def test_zoneout_training_keeps_or_updates_each_unit(key):
    H, nb, nt = 16, 32, 6
    cell = jaxrnn.lstm(H, dtype=F64)
    rates = {"h": 0.3, "c": 0.6}
    zo = jaxrnn.zoneout(cell, rates)
    params = zo.init(key, I)
    xs = jax.random.normal(jax.random.fold_in(key, 1), (nb, nt, I), F64)
    carry = zo.initial_carry(params, (nb,), key=jax.random.key(2))
    zo_step, cell_step = jax.jit(zo.apply), step_fn(cell)
    kept = {"h": [], "c": []}
    for t in range(nt):
        unzoned, _ = cell_step(params, carry.cell, xs[:, t])
        new, y = zo_step(params, carry, xs[:, t])
        for name in rates:
            prev, upd, got = (np.asarray(getattr(c, name)) for c in (carry.cell, unzoned, new.cell))
            # Two XLA programs may differ by an ulp; zoned and updated values differ by far more.
            is_prev = np.isclose(got, prev, rtol=0, atol=1e-13)
            is_upd = np.isclose(got, upd, rtol=0, atol=1e-13)
            assert np.all(is_prev ^ is_upd)
            kept[name].append(is_prev)
        np.testing.assert_array_equal(y, new.cell.h)
        assert not np.array_equal(jax.random.key_data(new.key), jax.random.key_data(carry.key))
        carry = new
    for name, rate in rates.items():
        k = np.stack(kept[name])
        assert abs(k.mean() - rate) < 4 * np.sqrt(rate * (1 - rate) / k.size)
        assert not np.array_equal(k[0], k[1])  # fresh masks each step


def test_zoneout_float_rate_zones_every_field(key):
    cell = jaxrnn.lstm(3, dtype=F64)
    zo = jaxrnn.zoneout(cell, 0.25)
    params = zo.init(key, I)
    x = jax.random.normal(key, (2, I), F64)
    c0 = jaxrnn.LSTMCarry(*(jax.random.normal(jax.random.key(i), (2, 3), F64) for i in (1, 2)))
    new, y = zo.apply(params, jaxrnn.ZoneoutCarry(c0, None), x)
    upd, _ = cell.apply(params, c0, x)
    for name in ("h", "c"):
        want = 0.25 * np.asarray(getattr(c0, name)) + 0.75 * np.asarray(getattr(upd, name))
        np.testing.assert_allclose(getattr(new.cell, name), want, atol=1e-12)
    np.testing.assert_allclose(y, new.cell.h, atol=0)


def test_zoneout_holey_mask_keeps_carry_key_advances(key):
    # H = 8, rate 0.3: a valid step keeps all units with probability 0.3^8, so it changes h.
    zo = jaxrnn.zoneout(jaxrnn.gru(8, dtype=F64), 0.3)
    params = zo.init(key, I)
    xs = xs_f64(jax.random.fold_in(key, 1))
    mask = jnp.asarray(HOLEY)
    k = jax.random.key(3)
    full, ys = jaxrnn.scan(zo, params, xs, mask=mask, key=k)
    # key= only makes scan's carry template hold a key too; the given carry is used.
    one_step = jax.jit(lambda c, x, m: jaxrnn.scan(zo, params, x, c, mask=m, key=k))
    prev = zo.initial_carry(params, (B,), key=k)
    for t in range(T):
        carry, _ = one_step(prev, xs[:, t : t + 1], mask[:, t : t + 1])
        for b in range(B):
            same = np.array_equal(carry.cell.h[b], prev.cell.h[b])
            assert same == (not HOLEY[b, t])
            if not HOLEY[b, t]:
                np.testing.assert_array_equal(ys[b, t], 0.0)
        # Documented: the per-rollout key advances on every step, masked or not.
        assert not np.array_equal(jax.random.key_data(carry.key), jax.random.key_data(prev.key))
        prev = carry
    # Step by step is the same rollout as the whole sequence at once.
    np.testing.assert_allclose(prev.cell.h, full.cell.h, rtol=0, atol=1e-13)
    np.testing.assert_array_equal(jax.random.key_data(prev.key), jax.random.key_data(full.key))


# ---------------------------------------------------------------- gradients


def test_grads_bidirectional_with_lengths(key):
    layer = jaxrnn.bidirectional(jaxrnn.gru(3, dtype=F64), jaxrnn.lstm(3, dtype=F64))
    params = layer.init(key, 2)
    xs = jax.random.normal(key, (2, 4, 2), F64)
    lengths = jnp.asarray([4, 2], jnp.int32)

    def loss(params, xs):
        carry, ys = layer.apply(params, xs, lengths=lengths)
        return jnp.sum(ys**2) + jnp.sum(carry.backward.c)

    check_grads(loss, (params, xs), order=1, modes=["rev"])


def test_grads_stack(key):
    deep = jaxrnn.stack(jaxrnn.lstm(3, dtype=F64), jaxrnn.gru(3, dtype=F64), residual=True)
    params = deep.init(key, 2)
    xs = jax.random.normal(key, (2, 4, 2), F64)

    def loss(params, xs):
        _, ys = jaxrnn.scan(deep, params, xs, mask=jnp.asarray([[1, 1, 0, 1], [1, 0, 1, 1]], bool))
        return jnp.sum(jnp.tanh(ys))

    check_grads(loss, (params, xs), order=1, modes=["rev"])


# ---------------------------------------------------------------- errors


def test_errors(key):
    cell = jaxrnn.elman(3)
    with pytest.raises(ValueError, match=r"merge: .*'concat'.*'max'"):
        jaxrnn.bidirectional(cell, merge="max")
    with pytest.raises(ValueError, match=r"merge: 'sum' .* forward 3 and backward 5"):
        layer = jaxrnn.bidirectional(cell, jaxrnn.elman(5), merge="sum")
        layer.apply(layer.init(key, 2), jnp.ones((1, 2, 2), jnp.float32))
    with pytest.raises(ValueError, match=r"residual: .*input size 3 and output size 5"):
        jaxrnn.stack(cell, jaxrnn.elman(5), residual=True).init(key, 2)
    with pytest.raises(ValueError, match=r"residual: .*input size 3 and output size 5"):
        jaxrnn.stack_layers(cell, jaxrnn.elman(5), residual=True).init(key, 2)
    deep = jaxrnn.stack(cell, jaxrnn.elman(5), residual=True)
    bad = jaxrnn.stack(cell, jaxrnn.elman(5)).init(key, 2)
    with pytest.raises(ValueError, match=r"residual: .*input size 3 and output size 5"):
        jaxrnn.scan(deep, bad, jnp.ones((1, 2, 2), jnp.float32))
    for rate in (-0.1, 1.0, 1.5, "0.1", True):
        with pytest.raises(ValueError, match=r"dropout: expected a float in \[0, 1\)"):
            jaxrnn.stack(cell, cell, dropout=rate)
        with pytest.raises(ValueError, match=r"input_rate: expected a float in \[0, 1\)"):
            jaxrnn.variational_dropout(cell, input_rate=rate)
        with pytest.raises(ValueError, match=r"state_rate: expected"):
            jaxrnn.variational_dropout(cell, state_rate=rate)
        with pytest.raises(ValueError, match=r"rates: expected a float in \[0, 1\)"):
            jaxrnn.zoneout(cell, rate)
    with pytest.raises(ValueError, match=r"rates\['c'\]: expected a float in \[0, 1\), got 1.0"):
        jaxrnn.zoneout(jaxrnn.lstm(3), {"h": 0.1, "c": 1.0})
    zo = jaxrnn.zoneout(jaxrnn.lstm(3), {"h": 0.1, "m": 0.5})
    with pytest.raises(ValueError, match=r"rates: .*\('h', 'c'\), got 'm'"):
        zo.initial_carry(zo.init(key, 2), (1,))
    with pytest.raises(TypeError, match=r"layers\[1\]: expected a jaxrnn.Layer or jaxrnn.Cell"):
        jaxrnn.stack_layers(cell, "lstm")
    with pytest.raises(ValueError, match=r"carry: expected a tuple with one entry per layer \(2\)"):
        net = jaxrnn.stack_layers(cell, cell)
        net.apply(net.init(key, 2), jnp.ones((1, 2, 2), jnp.float32), carry=(None,))
