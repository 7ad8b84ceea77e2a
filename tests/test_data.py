"""jaxrnn.data against NumPy oracles written from each task's definition.

Every batch is checked element by element (markers, sums, layouts, parities,
the digit images themselves), and the (key, step) contract is checked as a
property: same (key, step) -> bit-identical batch, independent of history and of jit.
"""

import functools

import jax
import numpy as np
import pytest

from jaxrnn import data

B = 64
# One instance per task, and one compiled batch function per instance: eager
# batches compile op by op, which dominates the run time of this file.
ADDING = data.adding(12, min_length=4)
COPYING = data.copying(5, num_symbols=4, copy_length=3)
PARITY = data.parity(9, min_length=3)
DIGITS = data.digits()


@functools.cache
def _jit(task):
    return jax.jit(task.batch, static_argnums=2)


def _batch(task, key, step, batch_size=B):
    return data.Batch(*(np.asarray(x) for x in _jit(task)(key, step, batch_size)))


def _lengths_of_prefix_mask(mask):
    """Lengths of a right-padded mask; fails unless the mask is a valid prefix."""
    lengths = mask.sum(axis=1)
    np.testing.assert_array_equal(mask, np.arange(mask.shape[1]) < lengths[:, None])
    return lengths


def test_adding_matches_numpy_definition(key):
    length, min_length, task = 12, 4, ADDING
    b = _batch(task, key, 3)
    assert b.inputs.shape == (B, length, 2) and b.inputs.dtype == np.float32
    assert (task.input_size, task.output_size, task.kind) == (2, 1, "regression")

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
    b = _batch(data.adding(12), key, 0)
    assert b.mask.all()
    np.testing.assert_array_equal(b.inputs[..., 1].sum(axis=1), 2.0)


def test_copying_layout_and_targets(key):
    delay, K, copy_length, task = 5, 4, 3, COPYING
    T, vocab = delay + 2 * copy_length, K + 2
    assert (task.input_size, task.output_size, task.kind) == (vocab, vocab, "tokens")
    b = _batch(task, key, 1)
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
    length, min_length, task = 9, 3, PARITY
    assert (task.input_size, task.output_size, task.kind) == (1, 2, "classification")
    b = _batch(task, key, 2)
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
    assert np.asarray(batch.mask).all()
    return idx


def test_digits_split_disjoint_and_covers_all(key, sk_digits):
    train, test = DIGITS, data.digits(split="test")
    n_test = round(0.2 * 1797)
    n_train = 1797 - n_test
    # A batch of the split's size is one whole epoch: a permutation of the split.
    tr = _indices(train.batch(key, 0, n_train), sk_digits, (n_train, 8, 8))
    te = _indices(test.batch(key, 0, n_test), sk_digits, (n_test, 8, 8))
    assert len(set(tr)) == n_train and len(set(te)) == n_test
    assert not set(tr) & set(te)
    assert set(tr) | set(te) == set(range(1797))
    # A batch bigger than the split gives the whole split.
    assert set(_indices(test.batch(key, 0, 500), sk_digits, (n_test, 8, 8))) == set(te)
    assert (train.input_size, train.output_size, train.kind) == (8, 10, "classification")


def test_digits_pixelwise_matches_rowwise(key, sk_digits):
    rows, pixels = DIGITS, data.digits(pixelwise=True)
    assert pixels.input_size == 1
    b_rows, b_pix = _batch(rows, key, 4, 16), _batch(pixels, key, 4, 16)
    assert b_pix.inputs.shape == (16, 64, 1) and b_pix.mask.shape == (16, 64)
    idx_pix = _indices(b_pix, sk_digits, (16, 64, 1))
    np.testing.assert_array_equal(idx_pix, _indices(b_rows, sk_digits, (16, 8, 8)))


def test_digits_epoch_visits_each_example_once(key, sk_digits):
    train = DIGITS
    n_train = 1797 - round(0.2 * 1797)  # 1438 = 2 * 719
    epoch0 = [_indices(_batch(train, key, s, 719), sk_digits, (719, 8, 8)) for s in (0, 1)]
    assert sorted(np.concatenate(epoch0)) == sorted(
        _indices(_batch(train, key, 0, n_train), sk_digits, (n_train, 8, 8))
    )
    assert len(set(np.concatenate(epoch0))) == n_train
    # The next epoch is a new permutation of the same examples.
    epoch1 = [_indices(_batch(train, key, s, 719), sk_digits, (719, 8, 8)) for s in (2, 3)]
    assert set(np.concatenate(epoch1)) == set(np.concatenate(epoch0))
    assert not np.array_equal(np.concatenate(epoch1), np.concatenate(epoch0))

    # A batch size that does not divide n: an epoch (n // 100 batches) repeats nothing.
    idx = [_indices(_batch(train, key, s, 100), sk_digits, (100, 8, 8)) for s in range(14)]
    assert len(set(np.concatenate(idx))) == 1400


# -- the (key, step) contract ---------------------------------------------------

TASKS = {"adding": ADDING, "copying": COPYING, "parity": PARITY, "digits": DIGITS}


def _assert_batches_equal(a, b):
    for x, y in zip(a, b, strict=True):
        assert x.dtype == y.dtype
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def _batches_differ(a, b):
    return any(not np.array_equal(np.asarray(x), np.asarray(y)) for x, y in zip(a, b, strict=True))


@pytest.mark.parametrize("name", sorted(TASKS))
def test_batch_is_a_pure_function_of_key_and_step(name, key):
    task = TASKS[name]
    first = _jit(task)(key, 5, B)  # the step is traced: a Python int is not static
    for step in range(5):  # history must not matter
        _jit(task)(key, step, B)
    _assert_batches_equal(_jit(task)(key, 5, B), first)
    assert _batches_differ(_jit(task)(key, 6, B), first)
    assert _batches_differ(_jit(task)(jax.random.key(1), 5, B), first)
    # Eager (op by op) gives the same bits as the compiled batch.
    _assert_batches_equal(task.batch(key, 5, B), first)


# -- baselines -------------------------------------------------------------------


def test_adding_baseline_is_target_variance(key):
    task = ADDING
    # 300 batches of B (one compiled function) rather than one batch of a new size.
    t = np.concatenate([_batch(task, key, s).targets for s in range(300)]).astype(np.float64)
    assert task.baseline == pytest.approx(1.0 / 6.0)
    # The sum of two U[0, 1] has mean 1 and variance 2/12; the standard error of
    # the sample variance at N = 19,200 is about 0.0014.
    assert np.mean(t) == pytest.approx(1.0, abs=0.01)
    assert np.mean((t - 1.0) ** 2) == pytest.approx(task.baseline, abs=0.005)
    assert np.var(t) == pytest.approx(task.baseline, abs=0.005)


def test_copying_baseline_is_memoryless_cross_entropy(key):
    K, copy_length, task = 4, 3, COPYING
    targets = _batch(task, key, 0).targets
    T, vocab = targets.shape[1], K + 2
    # The memoryless predictor: blank with certainty, then uniform over the K symbols.
    probs = np.zeros((T, vocab))
    probs[: T - copy_length, 0] = 1.0
    probs[T - copy_length :, 1 : K + 1] = 1.0 / K
    ce = -np.log(probs[np.arange(T)[None, :], targets])
    assert isinstance(task.baseline, float)
    assert task.baseline == pytest.approx(np.mean(ce), rel=1e-12)


def test_classification_baselines_are_label_entropy(key):
    def entropy(labels, classes):
        p = np.bincount(labels, minlength=classes) / len(labels)
        return -np.sum(p * np.log(p))

    par = PARITY
    assert par.baseline == pytest.approx(np.log(2.0))
    labels = np.concatenate([_batch(par, key, s).targets for s in range(64)])
    assert entropy(labels, 2) == pytest.approx(par.baseline, abs=0.01)

    dig = DIGITS
    assert dig.baseline == pytest.approx(np.log(10.0))
    labels = _batch(dig, key, 0, 1438).targets
    assert entropy(labels, 10) == pytest.approx(dig.baseline, abs=0.01)


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
        (lambda: data.digits(split="valid"), "split.*'train' or 'test'.*'valid'"),
        (lambda: data.digits(test_fraction=1.0), "test_fraction.*got 1.0"),
    ],
)
def test_bad_arguments_raise(make, match):
    with pytest.raises(ValueError, match=match):
        make()
