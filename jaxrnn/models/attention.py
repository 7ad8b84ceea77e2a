"""Attention over a padded source sequence: additive (Bahdanau) and multiplicative (Luong).

An :class:`Attention` is a NamedTuple of three pure functions::

    attn.init(key, query_size, key_size)                -> params
    attn.apply(params, query, keys, values, mask=None, *, prepared=None)
                                                        -> (context, weights)
    attn.prepare(params, keys)                          -> prepared

with ``query [*, Dq]``, ``keys [*, S, Dk]``, ``values [*, S, Dv]``, ``mask [*, S]``
(True: a valid source position), ``context [*, Dv]`` and ``weights [*, S]``::

    score_s   = score(query, keys_s)
    weights   = softmax(score) over the valid positions  (exactly 0 where masked)
    context   = sum_s weights_s values_s

A row whose positions are all masked gets all-zero weights and a zero context
(not NaN), so padding whole sequences in a batch is safe.

``prepare`` computes the part of the score that does not depend on the query (the
additive score's ``U_aᵀ k_s``, ``[*, S, A]``; the keys themselves for the others). A
decoder that queries the same keys at every step computes it once per source and
passes it as ``apply(..., prepared=)``: recomputing it every step costs a
``[S, Dk] × [Dk, A]`` product per step and sequence, half of a translation model's
training step.

References:
  Bahdanau, Cho, Bengio (2015). Neural Machine Translation by Jointly Learning
  to Align and Translate. ICLR.
  Luong, Pham, Manning (2015). Effective Approaches to Attention-based Neural
  Machine Translation. EMNLP.
"""

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from jaxrnn.cells import initializers
from jaxrnn.cells.base import check_positive
from jaxrnn.cells.references import Reference

Array = jax.Array

BAHDANAU_2015 = r"""@inproceedings{bahdanau2015neural,
  author = {Bahdanau, Dzmitry and Cho, Kyunghyun and Bengio, Yoshua},
  title = {Neural Machine Translation by Jointly Learning to Align and Translate},
  booktitle = {3rd International Conference on Learning Representations ({ICLR})},
  year = {2015},
  url = {https://arxiv.org/abs/1409.0473},
}"""
LUONG_2015 = r"""@inproceedings{luong2015effective,
  author = {Luong, Thang and Pham, Hieu and Manning, Christopher D.},
  title = {Effective Approaches to Attention-based Neural Machine Translation},
  booktitle = {Proceedings of the 2015 Conference on Empirical Methods in Natural Language
    Processing ({EMNLP})},
  pages = {1412--1421},
  year = {2015},
  doi = {10.18653/v1/D15-1166},
}"""
# What each score function cites, by the name of its factory.
SCORES = {
    "additive": Reference("additive (Bahdanau) attention", BAHDANAU_2015),
    "dot": Reference("dot-product (Luong) attention", LUONG_2015),
    "general": Reference("general (bilinear, Luong) attention", LUONG_2015),
}


def _keys(params, keys: Array) -> Array:
    return keys


class Attention(NamedTuple):
    """An attention mechanism: ``init``, ``apply`` and ``prepare``, all pure (module doc)."""

    init: Callable[..., Any]
    apply: Callable[..., tuple[Array, Array]]
    prepare: Callable[[Any, Array], Array] = _keys


class AdditiveParams(NamedTuple):
    """Additive attention's params (Bahdanau et al. 2015): ``score = v_aᵀ tanh(W_aᵀ q + U_aᵀ k)``.

    Attributes:
      W_a: ``[Dq, A]``, the map of the query (the decoder state).
      U_a: ``[Dk, A]``, the map of the keys (the annotations).
      v_a: ``[A]``, the score's output vector.
    """

    W_a: Array
    U_a: Array
    v_a: Array


class GeneralParams(NamedTuple):
    """General (bilinear) attention's params (Luong et al. 2015): ``score = qᵀ W_a k``.

    Attributes:
      W_a: ``[Dq, Dk]``.
    """

    W_a: Array


def masked_softmax(scores: Array, mask: Array | None) -> Array:
    """Softmax over the last axis, exactly 0 where ``mask`` is False; all-masked rows give 0."""
    if mask is None:
        return jax.nn.softmax(scores, axis=-1)
    # Masked scores are replaced by 0 before exp (not -inf), so that neither the
    # values nor the gradients see inf - inf.
    safe = jnp.where(mask, scores, 0.0)
    top = jnp.max(jnp.where(mask, scores, -jnp.inf), axis=-1, keepdims=True)
    top = jax.lax.stop_gradient(jnp.where(jnp.isfinite(top), top, 0.0))
    e = jnp.where(mask, jnp.exp(safe - top), 0.0)
    total = jnp.sum(e, axis=-1, keepdims=True)
    return e / jnp.where(total > 0, total, 1.0)


def _check(query, keys, values, mask):
    if keys.ndim < 2 or keys.shape[:-2] != query.shape[:-1]:
        raise ValueError(
            f"keys: expected shape [{', '.join(map(str, (*query.shape[:-1], 'S', 'Dk')))}] "
            f"(the batch shape of query), got {tuple(keys.shape)}"
        )
    if values.shape[:-1] != keys.shape[:-1]:
        raise ValueError(
            f"values: expected shape {(*keys.shape[:-1], 'Dv')} (the leading shape of "
            f"keys), got {tuple(values.shape)}"
        )
    if mask is not None:
        if mask.dtype != jnp.bool_:
            raise TypeError(f"mask: expected a bool array, got dtype {mask.dtype}")
        if mask.shape != keys.shape[:-1]:
            raise ValueError(
                f"mask: expected shape {tuple(keys.shape[:-1])} (the leading shape of keys), "
                f"got {tuple(mask.shape)}"
            )


def _attend(score_fn, prepare=_keys):
    """``apply`` of a score ``score_fn(params, query, prepared) -> [*, S]``."""

    def apply(params, query, keys, values, mask=None, *, prepared=None):
        query, keys, values = jnp.asarray(query), jnp.asarray(keys), jnp.asarray(values)
        mask = None if mask is None else jnp.asarray(mask)
        _check(query, keys, values, mask)
        prepared = prepare(params, keys) if prepared is None else prepared
        weights = masked_softmax(score_fn(params, query, prepared), mask)
        context = jnp.einsum("...s,...sd->...d", weights, values.astype(weights.dtype))
        return context, weights

    return apply


def additive(attention_size: int, *, dtype=jnp.float32) -> Attention:
    """Additive attention (Bahdanau et al. 2015): ``score = v_aᵀ tanh(W_aᵀ q + U_aᵀ k)``.

    Args:
      attention_size: ``A``, the width of the hidden layer of the score.
      dtype: parameter dtype.
    """
    check_positive("attention_size", attention_size)

    def init(key, query_size: int, key_size: int) -> AdditiveParams:
        k_w, k_u, k_v = jax.random.split(key, 3)
        glorot = initializers.glorot_uniform()
        return AdditiveParams(
            W_a=glorot(k_w, (query_size, attention_size), dtype),
            U_a=glorot(k_u, (key_size, attention_size), dtype),
            v_a=glorot(k_v, (attention_size, 1), dtype)[:, 0],
        )

    def prepare(params: AdditiveParams, keys):
        """``U_aᵀ k_s``, ``[*, S, A]``: the keys' half of the score."""
        if keys.shape[-1] != params.U_a.shape[0]:
            raise ValueError(
                f"keys: expected size Dk={params.U_a.shape[0]} (from the params), "
                f"got {keys.shape[-1]}"
            )
        return keys @ params.U_a

    def score(params: AdditiveParams, query, projected):
        if query.shape[-1] != params.W_a.shape[0]:
            raise ValueError(
                f"query: expected size Dq={params.W_a.shape[0]} (from the params), "
                f"got {query.shape[-1]}"
            )
        hidden = jnp.tanh((query @ params.W_a)[..., None, :] + projected)
        return hidden @ params.v_a

    return Attention(init, _attend(score, prepare), prepare)


def dot() -> Attention:
    """Dot-product attention (Luong et al. 2015): ``score = qᵀ k``; no params (``None``)."""

    def init(key, query_size: int, key_size: int) -> None:
        if query_size != key_size:
            raise ValueError(
                f"key_size: dot attention needs key_size == query_size ({query_size}), "
                f"got {key_size}; use general() or additive() for different sizes"
            )
        return None

    def score(params, query, keys):
        if query.shape[-1] != keys.shape[-1]:
            raise ValueError(
                f"keys: dot attention expected size Dk = Dq = {query.shape[-1]}, "
                f"got {keys.shape[-1]}"
            )
        return jnp.einsum("...d,...sd->...s", query, keys)

    return Attention(init, _attend(score))


def general(*, dtype=jnp.float32) -> Attention:
    """General (bilinear) attention (Luong et al. 2015): ``score = qᵀ W_a k``."""

    def init(key, query_size: int, key_size: int) -> GeneralParams:
        return GeneralParams(initializers.glorot_uniform()(key, (query_size, key_size), dtype))

    def score(params: GeneralParams, query, keys):
        if query.shape[-1] != params.W_a.shape[0] or keys.shape[-1] != params.W_a.shape[1]:
            raise ValueError(
                f"query, keys: expected sizes Dq={params.W_a.shape[0]}, Dk={params.W_a.shape[1]} "
                f"(from the params), got {query.shape[-1]} and {keys.shape[-1]}"
            )
        return jnp.einsum("...d,...sd->...s", query @ params.W_a, keys)

    return Attention(init, _attend(score))
