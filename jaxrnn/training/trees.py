"""The tree experiment's part of ``loop.build``: expression tasks, tree cells and their model.

One config compares the two readers of an arithmetic expression
(:mod:`jaxrnn.trees.expressions`): ``model.cell`` a tree cell reads the expression
tree, a sequence cell (``lstm``, ``gru``, ``elman``) its fully parenthesised string,
on the same expressions with the same one-hot tokens.
"""

from jaxrnn import trees
from jaxrnn.data import Task
from jaxrnn.models import Model, many_to_one
from jaxrnn.training.config import TREE_CELLS, ModelConfig, TaskConfig
from jaxrnn.training.step import make_eval_step
from jaxrnn.trees import expressions


def make_tree_cell(cfg: ModelConfig) -> trees.TreeCell:
    """The tree cell named by ``cfg.cell`` (one of ``config.TREE_CELLS``)."""
    H = cfg.hidden_size
    if cfg.cell == "binary_tree_lstm":
        return trees.nary_tree_lstm(H, arity=2, forget_bias=cfg.forget_bias)
    if cfg.cell == "child_sum_tree_lstm":
        return trees.child_sum_tree_lstm(H, forget_bias=cfg.forget_bias)
    if cfg.cell == "recursive":
        return trees.recursive(H, arity=2, activation=cfg.activation)
    raise ValueError(f"cell: expected one of {TREE_CELLS}, got {cfg.cell!r}")


def expressions_task(cfg: TaskConfig, split: str, *, tree: bool) -> Task:
    """The ``split`` (``"train"`` or ``"test"``) of the expressions, as trees or as strings."""
    if split not in ("train", "test"):
        raise ValueError(f"split: expected 'train' or 'test', got {split!r}")
    train, test = expressions.splits(
        cfg.max_ops, num_train=cfg.num_train, test_max_ops=cfg.test_max_ops
    )
    data = train if split == "train" else test
    return expressions.task(data, "tree" if tree else "sequence", name=f"expressions-{split}")


def expressions_model(cfg: TaskConfig, cell, task: Task):
    """``(model, objective, eval_step)``: a tree classifier for a tree cell, else
    ``many_to_one``; the evaluation splits accuracy by length when the test set has
    longer expressions than training."""
    if isinstance(cell, trees.TreeCell):
        model: Model = expressions.tree_classifier(cell, task.output_size)
    else:
        model = many_to_one(cell, task.output_size)
    longer = cfg.test_max_ops is not None and cfg.test_max_ops > cfg.max_ops
    eval_objective = expressions.objective(model, cfg.max_ops if longer else None)
    return model, expressions.objective(model), make_eval_step(eval_objective)
