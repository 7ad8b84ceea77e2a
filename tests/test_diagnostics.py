"""Gradient-flow diagnostics (jaxrnn.diagnostics).

Oracles: NumPy central differences of one step, closed forms for a linear Elman
network (powers of W_hh via ``np.linalg.matrix_power``), NumPy eig/svd, and a
loop that splits the rollout at every step and differentiates w.r.t. the carry
there.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

import jaxrnn
from jaxrnn.rollout.diagnostics import (
    SpectralStats,
    hidden_grad_norms,
    jacobian_norms,
    recurrent_jacobians,
    spectral_stats,
)

F64 = jnp.float64
T, I = 6, 3


def problem(key, cell, batch=()):
    k_p, k_x, k_c = jax.random.split(key, 3)
    params = cell.init(k_p, I)
    xs = jax.random.normal(k_x, (*batch, T, I), F64)
    template = cell.initial_carry(params, batch)
    leaves, tree = jax.tree.flatten(template)
    ks = jax.random.split(k_c, len(leaves))
    carry = jax.tree.unflatten(
        tree, [0.5 * jax.random.normal(k, x.shape, F64) for k, x in zip(ks, leaves, strict=True)]
    )
    return params, xs, carry


CELLS = {
    "lstm": lambda: jaxrnn.lstm(3, dtype=F64),
    "gru": lambda: jaxrnn.gru(4, dtype=F64),
    "elman_relu": lambda: jaxrnn.elman(4, activation="relu", dtype=F64),
}


@pytest.mark.parametrize("name", list(CELLS))
def test_recurrent_jacobians_match_numpy_central_differences(key, name):
    cell = CELLS[name]()
    params, xs, carry = problem(key, cell)
    got = np.asarray(recurrent_jacobians(cell, params, xs, carry))
    _, unravel = ravel_pytree(carry)
    # One step on a batch of carries [n, S] -> [n, S]; the cells take any batch shape.
    step = jax.jit(
        lambda s, x: jax.vmap(lambda si: ravel_pytree(cell.apply(params, unravel(si), x)[0])[0])(s)
    )
    s = np.asarray(ravel_pytree(carry)[0])
    S, eps = s.size, 1e-6
    assert got.shape == (T, S, S)
    fds = []
    for t in range(T):
        plus, minus = s + eps * np.eye(S), s - eps * np.eye(S)
        fd = (np.asarray(step(plus, xs[t])) - np.asarray(step(minus, xs[t]))) / (2 * eps)
        fds.append(fd.T)  # fd[j] = ∂s_{t+1}/∂s_t[j]
        np.testing.assert_allclose(got[t], fds[t], atol=1e-8)
        s = np.asarray(step(s[None], xs[t]))[0]
    # ‖∂s_T/∂s_t‖ from the NumPy product J_{T-1} ··· J_t of the finite-difference Jacobians.
    products = [np.linalg.multi_dot([*fds[t:][::-1], np.eye(S)]) for t in range(T)]
    for ord_ in ("fro", 2):
        want = [np.linalg.norm(P, ord_) for P in products]
        got_norms = jacobian_norms(cell, params, xs, carry, ord=ord_)
        np.testing.assert_allclose(np.asarray(got_norms), want, rtol=1e-7)


def linear_elman(key, W_hh):
    H = W_hh.shape[0]
    cell = jaxrnn.elman(H, activation="identity", dtype=F64)
    params = cell.init(key, I)._replace(W_hh=jnp.asarray(W_hh))
    return cell, params


def orthogonal(seed, H):
    q, r = np.linalg.qr(np.random.default_rng(seed).standard_normal((H, H)))
    return q * np.sign(np.diag(r))


@pytest.mark.parametrize("scale", [0.8, 1.25])
def test_linear_elman_jacobian_norms_are_powers_of_the_scale(key, scale):
    """W_hh = s·Q: ∂h_T/∂h_t = (W_hhᵀ)^(T-t), norms s^(T-t)·‖Q^k‖ (vanishing / exploding)."""
    H = 5
    Q = orthogonal(0, H)
    cell, params = linear_elman(key, scale * Q)
    xs = jax.random.normal(key, (T, I), F64)
    powers = scale ** np.arange(T, 0, -1, dtype=np.float64)  # s^(T-t), t = 0..T-1
    fro = np.asarray(jacobian_norms(cell, params, xs))
    np.testing.assert_allclose(fro, powers * np.sqrt(H), rtol=1e-12)
    spec = np.asarray(jacobian_norms(cell, params, xs, ord=2))
    np.testing.assert_allclose(spec, powers, rtol=1e-12)
    assert (np.diff(fro) > 0).all() if scale < 1 else (np.diff(fro) < 0).all()
    J = recurrent_jacobians(cell, params, xs)
    np.testing.assert_allclose(np.asarray(J), np.broadcast_to(scale * Q.T, (T, H, H)), atol=1e-14)
    stats = spectral_stats(J[0])
    np.testing.assert_allclose(float(stats.spectral_radius), scale, rtol=1e-12)
    np.testing.assert_allclose(np.asarray(stats.singular_values), np.full(H, scale), rtol=1e-12)


def test_linear_elman_jacobian_norms_equal_matrix_powers(key):
    W = np.random.default_rng(1).standard_normal((4, 4)) / 2
    cell, params = linear_elman(key, W)
    xs = jax.random.normal(key, (T, I), F64)
    for ord_, np_ord in (("fro", "fro"), (2, 2)):
        want = [np.linalg.norm(np.linalg.matrix_power(W.T, T - t), np_ord) for t in range(T)]
        got = jacobian_norms(cell, params, xs, ord=ord_)
        np.testing.assert_allclose(np.asarray(got), want, rtol=1e-10)


def test_spectral_stats_match_numpy(key):
    J = np.random.default_rng(2).standard_normal((2, 3, 5, 5))
    stats = spectral_stats(jnp.asarray(J))
    assert isinstance(stats, SpectralStats)
    want_radius = np.abs(np.linalg.eigvals(J)).max(-1)
    np.testing.assert_allclose(np.asarray(stats.spectral_radius), want_radius, rtol=1e-10)
    want_sv = np.linalg.svd(J, compute_uv=False)
    np.testing.assert_allclose(np.asarray(stats.singular_values), want_sv, rtol=1e-10)


def final_step_loss(ys):
    """A loss on the last output only: the classic long-range dependency setting."""
    return jnp.sum(jnp.sin(ys[..., -1, :]) + 0.5 * ys[..., -1, :] ** 2)


def all_steps_loss(ys):
    return jnp.sum(jnp.tanh(ys) * jnp.cos(jnp.arange(ys.shape[-1], dtype=ys.dtype)))


def split_rollout_oracle(cell, params, xs, carry, loss_fn):
    """‖∂L/∂s_t‖ per sequence: run xs[:t], then differentiate L w.r.t. the carry there."""
    nb = xs.ndim - 2

    @functools.partial(jax.jit, static_argnums=0)  # one compilation per split point
    def norm_at(t):
        c_t, ys_before = jaxrnn.scan(cell, params, xs[..., :t, :], carry)

        def loss_from(c):
            _, ys_after = jaxrnn.scan(cell, params, xs[..., t:, :], c)
            return loss_fn(jnp.concatenate([ys_before, ys_after], axis=nb))

        g = jax.grad(loss_from)(c_t)
        sq = sum(jnp.sum(x**2, axis=tuple(range(nb, x.ndim))) for x in jax.tree.leaves(g))
        return jnp.sqrt(sq)

    return np.stack([np.asarray(norm_at(t)) for t in range(xs.shape[-2])], axis=-1)


@pytest.mark.parametrize(
    "name,loss_fn", [("lstm", final_step_loss), ("gru", all_steps_loss)], ids=["lstm", "gru"]
)
def test_hidden_grad_norms_equal_split_rollout_oracle(key, name, loss_fn):
    cell = CELLS[name]()
    params, xs, carry = problem(key, cell, batch=(2,))
    got = hidden_grad_norms(cell, params, xs, loss_fn, carry)
    want = split_rollout_oracle(cell, params, xs, carry, loss_fn)
    assert got.shape == (2, T)
    np.testing.assert_allclose(np.asarray(got), want, rtol=1e-10, atol=1e-12)
    assert (want > 1e-6).all()


@pytest.mark.parametrize("scale", [0.8, 1.25])
def test_hidden_grad_norms_linear_elman_closed_form(key, scale):
    """L = <w, h_T>: ∂L/∂s_t = W_hh^(T-t) w, so with W_hh = s·Q the norm is s^(T-t)·‖w‖."""
    cell, params = linear_elman(key, scale * orthogonal(3, 4))
    xs = jax.random.normal(key, (T, I), F64)
    w = jnp.arange(1, 5, dtype=F64)
    got = hidden_grad_norms(cell, params, xs, lambda ys: ys[-1] @ w)
    want = scale ** np.arange(T, 0, -1, dtype=np.float64) * np.linalg.norm(np.asarray(w))
    np.testing.assert_allclose(np.asarray(got), want, rtol=1e-12)


def test_vmap_over_sequences_equals_python_loop(key):
    cell = CELLS["lstm"]()
    params, xs, carry = problem(key, cell, batch=(3,))

    def per_sequence(x, c):
        return (
            recurrent_jacobians(cell, params, x, c),
            jacobian_norms(cell, params, x, c, ord=2),
            hidden_grad_norms(cell, params, x, all_steps_loss, c),
        )

    # One compilation for the loop, one for the vmapped version.
    one = jax.jit(per_sequence)
    loop = [one(xs[b], jax.tree.map(lambda c, b=b: c[b], carry)) for b in range(3)]
    loop = jax.tree.map(lambda *per_b: np.stack(per_b), *loop)
    vmapped = jax.vmap(per_sequence)(xs, carry)
    for got, want in zip(vmapped, loop, strict=True):
        np.testing.assert_allclose(np.asarray(got), want, rtol=1e-12, atol=1e-14)
    # The batched call (one loss summed over the batch) gives the same per-sequence norms.
    batched = hidden_grad_norms(cell, params, xs, all_steps_loss, carry)
    np.testing.assert_allclose(np.asarray(batched), loop[2], rtol=1e-12)


def test_under_jit(key):
    cell = CELLS["gru"]()
    params, xs, carry = problem(key, cell)

    @jax.jit
    def all_diagnostics(params, xs, carry):
        J = recurrent_jacobians(cell, params, xs, carry)
        return (
            J,
            jacobian_norms(cell, params, xs, carry),
            hidden_grad_norms(cell, params, xs, final_step_loss, carry),
            spectral_stats(J),
        )

    got = all_diagnostics(params, xs, carry)
    J = recurrent_jacobians(cell, params, xs, carry)
    want = (
        J,
        jacobian_norms(cell, params, xs, carry),
        hidden_grad_norms(cell, params, xs, final_step_loss, carry),
        spectral_stats(J),
    )
    for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True):
        np.testing.assert_allclose(np.asarray(g), np.asarray(w), rtol=1e-12, atol=1e-14)


def test_errors(key):
    cell = CELLS["gru"]()
    params, xs, _ = problem(key, cell, batch=(2,))
    with pytest.raises(ValueError, match=r"xs: expected one sequence of shape \[T, I\]"):
        recurrent_jacobians(cell, params, xs)
    with pytest.raises(ValueError, match="ord: expected 'fro' or 2, got 'nuc'"):
        jacobian_norms(cell, params, xs[0], ord="nuc")
    with pytest.raises(ValueError, match=r"J: expected square matrices"):
        spectral_stats(jnp.zeros((3, 4), F64))
    with pytest.raises(ValueError, match="carry: expected leaf shapes"):
        hidden_grad_norms(cell, params, xs, final_step_loss, jaxrnn.GRUCarry(jnp.zeros(4, F64)))
