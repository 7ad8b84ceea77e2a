"""Tree cells: the recursive neural network and the Child-Sum and N-ary Tree-LSTMs.

A tree cell is a NamedTuple of pure functions, like :class:`jaxrnn.Cell`::

    cell.init(key, input_size)                           -> params
    cell.initial_state(params, batch_shape=())           -> state   (zeros; an absent child)
    cell.apply(params, x, child_states, child_mask)      -> state

with ``x: [*batch, I]``, every ``child_states`` leaf ``[*batch, K, ...]`` and
``child_mask: [*batch, K]`` (False for absent children, whose states are ignored).
Matrices use the row-vector convention ``x @ W``, as the sequence cells do.

References:
  Socher, Lin, Ng, Manning (2011). Parsing Natural Scenes and Natural Language
  with Recursive Neural Networks. ICML.
  Tai, Socher, Manning (2015). Improved Semantic Representations From
  Tree-Structured Long Short-Term Memory Networks. ACL. (Eq. 2-14)
"""

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from jaxrnn.cells import initializers, registry
from jaxrnn.cells.base import activation_fn, carry_dtype, check_positive, matmul
from jaxrnn.cells.lstm import forget_bias_references
from jaxrnn.cells.references import Reference

Array = jax.Array

SOCHER_2011 = r"""@inproceedings{socher2011parsing,
  author = {Socher, Richard and Lin, Cliff Chiung-Yu and Ng, Andrew Y. and
    Manning, Christopher D.},
  title = {Parsing Natural Scenes and Natural Language with Recursive Neural Networks},
  booktitle = {Proceedings of the 28th International Conference on Machine Learning ({ICML})},
  pages = {129--136},
  year = {2011},
}"""
TAI_2015 = r"""@inproceedings{tai2015improved,
  author = {Tai, Kai Sheng and Socher, Richard and Manning, Christopher D.},
  title = {Improved Semantic Representations From Tree-Structured Long Short-Term Memory
    Networks},
  booktitle = {Proceedings of the 53rd Annual Meeting of the Association for Computational
    Linguistics and the 7th International Joint Conference on Natural Language Processing
    (Volume 1: Long Papers)},
  pages = {1556--1566},
  year = {2015},
  doi = {10.3115/v1/P15-1150},
}"""


def recursive_references(*, activation: str = "tanh") -> list[Reference]:
    """What the recursive network a config names cites: Socher et al. (2011)."""
    del activation
    return [Reference("recursive neural network", SOCHER_2011)]


def child_sum_references(*, forget_bias: float = 1.0) -> list[Reference]:
    """What the Child-Sum Tree-LSTM a config names cites: Tai et al. (2015), and its
    forget-gate bias (:func:`jaxrnn.cells.lstm.forget_bias_references`)."""
    return [Reference("Child-Sum Tree-LSTM", TAI_2015), *forget_bias_references(forget_bias)]


def nary_references(*, forget_bias: float = 1.0) -> list[Reference]:
    """What the N-ary (binary) Tree-LSTM a config names cites: Tai et al. (2015), and its
    forget-gate bias (:func:`jaxrnn.cells.lstm.forget_bias_references`)."""
    return [Reference("N-ary Tree-LSTM", TAI_2015), *forget_bias_references(forget_bias)]


class TreeCell(NamedTuple):
    """A tree cell: ``init``, ``initial_state`` and ``apply``, all pure."""

    init: Callable[[Array, int], Any]
    initial_state: Callable[..., Any]
    apply: Callable[[Any, Array, Any, Array], Any]


def _check_x(x: Array, input_size: int, child_mask: Array) -> None:
    if not hasattr(x, "shape") or x.shape != (*child_mask.shape[:-1], input_size):
        raise ValueError(
            f"x: expected node inputs of shape {(*child_mask.shape[:-1], input_size)} "
            f"(input_size={input_size} from the params), got {tuple(getattr(x, 'shape', ()))}"
        )
    if not jnp.issubdtype(x.dtype, jnp.floating):
        raise TypeError(
            f"x: expected floating node features, got {x.dtype}; embed token ids first, "
            "e.g. trees._replace(x=table[trees.x])"
        )


def _by_position(s: Array, child_mask: Array, arity: int) -> Array:
    """Child states ``[*batch, K, H]`` as ``[*batch, arity, H]``, absent children zeroed."""
    k = child_mask.shape[-1]
    if k > arity:
        raise ValueError(
            f"trees.children: expected at most {arity} child slots (the cell's arity), got K={k}; "
            f"batch the trees with max_children={arity}"
        )
    s = jnp.where(child_mask[..., None], s, jnp.zeros((), s.dtype))
    pad = [(0, 0)] * (s.ndim - 2) + [(0, arity - k), (0, 0)]
    return jnp.pad(s, pad)


def _flat(s: Array) -> Array:
    """``[*batch, K, H] -> [*batch, K*H]``: the concatenation ``[h_1; ...; h_K]``."""
    return s.reshape(*s.shape[:-2], s.shape[-2] * s.shape[-1])


class RecursiveParams(NamedTuple):
    """The recursive neural network's weights (Socher et al. 2011).

    ``h = f([h_1; ...; h_K] W + x U + b)``, in the row-vector convention.

    Attributes:
      W: ``[K*H, H]``, the composition of the concatenated children's states.
      U: ``[I, H]``, the map of the node's input.
      b: ``[H]``, the bias.
    """

    W: jax.Array
    U: jax.Array
    b: jax.Array


class RecursiveState(NamedTuple):
    """A node's state in the recursive neural network (Socher et al. 2011).

    Attributes:
      h: ``[*batch, H]``, the node's hidden state.
    """

    h: jax.Array


@registry.register("recursive", kind="tree", references=recursive_references)
def recursive(
    hidden_size: int,
    *,
    arity: int = 2,
    activation: str | Callable[[Array], Array] = "tanh",
    dtype=jnp.float32,
) -> TreeCell:
    """The recursive neural network of Socher et al. (2011), for trees of arity ``K``.

        h = f([h_1; ...; h_K] W + x U + b)

    (row-vector convention), absent children contributing ``h_k = 0`` (so a leaf
    uses ``x`` only). ``W: [K*H, H]``, ``U: [I, H]``, ``b: [H]``.

    Args:
      hidden_size: ``H``.
      arity: ``K``, the most children a node may have; children are told apart by position.
      activation: ``f``, a name from ``jaxrnn.ACTIVATIONS`` or a callable (tanh in the paper).
      dtype: parameter dtype; the state is at least float32.

    References:
      Socher, Lin, Ng, Manning (2011). Parsing Natural Scenes and Natural Language
      with Recursive Neural Networks. ICML.
    """
    H = check_positive("hidden_size", hidden_size)
    K = check_positive("arity", arity)
    f = activation_fn(activation)
    glorot = initializers.glorot_uniform()

    def init(key, input_size: int) -> RecursiveParams:
        check_positive("input_size", input_size)
        k_w, k_u = jax.random.split(key)
        return RecursiveParams(
            W=glorot(k_w, (K * H, H), dtype),
            U=glorot(k_u, (input_size, H), dtype),
            b=jnp.zeros((H,), dtype),
        )

    def initial_state(params: RecursiveParams, batch_shape=()) -> RecursiveState:
        return RecursiveState(jnp.zeros((*batch_shape, H), carry_dtype(params.W.dtype)))

    def apply(params: RecursiveParams, x, child_states: RecursiveState, child_mask):
        _check_x(x, params.U.shape[0], child_mask)
        acc = carry_dtype(params.W.dtype)
        h_c = _flat(_by_position(child_states.h, child_mask, K))
        a = matmul(h_c, params.W, acc) + matmul(x, params.U, acc) + params.b.astype(acc)
        return RecursiveState(f(a))

    return TreeCell(init, initial_state, apply)


class TreeLSTMState(NamedTuple):
    """A node's state in a Child-Sum or N-ary Tree-LSTM (Tai et al. 2015).

    Attributes:
      h: ``[*batch, H]``, the hidden state (the output).
      c: ``[*batch, H]``, the memory cell.
    """

    h: jax.Array
    c: jax.Array


class ChildSumTreeLSTMParams(NamedTuple):
    """The Child-Sum Tree-LSTM's weights (Tai et al. 2015, Eq. 2-8).

    Attributes:
      W_iou: ``[I, 3H]``, ``W_i, W_o, W_u`` fused in the gate order (i, o, u).
      U_iou: ``[H, 3H]``, ``U_i, U_o, U_u``, applied to the children's sum ``h̃``.
      b_iou: ``[3H]``, ``b_i, b_o, b_u``.
      W_f: ``[I, H]``, the forget gates' input weights.
      U_f: ``[H, H]``, applied to ``h_k`` in every child's forget gate ``f_k``.
      b_f: ``[H]``, the forget-gate bias.
    """

    W_iou: jax.Array
    U_iou: jax.Array
    b_iou: jax.Array
    W_f: jax.Array
    U_f: jax.Array
    b_f: jax.Array


class NaryTreeLSTMParams(NamedTuple):
    """The N-ary Tree-LSTM's weights (Tai et al. 2015, Eq. 9-14).

    Attributes:
      W_iou: ``[I, 3H]``, ``W_i, W_o, W_u`` fused in the gate order (i, o, u).
      U_iou: ``[N*H, 3H]``; the rows of block ``l`` are ``U_{i,l}, U_{o,l}, U_{u,l}``,
        applied to child ``l``'s ``h_l``.
      b_iou: ``[3H]``, ``b_i, b_o, b_u``.
      W_f: ``[I, H]``, the forget gates' input weights, shared by the ``N`` gates.
      U_f: ``[N*H, N*H]``; block ``(l, k)`` is ``U^{(f)}_{kl}``, from ``h_l`` to ``f_k``.
      b_f: ``[H]``, the forget-gate bias.
    """

    W_iou: jax.Array
    U_iou: jax.Array
    b_iou: jax.Array
    W_f: jax.Array
    U_f: jax.Array
    b_f: jax.Array


def _lstm_init(H: int, recurrent_rows: int, forget_cols: int, forget_bias: float, dtype):
    glorot = initializers.glorot_uniform()
    per_gate = initializers.fused(glorot, glorot, glorot)

    def init(key, input_size: int):
        check_positive("input_size", input_size)
        k = jax.random.split(key, 4)
        return dict(
            W_iou=per_gate(k[0], (input_size, 3 * H), dtype),
            U_iou=per_gate(k[1], (recurrent_rows, 3 * H), dtype),
            b_iou=jnp.zeros((3 * H,), dtype),
            W_f=glorot(k[2], (input_size, H), dtype),
            U_f=glorot(k[3], (recurrent_rows, forget_cols), dtype),
            b_f=jnp.full((H,), forget_bias, dtype),
        )

    return init


def _lstm_initial_state(H: int):
    def initial_state(params, batch_shape=()) -> TreeLSTMState:
        acc = carry_dtype(params.W_f.dtype)
        return TreeLSTMState(jnp.zeros((*batch_shape, H), acc), jnp.zeros((*batch_shape, H), acc))

    return initial_state


def _iou(params, x, h_in, acc):
    a = matmul(x, params.W_iou, acc) + matmul(h_in, params.U_iou, acc) + params.b_iou.astype(acc)
    H = a.shape[-1] // 3
    return (a[..., k * H : (k + 1) * H] for k in range(3))


@registry.register("child_sum_tree_lstm", kind="tree", references=child_sum_references)
def child_sum_tree_lstm(hidden_size: int, *, forget_bias: float = 1.0, dtype=jnp.float32):
    """The Child-Sum Tree-LSTM of Tai et al. (2015, Eq. 2-8), for any number of children.

        h̃ = Σ_k h_k
        i = σ(x W_i + h̃ U_i + b_i),   o = σ(x W_o + h̃ U_o + b_o),   u = tanh(x W_u + h̃ U_u + b_u)
        f_k = σ(x W_f + h_k U_f + b_f)           one forget gate per child
        c = i ⊙ u + Σ_k f_k ⊙ c_k,    h = o ⊙ tanh(c)

    Sums run over present children. On a chain (one child per node) this is
    exactly an LSTM with gate blocks (i, f, g=u, o) read leaf to root.

    Args:
      hidden_size: ``H``.
      forget_bias: initial ``b_f`` (1.0: Gers et al. 2000; Jozefowicz et al. 2015).
      dtype: parameter dtype; the state is at least float32.

    References:
      Tai, Socher, Manning (2015). Improved Semantic Representations From
      Tree-Structured Long Short-Term Memory Networks. ACL.
    """
    H = check_positive("hidden_size", hidden_size)
    init_dict = _lstm_init(H, H, H, forget_bias, dtype)

    def apply(params: ChildSumTreeLSTMParams, x, child_states: TreeLSTMState, child_mask):
        _check_x(x, params.W_f.shape[0], child_mask)
        acc = carry_dtype(params.W_f.dtype)
        present = child_mask[..., None]
        h_k = jnp.where(present, child_states.h, jnp.zeros((), acc))  # [*batch, K, H]
        c_k = jnp.where(present, child_states.c, jnp.zeros((), acc))
        i, o, u = _iou(params, x, h_k.sum(-2), acc)
        xf = matmul(x, params.W_f, acc) + params.b_f.astype(acc)
        f_k = jax.nn.sigmoid(xf[..., None, :] + matmul(h_k, params.U_f, acc))
        c = jax.nn.sigmoid(i) * jnp.tanh(u) + (f_k * c_k).sum(-2)
        return TreeLSTMState(jax.nn.sigmoid(o) * jnp.tanh(c), c)

    return TreeCell(
        lambda key, input_size: ChildSumTreeLSTMParams(**init_dict(key, input_size)),
        _lstm_initial_state(H),
        apply,
    )


# arity 2 by default: the binary Tree-LSTM.
@registry.register("binary_tree_lstm", kind="tree", references=nary_references)
def nary_tree_lstm(
    hidden_size: int, *, arity: int = 2, forget_bias: float = 1.0, dtype=jnp.float32
):
    """The N-ary Tree-LSTM of Tai et al. (2015, Eq. 9-14); ``arity=2`` is the binary Tree-LSTM.

        i = σ(x W_i + Σ_l h_l U_{i,l} + b_i)    (likewise o; u with tanh)
        f_k = σ(x W_f + Σ_l h_l U^{(f)}_{kl} + b_f)     k = 1..N
        c = i ⊙ u + Σ_k f_k ⊙ c_k,    h = o ⊙ tanh(c)

    Children are told apart by position ``l`` (absent ones have ``h_l = c_l = 0``).
    In the fused layout ``[h_1; ...; h_N] U_iou`` stacks the ``U_{·,l}`` by rows and
    ``[h_1; ...; h_N] U_f`` gives ``[f_1 ... f_N]`` pre-activations
    (``U_f[l*H:(l+1)*H, k*H:(k+1)*H] = U^{(f)}_{kl}``).

    Args:
      hidden_size: ``H``.
      arity: ``N``, the most children a node may have (2: the binary Tree-LSTM).
      forget_bias: initial ``b_f`` (1.0: Gers et al. 2000; Jozefowicz et al. 2015).
      dtype: parameter dtype; the state is at least float32.

    References:
      Tai, Socher, Manning (2015). Improved Semantic Representations From
      Tree-Structured Long Short-Term Memory Networks. ACL.
    """
    H = check_positive("hidden_size", hidden_size)
    N = check_positive("arity", arity)
    init_dict = _lstm_init(H, N * H, N * H, forget_bias, dtype)

    def apply(params: NaryTreeLSTMParams, x, child_states: TreeLSTMState, child_mask):
        _check_x(x, params.W_f.shape[0], child_mask)
        acc = carry_dtype(params.W_f.dtype)
        h_cat = _flat(_by_position(child_states.h, child_mask, N))  # [*batch, N*H]
        c_l = _by_position(child_states.c, child_mask, N)  # [*batch, N, H]
        i, o, u = _iou(params, x, h_cat, acc)
        xf = matmul(x, params.W_f, acc) + params.b_f.astype(acc)
        af = matmul(h_cat, params.U_f, acc).reshape(*h_cat.shape[:-1], N, H)
        f_k = jax.nn.sigmoid(xf[..., None, :] + af)
        c = jax.nn.sigmoid(i) * jnp.tanh(u) + (f_k * c_l).sum(-2)
        return TreeLSTMState(jax.nn.sigmoid(o) * jnp.tanh(c), c)

    return TreeCell(
        lambda key, input_size: NaryTreeLSTMParams(**init_dict(key, input_size)),
        _lstm_initial_state(H),
        apply,
    )
