"""The fused rollout (hand-derived BPTT) equals autodiff of the plain scan.

The oracle is ``jaxrnn.scan(..., bptt="autodiff")``: ``lax.scan`` of ``cell.apply``
differentiated by JAX, code that shares nothing with ``jaxrnn.fused`` but the
cell's params. Every comparison runs the fused side with ``bptt="fused"``, which
raises instead of falling back, so a test cannot pass by comparing autodiff with
itself. Gradients are VJPs with random cotangents on the outputs *and* on the
final carry, w.r.t. params, inputs and the initial carry.
"""

import logging

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

import jaxrnn
from jaxrnn.cells.base import Cell

B, T, I, H = 3, 7, 4, 5

CELLS = {
    "elman": lambda: jaxrnn.elman(H),
    "gru": lambda: jaxrnn.gru(H),
    "lstm": lambda: jaxrnn.lstm(H),
}


def _randomize(tree, key, dtype):
    """Random normal leaves of ``tree``'s shapes (a generic init would give zero biases)."""
    leaves, treedef = jax.tree.flatten(tree)
    keys = jax.random.split(key, len(leaves))
    return treedef.unflatten(
        [0.5 * jax.random.normal(k, x.shape, dtype) for k, x in zip(keys, leaves, strict=True)]
    )


def _setup(cell, key, batch_shape, dtype=jnp.float64):
    k_p, k_x, k_c = jax.random.split(key, 3)
    params = _randomize(cell.init(k_p, I), k_p, dtype)
    xs = jax.random.normal(k_x, (*batch_shape, T, I), dtype)
    carry = _randomize(cell.initial_carry(params, batch_shape), k_c, dtype)
    return params, xs, carry


def _vjp(cell, params, xs, carry, bptt, key, **kw):
    """``(final_carry, ys)`` and the VJP w.r.t. (params, xs, carry) for random cotangents."""

    @jax.jit  # one compilation instead of op-by-op dispatch
    def vjp(p, x, c):
        out, pullback = jax.vjp(
            lambda p, x, c: jaxrnn.scan(cell, p, x, c, bptt=bptt, **kw), p, x, c
        )
        return out, pullback(_randomize(out, key, x.dtype))

    return vjp(params, xs, carry)


def _assert_close(a, b, rtol, atol):
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=rtol, atol=atol)


def _assert_equal_paths(cell, params, xs, carry, key, rtol=1e-10, atol=1e-10, **kw):
    fused = _vjp(cell, params, xs, carry, "fused", key, **kw)
    autodiff = _vjp(cell, params, xs, carry, "autodiff", key, **kw)
    assert jax.tree.structure(fused) == jax.tree.structure(autodiff)
    _assert_close(fused, autodiff, rtol, atol)
    return fused


def _holey_mask(key, shape):
    return jax.random.bernoulli(key, 0.7, shape)


@pytest.mark.parametrize("name", sorted(CELLS))
@pytest.mark.parametrize(("batch_shape", "reverse"), [((), False), ((B,), True), ((2, 2), True)])
def test_equals_autodiff_float64(name, batch_shape, reverse, key):
    cell = CELLS[name]()
    params, xs, carry = _setup(cell, key, batch_shape)
    _, grads = _assert_equal_paths(cell, params, xs, carry, key, reverse=reverse)
    # The gradients are not trivially zero (a zero-vs-zero comparison proves nothing).
    assert all(float(jnp.max(jnp.abs(g))) > 1e-3 for g in jax.tree.leaves(grads))


@pytest.mark.parametrize("name", sorted(CELLS))
@pytest.mark.parametrize("reverse", [False, True])
def test_equals_autodiff_with_lengths_and_mask_holes(name, reverse, key):
    cell = CELLS[name]()
    batch_shape = (2, 3)
    params, xs, carry = _setup(cell, key, batch_shape)
    mask = _holey_mask(jax.random.fold_in(key, 1), (*batch_shape, T))
    lengths = jnp.array([[T, 0, 3], [5, 1, T]], jnp.int32)
    (final, ys), _ = _assert_equal_paths(
        cell, params, xs, carry, key, mask=mask, lengths=lengths, reverse=reverse
    )
    # Masked steps output zeros, and a length-0 sequence keeps its initial carry.
    valid = mask & (jnp.arange(T, dtype=jnp.int32) < lengths[..., None])
    assert bool(jnp.all(jnp.where(valid[..., None], True, ys == 0)))
    np.testing.assert_array_equal(final.h[0, 1], carry.h[0, 1])


@pytest.mark.parametrize("activation", sorted(jaxrnn.ACTIVATIONS))
def test_elman_every_activation(activation, key):
    cell = jaxrnn.elman(H, activation=activation)
    params, xs, carry = _setup(cell, key, (B,))
    mask = _holey_mask(jax.random.fold_in(key, 2), (B, T))
    _assert_equal_paths(cell, params, xs, carry, key, mask=mask, reverse=True)


def test_elman_callable_activation(key):
    # A user function need not be elementwise: the fused path uses its VJP.
    def softmax_ish(z):
        return jax.nn.softmax(z, axis=-1) + 0.1 * z

    cell = jaxrnn.elman(H, activation=softmax_ish)
    params, xs, carry = _setup(cell, key, (B,))
    _assert_equal_paths(cell, params, xs, carry, key)


@pytest.mark.parametrize("name", sorted(CELLS))
def test_equals_autodiff_float32(name, key):
    cell = CELLS[name]()
    params, xs, carry = _setup(cell, key, (B,), jnp.float32)
    mask = _holey_mask(jax.random.fold_in(key, 3), (B, T))
    _assert_equal_paths(cell, params, xs, carry, key, rtol=2e-5, atol=2e-6, mask=mask)


def test_default_carry_time_major_and_jit(key):
    """Under jit with traced lengths, time-major, zero initial carry (the defaults)."""
    cell = jaxrnn.lstm(H)
    params, xs, _ = _setup(cell, key, (B,))
    xs = jnp.moveaxis(xs, 1, 0)
    lengths = jnp.array([T, 2, 5], jnp.int32)

    def grads(p, x, lengths, bptt):
        def loss(p, x):
            final, ys = jaxrnn.scan(cell, p, x, lengths=lengths, time_major=True, bptt=bptt)
            return jnp.sum(jnp.sin(ys)) + jnp.sum(final.c**2)

        return jax.value_and_grad(loss, argnums=(0, 1))(p, x)

    grads = jax.jit(grads, static_argnums=3)
    _assert_close(
        grads(params, xs, lengths, "fused"), grads(params, xs, lengths, "autodiff"), 1e-10, 1e-10
    )


@pytest.mark.parametrize("name", sorted(CELLS))
def test_check_grads_float64(name, key):
    cell = CELLS[name]()
    params, xs, carry = _setup(cell, key, (2,))
    mask = jnp.array([[True, False, True, True, True, False, True]] * 2)

    def f(p, x, c):
        final, ys = jaxrnn.scan(cell, p, x, c, mask=mask, bptt="fused")
        return ys, final

    check_grads(f, (params, xs, carry), order=1, modes=("rev",))


def test_second_order_reverse_over_reverse(key):
    """The hand-written backward is itself differentiable (grad of a grad norm)."""
    cell = jaxrnn.gru(H)
    params, xs, carry = _setup(cell, key, (2,))

    def grad_norm(p, bptt):
        g = jax.grad(lambda p: jnp.sum(jaxrnn.scan(cell, p, xs, carry, bptt=bptt)[1] ** 2))(p)
        return sum(jnp.sum(x**2) for x in jax.tree.leaves(g))

    _assert_close(
        jax.grad(grad_norm)(params, "fused"), jax.grad(grad_norm)(params, "autodiff"), 1e-9, 1e-10
    )


def test_bidirectional_and_stack_layers(key, caplog):
    """Layers call jaxrnn.scan with the default bptt="auto": the fused path runs, and
    equals the same network built from the cells without their fused rollouts."""

    def build(hide):
        def c(cell):
            return Cell(cell.init, cell.initial_carry, cell.apply) if hide else cell

        return jaxrnn.stack_layers(
            jaxrnn.bidirectional(c(jaxrnn.lstm(H)), c(jaxrnn.gru(H))),
            c(jaxrnn.elman(2 * H)),
            residual=True,
        )

    params = _randomize(build(False).init(key, I), key, jnp.float64)
    xs = jax.random.normal(jax.random.fold_in(key, 1), (B, T, I), jnp.float64)
    mask = _holey_mask(jax.random.fold_in(key, 2), (B, T))
    lengths = jnp.array([T, 4, 2], jnp.int32)

    def vjp(net):
        out, pullback = jax.vjp(
            lambda p, x: net.apply(p, x, lengths=lengths, mask=mask), params, xs
        )
        return out, pullback(_randomize(out, key, jnp.float64))

    with caplog.at_level(logging.DEBUG, logger="jaxrnn"):
        fused = vjp(build(False))
    assert sum("fused BPTT" in r.getMessage() for r in caplog.records) == 3
    caplog.clear()
    with caplog.at_level(logging.DEBUG, logger="jaxrnn"):
        autodiff = vjp(build(True))
    assert not any("fused BPTT" in r.getMessage() for r in caplog.records)
    _assert_close(fused, autodiff, 1e-10, 1e-10)


def test_stacked_cell_falls_back(key, caplog):
    cell = jaxrnn.stack(jaxrnn.lstm(H), jaxrnn.gru(H))
    params, xs, carry = _setup(cell, key, (B,))
    with caplog.at_level(logging.DEBUG, logger="jaxrnn"):
        auto = _vjp(cell, params, xs, carry, "auto", key)
    assert any("autodiff BPTT" in r.getMessage() for r in caplog.records)
    _assert_close(auto, _vjp(cell, params, xs, carry, "autodiff", key), 0, 0)
    with pytest.raises(ValueError, match=r"bptt='fused'.*no fused rollout"):
        jaxrnn.scan(cell, params, xs, carry, bptt="fused")


@pytest.mark.parametrize(
    ("make", "dtype", "kw", "reason"),
    [
        (lambda: jaxrnn.lstm(H, peephole=True), jnp.float64, {}, "no fused rollout"),
        (lambda: jaxrnn.lstm(H, projection_size=3), jnp.float64, {}, "no fused rollout"),
        (lambda: jaxrnn.lstm(H, layer_norm=True), jnp.float64, {}, "no fused rollout"),
        (lambda: jaxrnn.gru(H, reset_after=False), jnp.float64, {}, "no fused rollout"),
        (lambda: jaxrnn.gru(H, layer_norm=True), jnp.float64, {}, "no fused rollout"),
        (lambda: jaxrnn.variational_dropout(jaxrnn.lstm(H)), jnp.float64, {}, "no fused"),
        (lambda: jaxrnn.learned_initial_carry(jaxrnn.gru(H)), jnp.float64, {}, "no fused"),
        (lambda: jaxrnn.elman(H), jnp.bfloat16, {}, "all float32 or all float64"),
        (lambda: jaxrnn.elman(H), jnp.float64, {"resets": True}, "resets"),
    ],
)
def test_unsupported_falls_back_or_raises(make, dtype, kw, reason, key, caplog):
    cell = make()
    params = cell.init(key, I)
    params = jax.tree.map(lambda a: a.astype(dtype), params)
    xs = jax.random.normal(key, (B, T, I), jnp.float32).astype(dtype)
    if kw.get("resets"):
        kw = {"resets": jnp.zeros((B, T), bool).at[:, 3].set(True)}
    with pytest.raises(ValueError, match=reason):
        jaxrnn.scan(cell, params, xs, bptt="fused", **kw)
    with caplog.at_level(logging.DEBUG, logger="jaxrnn"):
        auto = jaxrnn.scan(cell, params, xs, **kw)
    messages = [r.getMessage() for r in caplog.records]
    assert any("autodiff BPTT" in m and reason in m for m in messages), messages
    _assert_close(auto, jaxrnn.scan(cell, params, xs, bptt="autodiff", **kw), 0, 0)


def test_lstm_params_with_peepholes_given_to_a_plain_cell(key):
    """The plain cell's apply honours peephole params; its fused rollout must refuse them."""
    params = jaxrnn.lstm(H, peephole=True).init(key, I)
    xs = jax.random.normal(key, (B, T, I), jnp.float32)
    with pytest.raises(ValueError, match="peephole"):
        jaxrnn.scan(jaxrnn.lstm(H), params, xs, bptt="fused")


def test_debug_log_names_the_path(key, caplog):
    cell = jaxrnn.lstm(H)
    params, xs, carry = _setup(cell, key, (B,))
    for bptt, expected in [
        ("auto", "fused BPTT"),
        ("fused", "fused BPTT"),
        ("autodiff", "autodiff"),
    ]:
        caplog.clear()
        with caplog.at_level(logging.DEBUG, logger="jaxrnn"):
            jaxrnn.scan(cell, params, xs, carry, bptt=bptt)
        assert [r.getMessage() for r in caplog.records if r.name == "jaxrnn"] == [
            f"jaxrnn.scan: {expected}" + (" BPTT (bptt='autodiff')" if bptt == "autodiff" else "")
        ]


def test_bad_bptt_value(key):
    cell = jaxrnn.elman(H)
    params, xs, _ = _setup(cell, key, (B,))
    with pytest.raises(ValueError, match=r"bptt: expected one of .* got 'fast'"):
        jaxrnn.scan(cell, params, xs, bptt="fast")


def test_bad_input_size_is_reported(key):
    cell = jaxrnn.gru(H)
    params, _, _ = _setup(cell, key, (B,))
    with pytest.raises(ValueError, match=r"x: expected shape \[\*batch, 4\]"):
        jaxrnn.scan(cell, params, jnp.zeros((B, T, I + 1)), bptt="fused")


def test_segmented_remat_uses_the_fused_path_per_segment(key):
    cell = jaxrnn.lstm(H)
    params, xs, carry = _setup(cell, key, (B,))
    mask = _holey_mask(jax.random.fold_in(key, 4), (B, T))
    _assert_equal_paths(cell, params, xs, carry, key, mask=mask, remat=3)
