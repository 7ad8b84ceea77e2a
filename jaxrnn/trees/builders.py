"""Trees as padded arrays, and builders from nested tuples, CoNLL-U text and Python ``ast``.

A tree of ``N`` nodes is numbered ``0 .. N-1`` (post-order in the builders, so
children come before parents and the root is last); ``level`` is each node's
height, which :func:`jaxrnn.trees.evaluate` uses to schedule the computation.
"""

import ast
from collections.abc import Mapping, Sequence
from typing import NamedTuple

import jax
import numpy as np

from jaxrnn.cells.base import check_positive

Array = jax.Array


class Trees(NamedTuple):
    """A tree, or a batch of trees padded to ``N`` nodes with at most ``K`` children each.

    Nodes of one tree are indexed ``0 .. N-1``; padding nodes have
    ``node_mask=False`` and ``level=-1`` and never affect real nodes.
    """

    x: Array  # [*batch, N, I] node features, or [*batch, N] integer token ids
    children: Array  # [*batch, N, K] int32 child indices, in order, padded with -1
    level: Array  # [*batch, N] int32 height: 0 for leaves, 1 + max over children; -1 padding
    node_mask: Array  # [*batch, N] bool, True for real nodes
    root: Array  # [*batch] int32 index of the root node


def _from_lists(xs: list, children: list[list[int]], root: int, name: str) -> Trees:
    """One tree from per-node inputs and child lists; checks it is a tree and computes heights."""
    n = len(children)
    level = [-1] * n
    seen = set()
    stack = [(root, False)]
    while stack:
        v, done = stack.pop()
        if done:
            level[v] = 1 + max((level[c] for c in children[v]), default=-1)
            continue
        if v in seen:
            raise ValueError(
                f"{name}: expected a tree (every node reached once from the root), got node {v} "
                "reached twice (a cycle or a shared child)"
            )
        seen.add(v)
        stack.append((v, True))
        stack.extend((c, False) for c in children[v])
    if len(seen) != n:
        unreachable = sorted(set(range(n)) - seen)
        raise ValueError(
            f"{name}: expected every node to be reachable from the root {root}, got unreachable "
            f"nodes {unreachable} (a cycle or a second root)"
        )
    k = max(1, max(len(c) for c in children))
    child_arr = np.full((n, k), -1, np.int32)
    for v, cs in enumerate(children):
        child_arr[v, : len(cs)] = cs
    return Trees(
        x=np.stack([np.asarray(x) for x in xs]),
        children=child_arr,
        level=np.asarray(level, np.int32),
        node_mask=np.ones(n, bool),
        root=np.asarray(root, np.int32),
    )


def from_nested(tree, *, dtype=np.float32, internal_input=None) -> Trees:
    """Build a tree from nested tuples, nodes numbered in post-order (root last).

    Tuples and lists are internal nodes (their children, in order); anything else
    is a leaf: an ``int`` token id or a feature vector ``[I]``.

    Args:
      tree: e.g. ``((1, 2), 3)`` or ``((v1, v2), v3)`` with arrays ``v``.
      dtype: dtype of feature vectors (token ids are int32).
      internal_input: input of internal nodes; default 0 for tokens and a zero
        vector for features (constituency trees carry no input at inner nodes).

    Returns:
      A single (unbatched) :class:`Trees` of NumPy arrays.
    """
    xs, children = [], []

    def visit(node):
        if isinstance(node, tuple | list):
            if not node:
                raise ValueError("tree: expected internal nodes with at least one child, got ()")
            kids = [visit(c) for c in node]
            xs.append(None)
            children.append(kids)
        else:
            xs.append(node)
            children.append([])
        return len(xs) - 1

    root = visit(tree)
    leaves = [x for x in xs if x is not None]
    tokens = all(isinstance(x, int | np.integer) for x in leaves)
    if tokens:
        fill = 0 if internal_input is None else internal_input
        xs = [np.int32(fill if x is None else x) for x in xs]
    else:
        size = np.shape(leaves[0])
        for x in leaves:
            if np.ndim(x) != 1 or np.shape(x) != size:
                raise ValueError(
                    f"tree: expected every leaf to be an int or a vector of shape {size}, got {x!r}"
                )
        fill = np.zeros(size, dtype) if internal_input is None else internal_input
        xs = [np.asarray(fill if x is None else x, dtype) for x in xs]
    return _from_lists(xs, children, root, "tree")


def to_nested(tree: Trees):
    """The nested-tuple form of a single concrete tree (inverse of :func:`from_nested`)."""
    x, children = np.asarray(tree.x), np.asarray(tree.children)

    def visit(v):
        kids = [int(c) for c in children[v] if c >= 0]
        if kids:
            return tuple(visit(c) for c in kids)
        return int(x[v]) if x.ndim == 1 else x[v]

    return visit(int(tree.root))


_CONLLU_FIELDS = ("ID", "FORM", "LEMMA", "UPOS", "XPOS", "FEATS", "HEAD", "DEPREL", "DEPS", "MISC")


def from_conllu(
    text: str, vocab: Mapping[str, int], *, field: str = "FORM", unk: int = 0
) -> list[Trees]:
    """Dependency trees from CoNLL-U text, one per sentence (the HEAD column gives the parent).

    Node ``i`` is the word with ID ``i + 1``; the root is the word with HEAD 0;
    children are in ID order. Multiword-token ranges (``1-2``) and empty nodes
    (``1.1``) are skipped, as they are not part of the basic tree.

    Args:
      text: CoNLL-U, sentences separated by blank lines, ``#`` comments allowed.
      vocab: maps the ``field`` column (default FORM) to token ids; others get ``unk``.

    Returns:
      A list of single :class:`Trees` with token ids ``x: [N]``.

    References:
      Universal Dependencies, CoNLL-U format. https://universaldependencies.org/format.html
    """
    if field not in _CONLLU_FIELDS:
        raise ValueError(f"field: expected one of {_CONLLU_FIELDS}, got {field!r}")
    col = _CONLLU_FIELDS.index(field)
    sentences, rows = [], []
    for line in [*text.splitlines(), ""]:
        if not line.strip():
            if rows:
                sentences.append(rows)
            rows = []
            continue
        if line.startswith("#"):
            continue
        cols = line.split("\t")
        if len(cols) != 10:
            raise ValueError(
                f"text: expected 10 tab-separated CoNLL-U columns, got {len(cols)} in {line!r}"
            )
        if cols[0].isdigit():
            rows.append(cols)
    trees = []
    for s, rows in enumerate(sentences):
        name = f"text (sentence {s})"
        n = len(rows)
        ids = [int(r[0]) for r in rows]
        if ids != list(range(1, n + 1)):
            raise ValueError(f"{name}: expected word IDs 1..{n} in order, got {ids}")
        heads = [int(r[6]) for r in rows]
        roots = [i for i, h in enumerate(heads) if h == 0]
        if len(roots) != 1:
            raise ValueError(
                f"{name}: expected exactly one word with HEAD 0, got IDs {[i + 1 for i in roots]}"
            )
        children = [[] for _ in range(n)]
        for i, h in enumerate(heads):
            if not 0 <= h <= n:
                raise ValueError(f"{name}: expected HEAD in [0, {n}], got {h} for ID {i + 1}")
            if h:
                children[h - 1].append(i)
        xs = [np.int32(vocab.get(r[col], unk)) for r in rows]
        trees.append(_from_lists(xs, children, roots[0], name))
    return trees


AST_NODE_TYPES: tuple[str, ...] = tuple(
    sorted(n for n, t in vars(ast).items() if isinstance(t, type) and issubclass(t, ast.AST))
)


def from_ast(node: ast.AST, node_types: Sequence[str] = AST_NODE_TYPES) -> Trees:
    """A tree from a Python ``ast`` node; token id = 1 + index of the node type in ``node_types``.

    Children are ``ast.iter_child_nodes`` in order; nodes are numbered in
    post-order; node types not in ``node_types`` get id 0.
    """
    ids = {t: i + 1 for i, t in enumerate(node_types)}
    xs, children = [], []

    def visit(n):
        kids = [visit(c) for c in ast.iter_child_nodes(n)]
        xs.append(np.int32(ids.get(type(n).__name__, 0)))
        children.append(kids)
        return len(xs) - 1

    root = visit(node)
    return _from_lists(xs, children, root, "node")


def _used_slots(children: np.ndarray) -> int:
    """One past the last child slot in use (0 if no node has children)."""
    slots = np.arange(1, children.shape[-1] + 1)
    return int(np.max(np.where(children >= 0, slots, 0), initial=0))


def batch_trees(
    trees: Sequence[Trees],
    max_nodes: int | None = None,
    max_children: int | None = None,
    max_levels: int | None = None,
) -> Trees:
    """Pad single trees to common sizes and stack them into a batch ``[B, ...]``.

    Args:
      trees: single trees (as from the builders).
      max_nodes, max_children: padded ``N`` and ``K``; default the largest in ``trees``.
        Fixing them keeps one compiled :func:`evaluate` for every batch.
      max_levels: if given, checks every tree's height is below it; pass the same
        value as ``num_levels`` to :func:`evaluate`.

    Returns:
      :class:`Trees` of NumPy arrays with ``x: [B, N, I]`` (or ``[B, N]``),
      ``children: [B, N, K]``, ``level, node_mask: [B, N]``, ``root: [B]``.
    """
    if not trees:
        raise ValueError("trees: expected at least one tree, got none")
    sizes = [t.level.shape[0] for t in trees]
    # Slots, not counts: an N-ary node may have only its right child ([-1, c]).
    widths = [_used_slots(np.asarray(t.children)) for t in trees]
    heights = [int(np.max(t.level)) for t in trees]
    n = max(sizes) if max_nodes is None else check_positive("max_nodes", max_nodes)
    k = (
        max(1, max(widths))
        if max_children is None
        else check_positive("max_children", max_children)
    )
    for name, limit, got in (
        ("max_nodes", n, max(sizes)),
        ("max_children", k, max(widths)),
    ):
        if got > limit:
            raise ValueError(
                f"{name}: expected at least {got} (the largest tree needs it), got {limit}"
            )
    if max_levels is not None and max(heights) >= check_positive("max_levels", max_levels):
        raise ValueError(
            f"max_levels: expected more than the largest tree height {max(heights)}, "
            f"got {max_levels}"
        )
    x0 = np.asarray(trees[0].x)
    out = Trees(
        x=np.zeros((len(trees), n, *x0.shape[1:]), x0.dtype),
        children=np.full((len(trees), n, k), -1, np.int32),
        level=np.full((len(trees), n), -1, np.int32),
        node_mask=np.zeros((len(trees), n), bool),
        root=np.zeros(len(trees), np.int32),
    )
    for b, t in enumerate(trees):
        x = np.asarray(t.x)
        if x.shape[1:] != x0.shape[1:] or x.dtype != x0.dtype:
            raise ValueError(
                f"trees: expected node inputs of shape [N, *{x0.shape[1:]}] and dtype {x0.dtype} "
                f"(those of tree 0), got {x.shape} {x.dtype} in tree {b}"
            )
        m, kb = np.asarray(t.children).shape
        kb = min(kb, k)
        out.x[b, :m] = x
        out.children[b, :m, :kb] = np.asarray(t.children)[:, :kb]
        out.level[b, :m] = t.level
        out.node_mask[b, :m] = t.node_mask
        out.root[b] = t.root
    return out
