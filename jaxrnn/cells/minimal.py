"""minGRU and minLSTM: gated recurrences whose gates read only the input, in log space.

Without ``h_{t-1}`` in the gates each step is ``h_t = a_t ⊙ h_{t-1} + b_t`` with
``a_t, b_t > 0`` from ``x_t`` alone, so the rollout is a parallel scan of
``(log a_t, log b_t)`` (Heinsen 2023). With ``k = x_t W + b`` split into blocks and
``g(x) = x + 0.5`` for ``x ≥ 0``, ``σ(x)`` otherwise (positive, continuous):

minGRU, ``k = (k_z, k_h)``::

    z_t = σ(k_z),   h̃_t = g(k_h),   h_t = (1 − z_t) ⊙ h_{t-1} + z_t ⊙ h̃_t
    log a_t = log(1 − z_t) = −softplus(k_z)
    log b_t = log z_t + log h̃_t = −softplus(−k_z) + log g(k_h)

minLSTM, ``k = (k_f, k_i, k_h)``, with the gates normalised to sum to one::

    f_t = σ(k_f),   i_t = σ(k_i),   f'_t = f_t / (f_t + i_t),   i'_t = i_t / (f_t + i_t)
    h_t = f'_t ⊙ h_{t-1} + i'_t ⊙ g(k_h)
    diff = softplus(−k_f) − softplus(−k_i)          (= log(i_t / f_t))
    log a_t = log f'_t = −softplus(diff)
    log b_t = log i'_t + log g(k_h) = −softplus(−diff) + log g(k_h)

as in the paper's log-space code. The output is the state, ``y_t = h_t``. The initial
carry enters the parallel scan outside the logarithms, so it may have any sign (the
paper's code takes ``log g(h_0)``).

Shapes: ``W: [I, 2H]`` (minGRU, blocks z, h) or ``[I, 3H]`` (minLSTM, blocks f, i, h),
``b: [2H]`` or ``[3H]``; carry ``h: [*batch, H]``.

References:
  Feng, Tung, Ahmed, Bengio, Hajimirsadeghi (2024). Were RNNs All We Needed?
  arXiv:2410.01201.
  Heinsen (2023). Efficient Parallelization of a Ubiquitous Sequential Computation.
  arXiv:2311.06281.
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

FENG_2024 = r"""@misc{feng2024were,
  author = {Feng, Leo and Tung, Frederick and Ahmed, Mohamed Osama and Bengio, Yoshua and
    Hajimirsadeghi, Hossein},
  title = {Were {RNNs} All We Needed?},
  howpublished = {arXiv:2410.01201},
  year = {2024},
  url = {https://arxiv.org/abs/2410.01201},
}"""

# PyTorch's nn.Linear weight initialisation, U(±1/sqrt(I)), which the paper's code uses.
TORCH_LINEAR = jax.nn.initializers.variance_scaling(1 / 3, "fan_in", "uniform")


class MinGRUParams(NamedTuple):
    """minGRU's weights (Feng et al. 2024), blocks fused in the order (z, h̃).

    Attributes:
      W: ``[I, 2H]``, the input weights of the update gate and the candidate.
      b: ``[2H]``, their biases.
    """

    W: jax.Array
    b: jax.Array


class MinLSTMParams(NamedTuple):
    """minLSTM's weights (Feng et al. 2024), blocks fused in the order (f, i, h̃).

    Attributes:
      W: ``[I, 3H]``, the input weights of the forget and input gates and the candidate.
      b: ``[3H]``, their biases.
    """

    W: jax.Array
    b: jax.Array


class MinimalCarry(NamedTuple):
    """The state of minGRU and minLSTM between steps (Feng et al. 2024).

    Attributes:
      h: ``[*batch, H]``, the hidden state (also the output ``y_t``).
    """

    h: jax.Array


def log_g(x: jax.Array) -> jax.Array:
    """``log g(x)`` for ``g(x) = x + 0.5`` (``x ≥ 0``), ``σ(x)`` (``x < 0``): both branches
    are finite everywhere, so the ``where`` has finite gradients."""
    return jnp.where(x >= 0, jnp.log(jax.nn.relu(x) + 0.5), -jax.nn.softplus(-x))


def _minimal(hidden_size, blocks, log_coefficients, params_type, input_init, bias_init, dtype):
    """The cell of a minimal RNN whose ``blocks`` fused gate blocks of ``k = x W + b`` give
    ``(log a, log b) = log_coefficients(*blocks of k)``; ``y_t = h_t``."""
    check_positive("hidden_size", hidden_size)
    H = hidden_size

    def init(key, input_size: int):
        check_positive("input_size", input_size)
        k_w, k_b = jax.random.split(key)
        return params_type(
            W=input_init(k_w, (input_size, blocks * H), dtype),
            b=bias_init(k_b, (blocks * H,), dtype),
        )

    def initial_carry(params, batch_shape=(), *, key=None) -> MinimalCarry:
        del key
        return MinimalCarry(jnp.zeros((*batch_shape, H), carry_dtype(params.W.dtype)))

    def coefficients(params, x):
        # The parallel engine calls this on xs [T, *batch, I], without apply: check the input
        # size here (x against itself: the batch shapes are apply's and jaxrnn.scan's check).
        check_input(x, params.W.shape[0], x)
        acc = carry_dtype(params.W.dtype)
        k = matmul(x, params.W, acc) + params.b.astype(acc)
        return log_coefficients(*(k[..., j * H : (j + 1) * H] for j in range(blocks)))

    def readout(params, h, x):
        return h

    linear = Linear(coefficients, readout, log_space=True)

    def apply(params, carry: MinimalCarry, x: jax.Array):
        check_input(x, params.W.shape[0], carry.h)
        return apply_linear(linear, params, carry, x)

    return Cell(init, initial_carry, apply, linear=linear)


def min_gru(
    hidden_size: int,
    *,
    input_init: initializers.Initializer = TORCH_LINEAR,
    bias_init: initializers.Initializer = initializers.zeros,
    dtype=jnp.float32,
) -> Cell:
    """A minGRU cell (see the module docstring for the equations), ``y_t = h_t``.

    Args:
      hidden_size: ``H``.
      input_init, bias_init: initialisers for the fused ``W [I, 2H]`` and ``b [2H]``.
      dtype: parameter dtype; the state accumulates in at least float32.

    Example:
      >>> cell = jaxrnn.min_gru(64)
      >>> params = cell.init(jax.random.key(0), input_size=32)
      >>> ys = jaxrnn.scan(cell, params, jnp.ones((8, 100, 32)), mode="parallel")[1]  # [8, 100, 64]
    """

    def log_coefficients(k_z, k_h):
        return -jax.nn.softplus(k_z), -jax.nn.softplus(-k_z) + log_g(k_h)

    return _minimal(hidden_size, 2, log_coefficients, MinGRUParams, input_init, bias_init, dtype)


def min_lstm(
    hidden_size: int,
    *,
    input_init: initializers.Initializer = TORCH_LINEAR,
    bias_init: initializers.Initializer = initializers.zeros,
    dtype=jnp.float32,
) -> Cell:
    """A minLSTM cell (see the module docstring for the equations), ``y_t = h_t``.

    Args:
      hidden_size: ``H``.
      input_init, bias_init: initialisers for the fused ``W [I, 3H]`` and ``b [3H]``.
      dtype: parameter dtype; the state accumulates in at least float32.

    Example:
      >>> cell = jaxrnn.min_lstm(64)
      >>> params = cell.init(jax.random.key(0), input_size=32)
    """

    def log_coefficients(k_f, k_i, k_h):
        diff = jax.nn.softplus(-k_f) - jax.nn.softplus(-k_i)
        return -jax.nn.softplus(diff), -jax.nn.softplus(-diff) + log_g(k_h)

    return _minimal(hidden_size, 3, log_coefficients, MinLSTMParams, input_init, bias_init, dtype)


def min_gru_references() -> list[Reference]:
    """What the minGRU a config names cites: Feng et al. (2024)."""
    return [Reference("minGRU", FENG_2024)]


def min_lstm_references() -> list[Reference]:
    """What the minLSTM a config names cites: Feng et al. (2024)."""
    return [Reference("minLSTM", FENG_2024)]


@registry.register("min_gru", references=min_gru_references)
def min_gru_from_settings(hidden_size: int) -> Cell:
    """The minGRU a config names (``model.cell="min_gru"``); it has no settings."""
    return min_gru(hidden_size)


@registry.register("min_lstm", references=min_lstm_references)
def min_lstm_from_settings(hidden_size: int) -> Cell:
    """The minLSTM a config names (``model.cell="min_lstm"``); it has no settings."""
    return min_lstm(hidden_size)
