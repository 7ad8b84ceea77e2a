"""Long short-term memory (LSTM), with optional peepholes, projection and layer norm.

Gate order in the fused matrices is (i, f, g, o), as in cuDNN and PyTorch.
With ``a = x_t W_xh + h_{t-1} W_hh + b`` split into (i, f, g, o) blocks:

    i_t = σ(a_i + w_ci ⊙ c_{t-1})       input gate  (peephole term optional)
    f_t = σ(a_f + w_cf ⊙ c_{t-1})       forget gate
    g_t = tanh(a_g)                     candidate
    c_t = f_t ⊙ c_{t-1} + i_t ⊙ g_t
    o_t = σ(a_o + w_co ⊙ c_t)           output gate
    m_t = o_t ⊙ tanh(c_t)
    h_t = m_t W_hr  (projection, LSTMP)  or  h_t = m_t,     y_t = h_t

With ``layer_norm=True`` (Ba et al. 2016, Eq. 20-22)
``a = LN(x_t W_xh) + LN(h_{t-1} W_hh) + b`` and ``m_t = o_t ⊙ tanh(LN(c_t))``.

Shapes: ``W_xh: [I, 4H]``, ``W_hh: [P, 4H]``, ``b: [4H]``, ``W_hr: [H, P]``, where
``P = projection_size`` or ``H``; carry ``h: [*batch, P]``, ``c: [*batch, H]``.

References:
  Hochreiter, Schmidhuber (1997). Long Short-Term Memory. Neural Computation.
  Gers, Schmidhuber, Cummins (2000). Learning to Forget. Neural Computation.
  Gers, Schmidhuber (2000). Recurrent nets that time and count (peepholes). IJCNN.
  Sak, Senior, Beaufays (2014). Long Short-Term Memory Recurrent Neural Network
  Architectures for Large Scale Acoustic Modeling (LSTMP). Interspeech.
  Ba, Kiros, Hinton (2016). Layer Normalization. arXiv:1607.06450.
"""

from typing import NamedTuple

import jax
import jax.numpy as jnp

from jaxrnn.cells import initializers, registry
from jaxrnn.cells import layer_norm as ln
from jaxrnn.cells.base import (
    Cell,
    Step,
    apply_step,
    carry_dtype,
    check_input,
    check_positive,
    matmul,
)
from jaxrnn.cells.references import Reference

HOCHREITER_1997 = r"""@article{hochreiter1997long,
  author = {Hochreiter, Sepp and Schmidhuber, J{\"u}rgen},
  title = {Long Short-Term Memory},
  journal = {Neural Computation},
  volume = {9},
  number = {8},
  pages = {1735--1780},
  year = {1997},
  doi = {10.1162/neco.1997.9.8.1735},
}"""
GERS_2000 = r"""@article{gers2000learning,
  author = {Gers, Felix A. and Schmidhuber, J{\"u}rgen and Cummins, Fred},
  title = {Learning to Forget: Continual Prediction with {LSTM}},
  journal = {Neural Computation},
  volume = {12},
  number = {10},
  pages = {2451--2471},
  year = {2000},
  doi = {10.1162/089976600300015015},
}"""


class LSTMPeephole(NamedTuple):
    """The LSTM's diagonal peephole weights, cell state to gates (Gers & Schmidhuber 2000).

    Attributes:
      w_ci: ``[H]``, from ``c_{t-1}`` into the input gate.
      w_cf: ``[H]``, from ``c_{t-1}`` into the forget gate.
      w_co: ``[H]``, from ``c_t`` into the output gate.
    """

    w_ci: jax.Array
    w_cf: jax.Array
    w_co: jax.Array


class LSTMLayerNorm(NamedTuple):
    """The layer-normalised LSTM's layer norms (Ba et al. 2016, Eq. 20-22).

    Attributes:
      x: over ``x_t W_xh``; gain and bias ``[4H]``.
      h: over ``h_{t-1} W_hh``; gain and bias ``[4H]``.
      c: over ``c_t``, before the output's ``tanh``; gain and bias ``[H]``.
    """

    x: ln.LayerNormParams
    h: ln.LayerNormParams
    c: ln.LayerNormParams


class LSTMParams(NamedTuple):
    """The LSTM's weights (Hochreiter & Schmidhuber 1997), gates fused in order (i, f, g, o).

    Attributes:
      W_xh: ``[I, 4H]``, the input weights.
      W_hh: ``[P, 4H]``, the recurrent weights (``P = projection_size`` or ``H``).
      b: ``[4H]``, the gate biases.
      peephole: an :class:`LSTMPeephole` with ``peephole=True``; else None.
      W_hr: ``[H, P]``, the LSTMP projection (Sak et al. 2014); None without one.
      layer_norm: an :class:`LSTMLayerNorm` with ``layer_norm=True``; else None.
    """

    W_xh: jax.Array
    W_hh: jax.Array
    b: jax.Array
    peephole: LSTMPeephole | None = None
    W_hr: jax.Array | None = None
    layer_norm: LSTMLayerNorm | None = None


class LSTMCarry(NamedTuple):
    """The LSTM's state between steps (Hochreiter & Schmidhuber 1997).

    Attributes:
      h: ``[*batch, P]``, the output (``P = projection_size`` or ``H``).
      c: ``[*batch, H]``, the cell state.
    """

    h: jax.Array
    c: jax.Array


def lstm(
    hidden_size: int,
    *,
    forget_bias: float = 1.0,
    peephole: bool = False,
    projection_size: int | None = None,
    layer_norm: bool = False,
    input_init: initializers.Initializer = initializers.fused(*[initializers.glorot_uniform()] * 4),
    recurrent_init: initializers.Initializer = initializers.fused(*[initializers.orthogonal()] * 4),
    bias_init: initializers.Initializer | None = None,
    peephole_init: initializers.Initializer = initializers.zeros,
    projection_init: initializers.Initializer = initializers.glorot_uniform(),
    dtype=jnp.float32,
) -> Cell:
    """An LSTM cell (see the module docstring for the equations).

    Args:
      hidden_size: ``H``, the size of the cell state.
      forget_bias: initial forget-gate bias (1.0: Gers et al. 2000; Jozefowicz et al. 2015).
        Ignored when ``bias_init`` is given.
      peephole: add the diagonal peephole connections ``w_ci, w_cf, w_co``.
      projection_size: ``P``; project ``h`` to ``P`` units (LSTMP). ``None``: no projection.
      layer_norm: layer-normalised LSTM (Ba et al. 2016).
      input_init, recurrent_init: initialisers for the fused ``W_xh`` and ``W_hh``
        (default: Glorot and orthogonal, per gate block).
      bias_init: initialiser for the fused ``b`` (e.g. ``initializers.chrono_lstm_bias(T)``);
        default ``initializers.lstm_bias(forget_bias)``.
      peephole_init, projection_init: initialisers for the peepholes and ``W_hr``.
      dtype: parameter dtype; the state accumulates in at least float32.

    Example:
      >>> cell = jaxrnn.lstm(128, projection_size=64)
      >>> params = cell.init(jax.random.key(0), input_size=32)
      >>> carry = cell.initial_carry(params, batch_shape=(8,))
      >>> carry, y = cell.apply(params, carry, jnp.ones((8, 32)))   # y: [8, 64]
    """
    check_positive("hidden_size", hidden_size)
    if projection_size is not None:
        check_positive("projection_size", projection_size)
    H = hidden_size
    P = projection_size or hidden_size
    if bias_init is None:
        bias_init = initializers.lstm_bias(forget_bias)

    def init(key, input_size: int) -> LSTMParams:
        check_positive("input_size", input_size)
        k_x, k_h, k_b, k_p, k_r = jax.random.split(key, 5)
        peep = None
        if peephole:
            kp = jax.random.split(k_p, 3)
            peep = LSTMPeephole(*(peephole_init(k, (H,), dtype) for k in kp))
        norms = None
        if layer_norm:
            norms = LSTMLayerNorm(ln.init(4 * H, dtype), ln.init(4 * H, dtype), ln.init(H, dtype))
        return LSTMParams(
            W_xh=input_init(k_x, (input_size, 4 * H), dtype),
            W_hh=recurrent_init(k_h, (P, 4 * H), dtype),
            b=bias_init(k_b, (4 * H,), dtype),
            peephole=peep,
            W_hr=projection_init(k_r, (H, P), dtype) if projection_size else None,
            layer_norm=norms,
        )

    def initial_carry(params: LSTMParams, batch_shape=(), *, key=None) -> LSTMCarry:
        del key
        acc = carry_dtype(params.W_hh.dtype)
        return LSTMCarry(h=jnp.zeros((*batch_shape, P), acc), c=jnp.zeros((*batch_shape, H), acc))

    # The step in the fused engine's pieces (jaxrnn.cells.base.Step); apply is their
    # composition. The LSTMP projection h = m W_hr is a matmul inside the row-wise
    # update: its gradient accumulates step by step, as under autodiff.
    def project(params: LSTMParams, carry: LSTMCarry, x: jax.Array):
        return matmul(x, params.W_xh, carry.h.dtype)

    def recur(params: LSTMParams, carry: LSTMCarry):
        return matmul(carry.h, params.W_hh, carry.h.dtype)

    def update(params: LSTMParams, carry: LSTMCarry, ax, ah):
        c = carry.c
        acc = carry.h.dtype
        if params.layer_norm is not None:
            ax = ln.apply(params.layer_norm.x, ax)
            ah = ln.apply(params.layer_norm.h, ah)
        a = ax + ah + params.b.astype(acc)
        a_i, a_f, a_g, a_o = jnp.split(a, 4, axis=-1)  # not slices: see the GRU's update
        if params.peephole is not None:
            a_i = a_i + params.peephole.w_ci.astype(acc) * c
            a_f = a_f + params.peephole.w_cf.astype(acc) * c
        c = jax.nn.sigmoid(a_f) * c + jax.nn.sigmoid(a_i) * jnp.tanh(a_g)
        if params.peephole is not None:
            a_o = a_o + params.peephole.w_co.astype(acc) * c
        c_out = ln.apply(params.layer_norm.c, c) if params.layer_norm is not None else c
        h = jax.nn.sigmoid(a_o) * jnp.tanh(c_out)
        if params.W_hr is not None:
            h = matmul(h, params.W_hr, acc)
        return LSTMCarry(h, c), h

    step = Step(project, recur, update)

    def apply(params: LSTMParams, carry: LSTMCarry, x: jax.Array):
        check_input(x, params.W_xh.shape[0], carry.h)
        return apply_step(step, params, carry, x)

    return Cell(init, initial_carry, apply, step)


def forget_bias_references(forget_bias: float) -> list[Reference]:
    """What a forget-gate bias initialised to ``forget_bias`` cites: nothing for 0 (the
    default of a zero bias), else Gers et al. (2000) and Jozefowicz et al. (2015)."""
    if forget_bias == 0.0:
        return []
    method = f"forget-gate bias initialised to {forget_bias:g}"
    return [Reference(method, GERS_2000), Reference(method, initializers.JOZEFOWICZ_2015)]


def references(
    *,
    forget_bias: float = 1.0,
    layer_norm: bool = False,
    recurrent_init: str = "orthogonal",
    identity_scale: float = 1.0,
    chrono_t_max: float | None = None,
) -> list[Reference]:
    """The methods of the LSTM a config names (:func:`from_settings`), with their papers.

    The LSTM (Hochreiter & Schmidhuber 1997) with its forget gate (Gers et al. 2000,
    which this cell always has); its recurrent initialiser; chrono initialisation
    (Tallec & Ollivier 2018) where ``chrono_t_max`` is set, else a non-zero forget-gate
    bias (:func:`forget_bias_references`; chrono replaces that bias); layer norm
    (Ba et al. 2016) where on.
    """
    del identity_scale  # the identity initialiser's scale: the same reference
    found = [Reference("LSTM", HOCHREITER_1997), Reference("LSTM forget gate", GERS_2000)]
    found.append(initializers.recurrent_reference(recurrent_init))
    found += [initializers.CHRONO] if chrono_t_max else forget_bias_references(forget_bias)
    if layer_norm:
        found.append(ln.REFERENCE)
    return found


@registry.register("lstm", references=references)
def from_settings(
    hidden_size: int,
    *,
    forget_bias: float = 1.0,
    layer_norm: bool = False,
    recurrent_init: str = "orthogonal",
    identity_scale: float = 1.0,
    chrono_t_max: float | None = None,
) -> Cell:
    """The LSTM a config names (``model.cell="lstm"``): ``W_hh`` initialised per gate
    (:func:`jaxrnn.initializers.recurrent`), forget-gate bias ``forget_bias`` or, with
    ``chrono_t_max``, chrono initialisation (Tallec & Ollivier 2018)."""
    bias = initializers.chrono_lstm_bias(chrono_t_max) if chrono_t_max else None
    return lstm(
        hidden_size,
        forget_bias=forget_bias,
        layer_norm=layer_norm,
        recurrent_init=initializers.recurrent(recurrent_init, identity_scale, gates=4),
        bias_init=bias,
    )
