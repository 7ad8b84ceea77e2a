"""Backpropagation through time for the Elman cell, derived by hand.

This is the "math behind" ``jax.vjp(jaxrnn.scan)`` for the simplest recurrent
cell, written from the equations rather than by automatic differentiation, so
it can serve as an independent oracle (and as a reading aid). Forward, for
``t = 1..T``::

    z_t = x_t W_xh + h_{t-1} W_hh + b,        h_t = f(z_t),        y_t = h_t

Backward, with ``g_t = ∂L/∂y_t`` the incoming output gradients and
``δ_t = ∂L/∂z_t``::

    δ_t   = (δ_{t+1} W_hhᵀ + g_t) ⊙ f′(z_t),       δ_{T+1} = 0
    dW_hh = Σ_t h_{t-1}ᵀ δ_t      dW_xh = Σ_t x_tᵀ δ_t      db = Σ_t δ_t
    dx_t  = δ_t W_xhᵀ             dh_0  = δ_1 W_hhᵀ

Only the δ recurrence is sequential; the weight gradients are then single
large matmuls over all (batch, time) rows at once, which is how cuDNN
structures its RNN backward pass.

With a mask, a masked step keeps the carry (``h_t = h_{t-1}``) and outputs
zero, so its Jacobian is the identity: the gradient w.r.t. the carry passes
through unchanged, ``g_t`` is ignored, and the step contributes nothing to
any weight gradient (``δ_t = 0``).

References:
  Rumelhart, Hinton, Williams (1986). Learning representations by
  back-propagating errors. Nature 323.
  Werbos (1990). Backpropagation through time: what it does and how to do it.
  Proceedings of the IEEE 78(10).
  Appleyard, Kocisky, Blunsom (2016). Optimizing Performance of Recurrent Neural
  Networks on GPUs. arXiv:1604.01946 (weight gradients as one GEMM over time).
"""

from collections.abc import Callable

import jax
import jax.numpy as jnp

from jaxrnn.cells.base import activation_fn, carry_dtype, matmul
from jaxrnn.cells.elman import ElmanParams
from jaxrnn.rollout.fused import DERIVATIVE_FROM_OUTPUT
from jaxrnn.rollout.scan import as_mask, check_lengths


def _derivative(activation, f, z, h):
    """``f′(z)``: from ``h`` where ``DERIVATIVE_FROM_OUTPUT`` knows ``f``, else a JVP.

    The JVP with a tangent of ones is ``f′(z)`` for any elementwise ``f``.
    """
    if isinstance(activation, str) and activation in DERIVATIVE_FROM_OUTPUT:
        return DERIVATIVE_FROM_OUTPUT[activation](h)
    return jax.jvp(f, (z,), (jnp.ones_like(z),))[1]


def elman_bptt(
    params: ElmanParams,
    xs: jax.Array,
    grad_ys: jax.Array,
    h0: jax.Array | None = None,
    *,
    activation: str | Callable[[jax.Array], jax.Array] = "tanh",
    lengths: jax.Array | None = None,
    mask: jax.Array | None = None,
):
    """Hand-derived BPTT through an Elman rollout (see the module docstring).

    Returns exactly what ``jax.vjp`` of
    ``lambda p, xs, h0: jaxrnn.scan(jaxrnn.elman(H, activation=activation), p, xs,
    ElmanCarry(h0), lengths=lengths, mask=mask)[1]`` returns for the cotangent
    ``grad_ys``. Batch-major layout only; no ``resets`` or ``reverse``.

    Args:
      params: ``ElmanParams(W_xh [I, H], W_hh [H, H], b [H])``.
      xs: ``[*batch, T, I]`` inputs.
      grad_ys: ``[*batch, T, H]``, ``∂L/∂y_t`` for every step.
      h0: ``[*batch, H]`` initial hidden state; default zeros.
      activation: a name from ``jaxrnn.ACTIVATIONS`` or an elementwise callable.
        For ``tanh``, ``sigmoid``, ``relu`` and ``identity`` ``f′`` is computed
        from the saved ``h_t`` (e.g. ``1 - h_t²``); otherwise by a JVP of ``f`` at ``z_t``.
      lengths: ``[*batch]`` ints, right-padded sequences (as in ``jaxrnn.scan``).
      mask: ``[*batch, T]`` bool, valid steps (as in ``jaxrnn.scan``).

    Returns:
      ``(grads, grad_xs, grad_h0)``: ``ElmanParams`` of ``dW_xh, dW_hh, db``,
      ``grad_xs [*batch, T, I]`` and ``grad_h0 [*batch, H]``.
    """
    f = activation_fn(activation)
    I, H = params.W_xh.shape
    xs = jnp.asarray(xs)
    if xs.ndim < 2 or xs.shape[-1] != I:
        raise ValueError(
            f"xs: expected shape [*batch, T, {I}] (I={I} from params.W_xh), got {tuple(xs.shape)}"
        )
    batch_shape, T = xs.shape[:-2], xs.shape[-2]
    if grad_ys.shape != (*batch_shape, T, H):
        raise ValueError(
            f"grad_ys: expected shape {(*batch_shape, T, H)} ([*batch, T, H]), "
            f"got {tuple(grad_ys.shape)}"
        )
    acc = carry_dtype(params.W_hh.dtype)
    if h0 is None:
        h0 = jnp.zeros((*batch_shape, H), acc)
    elif h0.shape != (*batch_shape, H):
        raise ValueError(
            f"h0: expected shape {(*batch_shape, H)} ([*batch, H]), got {tuple(h0.shape)}"
        )

    valid = jnp.ones((*batch_shape, T), jnp.bool_)
    if mask is not None:
        valid = as_mask("mask", mask, (*batch_shape, T), False)
    if lengths is not None:
        lengths = check_lengths(lengths, batch_shape, T)
        valid = valid & (jnp.arange(T, dtype=lengths.dtype) < lengths[..., None])

    # Time-major for the scans: [T, *batch, ...]; v is [T, *batch, 1] to broadcast over H.
    xs_t = jnp.moveaxis(xs, -2, 0)
    gy_t = jnp.moveaxis(grad_ys, -2, 0).astype(acc)
    v_t = jnp.moveaxis(valid, -1, 0)[..., None]

    def forward(h_prev, inputs):
        x, v = inputs
        z = matmul(x, params.W_xh, acc) + matmul(h_prev, params.W_hh, acc) + params.b.astype(acc)
        h = f(z)
        return jnp.where(v, h, h_prev), (h_prev, z, h)

    _, (h_prevs, zs, hs) = jax.lax.scan(forward, h0.astype(acc), (xs_t, v_t))
    fprime = _derivative(activation, f, zs, hs)

    def backward(dh_next, inputs):
        # dh_next = ∂L/∂h_t through the steps after t (δ_{t+1} W_hhᵀ); h_t is also y_t.
        gy, fp, v = inputs
        delta = jnp.where(v, (dh_next + gy) * fp, 0)
        dh_prev = jnp.where(v, matmul(delta, params.W_hh.T, acc), dh_next)
        return dh_prev, delta

    grad_h0, deltas = jax.lax.scan(
        backward, jnp.zeros_like(h0, acc), (gy_t, fprime, v_t), reverse=True
    )

    # Weight gradients: one matmul each over all T * batch rows.
    rows = (-1, H)
    grads = ElmanParams(
        W_xh=matmul(xs_t.reshape(-1, I).T, deltas.reshape(rows), acc),
        W_hh=matmul(h_prevs.reshape(rows).T, deltas.reshape(rows), acc),
        b=deltas.reshape(rows).sum(0),
    )
    grads = jax.tree.map(lambda g, p: g.astype(p.dtype), grads, params)
    grad_xs = jnp.moveaxis(matmul(deltas, params.W_xh.T, acc), 0, -2).astype(xs.dtype)
    return grads, grad_xs, grad_h0.astype(h0.dtype)
