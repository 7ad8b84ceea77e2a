"""Recursive networks over trees: padded tree batches, tree cells, level-synchronous evaluation.

A batch of trees of different shapes is stored as padded arrays (:class:`Trees`).
Every node has a *level*, its height (0 for leaves, ``1 + max`` over its
children), so all children of a node have a smaller level than the node.
:func:`evaluate` runs ``jax.lax.scan`` over the levels ``0 .. num_levels-1``;
at level ``l`` it computes every node from its children's states (gathered by
child index) and keeps the result only for nodes whose level is ``l``. The
program depends only on the padded sizes ``(B, N, K, I)`` and ``num_levels``,
so one compiled program serves every batch of that size, and it is
differentiable and vmappable. Its semantics are the plain recursion::

    def state(v):
        kids = [state(c) for c in children[v] if c >= 0]
        return cell.apply(params, x[v], stack(kids + absent), mask)

A tree cell is a NamedTuple of pure functions, like :class:`jaxrnn.Cell`::

    cell.init(key, input_size)                           -> params
    cell.initial_state(params, batch_shape=())           -> state   (zeros; an absent child)
    cell.apply(params, x, child_states, child_mask)      -> state

with ``x: [*batch, I]``, every ``child_states`` leaf ``[*batch, K, ...]`` and
``child_mask: [*batch, K]`` (False for absent children, whose states are
ignored). Readout is left to the user: ``logits = node_states.h @ W_out``
for node labels, ``root_states.h @ W_out`` for tree labels.

References:
  Socher, Lin, Ng, Manning (2011). Parsing Natural Scenes and Natural Language
  with Recursive Neural Networks. ICML.
  Tai, Socher, Manning (2015). Improved Semantic Representations From
  Tree-Structured Long Short-Term Memory Networks. ACL. (Eq. 2-14)
  Looks, Herreshoff, Hutchins, Norvig (2017). Deep Learning with Dynamic
  Computation Graphs (batching trees by depth). ICLR.
"""

from jaxrnn.trees.builders import (
    AST_NODE_TYPES,
    Trees,
    batch_trees,
    from_ast,
    from_conllu,
    from_nested,
    to_nested,
)
from jaxrnn.trees.cells import (
    ChildSumTreeLSTMParams,
    NaryTreeLSTMParams,
    RecursiveParams,
    RecursiveState,
    TreeCell,
    TreeLSTMState,
    child_sum_tree_lstm,
    nary_tree_lstm,
    recursive,
)
from jaxrnn.trees.evaluation import evaluate

__all__ = [
    "AST_NODE_TYPES",
    "ChildSumTreeLSTMParams",
    "NaryTreeLSTMParams",
    "RecursiveParams",
    "RecursiveState",
    "TreeCell",
    "TreeLSTMState",
    "Trees",
    "batch_trees",
    "child_sum_tree_lstm",
    "evaluate",
    "from_ast",
    "from_conllu",
    "from_nested",
    "nary_tree_lstm",
    "recursive",
    "to_nested",
]
