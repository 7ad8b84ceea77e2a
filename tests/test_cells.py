"""Elman, GRU and LSTM cells against independent oracles.

Oracles: NumPy step functions written here from the papers' equations (column-vector
form, one matrix per gate, float64), Flax's ``SimpleCell``/``GRUCell``/``LSTMCell`` and
PyTorch's ``nn.LSTM(proj_size=...)`` with the same weights, and finite differences.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

import jaxrnn

H, I, T = 5, 4, 6
F64 = jnp.float64


# --------------------------------------------------------------------------- NumPy oracles


def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def lin(W, v):
    """``W v`` for a column-vector matrix ``W: [out, in]`` and ``v: [..., in]``."""
    return np.einsum("oi,...i->...o", W, v)


def gate_blocks(W, names):
    """Split a fused row-vector ``[in, G*H]`` matrix into per-gate column matrices ``[H, in]``."""
    n = W.shape[-1] // len(names)
    return {k: W[..., j * n : (j + 1) * n].T for j, k in enumerate(names)}


def split_last(z, names):
    """Split the last axis of a fused ``[..., G*H]`` array into named ``[..., H]`` blocks."""
    n = z.shape[-1] // len(names)
    return {k: z[..., j * n : (j + 1) * n] for j, k in enumerate(names)}


def np_layer_norm(z, gain, bias, eps=1e-5):
    """Ba et al. (2016), Eq. 15-16, over the last axis."""
    mu = z.mean(-1, keepdims=True)
    sigma = np.sqrt(((z - mu) ** 2).mean(-1, keepdims=True) + eps)
    return gain * (z - mu) / sigma + bias


def np_elman(f):
    """Elman (1990): h_t = f(W_x x_t + W_h h_{t-1} + b)."""

    def step(p, carry, x):
        h = f(lin(p.W_xh.T, x) + lin(p.W_hh.T, carry.h) + p.b)
        return jaxrnn.ElmanCarry(h), h

    return step


def np_gru(reset_after):
    """Cho et al. (2014) (reset_after=False) or the cuDNN variant, with optional LN."""

    def step(p, carry, x):
        h = carry.h
        Wx, Wh, b = gate_blocks(p.W_xh, "rzn"), gate_blocks(p.W_hh, "rzn"), split_last(p.b, "rzn")
        if p.layer_norm is None:
            px = {k: lin(Wx[k], x) for k in "rzn"}
            ph = {k: lin(Wh[k], h) for k in "rzn"}
        else:  # normalise each fused pre-activation over all 3H units
            ln = p.layer_norm
            cat_x = np.concatenate([lin(Wx[k], x) for k in "rzn"], -1)
            cat_h = np.concatenate([lin(Wh[k], h) for k in "rzn"], -1)
            px = split_last(np_layer_norm(cat_x, ln.x.g, ln.x.b), "rzn")
            ph = split_last(np_layer_norm(cat_h, ln.h.g, ln.h.b), "rzn")
        r = sigmoid(px["r"] + b["r"] + ph["r"])
        z = sigmoid(px["z"] + b["z"] + ph["z"])
        if reset_after:
            n = np.tanh(px["n"] + b["n"] + r * (ph["n"] + p.b_hn))
        else:
            n = np.tanh(px["n"] + b["n"] + lin(Wh["n"], r * h))
        h = (1.0 - z) * n + z * h
        return jaxrnn.GRUCarry(h), h

    return step


def np_lstm(p, carry, x):
    """Gers et al. (2000) with peepholes (Gers & Schmidhuber 2000), LSTMP (Sak et al.
    2014) and layer norm (Ba et al. 2016, Eq. 20-22), whichever params are present."""
    h, c = carry.h, carry.c
    Wx, Wh, b = gate_blocks(p.W_xh, "ifgo"), gate_blocks(p.W_hh, "ifgo"), split_last(p.b, "ifgo")
    px = {k: lin(Wx[k], x) for k in "ifgo"}
    ph = {k: lin(Wh[k], h) for k in "ifgo"}
    if p.layer_norm is not None:
        ln = p.layer_norm
        px = split_last(
            np_layer_norm(np.concatenate([px[k] for k in "ifgo"], -1), ln.x.g, ln.x.b), "ifgo"
        )
        ph = split_last(
            np_layer_norm(np.concatenate([ph[k] for k in "ifgo"], -1), ln.h.g, ln.h.b), "ifgo"
        )
    pre = {k: px[k] + ph[k] + b[k] for k in "ifgo"}
    if p.peephole is not None:
        pre["i"] = pre["i"] + p.peephole.w_ci * c
        pre["f"] = pre["f"] + p.peephole.w_cf * c
    c_new = sigmoid(pre["f"]) * c + sigmoid(pre["i"]) * np.tanh(pre["g"])
    if p.peephole is not None:  # the output gate peeks at the new cell state
        pre["o"] = pre["o"] + p.peephole.w_co * c_new
    c_shown = np_layer_norm(c_new, p.layer_norm.c.g, p.layer_norm.c.b) if p.layer_norm else c_new
    m = sigmoid(pre["o"]) * np.tanh(c_shown)
    h_new = lin(p.W_hr.T, m) if p.W_hr is not None else m
    return jaxrnn.LSTMCarry(h_new, c_new), h_new


# --------------------------------------------------------------------------- cases

CASES = {
    "elman_tanh": (lambda: jaxrnn.elman(H, activation="tanh"), np_elman(np.tanh)),
    "elman_relu": (
        lambda: jaxrnn.elman(H, activation="relu"),
        np_elman(lambda z: np.maximum(z, 0)),
    ),
    "elman_sigmoid": (lambda: jaxrnn.elman(H, activation="sigmoid"), np_elman(sigmoid)),
    "elman_identity": (lambda: jaxrnn.elman(H, activation="identity"), np_elman(lambda z: z)),
    "elman_callable": (lambda: jaxrnn.elman(H, activation=jnp.sin), np_elman(np.sin)),
    "gru": (lambda: jaxrnn.gru(H), np_gru(True)),
    "gru_reset_before": (lambda: jaxrnn.gru(H, reset_after=False), np_gru(False)),
    "gru_layer_norm": (lambda: jaxrnn.gru(H, layer_norm=True), np_gru(True)),
    "lstm": (lambda: jaxrnn.lstm(H), np_lstm),
    "lstm_peephole": (lambda: jaxrnn.lstm(H, peephole=True), np_lstm),
    "lstm_projection": (lambda: jaxrnn.lstm(H, projection_size=3), np_lstm),
    "lstm_layer_norm": (lambda: jaxrnn.lstm(H, layer_norm=True), np_lstm),
    "lstm_all": (
        lambda: jaxrnn.lstm(H, peephole=True, projection_size=3, layer_norm=True),
        np_lstm,
    ),
}
BATCH_SHAPES = [(), (3,), (2, 3)]


def randomize(tree, key, dtype=F64):
    """Replace every leaf by N(0, 0.5^2) values, so that every parameter takes part."""
    leaves, treedef = jax.tree.flatten(tree)
    keys = jax.random.split(key, len(leaves))
    new = [0.5 * jax.random.normal(k, x.shape, dtype) for k, x in zip(keys, leaves, strict=True)]
    return jax.tree.unflatten(treedef, new)


def setup(name, key, batch_shape=(3,), dtype=F64):
    cell = CASES[name][0]()
    k_p, k_c, k_x = jax.random.split(key, 3)
    params = randomize(cell.init(k_p, I), k_p, dtype)
    carry = randomize(cell.initial_carry(params, batch_shape), k_c, dtype)
    xs = jax.random.normal(k_x, (*batch_shape, T, I), dtype)
    return cell, params, carry, xs


def to_np(tree):
    return jax.tree.map(np.asarray, tree)


# --------------------------------------------------------------------------- NumPy oracle


@pytest.mark.parametrize("batch_shape", BATCH_SHAPES, ids=str)
@pytest.mark.parametrize("name", CASES)
def test_cell_matches_numpy_equations(name, batch_shape, key):
    cell, params, carry, xs = setup(name, key, batch_shape)
    oracle = CASES[name][1]
    apply = cell.apply  # eager: cheaper than one compilation per case
    np_params, np_carry = to_np(params), to_np(carry)
    for t in range(3):
        x = xs[..., t, :]
        carry, y = apply(params, carry, x)
        np_carry, np_y = oracle(np_params, np_carry, np.asarray(x))
        assert y.dtype == F64 and y.shape == np_y.shape
        np.testing.assert_allclose(y, np_y, rtol=1e-12, atol=1e-12)
        for got, want in zip(jax.tree.leaves(carry), jax.tree.leaves(np_carry), strict=True):
            np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


# --------------------------------------------------------------------------- Flax oracle


def flax_variables(name, p):
    """jaxrnn params -> flax.linen variables (Dense kernels are row-vector, ``x @ kernel``)."""
    if name.startswith("elman"):
        return {"params": {"i": {"kernel": p.W_xh, "bias": p.b}, "h": {"kernel": p.W_hh}}}
    if name == "gru":
        Wx, Wh = jnp.split(p.W_xh, 3, -1), jnp.split(p.W_hh, 3, -1)
        b = jnp.split(p.b, 3)
        return {
            "params": {
                "ir": {"kernel": Wx[0], "bias": b[0]},
                "iz": {"kernel": Wx[1], "bias": b[1]},
                "in": {"kernel": Wx[2], "bias": b[2]},
                "hr": {"kernel": Wh[0]},
                "hz": {"kernel": Wh[1]},
                "hn": {"kernel": Wh[2], "bias": p.b_hn},
            }
        }
    Wx, Wh, b = jnp.split(p.W_xh, 4, -1), jnp.split(p.W_hh, 4, -1), jnp.split(p.b, 4)
    v = {}
    for j, g in enumerate("ifgo"):
        v[f"i{g}"] = {"kernel": Wx[j]}
        v[f"h{g}"] = {"kernel": Wh[j], "bias": b[j]}
    return {"params": v}


@pytest.mark.parametrize(
    "name, flax_cell",
    [
        ("elman_tanh", nn.SimpleCell(H, param_dtype=F64)),
        ("gru", nn.GRUCell(H, param_dtype=F64)),
        ("lstm", nn.LSTMCell(H, param_dtype=F64)),
    ],
)
def test_rollout_matches_flax(name, flax_cell, key):
    cell, params, carry, xs = setup(name, key, (3,))
    variables = flax_variables(name, params)
    # Flax's LSTM carry is (c, h), ours LSTMCarry(h, c): map by field name.
    fc = (carry.c, carry.h) if name == "lstm" else carry.h
    flax_apply = jax.jit(flax_cell.apply)
    flax_ys = []
    for t in range(T):
        fc, y = flax_apply(variables, fc, xs[:, t])
        flax_ys.append(y)
    final, ys = jaxrnn.scan(cell, params, xs, carry)
    np.testing.assert_allclose(ys, jnp.stack(flax_ys, 1), rtol=1e-12, atol=1e-12)
    if name == "lstm":
        np.testing.assert_allclose(final.c, fc[0], rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(final.h, fc[1], rtol=1e-12, atol=1e-12)
    else:
        np.testing.assert_allclose(final.h, fc, rtol=1e-12, atol=1e-12)


def test_lstm_projection_matches_torch(key):
    torch = pytest.importorskip("torch")
    P = 3
    cell, params, carry, xs = setup("lstm_projection", key, (2,))
    net = torch.nn.LSTM(I, H, proj_size=P, batch_first=True, dtype=torch.float64)
    with torch.no_grad():
        net.weight_ih_l0.copy_(torch.from_numpy(np.asarray(params.W_xh).T.copy()))
        net.weight_hh_l0.copy_(torch.from_numpy(np.asarray(params.W_hh).T.copy()))
        net.bias_ih_l0.copy_(torch.from_numpy(np.asarray(params.b).copy()))
        net.bias_hh_l0.zero_()
        net.weight_hr_l0.copy_(torch.from_numpy(np.asarray(params.W_hr).T.copy()))
        h0 = torch.from_numpy(np.asarray(carry.h)[None].copy())
        c0 = torch.from_numpy(np.asarray(carry.c)[None].copy())
        ys_t, (h_t, c_t) = net(torch.from_numpy(np.asarray(xs).copy()), (h0, c0))
    final, ys = jaxrnn.scan(cell, params, xs, carry)
    np.testing.assert_allclose(ys, ys_t.numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(final.h, h_t[0].numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(final.c, c_t[0].numpy(), rtol=1e-12, atol=1e-12)


# --------------------------------------------------------------------------- batching, dtypes


@pytest.mark.parametrize("name", ["elman_tanh", "gru_layer_norm", "gru_reset_before", "lstm_all"])
def test_vmap_equals_batch_dims(name, key):
    cell, params, carry, xs = setup(name, key, (2, 3))
    x = xs[..., 0, :]
    want_c, want_y = cell.apply(params, carry, x)
    vapply = jax.vmap(jax.vmap(cell.apply, (None, 0, 0)), (None, 0, 0))
    got_c, got_y = vapply(params, carry, x)
    np.testing.assert_allclose(got_y, want_y, rtol=1e-13, atol=1e-13)
    for got, want in zip(jax.tree.leaves(got_c), jax.tree.leaves(want_c), strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-13, atol=1e-13)


@pytest.mark.parametrize("name", ["elman_tanh", "gru", "gru_reset_before", "lstm_all"])
def test_bfloat16_params_keep_float32_carry(name, key):
    cell, params32, _, xs32 = setup(name, key, (3,), dtype=jnp.float32)
    params16 = jax.tree.map(lambda p: p.astype(jnp.bfloat16), params32)
    carry0 = cell.initial_carry(params16, (3,))
    assert all(c.dtype == jnp.float32 for c in jax.tree.leaves(carry0))
    # Compare against float32 params holding the same (bfloat16-rounded) values.
    params_ref = jax.tree.map(lambda p: p.astype(jnp.float32), params16)
    final16, ys16 = jaxrnn.scan(cell, params16, xs32.astype(jnp.bfloat16))
    _, ys32 = jaxrnn.scan(cell, params_ref, xs32.astype(jnp.bfloat16).astype(jnp.float32))
    assert ys16.dtype == jnp.float32
    assert all(c.dtype == jnp.float32 for c in jax.tree.leaves(final16))
    np.testing.assert_allclose(ys16, ys32, atol=5e-2)
    assert not np.allclose(ys32, 0.0)


@pytest.mark.parametrize("name", ["elman_tanh", "gru", "lstm_all"])
def test_float64_stays_float64(name, key):
    cell = {
        "elman_tanh": jaxrnn.elman(H, dtype=F64),
        "gru": jaxrnn.gru(H, dtype=F64),
        "lstm_all": jaxrnn.lstm(H, peephole=True, projection_size=3, layer_norm=True, dtype=F64),
    }[name]
    params = cell.init(key, I)
    assert all(p.dtype == F64 for p in jax.tree.leaves(params))
    carry = cell.initial_carry(params, (2,))
    carry, y = cell.apply(params, carry, jnp.ones((2, I), F64))
    assert y.dtype == F64
    assert all(c.dtype == F64 for c in jax.tree.leaves(carry))


# --------------------------------------------------------------------------- gradients


@pytest.mark.parametrize("name", CASES)
def test_apply_gradients_match_finite_differences(name, key):
    cell, params, carry, xs = setup(name, key, (2,))
    x = xs[:, 0]

    def f(p, c, x):
        return cell.apply(p, c, x)

    # Second order where cheap; the layer-norm LSTMs check first order only.
    order = 1 if name in ("lstm_layer_norm", "lstm_all") else 2
    check_grads(f, (params, carry, x), order=order, modes=("rev",))


# --------------------------------------------------------------------------- init and params


def test_forget_bias_lands_in_f_block(key):
    params = jaxrnn.lstm(H, forget_bias=2.5).init(key, I)
    want = np.concatenate([np.zeros(H), np.full(H, 2.5), np.zeros(2 * H)])
    np.testing.assert_array_equal(params.b, want.astype(np.float32))
    # And it acts on the forget gate: with zero weights, c_1 = sigmoid(2.5) * c_0.
    zero = jax.tree.map(jnp.zeros_like, params)._replace(b=params.b)
    c0 = jnp.full((H,), 2.0, jnp.float32)
    carry, _ = jaxrnn.lstm(H).apply(
        zero, jaxrnn.LSTMCarry(jnp.zeros(H, jnp.float32), c0), jnp.ones(I, jnp.float32)
    )
    np.testing.assert_allclose(carry.c, 2.0 * sigmoid(2.5), rtol=1e-6)


def test_lstm_param_and_carry_shapes_follow_docstring(key):
    P = 3
    cell = jaxrnn.lstm(H, peephole=True, projection_size=P, layer_norm=True)
    p = cell.init(key, I)
    assert p.W_xh.shape == (I, 4 * H) and p.W_hh.shape == (P, 4 * H) and p.b.shape == (4 * H,)
    assert p.W_hr.shape == (H, P)
    assert [w.shape for w in p.peephole] == [(H,)] * 3
    assert p.layer_norm.x.g.shape == p.layer_norm.h.b.shape == (4 * H,)
    assert p.layer_norm.c.g.shape == p.layer_norm.c.b.shape == (H,)
    carry = cell.initial_carry(p, (2, 7))
    assert carry.h.shape == (2, 7, P) and carry.c.shape == (2, 7, H)
    g = jaxrnn.gru(H, layer_norm=True).init(key, I)
    assert g.W_xh.shape == (I, 3 * H) and g.W_hh.shape == (H, 3 * H)
    assert g.b.shape == (3 * H,) and g.b_hn.shape == (H,)
    assert g.layer_norm.x.g.shape == g.layer_norm.h.g.shape == (3 * H,)
    assert jaxrnn.gru(H, reset_after=False).init(key, I).b_hn is None


@pytest.mark.parametrize("name", ["gru", "gru_layer_norm", "lstm_all", "elman_tanh"])
def test_every_parameter_changes_the_output(name, key):
    """Each leaf (peepholes, projection, layer-norm gains/biases, b_hn, ...) is used."""
    cell, params, carry, xs = setup(name, key, (3,))
    roll = jax.jit(lambda p: jaxrnn.scan(cell, p, xs, carry))
    base = roll(params)
    leaves, treedef = jax.tree.flatten(params)
    paths = [jax.tree_util.keystr(k) for k, _ in jax.tree_util.tree_flatten_with_path(params)[0]]
    for i, path in enumerate(paths):
        # A random bump: a constant shift of W_xh is invisible behind layer norm.
        bumped = list(leaves)
        bumped[i] = leaves[i] + 0.1 * jax.random.normal(jax.random.key(i), leaves[i].shape, F64)
        out = roll(jax.tree.unflatten(treedef, bumped))
        changed = [
            not np.allclose(a, b, atol=1e-9)
            for a, b in zip(*map(jax.tree.leaves, (out, base)), strict=True)
        ]
        assert any(changed), f"changing {path} did not change the rollout"


def test_default_peephole_and_layer_norm_init_are_neutral(key):
    """Zero peepholes and unit-gain LN start at the plain LSTM / LN-LSTM values."""
    plain, peep = jaxrnn.lstm(H), jaxrnn.lstm(H, peephole=True)
    p = peep.init(key, I)
    np.testing.assert_array_equal(np.stack(p.peephole), 0.0)
    x = jax.random.normal(key, (2, T, I), jnp.float32)
    _, y_peep = jaxrnn.scan(peep, p, x)
    _, y_plain = jaxrnn.scan(plain, p._replace(peephole=None), x)
    np.testing.assert_array_equal(y_peep, y_plain)
    q = jaxrnn.lstm(H, layer_norm=True).init(key, I)
    np.testing.assert_array_equal(q.layer_norm.x.g, 1.0)
    np.testing.assert_array_equal(q.layer_norm.c.b, 0.0)


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize("name", ["elman_tanh", "gru", "lstm_all"])
def test_bad_inputs_are_named(name, key):
    cell = CASES[name][0]()
    params = cell.init(key, I)
    carry = cell.initial_carry(params, (3,))
    with pytest.raises(ValueError, match=r"x: expected shape \[\*batch, 4\].*got shape \(3, 7\)"):
        cell.apply(params, carry, jnp.ones((3, 7), jnp.float32))
    with pytest.raises(
        ValueError, match=r"carry: expected batch shape \(2,\).*got carry.h of shape \(3, "
    ):
        cell.apply(params, carry, jnp.ones((2, I), jnp.float32))
    with pytest.raises(TypeError, match=r"x: expected a floating dtype, got int32"):
        cell.apply(params, carry, jnp.ones((3, I), jnp.int32))
    with pytest.raises(ValueError, match=r"input_size: expected a positive int, got 0"):
        cell.init(key, 0)


def test_bad_hyperparameters_are_named():
    with pytest.raises(
        ValueError, match=r"activation: expected one of \[.*'tanh'.*\] or a callable, got 'tanhh'"
    ):
        jaxrnn.elman(H, activation="tanhh")
    for factory in (jaxrnn.elman, jaxrnn.gru, jaxrnn.lstm):
        with pytest.raises(ValueError, match=r"hidden_size: expected a positive int, got 0"):
            factory(0)
    with pytest.raises(ValueError, match=r"hidden_size: expected a positive int, got 2.0"):
        jaxrnn.lstm(2.0)
    with pytest.raises(ValueError, match=r"projection_size: expected a positive int, got 0"):
        jaxrnn.lstm(H, projection_size=0)
    with pytest.raises(ValueError, match=r"reset_after: layer_norm=True needs reset_after=True"):
        jaxrnn.gru(H, reset_after=False, layer_norm=True)


def _every_function_that_takes_a_cell():
    """``(call with the cell, the argument's name)`` for each public function that takes
    a :class:`jaxrnn.Cell`; each is called below with a ``jaxrnn.Layer`` instead."""
    xs, cell = jnp.ones((2, T, I), jnp.float32), jaxrnn.gru(H)
    params = cell.init(jax.random.key(0), I)
    return {
        "scan": (lambda c: jaxrnn.scan(c, params, xs), "cell"),
        "rnn": (lambda c: jaxrnn.rnn(c), "cell"),
        "bidirectional forward": (lambda c: jaxrnn.bidirectional(c), "forward"),
        "bidirectional backward": (lambda c: jaxrnn.bidirectional(cell, c), "backward"),
        "stack": (lambda c: jaxrnn.stack(cell, c), "cells[1]"),
        "variational_dropout": (lambda c: jaxrnn.variational_dropout(c, input_rate=0.1), "cell"),
        "zoneout": (lambda c: jaxrnn.zoneout(c, 0.1), "cell"),
        "learned_initial_carry": (lambda c: jaxrnn.learned_initial_carry(c), "cell"),
        "truncated_bptt": (
            lambda c: jaxrnn.truncated_bptt(c, None, params, xs, xs, k1=2),
            "cell",
        ),
        "hidden_grad_norms": (lambda c: jaxrnn.hidden_grad_norms(c, params, xs, jnp.sum), "cell"),
        "recurrent_jacobians": (lambda c: jaxrnn.recurrent_jacobians(c, params, xs[0]), "cell"),
        "jacobian_norms": (lambda c: jaxrnn.jacobian_norms(c, params, xs[0]), "cell"),
        "one_to_many": (lambda c: jaxrnn.models.one_to_many(c, 2, 3), "cell"),
        "seq2seq decoder": (
            lambda c: jaxrnn.models.seq2seq_model(cell, c, 5, 5, embedding_size=4),
            "decoder",
        ),
    }


@pytest.mark.parametrize("function", sorted(_every_function_that_takes_a_cell()))
def test_a_layer_where_a_cell_is_expected_is_named(function):
    """A ``jaxrnn.Layer`` has ``init`` and ``apply`` too, so without a check it fails deep
    inside (``'Layer' object has no attribute 'initial_carry'``). (``many_to_one`` and
    ``many_to_many`` take a layer: tests/test_offline_data.py.)"""
    call, name = _every_function_that_takes_a_cell()[function]
    with pytest.raises(TypeError) as e:
        call(jaxrnn.rnn(jaxrnn.gru(H)))
    assert str(e.value).startswith(f"{name}: expected a jaxrnn.Cell, got Layer; a layer runs")
