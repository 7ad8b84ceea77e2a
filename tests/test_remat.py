"""Segment checkpointing, ``jaxrnn.scan(..., remat=k)`` (:mod:`jaxrnn.rollout.scan`): same
numbers, less memory.

Oracles: the plain rollout (``remat=None``, itself checked against the documented
Python loop in ``test_rollout.py``) for values and for vector-Jacobian products
with random cotangents on the outputs and the final carry; central finite
differences in float64 (``check_grads``) for the gradients of one segmented
rollout; and the compiler's own ``memory_analysis()`` for the memory claim.
"""

import functools
import math
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

import jaxrnn
from jaxrnn.rollout.scan import sqrt_segment
from jaxrnn.tasks import data as data_lib
from jaxrnn.training import ConfigError, apply_overrides, from_dict, to_dict
from jaxrnn.training import experiment as experiment_lib

H, I, T, B = 5, 3, 12, 3
F64 = jnp.float64
TOL = {"rtol": 1e-10, "atol": 1e-10}

# Built once: the jitted plain reference then compiles once per cell, not per case.
CELLS = {"lstm": jaxrnn.lstm(H), "gru": jaxrnn.gru(H), "elman": jaxrnn.elman(H)}
# T = 12: k = 4 and "sqrt" (k = 3) divide T, 5 does not (two segments + 2 steps),
# 20 > T leaves only the leftover segment, 1 stores every carry.
# Every k forwards and backwards would be twice the compiles for little more coverage.
CASES = [("lstm", 1, False), ("lstm", 4, False), ("lstm", 4, True), ("lstm", 5, False)]
CASES += [("lstm", 5, True), ("lstm", 20, True), ("lstm", "sqrt", False)]
CASES += [("gru", 5, True), ("gru", "sqrt", False), ("elman", 5, True), ("elman", "sqrt", False)]


def randomize(tree, key, scale=0.5):
    leaves, treedef = jax.tree.flatten(tree)
    keys = jax.random.split(key, len(leaves))
    new = [scale * jax.random.normal(k, x.shape, F64) for k, x in zip(keys, leaves, strict=True)]
    return jax.tree.unflatten(treedef, new)


def setup(name, key, batch_shape=(B,)):
    """Cell, random params, inputs ``[*batch, T, I]`` and a random initial carry."""
    cell = CELLS[name]
    k_p, k_x, k_c = jax.random.split(key, 3)
    params = randomize(cell.init(k_p, I), k_p)
    xs = jax.random.normal(k_x, (*batch_shape, T, I), F64)
    carry = randomize(cell.initial_carry(params, batch_shape), k_c)
    return cell, params, xs, carry


def holes_and_resets(key, batch_shape=(B,)):
    """``lengths``, a ``mask`` with holes and ``resets``, some on segment boundaries.

    Forwards, a reset at t = 4 or 8 is the first step of a k = 4 segment (at 5 or 10,
    of a k = 5 one); backwards the reset at t = 8 lands on the first processed step
    (t = 7) of the segment [4, 8).
    """
    lengths = np.resize(np.asarray([T, 9, 5]), batch_shape)
    mask = np.asarray(jax.random.bernoulli(key, 0.75, (*batch_shape, T)))
    resets = np.zeros((*batch_shape, T), bool)
    resets[..., [4, 5, 8, 10]] = True
    return {"lengths": jnp.asarray(lengths, jnp.int32), "mask": mask, "resets": resets}


@functools.partial(jax.jit, static_argnums=0, static_argnames=("reverse", "remat"))
def _rollout_and_vjp(cell, params, xs, carry, cts, extras, *, reverse, remat):
    def f(params, xs, carry):
        return jaxrnn.scan(cell, params, xs, carry, reverse=reverse, remat=remat, **extras)

    out, vjp = jax.vjp(f, params, xs, carry)
    return out, vjp(cts)


def rollout_and_vjp(cell, params, xs, carry, key, *, reverse=False, remat=None, **extras):
    """``(final, ys)`` and the VJP wrt (params, xs, carry) of random cotangents, jitted."""
    shapes = jax.eval_shape(lambda: jaxrnn.scan(cell, params, xs, carry, reverse=reverse, **extras))
    cts = randomize(jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), shapes), key, 1.0)
    return _rollout_and_vjp(cell, params, xs, carry, cts, extras, reverse=reverse, remat=remat)


def assert_trees_close(a, b, **tol):
    assert jax.tree.structure(a) == jax.tree.structure(b)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_allclose(x, y, **(tol or TOL))


# ------------------------------------------------------------------ against the plain rollout


@pytest.mark.parametrize(
    ("name", "remat", "reverse", "inputs"),
    [(*case, "lengths_mask_resets") for case in CASES] + [("lstm", 5, True, "dense")],
)
def test_values_and_gradients_equal_plain_rollout(name, remat, reverse, inputs, key):
    cell, params, xs, carry = setup(name, key)
    kw = {"reverse": reverse}
    if inputs != "dense":
        kw.update(holes_and_resets(jax.random.fold_in(key, 1)))
    k_ct = jax.random.fold_in(key, 2)
    want, want_grads = rollout_and_vjp(cell, params, xs, carry, k_ct, **kw)
    got, got_grads = rollout_and_vjp(cell, params, xs, carry, k_ct, remat=remat, **kw)
    assert_trees_close(got, want)
    assert_trees_close(got_grads, want_grads)


def test_without_batch_dims(key):
    cell, params, xs, carry = setup("gru", key, ())
    kw = holes_and_resets(jax.random.fold_in(key, 1), ())
    kw["lengths"] = jnp.asarray(10, jnp.int32)
    want, want_grads = rollout_and_vjp(cell, params, xs, carry, key, reverse=True, **kw)
    got, got_grads = rollout_and_vjp(cell, params, xs, carry, key, reverse=True, remat=5, **kw)
    assert_trees_close(got, want)
    assert_trees_close(got_grads, want_grads)


def test_time_major_two_batch_dims_under_jit(key):
    cell, params, xs, carry = setup("lstm", key, (2, 2))
    kw = holes_and_resets(jax.random.fold_in(key, 1), (2, 2))
    xs_tm = jnp.moveaxis(xs, -2, 0)
    mask, resets = np.moveaxis(kw["mask"], -1, 0), np.moveaxis(kw["resets"], -1, 0)

    @functools.partial(jax.jit, static_argnames="remat")
    def value_and_grads(params, xs, lengths, remat):
        def loss(params, xs):
            final, ys = jaxrnn.scan(
                cell, params, xs, carry, lengths=lengths, mask=mask, resets=resets,
                time_major=True, remat=remat,
            )  # fmt: skip
            return jnp.sum(ys**3) + jnp.sum(final.c * final.h)

        return jax.value_and_grad(loss, (0, 1))(params, xs)

    args = (params, xs_tm, kw["lengths"])  # lengths traced: only checked outside jit
    assert_trees_close(value_and_grads(*args, "sqrt"), value_and_grads(*args, None))


def test_float32_matches_plain_rollout(key):
    cell = jaxrnn.lstm(16)
    params = cell.init(key, I)
    xs = jax.random.normal(jax.random.fold_in(key, 1), (B, T, I), jnp.float32)

    @functools.partial(jax.jit, static_argnames="remat")
    def grads(params, remat):
        def loss(params):
            _, ys = jaxrnn.scan(cell, params, xs, lengths=jnp.asarray([12, 7, 3]), remat=remat)
            return jnp.sum(jnp.sin(ys))

        return jax.grad(loss)(params)

    assert_trees_close(grads(params, 5), grads(params, None), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("reverse", [False, True], ids=["forward", "reverse"])
def test_per_rollout_key_advances_exactly_as_in_plain_rollout(reverse, key):
    """A zoneout key in the carry: masked steps advance it, resets leave it, and the
    leftover steps (T % k) are not padded, so it advances exactly T times. Backwards,
    gradients too: the recomputed segments must draw the same zoneout masks."""
    cell = jaxrnn.zoneout(jaxrnn.lstm(H), 0.3)
    params = randomize(cell.init(key, I), key)
    xs = jax.random.normal(jax.random.fold_in(key, 1), (B, T, I), F64)
    kw = holes_and_resets(jax.random.fold_in(key, 2))

    @functools.partial(jax.jit, static_argnames="remat")
    def run_and_grads(params, xs, remat):
        def run(params, xs):
            return jaxrnn.scan(
                cell, params, xs, reverse=reverse, remat=remat, key=jax.random.key(7), **kw
            )

        def loss(params, xs):
            final, ys = run(params, xs)
            return jnp.sum(ys**2) + jnp.sum(final.cell.c)

        final, ys = run(params, xs)
        grads = jax.grad(loss, (0, 1))(params, xs) if reverse else None
        return jax.random.key_data(final.key), (final.cell, ys), grads

    got, want = run_and_grads(params, xs, 5), run_and_grads(params, xs, None)
    np.testing.assert_array_equal(got[0], want[0])
    assert_trees_close(got[1:], want[1:])


def test_gradients_match_finite_differences(key):
    cell, params, xs, carry = setup("gru", key)
    kw = holes_and_resets(jax.random.fold_in(key, 1))

    @jax.jit
    def f(params, xs, carry):
        final, ys = jaxrnn.scan(cell, params, xs, carry, remat=5, reverse=True, **kw)
        return jnp.sum(jnp.tanh(ys)) + jnp.sum(final.h**2)

    check_grads(f, (params, xs, carry), order=1, modes=["rev"], eps=1e-6, atol=1e-7, rtol=1e-7)


def test_sqrt_segment_is_the_divisor_nearest_sqrt_else_rounded():
    for steps in range(200):
        root = math.sqrt(steps)
        # Oracle: brute force over every segment length.
        near = [k for k in range(1, steps + 1) if steps % k == 0 and root / 2 <= k <= 2 * root]
        want = min(near, key=lambda k: (abs(k - root), k)) if near else max(1, round(root))
        assert sqrt_segment(steps) == want, steps
    assert [sqrt_segment(n) for n in (100, 300, 1000, 3000, 1009)] == [10, 15, 25, 50, 32]


def test_empty_sequence(key):
    cell, params, xs, carry = setup("elman", key)
    final, ys = jaxrnn.scan(cell, params, xs[:, :0], carry, remat="sqrt")
    assert ys.shape == (B, 0, H)
    np.testing.assert_array_equal(final.h, carry.h)


# ------------------------------------------------------------------ layers, models, configs


def test_layers_pass_remat_through(key):
    cell, params, xs, _ = setup("lstm", key)
    lengths = jnp.asarray([12, 9, 5], jnp.int32)
    bi_params = randomize(jaxrnn.bidirectional(cell).init(key, I), key)

    @functools.partial(jax.jit, static_argnames="remat")
    def outputs(params, bi_params, xs, remat):
        rev = jaxrnn.rnn(cell, reverse=True, remat=remat).apply(params, xs, lengths=lengths)
        bi = jaxrnn.bidirectional(cell, remat=remat)

        def loss(bi_params, xs):
            carry, ys = bi.apply(bi_params, xs, lengths=lengths)
            return jnp.sum(ys**2) + jnp.sum(carry.backward.c)

        return rev, jax.value_and_grad(loss, (0, 1))(bi_params, xs)

    assert_trees_close(outputs(params, bi_params, xs, "sqrt"), outputs(params, bi_params, xs, None))


@pytest.mark.parametrize("kind", ["many_to_one", "many_to_many"])
def test_models_pass_remat_through(kind, key):
    make = getattr(jaxrnn.models, kind)
    cell = jaxrnn.gru(H)
    params = randomize(make(cell, 2).init(key, I), key)
    xs = jax.random.normal(jax.random.fold_in(key, 1), (B, T, I), F64)
    mask = np.asarray(jax.random.bernoulli(key, 0.7, (B, T)))

    @functools.partial(jax.jit, static_argnames="remat")
    def value_and_grad(params, remat):
        model = make(cell, 2, remat=remat)
        return jax.value_and_grad(lambda p: jnp.sum(jnp.sin(model.apply(p, xs, mask=mask))))(params)

    assert_trees_close(value_and_grad(params, 4), value_and_grad(params, None))


def test_config_remat_parses_and_reaches_the_rollout(monkeypatch):
    experiment = experiment_lib.load("adding_lstm")
    base = experiment_lib.get_config(experiment, smoke=True)
    assert base.model.remat is None
    assert apply_overrides(base, ["model.remat=sqrt"]).model.remat == "sqrt"
    cfg = apply_overrides(base, ["model.remat=8"])
    assert cfg.model.remat == 8
    assert from_dict(to_dict(cfg), like=base) == cfg
    for bad in ("0", "-2", "log", "2.5", "true"):
        with pytest.raises(ConfigError, match=rf"model\.remat=.*{bad}.*positive int"):
            apply_overrides(base, [f"model.remat={bad}"])

    # The built model hands the setting to its rollout.
    seen = []

    def spy(*args, remat=None, **kw):
        seen.append(remat)
        return jaxrnn.scan(*args, remat=remat, **kw)

    # A model lifts its cell with jaxrnn.rnn, whose apply is the rollout.
    monkeypatch.setattr(jaxrnn.combinators.layer, "scan", spy)
    for c in (cfg, base):
        # The model the runner builds from the experiment file's get_model.
        data = experiment_lib.get_data(experiment, c)
        model = experiment_lib.get_model(experiment, c, data)
        xs = data_lib.shapes(data, 2).inputs
        assert xs.shape == (2, c.task.length, 2)
        jax.eval_shape(model.apply, jax.eval_shape(model.init, jax.random.key(0)), xs)
        # init probes the readout's width through the rollout too: both see the setting.
        assert seen and set(seen) == {c.model.remat}
        seen.clear()


# ------------------------------------------------------------------ errors


class Counted:
    """A cell whose ``apply`` counts its calls: errors must come before any of them."""

    def __init__(self, cell):
        self.calls = 0

        def apply(params, carry, x):
            self.calls += 1
            return cell.apply(params, carry, x)

        self.cell = cell._replace(apply=apply)


@pytest.mark.parametrize("bad", [0, -3, 2.5, "log", "SQRT", True, np.float64(4.0)])
def test_invalid_remat_raises_before_compute(bad, key):
    counted = Counted(jaxrnn.elman(H))
    params = counted.cell.init(key, I)
    xs = jnp.zeros((B, T, I), F64)
    message = f"remat: expected a positive int (steps per segment), 'sqrt' or None, got {bad!r}"
    with pytest.raises(ValueError, match=re.escape(message)):
        jaxrnn.scan(counted.cell, params, xs, remat=bad)
    assert counted.calls == 0
    for build in (
        lambda: jaxrnn.rnn(counted.cell, remat=bad),
        lambda: jaxrnn.bidirectional(counted.cell, remat=bad),
        lambda: jaxrnn.models.many_to_many(counted.cell, 2, remat=bad),
        lambda: jaxrnn.models.many_to_one(counted.cell, 2, remat=bad),
    ):
        with pytest.raises(ValueError, match="remat: expected a positive int"):
            build()


def test_numpy_int_remat_is_accepted(key):
    cell, params, xs, carry = setup("elman", key)
    assert_trees_close(
        jaxrnn.scan(cell, params, xs, carry, remat=np.int64(5)),
        jaxrnn.scan(cell, params, xs, carry),
    )


# ------------------------------------------------------------------ memory


def test_sqrt_remat_cuts_compiled_bptt_memory_at_least_4x():
    """The issue's target: LSTM, T = 1000, B = 32, H = 256, float32; ``memory_analysis``
    is the compiler's plan, deterministic for a given jaxlib (not a timing)."""
    Tl, Bl, Il, Hl = 1000, 32, 32, 256
    cell = jaxrnn.lstm(Hl)
    params = jax.eval_shape(lambda: cell.init(jax.random.key(0), Il))
    xs = jax.ShapeDtypeStruct((Bl, Tl, Il), jnp.float32)

    def temp_bytes(remat):
        def loss(params, xs):
            _, ys = jaxrnn.scan(cell, params, xs, remat=remat)
            return jnp.mean(ys**2)

        compiled = jax.jit(jax.grad(loss)).lower(params, xs).compile()
        return compiled.memory_analysis().temp_size_in_bytes

    plain, lean = temp_bytes(None), temp_bytes("sqrt")
    # Plain BPTT keeps every step's residuals: at least the T hidden states [B, H].
    assert plain >= Tl * Bl * Hl * 4
    assert plain / lean >= 4.0, (plain, lean)
