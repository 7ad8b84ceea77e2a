"""jaxrnn.models decoding against Python loops over ``decode_step`` and brute-force search."""

import functools
import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxrnn
from jaxrnn import models

F64 = jnp.float64
B, S, H, V, L = 2, 4, 4, 5, 5
PAD, BOS, EOS = 0, 1, 2
SRC = np.array([[3, 4, 2, 3], [4, 3, 0, 0]], np.int32)
SRC_LENGTHS = np.array([4, 2], np.int32)
IDS = dict(bos_id=BOS, eos_id=EOS, pad_id=PAD)


@functools.cache
def setup(eos_bias=0.0):
    """A random GRU encoder–decoder with additive attention; ``eos_bias`` makes EOS likelier."""
    model = models.seq2seq_model(
        jaxrnn.gru(H, dtype=F64), jaxrnn.gru(H, dtype=F64), V, V, embedding_size=3,
        attention=models.additive(4, dtype=F64), dtype=F64,
    )  # fmt: skip
    params = model.init(jax.random.key(1))
    params = params._replace(
        readout=params.readout._replace(b=params.readout.b.at[EOS].add(eos_bias))
    )
    state = model.init_decode_state(params, SRC, SRC_LENGTHS)
    return model, params, state


def loop_decode(model, params, state, pick, max_length):
    """The oracle: a Python loop over decode_step, one row at a time, stopping at EOS."""
    step = jax.jit(model.decode_step)
    out = []
    for b in range(B):
        st = jax.tree.map(lambda x, b=b: x[b : b + 1], state)
        token, tokens, score, weights = jnp.asarray([BOS], jnp.int32), [], 0.0, []
        for t in range(max_length):
            st, logits, w = step(params, st, token)
            token = jnp.asarray([pick(t, b, logits[0])], jnp.int32)
            tokens.append(int(token[0]))
            score += float(jax.nn.log_softmax(logits[0])[token[0]])
            weights.append(np.asarray(w[0]))
            if tokens[-1] == EOS:
                break
        out.append((tokens, score, np.stack(weights)))
    return out


def check_against_loop(decoded, expected, max_length):
    for b, (tokens, score, weights) in enumerate(expected):
        n = len(tokens)
        assert int(decoded.lengths[b]) == n
        np.testing.assert_array_equal(decoded.tokens[b], tokens + [PAD] * (max_length - n))
        np.testing.assert_allclose(decoded.scores[b], score, rtol=1e-10)
        np.testing.assert_allclose(decoded.weights[b, :n], weights, rtol=1e-10, atol=1e-12)
        assert np.all(np.asarray(decoded.weights)[b, n:] == 0.0)


@pytest.mark.parametrize("eos_bias", [0.0, 2.0])
def test_greedy_equals_python_argmax_loop(eos_bias):
    model, params, state = setup(eos_bias)
    decoded = models.greedy(model.decode_step, params, state, max_length=L, **IDS)
    expected = loop_decode(model, params, state, lambda t, b, lg: int(jnp.argmax(lg)), L)
    check_against_loop(decoded, expected, L)
    if eos_bias:  # the early stop is exercised: some row ends before L
        assert int(jnp.min(decoded.lengths)) < L


def test_decoding_compiles_once_per_model():
    """New params and a new state (same shapes) reuse the compiled program."""
    model, params, state = setup()
    models.greedy(model.decode_step, params, state, max_length=L, **IDS)
    size = models.decoding.greedy._cache_size()
    params2 = jax.tree.map(lambda x: x * 0.5, params)
    state2 = model.init_decode_state(params2, SRC[::-1], SRC_LENGTHS[::-1])
    decoded = models.greedy(model.decode_step, params2, state2, max_length=L, **IDS)
    assert models.decoding.greedy._cache_size() == size
    expected = loop_decode(model, params2, state2, lambda t, b, lg: int(jnp.argmax(lg)), L)
    check_against_loop(decoded, expected, L)


def test_sampling_equals_python_loop():
    model, params, state = setup(1.0)
    key = jax.random.key(3)
    decoded = models.sample(model.decode_step, params, state, key, max_length=L, **IDS)

    def pick(t, b, logits):  # row b of the batched draw with fold_in(key, t)
        full = jnp.zeros((B, V), logits.dtype).at[b].set(logits)
        return int(jax.random.categorical(jax.random.fold_in(key, t), full, axis=-1)[b])

    check_against_loop(decoded, loop_decode(model, params, state, pick, L), L)


def test_sampling_top_k_one_and_cold_temperature_equal_greedy():
    model, params, state = setup(1.0)
    greedy = models.greedy(model.decode_step, params, state, max_length=L, **IDS)
    for kwargs in (dict(top_k=1), dict(temperature=1e-8), dict(top_k=1, temperature=5.0)):
        for seed in range(3):
            decoded = models.sample(
                model.decode_step, params, state, jax.random.key(seed), max_length=L, **IDS,
                **kwargs,
            )  # fmt: skip
            np.testing.assert_array_equal(decoded.tokens, greedy.tokens)
            np.testing.assert_allclose(decoded.scores, greedy.scores, rtol=1e-12)


def test_top_k_samples_only_the_k_most_likely():
    logits = jnp.asarray([[0.0, 3.0, 1.0, 2.0, -1.0]], F64)
    kept = models.decoding.top_k_logits(logits, 2)
    np.testing.assert_array_equal(kept, [[-np.inf, 3.0, -np.inf, 2.0, -np.inf]])


def test_after_eos_only_padding():
    model, params, state = setup(1.5)
    many = jax.tree.map(lambda x: jnp.repeat(x, 8, axis=0), state)
    decoded = models.sample(model.decode_step, params, many, jax.random.key(0), max_length=L, **IDS)
    tokens, lengths = np.asarray(decoded.tokens), np.asarray(decoded.lengths)
    assert np.any(lengths < L) and np.any(tokens == EOS)
    for row, n in zip(tokens, lengths, strict=True):
        eos = np.flatnonzero(row == EOS)
        assert n == (eos[0] + 1 if eos.size else L)
        assert np.all(row[n:] == PAD)


def test_beam_size_one_equals_greedy():
    model, params, state = setup(1.0)
    greedy = models.greedy(model.decode_step, params, state, max_length=L, **IDS)
    for alpha in (0.0, 0.6):
        beam = models.beam_search(
            model.decode_step, params, state, beam_size=1, max_length=L, alpha=alpha, **IDS
        )
        np.testing.assert_array_equal(beam.tokens[:, 0], greedy.tokens)
        np.testing.assert_array_equal(beam.lengths[:, 0], greedy.lengths)
        lp = ((5.0 + np.asarray(greedy.lengths)) / 6.0) ** alpha
        np.testing.assert_allclose(beam.scores[:, 0], np.asarray(greedy.scores) / lp, rtol=1e-10)


def brute_force(model, params, max_length, alpha):
    """Every hypothesis (ended by EOS, or max_length long), scored by the teacher-forced pass."""
    hyps = set()
    for seq in itertools.product(range(V), repeat=max_length):
        n = seq.index(EOS) + 1 if EOS in seq else max_length
        hyps.add(seq[:n])
    hyps = sorted(hyps)
    tgt_in = np.array([(BOS, *h, *[PAD] * (max_length - len(h)))[:max_length] for h in hyps])
    out = []
    for b in range(B):
        src = np.repeat(SRC[b : b + 1], len(hyps), 0)
        lengths = np.repeat(SRC_LENGTHS[b : b + 1], len(hyps), 0)
        logits, _ = jax.jit(model.apply_teacher_forced)(
            params, src, lengths, tgt_in.astype(np.int32)
        )
        logp = np.asarray(jax.nn.log_softmax(logits))
        scores = [
            sum(logp[i, t, tok] for t, tok in enumerate(h)) / ((5.0 + len(h)) / 6.0) ** alpha
            for i, h in enumerate(hyps)
        ]
        order = np.argsort(scores)[::-1]
        out.append([(hyps[i], scores[i]) for i in order])
    return out


@pytest.mark.parametrize("alpha", [0.0, 0.8])
def test_beam_search_finds_the_brute_force_best(alpha):
    """Max length 3 over 5 tokens: a beam of 125 holds every hypothesis, so it is exact."""
    model, params, state = setup(1.0)
    ranked = brute_force(model, params, 3, alpha)
    beam = models.beam_search(
        model.decode_step, params, state, beam_size=V**3, max_length=3, alpha=alpha, **IDS
    )
    for b in range(B):
        for i in range(5):  # the five best, in order
            hyp, score = ranked[b][i]
            n = len(hyp)
            assert int(beam.lengths[b, i]) == n
            np.testing.assert_array_equal(beam.tokens[b, i, :n], hyp)
            assert np.all(np.asarray(beam.tokens)[b, i, n:] == PAD)
            np.testing.assert_allclose(beam.scores[b, i], score, rtol=1e-10)


def test_small_beam_scores_are_true_scores():
    """A pruned beam (K=2) returns real hypotheses, scored right, never beating the optimum."""
    model, params, state = setup(1.0)
    ranked = brute_force(model, params, 3, 0.0)
    beam = models.beam_search(model.decode_step, params, state, beam_size=2, max_length=3, **IDS)
    for b in range(B):
        table = dict(ranked[b])
        for i in range(2):
            n = int(beam.lengths[b, i])
            hyp = tuple(int(x) for x in beam.tokens[b, i, :n])
            np.testing.assert_allclose(beam.scores[b, i], table[hyp], rtol=1e-10)
            assert beam.scores[b, i] <= ranked[b][0][1] + 1e-12
        assert beam.scores[b, 0] >= beam.scores[b, 1]


def test_decoding_bad_inputs():
    model, params, state = setup()
    with pytest.raises(ValueError, match="max_length: expected a positive int, got 0"):
        models.greedy(model.decode_step, params, state, max_length=0, **IDS)
    with pytest.raises(ValueError, match="eos_id: expected a non-negative int token id, got -1"):
        models.greedy(model.decode_step, params, state, max_length=3, bos_id=1, eos_id=-1)
    with pytest.raises(ValueError, match="beam_size: expected a positive int, got 0"):
        models.beam_search(model.decode_step, params, state, beam_size=0, max_length=3, **IDS)
    with pytest.raises(ValueError, match=r"temperature: expected a positive number, got 0\.0"):
        models.sample(
            model.decode_step, params, state, jax.random.key(0), max_length=3, temperature=0.0,
            **IDS,
        )  # fmt: skip
    with pytest.raises(ValueError, match="top_k: expected a positive int or None, got 0"):
        models.sample(
            model.decode_step, params, state, jax.random.key(0), max_length=3, top_k=0, **IDS
        )


# ---------------------------------------------------------------- one-to-many


@pytest.mark.parametrize("mode", ["init_state", "every_step"])
def test_one_to_many_equals_python_loop(mode):
    """Oracle: NumPy init map / embedding / readout around a Python loop over ``cell.apply``."""
    I, T = 3, 6
    cell = jaxrnn.lstm(H, dtype=F64)
    gen = models.one_to_many(cell, I, V, mode=mode, embedding_size=2, dtype=F64)
    params = gen.init(jax.random.key(2))
    v = jax.random.normal(jax.random.key(3), (B, I), F64)
    tgt_in = np.array([[BOS, 3, 4, 4, 2, 0], [BOS, 4, 3, 0, 0, 0]], np.int32)
    logits = jax.jit(gen.apply_teacher_forced)(params, v, tgt_in)
    p = jax.tree.map(np.asarray, params, is_leaf=lambda x: x is None)
    step = jax.jit(cell.apply)
    for b in range(B):
        if mode == "init_state":  # h and c each a linear map of v
            (m_h, m_c) = p.init_map
            carry = jaxrnn.LSTMCarry(v[b] @ m_h.W + m_h.b, v[b] @ m_c.W + m_c.b)
        else:
            carry = cell.initial_carry(params.cell)
        for t in range(T):
            x = p.embedding.table[tgt_in[b, t]]
            if mode == "every_step":
                x = np.concatenate([x, v[b]])
            carry, h = step(params.cell, carry, jnp.asarray(x))
            expected = np.asarray(h) @ p.readout.W + p.readout.b
            np.testing.assert_allclose(logits[b, t], expected, rtol=1e-10, atol=1e-12)
    # Generation: greedy over decode_step equals the argmax loop, for T steps.
    state = gen.init_decode_state(params, v)
    decoded = models.greedy(gen.decode_step, params, state, max_length=T, **IDS)
    assert decoded.weights is None
    for b in range(B):
        n = int(decoded.lengths[b])
        tgt = np.concatenate([[BOS], np.asarray(decoded.tokens[b, : T - 1])]).astype(np.int32)
        lg = gen.apply_teacher_forced(params, v[b : b + 1], tgt[None])
        np.testing.assert_array_equal(decoded.tokens[b, :n], np.argmax(lg[0, :n], -1))


def test_one_to_many_bad_inputs():
    with pytest.raises(ValueError, match=r"mode: expected one of \('init_state', 'every_step'\)"):
        models.one_to_many(jaxrnn.gru(H), 3, V, mode="first_step")
    gen = models.one_to_many(jaxrnn.gru(H), 3, V)
    params = gen.init(jax.random.key(0))
    with pytest.raises(ValueError, match=r"v: expected shape \[B, 3\], got \(2, 4\)"):
        gen.init_decode_state(params, jnp.zeros((2, 4), jnp.float32))
    with pytest.raises(ValueError, match=r"tgt_in: expected shape \[B=2, T\], got \(3, 4\)"):
        gen.apply_teacher_forced(params, jnp.zeros((2, 3), jnp.float32), np.zeros((3, 4), np.int32))
