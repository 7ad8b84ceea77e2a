"""Random arithmetic expressions over digits, as trees and as strings: the tree experiment's data.

An expression is a binary tree whose leaves are the digits 0-9 and whose internal
nodes are the operators ``+ - *``; its label is its value modulo 10 (Python's ``%``,
so in 0..9)::

    ((3+4)*(8-9))   ->   7 * -1 = -7   ->   label 3

Every expression comes in two forms over one vocabulary :data:`VOCAB` (one token per
character):

* a tree (:class:`jaxrnn.trees.Trees`, nodes in post-order, root last): each node's
  input is the one-hot token of its digit or operator, its children are the
  operands in order (left, right);
* its fully parenthesised infix string, for a sequence model: one-hot tokens
  ``[T, V]`` and a mask.

Why classification of the value mod 10: a product's value grows without bound with
depth, so a regression target would be dominated by a few huge values; mod 10 the
labels stay ten classes at any depth. And because ``x -> x mod 10`` respects
``+ - *`` (``(a ∘ b) mod 10 = ((a mod 10) ∘ (b mod 10)) mod 10``), a subtree's
value mod 10 is all its parent needs: a tree model can solve the task exactly with
a ten-state summary per node, at any depth, while a sequence model reading the
string must keep a stack of pending operands and operators. ListOps (Nangia &
Bowman 2018) uses the same labels (single digits, ``SUM_MOD``) for the same reason;
the bracketed infix arithmetic of Hupkes et al. (2018) compares a recursive network
with a GRU on the same two forms. Testing on expressions with more operators than
any seen in training follows Bowman et al. (2015), who found tree-structured models
generalise to longer formulas than sequence models do. (Zaremba & Sutskever's 2014
"Learning to Execute" predicts the multi-digit output of small programs, a
sequence-to-sequence task: not followed here.)

Sizes: an expression with ``n`` operators has ``2n + 1`` nodes, ``4n + 1``
characters and height at most ``n`` (a chain); a split is padded to its largest
``n``.

References:
  Bowman, Manning, Potts (2015). Tree-Structured Composition in Neural Networks
  without Tree-Structured Architectures. NIPS Workshop on Cognitive Computation.
  Nangia, Bowman (2018). ListOps: A Diagnostic Dataset for Latent Tree Learning.
  NAACL Student Research Workshop.
  Hupkes, Veldhoen, Zuidema (2018). Visualisation and 'Diagnostic Classifiers'
  Reveal how Recurrent and Recursive Neural Networks Process Hierarchical
  Structure. JAIR 61.
  Tai, Socher, Manning (2015). Improved Semantic Representations From
  Tree-Structured Long Short-Term Memory Networks. ACL.
"""

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxrnn.cells.base import check_positive
from jaxrnn.models import Model
from jaxrnn.models.heads import Linear, linear, linear_init
from jaxrnn.models.sequence import bound_input_size
from jaxrnn.tasks import losses
from jaxrnn.tasks.data import Dataset
from jaxrnn.tasks.objectives import Objective, mean
from jaxrnn.trees.builders import Trees, batch_trees, from_nested
from jaxrnn.trees.cells import TreeCell
from jaxrnn.trees.evaluation import evaluate

VOCAB = "0123456789+-*()"  # token id = index; trees use the first 13
OPERATORS = "+-*"
NUM_CLASSES = 10
FORMS = ("tree", "sequence")

# An expression: a digit, or (operator, left operand, right operand).
Expression = int | tuple


def random_expression(rng: np.random.Generator, num_ops: int) -> Expression:
    """A random expression with exactly ``num_ops`` operators.

    The left operand gets ``k ~ U{0, ..., num_ops - 1}`` of the remaining operators
    (the split of a random binary search tree), so shapes range from balanced to
    chains; operators and digits are uniform.
    """
    if num_ops == 0:
        return int(rng.integers(10))
    op = OPERATORS[int(rng.integers(len(OPERATORS)))]
    left = int(rng.integers(num_ops))
    return (
        op,
        random_expression(rng, left),
        random_expression(rng, num_ops - 1 - left),
    )


def to_text(e: Expression) -> str:
    """Fully parenthesised infix: ``("*", ("+", 3, 4), 2) -> "((3+4)*2)"``."""
    if isinstance(e, tuple):
        op, left, right = e
        return f"({to_text(left)}{op}{to_text(right)})"
    return str(e)


def label(e: Expression) -> int:
    """The value of ``e`` modulo 10, reduced at every node (never a large integer)."""
    if isinstance(e, tuple):
        op, left, right = e
        a, b = label(left), label(right)
        return {"+": a + b, "-": a - b, "*": a * b}[op] % 10
    return e


def _post_order_tokens(e: Expression) -> list[int]:
    if isinstance(e, tuple):
        op, left, right = e
        return [*_post_order_tokens(left), *_post_order_tokens(right), VOCAB.index(op)]
    return [e]


def _operands(e: Expression):
    return (_operands(e[1]), _operands(e[2])) if isinstance(e, tuple) else e


def to_tree(e: Expression) -> Trees:
    """The expression tree: a single :class:`Trees` of token ids ``x: [2n + 1]``."""
    # from_nested numbers nodes in post-order, as _post_order_tokens lists them.
    tree = from_nested(_operands(e))
    return tree._replace(x=np.asarray(_post_order_tokens(e), np.int32))


def generate(
    num: int,
    min_ops: int,
    max_ops: int,
    *,
    seed: int,
    exclude: frozenset[str] = frozenset(),
) -> list[Expression]:
    """``num`` random expressions with ``U{min_ops, ..., max_ops}`` operators each.

    Args:
      num: how many.
      min_ops, max_ops: the range of operator counts.
      seed: NumPy seed; the same arguments give the same expressions.
      exclude: strings (:func:`to_text`) never to return, e.g. the training set's,
        so that a test set is held out. A draw that is excluded is redrawn (with
        a new operator count), so a range whose short expressions are all
        excluded yields longer ones.
    """
    check_positive("num", num)
    check_positive("min_ops", min_ops)
    if max_ops < min_ops:
        raise ValueError(f"max_ops: expected at least min_ops={min_ops}, got {max_ops}")
    rng = np.random.default_rng(seed)
    out, tries = [], 0
    while len(out) < num:
        tries += 1
        if tries > 100 * num:
            raise ValueError(
                f"exclude: could not draw {num} expressions with {min_ops}..{max_ops} operators "
                f"outside the {len(exclude)} excluded ones (got {len(out)}); raise max_ops"
            )
        e = random_expression(rng, int(rng.integers(min_ops, max_ops + 1)))
        if to_text(e) not in exclude:
            out.append(e)
    return out


class ExpressionSet(NamedTuple):
    """A finite set of expressions in both forms (NumPy), padded to ``n`` operators."""

    text: tuple[str, ...]  # [S] fully parenthesised infix
    trees: Trees  # batched: x [S, 2n+1] token ids, children [S, 2n+1, 2], ...
    tokens: np.ndarray  # [S, 4n+1] int32 token ids of the text, padded with 0
    token_mask: np.ndarray  # [S, 4n+1] bool, True on the characters
    ops: np.ndarray  # [S] int32 number of operators
    labels: np.ndarray  # [S] int32 value mod 10


def encode(expressions: list[Expression], max_ops: int) -> ExpressionSet:
    """Both forms of ``expressions``, padded to ``max_ops`` operators (``2n+1`` nodes,
    ``4n+1`` characters)."""
    text = tuple(to_text(e) for e in expressions)
    length = 4 * max_ops + 1
    tokens = np.zeros((len(text), length), np.int32)
    mask = np.zeros((len(text), length), bool)
    for i, s in enumerate(text):
        if len(s) > length:
            raise ValueError(
                f"max_ops: expected at least the operator count of {s!r} ({(len(s) - 1) // 4}), "
                f"got {max_ops}"
            )
        tokens[i, : len(s)] = [VOCAB.index(c) for c in s]
        mask[i, : len(s)] = True
    return ExpressionSet(
        text=text,
        trees=batch_trees([to_tree(e) for e in expressions], max_nodes=2 * max_ops + 1),
        tokens=tokens,
        token_mask=mask,
        ops=np.asarray([(len(s) - 1) // 4 for s in text], np.int32),
        labels=np.asarray([label(e) for e in expressions], np.int32),
    )


class Splits(NamedTuple):
    """The three expression sets of the experiment."""

    train: ExpressionSet
    validation: ExpressionSet
    test: ExpressionSet


# Memoised: the sweep members of a group and the evaluation of a run share one draw.
@functools.cache
def splits(
    max_ops: int,
    *,
    num_train: int,
    num_test: int = 1000,
    num_validation: int = 1000,
    test_max_ops: int | None = None,
    seed: int = 0,
) -> Splits:
    """The training, validation and test sets.

    Training: ``num_train`` expressions with 1..``max_ops`` operators. Test:
    ``num_test`` expressions of the same range that are not in the training set,
    then (if ``test_max_ops > max_ops``) ``num_test`` longer ones with
    ``max_ops + 1 .. test_max_ops`` operators; padded to the longest. Validation,
    which chooses the model: ``num_validation`` expressions of the training range
    in neither of the others (the longer test expressions are never looked at
    before the test).
    """
    check_positive("max_ops", max_ops)
    if test_max_ops is not None and test_max_ops < max_ops:
        raise ValueError(f"test_max_ops: expected at least max_ops={max_ops}, got {test_max_ops}")
    train = generate(num_train, 1, max_ops, seed=seed)
    seen = frozenset(map(to_text, train))
    test = generate(num_test, 1, max_ops, seed=seed + 1, exclude=seen)
    top = max_ops if test_max_ops is None else test_max_ops
    if top > max_ops:
        test += generate(num_test, max_ops + 1, top, seed=seed + 2)
    held_out = seen | frozenset(map(to_text, test))
    validation = generate(num_validation, 1, max_ops, seed=seed + 3, exclude=held_out)
    return Splits(encode(train, max_ops), encode(validation, max_ops), encode(test, top))


class ExpressionBatch(NamedTuple):
    """A batch of expressions in one form, for ``many_to_one`` or :func:`tree_classifier`."""

    inputs: Trees | jax.Array  # Trees with one-hot x [B, N, V], or one-hot tokens [B, T, V]
    targets: jax.Array  # [B] int32 value mod 10
    mask: jax.Array  # [B, N] real nodes, or [B, T] characters
    ops: jax.Array  # [B] int32 number of operators


def dataset(sets: Splits, form: str) -> Dataset:
    """The splits as a :class:`~jaxrnn.tasks.data.Dataset` whose batches are
    :class:`ExpressionBatch` es in ``form`` ``"tree"`` or ``"sequence"`` (one-hot tokens
    of :data:`VOCAB`, ten classes)."""
    if form not in FORMS:
        raise ValueError(f"form: expected one of {FORMS}, got {form!r}")
    V = len(VOCAB)

    def collate(examples: ExpressionSet) -> ExpressionBatch:
        if form == "tree":
            trees = examples.trees
            inputs = trees._replace(x=jax.nn.one_hot(trees.x, V, dtype=jnp.float32))
            mask = trees.node_mask
        else:
            mask = examples.token_mask
            inputs = jax.nn.one_hot(examples.tokens, V, dtype=jnp.float32)
        return ExpressionBatch(inputs, examples.labels, mask, examples.ops)

    # Arrays only: the strings stay out of the data set's pytree.
    arrays = [s._replace(text=()) for s in sets]
    return Dataset(*arrays, collate=collate)


class TreeClassifierParams(NamedTuple):
    """The tree cell's params and the readout of the root."""

    cell: object
    readout: Linear  # [H, O]


def tree_classifier(cell: TreeCell, output_size: int, *, input_size: int | None = None) -> Model:
    """A tree cell evaluated bottom-up, then a linear readout of the root's ``h``.

        logits = h_root W + b

    ``apply(params, trees, *, mask=None, key=None) -> [B, O]`` (``mask`` and ``key``
    are accepted for the :class:`~jaxrnn.models.Model` interface and unused: padding
    nodes are in ``trees.node_mask``). It runs ``(N + 1) // 2`` levels, the height
    bound of a tree of ``N`` nodes whose internal nodes all have two or more
    children (expression trees); taller trees would leave their root unset.
    ``input_size``: the node inputs' size, so that ``init(key)`` needs none.
    """
    check_positive("output_size", output_size)

    def init(key, size: int | None = None) -> TreeClassifierParams:
        size = bound_input_size(size, input_size)
        k_cell, k_out = jax.random.split(key)
        params = cell.init(k_cell, size)
        h = cell.initial_state(params).h
        return TreeClassifierParams(params, linear_init(k_out, h.shape[-1], output_size, h.dtype))

    def apply(params: TreeClassifierParams, trees: Trees, *, mask=None, key=None) -> jax.Array:
        num_levels = (trees.level.shape[-1] + 1) // 2
        _, root = evaluate(cell, params.cell, trees, num_levels=num_levels)
        return linear(params.readout, root.h)

    return Model(init, apply)


def objective(model: Model, max_ops: int | None = None) -> Objective:
    """Cross-entropy (nats) and accuracy of a classifier of :class:`ExpressionBatch` es.

    With ``max_ops`` (the training range) evaluation also splits the accuracy into
    ``accuracy_iid`` (held-out expressions with at most ``max_ops`` operators) and
    ``accuracy_longer`` (more operators than any training expression), exact means
    over a split's expressions of each kind.
    """

    def loss(params, batch: ExpressionBatch, key):
        logits = model.apply(params, batch.inputs, mask=batch.mask, key=key)
        ce = losses.cross_entropy(logits, batch.targets)
        metrics = {"loss": ce, "accuracy": losses.accuracy(logits, batch.targets)}
        if key is None and max_ops is not None:
            right = losses.item_correct(logits, batch.targets)
            iid = batch.ops <= max_ops
            metrics["accuracy_iid"] = mean(right, iid)
            metrics["accuracy_longer"] = mean(right, ~iid)
        return ce, metrics

    directions = {"accuracy": "max", "accuracy_iid": "max", "accuracy_longer": "max"}
    return Objective(loss, directions)
