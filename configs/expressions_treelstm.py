"""jaxrnn train expressions_treelstm

A binary Tree-LSTM (Tai et al. 2015, N-ary with N = 2; H = 48) evaluates random
arithmetic expressions over the digits with ``+ - *`` (value mod 10, ten classes;
see :mod:`jaxrnn.tasks.expressions`) from their trees, level by level. Training:
a fixed set of 20,000 expressions with 1-6 operators; validation (model choice):
1,000 held-out ones with 1-6 operators; test: 1,000 other held-out ones with 1-6
operators and 1,000 longer ones with 7-12 (up to twice the length, and as deep as
12 levels where training stops at 6). Batches of 32, 6,000 steps (9.6 epochs).
Adam 3e-3 after global-norm clipping at 1.

The comparison, a sequence LSTM reading the same expressions as fully
parenthesised strings (``((3+4)*2)``, one-hot characters), with about the same
number of parameters (H = 73: 26,728 vs 26,602 for the Tree-LSTM), is one command::

    jaxrnn train expressions_treelstm model.cell=lstm model.hidden_size=73

``model.cell=child_sum_tree_lstm`` (order-blind: it cannot tell ``a-b`` from ``b-a``)
and ``model.cell=recursive`` (Socher et al. 2011) are the other tree cells.

Expected (measured on 2 CPU cores, seed 0): test accuracy about 92% on the held-out
1-6 operator expressions and 70% on the 7-12 operator ones (the most frequent class
is 20%); the LSTM comparison stays near 30%. Figures: experiments/README.md.
"""

from pydantic import PositiveInt, model_validator

from jaxrnn import models, tasks
from jaxrnn.cells import registry
from jaxrnn.tasks import expressions
from jaxrnn.training import Config, ModelConfig, OptimConfig, TrainConfig, make_cell, section
from jaxrnn.trees import TreeCell


@section
class Expressions:
    """The expression sets.

    Attributes:
      max_ops: training (and validation) expressions have 1..``max_ops`` operators.
      test_max_ops: the test split adds as many expressions with ``max_ops + 1 ..
        test_max_ops`` operators (longer and deeper than any in training); None:
        only held-out expressions of the training range.
      num_train: the size of the finite training set.
    """

    max_ops: PositiveInt = 6
    test_max_ops: PositiveInt | None = 12
    num_train: PositiveInt = 20_000

    @model_validator(mode="after")
    def _check(self):
        if self.test_max_ops is not None and self.test_max_ops < self.max_ops:
            raise ValueError(
                f"test_max_ops={self.test_max_ops} must be >= max_ops={self.max_ops} "
                "(or none: test on the training range only)"
            )
        return self


def get_config(smoke: bool = False) -> Config:
    """The expressions experiment; ``smoke``: a seconds-long run on 200 short expressions."""
    return Config(
        name="expressions_treelstm",
        seed=0,
        task=Expressions(
            max_ops=3 if smoke else 6,
            test_max_ops=5 if smoke else 12,
            num_train=200 if smoke else 20_000,
        ),
        model=ModelConfig(cell="binary_tree_lstm", hidden_size=16 if smoke else 48),
        optim=OptimConfig(name="adam", learning_rate=3e-3, clip_norm=1.0),
        train=TrainConfig(
            steps=30 if smoke else 6000,
            batch_size=16 if smoke else 32,
            eval_every=30 if smoke else 500,
            eval_batch_size=64 if smoke else 1000,
            checkpoint_every=30 if smoke else 1000,
            best_metric="accuracy",
        ),
    )


def _reads_trees(config: Config) -> bool:
    return registry.lookup(config.model.cell).kind == "tree"


def get_data(config: Config) -> tasks.Dataset:
    """The three sets, as trees for a tree cell and as strings for a sequence cell."""
    t = config.task
    sets = expressions.splits(t.max_ops, num_train=t.num_train, test_max_ops=t.test_max_ops)
    return expressions.dataset(sets, "tree" if _reads_trees(config) else "sequence")


def get_model(config: Config, data) -> models.Model:
    """A tree classifier for a tree cell; a sequence classifier (``many_to_one``) else."""
    cell, size = make_cell(config.model), len(expressions.VOCAB)
    if isinstance(cell, TreeCell):
        return expressions.tree_classifier(cell, expressions.NUM_CLASSES, input_size=size)
    return models.many_to_one(cell, expressions.NUM_CLASSES, input_size=size)


def get_objective(config: Config, model, data) -> tasks.Objective:
    """Cross-entropy and accuracy; at evaluation also accuracy by length (held-out
    expressions of the training range, longer ones)."""
    t = config.task
    longer = t.test_max_ops is not None and t.test_max_ops > t.max_ops
    return expressions.objective(model, t.max_ops if longer else None)


def get_baseline(config: Config, data, test) -> tasks.Baseline:
    """The training label frequencies."""
    return tasks.class_prior(data, test, expressions.NUM_CLASSES)
