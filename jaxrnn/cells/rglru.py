"""The real-gated linear recurrent unit (RG-LRU) of Griffin and Hawk.

    r_t = σ(x_t W_a + b_a)                      recurrence gate
    i_t = σ(x_t W_x + b_x)                      input gate
    log a_t = −c · softplus(−Λ) ⊙ r_t           a_t = σ(Λ)^(c r_t), in (0, 1)
    h_t = a_t ⊙ h_{t-1} + sqrt(1 − a_t²) ⊙ (i_t ⊙ (x_t W_u)),      y_t = h_t

with ``c = 8``. In Griffin the RG-LRU runs on an input already projected (and passed
through a short convolution) by its residual block; here that projection ``W_u`` is folded
into the cell, so that it reads any ``x_t`` like the other cells. ``sqrt(1 − a_t²)`` is
computed as ``sqrt(−expm1(2 log a_t))``, accurate for ``a_t`` near 1, where ``1 − a_t²``
would cancel.

Initialisation: ``Λ`` such that ``a^c = σ(Λ)^c`` is uniform in ``[0.9, 0.999]``, as the
paper's text says (De et al. 2024, Sec. 2.4); the released code (recurrentgemma's
``rnn_param_init``) instead draws ``a²`` uniform in ``[0.9², 0.999²]``, so its ``a`` rather
than ``a^c`` lies in that range. ``W_a, W_x, W_u`` LeCun normal, biases zero. ``Λ`` is the
recurrence's own parameter (``Linear.recurrent``, for ``optim.recurrent_lr``).

Shapes: ``W_a, W_x, W_u: [I, H]``, ``b_a, b_x, Λ: [H]``; carry ``h: [*batch, H]``.

References:
  De, Smith, Fernando, Botev, Cristian-Muraru, Gu, Haroun, Berrada, Chen, Srinivasan,
  Desjardins, Doucet, Budden, Teh, Pascanu, De Freitas, Gulcehre (2024). Griffin: Mixing
  Gated Linear Recurrences with Local Attention for Efficient Language Models.
  arXiv:2402.19427.
"""

from typing import NamedTuple

import jax
import jax.numpy as jnp

from jaxrnn.cells import initializers, registry
from jaxrnn.cells.base import (
    Cell,
    Linear,
    apply_linear,
    carry_dtype,
    check_input,
    check_positive,
    matmul,
)
from jaxrnn.cells.references import Reference

DE_2024 = r"""@misc{de2024griffin,
  author = {De, Soham and Smith, Samuel L. and Fernando, Anushan and Botev, Aleksandar and
    Cristian-Muraru, George and Gu, Albert and Haroun, Ruba and Berrada, Leonard and
    Chen, Yutian and Srinivasan, Srivatsan and Desjardins, Guillaume and Doucet, Arnaud and
    Budden, David and Teh, Yee Whye and Pascanu, Razvan and De Freitas, Nando and
    Gulcehre, Caglar},
  title = {Griffin: Mixing Gated Linear Recurrences with Local Attention for Efficient
    Language Models},
  howpublished = {arXiv:2402.19427},
  year = {2024},
  url = {https://arxiv.org/abs/2402.19427},
}"""

# The range of a^c at initialisation (De et al. 2024, Sec. 2.4).
A_C_MIN, A_C_MAX = 0.9, 0.999


class RGLRUParams(NamedTuple):
    """The RG-LRU's weights (De et al. 2024), in the paper's names.

    Attributes:
      W_a, b_a: ``[I, H]``, ``[H]``, the recurrence gate.
      W_x, b_x: ``[I, H]``, ``[H]``, the input gate.
      W_u: ``[I, H]``, the input projection (Griffin's block applies it outside the RG-LRU).
      Lambda: ``[H]``, ``Λ``, with ``a = σ(Λ)``.
    """

    W_a: jax.Array
    b_a: jax.Array
    W_x: jax.Array
    b_x: jax.Array
    W_u: jax.Array
    Lambda: jax.Array


class RGLRUCarry(NamedTuple):
    """The RG-LRU's state between steps (De et al. 2024).

    Attributes:
      h: ``[*batch, H]``, the hidden state (also the output ``y_t``).
    """

    h: jax.Array


def rg_lru(
    hidden_size: int,
    *,
    c: float = 8.0,
    input_init: initializers.Initializer = initializers.lecun_normal(),
    dtype=jnp.float32,
) -> Cell:
    """An RG-LRU cell (see the module docstring for the equations), ``y_t = h_t``.

    Args:
      hidden_size: ``H``.
      c: the constant that sharpens the gated decay ``a^(c r_t)`` (8 in the paper), ``> 0``.
      input_init: initialiser for ``W_a``, ``W_x`` and ``W_u``.
      dtype: parameter dtype; the state accumulates in at least float32.

    Example:
      >>> cell = jaxrnn.rg_lru(64)
      >>> params = cell.init(jax.random.key(0), input_size=32)
    """
    check_positive("hidden_size", hidden_size)
    if not c > 0:
        raise ValueError(f"c: expected a positive number, got {c}")
    H = hidden_size

    def init(key, input_size: int) -> RGLRUParams:
        check_positive("input_size", input_size)
        k_a, k_x, k_u, k_l = jax.random.split(key, 4)
        acc = carry_dtype(dtype)
        # a^c ~ U[0.9, 0.999] and a = σ(Λ): Λ = logit(a) = −log(1/a − 1) = −log(expm1(−log a)).
        log_a = jnp.log(jax.random.uniform(k_l, (H,), acc, A_C_MIN, A_C_MAX)) / c
        return RGLRUParams(
            W_a=input_init(k_a, (input_size, H), dtype),
            b_a=jnp.zeros((H,), dtype),  # two buffers, not one: params may be donated
            W_x=input_init(k_x, (input_size, H), dtype),
            b_x=jnp.zeros((H,), dtype),
            W_u=input_init(k_u, (input_size, H), dtype),
            Lambda=(-jnp.log(jnp.expm1(-log_a))).astype(dtype),
        )

    def initial_carry(params: RGLRUParams, batch_shape=(), *, key=None) -> RGLRUCarry:
        del key
        return RGLRUCarry(jnp.zeros((*batch_shape, H), carry_dtype(params.W_u.dtype)))

    def coefficients(params: RGLRUParams, x):
        # The parallel engine calls this on xs [T, *batch, I], without apply: check the input
        # size here (x against itself: the batch shapes are apply's and jaxrnn.scan's check).
        check_input(x, params.W_u.shape[0], x)
        acc = carry_dtype(params.W_u.dtype)
        r = jax.nn.sigmoid(matmul(x, params.W_a, acc) + params.b_a.astype(acc))
        i = jax.nn.sigmoid(matmul(x, params.W_x, acc) + params.b_x.astype(acc))
        log_a = -c * jax.nn.softplus(-params.Lambda.astype(acc)) * r
        # Floored at the smallest normal number: sqrt's derivative is infinite at 0, which
        # a_t = 1 reaches only when r_t or softplus(−Λ) underflows.
        multiplier = jnp.sqrt(jnp.maximum(-jnp.expm1(2 * log_a), jnp.finfo(acc).tiny))
        return jnp.exp(log_a), multiplier * (i * matmul(x, params.W_u, acc))

    def readout(params, h, x):
        return h

    linear = Linear(coefficients, readout, recurrent=("Lambda",))

    def apply(params: RGLRUParams, carry: RGLRUCarry, x: jax.Array):
        check_input(x, params.W_u.shape[0], carry.h)
        return apply_linear(linear, params, carry, x)

    return Cell(init, initial_carry, apply, linear=linear)


def references() -> list[Reference]:
    """What the RG-LRU a config names cites: De et al. (2024)."""
    return [Reference("real-gated linear recurrent unit (RG-LRU)", DE_2024)]


@registry.register("rg_lru", references=references)
def from_settings(hidden_size: int) -> Cell:
    """The RG-LRU a config names (``model.cell="rg_lru"``), with the paper's ``c = 8``."""
    return rg_lru(hidden_size)
