"""Layer normalisation (Ba, Kiros, Hinton 2016), as used inside recurrent cells.

``LN(z; g, b) = g * (z - mean(z)) / sqrt(var(z) + eps) + b`` over the last axis.

References:
  Ba, Kiros, Hinton (2016). Layer Normalization. arXiv:1607.06450.
"""

from typing import NamedTuple

import jax
import jax.numpy as jnp

from jaxrnn.cells.references import Reference

BA_2016 = r"""@misc{ba2016layer,
  author = {Ba, Jimmy Lei and Kiros, Jamie Ryan and Hinton, Geoffrey E.},
  title = {Layer Normalization},
  howpublished = {arXiv:1607.06450},
  year = {2016},
  url = {https://arxiv.org/abs/1607.06450},
}"""
# What a cell with layer_norm=True cites.
REFERENCE = Reference("layer normalisation", BA_2016)


class LayerNormParams(NamedTuple):
    """Gain ``g`` and bias ``b``, both ``[D]``."""

    g: jax.Array
    b: jax.Array


def init(size: int, dtype) -> LayerNormParams:
    """Unit gain, zero bias."""
    return LayerNormParams(jnp.ones((size,), dtype), jnp.zeros((size,), dtype))


def apply(params: LayerNormParams, z: jax.Array, eps: float = 1e-5) -> jax.Array:
    """Normalise ``z: [..., D]`` over its last axis, in ``z``'s dtype."""
    mean = jnp.mean(z, axis=-1, keepdims=True)
    var = jnp.mean(jnp.square(z - mean), axis=-1, keepdims=True)
    normed = (z - mean) * jax.lax.rsqrt(var + eps)
    return normed * params.g.astype(z.dtype) + params.b.astype(z.dtype)
