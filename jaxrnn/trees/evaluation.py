"""Level-synchronous evaluation of a tree cell over a batch of padded trees."""

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from jaxrnn.cells.base import check_positive
from jaxrnn.trees.builders import Trees
from jaxrnn.trees.cells import TreeCell


def _check_trees(trees: Trees, num_levels: int) -> None:
    """Shape checks always; structure checks when the arrays are concrete (not traced)."""
    shape = trees.level.shape
    if trees.children.shape[:-1] != shape or trees.children.ndim != len(shape) + 1:
        raise ValueError(
            f"trees.children: expected shape [*{shape}, K], got {tuple(trees.children.shape)}"
        )
    if trees.node_mask.shape != shape or trees.root.shape != shape[:-1]:
        raise ValueError(
            f"trees: expected node_mask {shape} and root {shape[:-1]} (from trees.level), got "
            f"{tuple(trees.node_mask.shape)} and {tuple(trees.root.shape)}"
        )
    if not jnp.issubdtype(trees.x.dtype, jnp.floating):
        raise TypeError(
            f"trees.x: expected floating node features, got {trees.x.dtype}; embed token ids "
            "first, e.g. trees._replace(x=table[trees.x])"
        )
    if trees.x.shape[: len(shape)] != shape or trees.x.ndim != len(shape) + 1:
        raise ValueError(
            f"trees.x: expected node features of shape [*{shape}, I], got {tuple(trees.x.shape)}"
        )
    if any(isinstance(a, jax.core.Tracer) for a in trees[1:]):
        return
    n = shape[-1]
    children = np.asarray(trees.children).reshape(-1, n, trees.children.shape[-1])
    level = np.asarray(trees.level).reshape(-1, n)
    mask = np.asarray(trees.node_mask).reshape(-1, n)
    root = np.asarray(trees.root).reshape(-1)
    bad = children[(children < -1) | (children >= n)]
    if bad.size:
        raise ValueError(
            f"trees.children: expected indices in [-1, {n}) (-1: no child), got {bad.tolist()}"
        )
    if ((root < 0) | (root >= n)).any() or not mask[np.arange(len(root)), root].all():
        raise ValueError(f"trees.root: expected the index of a real node in [0, {n}), got {root}")
    b, v, k = np.nonzero((children >= 0) & mask[..., None])
    c = children[b, v, k]
    bad = ~mask[b, c] | (level[b, c] >= level[b, v])
    if bad.any():
        b, v, c = b[bad][0], v[bad][0], c[bad][0]
        raise ValueError(
            f"trees.level: expected every child to be a real node with a smaller level "
            f"(height) than its parent, got node {v} (level {level[b, v]}) with child {c} "
            f"(level {level[b, c]}, real={bool(mask[b, c])}) in tree {b}; a cycle makes "
            "this impossible"
        )
    top = int(level.max(initial=-1))
    if top >= num_levels:
        raise ValueError(
            f"num_levels: expected more than the largest level {top}, got {num_levels}"
        )


def _evaluate_one(cell: TreeCell, params, num_levels: int, tree: Trees):
    n, _ = tree.children.shape
    has_child = tree.children >= 0
    index = jnp.where(has_child, tree.children, 0)

    def level_step(states, l):
        child_states = jax.tree.map(lambda s: s[index], states)  # leaves [N, K, ...]
        new = cell.apply(params, tree.x, child_states, has_child)
        now = tree.level == l

        def write(a, s):
            return jnp.where(now.reshape(n, *[1] * (s.ndim - 1)), a.astype(s.dtype), s)

        return jax.tree.map(write, new, states), None

    levels = jnp.arange(num_levels, dtype=tree.level.dtype)
    states, _ = jax.lax.scan(level_step, cell.initial_state(params, (n,)), levels)
    return states, jax.tree.map(lambda s: s[tree.root], states)


def evaluate(cell: TreeCell, params, trees: Trees, *, num_levels: int | None = None):
    """Run a tree cell bottom-up over a (batch of) tree(s), one level per scan step.

    Args:
      cell: a :class:`TreeCell` (``recursive``, ``child_sum_tree_lstm``, ``nary_tree_lstm``).
      params: the cell's params.
      trees: :class:`Trees` with floating ``x: [*batch, N, I]`` (embed token ids first).
      num_levels: static number of scan steps; must exceed every level. Default
        ``N`` (always enough); pass the padded height (``max_levels`` of
        :func:`batch_trees`) to save work.

    Returns:
      ``(node_states, root_states)``: the cell's state pytree with leaves
      ``[*batch, N, ...]`` (padding nodes hold ``initial_state``, zeros) and
      ``[*batch, ...]`` for each tree's root.

    Structure checks (indices in range, children below their parents, hence no
    cycles) run when ``trees`` is concrete; under ``jit`` only shapes are checked.

    Cost: ``num_levels * N`` cell applications per tree (every node is computed
    at every level and kept at its own), in exchange for one static program.

    Example:
      >>> import jaxrnn.trees as jt
      >>> v = np.ones(3, np.float32)
      >>> t = jt.batch_trees([jt.from_nested((v, (v, v))), jt.from_nested((v, v))])
      >>> cell = jt.child_sum_tree_lstm(16)
      >>> params = cell.init(jax.random.key(0), input_size=3)
      >>> nodes, roots = jax.jit(partial(jt.evaluate, cell))(params, t)  # roots.h: [2, 16]
    """
    n = trees.level.shape[-1]
    num_levels = n if num_levels is None else check_positive("num_levels", num_levels)
    _check_trees(trees, num_levels)
    fn = partial(_evaluate_one, cell, params, num_levels)
    for _ in trees.level.shape[:-1]:
        fn = jax.vmap(fn)
    return fn(trees)
