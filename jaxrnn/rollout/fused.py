"""Hand-derived BPTT for the built-in cells: a fused rollout with a custom VJP.

The Elman, GRU and LSTM factories put a ``fused`` rollout in their :class:`jaxrnn.Cell`;
:func:`jaxrnn.scan` runs it instead of differentiating ``lax.scan`` of ``apply``
wherever it applies. Its values are exactly those of the plain scan; its
backward pass has the structure of cuDNN's and oneDNN's RNN kernels. With
``a_t = x_t W_xh + h_{t-1} W_hh + b`` the pre-activations of a step (``[*, G H]``,
G = 1, 3, 4 gates) and ``δ_t = ∂L/∂a_t``, the only sequential part is::

    for t = T, ..., 1:                       (a reverse lax.scan)
        δ_t, ∂L/∂s_{t-1} = cell_backward(∂L/∂s_t + ∂L/∂y_t, saved_t)
        ∂L/∂h_{t-1} includes δ_t W_hhᵀ

and the weight and input gradients are then single matmuls over all ``T·N`` rows::

    dW_hh = Σ_t h_{t-1}ᵀ δ_t      dW_xh = Σ_t x_tᵀ δ_t      db = Σ_t δ_t      dx_t = δ_t W_xhᵀ

(an autodiffed scan instead accumulates ``dW_hh`` and ``dW_xh`` one small matmul
per step, with a read and a write of the whole gradient each time). The forward
pass saves the states ``s_t`` and the post-activation gates, so the backward
pass recomputes no matmul (only ``tanh(c_t)`` for the LSTM).

A masked step (``valid[t] = False``) keeps the carry and outputs zero, so its
Jacobian is the identity: ``δ_t = 0`` and the carry cotangent passes through.
Cotangents of the final carry enter the backward scan as its initial carry, and
the initial carry's cotangent is what it returns, so a rollout can be one
segment of a longer one.

Cell equations (row-vector layout, gate blocks as in the cell modules)::

    Elman   h_t = f(a_t)                               δ_t = f′(a_t) ⊙ dh_t
    GRU     r, z = σ(a_r), σ(a_z)                       (reset_after, cuDNN form)
            n = tanh(ax_n + r ⊙ (ah_n + b_hn)),  h_t = (1 - z) ⊙ n + z ⊙ h_{t-1}
            δ_n = dh_t ⊙ (1 - z) ⊙ (1 - n²),   δ_z = dh_t ⊙ (h_{t-1} - n) ⊙ z(1 - z),
            δ_r = δ_n ⊙ (ah_n + b_hn) ⊙ r(1 - r),   dh_{t-1} = [δ_r, δ_z, r ⊙ δ_n] W_hhᵀ + z ⊙ dh_t
    LSTM    dc = dc_t + dh_t ⊙ o ⊙ (1 - tanh²c_t),
            δ = [dc ⊙ g ⊙ i(1-i), dc ⊙ c_{t-1} ⊙ f(1-f), dc ⊙ i ⊙ (1-g²), dh_t ⊙ tanh c_t ⊙ o(1-o)]
            dh_{t-1} = δ W_hhᵀ,   dc_{t-1} = dc ⊙ f

The GRU's recurrent matmul sees ``r ⊙ δ_n`` in its candidate block, so it has
two delta sequences: ``Δx`` for ``W_xh``, ``b`` and ``x``, ``Δh`` for ``W_hh`` and ``b_hn``.

Forward-mode differentiation (``jax.jvp``, ``jax.jacfwd``) of a custom-VJP function is
not defined in JAX; use ``jaxrnn.scan(..., bptt="autodiff")`` for it.

References:
  Werbos (1990). Backpropagation through time: what it does and how to do it.
  Proceedings of the IEEE 78(10).
  Appleyard, Kocisky, Blunsom (2016). Optimizing Performance of Recurrent Neural
  Networks on GPUs. arXiv:1604.01946 (weight gradients as one GEMM over time).
  NVIDIA cuDNN, ``cudnnRNNBackwardData`` / ``cudnnRNNBackwardWeights``; oneDNN,
  "RNN" primitive, backward propagation.
"""

import logging
import math
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from jaxrnn.cells.base import activation_fn, check_input

Array = jax.Array
log = logging.getLogger("jaxrnn")
BPTT_MODES = ("auto", "fused", "autodiff")

# ``x_t W_xh`` is computed inside the forward loop, not hoisted out as one tall
# [T·N, I] @ [I, G·H] matmul: hoisting never won clearly. (Both scans take the
# caller's ``unroll``, default 1: with this fast path, unroll = 2 / 4 over unroll = 1
# took 0.96-1.12x / 0.97-1.26x the bench training step over the 12 cells and sizes
# below, interleaved on an idle 2-core VM; only Elman (32,100,64,512) at unroll 4
# gained, 0.87x, so 1 stays the default.) CPU ms per bench training step
# (forward + BPTT + Adam, float32, process CPU time: the 2-core VM was shared, load
# average 14-19), autodiff scan / fused in-loop / fused hoisted, jax 0.10.2, (B, T, I, H):
#           (32,100,32,128)      (8,1000,16,64)       (32,100,64,512)       (256,50,32,256)
#   LSTM    33.0 / 21.5 / 21.7   38.0 / 27.4 / 41.9   385 / 306 / 321       371 / 336 / 364
#   GRU     27.9 / 21.3 / 18.3   32.9 / 24.7 / 41.3   296 / 241 / 248       286 / 267 / 294
#   Elman    7.0 /  5.7 /  6.2   10.6 /  7.2 /  6.6   94.6 / 69.8 / 73.0    111 / 89.9 / 96.5
# The one hoisting gain (GRU, first column) is within this machine's noise, and the
# long-sequence column loses 40-50 % to the [T·N, G·H] round trip through memory.


class Unsupported(ValueError):
    """The fused rollout does not apply to these arguments; the message says why."""


class _Recurrence(NamedTuple):
    """One cell's pieces for :func:`_rollout` (all on flat ``[N, ...]`` batches).

    ``step(params, s, ax) -> (s_new, saved)``: one forward step from ``ax = x W_xh``
    (adding ``b`` where the cell's ``apply`` does, so that values match bit for bit).
    ``back(params, ds, saved, s_prev, s_new) -> (δx, δh, ds_prev)``: one backward step,
    where ``ds`` already holds ``∂L/∂y_t`` in its ``h``; ``δx`` is the delta of
    ``x W_xh + b``, ``δh`` that of ``h_{t-1} W_hh`` (None: the same as ``δx``, which
    is then stored once).
    ``extra_grads(params, Δh) -> dict``: gradients of params other than
    ``W_xh, W_hh, b``.
    """

    step: Callable
    back: Callable
    extra_grads: Callable[[Any, Array], dict]


def _no_extra_grads(params, delta_h):
    return {}


def _prev(seq: Array, first: Array, reverse: bool) -> Array:
    """The state entering each step: ``first``, then ``seq`` one step later in processing order."""
    if reverse:
        return jnp.concatenate([seq[1:], first[None]])
    return jnp.concatenate([first[None], seq[:-1]])


def _check_dtypes(params, carry, xs) -> None:
    dtypes = {jnp.dtype(a.dtype) for a in (*jax.tree.leaves(params), *jax.tree.leaves(carry), xs)}
    if len(dtypes) != 1 or next(iter(dtypes)) not in (jnp.float32, jnp.float64):
        raise Unsupported(
            "the fused rollout needs params, carry and xs all float32 or all float64, got "
            f"dtypes {sorted(str(d) for d in dtypes)}; use bptt='autodiff'"
        )


def _rollout(rec: _Recurrence, params, carry, xs, valid, *, reverse: bool, unroll):
    """Run ``rec`` over time-major ``xs [T, *batch, I]`` with a hand-derived VJP.

    Returns ``(final_carry, ys [T, *batch, H])``, ``ys[t] = h_t`` where ``valid[t]``, else 0.
    """
    _check_dtypes(params, carry, xs)
    T, batch_shape = xs.shape[0], xs.shape[1:-1]
    if T == 0:
        raise Unsupported("the fused rollout needs T >= 1, got T = 0")
    # The same check, and message, as the cell's apply on the autodiff path.
    check_input(jax.ShapeDtypeStruct(xs.shape[1:], xs.dtype), params.W_xh.shape[0], carry.h)
    N = math.prod(batch_shape)
    flat = jax.tree.map(lambda a: a.reshape(N, a.shape[-1]), carry)
    v = None if valid is None else valid.reshape(T, N)
    final, hs = _fused_scan(rec, reverse, unroll, params, flat, xs.reshape(T, N, -1), v)
    final = jax.tree.map(lambda a, ref: a.reshape(ref.shape), final, carry)
    ys = hs if v is None else jnp.where(v[..., None], hs, jnp.zeros((), hs.dtype))
    return final, ys.reshape(*xs.shape[:-1], hs.shape[-1])


def _keep_where(v, new, old):
    """Per row, ``new`` where ``v`` else ``old``, for every leaf; ``v`` [N] or None."""
    if v is None:
        return new
    return jax.tree.map(lambda a, b: jnp.where(v[:, None], a, b), new, old)


def _forward(rec, reverse, unroll, params, carry, xs, valid, *, save: bool):
    """The forward scan: final carry, the state after every step, and (if ``save``) the
    saved values ``rec.back`` needs."""

    def body(s, inputs):
        x, v = inputs
        s_new, saved = rec.step(params, s, x @ params.W_xh)
        s_new = _keep_where(v, s_new, s)
        return s_new, (s_new, saved) if save else s_new

    return jax.lax.scan(body, carry, (xs, valid), reverse=reverse, unroll=unroll)


def _fused_scan(rec, reverse, unroll, params, carry, xs, valid):
    @jax.custom_vjp
    def run(params, carry, xs, valid):
        final, states = _forward(rec, reverse, unroll, params, carry, xs, valid, save=False)
        return final, states.h

    def run_fwd(params, carry, xs, valid):
        final, (states, saved) = _forward(rec, reverse, unroll, params, carry, xs, valid, save=True)
        return (final, states.h), (params, carry, xs, valid, states, saved)

    def run_bwd(residuals, cotangents):
        params, carry0, xs, valid, states, saved = residuals
        d_final, d_hs = cotangents
        prevs = jax.tree.map(lambda seq, first: _prev(seq, first, reverse), states, carry0)

        def body(ds, inputs):
            gy, sv, s_prev, s_new, v = inputs
            dx, dh, ds_prev = rec.back(params, ds._replace(h=ds.h + gy), sv, s_prev, s_new)
            if v is not None:  # a masked step: δ = 0, the carry cotangent passes through
                zero = jnp.zeros((), dx.dtype)
                dx = jnp.where(v[:, None], dx, zero)
                dh = None if dh is None else jnp.where(v[:, None], dh, zero)
                ds_prev = _keep_where(v, ds_prev, ds)
            return ds_prev, (dx, dh)

        d_carry0, (delta_x, delta_h) = jax.lax.scan(
            body,
            d_final,
            (d_hs, saved, prevs, states, valid),
            reverse=not reverse,
            unroll=unroll,
        )
        # The weight and input gradients: one matmul each over all T * N rows.
        rows_x = delta_x.reshape(-1, delta_x.shape[-1])
        rows_h = rows_x if delta_h is None else delta_h.reshape(-1, delta_h.shape[-1])
        grads = params._replace(
            W_xh=xs.reshape(-1, xs.shape[-1]).T @ rows_x,
            W_hh=prevs.h.reshape(-1, prevs.h.shape[-1]).T @ rows_h,
            b=rows_x.sum(0),
            **rec.extra_grads(params, rows_h),
        )
        return grads, d_carry0, delta_x @ params.W_xh.T, None

    run.defvjp(run_fwd, run_bwd)
    return run(params, carry, xs, valid)


# ----------------------------------------------------------------------------- Elman

# f′ from the saved output h = f(a), where that is exact (relu′(0) = 0, as jax.nn.relu).
DERIVATIVE_FROM_OUTPUT: dict[str, Callable[[Array], Array]] = {
    "tanh": lambda h: 1 - h * h,
    "sigmoid": lambda h: h * (1 - h),
    "relu": lambda h: (h > 0).astype(h.dtype),
    "identity": jnp.ones_like,
}


def elman_rollout(activation) -> Callable:
    """The fused rollout of ``jaxrnn.elman(H, activation=activation)``, any activation.

    ``f′`` comes from the saved output for tanh, sigmoid, relu and identity; for
    any other activation the pre-activation is saved and ``jax.vjp(f)`` gives the delta.
    """
    f = activation_fn(activation)
    from_output = DERIVATIVE_FROM_OUTPUT.get(activation) if isinstance(activation, str) else None

    def step(p, s, ax):
        a = ax + s.h @ p.W_hh + p.b
        return s._replace(h=f(a)), (None if from_output else a)

    def back(p, ds, a, s_prev, s_new):
        delta = ds.h * from_output(s_new.h) if from_output else jax.vjp(f, a)[1](ds.h)[0]
        return delta, None, ds._replace(h=delta @ p.W_hh.T)

    rec = _Recurrence(step, back, _no_extra_grads)

    def fused(params, carry, xs, valid, *, reverse=False, unroll=1):
        return _rollout(rec, params, carry, xs, valid, reverse=reverse, unroll=unroll)

    return fused


# ------------------------------------------------------------------------------- GRU


def gru_rollout(hidden_size: int) -> Callable:
    """The fused rollout of ``jaxrnn.gru(H)`` (``reset_after=True``, no layer norm)."""
    H = hidden_size

    def step(p, s, ax):
        gx = ax + p.b
        gh = s.h @ p.W_hh
        r = jax.nn.sigmoid(gx[:, :H] + gh[:, :H])
        z = jax.nn.sigmoid(gx[:, H : 2 * H] + gh[:, H : 2 * H])
        hn = gh[:, 2 * H :] + p.b_hn
        n = jnp.tanh(gx[:, 2 * H :] + r * hn)
        return s._replace(h=(1.0 - z) * n + z * s.h), (r, z, n, hn)

    def back(p, ds, saved, s_prev, s_new):
        r, z, n, hn = saved
        d_n = ds.h * (1.0 - z) * (1.0 - n * n)
        d_z = ds.h * (s_prev.h - n) * z * (1.0 - z)
        d_r = d_n * hn * r * (1.0 - r)
        delta_h = jnp.concatenate([d_r, d_z, d_n * r], axis=-1)
        delta_x = jnp.concatenate([d_r, d_z, d_n], axis=-1)
        return delta_x, delta_h, ds._replace(h=delta_h @ p.W_hh.T + ds.h * z)

    def extra_grads(p, rows_h):
        return {"b_hn": rows_h[:, 2 * H :].sum(0)}

    rec = _Recurrence(step, back, extra_grads)

    def fused(params, carry, xs, valid, *, reverse=False, unroll=1):
        if params.layer_norm is not None or params.b_hn is None:
            raise Unsupported(
                "the fused GRU rollout needs params without layer_norm and with b_hn "
                "(reset_after=True); use bptt='autodiff'"
            )
        return _rollout(rec, params, carry, xs, valid, reverse=reverse, unroll=unroll)

    return fused


# ------------------------------------------------------------------------------ LSTM


def lstm_rollout(hidden_size: int) -> Callable:
    """The fused rollout of ``jaxrnn.lstm(H)`` (no peephole, projection or layer norm)."""
    H = hidden_size

    def step(p, s, ax):
        a = ax + s.h @ p.W_hh + p.b
        i = jax.nn.sigmoid(a[:, :H])
        f = jax.nn.sigmoid(a[:, H : 2 * H])
        g = jnp.tanh(a[:, 2 * H : 3 * H])
        o = jax.nn.sigmoid(a[:, 3 * H :])
        c = f * s.c + i * g
        return s._replace(h=o * jnp.tanh(c), c=c), (i, f, g, o)

    def back(p, ds, gates, s_prev, s_new):
        i, f, g, o = gates
        tc = jnp.tanh(s_new.c)  # recomputed: cheaper than saving it
        dc = ds.c + ds.h * o * (1.0 - tc * tc)
        delta = jnp.concatenate(
            [
                dc * g * i * (1.0 - i),
                dc * s_prev.c * f * (1.0 - f),
                dc * i * (1.0 - g * g),
                ds.h * tc * o * (1.0 - o),
            ],
            axis=-1,
        )
        return delta, None, ds._replace(h=delta @ p.W_hh.T, c=dc * f)

    rec = _Recurrence(step, back, _no_extra_grads)

    def fused(params, carry, xs, valid, *, reverse=False, unroll=1):
        if params.peephole is not None or params.W_hr is not None or params.layer_norm is not None:
            raise Unsupported(
                "the fused LSTM rollout needs params without peephole, projection (W_hr) "
                "and layer_norm; use bptt='autodiff'"
            )
        return _rollout(rec, params, carry, xs, valid, reverse=reverse, unroll=unroll)

    return fused


# -------------------------------------------------------------------------- dispatch


def dispatch(cell, params, carry, xs, valid, starts, *, bptt: str, reverse: bool, unroll):
    """The fused rollout's ``(final_carry, ys)`` if ``bptt`` and the arguments allow it, else None.

    Called by :func:`jaxrnn.scan` at trace time on time-major arguments; logs which
    path runs. ``bptt="fused"`` raises :class:`Unsupported` (a ``ValueError``) naming
    why the fused path does not apply.
    """
    if bptt not in BPTT_MODES:
        raise ValueError(f"bptt: expected one of {BPTT_MODES}, got {bptt!r}")
    if bptt == "autodiff":
        log.debug("jaxrnn.scan: autodiff BPTT (bptt='autodiff')")
        return None
    try:
        if getattr(cell, "fused", None) is None:
            raise Unsupported(
                "the cell has no fused rollout (only the built-in elman, gru and lstm cells "
                "have one; wrapped, stacked and user cells do not)"
            )
        if starts is not None:
            raise Unsupported("resets are not supported by the fused rollout")
        out = cell.fused(params, carry, xs, valid, reverse=reverse, unroll=unroll)
    except Unsupported as e:
        if bptt == "fused":
            raise Unsupported(f"bptt='fused': {e}") from None
        log.debug("jaxrnn.scan: autodiff BPTT (%s)", e)
        return None
    log.debug("jaxrnn.scan: fused BPTT")
    return out
