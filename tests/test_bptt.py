"""Truncated BPTT (jaxrnn.rollout.tbptt).

Oracles: ``jax.grad`` of ``jaxrnn.scan`` for full BPTT, and a plain Python loop
over segments (each ``jax.grad`` of that segment's loss from a ``stop_gradient``-ed
start carry, with hand-written SGD) for truncated BPTT. Full BPTT itself is checked
against hand-derived NumPy BPTT in ``tests/test_bptt_oracle.py``.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxrnn
from jaxrnn.rollout.tbptt import TBPTTResult, truncated_bptt

F64 = jnp.float64


def assert_trees_close(got, want, atol, rtol=0.0):
    assert jax.tree.structure(got) == jax.tree.structure(want)
    for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True):
        assert g.shape == w.shape and g.dtype == w.dtype, (g.shape, w.shape, g.dtype, w.dtype)
        np.testing.assert_allclose(np.asarray(g), np.asarray(w), atol=atol, rtol=rtol)


# --------------------------------------------------------------------------- truncated_bptt


def sq_loss(ys, targets, mask):
    """A sum over valid steps, as truncated_bptt requires; nonlinear in ys."""
    per_step = jnp.sum(jnp.tanh(ys - targets) ** 2 + 0.3 * ys * targets, axis=-1)
    return jnp.sum(jnp.where(mask, per_step, 0.0))


def tbptt_problem(key, cell, batch=(2,), T=11, I=3):
    k = jax.random.split(key, 3)
    params = cell.init(k[0], I)
    xs = jax.random.normal(k[1], (*batch, T, I), F64)
    ys = jax.eval_shape(lambda: jaxrnn.scan(cell, params, xs)[1])
    targets = jax.random.normal(k[2], ys.shape, F64)
    return params, xs, targets


def oracle_tbptt(cell, loss_fn, params, xs, targets, k1, k2, carry=None, lr=None):
    """BPTT(k2; k1) as a Python loop over segments in unpadded time, with plain SGD.

    The per-window functions are jitted only so that windows of equal length share one
    compilation; the loop itself, the slicing and the updates are plain Python.
    """
    T, d, batch = xs.shape[-2], k2 - k1, xs.shape[:-2]
    learned_start = carry is None

    @functools.partial(jax.jit, static_argnames=("n", "from_init"))
    def window(p, start, x, tgt, n, from_init):
        """Loss of the last n steps of the window and its gradient; start is a constant."""

        def loss_of(p):
            c = cell.initial_carry(p, batch) if from_init else jax.lax.stop_gradient(start)
            _, ys = jaxrnn.scan(cell, p, x, c)
            return loss_fn(ys[..., -n:, :], tgt, jnp.ones((*batch, n), jnp.bool_))

        return jax.value_and_grad(loss_of)(p)

    rollout = jax.jit(lambda p, x, c: jaxrnn.scan(cell, p, x, c)[0])

    s = carry  # the carry entering the current window
    grad_sum = jax.tree.map(jnp.zeros_like, params)
    losses = []
    for j in range(-(-T // k1)):
        seg, end = j * k1, min((j + 1) * k1, T)  # loss on [seg, end), window [ws, end)
        ws = max(seg - d, 0)
        from_init = ws == 0 and learned_start  # the initial carry gets gradients
        if from_init:
            s = cell.initial_carry(params, batch)
        x, tgt = xs[..., ws:end, :], targets[..., seg:end, :]
        loss, g = window(params, s, x, tgt, n=end - seg, from_init=from_init)
        losses.append(loss)
        grad_sum = jax.tree.map(jnp.add, grad_sum, g)
        final = rollout(params, x, s)
        # The next window starts at (j + 1) k1 - d, reached with this window's params.
        nxt = (j + 1) * k1 - d
        if nxt > ws:
            s = rollout(params, xs[..., ws:nxt, :], s)
        if lr is not None:
            params = jax.tree.map(lambda p, g: p - lr * g, params, g)
    return params, grad_sum, jnp.stack(losses), final


CELLS = {
    "elman": lambda: jaxrnn.elman(4, dtype=F64),
    "gru": lambda: jaxrnn.gru(4, dtype=F64),
    "lstm": lambda: jaxrnn.lstm(3, dtype=F64),
    "learned_init_elman": lambda: jaxrnn.learned_initial_carry(
        jaxrnn.elman(4, dtype=F64), init=jax.nn.initializers.normal(1.0)
    ),
}


def full_bptt(cell, params, xs, targets, carry=None):
    def loss_of(p):
        final, ys = jaxrnn.scan(cell, p, xs, carry)
        return sq_loss(ys, targets, jnp.ones(ys.shape[:-1], jnp.bool_)), final

    (loss, final), grads = jax.jit(jax.value_and_grad(loss_of, has_aux=True))(params)
    return loss, grads, final


@pytest.mark.parametrize("name,k", [("lstm", 11), ("learned_init_elman", 14)])
def test_tbptt_with_k_at_least_T_is_full_bptt(key, name, k):
    cell = CELLS[name]()
    params, xs, targets = tbptt_problem(key, cell)
    result = truncated_bptt(cell, sq_loss, params, xs, targets, k1=k)
    loss, grads, final = full_bptt(cell, params, xs, targets)
    assert isinstance(result, TBPTTResult) and result.losses.shape == (1,)
    np.testing.assert_allclose(float(result.losses[0]), float(loss), atol=1e-10)
    assert_trees_close(result.grads, grads, atol=1e-10)
    assert_trees_close(result.carry, final, atol=1e-10)
    assert result.opt_state is None
    assert_trees_close(result.params, params, atol=0.0)


@pytest.mark.parametrize(
    "name,k1,k2",
    [
        ("gru", 4, 4),
        ("learned_init_elman", 1, 1),
        ("elman", 3, 5),
        ("elman", 2, 7),
        ("learned_init_elman", 3, 6),  # a window starts exactly at t = 0
    ],
)
def test_tbptt_equals_segment_loop_oracle(key, name, k1, k2):
    cell = CELLS[name]()
    params, xs, targets = tbptt_problem(key, cell)
    result = truncated_bptt(cell, sq_loss, params, xs, targets, k1=k1, k2=k2)
    _, grads, losses, final = oracle_tbptt(cell, sq_loss, params, xs, targets, k1, k2)
    np.testing.assert_allclose(np.asarray(result.losses), np.asarray(losses), atol=1e-10)
    assert_trees_close(result.grads, grads, atol=1e-10)
    assert_trees_close(result.carry, final, atol=1e-10)
    # Fixed params: segment losses add up to the full loss, the carry is the full rollout's,
    # but the gradient is truncated, so it differs from full BPTT.
    loss, full_grads, full_final = full_bptt(cell, params, xs, targets)
    np.testing.assert_allclose(float(jnp.sum(result.losses)), float(loss), atol=1e-10)
    assert_trees_close(result.carry, full_final, atol=1e-10)
    diff = jax.tree.map(lambda a, b: float(jnp.max(jnp.abs(a - b))), result.grads, full_grads)
    assert max(jax.tree.leaves(diff)) > 1e-6


def test_tbptt_explicit_carry_and_lstm(key):
    cell = CELLS["lstm"]()
    params, xs, targets = tbptt_problem(key, cell, batch=(2, 2), T=12)
    k = jax.random.split(jax.random.fold_in(key, 7), 2)
    carry = jaxrnn.LSTMCarry(*(jax.random.normal(ki, (2, 2, 3), F64) for ki in k))
    result = truncated_bptt(cell, sq_loss, params, xs, targets, k1=4, k2=6, carry=carry)
    _, grads, losses, final = oracle_tbptt(cell, sq_loss, params, xs, targets, 4, 6, carry)
    np.testing.assert_allclose(np.asarray(result.losses), np.asarray(losses), atol=1e-10)
    assert_trees_close(result.grads, grads, atol=1e-10)
    assert_trees_close(result.carry, final, atol=1e-10)
    assert_trees_close(result.carry, full_bptt(cell, params, xs, targets, carry)[2], atol=1e-10)


@pytest.mark.parametrize("name,k1,k2", [("learned_init_elman", 3, 5), ("elman", 2, 7)])
def test_tbptt_with_sgd_equals_python_loop(key, name, k1, k2):
    cell = CELLS[name]()
    params, xs, targets = tbptt_problem(key, cell)
    lr = 0.05
    sgd = optax.sgd(lr)
    result = truncated_bptt(cell, sq_loss, params, xs, targets, k1=k1, k2=k2, optimizer=sgd)
    new_params, grads, losses, final = oracle_tbptt(
        cell, sq_loss, params, xs, targets, k1, k2, lr=lr
    )
    assert_trees_close(result.params, new_params, atol=1e-10)
    assert_trees_close(result.grads, grads, atol=1e-10)
    np.testing.assert_allclose(np.asarray(result.losses), np.asarray(losses), atol=1e-10)
    assert_trees_close(result.carry, final, atol=1e-10)
    assert_trees_close(result.opt_state, sgd.init(params), atol=0.0)  # sgd is stateless
    moved = jax.tree.map(lambda a, b: float(jnp.max(jnp.abs(a - b))), result.params, params)
    assert min(jax.tree.leaves(moved)) > 1e-6


def test_tbptt_resumes_with_returned_state(key):
    """Two calls on halves (passing params, opt_state, carry on) equal one call."""
    cell = CELLS["gru"]()
    params, xs, targets = tbptt_problem(key, cell, T=12)
    momentum = optax.sgd(1e-2, momentum=0.9)  # a stateful optimizer
    run = functools.partial(truncated_bptt, cell, sq_loss, k1=3, optimizer=momentum)
    whole = run(params, xs, targets)
    first = run(params, xs[:, :6], targets[:, :6])
    second = run(
        first.params, xs[:, 6:], targets[:, 6:], carry=first.carry, opt_state=first.opt_state
    )
    assert_trees_close(second.params, whole.params, atol=1e-10)
    assert_trees_close(second.carry, whole.carry, atol=1e-10)
    np.testing.assert_allclose(
        np.concatenate([first.losses, second.losses]), np.asarray(whole.losses), atol=1e-10
    )


def test_tbptt_under_jit(key):
    cell = CELLS["elman"]()
    params, xs, targets = tbptt_problem(key, cell)
    run = jax.jit(functools.partial(truncated_bptt, cell, sq_loss, k1=3, k2=5))
    got = run(params, xs, targets)
    want = truncated_bptt(cell, sq_loss, params, xs, targets, k1=3, k2=5)
    assert_trees_close(got, want, atol=1e-12)


def test_tbptt_errors(key):
    cell = CELLS["elman"]()
    params, xs, targets = tbptt_problem(key, cell)
    run = functools.partial(truncated_bptt, cell, sq_loss, params, xs, targets)
    for bad in (0, -2, 1.5, True):
        with pytest.raises(ValueError, match="k1: expected a positive int"):
            run(k1=bad)
    with pytest.raises(ValueError, match="k2: expected a positive int"):
        run(k1=2, k2=0)
    with pytest.raises(ValueError, match=r"k2: expected k2 >= k1 = 3.*got 2"):
        run(k1=3, k2=2)
    with pytest.raises(ValueError, match="targets: expected leaves of shape"):
        truncated_bptt(cell, sq_loss, params, xs, targets[:, :5], k1=3)
    with pytest.raises(ValueError, match="opt_state: given without an optimizer"):
        run(k1=3, opt_state=())
    with pytest.raises(ValueError, match="carry: expected leaf shapes"):
        run(k1=3, carry=jaxrnn.ElmanCarry(jnp.zeros((3, 4), F64)))
