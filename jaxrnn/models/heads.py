"""Input and output maps shared by the sequence models: embeddings, linear and MLP heads.

Each is a NamedTuple of arrays with a pure ``*_init`` and a pure apply function::

    embed(Embedding(table [V, E]), tokens [*batch])      -> [*batch, E]
    linear(Linear(W [D, O], b [O]), h [*batch, D])        -> [*batch, O]
    mlp(MLP(hidden, output), h [*batch, D])               -> [*batch, O]
"""

import math
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp

from jaxrnn.cells import initializers
from jaxrnn.cells.base import activation_fn, check_positive


class Linear(NamedTuple):
    """A linear map's params: ``h @ W + b``.

    Attributes:
      W: ``[D, O]``, the weights.
      b: ``[O]``, the bias.
    """

    W: jax.Array
    b: jax.Array


class Embedding(NamedTuple):
    """An embedding table.

    Attributes:
      table: ``[V, E]``; row ``v`` is the vector of token ``v``.
    """

    table: jax.Array


class MLP(NamedTuple):
    """A one-hidden-layer head's params: ``W_o f(W_h h + b_h) + b_o`` (see :func:`mlp`).

    Attributes:
      hidden: the hidden layer ``(W_h, b_h)``, ``W: [D, M]``.
      output: the output layer ``(W_o, b_o)``, ``W: [M, O]``.
    """

    hidden: Linear
    output: Linear


def linear_init(key: jax.Array, input_size: int, output_size: int, dtype=jnp.float32) -> Linear:
    """Glorot-uniform weights and zero biases (Glorot, Bengio 2010)."""
    check_positive("input_size", input_size)
    check_positive("output_size", output_size)
    return Linear(
        W=initializers.glorot_uniform()(key, (input_size, output_size), dtype),
        b=jnp.zeros((output_size,), dtype),
    )


def linear(params: Linear, h: jax.Array) -> jax.Array:
    """``h @ W + b`` in ``h``'s dtype: ``[*batch, D] -> [*batch, O]``."""
    if h.shape[-1] != params.W.shape[0]:
        raise ValueError(
            f"h: expected shape [*batch, {params.W.shape[0]}] (the rows of W), got {tuple(h.shape)}"
        )
    return h @ params.W.astype(h.dtype) + params.b.astype(h.dtype)


def embedding_init(key: jax.Array, vocab_size: int, embedding_size: int, dtype=jnp.float32):
    """A ``[V, E]`` table drawn from N(0, 1), the scale of Flax's ``nn.Embed``."""
    check_positive("vocab_size", vocab_size)
    check_positive("embedding_size", embedding_size)
    return Embedding(jax.random.normal(key, (vocab_size, embedding_size), dtype))


def embed(params: Embedding, tokens: jax.Array) -> jax.Array:
    """Look up token vectors: ``tokens [*batch]`` (ints in ``[0, V)``) ``-> [*batch, E]``."""
    tokens = jnp.asarray(tokens)
    if not jnp.issubdtype(tokens.dtype, jnp.integer):
        raise TypeError(f"tokens: expected an integer array, got dtype {tokens.dtype}")
    return jnp.take(params.table, tokens, axis=0)


def mlp_init(key, input_size: int, hidden_size: int, output_size: int, dtype=jnp.float32) -> MLP:
    """An :class:`MLP` ``D -> M -> O``, each layer as :func:`linear_init` (Glorot, zero bias).

    Args:
      key: PRNG key.
      input_size, hidden_size, output_size: ``D``, ``M``, ``O``.
      dtype: parameter dtype.
    """
    k_h, k_o = jax.random.split(key)
    return MLP(
        linear_init(k_h, input_size, hidden_size, dtype),
        linear_init(k_o, hidden_size, output_size, dtype),
    )


def mlp(params: MLP, h: jax.Array, activation: str | Callable = "tanh") -> jax.Array:
    """A one-hidden-layer head: ``W_o f(W_h h + b_h) + b_o``."""
    return linear(params.output, activation_fn(activation)(linear(params.hidden, h)))


def _is_state(leaf) -> bool:
    # Per-rollout leaves (PRNG keys of dropout cells) are not bridged.
    return jnp.issubdtype(leaf.dtype, jnp.floating)


def flat_state(carry) -> jax.Array:
    """The floating leaves of a batched carry, flattened and concatenated: ``[B, D]``."""
    leaves = [x for x in jax.tree.leaves(carry) if _is_state(x)]
    return jnp.concatenate([x.reshape(x.shape[0], -1) for x in leaves], axis=-1)


def bridge_init(key: jax.Array, input_size: int, carry, dtype=jnp.float32) -> tuple[Linear, ...]:
    """One :class:`Linear` per floating leaf of ``carry`` (a batched carry or its shapes)."""
    leaves = [x for x in jax.tree.leaves(carry) if _is_state(x)]
    keys = jax.random.split(key, len(leaves))
    return tuple(
        linear_init(k, input_size, math.prod(x.shape[1:]), dtype)
        for k, x in zip(keys, leaves, strict=True)
    )


def bridge(params: tuple[Linear, ...], v: jax.Array, carry):
    """``carry`` with each floating leaf replaced by ``W_l v + b_l`` (Cho et al. 2014's init map).

    Args:
      params: from :func:`bridge_init`.
      v: ``[B, D]``, e.g. :func:`flat_state` of an encoder's final carry.
      carry: the target cell's initial carry for batch ``B``; its structure and
        non-floating leaves are kept.
    """
    leaves, treedef = jax.tree.flatten(carry)
    maps = iter(params)
    out = [
        linear(next(maps), v).reshape(x.shape).astype(x.dtype) if _is_state(x) else x
        for x in leaves
    ]
    return jax.tree.unflatten(treedef, out)
