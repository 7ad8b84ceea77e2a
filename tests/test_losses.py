"""jaxrnn.tasks.losses against NumPy written from the definitions (float64 log-softmax)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from jaxrnn.tasks import losses

B, T, C = 4, 6, 5


def np_log_softmax(logits):
    logits = np.asarray(logits, np.float64)
    shifted = logits - logits.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def np_token_ce(logits, labels):
    """Per-item cross-entropy ``-log softmax(logits)[label]``."""
    logp = np_log_softmax(logits)
    return -np.take_along_axis(logp, np.asarray(labels)[..., None], axis=-1)[..., 0]


def np_masked_mean(values, mask):
    return values.mean() if mask is None else values[np.asarray(mask)].mean()


@pytest.fixture
def tokens(key):
    k1, k2 = jax.random.split(key)
    logits = jax.random.normal(k1, (B, T, C), jnp.float64) * 3.0
    labels = jax.random.randint(k2, (B, T), 0, C, jnp.int32)
    lengths = np.array([6, 3, 1, 4])
    mask = jnp.asarray(np.arange(T) < lengths[:, None])
    return logits, labels, mask


@pytest.mark.parametrize("use_mask", [False, True])
def test_token_losses_match_numpy(tokens, use_mask):
    logits, labels, mask = tokens
    mask = mask if use_mask else None
    ce = np_masked_mean(np_token_ce(logits, labels), mask)
    np.testing.assert_allclose(losses.cross_entropy(logits, labels, mask), ce, rtol=1e-12)
    np.testing.assert_allclose(
        losses.bits_per_character(logits, labels, mask), ce / np.log(2.0), rtol=1e-12
    )
    np.testing.assert_allclose(losses.perplexity(logits, labels, mask), np.exp(ce), rtol=1e-12)
    correct = (np.argmax(np.asarray(logits), axis=-1) == np.asarray(labels)).astype(np.float64)
    np.testing.assert_allclose(
        losses.accuracy(logits, labels, mask), np_masked_mean(correct, mask), rtol=1e-6
    )


def test_many_to_one_losses_match_numpy(key):
    k1, k2 = jax.random.split(key)
    logits = jax.random.normal(k1, (8, C), jnp.float32)
    labels = jax.random.randint(k2, (8,), 0, C, jnp.int64)
    mask = jnp.array([True, False, True, True, False, True, True, True])
    for m in (None, mask):
        ce = np_masked_mean(np_token_ce(logits, labels), m)
        got = losses.cross_entropy(logits, labels, m)
        assert got.dtype == jnp.float32
        np.testing.assert_allclose(got, ce, rtol=1e-5)
        correct = np.argmax(np.asarray(logits), axis=-1) == np.asarray(labels)
        np.testing.assert_allclose(losses.accuracy(logits, labels, m), np_masked_mean(correct, m))


def test_padding_tokens_do_not_leak(tokens):
    logits, labels, mask = tokens
    pad = ~np.asarray(mask)
    expected = np_masked_mean(np_token_ce(logits, labels), mask)
    # Padded tokens get a huge loss (about 1e30): a wrong class's logit is 1e30.
    wrong = (np.asarray(labels) + 1) % C
    huge = np.zeros((B, T, C))
    np.put_along_axis(huge, wrong[..., None], 1e30, axis=-1)
    logits = np.where(pad[..., None], huge, np.asarray(logits))
    assert float(losses.cross_entropy(jnp.asarray(logits), labels)) > 1e28  # unmasked: it leaks
    np.testing.assert_allclose(
        losses.cross_entropy(jnp.asarray(logits), labels, mask), expected, rtol=1e-12
    )
    # An infinite and a NaN loss on padding stay out too (0 * inf would be NaN).
    logits[1, 5] = np.where(np.arange(C) == int(labels[1, 5]), -np.inf, 0.0)
    logits[2, 5] = np.nan
    assert pad[1, 5] and pad[2, 5]
    logits = jnp.asarray(logits)
    assert not np.isfinite(losses.cross_entropy(logits, labels))
    np.testing.assert_allclose(losses.cross_entropy(logits, labels, mask), expected, rtol=1e-12)
    np.testing.assert_allclose(
        losses.perplexity(logits, labels, mask), np.exp(expected), rtol=1e-12
    )
    accuracy = (np.argmax(np.asarray(tokens[0]), -1) == np.asarray(labels))[~pad].mean()
    np.testing.assert_allclose(losses.accuracy(logits, labels, mask), accuracy, rtol=1e-6)


def test_cross_entropy_gradient_matches_finite_differences_and_ignores_padding(tokens):
    logits, labels, mask = tokens
    check_grads(lambda z: losses.cross_entropy(z, labels, mask), (logits,), order=1, modes=["rev"])
    grad = jax.grad(losses.cross_entropy)(logits, labels, mask)
    assert np.all(np.asarray(grad)[~np.asarray(mask)] == 0.0)
    # d CE / d logits = (softmax - onehot) / (number of valid tokens).
    onehot = np.eye(C)[np.asarray(labels)]
    expected = (np.exp(np_log_softmax(logits)) - onehot) * np.asarray(mask)[..., None]
    np.testing.assert_allclose(grad, expected / np.asarray(mask).sum(), rtol=1e-10, atol=1e-15)


@pytest.mark.parametrize("use_mask", [False, True])
def test_mse_matches_numpy(key, use_mask):
    k1, k2 = jax.random.split(key)
    pred = jax.random.normal(k1, (B, T), jnp.float64)
    target = jax.random.normal(k2, (B, T), jnp.float64)
    mask = jnp.asarray(np.arange(T) < np.array([6, 2, 0, 5])[:, None]) if use_mask else None
    err = (np.asarray(pred) - np.asarray(target)) ** 2
    np.testing.assert_allclose(
        losses.mse(pred, target, mask), np_masked_mean(err, mask), rtol=1e-12
    )


def test_mse_averages_output_axis_then_valid_items(key):
    k1, k2 = jax.random.split(key)
    pred = jax.random.normal(k1, (B, 3), jnp.float64)
    target = jax.random.normal(k2, (B, 3), jnp.float64)
    mask = jnp.array([True, False, True, False])
    err = ((np.asarray(pred) - np.asarray(target)) ** 2).mean(axis=-1)
    np.testing.assert_allclose(losses.mse(pred, target, mask), err[[0, 2]].mean(), rtol=1e-12)
    # Integer regression targets are read in the predictions' dtype.
    int_target = jnp.arange(B, dtype=jnp.int32)
    expected = np.mean((np.asarray(pred[:, 0]) - np.arange(B)) ** 2)
    np.testing.assert_allclose(losses.mse(pred[:, 0], int_target), expected, rtol=1e-12)


def test_all_masked_gives_zero_not_nan(tokens):
    logits, labels, mask = tokens
    none = jnp.zeros_like(mask)
    for fn in (losses.cross_entropy, losses.bits_per_character, losses.accuracy):
        assert float(fn(logits, labels, none)) == 0.0, fn.__name__
    assert float(losses.perplexity(logits, labels, none)) == 1.0  # exp(0)
    assert float(losses.mse(logits[..., 0], logits[..., 1], none)) == 0.0
    assert float(losses.masked_mean(jnp.full((3,), jnp.nan), jnp.zeros((3,), bool))) == 0.0


def test_masked_mean_matches_numpy(key):
    values = jax.random.normal(key, (3, 4), jnp.float32)
    mask = jnp.array([[1, 0, 1, 1], [0, 0, 0, 0], [1, 1, 1, 0]], bool)
    got = losses.masked_mean(values, mask)
    assert got.dtype == jnp.float32
    np.testing.assert_allclose(got, np.asarray(values)[np.asarray(mask)].mean(), rtol=1e-6)


def test_errors_name_the_argument(tokens):
    logits, labels, mask = tokens
    with pytest.raises(ValueError, match=r"labels: expected shape \(4, 6\).*got \(4, 5\)"):
        losses.cross_entropy(logits, labels[:, :5])
    with pytest.raises(TypeError, match=r"labels: expected integer.*float64"):
        losses.accuracy(logits, labels.astype(jnp.float64))
    with pytest.raises(ValueError, match=r"mask: expected shape \(4, 6\), got \(4, 5\)"):
        losses.cross_entropy(logits, labels, mask[:, :5])
    with pytest.raises(TypeError, match="mask: expected a bool array, got dtype float64"):
        losses.cross_entropy(logits, labels, mask.astype(jnp.float64))
    with pytest.raises(ValueError, match=r"targets: expected shape \(4, 6\).*got \(4, 5\)"):
        losses.mse(logits[..., 0], logits[:, :5, 0])
    with pytest.raises(ValueError, match=r"mask: expected shape \(4,\), got \(6,\)"):
        losses.mse(logits[:, 0], logits[:, 1], mask[0])


def test_losses_jit_equal_eager(tokens):
    logits, labels, mask = tokens
    for fn in (losses.cross_entropy, losses.accuracy):
        np.testing.assert_allclose(jax.jit(fn)(logits, labels, mask), fn(logits, labels, mask))
