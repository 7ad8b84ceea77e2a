"""Gradient-flow diagnostics: how gradients vanish or explode through time.

Notation: ``s_t`` is the carry that step ``t`` reads, flattened to one vector
(all carry leaves concatenated, e.g. ``[h; c]`` of size ``S = 2H`` for an LSTM),
so ``s_0`` is the initial carry and ``s_T`` the final one. Step ``t`` maps
``s_t -> s_{t+1}`` with the Jacobian ``J_t = ∂s_{t+1}/∂s_t``, and by the chain rule

    ∂s_T/∂s_t = J_{T-1} J_{T-2} ··· J_t,        ‖∂s_T/∂s_t‖ ≤ Π_k ‖J_k‖.

When the ``‖J_k‖`` stay below 1 these products shrink geometrically with
``T - t`` (vanishing gradients); above 1 they can grow geometrically
(exploding gradients). For a linear Elman network ``J_t = W_hhᵀ``, so
everything is governed by the spectrum of ``W_hh``: a spectral radius below 1
is sufficient for vanishing, above 1 necessary for exploding (Pascanu et al.
2013, §2.1).

All functions are pure and work under ``jit`` and ``vmap``. The carry leaves
must be floating (deterministic cells; a carried PRNG key cannot be
differentiated).

References:
  Bengio, Simard, Frasconi (1994). Learning long-term dependencies with gradient
  descent is difficult. IEEE Transactions on Neural Networks 5(2).
  Pascanu, Mikolov, Bengio (2013). On the difficulty of training recurrent
  neural networks. ICML.
"""

from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

from jaxrnn.cells.base import Cell, check_carry, check_is_cell


class SpectralStats(NamedTuple):
    """The spectrum of square matrices ``J [..., S, S]``, from :func:`spectral_stats`.

    Attributes:
      spectral_radius: ``[...]``, ``max_i |λ_i(J)|``.
      singular_values: ``[..., S]``, descending; the first is ``‖J‖_2``.
    """

    spectral_radius: jax.Array
    singular_values: jax.Array


def _initial_carry(cell: Cell, params, batch_shape, carry):
    check_is_cell(cell)
    carry0 = cell.initial_carry(params, batch_shape)
    if carry is not None:
        check_carry(carry, carry0)
        carry0 = carry
    for leaf in jax.tree.leaves(carry0):
        if not jnp.issubdtype(leaf.dtype, jnp.floating):
            raise TypeError(
                f"carry: expected floating leaves (a deterministic cell), got dtype {leaf.dtype}"
            )
    return carry0


def _check_sequence(xs) -> jax.Array:
    xs = jnp.asarray(xs)
    if xs.ndim != 2:
        raise ValueError(
            f"xs: expected one sequence of shape [T, I] (jax.vmap over a batch), "
            f"got {tuple(xs.shape)}"
        )
    return xs


def hidden_grad_norms(cell: Cell, params, xs: jax.Array, loss_fn, carry=None) -> jax.Array:
    """``‖∂L/∂s_t‖`` for ``t = 0..T-1``: the gradient reaching the carry that step ``t`` reads.

    ``L = loss_fn(ys)``, with ``ys`` the outputs of ``jaxrnn.scan(cell, params, xs,
    carry)``. Entry ``t`` is the Euclidean norm, over all carry leaves of one
    sequence, of the gradient of ``L`` w.r.t. ``s_t``, the carry entering step
    ``t`` (``s_0`` = the initial carry; for an Elman cell ``s_t = h_{t-1}``). It
    counts every path from ``s_t`` to ``L``, i.e. through ``y_t, ..., y_{T-1}``,
    which is what BPTT propagates backwards from step ``t``; it is computed in
    one backward pass as the gradient w.r.t. zero perturbations ``ε_t`` added to
    the carry before each step, ``s_t + ε_t``.

    Args:
      cell: any deterministic cell.
      params: its params.
      xs: ``[*batch, T, I]``.
      loss_fn: ``loss_fn(ys [*batch, T, O]) -> scalar``.
      carry: initial carry ``[*batch, ...]``; default ``cell.initial_carry``.

    Returns:
      ``[*batch, T]``: one norm per sequence and step (the loss may couple the
      sequences of a batch; each norm is w.r.t. that sequence's own carry).
    """
    xs = jnp.asarray(xs)
    if xs.ndim < 2:
        raise ValueError(f"xs: expected shape [*batch, T, I], got {tuple(xs.shape)}")
    batch_shape = xs.shape[:-2]
    carry0 = _initial_carry(cell, params, batch_shape, carry)
    xs_t = jnp.moveaxis(xs, -2, 0)
    T, nb = xs_t.shape[0], len(batch_shape)

    def loss_of_perturbation(eps):
        def step(c, inputs):
            x, e = inputs
            return cell.apply(params, jax.tree.map(jnp.add, c, e), x)

        _, ys = jax.lax.scan(step, carry0, (xs_t, eps))
        return loss_fn(jax.tree.map(lambda y: jnp.moveaxis(y, 0, nb), ys))

    eps = jax.tree.map(lambda c: jnp.zeros((T, *c.shape), c.dtype), carry0)
    grads = jax.grad(loss_of_perturbation)(eps)  # ∂L/∂s_t, leaves [T, *batch, ...]
    sq = sum(
        jnp.sum(jnp.square(g), axis=tuple(range(nb + 1, g.ndim))) for g in jax.tree.leaves(grads)
    )
    return jnp.moveaxis(jnp.sqrt(sq), 0, -1)


def recurrent_jacobians(cell: Cell, params, xs: jax.Array, carry=None) -> jax.Array:
    """The per-step Jacobians ``J_t = ∂s_{t+1}/∂s_t`` along one sequence.

    ``s`` is the flattened carry (``jax.flatten_util.ravel_pytree`` order, e.g.
    ``[h; c]`` for an LSTM). ``J_t[i, j] = ∂s_{t+1, i} / ∂s_{t, j}``, computed with
    ``jax.jacfwd`` of one step at the trajectory's carry.

    Args:
      cell: any deterministic cell.
      params: its params.
      xs: ``[T, I]``, one sequence (``jax.vmap`` for a batch).
      carry: initial carry, unbatched; default ``cell.initial_carry(params)``.

    Returns:
      ``[T, S, S]``.
    """
    xs = _check_sequence(xs)
    carry0 = _initial_carry(cell, params, (), carry)
    s0, unravel = ravel_pytree(carry0)

    def step_flat(s, x):
        return ravel_pytree(cell.apply(params, unravel(s), x)[0])[0]

    def step(s, x):
        return step_flat(s, x), jax.jacfwd(step_flat)(s, x)

    _, jacobians = jax.lax.scan(step, s0, xs)
    return jacobians


def jacobian_norms(cell: Cell, params, xs: jax.Array, carry=None, ord="fro") -> jax.Array:
    """``‖∂s_T/∂s_t‖ = ‖J_{T-1} ··· J_t‖`` for ``t = 0..T-1`` along one sequence.

    The products are accumulated backwards, ``P_T = I``, ``P_t = P_{t+1} J_t``, with
    a reverse ``jax.lax.scan`` over :func:`recurrent_jacobians`.

    Args:
      cell: any deterministic cell.
      params: its params.
      xs: ``[T, I]``, one sequence (``jax.vmap`` for a batch).
      carry: initial carry, unbatched; default ``cell.initial_carry(params)``.
      ord: ``"fro"`` (Frobenius) or ``2`` (spectral norm, the largest singular value).

    Returns:
      ``[T]``; entry ``t`` says how strongly the final state still depends on ``s_t``.
    """
    if ord not in ("fro", 2):
        raise ValueError(f"ord: expected 'fro' or 2, got {ord!r}")
    jacobians = recurrent_jacobians(cell, params, xs, carry)
    S = jacobians.shape[-1]

    def step(P, J):
        P = P @ J
        return P, jnp.linalg.norm(P, ord=ord)

    _, norms = jax.lax.scan(step, jnp.eye(S, dtype=jacobians.dtype), jacobians, reverse=True)
    return norms


def spectral_stats(J: jax.Array) -> SpectralStats:
    """Spectral radius and singular values of square matrices ``J [..., S, S]``.

    The spectral radius ``max |λ_i(J)|`` governs the long-run growth of ``J^k``
    (a linear recurrence); the largest singular value ``‖J‖_2`` bounds the
    growth of one step. ``jnp.linalg.eigvals`` is only implemented on CPU in
    some JAX versions.

    Returns:
      ``SpectralStats(spectral_radius [...], singular_values [..., S])``.
    """
    J = jnp.asarray(J)
    if J.ndim < 2 or J.shape[-1] != J.shape[-2]:
        raise ValueError(f"J: expected square matrices [..., S, S], got {tuple(J.shape)}")
    radius = jnp.max(jnp.abs(jnp.linalg.eigvals(J)), axis=-1)
    return SpectralStats(radius, jnp.linalg.svd(J, compute_uv=False))
