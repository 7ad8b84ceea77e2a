"""CTC (``jaxrnn.tasks.ctc``) against brute force: every frame path of a few frames
enumerated, collapsed and summed by hand, for the loss and for the decoders."""

import itertools

import jax
import numpy as np
import pytest

from jaxrnn.tasks import ctc


def _collapse(path):
    merged = [k for t, k in enumerate(path) if t == 0 or k != path[t - 1]]
    return tuple(k for k in merged if k != ctc.BLANK)


def _labellings(log_probs):
    """{labelling: probability}, by summing the probability of every path."""
    T, K = log_probs.shape
    totals = {}
    for path in itertools.product(range(K), repeat=T):
        p = np.exp(sum(log_probs[t, k] for t, k in enumerate(path)))
        totals[_collapse(path)] = totals.get(_collapse(path), 0.0) + p
    return totals


def _log_probs(seed, T, K):
    logits = np.random.default_rng(seed).normal(size=(T, K)) * 2.0
    return logits - np.log(np.exp(logits).sum(-1, keepdims=True))


# optax.ctc_loss mixes a float32 constant into float64 logits, which the suite's strict
# dtype promotion refuses.
@pytest.mark.usefixtures("standard_dtype_promotion")
@pytest.mark.parametrize("seed", range(4))
def test_the_loss_is_minus_the_log_of_the_summed_paths(seed):
    T, K = 5, 3
    log_probs = _log_probs(seed, T, K)
    totals = _labellings(log_probs)
    # Two sequences in one batch: the second padded to 3 frames and 1 label.
    labels = np.array([[1, 2, 2], [2, 0, 0]])
    mask = np.array([[True] * 5, [True] * 3 + [False] * 2])
    logits = np.stack([log_probs, log_probs]).astype(np.float64)
    with jax.enable_x64():
        nll = np.asarray(ctc.loss(logits, mask, labels))
    assert nll[0] == pytest.approx(-np.log(totals[(1, 2, 2)]), rel=1e-9)
    short = _labellings(log_probs[:3])
    assert nll[1] == pytest.approx(-np.log(short[(2,)]), rel=1e-9)


@pytest.mark.parametrize("seed", range(6))
def test_decoders_against_enumerated_paths(seed):
    T, K = 6, 3
    log_probs = _log_probs(seed, T, K)
    totals = _labellings(log_probs)
    # A beam that keeps every prefix finds the most probable labelling exactly.
    best = max(totals, key=totals.get)
    assert tuple(ctc.prefix_beam_search(log_probs, beam=K**T)) == best
    # Greedy: the collapsed most probable path.
    path = max(itertools.product(range(K), repeat=T),
               key=lambda p: sum(log_probs[t, k] for t, k in enumerate(p)))  # fmt: skip
    assert tuple(ctc.greedy(log_probs)) == _collapse(path)


def test_a_beam_finds_a_labelling_that_the_best_path_misses():
    # Frame by frame: blank 0.6 / "1" 0.4, twice. The best path is blank-blank (0.36:
    # nothing), but "1" is more probable (0.4·0.6 + 0.6·0.4 + 0.4·0.4 = 0.64).
    log_probs = np.log(np.array([[0.6, 0.4], [0.6, 0.4]]))
    assert ctc.greedy(log_probs) == []
    assert ctc.prefix_beam_search(log_probs, beam=2) == [1]
    with pytest.raises(ValueError, match="beam: expected a positive int, got 0"):
        ctc.prefix_beam_search(log_probs, beam=0)


def test_edit_distance_and_label_error_rate():
    assert ctc.edit_distance("kitten", "sitting") == 3
    assert ctc.edit_distance([], [1, 2]) == 2 and ctc.edit_distance([1, 2, 3], [1, 3]) == 1
    assert ctc.edit_distance([4, 1], [1, 4]) == 2
    # 1 substitution + 2 deletions over 3 + 2 true labels.
    assert ctc.label_error_rate([[1, 9, 3], []], [[1, 2, 3], [5, 6]]) == pytest.approx(3 / 5)
    with pytest.raises(ValueError, match="decoded: expected 2 sequences, got 1"):
        ctc.label_error_rate([[1]], [[1], [2]])
