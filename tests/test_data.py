"""jaxrnn.tasks (synthetic streams, the digits data set, batches, baselines) against NumPy
oracles written from each definition.

Every batch is checked element by element (markers, sums, layouts, parities,
the digit images themselves); the digits splits against scikit-learn's own split
and a 1-NN oracle; the baselines against NumPy fits of the training draws scored on
the test batches; and the (key, step) contract is checked as a property: same
(key, step) -> bit-identical batch, independent of history and of jit.
"""

import functools

import jax
import numpy as np
import pytest

from jaxrnn import tasks
from jaxrnn.tasks import data as data_lib
from jaxrnn.tasks import digits as digits_lib
from jaxrnn.tasks import synthetic as data

B = 64
# One instance per task, and one compiled batch function per task: eager
# batches compile op by op, which dominates the run time of this file.
ADDING = data.adding(12, min_length=4)
COPYING = data.copying(5, num_symbols=4, copy_length=3)
PARITY = data.parity(9, min_length=3)
DIGITS = digits_lib.digits()
TASKS = {"adding": ADDING, "copying": COPYING, "parity": PARITY, "digits": DIGITS}
# scikit-learn's stratified 80/20 test split; a stratified 10% of the rest validates.
N_TEST, N_VALIDATION, N_TRAIN = 360, 144, 1293


def _batch_fn(name):
    """The training batch function ``(key, step, batch_size) -> batch`` of a task."""
    return functools.partial(data_lib.train_batch, TASKS[name])


@functools.cache
def _jit(name):
    task = TASKS[name]
    if isinstance(task, tasks.Stream):
        # The library's own cache of compiled draws: the baselines' and held-out
        # splits' draws below then reuse these compilations.
        return data_lib.draw(task.train)
    return jax.jit(_batch_fn(name), static_argnums=2)


def _batch(name, key, step, batch_size=B):
    return jax.tree.map(np.asarray, _jit(name)(key, step, batch_size))


def _lengths_of_prefix_mask(mask):
    """Lengths of a right-padded mask; fails unless the mask is a valid prefix."""
    lengths = mask.sum(axis=1)
    np.testing.assert_array_equal(mask, np.arange(mask.shape[1]) < lengths[:, None])
    return lengths


def _shapes(task, batch_size=B):
    """A training batch's shapes and dtypes, drawn without computing it: float dtypes by
    name, integer and bool ones by kind ("i", "b"; integers follow jax's x64 setting)."""
    shapes = data_lib.shapes(task, batch_size)
    return tuple((s.shape, s.dtype.name if s.dtype.kind == "f" else s.dtype.kind) for s in shapes)


def test_adding_matches_numpy_definition(key):
    length, min_length = 12, 4
    b = _batch("adding", key, 3)
    assert b.inputs.shape == (B, length, 2) and b.inputs.dtype == np.float32
    assert isinstance(ADDING, tasks.Stream) and ADDING.validation is ADDING.test is None
    assert _shapes(ADDING) == (
        ((B, length, 2), "float32"),
        ((B,), "float32"),
        ((B, length), "b"),
    )

    n = _lengths_of_prefix_mask(b.mask)
    assert n.min() >= min_length and n.max() <= length
    assert len(np.unique(n)) > 1  # the lengths really vary

    values, markers = b.inputs[..., 0], b.inputs[..., 1]
    assert np.all(values[~b.mask] == 0.0)
    assert np.all((values[b.mask] >= 0.0) & (values[b.mask] < 1.0))
    assert set(np.unique(markers)) <= {0.0, 1.0}
    np.testing.assert_array_equal(markers.sum(axis=1), 2.0)
    for row in range(B):
        first, second = np.flatnonzero(markers[row])
        # One marker in each half of the *valid* prefix [0, n//2) and [n//2, n).
        assert 0 <= first < n[row] // 2 <= second < n[row], (row, first, second, n[row])
    expected = np.sum(values.astype(np.float64) * markers, axis=1)
    np.testing.assert_allclose(b.targets, expected, rtol=1e-6)


def test_adding_fixed_length_mask_all_true(key):
    b = jax.tree.map(np.asarray, data_lib.draw(data.adding(12).train)(key, 0, B))
    assert b.mask.all()
    np.testing.assert_array_equal(b.inputs[..., 1].sum(axis=1), 2.0)


def test_copying_layout_and_targets(key):
    delay, K, copy_length = 5, 4, 3
    T, vocab = delay + 2 * copy_length, K + 2
    assert _shapes(COPYING) == (
        ((B, T, vocab), "float32"),
        ((B, T), "i"),
        ((B, T), "b"),
    )
    b = _batch("copying", key, 1)
    assert b.inputs.shape == (B, T, vocab)

    tokens = np.argmax(b.inputs, axis=-1)
    np.testing.assert_array_equal(b.inputs, np.eye(vocab, dtype=np.float32)[tokens])  # one-hot
    symbols = tokens[:, :copy_length]
    assert np.all((symbols >= 1) & (symbols <= K))
    assert len(np.unique(symbols)) == K  # all data symbols are drawn
    np.testing.assert_array_equal(tokens[:, copy_length : copy_length + delay - 1], 0)
    np.testing.assert_array_equal(tokens[:, copy_length + delay - 1], K + 1)  # delimiter
    np.testing.assert_array_equal(tokens[:, copy_length + delay :], 0)

    np.testing.assert_array_equal(b.targets[:, : T - copy_length], 0)
    np.testing.assert_array_equal(b.targets[:, T - copy_length :], symbols)
    assert b.mask.shape == (B, T) and b.mask.all()


def test_parity_matches_numpy(key):
    length, min_length = 9, 3
    assert _shapes(PARITY) == (
        ((B, length, 1), "float32"),
        ((B,), "i"),
        ((B, length), "b"),
    )
    b = _batch("parity", key, 2)
    n = _lengths_of_prefix_mask(b.mask)
    assert n.min() >= min_length and n.max() <= length and len(np.unique(n)) > 1
    bits = b.inputs[..., 0]
    assert set(np.unique(bits)) == {0.0, 1.0}
    assert np.all(bits[~b.mask] == 0.0)
    expected = np.array([int(bits[i, : n[i]].sum()) % 2 for i in range(B)])
    np.testing.assert_array_equal(b.targets, expected)
    assert 0 < expected.sum() < B  # both classes occur


# -- digits -------------------------------------------------------------------


@pytest.fixture(scope="module")
def sk_digits():
    sklearn_datasets = pytest.importorskip("sklearn.datasets")
    d = sklearn_datasets.load_digits()
    images = d.images.astype(np.float64) / 16.0
    # Each (image, label) is unique in the data set, so a row identifies its index.
    index = {
        (im.tobytes(), int(y)): i for i, (im, y) in enumerate(zip(images, d.target, strict=True))
    }
    assert len(index) == len(images) == 1797
    return images, d.target, index


def _indices(batch, sk_digits, shape):
    """The sklearn indices of a batch's sequences, checking images and labels on the way."""
    images, labels, index = sk_digits
    seqs = np.asarray(batch.inputs).astype(np.float64).reshape(-1, 8, 8)
    idx = np.array(
        [index[(s.tobytes(), int(y))] for s, y in zip(seqs, np.asarray(batch.targets), strict=True)]
    )
    np.testing.assert_array_equal(np.asarray(batch.inputs), images[idx].reshape(shape))
    np.testing.assert_array_equal(np.asarray(batch.targets), labels[idx])
    assert np.asarray(batch.mask).all() and np.asarray(batch.mask).shape == shape[:2]
    return idx


@pytest.fixture(scope="module")
def split_indices(sk_digits):
    """The sklearn indices of the train, validation and test splits of ``digits()``."""
    return tuple(
        _indices(getattr(DIGITS, split), sk_digits, (n, 8, 8))
        for split, n in (("train", N_TRAIN), ("validation", N_VALIDATION), ("test", N_TEST))
    )


def test_digits_splits_are_sklearns_stratified_splits(sk_digits, split_indices):
    model_selection = pytest.importorskip("sklearn.model_selection")
    images, labels, _ = sk_digits
    train, val, test = split_indices
    assert isinstance(DIGITS, tasks.Dataset) and DIGITS.collate is None
    assert DIGITS.train.inputs.dtype == np.float32 and DIGITS.train.targets.dtype == np.int32
    # Disjoint, and together every image once.
    assert len(set(train)) + len(set(val)) + len(set(test)) == 1797
    assert set(train) | set(val) | set(test) == set(range(1797))
    # The oracle: scikit-learn's own split of BASELINES.md, then 10% of the rest, in order.
    rest, want_test = model_selection.train_test_split(
        np.arange(1797), test_size=0.2, random_state=0, stratify=labels
    )
    want_train, want_val = model_selection.train_test_split(
        rest, test_size=0.1, random_state=0, stratify=labels[rest]
    )
    np.testing.assert_array_equal(test, want_test)
    np.testing.assert_array_equal(train, want_train)
    np.testing.assert_array_equal(val, want_val)
    # Stratified: each class's share of a split is within one image of its share overall.
    for part, of, fraction in ((test, np.arange(1797), 0.2), (val, rest, 0.1)):
        counts = np.bincount(labels[part], minlength=10)
        assert np.all(np.abs(counts - fraction * np.bincount(labels[of], minlength=10)) <= 1)
    # BASELINES.md: 1-NN on the 1,437 training images scores 98.33% (354 / 360) on the test.
    flat = images.reshape(1797, 64)
    d2 = ((flat[test, None, :] - flat[None, rest, :]) ** 2).sum(-1)
    assert np.sum(labels[rest][np.argmin(d2, axis=1)] == labels[test]) == 354


def test_digits_pixelwise_matches_rowwise(key, sk_digits, split_indices):
    pixels = digits_lib.digits(pixelwise=True)
    assert data_lib.shapes(pixels, 16).inputs.shape == (16, 64, 1)
    for split, idx in zip(("train", "validation", "test"), split_indices, strict=True):
        n = len(idx)
        np.testing.assert_array_equal(
            _indices(getattr(pixels, split), sk_digits, (n, 64, 1)), idx, err_msg=split
        )
    b_rows = _batch("digits", key, 4, 16)
    b_pix = jax.tree.map(np.asarray, data_lib.train_batch(pixels, key, 4, 16))
    assert b_pix.inputs.shape == (16, 64, 1) and b_pix.mask.shape == (16, 64)
    idx_pix = _indices(b_pix, sk_digits, (16, 64, 1))
    np.testing.assert_array_equal(idx_pix, _indices(b_rows, sk_digits, (16, 8, 8)))


def test_digits_epoch_visits_each_example_once(key, sk_digits, split_indices):
    n_train = N_TRAIN  # 1293 = 3 * 431
    train = set(split_indices[0])

    def idx(step, size):
        return _indices(_batch("digits", key, step, size), sk_digits, (min(size, n_train), 8, 8))

    epoch0 = np.concatenate([idx(s, 431) for s in (0, 1, 2)])
    whole = idx(0, n_train)  # a batch of the split's size is one whole epoch
    assert sorted(epoch0) == sorted(whole) and set(whole) == train
    assert len(set(epoch0)) == n_train
    # The next epoch is a new permutation of the same examples.
    epoch1 = np.concatenate([idx(s, 431) for s in (3, 4, 5)])
    assert set(epoch1) == set(epoch0)
    assert not np.array_equal(epoch1, epoch0)

    # A batch size that does not divide n: an epoch (n // 100 batches) repeats nothing.
    assert len(set(np.concatenate([idx(s, 100) for s in range(12)]))) == 1200
    # A batch bigger than the split gives the whole split.
    assert set(idx(0, 2000)) == train


def test_digits_eval_batches_are_the_split_in_order_each_example_once():
    batches = data_lib.eval_batches(DIGITS, "test", 100, 1)  # num_batches: unused
    assert [len(b.targets) for b in batches] == [100, 100, 100, 60]  # the last one smaller
    for field in ("inputs", "targets", "mask"):
        got = np.concatenate([np.asarray(getattr(b, field)) for b in batches])
        np.testing.assert_array_equal(got, getattr(DIGITS.test, field))
    val = data_lib.eval_batches(DIGITS, "validation", 500, 2)
    assert len(val) == 1
    np.testing.assert_array_equal(np.asarray(val[0].targets), DIGITS.validation.targets)
    with pytest.raises(ValueError, match="no validation split"):
        data_lib.eval_batches(DIGITS._replace(validation=None), "validation", 100, 1)


def test_stream_eval_batches_come_from_a_fixed_key_per_split(key):
    test = data_lib.eval_batches(ADDING, "test", B, 2)
    validation = data_lib.eval_batches(ADDING, "validation", B, 2)
    assert len(test) == len(validation) == 2
    for i, batch in enumerate(test):
        # The same for every run and seed: the batches of the split's own fixed key.
        want = _batch("adding", data_lib.split_key("test"), i)
        jax.tree.map(np.testing.assert_array_equal, jax.tree.map(np.asarray, batch), want)
    # Validation, test and training draws differ from one another.
    assert _batches_differ(test[0], validation[0]) and _batches_differ(test[0], test[1])
    assert _batches_differ(test[0], _batch("adding", key, 0))
    with pytest.raises(ValueError, match="split: expected 'validation' or 'test'"):
        data_lib.split_key("train")


# -- the (key, step) contract ---------------------------------------------------


def _assert_batches_equal(a, b):
    for x, y in zip(a, b, strict=True):
        assert x.dtype == y.dtype
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def _batches_differ(a, b):
    return any(not np.array_equal(np.asarray(x), np.asarray(y)) for x, y in zip(a, b, strict=True))


@pytest.mark.parametrize("name", sorted(TASKS))
def test_batch_is_a_pure_function_of_key_and_step(name, key):
    first = _jit(name)(key, 5, B)  # the step is traced: a Python int is not static
    for step in range(5):  # history must not matter
        _jit(name)(key, step, B)
    _assert_batches_equal(_jit(name)(key, 5, B), first)
    assert _batches_differ(_jit(name)(key, 6, B), first)
    assert _batches_differ(_jit(name)(jax.random.key(1), 5, B), first)
    # Eager (op by op) gives the same bits as the compiled batch.
    _assert_batches_equal(_batch_fn(name)(key, 5, B), first)


# -- baselines -------------------------------------------------------------------


def _rekeyed(stream, key):
    """``stream`` whose training draws use ``key`` whatever key they are given, so that
    an oracle can redraw exactly the batches a baseline is fitted on."""
    return stream._replace(train=lambda _, step, batch_size: stream.train(key, step, batch_size))


def _fit_draws(name, key, fit_batches):
    """The training batches a baseline of ``_rekeyed(task, key)`` fits: ``fit_batches``
    batches the size of the test batches (``B``)."""
    return [_batch(name, key, s) for s in range(fit_batches)]


def test_adding_baseline_is_the_training_mean_scored_on_the_test_batches(key):
    # 300 batches of B (one compiled function) rather than one batch of a new size.
    test = [_batch("adding", key, s) for s in range(300)]
    t = np.concatenate([b.targets for b in test]).astype(np.float64)
    # The sum of two U[0, 1] has mean 1 and variance 2/12; the standard error of
    # the sample variance at N = 19,200 is about 0.0014.
    assert np.mean(t) == pytest.approx(1.0, abs=0.01)
    assert np.var(t) == pytest.approx(1.0 / 6.0, abs=0.005)
    baseline = tasks.mean_predictor(ADDING, test)
    assert set(baseline.metrics) == {"loss"} and isinstance(baseline.name, str)
    # Predicting any constant scores at least the test variance; the training mean is close.
    assert np.var(t) <= baseline.metrics["loss"] <= np.var(t) + 0.005
    assert baseline.metrics["loss"] == pytest.approx(1.0 / 6.0, abs=0.005)

    # Exactly, against NumPy: the mean of the training draws, scored on the test batches.
    k_fit = jax.random.key(11)
    fit = np.concatenate([b.targets for b in _fit_draws("adding", k_fit, 3)]).astype(np.float64)
    exact = tasks.mean_predictor(_rekeyed(ADDING, k_fit), test[:20], fit_batches=3)
    want = np.mean((t[: 20 * B] - fit.mean()) ** 2)
    assert exact.metrics["loss"] == pytest.approx(want, rel=1e-5)


def test_copying_baseline_is_memoryless_cross_entropy(key):
    K, copy_length = 4, 3
    targets = _batch("copying", key, 0).targets
    T, vocab = targets.shape[1], K + 2
    # The memoryless predictor: blank with certainty, then uniform over the K symbols.
    probs = np.zeros((T, vocab))
    probs[: T - copy_length, 0] = 1.0
    probs[T - copy_length :, 1 : K + 1] = 1.0 / K
    ce = -np.log(probs[np.arange(T)[None, :], targets])
    nats = data.copying_baseline(5, num_symbols=K, copy_length=copy_length)
    assert isinstance(nats, float)
    assert nats == pytest.approx(np.mean(ce), rel=1e-12)


def _prior_nats(fit_labels, test_labels, num_classes):
    """Cross-entropy of ``test_labels`` under the add-one smoothed frequencies of ``fit_labels``."""
    counts = np.array([np.sum(fit_labels == c) + 1.0 for c in range(num_classes)])
    return float(np.mean([-np.log(counts[y] / counts.sum()) for y in test_labels]))


def test_classification_baselines_are_the_training_frequencies_on_the_test(key, split_indices):
    test = [_batch("parity", key, s) for s in range(64)]
    test_labels = np.concatenate([b.targets for b in test])
    prior = tasks.class_prior(PARITY, test, 2)
    assert prior.metrics["loss"] == pytest.approx(np.log(2.0), abs=0.01)
    k_fit = jax.random.key(12)
    fit = np.concatenate([b.targets for b in _fit_draws("parity", k_fit, 4)])
    exact = tasks.class_prior(_rekeyed(PARITY, k_fit), test, 2, fit_batches=4)
    assert exact.metrics["loss"] == pytest.approx(_prior_nats(fit, test_labels, 2), rel=1e-12)

    # A data set: fitted on the whole training split, scored on the test split.
    test = data_lib.eval_batches(DIGITS, "test", 100, 1)
    prior = tasks.class_prior(DIGITS, test, 10)
    want = _prior_nats(DIGITS.train.targets, DIGITS.test.targets, 10)
    assert prior.metrics["loss"] == pytest.approx(want, rel=1e-12)
    assert prior.metrics["loss"] == pytest.approx(np.log(10.0), abs=0.01)


def test_baselines_of_a_data_set_fit_the_training_split_only():
    """Every helper on a hand-made data set whose training and test targets differ,
    against NumPy written from its definition."""
    rng = np.random.default_rng(0)
    N, T, V = 40, 5, 6
    mask = np.arange(T) < rng.integers(1, T + 1, N)[:, None]
    tokens = rng.integers(0, V - 1, (N, T)).astype(np.int32)  # token V - 1 never in training
    inputs = np.zeros((N, T, 1), np.float32)
    train = data_lib.Batch(inputs, tokens, mask)
    test_tokens = rng.integers(0, V, (2 * N, T)).astype(np.int32)
    test_mask = np.arange(T) < rng.integers(1, T + 1, 2 * N)[:, None]
    test = [
        data_lib.Batch(
            np.zeros((n, T, 1), np.float32), test_tokens[lo : lo + n], test_mask[lo : lo + n]
        )
        for lo, n in ((0, 50), (50, 30))
    ]
    ds = data_lib.Dataset(
        train, None, data_lib.Batch(np.zeros((2 * N, T, 1)), test_tokens, test_mask)
    )

    # token_prior: frequencies over the valid training steps, CE per valid test token.
    got = tasks.token_prior(ds, test, V).metrics
    want = _prior_nats(tokens[mask], test_tokens[test_mask], V)
    assert np.isfinite(got["loss"]) and got["loss"] == pytest.approx(want, rel=1e-12)
    assert got["bits_per_token"] == pytest.approx(want / np.log(2.0), rel=1e-12)

    # position_prior: frequencies per position t over the training rows valid at t.
    total, count = 0.0, 0
    for t in range(T):
        for row in range(2 * N):
            if test_mask[row, t]:
                total += _prior_nats(tokens[mask[:, t], t], test_tokens[row : row + 1, t], V)
                count += 1
    got = tasks.baselines.position_prior(ds, test, V).metrics["loss"]
    assert got == pytest.approx(total / count, rel=1e-12)

    # mean_predictor: one mean per output of targets [N, O].
    values = rng.normal(size=(N, 3))
    shifted = [b._replace(targets=rng.normal(5.0, 1.0, (len(b.targets), 3))) for b in test]
    got = tasks.mean_predictor(ds._replace(train=train._replace(targets=values)), shifted)
    scored = np.concatenate([b.targets for b in shifted])
    assert got.metrics["loss"] == pytest.approx(np.mean((scored - values.mean(0)) ** 2), rel=1e-12)


# -- errors ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: data.adding(10, min_length=1), "min_length.*got 1"),
        (lambda: data.adding(10, min_length=11), "min_length.*length=10.*got 11"),
        (lambda: data.parity(10, min_length=0), "min_length.*got 0"),
        (lambda: data.parity(5, min_length=6), "min_length.*length=5.*got 6"),
        (lambda: data.copying(0), "delay.*got 0"),
        (lambda: data.copying(5, copy_length=0), "copy_length.*got 0"),
        (lambda: digits_lib.digits(validation_fraction=0.0), "validation_fraction.*got 0.0"),
        (lambda: digits_lib.digits(validation_fraction=1.0), "validation_fraction.*got 1.0"),
    ],
)
def test_bad_arguments_raise(make, match):
    with pytest.raises(ValueError, match=match):
        make()
