"""Connectionist temporal classification: the objective of a frame-labelling model, its
decoders and the label error rate.

A model reads ``T`` frames and gives logits ``[B, T, K]`` over ``K - 1`` labels and the
blank (id 0). CTC (Graves et al. 2006) sums the probability of every frame path that
collapses to the target labels (repeats merged, then blanks removed):
``optax.ctc_loss``. Decoding:

* :func:`greedy`: the best path, collapsed (the most probable frame label at each step);
* :func:`prefix_beam_search`: the ``beam`` most probable label prefixes, each scored by
  the total probability of its paths, split into those ending in a blank and those
  ending in its last label (Hannun et al. 2014, without a language model). With a
  beam that keeps every prefix it finds the most probable labelling exactly.

The label error rate (:func:`label_error_rate`) is the total edit distance between the
decoded and the true labels over the total number of true labels.

References:
  Graves, Fernández, Gomez, Schmidhuber (2006). Connectionist Temporal Classification:
  Labelling Unsegmented Sequence Data with Recurrent Neural Networks. ICML.
  Hannun, Maas, Jurafsky, Ng (2014). First-Pass Large Vocabulary Continuous Speech
  Recognition using Bi-Directional Recurrent DNNs. arXiv:1408.2873.
"""

import collections
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxrnn.tasks.data import Batch
from jaxrnn.tasks.objectives import Objective

BLANK = 0


def loss(logits: jax.Array, mask: jax.Array, labels: jax.Array) -> jax.Array:
    """The CTC negative log-likelihood of each sequence, ``[B]``.

    Args:
      logits: ``[B, T, K]``, blank id 0.
      mask: ``[B, T]`` bool, True at the valid frames.
      labels: ``[B, N]`` int, ids ``1..K-1`` right-padded with 0 (the blank is never a label).
    """
    return optax.ctc_loss(
        logits, (~mask).astype(logits.dtype), labels, (labels == BLANK).astype(logits.dtype),
        blank_id=BLANK,
    )  # fmt: skip


def greedy(log_probs: np.ndarray) -> list[int]:
    """The best path of ``log_probs [T, K]`` (the valid frames), collapsed: repeats
    merged, blanks removed."""
    best = np.argmax(log_probs, axis=-1)
    return [int(k) for t, k in enumerate(best) if k != BLANK and (t == 0 or k != best[t - 1])]


def prefix_beam_search(log_probs: np.ndarray, beam: int) -> list[int]:
    """The most probable labelling of ``log_probs [T, K]`` (the valid frames) that a beam
    of ``beam`` prefixes finds (module docstring)."""
    if not isinstance(beam, int) or beam < 1:
        raise ValueError(f"beam: expected a positive int, got {beam!r}")
    probs = np.exp(np.asarray(log_probs, np.float64))
    # prefix -> (p of its paths ending in a blank, p of those ending in its last label);
    # probabilities, renormalised each step (the ranking is all that is used).
    beams = {(): (1.0, 0.0)}
    for p in probs:
        grown = collections.defaultdict(lambda: [0.0, 0.0])
        for prefix, (p_blank, p_label) in beams.items():
            total = p_blank + p_label
            grown[prefix][0] += total * p[BLANK]
            if prefix:  # the last label repeated without a blank: the same prefix
                grown[prefix][1] += p_label * p[prefix[-1]]
            for k in range(1, len(p)):
                # After its own label, k starts a new label only from a blank.
                start = p_blank if prefix and k == prefix[-1] else total
                grown[(*prefix, k)][1] += start * p[k]
        ranked = sorted(grown.items(), key=lambda item: -sum(item[1]))[:beam]
        norm = sum(sum(v) for _, v in ranked) or 1.0
        beams = {prefix: (v[0] / norm, v[1] / norm) for prefix, v in ranked}
    return list(max(beams.items(), key=lambda item: sum(item[1]))[0])


def edit_distance(a: Sequence, b: Sequence) -> int:
    """Levenshtein distance: the fewest insertions, deletions and substitutions from
    ``a`` to ``b``."""
    previous = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        current = [i]
        for j, y in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (x != y)))
        previous = current
    return previous[-1]


def label_error_rate(decoded: Sequence[Sequence], truth: Sequence[Sequence]) -> float:
    """The summed edit distance over the summed true lengths."""
    if len(decoded) != len(truth):
        raise ValueError(f"decoded: expected {len(truth)} sequences, got {len(decoded)}")
    errors = sum(edit_distance(d, t) for d, t in zip(decoded, truth, strict=True))
    return errors / max(sum(len(t) for t in truth), 1)


def objective(model, beam: int) -> Objective:
    """CTC over :class:`~jaxrnn.tasks.data.Batch` es of frames (``inputs [B, T, F]``,
    ``mask [B, T]``) and labels (``targets [B, N]``, 0-padded): ``loss``, the mean
    negative log-likelihood per sequence; at evaluation, on the host, the label error
    rates of greedy decoding (``ler_greedy``) and of prefix beam search of ``beam``
    (``ler``)."""

    def ctc(params, batch: Batch, key):
        logits = model.apply(params, batch.inputs, mask=batch.mask, key=key)
        nll = jnp.mean(loss(logits, batch.mask, batch.targets))
        return nll, {"loss": nll}

    log_probs = jax.jit(
        lambda params, inputs, mask: jax.nn.log_softmax(model.apply(params, inputs, mask=mask))
    )

    def evaluate(params, batches) -> dict[str, float]:
        truth, best, searched = [], [], []
        for batch in batches:
            scores = np.asarray(log_probs(params, batch.inputs, batch.mask))
            for s, n, labels in zip(scores, np.sum(batch.mask, 1), np.asarray(batch.targets),
                                    strict=True):  # fmt: skip
                truth.append([int(k) for k in labels if k != BLANK])
                best.append(greedy(s[:n]))
                searched.append(prefix_beam_search(s[:n], beam))
        return {
            "ler": label_error_rate(searched, truth),
            "ler_greedy": label_error_rate(best, truth),
        }

    return Objective(ctc, {"ler": "min", "ler_greedy": "min"}, evaluate=evaluate)
