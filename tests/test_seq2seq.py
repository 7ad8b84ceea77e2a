"""jaxrnn.models attention and encoder–decoder against NumPy formulas and Python loops."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

import jaxrnn
from jaxrnn import models

F64 = jnp.float64
B, S, T, E, H, V = 3, 5, 4, 3, 4, 6
SRC = np.array([[3, 4, 5, 2, 1], [5, 3, 0, 0, 0], [4, 0, 0, 0, 0]], np.int32)
SRC_LENGTHS = np.array([5, 2, 1], np.int32)
TGT_IN = np.array([[1, 3, 4, 5], [1, 5, 5, 2], [1, 2, 0, 3]], np.int32)


# ---------------------------------------------------------------- attention vs NumPy


def np_softmax(s, mask):
    s = np.where(mask, s, -np.inf)
    top = np.max(s, axis=-1, keepdims=True)
    top = np.where(np.isfinite(top), top, 0.0)
    e = np.where(mask, np.exp(s - top), 0.0)
    z = e.sum(-1, keepdims=True)
    return e / np.where(z > 0, z, 1.0)


def np_scores(kind, p, q, k):
    if kind == "additive":
        return np.tanh((q @ p.W_a)[:, None, :] + k @ p.U_a) @ p.v_a
    if kind == "dot":
        return np.einsum("bd,bsd->bs", q, k)
    return np.einsum("bd,de,bse->bs", q, p.W_a, k)


ATTENTIONS = {
    "additive": lambda: models.additive(5, dtype=F64),
    "dot": models.dot,
    "general": lambda: models.general(dtype=F64),
}


def attention_inputs(key, D=4, Dv=3):
    kq, kk, kv = jax.random.split(key, 3)
    q = jax.random.normal(kq, (B, D), F64)
    k = jax.random.normal(kk, (B, S, D), F64)
    v = jax.random.normal(kv, (B, S, Dv), F64)
    # Row 0: all valid; row 1: padded; row 2: all masked.
    mask = np.arange(S) < np.array([S, 2, 0])[:, None]
    return q, k, v, mask


@pytest.mark.parametrize("kind", sorted(ATTENTIONS))
def test_attention_matches_numpy(kind, key):
    att = ATTENTIONS[kind]()
    q, k, v, mask = attention_inputs(key)
    params = att.init(jax.random.key(1), 4, 4)
    context, weights = att.apply(params, q, k, v, mask)
    p = jax.tree.map(np.asarray, params)
    w = np_softmax(np_scores(kind, p, np.asarray(q), np.asarray(k)), mask)
    np.testing.assert_allclose(weights, w, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(context, np.einsum("bs,bsd->bd", w, v), rtol=1e-12, atol=1e-14)
    assert np.all(np.asarray(weights)[~mask] == 0.0)  # exactly zero, not just small
    assert np.all(np.asarray(context)[2] == 0.0) and np.all(np.isfinite(context))
    # Without a mask: a plain softmax over all positions.
    _, w_all = att.apply(params, q, k, v)
    np.testing.assert_allclose(w_all, np_softmax(np_scores(kind, p, q, k), True), rtol=1e-12)
    # The keys' part prepared once (as a decoder does for all its steps): the same.
    prepared = att.prepare(params, k)
    if kind == "additive":  # U_aᵀ k, [B, S, A]
        np.testing.assert_allclose(prepared, np.asarray(k) @ p.U_a, rtol=1e-12)
    again = att.apply(params, q, k, v, mask, prepared=prepared)
    np.testing.assert_allclose(again[1], w, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(again[0], context, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("kind", sorted(ATTENTIONS))
def test_attention_gradients_finite_differences(kind, key):
    att = ATTENTIONS[kind]()
    q, k, v, mask = attention_inputs(key)
    params = att.init(jax.random.key(1), 4, 4)
    r = jax.random.normal(jax.random.key(2), (B, 3), F64)

    def f(params, q, k, v):
        context, weights = att.apply(params, q, k, v, mask)
        return jnp.sum(context * r) + jnp.sum(weights**2)

    check_grads(jax.jit(f), (params, q, k, v), order=1, modes=("rev",))
    grads = jax.grad(f, argnums=(1, 2))(params, q, k, v)
    assert all(np.all(np.isfinite(g)) for g in grads)  # the all-masked row gives no NaN
    assert np.all(np.asarray(grads[1])[~mask] == 0.0)  # masked keys get no gradient


def test_attention_bad_inputs(key):
    q, k, v, mask = attention_inputs(key)
    att = models.general(dtype=F64)
    params = att.init(key, 4, 4)
    with pytest.raises(ValueError, match=r"mask: expected shape \(3, 5\).*got \(3, 4\)"):
        att.apply(params, q, k, v, mask[:, :4])
    with pytest.raises(TypeError, match="mask: expected a bool array, got dtype int"):
        att.apply(params, q, k, v, mask.astype(np.int32))
    with pytest.raises(ValueError, match=r"values: expected shape \(3, 5, 'Dv'\)"):
        att.apply(params, q, k, v[:, :4], mask)
    with pytest.raises(ValueError, match=r"query, keys: expected sizes Dq=4, Dk=4.*got 4 and 2"):
        att.apply(params, q, k[..., :2], v, mask)
    with pytest.raises(ValueError, match="key_size: dot attention needs key_size == query_size"):
        models.dot().init(key, 4, 3)
    with pytest.raises(ValueError, match="attention_size: expected a positive int, got 0"):
        models.additive(0)


# ---------------------------------------------------------------- encoder–decoder


def make_model(encoder="gru", attention="additive", style="luong", bridge_mode="auto"):
    encoders = {
        "gru": jaxrnn.gru(H, dtype=F64),
        "elman": jaxrnn.elman(H, dtype=F64),
        "bidirectional": jaxrnn.bidirectional(jaxrnn.lstm(H, dtype=F64), merge="sum"),
        "stacked": jaxrnn.stack_layers(
            jaxrnn.bidirectional(jaxrnn.gru(3, dtype=F64)), jaxrnn.gru(H, dtype=F64)
        ),
    }
    decoder = jaxrnn.elman(H, dtype=F64) if encoder == "elman" else jaxrnn.gru(H, dtype=F64)
    att = None if attention is None else ATTENTIONS[attention]()
    return models.seq2seq_model(
        encoders[encoder], decoder, V, V, embedding_size=E, attention=att, style=style,
        bridge_mode=bridge_mode, dtype=F64,
    )  # fmt: skip


CONFIGS = {
    "plain": dict(attention=None),
    "luong-additive": dict(attention="additive"),
    "luong-dot-bidirectional": dict(encoder="bidirectional", attention="dot"),
    "luong-general-stacked": dict(encoder="stacked", attention="general"),
    "bahdanau-additive": dict(attention="additive", style="bahdanau"),
    "bahdanau-general-bidirectional": dict(
        encoder="bidirectional", attention="general", style="bahdanau"
    ),
}


@functools.cache
def setup(name):
    model = make_model(**CONFIGS[name])
    return model, model.init(jax.random.key(7))


@functools.cache
def teacher_forced(name):
    model, params = setup(name)
    return jax.jit(model.apply_teacher_forced)(params, SRC, SRC_LENGTHS, TGT_IN)


def np_elman(p, h, x):
    return np.tanh(x @ p.W_xh + h @ p.W_hh + p.b)


@pytest.mark.parametrize("style", ["luong", "bahdanau"])
def test_seq2seq_matches_numpy_equations(style):
    """Elman encoder and decoder, general attention: the module docstring's equations in NumPy."""
    model = make_model(encoder="elman", attention="general", style=style)
    params = model.init(jax.random.key(3))
    logits, weights = jax.jit(model.apply_teacher_forced)(params, SRC, SRC_LENGTHS, TGT_IN)
    p = jax.tree.map(np.asarray, params, is_leaf=lambda x: x is None)
    for b in range(B):
        n = SRC_LENGTHS[b]
        h, memory = np.zeros(H), []
        for s in range(n):
            h = np_elman(p.encoder, h, p.source_embedding.table[SRC[b, s]])
            memory.append(h)
        memory = np.stack(memory)  # only the valid steps: padding is never read
        feed = np.zeros(H)  # h~_0 (Luong) or s_0 (Bahdanau)
        for t in range(T):
            e = p.target_embedding.table[TGT_IN[b, t]]
            if style == "luong":
                h = np_elman(p.decoder, h, np.concatenate([e, feed]))
                w = np_softmax(memory @ p.attention.W_a.T @ h, True)
                c = w @ memory
                feed = np.tanh(np.concatenate([c, h]) @ p.attentional.W + p.attentional.b)
                out = feed
            else:
                w = np_softmax(memory @ p.attention.W_a.T @ feed, True)
                c = w @ memory
                h = np_elman(p.decoder, h, np.concatenate([e, c]))
                feed, out = h, np.concatenate([h, c])
            np.testing.assert_allclose(logits[b, t], out @ p.readout.W + p.readout.b, rtol=1e-10)
            np.testing.assert_allclose(weights[b, t, :n], w, rtol=1e-10, atol=1e-14)
            assert np.all(np.asarray(weights)[b, t, n:] == 0.0)


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_step_by_step_equals_teacher_forced(name):
    model, params = setup(name)
    logits, weights = teacher_forced(name)
    state = jax.jit(model.init_decode_state)(params, SRC, SRC_LENGTHS)
    step = jax.jit(model.decode_step)
    for t in range(T):
        state, step_logits, step_weights = step(params, state, jnp.asarray(TGT_IN[:, t]))
        np.testing.assert_allclose(step_logits, logits[:, t], rtol=1e-10, atol=1e-12)
        if weights is None:
            assert step_weights is None
        else:
            np.testing.assert_allclose(step_weights, weights[:, t], rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_source_padding_changes_nothing(name):
    model, params = setup(name)
    logits, weights = teacher_forced(name)
    noisy = np.where(np.arange(S) < SRC_LENGTHS[:, None], SRC, (SRC + 2) % V).astype(np.int32)
    assert not np.array_equal(noisy, SRC)
    logits2, _ = jax.jit(model.apply_teacher_forced)(params, noisy, SRC_LENGTHS, TGT_IN)
    np.testing.assert_allclose(logits2, logits, rtol=1e-12, atol=1e-14)
    if weights is not None:
        w = np.asarray(weights)
        pad = np.broadcast_to((np.arange(S) >= SRC_LENGTHS[:, None])[:, None, :], w.shape)
        assert np.all(w[pad] == 0.0)
        np.testing.assert_allclose(np.sum(weights, -1), 1.0, rtol=1e-12)


def test_batch_rows_are_independent():
    """Each row decoded alone gives its row of the batch (no leak through padding or attention)."""
    model, params = setup("luong-additive")
    logits, weights = teacher_forced("luong-additive")
    for b in range(B):
        lb, wb = model.apply_teacher_forced(params, SRC[b : b + 1], SRC_LENGTHS[b : b + 1],
                                            TGT_IN[b : b + 1])  # fmt: skip
        np.testing.assert_allclose(lb[0], logits[b], rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(wb[0], weights[b], rtol=1e-10, atol=1e-12)


def test_bridge_copy_and_linear():
    model, params = setup("luong-additive")  # GRU -> GRU of the same size: copied
    assert params.bridge is None
    xs = params.source_embedding.table[SRC]
    final, _ = jaxrnn.scan(jaxrnn.gru(H, dtype=F64), params.encoder, xs, lengths=SRC_LENGTHS)
    state = model.init_decode_state(params, SRC, SRC_LENGTHS)
    np.testing.assert_array_equal(state.carry.h, final.h)
    # A bidirectional LSTM encoder (h, c both ways) into a GRU: W [4H, H] on [h_f; c_f; h_b; c_b].
    model, params = setup("luong-dot-bidirectional")
    (lin,) = params.bridge
    xs = params.source_embedding.table[SRC]
    final, _ = jaxrnn.bidirectional(jaxrnn.lstm(H, dtype=F64), merge="sum").apply(
        params.encoder, xs, lengths=SRC_LENGTHS
    )
    flat = np.concatenate(
        [final.forward.h, final.forward.c, final.backward.h, final.backward.c], -1
    )
    state = model.init_decode_state(params, SRC, SRC_LENGTHS)
    np.testing.assert_allclose(state.carry.h, flat @ lin.W + lin.b, rtol=1e-12)
    # "none": the decoder starts from its own initial carry.
    model = make_model(bridge_mode="none")
    state = model.init_decode_state(model.init(jax.random.key(0)), SRC, SRC_LENGTHS)
    assert np.all(np.asarray(state.carry.h) == 0.0)


def test_scheduled_sampling_probability_zero_is_teacher_forcing():
    model, params = setup("luong-additive")
    logits, weights = teacher_forced("luong-additive")
    l0, w0 = model.apply_teacher_forced(
        params, SRC, SRC_LENGTHS, TGT_IN, key=jax.random.key(3), sampling_prob=0.0
    )
    np.testing.assert_array_equal(l0, logits)
    np.testing.assert_array_equal(w0, weights)
    # A traced probability of 0 never flips the coin either.
    l0 = jax.jit(
        lambda p: model.apply_teacher_forced(
            params, SRC, SRC_LENGTHS, TGT_IN, key=jax.random.key(3), sampling_prob=p
        )[0]
    )(jnp.asarray(0.0, F64))
    np.testing.assert_allclose(l0, logits, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("sampling", ["argmax", "sample"])
def test_scheduled_sampling_probability_one_feeds_own_tokens(sampling):
    """Oracle: a Python loop that feeds back the model's own argmax / sample."""
    model, params = setup("luong-additive")
    key = jax.random.key(11)
    logits, _ = model.apply_teacher_forced(
        params, SRC, SRC_LENGTHS, TGT_IN, key=key, sampling_prob=1.0, sampling=sampling
    )
    state = model.init_decode_state(params, SRC, SRC_LENGTHS)
    token, fed = jnp.asarray(TGT_IN[:, 0]), []
    for t in range(T):
        state, step_logits, _ = model.decode_step(params, state, token)
        np.testing.assert_allclose(logits[:, t], step_logits, rtol=1e-10, atol=1e-12)
        _, k_tok = jax.random.split(jax.random.fold_in(key, t + 1))
        if sampling == "argmax":
            token = jnp.argmax(step_logits, -1).astype(jnp.int32)
        else:
            token = jax.random.categorical(k_tok, step_logits, axis=-1).astype(jnp.int32)
        fed.append(np.asarray(token))
    assert not np.array_equal(np.stack(fed[:-1], 1), TGT_IN[:, 1:])  # really not teacher forced


def test_scheduled_sampling_mixes_per_sequence_and_step():
    """With p = 0.5 each (row, step) input is the ground truth or the model's argmax."""
    model, params = setup("luong-additive")
    key = jax.random.key(5)
    logits, _ = model.apply_teacher_forced(
        params, SRC, SRC_LENGTHS, TGT_IN, key=key, sampling_prob=0.5, sampling="argmax"
    )
    state = model.init_decode_state(params, SRC, SRC_LENGTHS)
    token = jnp.asarray(TGT_IN[:, 0])
    for t in range(T):
        if t > 0:
            k_coin, _ = jax.random.split(jax.random.fold_in(key, t))
            coin = jax.random.uniform(k_coin, (B,), F64) < 0.5
            own = jnp.argmax(logits[:, t - 1], -1).astype(jnp.int32)
            token = jnp.where(coin, own, jnp.asarray(TGT_IN[:, t]))
        state, step_logits, _ = model.decode_step(params, state, token)
        np.testing.assert_allclose(logits[:, t], step_logits, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("name", ["luong-additive", "bahdanau-general-bidirectional"])
def test_teacher_forced_gradients(name):
    model, params = setup(name)
    r = jax.random.normal(jax.random.key(4), (B, T, V), F64)
    q = jax.random.normal(jax.random.key(5), (B, T, S), F64)

    def loss(params):
        logits, weights = model.apply_teacher_forced(params, SRC, SRC_LENGTHS, TGT_IN)
        return jnp.sum(jax.nn.log_softmax(logits) * r) + jnp.sum(weights * q)

    check_grads(jax.jit(loss), (params,), order=1, modes=("rev",))


def test_seq2seq_bad_inputs():
    model, params = setup("luong-additive")
    with pytest.raises(TypeError, match="src: expected an integer array, got dtype float"):
        model.apply_teacher_forced(params, SRC.astype(np.float64), SRC_LENGTHS, TGT_IN)
    with pytest.raises(ValueError, match=r"src_lengths: expected shape \(3,\), got \(2,\)"):
        model.apply_teacher_forced(params, SRC, SRC_LENGTHS[:2], TGT_IN)
    with pytest.raises(ValueError, match=r"tgt_in: expected batch size 3.*got shape \(2, 4\)"):
        model.apply_teacher_forced(params, SRC, SRC_LENGTHS, TGT_IN[:2])
    with pytest.raises(
        ValueError, match=r"lengths: expected values in \[0, T=5\], got min 2, max 6"
    ):
        model.apply_teacher_forced(params, SRC, SRC_LENGTHS + 1, TGT_IN)
    with pytest.raises(ValueError, match="key: expected a PRNG key when sampling_prob > 0"):
        model.apply_teacher_forced(params, SRC, SRC_LENGTHS, TGT_IN, sampling_prob=0.5)
    with pytest.raises(ValueError, match=r"sampling_prob: expected a value in \[0, 1\], got 1.5"):
        model.apply_teacher_forced(
            params, SRC, SRC_LENGTHS, TGT_IN, key=jax.random.key(0), sampling_prob=1.5
        )
    with pytest.raises(ValueError, match=r"sampling: expected one of .*got 'top'"):
        model.apply_teacher_forced(params, SRC, SRC_LENGTHS, TGT_IN, sampling="top")
    with pytest.raises(ValueError, match=r"style: expected one of .*got 'vaswani'"):
        make_model(style="vaswani")
    with pytest.raises(ValueError, match="bridge_mode: 'copy' needs the encoder's final carry"):
        make_model(encoder="bidirectional", bridge_mode="copy").init(jax.random.key(0))
    with pytest.raises(TypeError, match=r"encoder: expected a jaxrnn.Cell or jaxrnn.Layer, got"):
        models.seq2seq_model("gru", jaxrnn.gru(H), V, V, embedding_size=E)
    with pytest.raises(ValueError, match="embedding_size: expected a positive int, got 0"):
        models.seq2seq_model(jaxrnn.gru(H), jaxrnn.gru(H), V, V, embedding_size=0)


def test_heads_match_numpy(key):
    k1, k2, k3 = jax.random.split(key, 3)
    h = np.asarray(jax.random.normal(k1, (2, 3, 4), F64))
    lin = models.heads.linear_init(k2, 4, 5, F64)
    np.testing.assert_allclose(models.linear(lin, h), h @ lin.W + lin.b, rtol=1e-12)
    net = models.heads.mlp_init(k3, 4, 6, 2, F64)
    hidden = np.maximum(h @ net.hidden.W + net.hidden.b, 0.0)
    np.testing.assert_allclose(
        models.mlp(net, h, "relu"), hidden @ net.output.W + net.output.b, rtol=1e-12
    )
    table = models.heads.embedding_init(k1, 7, 3, F64)
    tokens = np.array([[0, 6], [3, 3]], np.int32)
    np.testing.assert_array_equal(models.embed(table, tokens), np.asarray(table.table)[tokens])
    with pytest.raises(ValueError, match=r"h: expected shape \[\*batch, 4\].*got \(2, 3\)"):
        models.linear(lin, h[..., 0])
    with pytest.raises(TypeError, match="tokens: expected an integer array, got dtype float64"):
        models.embed(table, tokens.astype(np.float64))
