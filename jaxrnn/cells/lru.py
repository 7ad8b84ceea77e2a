"""The linear recurrent unit (LRU): a complex diagonal linear recurrence.

    λ = exp(−exp(ν_log) + i·exp(θ_log))                 |λ| < 1, phase exp(θ_log)
    h_t = λ ⊙ h_{t-1} + γ ⊙ (x_t B),    γ = exp(γ_log)
    y_t = Re(h_t C) + D ⊙ x_t

with complex ``B = B_re + i·B_im`` and ``C = C_re + i·C_im``. The output has the input's
size ``I``, as in the paper, where the LRU is a residual block's mixing layer: ``C`` maps the
``H`` complex states back to ``I`` features and ``D`` is a skip connection. The state is
complex (``complex64`` for float32 params, ``complex128`` for float64).

Initialisation (Orvieto et al. 2023, Sec. 3.2-3.3):

* ring: ``|λ|`` uniform on the ring ``r_min ≤ |λ| ≤ r_max`` of the complex plane (``|λ|²``
  uniform in ``[r_min², r_max²]``), phase uniform in ``[0, max_phase]``;
* normalisation: ``γ_log = log sqrt(1 − |λ|²)``, so that a white-noise input gives every
  state the input's variance however close ``|λ|`` is to 1; ``γ_log`` is trained;
* ``B_re, B_im ~ N(0, 1/(2I))``, ``C_re, C_im ~ N(0, 1/H)``, ``D ~ N(0, 1)``.

``ν_log, θ_log, γ_log`` are the recurrence's own parameters (``Linear.recurrent``), which the
paper trains with a smaller learning rate and no weight decay (``optim.recurrent_lr``).

Shapes: ``B_re, B_im: [I, H]``, ``C_re, C_im: [H, I]``, ``D: [I]``, ``ν_log, θ_log, γ_log:
[H]`` (row-vector convention, ``x @ B``); carry ``h: [*batch, H]`` complex.

References:
  Orvieto, Smith, Gu, Fernando, Gulcehre, Pascanu, De (2023). Resurrecting Recurrent
  Neural Networks for Long Sequences. ICML. arXiv:2303.06349.
"""

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp

from jaxrnn.cells import registry
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

ORVIETO_2023 = r"""@inproceedings{orvieto2023resurrecting,
  author = {Orvieto, Antonio and Smith, Samuel L. and Gu, Albert and Fernando, Anushan and
    Gulcehre, Caglar and Pascanu, Razvan and De, Soham},
  title = {Resurrecting Recurrent Neural Networks for Long Sequences},
  booktitle = {Proceedings of the 40th International Conference on Machine Learning},
  series = {Proceedings of Machine Learning Research},
  volume = {202},
  pages = {26670--26698},
  year = {2023},
}"""


class LRUParams(NamedTuple):
    """The LRU's parameters (Orvieto et al. 2023), in the paper's names.

    Attributes:
      nu_log: ``[H]``, ``log ν`` with ``|λ| = exp(−ν)``.
      theta_log: ``[H]``, ``log θ`` with ``θ`` the phase of ``λ``.
      gamma_log: ``[H]``, ``log γ``, the input normalisation.
      B_re, B_im: ``[I, H]``, the input matrix's real and imaginary parts.
      C_re, C_im: ``[H, I]``, the output matrix's real and imaginary parts.
      D: ``[I]``, the skip connection.
    """

    nu_log: jax.Array
    theta_log: jax.Array
    gamma_log: jax.Array
    B_re: jax.Array
    B_im: jax.Array
    C_re: jax.Array
    C_im: jax.Array
    D: jax.Array


class LRUCarry(NamedTuple):
    """The LRU's state between steps (Orvieto et al. 2023).

    Attributes:
      h: ``[*batch, H]`` complex, the state.
    """

    h: jax.Array


def complex_dtype(real_dtype) -> jnp.dtype:
    """The complex dtype of a real float's precision: complex64 for float32, else complex128."""
    return jnp.dtype(jnp.complex64 if jnp.finfo(real_dtype).bits <= 32 else jnp.complex128)


def lru(
    hidden_size: int,
    *,
    r_min: float = 0.0,
    r_max: float = 1.0,
    max_phase: float = 2 * math.pi,
    dtype=jnp.float32,
) -> Cell:
    """An LRU cell (see the module docstring for the equations); ``y_t`` has ``x_t``'s size.

    Args:
      hidden_size: ``H``, the number of complex states.
      r_min, r_max: the ring ``r_min ≤ |λ| ≤ r_max`` the eigenvalues start on,
        ``0 ≤ r_min ≤ r_max ≤ 1`` (the paper's long-range tasks use 0.9 and 0.999).
      max_phase: the largest initial phase of ``λ``, ``> 0`` (``π/10`` for long ranges).
      dtype: parameter dtype; the state accumulates in at least float32 precision.

    Example:
      >>> cell = jaxrnn.lru(64, r_min=0.9, r_max=0.999)
      >>> params = cell.init(jax.random.key(0), input_size=32)
      >>> ys = jaxrnn.scan(cell, params, jnp.ones((8, 100, 32)), mode="parallel")[1]  # [8, 100, 32]
    """
    check_positive("hidden_size", hidden_size)
    if not 0.0 <= r_min <= r_max <= 1.0:
        raise ValueError(
            f"r_min, r_max: expected 0 <= r_min <= r_max <= 1, got r_min={r_min}, r_max={r_max}"
        )
    if not max_phase > 0.0:
        raise ValueError(f"max_phase: expected a positive angle, got {max_phase}")
    H = hidden_size

    def init(key, input_size: int) -> LRUParams:
        check_positive("input_size", input_size)
        k_r, k_p, k_bre, k_bim, k_cre, k_cim, k_d = jax.random.split(key, 7)
        acc = carry_dtype(dtype)  # the ring is sampled in at least float32, then cast
        # Clipped off 0 and 1, so that the logs below stay finite for r_min = 0 or r_max = 1.
        tiny, below_one = jnp.finfo(acc).tiny, 1 - jnp.finfo(acc).epsneg
        radius2 = jax.random.uniform(k_r, (H,), acc, r_min**2, r_max**2)
        radius2 = jnp.clip(radius2, tiny, below_one)
        phase = jnp.maximum(jax.random.uniform(k_p, (H,), acc, 0.0, max_phase), tiny)

        def normal(k, shape, std):
            return (std * jax.random.normal(k, shape, acc)).astype(dtype)

        return LRUParams(
            nu_log=jnp.log(-0.5 * jnp.log(radius2)).astype(dtype),
            theta_log=jnp.log(phase).astype(dtype),
            gamma_log=(0.5 * jnp.log1p(-radius2)).astype(dtype),
            B_re=normal(k_bre, (input_size, H), 1 / math.sqrt(2 * input_size)),
            B_im=normal(k_bim, (input_size, H), 1 / math.sqrt(2 * input_size)),
            C_re=normal(k_cre, (H, input_size), 1 / math.sqrt(H)),
            C_im=normal(k_cim, (H, input_size), 1 / math.sqrt(H)),
            D=normal(k_d, (input_size,), 1.0),
        )

    def initial_carry(params: LRUParams, batch_shape=(), *, key=None) -> LRUCarry:
        del key
        acc = carry_dtype(params.nu_log.dtype)
        return LRUCarry(jnp.zeros((*batch_shape, H), complex_dtype(acc)))

    def coefficients(params: LRUParams, x):
        # The parallel engine calls this on xs [T, *batch, I], without apply: check the input
        # size here (x against itself: the batch shapes are apply's and jaxrnn.scan's check).
        check_input(x, params.B_re.shape[0], x)
        acc = carry_dtype(params.nu_log.dtype)
        nu, theta = jnp.exp(params.nu_log.astype(acc)), jnp.exp(params.theta_log.astype(acc))
        lam = jnp.exp(jax.lax.complex(-nu, theta))
        gamma = jnp.exp(params.gamma_log.astype(acc))
        bx = jax.lax.complex(
            gamma * matmul(x, params.B_re, acc), gamma * matmul(x, params.B_im, acc)
        )
        return lam, bx

    def readout(params: LRUParams, h, x):
        acc = carry_dtype(params.nu_log.dtype)
        # Re(h C) = Re(h) C_re − Im(h) C_im
        y = matmul(h.real, params.C_re, acc) - matmul(h.imag, params.C_im, acc)
        return y + params.D.astype(acc) * x.astype(acc)

    linear = Linear(coefficients, readout, recurrent=("nu_log", "theta_log", "gamma_log"))

    def apply(params: LRUParams, carry: LRUCarry, x: jax.Array):
        check_input(x, params.B_re.shape[0], carry.h)
        return apply_linear(linear, params, carry, x)

    return Cell(init, initial_carry, apply, linear=linear)


def references(**settings) -> list[Reference]:
    """What the LRU a config names cites, whatever its ring and phase: Orvieto et al. (2023),
    whose initialisation its settings are."""
    del settings
    return [Reference("linear recurrent unit (LRU)", ORVIETO_2023)]


@registry.register("lru", references=references)
def from_settings(
    hidden_size: int,
    *,
    r_min: float = 0.0,
    r_max: float = 1.0,
    max_phase: float = 2 * math.pi,
) -> Cell:
    """The LRU a config names (``model.cell="lru"``), its eigenvalues initialised on the
    ring ``[r_min, r_max]`` with phases in ``[0, max_phase]``."""
    return lru(hidden_size, r_min=r_min, r_max=r_max, max_phase=max_phase)
