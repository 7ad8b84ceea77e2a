"""The linear recurrences (LRU, minGRU, minLSTM, RG-LRU) and the parallel engine.

Oracles: each cell's step in NumPy, written from the paper's equations (not the log-space
or scan forms the cells use), rolled by a NumPy transcription of ``jaxrnn.scan``'s loop;
the sequential engine (a ``lax.scan`` of ``apply``) for the parallel one, in values and
gradients; finite differences in float64. optax's updates run under "standard" dtype
promotion (see tests/test_optim.py).
"""

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.test_util import check_grads

import jaxrnn
from jaxrnn.rollout.scan import resolve_mode
from jaxrnn.training.config import ModelConfig, OptimConfig, make_cell
from jaxrnn.training.optim import (
    injected_hyperparams,
    make_optimizer,
    recurrent_fields,
    schedule,
)

H, I, T = 3, 2, 5
F64 = jnp.float64
FACTORIES = {
    "lru": jaxrnn.lru,
    "min_gru": jaxrnn.min_gru,
    "min_lstm": jaxrnn.min_lstm,
    "rg_lru": jaxrnn.rg_lru,
}
LOG_SPACE = ("min_gru", "min_lstm")


# --- NumPy oracles, from the papers' equations ------------------------------------------


def sigmoid(x):
    return 1 / (1 + np.exp(-x))


def g(x):
    """minGRU/minLSTM's positive candidate activation (Feng et al. 2024)."""
    return np.where(x >= 0, x + 0.5, sigmoid(x))


def np_step(name, p, h, x):
    """One step ``(h, y)`` of cell ``name`` with NumPy params ``p`` (a dict of arrays)."""
    if name == "lru":  # Orvieto et al. 2023, Eq. (1) and Sec. 3
        lam = np.exp(-np.exp(p["nu_log"]) + 1j * np.exp(p["theta_log"]))
        h = lam * h + np.exp(p["gamma_log"]) * (x @ (p["B_re"] + 1j * p["B_im"]))
        return h, (h @ (p["C_re"] + 1j * p["C_im"])).real + p["D"] * x
    if name == "rg_lru":  # De et al. 2024, Eq. (1)-(4), with c = 8
        r = sigmoid(x @ p["W_a"] + p["b_a"])
        i = sigmoid(x @ p["W_x"] + p["b_x"])
        a = sigmoid(p["Lambda"]) ** (8.0 * r)
        h = a * h + np.sqrt(1 - a**2) * (i * (x @ p["W_u"]))
        return h, h
    k = x @ p["W"] + p["b"]
    blocks = np.split(k, 2 if name == "min_gru" else 3, axis=-1)
    if name == "min_gru":  # Feng et al. 2024, Sec. 3.2 and the log-space minGRU's g
        z, h_tilde = sigmoid(blocks[0]), g(blocks[1])
        h = (1 - z) * h + z * h_tilde
    else:  # minLSTM, Sec. 3.1, gates normalised to sum to one
        f, i = sigmoid(blocks[0]), sigmoid(blocks[1])
        h = f / (f + i) * h + i / (f + i) * g(blocks[2])
    return h, h


def np_rollout(name, params, xs, h0, *, valid, resets, reverse):
    """``jaxrnn.scan``'s documented loop, per sequence, batch-major ``xs: [*batch, T, I]``."""
    p = {k: np.asarray(v) for k, v in params._asdict().items()}
    xs, h0 = np.asarray(xs), np.asarray(h0)
    batch_shape, steps = xs.shape[:-2], xs.shape[-2]
    out_size = I if name == "lru" else H
    final, ys = h0.copy(), np.zeros((*batch_shape, steps, out_size))
    for b in np.ndindex(*batch_shape):
        h = h0[b]
        for t in range(steps - 1, -1, -1) if reverse else range(steps):
            # Backwards, a packed sequence starts right after the step that began it.
            start = (t + 1 < steps and resets[b][t + 1]) if reverse else resets[b][t]
            if start:
                h = h0[b]
            if valid[b][t]:
                h, ys[b][t] = np_step(name, p, h, xs[b][t])
        final[b] = h
    return final, ys


# --- set-ups -----------------------------------------------------------------------------
#
# XLA:CPU compiles an associative scan slowly (a few fusions per level of the tree, seconds
# per program on a busy machine), so the cases share programs: one cell object per name,
# fixed shapes, and every rollout feature passed as data, a feature that is "off" passed
# as its neutral value (lengths T, a full mask, no resets, a zero carry). The paths without
# any of them (valid and starts None) are the "plain" case.

CELLS = {name: factory(H, dtype=F64) for name, factory in FACTORIES.items()}
FEATURES = ("lengths", "mask", "resets", "reverse", "carry")


def randomize(tree, key, scale=0.3):
    """``tree`` plus noise, so that every param (the zero biases too) matters."""
    leaves, treedef = jax.tree.flatten(tree)
    keys = jax.random.split(key, len(leaves))
    noisy = [
        x + scale * jax.random.normal(k, x.shape, x.dtype)
        for k, x in zip(keys, leaves, strict=True)
    ]
    return jax.tree.unflatten(treedef, noisy)


def random_carry(cell, params, batch_shape, key):
    """A carry of any sign (complex for the LRU), of the cell's carry shape and dtype."""
    zeros = cell.initial_carry(params, batch_shape)
    k_re, k_im = jax.random.split(key)
    if jnp.iscomplexobj(zeros.h):
        real = jax.random.normal(k_re, zeros.h.shape, F64)
        return zeros._replace(h=jax.lax.complex(real, jax.random.normal(k_im, real.shape, F64)))
    return zeros._replace(h=jax.random.normal(k_re, zeros.h.shape, zeros.h.dtype))


def setup(name, key, batch_shape=(3,), steps=T, dtype=F64):
    cell = CELLS[name] if dtype == F64 else FACTORIES[name](H, dtype=dtype)
    k_p, k_n, k_x = jax.random.split(key, 3)
    params = randomize(cell.init(k_p, I), k_n)
    xs = jax.random.normal(k_x, (*batch_shape, steps, I), dtype)
    return cell, params, xs


def extras(features, cell, params, xs, key):
    """``(carry, arrays, reverse)``: the initial carry and the ``lengths``, ``mask`` and
    ``resets`` of ``jaxrnn.scan``, random for the ``features`` named, neutral for the
    others; no arrays and a zero carry for ``features=()``."""
    batch_shape, steps = xs.shape[:-2], xs.shape[-2]
    k_l, k_m, k_r, k_c = jax.random.split(key, 4)
    carry = cell.initial_carry(params, batch_shape)
    if "carry" in features:
        carry = random_carry(cell, params, batch_shape, k_c)
    if not features:
        return carry, {}, False
    shape = (*batch_shape, steps)
    lengths = jax.random.randint(k_l, batch_shape, 0, steps + 1)
    mask = jax.random.bernoulli(k_m, 0.7, shape)
    resets = jax.random.bernoulli(k_r, 0.3, shape)
    # The neutral values *_like the random ones: same dtypes and weak types, same program.
    arrays = {
        "lengths": lengths if "lengths" in features else jnp.full_like(lengths, steps),
        "mask": mask if "mask" in features else jnp.ones_like(mask),
        "resets": resets if "resets" in features else jnp.zeros_like(resets),
    }
    return carry, arrays, "reverse" in features


def random_like(tree, key):
    """Random cotangents: normal, complex for complex leaves."""
    leaves, treedef = jax.tree.flatten(tree)
    keys = jax.random.split(key, len(leaves))
    out = []
    for k, x in zip(keys, leaves, strict=True):
        k_re, k_im = jax.random.split(k)
        if jnp.iscomplexobj(x):
            re, im = (jax.random.normal(k, x.shape, F64) for k in (k_re, k_im))
            out.append(jax.lax.complex(re, im).astype(x.dtype))
        else:
            out.append(jax.random.normal(k_re, x.shape, x.dtype))
    return jax.tree.unflatten(treedef, out)


@functools.partial(jax.jit, static_argnames=("cell", "mode", "reverse", "remat"))
def values_and_grads(cell, params, xs, carry, cts, arrays, *, mode, reverse, remat=None):
    """``(final_carry, ys)`` of ``jaxrnn.scan`` and the vjp of ``cts`` w.r.t. params, xs and
    the initial carry."""

    def f(params, xs, carry):
        return jaxrnn.scan(
            cell, params, xs, carry, mode=mode, reverse=reverse, remat=remat, **arrays
        )

    out, vjp = jax.vjp(f, params, xs, carry)
    return out, vjp(cts)


def compare_engines(name, features, key, batch_shape=(3,), steps=T, remat=None):
    """Assert that the parallel engine's values and vjp equal the sequential one's, in
    float64; return the set-up and the sequential ``(final_carry, ys)``."""
    cell, params, xs = setup(name, key, batch_shape, steps)
    carry, arrays, reverse = extras(features, cell, params, xs, jax.random.fold_in(key, 1))
    out_shape = jax.eval_shape(lambda: jaxrnn.scan(cell, params, xs, carry, **arrays))
    cts = random_like(out_shape, jax.random.fold_in(key, 2))
    run = functools.partial(values_and_grads, cell, params, xs, carry, cts, arrays)
    sequential = run(mode="sequential", reverse=reverse)
    parallel = run(mode="parallel", reverse=reverse, remat=remat)
    assert_trees_close(parallel, sequential, rtol=1e-9, atol=1e-11)
    return params, xs, carry, arrays, reverse, sequential[0]


def assert_trees_close(got, want, **tol):
    assert jax.tree.structure(got) == jax.tree.structure(want)
    for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True):
        assert a.shape == b.shape and a.dtype == b.dtype
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), **tol)


# --- values against the NumPy oracles ---------------------------------------------------


@pytest.mark.parametrize("name", FACTORIES)
def test_values_equal_numpy_oracle(name, key):
    """Both engines equal the NumPy step from the paper, with every rollout feature."""
    params, xs, carry, arrays, reverse, out = compare_engines(name, FEATURES, key)
    steps = xs.shape[-2]
    valid = np.asarray(arrays["mask"]) & (np.arange(steps) < np.asarray(arrays["lengths"])[:, None])
    resets = np.asarray(arrays["resets"])
    final, ys = np_rollout(name, params, xs, carry.h, valid=valid, resets=resets, reverse=reverse)
    np.testing.assert_allclose(np.asarray(out[0].h), final, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(np.asarray(out[1]), ys, rtol=1e-10, atol=1e-12)


# --- the parallel engine equals the sequential one, values and gradients ---------------

CASES = {
    "plain": (),
    **{feature: (feature,) for feature in FEATURES},
    "all-forward": ("lengths", "mask", "resets", "carry"),
    "all-reverse": FEATURES,
}


@pytest.mark.parametrize("name", ["lru", "min_gru"])
@pytest.mark.parametrize("case", CASES)
def test_parallel_equals_sequential(name, case, key):
    """LRU (complex, linear space) and minGRU (log space) under each feature and all;
    minLSTM and RG-LRU under all (test_values_equal_numpy_oracle)."""
    compare_engines(name, CASES[case], key)


@pytest.mark.parametrize("name", ["lru", "min_gru"])
@pytest.mark.parametrize(
    "batch_shape, steps",
    [((), T), ((2, 2), T), ((3,), 0), ((0,), T), ((3,), 1)],
    ids=["batch()", "batch(2,2)", "T=0", "batch0", "T=1"],
)
def test_parallel_equals_sequential_shapes(name, batch_shape, steps, key):
    compare_engines(name, FEATURES, key, batch_shape, steps)


@pytest.mark.parametrize("name", ["lru", "min_gru"])
def test_parallel_with_remat_equals_sequential(name, key):
    """Segments of 3 over T = 5 (a leftover segment), resuming from each segment's carry
    while resets still restart from the rollout's initial carry."""
    compare_engines(name, FEATURES, key, remat=3)


@pytest.mark.parametrize("name", FACTORIES)
def test_gradients_equal_finite_differences(name, key):
    """Finite differences of the parallel engine, reversed, with every feature; row 0 has
    length 0 and row 1 is fully masked: every step there is the identity element, whose
    log b must be finite in log space (logaddexp(-inf, -inf) has NaN gradients)."""
    cell, params, xs = setup(name, key, (3,), 4)
    carry, arrays, _ = extras(FEATURES, cell, params, xs, jax.random.fold_in(key, 1))
    arrays["lengths"] = arrays["lengths"].at[0].set(0)
    arrays["mask"] = arrays["mask"].at[1].set(False)

    @jax.jit
    def f(params, xs, carry):
        return jaxrnn.scan(cell, params, xs, carry, mode="parallel", reverse=True, **arrays)

    out, vjp = jax.vjp(f, params, xs, carry)
    cts = random_like(out, jax.random.fold_in(key, 2))
    _, g_xs, g_carry = grads = vjp(cts)
    assert all(bool(jnp.all(jnp.isfinite(leaf))) for leaf in jax.tree.leaves(grads))
    # The rows that never step: no gradient to their inputs, and the final carry is the
    # initial one, so the carry's cotangent passes through unchanged.
    assert not np.any(np.asarray(g_xs[:2]))
    np.testing.assert_array_equal(np.asarray(g_carry.h[:2]), np.asarray(cts[0].h[:2]))
    check_grads(f, (params, xs, carry), order=1, modes=("rev",), eps=1e-6)


def test_log_space_stable_over_long_sequences(key):
    """T = 4096 in float32 with saturating gates: finite, and equal to the float64
    sequential scan. minGRU stands for the log-space engine (compiling it for T = 4096
    takes long on CPU; minLSTM differs only in its coefficients, tested above).

    Tolerance: the sequential float32 scan contracts its rounding errors each step
    (0 < a < 1), to a few ulps of ``h``; the parallel one sums ``log a`` and ``logaddexp``s
    along a tree of depth log2(T) = 12, so ``log h`` is off by up to about ``12 · eps32 ·
    |log h|`` ~ 1.4e-6 · |log h|, and ``h`` relatively by as much: ~1.5e-5 for ``|log h|``
    ~ 10 (measured: 1e-6). rtol 5e-5 bounds it with room; atol covers states near 0.
    """
    steps = 4096
    cell, params, xs = setup("min_gru", key, (2,), steps, dtype=jnp.float32)
    xs = 4.0 * xs  # gates near 0 and 1: log a and log b span tens of nats
    carry = random_carry(cell, params, (2,), jax.random.fold_in(key, 1))
    lengths = jnp.array([steps, steps - 100])
    resets = jnp.zeros((2, steps), bool).at[:, 1000].set(True)

    @functools.partial(jax.jit, static_argnames="mode")
    def run(params, xs, carry, lengths, resets, mode):
        return jaxrnn.scan(cell, params, xs, carry, lengths=lengths, resets=resets, mode=mode)

    parallel = run(params, xs, carry, lengths, resets, "parallel")
    as64 = jax.tree.map(lambda a: a.astype(F64), (params, xs, carry))
    truth = run(*as64, lengths, resets, "sequential")
    assert all(bool(jnp.all(jnp.isfinite(a))) for a in jax.tree.leaves(parallel))
    for got, want in zip(jax.tree.leaves(parallel), jax.tree.leaves(truth), strict=True):
        np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=5e-5, atol=1e-6)


# --- initialisation ---------------------------------------------------------------------


def test_lru_ring_initialisation_and_gamma_normalisation(key):
    r_min, r_max, max_phase = 0.4, 0.9, math.pi / 10
    params = jaxrnn.lru(4000, r_min=r_min, r_max=r_max, max_phase=max_phase).init(key, 3)
    radius = np.exp(-np.exp(np.asarray(params.nu_log, np.float64)))
    phase = np.exp(np.asarray(params.theta_log, np.float64))
    assert np.all((radius >= r_min) & (radius <= r_max))
    assert np.all((phase >= 0) & (phase <= max_phase))
    # Uniform on the ring: |λ|² ~ U[r_min², r_max²], phase ~ U[0, max_phase] (4000 draws).
    assert np.mean(radius**2) == pytest.approx((r_min**2 + r_max**2) / 2, abs=0.01)
    assert np.mean(phase) == pytest.approx(max_phase / 2, abs=0.01)
    gamma = np.exp(np.asarray(params.gamma_log, np.float64))
    np.testing.assert_allclose(gamma, np.sqrt(1 - radius**2), rtol=1e-5)
    assert params.B_re.shape == (3, 4000) and params.C_re.shape == (4000, 3)
    assert np.std(np.asarray(params.B_im)) == pytest.approx(1 / math.sqrt(6), rel=0.05)


def test_lru_defaults_finite_on_the_closed_unit_disc(key):
    """r_min = 0 and r_max = 1 (the defaults) keep every log finite."""
    params = jaxrnn.lru(4000).init(key, 2)
    assert all(bool(jnp.all(jnp.isfinite(leaf))) for leaf in params)


def test_lru_gamma_normalises_white_noise(key):
    """With ``B = 1`` and unit white noise, every state has unit variance however close
    ``|λ|`` is to 1: ``E|h|² = γ² Σ_k |λ|^(2k) = γ² / (1 − |λ|²) = 1`` (Orvieto et al.
    2023, Sec. 3.3). 2000 sequences of 300 steps (|λ|^600 < 1e-13: stationary)."""
    cell = jaxrnn.lru(4, r_min=0.5, r_max=0.95, dtype=F64)
    params = cell.init(key, 1)._replace(B_re=jnp.ones((1, 4), F64), B_im=jnp.zeros((1, 4), F64))
    xs = jax.random.normal(jax.random.fold_in(key, 1), (2000, 300, 1), F64)
    carry, _ = jax.jit(lambda p, x: jaxrnn.scan(cell, p, x, mode="sequential"))(params, xs)
    power = np.mean(np.abs(np.asarray(carry.h)) ** 2, axis=0)
    np.testing.assert_allclose(power, 1.0, atol=0.15)  # ~5 standard errors


def test_rg_lru_decay_initialisation(key):
    """a^c = σ(Λ)^c ~ U[0.9, 0.999] (De et al. 2024, Sec. 2.4)."""
    params = jaxrnn.rg_lru(4000).init(key, 3)
    a_c = np.asarray(jax.nn.sigmoid(params.Lambda.astype(F64))) ** 8
    assert np.all((a_c >= 0.9) & (a_c <= 0.999))
    assert np.mean(a_c) == pytest.approx(0.9495, abs=0.003)


# --- errors, configs, optimizer ---------------------------------------------------------


@pytest.mark.parametrize("mode", ["sequential", "parallel"])
def test_bad_input_size_is_named(mode, key):
    cell, params, _ = setup("lru", key)
    with pytest.raises(ValueError, match=r"x: expected shape \[\*batch, 2\]"):
        jaxrnn.scan(cell, params, jnp.ones((3, T, 5), F64), mode=mode)


def test_bad_mode_and_bptt_pairs():
    linear, lstm = jaxrnn.min_gru(H), jaxrnn.lstm(H)
    with pytest.raises(ValueError, match="bptt: 'fused' is the sequential"):
        resolve_mode(linear, "parallel", "fused")
    with pytest.raises(ValueError, match="needs a cell that declares a linear recurrence"):
        resolve_mode(lstm, "parallel", "auto")
    with pytest.raises(ValueError, match="mode: expected one of"):
        resolve_mode(linear, "fast", "auto")
    with pytest.raises(ValueError, match="bptt: expected one of"):
        resolve_mode(linear, "parallel", "bogus")
    assert resolve_mode(linear, "parallel", "autodiff") == "parallel"
    assert resolve_mode(linear, "sequential", "auto") == "auto"


@pytest.mark.parametrize("name", FACTORIES)
def test_configs_name_the_cells(name, key):
    cell = make_cell(ModelConfig(cell=name, hidden_size=H))
    assert cell.linear is not None
    params = cell.init(key, I)
    xs = jax.ShapeDtypeStruct((2, T, I), jnp.float32)
    _, ys = jax.eval_shape(lambda xs: jaxrnn.scan(cell, params, xs, mode="parallel"), xs)
    assert ys.shape == (2, T, I if name == "lru" else H)


def test_config_ring_settings(key):
    model = ModelConfig(cell="lru", hidden_size=500, r_min=0.8, r_max=0.9, max_phase=0.5)
    params = make_cell(model).init(key, I)
    radius = np.exp(-np.exp(np.asarray(params.nu_log)))
    assert np.all((radius >= 0.8 - 1e-6) & (radius <= 0.9 + 1e-6))  # float32 params
    assert np.exp(np.asarray(params.theta_log)).max() <= 0.5 + 1e-6
    with pytest.raises(ValueError, match="expected r_min <= r_max"):
        ModelConfig(cell="lru", r_min=0.9, r_max=0.5)
    with pytest.raises(ValueError, match="not a setting of cell='gru'"):
        ModelConfig(cell="gru", r_min=0.5)


@pytest.mark.usefixtures("standard_dtype_promotion")
def test_recurrent_lr_groups(key):
    """The declared recurrent leaves step as adam at recurrent_lr without weight decay;
    the others as the usual adamw; clipping and the schedule are shared."""
    assert {"nu_log", "theta_log", "gamma_log", "Lambda"} <= recurrent_fields()
    k_l, k_r = jax.random.split(key)
    params = {
        "lru": jaxrnn.lru(3).init(k_l, 2),
        "layers": (jaxrnn.rg_lru(3).init(k_r, 2), jaxrnn.min_gru(3).init(k_r, 2)),
        "head": jnp.ones((3, 2), jnp.float32),
    }
    recurrent = {"lru/nu_log", "lru/theta_log", "lru/gamma_log", "layers/0/Lambda"}
    cfg = OptimConfig(
        name="adamw",
        learning_rate=1e-2,
        weight_decay=0.1,
        recurrent_lr=1e-3,
        clip_norm=0.5,
        schedule="warmup_cosine",
        warmup_steps=2,
    )
    got = make_optimizer(cfg, 10)
    # Injected hyperparameters, as make_optimizer's, so that the float32 arithmetic is the same.
    clip = optax.inject_hyperparams(optax.clip_by_global_norm)(0.5)
    shared = (clip, optax.scale_by_schedule(schedule(cfg, 10)))
    adamw = optax.inject_hyperparams(optax.adamw)(learning_rate=1e-2, weight_decay=0.1)
    default = optax.chain(shared[0], adamw, shared[1])
    plain = optax.chain(
        shared[0], optax.inject_hyperparams(optax.adam)(learning_rate=1e-3), shared[1]
    )
    states = [opt.init(params) for opt in (got, default, plain)]
    updaters = [jax.jit(opt.update) for opt in (got, default, plain)]
    assert float(injected_hyperparams(states[0])["learning_rate"]) == pytest.approx(1e-2)

    def groups(updates):
        """The update leaves by path, "lru/nu_log", "layers/0/Lambda", ..."""
        flat = jax.tree_util.tree_flatten_with_path(updates)[0]
        return {"/".join(key_name(k) for k in path): u for path, u in flat}

    for step in range(3):
        grads = random_like(params, jax.random.fold_in(key, step))  # norm > 0.5: clipped
        updates = []
        for i, update in enumerate(updaters):
            u, states[i] = update(grads, states[i], params)
            updates.append(u)
        got_u, default_u, plain_u = map(groups, updates)
        assert recurrent <= set(got_u)
        for name, u in got_u.items():
            want = plain_u[name] if name in recurrent else default_u[name]
            np.testing.assert_allclose(np.asarray(u), np.asarray(want), rtol=1e-6, atol=1e-9)
        params = optax.apply_updates(params, updates[0])


def key_name(k):
    """A path key's field name, dict key or index, as a string."""
    for attribute in ("name", "key", "idx"):
        if hasattr(k, attribute):
            return str(getattr(k, attribute))
    raise TypeError(f"unexpected path key {k!r}")
