"""Hand-derived BPTT (jaxrnn.rollout.bptt) and truncated BPTT (jaxrnn.rollout.tbptt).

Oracles: ``jax.vjp`` / ``jax.grad`` of ``jaxrnn.scan`` for full BPTT, and a
plain Python loop over segments (each ``jax.grad`` of that segment's loss from a
``stop_gradient``-ed start carry, with hand-written SGD) for truncated BPTT.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxrnn
from jaxrnn.rollout.bptt import elman_bptt
from jaxrnn.rollout.tbptt import TBPTTResult, truncated_bptt

F64 = jnp.float64


def assert_trees_close(got, want, atol, rtol=0.0):
    assert jax.tree.structure(got) == jax.tree.structure(want)
    for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True):
        assert g.shape == w.shape and g.dtype == w.dtype, (g.shape, w.shape, g.dtype, w.dtype)
        np.testing.assert_allclose(np.asarray(g), np.asarray(w), atol=atol, rtol=rtol)


# --------------------------------------------------------------------------- elman_bptt


def elman_problem(key, activation, batch=(2, 3), T=7, I=3, H=5):
    k = jax.random.split(key, 5)
    cell = jaxrnn.elman(H, activation=activation, dtype=F64)
    # A random bias keeps relu away from all-dead units.
    params = cell.init(k[0], I)._replace(b=0.5 * jax.random.normal(k[1], (H,), F64))
    xs = jax.random.normal(k[2], (*batch, T, I), F64)
    h0 = jax.random.normal(k[3], (*batch, H), F64)
    grad_ys = jax.random.normal(k[4], (*batch, T, H), F64)
    return cell, params, xs, h0, grad_ys


def vjp_oracle(cell, params, xs, h0, grad_ys, **kw):
    def ys_of(p, x, h):
        return jaxrnn.scan(cell, p, x, jaxrnn.ElmanCarry(h), **kw)[1]

    @jax.jit
    def vjp(params, xs, h0, grad_ys):
        return jax.vjp(ys_of, params, xs, h0)[1](grad_ys)

    return vjp(params, xs, h0, grad_ys)


# Jitted so that each test compiles one program instead of dispatching op by op.
bptt = jax.jit(elman_bptt, static_argnames=("activation",))


ACTIVATIONS = ["tanh", "relu", "sigmoid", "identity", "gelu", jnp.sin]


@pytest.mark.parametrize(
    "activation", ACTIVATIONS, ids=lambda a: a if isinstance(a, str) else "callable"
)
def test_elman_bptt_equals_vjp_of_scan_float64(key, activation):
    cell, params, xs, h0, gy = elman_problem(key, activation)
    got = bptt(params, xs, gy, h0, activation=activation)
    want = vjp_oracle(cell, params, xs, h0, gy)
    assert_trees_close(got, want, atol=1e-10)
    assert float(jnp.max(jnp.abs(got[0].W_hh))) > 1e-3  # the check is not vacuous


@pytest.mark.parametrize("activation", ["tanh", "relu", "sigmoid", "identity"])
def test_elman_bptt_with_lengths_and_mask(key, activation):
    cell, params, xs, h0, gy = elman_problem(key, activation)
    lengths = jnp.array([[7, 3, 0], [1, 5, 6]], jnp.int32)
    mask = jax.random.bernoulli(jax.random.fold_in(key, 1), 0.6, (2, 3, 7))
    # Right padding (lengths) and holes (mask) at once.
    got = bptt(params, xs, gy, h0, activation=activation, lengths=lengths, mask=mask)
    want = vjp_oracle(cell, params, xs, h0, gy, lengths=lengths, mask=mask)
    assert_trees_close(got, want, atol=1e-10)
    # A fully masked sequence (length 0) has no gradient w.r.t. its weights' use or inputs,
    # and its h0 gradient is zero since its outputs are zeros.
    np.testing.assert_array_equal(np.asarray(got[1][0, 2]), 0.0)
    np.testing.assert_array_equal(np.asarray(got[2][0, 2]), 0.0)


def test_elman_bptt_unbatched_default_h0_under_jit(key):
    cell, params, xs, _, gy = elman_problem(key, "tanh", batch=())
    got = jax.jit(elman_bptt)(params, xs, gy)
    want = vjp_oracle(cell, params, xs, jnp.zeros((5,), F64), gy)
    assert_trees_close(got, want, atol=1e-10)


def test_elman_bptt_float32(key):
    _, *problem64 = elman_problem(key, "tanh")
    params, xs, h0, gy = jax.tree.map(lambda a: a.astype(jnp.float32), problem64)
    cell = jaxrnn.elman(5, dtype=jnp.float32)
    got = bptt(params, xs, gy, h0, activation="tanh")
    want = vjp_oracle(cell, params, xs, h0, gy)
    assert_trees_close(got, want, atol=1e-5, rtol=1e-5)
    # Both agree with the float64 computation to float32 accuracy.
    up = functools.partial(jax.tree.map, lambda a: a.astype(F64))
    got64 = bptt(up(params), up(xs), up(gy), up(h0), activation="tanh")
    assert_trees_close(up(got), got64, atol=1e-5, rtol=1e-5)


def test_elman_bptt_errors(key):
    _, params, xs, h0, gy = elman_problem(key, "tanh")
    with pytest.raises(ValueError, match=r"grad_ys: expected shape \(2, 3, 7, 5\)"):
        elman_bptt(params, xs, gy[..., :4], h0)
    with pytest.raises(ValueError, match=r"xs: expected shape \[\*batch, T, 3\]"):
        elman_bptt(params, xs[..., :2], gy, h0)
    with pytest.raises(ValueError, match=r"h0: expected shape \(2, 3, 5\)"):
        elman_bptt(params, xs, gy, h0[0])
    with pytest.raises(ValueError, match="activation: expected one of"):
        elman_bptt(params, xs, gy, h0, activation="swish!")
    with pytest.raises(ValueError, match="mask: expected shape"):
        elman_bptt(params, xs, gy, h0, mask=jnp.ones((2, 3, 6), jnp.bool_))


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
