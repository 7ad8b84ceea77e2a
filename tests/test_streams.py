"""Truncated BPTT over contiguous streams (``jaxrnn.tasks.streams``) and the stream
language model of ``configs/shakespeare_tbptt.py``, against NumPy slicing of the token
sequence, the counts and unigram figures of ``BASELINES.md``, and one rollout over a
whole held-out segment."""

import collections
import itertools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxrnn.tasks import shakespeare, streams
from jaxrnn.training import experiment as experiment_lib

IDS = np.arange(1000, 1103, dtype=np.int32)  # 103 tokens, each its own value
STARTS = np.isin(np.arange(103), [0, 40, 77])  # three documents


def test_training_lanes_continue_from_window_to_window_and_wrap_with_a_reset():
    batch = streams.training_windows(IDS, STARTS, 6)
    lane, windows = 103 // 4, (103 // 4 - 1) // 6  # 25 tokens a lane, 4 windows
    for step in range(2 * windows + 1):
        b = batch(None, step, 4)
        first = (step % windows) * 6
        for row in range(4):
            expect = IDS[row * lane + first : row * lane + first + 7]
            np.testing.assert_array_equal(b.inputs[row], expect[:-1])
            np.testing.assert_array_equal(b.targets[row], expect[1:])
            resets = STARTS[row * lane + first : row * lane + first + 6].copy()
            resets[0] |= step % windows == 0  # a new pass over the lane
            np.testing.assert_array_equal(b.resets[row], resets)
        assert bool(jnp.all(b.mask))
    # The next window of a lane starts at the token after the last input of this one.
    b0, b1 = batch(None, 0, 4), batch(None, 1, 4)
    np.testing.assert_array_equal(b0.targets[:, -1], b1.inputs[:, 0])
    with pytest.raises(ValueError, match=r"batch_size: 20 lanes of 103 tokens hold 5 each"):
        batch(None, 0, 20)


def test_held_out_segments_score_every_target_once_each_from_its_start():
    segments = [(IDS[:40], STARTS[:40]), (IDS[40:], STARTS[40:]), (IDS[90:95], STARTS[90:95])]
    scored = streams.scored_segments(segments, 7)
    assert (scored.lanes, scored.windows) == (3, math.ceil((63 - 1) / 7))
    batches = [scored.batch(None, i, 3) for i in range(scored.windows)]
    for k, (ids, starts) in enumerate(segments):
        targets = np.concatenate([np.asarray(b.targets[k])[np.asarray(b.mask[k])] for b in batches])
        np.testing.assert_array_equal(targets, ids[1:])  # each once, in order
        inputs = np.concatenate([np.asarray(b.inputs[k])[np.asarray(b.mask[k])] for b in batches])
        np.testing.assert_array_equal(inputs, ids[:-1])
        resets = np.concatenate([np.asarray(b.resets[k])[np.asarray(b.mask[k])] for b in batches])
        expected = starts[:-1].copy()
        expected[0] = True  # a segment starts its own stream
        np.testing.assert_array_equal(resets, expected)
    with pytest.raises(ValueError, match=r"eval_batch_size: expected 3 \(one lane per held-out"):
        scored.batch(None, 0, 4)
    with pytest.raises(ValueError, match=r"starts: expected shape \(5,\)"):
        streams.scored_segments([(IDS[:5], STARTS[:4])], 3)


def _unigram_bits(split: str) -> float:
    corpus, parts = shakespeare.shakespeare_text(), shakespeare.spans(split)
    train = collections.Counter("".join(corpus[a:b] for a, b in parts["train"]))
    test = collections.Counter("".join(corpus[a:b] for a, b in parts["test"]))
    symbols = set(corpus)
    total = sum(train.values()) + len(symbols)
    nats = -sum(n * math.log((train[c] + 1) / total) for c, n in test.items())
    return nats / sum(test.values()) / math.log(2)


def test_splits_b_and_c_are_those_of_baselines_md():
    b, c = shakespeare.spans("B"), shakespeare.spans("C")
    assert b == {
        "train": [(0, 4_551_478)],
        "validation": [(4_551_478, 4_804_338)],
        "test": [(4_804_338, 5_057_198)],
    }
    assert len(c["validation"]) == len(c["test"]) == 25
    covered = sorted(span for part in c.values() for span in part)
    assert sum(e - s for s, e in covered) == 5_057_198  # a partition of the text
    assert all(e0 <= s1 for (_, e0), (s1, _) in itertools.pairwise(covered))
    held = {s // 10_000 for part in ("validation", "test") for s, _ in c[part]}
    assert held == set(np.random.default_rng(0).permutation(506)[:50].tolist())
    # The add-one unigram, an independent check of both splits (BASELINES.md).
    assert round(_unigram_bits("B"), 3) == 4.750 and round(_unigram_bits("C"), 3) == 4.786
    starts = shakespeare.file_starts()
    assert starts.sum() == 42 and starts[0] and len(starts) == 5_057_198
    with pytest.raises(ValueError, match=r"split: expected 'B' or 'C', got 'A'"):
        shakespeare.spans("A")


@pytest.fixture(scope="module")
def smoke():
    experiment = experiment_lib.load("shakespeare_tbptt")
    config = experiment_lib.get_config(experiment, [], smoke=True)
    module = experiment.module
    data = module.get_data(config)
    model = module.get_model(config, data)
    return config, module, data, model


def test_evaluation_in_windows_equals_one_rollout_over_the_segment(smoke):
    # The carry passed between scoring windows (with resets at the plays' starts):
    # the same per-character loss as one rollout over the whole test segment.
    import jaxrnn

    config, module, data, model = smoke
    objective = module.get_objective(config, model, data)
    params = model.init(jax.random.key(1))
    windows = config.train.eval_batches
    carry, total, count = objective.carry(params, 1), 0.0, 0.0
    for i in range(windows):
        batch = data.test(None, i, 1)
        _, (metrics, carry) = objective.loss(params, carry, batch, None)
        total, count = total + metrics["loss"].total, count + metrics["loss"].count
    ((a, b),) = module._spans(config.task)["test"]
    vocab = module._vocab(config.task)
    ids = module.text.encode_chars(vocab, shakespeare.shakespeare_text()[a:b])
    resets = shakespeare.file_starts()[a:b].copy()
    resets[0] = True
    xs = jax.nn.one_hot(ids[None, :-1], vocab.size, dtype=jnp.float32)
    _, ys = jaxrnn.scan(module._cell(config), params.cell, xs, resets=resets[None, :-1])
    logp = jax.nn.log_softmax(ys @ params.readout.W + params.readout.b)
    whole = -jnp.take_along_axis(logp[0], jnp.asarray(ids[1:, None]), axis=-1).sum()
    assert count == len(ids) - 1
    np.testing.assert_allclose(total, whole, rtol=2e-5)


def test_the_stream_model_refuses_chars_with_split_c_and_other_scoring_windows(smoke):
    config, module, _, _ = smoke
    from jaxrnn.training import apply_overrides

    with pytest.raises(Exception, match=r"task.chars: split B only"):
        module.finalize_config(apply_overrides(config, ["task.split=C"]))
    # The scoring lanes and windows follow from the split; another value is refused.
    assert (config.train.eval_batch_size, config.train.eval_batches) == (1, 10)
    with pytest.raises(ValueError, match=r"train.eval_batches=3: split B .* sets it to 10"):
        module.finalize_config(apply_overrides(config, ["train.eval_batches=3"]))
