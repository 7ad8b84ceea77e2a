"""IndRNN (Li et al. 2018): h_t = relu(x_t W + u ⊙ h_{t-1} + b), one recurrent weight per unit."""

from typing import NamedTuple

import jax
import jax.numpy as jnp

import jaxrnn


class IndRNNParams(NamedTuple):
    W: jax.Array  # [I, H]
    u: jax.Array  # [H]: one recurrent weight per unit
    b: jax.Array  # [H]


class IndRNNCarry(NamedTuple):
    h: jax.Array  # [*batch, H]


def indrnn(hidden_size: int) -> jaxrnn.Cell:
    """IndRNN (Li et al. 2018): h_t = relu(x_t W + u ⊙ h_{t-1} + b)."""

    def init(key, input_size):
        k_w, k_u = jax.random.split(key)
        W = jax.random.normal(k_w, (input_size, hidden_size)) / input_size**0.5
        return IndRNNParams(W, jax.random.uniform(k_u, (hidden_size,)), jnp.zeros(hidden_size))

    def initial_carry(params, batch_shape=(), *, key=None):
        return IndRNNCarry(jnp.zeros((*batch_shape, hidden_size), params.W.dtype))

    def apply(params, carry, x):
        h = jax.nn.relu(x @ params.W + params.u * carry.h + params.b)
        return IndRNNCarry(h), h

    return jaxrnn.Cell(init, initial_carry, apply)
