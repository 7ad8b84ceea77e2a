"""jaxrnn train configs/expressions_treelstm.py

A binary Tree-LSTM (Tai et al. 2015, N-ary with N = 2; H = 48) evaluates random
arithmetic expressions over the digits with ``+ - *`` (value mod 10, ten classes;
see :mod:`jaxrnn.trees.expressions`) from their trees, level by level. Training:
a fixed set of 20,000 expressions with 1-6 operators; test: 1,000 held-out ones
with 1-6 operators and 1,000 longer ones with 7-12 (up to twice the length, and
as deep as 12 levels where training stops at 6). Batches of 32, 6,000 steps
(9.6 epochs). Adam 3e-3 after global-norm clipping at 1.

The comparison, a sequence LSTM reading the same expressions as fully
parenthesised strings (``((3+4)*2)``, one-hot characters), with about the same
number of parameters (H = 73: 26,728 vs 26,602 for the Tree-LSTM), is one command::

    jaxrnn train configs/expressions_treelstm.py model.cell=lstm model.hidden_size=73

``model.cell=child_sum_tree_lstm`` (order-blind: it cannot tell ``a-b`` from ``b-a``)
and ``model.cell=recursive`` (Socher et al. 2011) are the other tree cells.

Expected (measured on 2 shared CPU cores, seed 0, ~11 min under a load average of 15):
test accuracy 92.4% on the held-out 1-6 operator expressions and 70.6% on the 7-12
operator ones (cross-entropy 0.55; the most frequent class is 20%); the LSTM
comparison: 34.9% and 26.7% (cross-entropy 1.57). The Tree-LSTM's accuracy rises
late (46% at step 3,000). Details and the other cells: experiments/README.md.
"""

from jaxrnn.training.config import Config, ModelConfig, OptimConfig, TaskConfig, TrainConfig


def get_config(smoke: bool = False) -> Config:
    """The expressions experiment; ``smoke``: a seconds-long run on 200 short expressions."""
    return Config(
        name="expressions_treelstm",
        seed=0,
        task=TaskConfig(
            name="expressions",
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
            # One batch takes the whole test split (2,000 expressions).
            eval_batch_size=64 if smoke else 2000,
            eval_batches=1,
            checkpoint_every=30 if smoke else 1000,
            best_metric="accuracy",
        ),
    )
