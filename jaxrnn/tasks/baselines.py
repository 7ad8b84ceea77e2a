"""Baselines beside a model's test figure: fitted on the training split, scored on the test split.

A result means something only beside what a model that ignores its input
achieves on the same examples. An experiment's optional
``get_baseline(config, data, test)`` returns a :class:`Baseline`, given the
batches the run scores its test split on (``test``); the helpers here fit the
best *input-independent* predictor of the common objectives on the training
split and score it on ``test``, never on the split it was fitted on:

* :func:`mean_predictor`: predict the training targets' mean (MSE);
* :func:`class_prior`: predict the training class frequencies (cross-entropy);
* :func:`token_prior`: predict the training token frequencies over the valid
  steps (cross-entropy per token, nats);
* :func:`position_prior`: predict, at each target position, the training
  frequencies of that position (a decoder that never reads its source);
* :func:`nearest_neighbour`: the label of the closest training sequence (1-NN,
  Euclidean), the classic classifier that reads the input without learning.

A stream's training split is sampled: ``fit_batches`` batches the size of the
test batches, under a key of its own.
"""

from typing import NamedTuple

import jax
import numpy as np

from jaxrnn.tasks.data import Dataset, Stream, batch_size_of, draw, num_examples, train_batch

# The key of the training draws a baseline of a stream is fitted on.
_FIT_KEY = 0x0BA5E


class Baseline(NamedTuple):
    """A named reference figure: ``metrics`` as the objective names them (``{"loss": 0.167}``)."""

    name: str
    metrics: dict[str, float]


def _training_examples(data: Stream | Dataset, test: list, fit_batches: int) -> list:
    if isinstance(data, Dataset):
        # The whole training split, once (in a permuted order, which a fit ignores).
        return [train_batch(data, jax.random.key(0), 0, num_examples(data.train))]
    fn, key = draw(data.train), jax.random.key(_FIT_KEY)
    return [fn(key, s, batch_size_of(test[0])) for s in range(fit_batches)]


def _stack(batches: list, field: str, mask: bool = False) -> np.ndarray:
    parts = []
    for batch in batches:
        values = np.asarray(getattr(batch, field))
        parts.append(values[np.asarray(batch.mask)] if mask else values.reshape(len(values), -1))
    return np.concatenate(parts)


def mean_predictor(data: Stream | Dataset, test: list, *, fit_batches: int = 8) -> Baseline:
    """Predict the mean of the training targets; its MSE on ``test`` (``loss``).

    ``targets`` of shape ``[B]`` or ``[B, O]`` (one mean per output).
    """
    fit = _stack(_training_examples(data, test, fit_batches), "targets").mean(axis=0)
    scored = _stack(test, "targets")
    return Baseline("the training mean", {"loss": float(np.mean((scored - fit) ** 2))})


def _prior_nats(fit_labels: np.ndarray, test_labels: np.ndarray, num_classes: int) -> float:
    # Add-one smoothing: a class unseen in training must not give an infinite loss.
    counts = np.bincount(fit_labels.ravel(), minlength=num_classes).astype(np.float64) + 1.0
    log_p = np.log(counts / counts.sum())
    return float(-np.mean(log_p[test_labels.ravel()]))


def class_prior(
    data: Stream | Dataset,
    test: list,
    num_classes: int,
    *,
    fit_batches: int = 8,
) -> Baseline:
    """Predict the training class frequencies (add-one smoothed); the cross-entropy
    (nats) of integer ``targets [B]`` on ``test`` (``loss``)."""
    fit = _stack(_training_examples(data, test, fit_batches), "targets")
    nats = _prior_nats(fit, _stack(test, "targets"), num_classes)
    return Baseline("the training class frequencies", {"loss": nats})


def token_prior(
    data: Stream | Dataset,
    test: list,
    vocab_size: int,
    *,
    fit_batches: int = 8,
) -> Baseline:
    """Predict the training token frequencies at every valid step (add-one smoothed);
    the cross-entropy per valid token of ``targets [B, T]`` on ``test`` (``loss``,
    nats, and ``bits_per_token``)."""
    fit = _stack(_training_examples(data, test, fit_batches), "targets", mask=True)
    nats = _prior_nats(fit, _stack(test, "targets", mask=True), vocab_size)
    return Baseline(
        "the training token frequencies", {"loss": nats, "bits_per_token": nats / np.log(2.0)}
    )


def position_prior(
    data: Stream | Dataset,
    test: list,
    vocab_size: int,
    *,
    fit_batches: int = 8,
) -> Baseline:
    """Predict, at each position ``t`` of ``targets [B, T]``, the training frequencies of
    the tokens at ``t`` (add-one smoothed); the cross-entropy per valid token on ``test``
    (``loss``, nats)."""
    fit = _training_examples(data, test, fit_batches)
    targets = np.concatenate([np.asarray(b.targets) for b in fit])
    mask = np.concatenate([np.asarray(b.mask) for b in fit])
    total, count = 0.0, 0
    for t in range(targets.shape[1]):
        counts = np.bincount(targets[mask[:, t], t], minlength=vocab_size) + 1.0
        log_p = np.log(counts / counts.sum())
        for batch in test:
            valid = np.asarray(batch.mask)[:, t]
            total -= log_p[np.asarray(batch.targets)[valid, t]].sum()
            count += int(valid.sum())
    return Baseline("the training frequencies per position", {"loss": total / max(count, 1)})


def nearest_neighbour(data: Dataset, test: list) -> Baseline:
    """1-NN: each test sequence takes the label of the training sequence nearest to it
    (Euclidean over its ``inputs``, padded steps included); ``accuracy`` on ``test``.

    For data sets of equal-length sequences (MNIST-1D, digits); it fits the whole
    training split, scikit-learn's ``KNeighborsClassifier(1)``.
    """
    from sklearn.neighbors import KNeighborsClassifier

    train = _training_examples(data, test, 1)
    labels = _stack(train, "targets").ravel()
    knn = KNeighborsClassifier(n_neighbors=1).fit(_stack(train, "inputs"), labels)
    right = knn.predict(_stack(test, "inputs")) == _stack(test, "targets").ravel()
    return Baseline("1-NN (Euclidean)", {"accuracy": float(np.mean(right))})
