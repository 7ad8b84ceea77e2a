"""Backpropagation through time by hand, in NumPy float64: the oracle for jaxrnn's gradients.

Each function here runs one cell (Elman, GRU, LSTM) over a batch of sequences and
back again, written from the papers' equations and nothing else: no JAX, no
autodiff, no code from ``jaxrnn`` (params and carries are read and rebuilt by field
name, ``params.W_xh``, ``params._replace(...)``, so jaxrnn's NamedTuples, or any
with the same fields, go in and come back out). ``tests/test_bptt_oracle.py``
checks the oracle against central finite differences, then ``jax.vjp`` of
``jaxrnn.scan`` (fused engine and autodiff) against the oracle.

The rollout is that of ``jaxrnn.scan``: for ``t = 0, ..., T-1``::

    c_in = c_0 if reset_t else c_{t-1}          # a new sequence starts at step t
    c_t, y_t = cell(c_in, x_t)  if valid_t      # a valid step
    c_t, y_t = c_in, 0          otherwise       # a masked step keeps the carry

Backward, for ``t = T-1, ..., 0``, with ``ĉ_t = ∂L/∂c_t`` (``ĉ_{T-1}`` the final
carry's cotangent) and ``ŷ_t = ∂L/∂y_t``: a valid step pulls ``(ĉ_t, ŷ_t)`` back
through the cell to ``ĉ_in``, ``x̂_t`` and its share of the weight gradients; a
masked step is the identity on the carry (``ĉ_in = ĉ_t``; ``ŷ_t`` is ignored since
``y_t = 0``; no weight or input gradient); after a reset ``ĉ_in`` flows to the
initial carry (``ĉ_0 += ĉ_in``) and ``ĉ_{t-1} = 0``; otherwise ``ĉ_{t-1} = ĉ_in``.
The initial carry's gradient is the sum over every point it enters.

Layout: batch-major ``xs [B, T, I]``, row vectors (``x W``), as in jaxrnn.

References:
  Rumelhart, Hinton, Williams (1986). Learning representations by back-propagating
  errors. Nature 323.
  Werbos (1990). Backpropagation through time: what it does and how to do it.
  Proceedings of the IEEE 78(10).
  Cho et al. (2014). Learning Phrase Representations using RNN Encoder-Decoder for
  Statistical Machine Translation. EMNLP.
  Graves (2012). Supervised Sequence Labelling with Recurrent Neural Networks,
  Studies in Computational Intelligence 385, Springer (Sec. 4.6, LSTM backward).
  Gers, Schmidhuber (2000). Recurrent nets that time and count (peepholes). IJCNN.
  Sak, Senior, Beaufays (2014). Long Short-Term Memory Recurrent Neural Network
  Architectures for Large Scale Acoustic Modeling (LSTMP). Interspeech.
"""

from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np

F64 = np.float64


class Rollout(NamedTuple):
    """The oracle's answer: the forward pass and the gradient of
    ``L = Σ ŷ ⊙ ys + Σ ĉ ⊙ final`` w.r.t. everything that goes in.

    Attributes:
      final: the final carry, the input carry's type, float64 leaves.
      ys: ``[B, T, O]``, the outputs (zero at masked steps).
      d_params: the params' type, float64 gradients (None where the params have None).
      d_xs: ``[B, T, I]``.
      d_carry: the initial carry's type, its gradient.
    """

    final: Any
    ys: np.ndarray
    d_params: Any
    d_xs: np.ndarray
    d_carry: Any


def sigmoid(a):
    return 1.0 / (1.0 + np.exp(-a))


# f and f′ for the Elman activations, f′ as a function of the pre-activation z.
ACTIVATIONS: dict[str, tuple[Callable, Callable]] = {
    "tanh": (np.tanh, lambda z: 1.0 - np.tanh(z) ** 2),
    # f′(0) = 0, as jax.nn.relu's derivative.
    "relu": (lambda z: np.maximum(z, 0.0), lambda z: (z > 0).astype(F64)),
    "sigmoid": (sigmoid, lambda z: sigmoid(z) * (1.0 - sigmoid(z))),
    "identity": (lambda z: z, np.ones_like),
}


def _f64(a):
    return np.asarray(a, dtype=F64)


def _rollout(step, xs, carry, mask, resets, grad_ys, grad_final) -> Rollout:
    """The rollout and its BPTT (module docstring) around ``step``.

    ``step(c_in, x) -> (c_out, y, pullback)`` runs one step on a whole batch, with
    carries as dicts of ``[B, ...]`` arrays; ``pullback(ĉ_out, ŷ) -> (ĉ_in, d_params,
    x̂)`` is its vector-Jacobian product (``d_params`` a dict of arrays by field name).
    Masked rows enter ``pullback`` with zero cotangents, so they add nothing to the
    weight gradients (the pullback is linear in its cotangents).
    """
    xs = _f64(xs)
    B, T, _ = xs.shape
    c0 = {k: _f64(v) for k, v in carry._asdict().items()}
    valid = np.ones((B, T), bool) if mask is None else np.asarray(mask, bool)
    start = np.zeros((B, T), bool) if resets is None else np.asarray(resets, bool)
    if valid.shape != (B, T) or start.shape != (B, T):
        raise ValueError(f"mask, resets: expected shape {(B, T)}")

    c, ys, tape = c0, [], []
    for t in range(T):
        v, s = valid[:, t, None], start[:, t, None]
        c_in = {k: np.where(s, c0[k], c[k]) for k in c}
        c_out, y, pullback = step(c_in, xs[:, t])
        c = {k: np.where(v, c_out[k], c_in[k]) for k in c}
        ys.append(np.where(v, y, 0.0))
        tape.append(pullback)
    ys = np.stack(ys, axis=1) if T else np.zeros((B, 0, 0))

    dc = {k: np.zeros_like(v) for k, v in c0.items()}
    if grad_final is not None:
        dc = {k: _f64(getattr(grad_final, k)) for k in c0}
    gy = np.zeros_like(ys) if grad_ys is None else _f64(grad_ys)
    dc0 = {k: np.zeros_like(v) for k, v in c0.items()}
    d_xs = np.zeros_like(xs)
    d_params: dict[str, np.ndarray] = {}
    for t in reversed(range(T)):
        v, s = valid[:, t, None], start[:, t, None]
        dc_in, dp, dx = tape[t](
            {k: np.where(v, dc[k], 0.0) for k in dc}, np.where(v, gy[:, t], 0.0)
        )
        dc_in = {k: np.where(v, dc_in[k], dc[k]) for k in dc}  # masked: the identity
        d_xs[:, t] = np.where(v, dx, 0.0)
        for k, g in dp.items():
            d_params[k] = d_params.get(k, 0.0) + g
        for k in dc:  # a reset hands the carry's gradient to the initial carry
            dc0[k] = dc0[k] + np.where(s, dc_in[k], 0.0)
            dc[k] = np.where(s, 0.0, dc_in[k])
    dc0 = {k: dc0[k] + dc[k] for k in dc}
    return Rollout(carry._replace(**c), ys, d_params, d_xs, carry._replace(**dc0))


def elman(
    params, xs, carry, *, activation="tanh", mask=None, resets=None, grad_ys=None, grad_final=None
) -> Rollout:
    """BPTT through the Elman network (Elman 1990), by hand.

    Forward: ``z_t = x_t W_xh + h_{t-1} W_hh + b``, ``h_t = f(z_t)``, ``y_t = h_t``.

    Backward (Rumelhart et al. 1986; Werbos 1990), with ``ĥ_t = ∂L/∂h_t`` through the
    later steps (the final carry's cotangent at ``t = T-1``) and ``δ_t = ∂L/∂z_t``::

        δ_t     = (ĥ_t + ŷ_t) ⊙ f′(z_t)
        ĥ_{t-1} = δ_t W_hhᵀ        x̂_t = δ_t W_xhᵀ
        dW_xh = Σ_t x_tᵀ δ_t       dW_hh = Σ_t h_{t-1}ᵀ δ_t       db = Σ_t δ_t

    (masks and resets as in the module docstring).

    Args:
      params: ``W_xh [I, H]``, ``W_hh [H, H]``, ``b [H]`` (e.g. ``jaxrnn.ElmanParams``).
      xs: ``[B, T, I]``.
      carry: ``h [B, H]`` (e.g. ``jaxrnn.ElmanCarry``).
      activation: ``"tanh"``, ``"relu"``, ``"sigmoid"`` or ``"identity"``.
      mask: ``[B, T]`` bool, valid steps; default all valid.
      resets: ``[B, T]`` bool, the carry restarts from ``carry`` before step ``t``.
      grad_ys: ``[B, T, H]``, ``ŷ``; default zeros.
      grad_final: ``ĉ`` for the final carry, the carry's type; default zeros.

    Returns:
      a :class:`Rollout`.
    """
    f, fprime = ACTIVATIONS[activation]
    W_xh, W_hh, b = _f64(params.W_xh), _f64(params.W_hh), _f64(params.b)

    def step(c, x):
        h = c["h"]
        z = x @ W_xh + h @ W_hh + b
        h_new = f(z)

        def pullback(dc, dy):
            delta = (dc["h"] + dy) * fprime(z)
            grads = {"W_xh": x.T @ delta, "W_hh": h.T @ delta, "b": delta.sum(0)}
            return {"h": delta @ W_hh.T}, grads, delta @ W_xh.T

        return {"h": h_new}, h_new, pullback

    out = _rollout(step, xs, carry, mask, resets, grad_ys, grad_final)
    return out._replace(d_params=params._replace(**out.d_params))


def gru(
    params, xs, carry, *, reset_after=True, mask=None, resets=None, grad_ys=None, grad_final=None
) -> Rollout:
    """BPTT through the GRU (Cho et al. 2014), both forms, by hand.

    Forward, gate order (r, z, n), ``gx = x_t W_xh + b`` and ``h = h_{t-1}``::

        r = σ(gx_r + h W_hh_r)        z = σ(gx_z + h W_hh_z)
        reset_after=True  (cuDNN):    q = h W_hh_n + b_hn,   n = tanh(gx_n + r ⊙ q)
        reset_after=False (Cho 2014): n = tanh(gx_n + (r ⊙ h) W_hh_n)
        h_t = (1 - z) ⊙ n + z ⊙ h,    y_t = h_t

    Backward, with ``ĥ = ĥ_t + ŷ_t`` (the carry's cotangent from later steps plus
    the output's) and ``δ_a = ∂L/∂a`` for each pre-activation ``a``::

        δ_n = ĥ ⊙ (1 - z) ⊙ (1 - n²)        δ_z = ĥ ⊙ (h - n) ⊙ z (1 - z)
        reset_after=True:   r̂ = δ_n ⊙ q,                q̂ = δ_n ⊙ r
                            dW_hh_n = Σ hᵀ q̂,            db_hn = Σ q̂
                            ĥ_{t-1} = ĥ ⊙ z + [δ_r, δ_z, q̂] W_hhᵀ
        reset_after=False:  (r⊙h)^ = δ_n W_hh_nᵀ,        r̂ = (r⊙h)^ ⊙ h
                            dW_hh_n = Σ (r ⊙ h)ᵀ δ_n
                            ĥ_{t-1} = ĥ ⊙ z + (r⊙h)^ ⊙ r + [δ_r, δ_z] W_hh_rzᵀ
        δ_r = r̂ ⊙ r (1 - r)
        dW_hh_rz = Σ hᵀ [δ_r, δ_z]     dW_xh = Σ xᵀ [δ_r, δ_z, δ_n]     db = Σ [δ_r, δ_z, δ_n]
        x̂_t = [δ_r, δ_z, δ_n] W_xhᵀ

    Args:
      params: ``W_xh [I, 3H]``, ``W_hh [H, 3H]``, ``b [3H]``, ``b_hn [H]`` (None with
        ``reset_after=False``), ``layer_norm`` None (e.g. ``jaxrnn.GRUParams``).
      xs, carry, mask, resets, grad_ys, grad_final: as in :func:`elman`.
      reset_after: the form, as in ``jaxrnn.gru``.

    Returns:
      a :class:`Rollout`.
    """
    if getattr(params, "layer_norm", None) is not None:
        raise NotImplementedError("layer_norm: the oracle covers the GRU without layer norm")
    W_xh, W_hh, b = _f64(params.W_xh), _f64(params.W_hh), _f64(params.b)
    H = W_hh.shape[0]
    W_hh_rz, W_hh_n = W_hh[:, : 2 * H], W_hh[:, 2 * H :]
    b_hn = _f64(params.b_hn) if reset_after else None

    def step(c, x):
        h = c["h"]
        gx = x @ W_xh + b
        rz = sigmoid(gx[:, : 2 * H] + h @ W_hh_rz)
        r, z = rz[:, :H], rz[:, H:]
        if reset_after:
            q = h @ W_hh_n + b_hn
            n = np.tanh(gx[:, 2 * H :] + r * q)
        else:
            n = np.tanh(gx[:, 2 * H :] + (r * h) @ W_hh_n)
        h_new = (1.0 - z) * n + z * h

        def pullback(dc, dy):
            dh_new = dc["h"] + dy
            d_n = dh_new * (1.0 - z) * (1.0 - n**2)
            d_z = dh_new * (h - n) * z * (1.0 - z)
            dh = dh_new * z
            grads = {}
            if reset_after:
                d_r_out, d_q = d_n * q, d_n * r
                grads["b_hn"] = d_q.sum(0)
                dW_hh_n = h.T @ d_q
                dh = dh + d_q @ W_hh_n.T
            else:
                d_rh = d_n @ W_hh_n.T
                d_r_out = d_rh * h
                dW_hh_n = (r * h).T @ d_n
                dh = dh + d_rh * r
            d_r = d_r_out * r * (1.0 - r)
            d_rz = np.concatenate([d_r, d_z], axis=1)
            dh = dh + d_rz @ W_hh_rz.T
            d_gx = np.concatenate([d_r, d_z, d_n], axis=1)
            grads.update(
                W_xh=x.T @ d_gx,
                W_hh=np.concatenate([h.T @ d_rz, dW_hh_n], axis=1),
                b=d_gx.sum(0),
            )
            return {"h": dh}, grads, d_gx @ W_xh.T

        return {"h": h_new}, h_new, pullback

    out = _rollout(step, xs, carry, mask, resets, grad_ys, grad_final)
    return out._replace(d_params=params._replace(**out.d_params))


def lstm(params, xs, carry, *, mask=None, resets=None, grad_ys=None, grad_final=None) -> Rollout:
    """BPTT through the LSTM, with optional peepholes and projection, by hand.

    Forward, gate order (i, f, g, o), ``a = x_t W_xh + h_{t-1} W_hh + b`` and
    ``c = c_{t-1}`` (peephole terms ``w_c* ⊙ ...`` only with peepholes)::

        i = σ(a_i + w_ci ⊙ c)      f = σ(a_f + w_cf ⊙ c)      g = tanh(a_g)
        c_t = f ⊙ c + i ⊙ g        o = σ(a_o + w_co ⊙ c_t)    m = o ⊙ tanh(c_t)
        h_t = m W_hr  (projection)  or  h_t = m,               y_t = h_t

    Backward (Graves 2012, Sec. 4.6, whose ε_c and δ's these are; the projection
    is one more linear layer), with ``ĥ = ĥ_t + ŷ_t``, ``ĉ_t`` the cell state's
    cotangent from later steps and ``δ_k = ∂L/∂(pre-activation of gate k)``::

        m̂ = ĥ W_hrᵀ (or ĥ)            dW_hr = Σ mᵀ ĥ
        δ_o = m̂ ⊙ tanh(c_t) ⊙ o (1 - o)
        ε_c = ĉ_t + m̂ ⊙ o ⊙ (1 - tanh²(c_t)) + δ_o ⊙ w_co
        δ_i = ε_c ⊙ g ⊙ i (1 - i)     δ_f = ε_c ⊙ c ⊙ f (1 - f)     δ_g = ε_c ⊙ i ⊙ (1 - g²)
        ĉ_{t-1} = ε_c ⊙ f + δ_i ⊙ w_ci + δ_f ⊙ w_cf
        ĥ_{t-1} = δ W_hhᵀ             x̂_t = δ W_xhᵀ          (δ = [δ_i, δ_f, δ_g, δ_o])
        dW_xh = Σ xᵀ δ    dW_hh = Σ h_{t-1}ᵀ δ    db = Σ δ
        dw_ci = Σ δ_i ⊙ c    dw_cf = Σ δ_f ⊙ c    dw_co = Σ δ_o ⊙ c_t

    Args:
      params: ``W_xh [I, 4H]``, ``W_hh [P, 4H]``, ``b [4H]``, ``peephole``
        (``w_ci, w_cf, w_co [H]``) or None, ``W_hr [H, P]`` or None, ``layer_norm``
        None (e.g. ``jaxrnn.LSTMParams``).
      xs, mask, resets, grad_ys, grad_final: as in :func:`elman`.
      carry: ``h [B, P]``, ``c [B, H]`` (e.g. ``jaxrnn.LSTMCarry``).

    Returns:
      a :class:`Rollout`.
    """
    if getattr(params, "layer_norm", None) is not None:
        raise NotImplementedError("layer_norm: the oracle covers the LSTM without layer norm")
    W_xh, W_hh, b = _f64(params.W_xh), _f64(params.W_hh), _f64(params.b)
    H = W_xh.shape[1] // 4
    peep = params.peephole is not None
    zero = np.zeros(H)
    w_ci, w_cf, w_co = (
        (_f64(params.peephole.w_ci), _f64(params.peephole.w_cf), _f64(params.peephole.w_co))
        if peep
        else (zero, zero, zero)
    )
    W_hr = None if params.W_hr is None else _f64(params.W_hr)

    def step(carry, x):
        h, c = carry["h"], carry["c"]
        a = x @ W_xh + h @ W_hh + b
        a_i, a_f, a_g, a_o = (a[:, k * H : (k + 1) * H] for k in range(4))
        i, f, g = sigmoid(a_i + w_ci * c), sigmoid(a_f + w_cf * c), np.tanh(a_g)
        c_new = f * c + i * g
        o = sigmoid(a_o + w_co * c_new)
        tc = np.tanh(c_new)
        m = o * tc
        h_new = m if W_hr is None else m @ W_hr

        def pullback(dcarry, dy):
            dh = dcarry["h"] + dy
            grads = {}
            if W_hr is None:
                dm = dh
            else:
                dm = dh @ W_hr.T
                grads["W_hr"] = m.T @ dh
            d_o = dm * tc * o * (1.0 - o)
            eps_c = dcarry["c"] + dm * o * (1.0 - tc**2) + d_o * w_co
            d_i = eps_c * g * i * (1.0 - i)
            d_f = eps_c * c * f * (1.0 - f)
            d_g = eps_c * i * (1.0 - g**2)
            dc = eps_c * f + d_i * w_ci + d_f * w_cf
            delta = np.concatenate([d_i, d_f, d_g, d_o], axis=1)
            grads.update(W_xh=x.T @ delta, W_hh=h.T @ delta, b=delta.sum(0))
            if peep:
                grads.update(
                    w_ci=(d_i * c).sum(0), w_cf=(d_f * c).sum(0), w_co=(d_o * c_new).sum(0)
                )
            return {"h": delta @ W_hh.T, "c": dc}, grads, delta @ W_xh.T

        return {"h": h_new, "c": c_new}, h_new, pullback

    out = _rollout(step, xs, carry, mask, resets, grad_ys, grad_final)
    grads = dict(out.d_params)
    if peep:
        names = ("w_ci", "w_cf", "w_co")
        grads["peephole"] = params.peephole._replace(**{k: grads.pop(k) for k in names})
    return out._replace(d_params=params._replace(**grads))
