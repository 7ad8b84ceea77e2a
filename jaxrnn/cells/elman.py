"""The Elman (simple) recurrent network.

    h_t = f(x_t W_xh + h_{t-1} W_hh + b),    y_t = h_t

Shapes: ``x_t: [*batch, I]``, ``h_t: [*batch, H]``, ``W_xh: [I, H]``,
``W_hh: [H, H]``, ``b: [H]`` (row-vector convention, ``x @ W``).

References:
  Elman (1990). Finding Structure in Time. Cognitive Science 14(2).
  Le, Jaitly, Hinton (2015). A Simple Way to Initialize Recurrent Networks of
  Rectified Linear Units (IRNN: ReLU with ``recurrent_init=identity(1.0)``).
"""

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp

from jaxrnn.cells import initializers, registry
from jaxrnn.cells.base import (
    Cell,
    Step,
    activation_fn,
    apply_step,
    carry_dtype,
    check_input,
    check_positive,
    matmul,
)
from jaxrnn.cells.references import Reference

ELMAN_1990 = r"""@article{elman1990finding,
  author = {Elman, Jeffrey L.},
  title = {Finding Structure in Time},
  journal = {Cognitive Science},
  volume = {14},
  number = {2},
  pages = {179--211},
  year = {1990},
}"""
# No doi field: its underscore (10.1207/s15516709cog1402_1) breaks natbib's plainnat.bst
# where the url package is not loaded.


class ElmanParams(NamedTuple):
    """The Elman network's weights (Elman 1990): ``h_t = f(x_t W_xh + h_{t-1} W_hh + b)``.

    Attributes:
      W_xh: ``[I, H]``, the input weights.
      W_hh: ``[H, H]``, the recurrent weights.
      b: ``[H]``, the bias.
    """

    W_xh: jax.Array
    W_hh: jax.Array
    b: jax.Array


class ElmanCarry(NamedTuple):
    """The Elman network's state between steps (Elman 1990).

    Attributes:
      h: ``[*batch, H]``, the hidden state (also the output ``y_t``).
    """

    h: jax.Array


def elman(
    hidden_size: int,
    *,
    activation: str | Callable[[jax.Array], jax.Array] = "tanh",
    input_init: initializers.Initializer = initializers.glorot_uniform(),
    recurrent_init: initializers.Initializer = initializers.orthogonal(),
    bias_init: initializers.Initializer = initializers.zeros,
    dtype=jnp.float32,
) -> Cell:
    """An Elman RNN cell.

    Args:
      hidden_size: ``H``.
      activation: ``"tanh"``, ``"relu"``, ``"sigmoid"``, ``"identity"`` (see
        ``jaxrnn.ACTIVATIONS``) or any callable ``f(z) -> z``.
      input_init, recurrent_init, bias_init: initialisers for ``W_xh``, ``W_hh``, ``b``.
      dtype: parameter dtype; the state accumulates in at least float32.

    Example:
      >>> cell = jaxrnn.elman(64, activation="relu", recurrent_init=jaxrnn.initializers.identity())
      >>> params = cell.init(jax.random.key(0), input_size=8)
    """
    check_positive("hidden_size", hidden_size)
    f = activation_fn(activation)

    def init(key, input_size: int) -> ElmanParams:
        check_positive("input_size", input_size)
        k_x, k_h, k_b = jax.random.split(key, 3)
        return ElmanParams(
            W_xh=input_init(k_x, (input_size, hidden_size), dtype),
            W_hh=recurrent_init(k_h, (hidden_size, hidden_size), dtype),
            b=bias_init(k_b, (hidden_size,), dtype),
        )

    def initial_carry(params: ElmanParams, batch_shape=(), *, key=None) -> ElmanCarry:
        del key
        return ElmanCarry(jnp.zeros((*batch_shape, hidden_size), carry_dtype(params.W_hh.dtype)))

    # The step in the fused engine's pieces (jaxrnn.cells.base.Step); apply is their composition.
    def project(params: ElmanParams, carry: ElmanCarry, x: jax.Array):
        return matmul(x, params.W_xh, carry.h.dtype)

    def recur(params: ElmanParams, carry: ElmanCarry):
        return matmul(carry.h, params.W_hh, carry.h.dtype)

    def update(params: ElmanParams, carry: ElmanCarry, u, r):
        h = f(u + r + params.b.astype(carry.h.dtype))
        return ElmanCarry(h), h

    step = Step(project, recur, update)

    def apply(params: ElmanParams, carry: ElmanCarry, x: jax.Array):
        check_input(x, params.W_xh.shape[0], carry.h)
        return apply_step(step, params, carry, x)

    return Cell(init, initial_carry, apply, step)


def references(
    *, activation: str = "tanh", recurrent_init: str = "orthogonal", identity_scale: float = 1.0
) -> list[Reference]:
    """The methods of the Elman cell a config names (:func:`from_settings`), with their
    papers: the Elman network (Elman 1990) and its recurrent initialiser, which with
    ``"identity"`` and ReLU makes the IRNN (Le et al. 2015)."""
    del identity_scale  # the identity initialiser's scale: the same reference
    init = initializers.recurrent_reference(recurrent_init)
    if recurrent_init == "identity" and activation == "relu":
        init = init._replace(method="IRNN: ReLU with identity-initialised recurrent weights")
    return [Reference("Elman network", ELMAN_1990), init]


@registry.register("elman", references=references)
def from_settings(
    hidden_size: int,
    *,
    activation: str = "tanh",
    recurrent_init: str = "orthogonal",
    identity_scale: float = 1.0,
) -> Cell:
    """The Elman cell a config names (``model.cell="elman"``), with ``W_hh`` initialised
    by :func:`jaxrnn.initializers.recurrent` (``"identity"`` with ReLU: the IRNN)."""
    init = initializers.recurrent(recurrent_init, identity_scale)
    return elman(hidden_size, activation=activation, recurrent_init=init)
