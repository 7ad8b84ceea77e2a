"""jaxrnn.training.optim against hand-built optax chains and the schedules' formulas.

optax's own update functions are not clean under strict dtype promotion (they
mix int32 step counts with float32), so optax calls run under "standard"
promotion; that is an optax limitation, not jaxrnn's.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxrnn.training.config import OptimConfig
from jaxrnn.training.optim import injected_hyperparams, make_optimizer, schedule

TOTAL = 20


def _params():
    return {
        "W": jnp.linspace(-1.0, 1.0, 12, dtype=jnp.float32).reshape(3, 4),
        "b": jnp.full((4,), 0.5, jnp.float32),
    }


def _grads(step, scale=1.0):
    key = jax.random.fold_in(jax.random.key(42), step)
    k_w, k_b = jax.random.split(key)
    return {
        "W": scale * jax.random.normal(k_w, (3, 4), jnp.float32),
        "b": scale * jax.random.normal(k_b, (4,), jnp.float32),
    }


def _run(opt, steps=3, scale=1.0):
    """The updates of ``steps`` steps, applying each to the params as a training loop would."""
    params = _params()
    with jax.numpy_dtype_promotion("standard"):
        state = opt.init(params)
        out = []
        for step in range(steps):
            updates, state = opt.update(_grads(step, scale), state, params)
            params = optax.apply_updates(params, updates)
            out.append(updates)
    return out, state


def _global_norm(tree):
    return math.sqrt(
        sum(float(np.sum(np.asarray(x, np.float64) ** 2)) for x in jax.tree.leaves(tree))
    )


LR, CLIP = 0.05, 1.5
CASES = {
    "sgd": (dict(name="sgd"), optax.sgd(LR)),
    "sgd-momentum": (dict(name="sgd", momentum=0.9), optax.sgd(LR, momentum=0.9)),
    "sgd-nesterov": (
        dict(name="sgd", momentum=0.8, nesterov=True),
        optax.sgd(LR, momentum=0.8, nesterov=True),
    ),
    "adam": (
        dict(name="adam", b1=0.8, b2=0.95, eps=1e-6),
        optax.adam(LR, b1=0.8, b2=0.95, eps=1e-6),
    ),
    "adamw": (
        dict(name="adamw", weight_decay=0.1),
        optax.adamw(LR, b1=0.9, b2=0.999, eps=1e-8, weight_decay=0.1),
    ),
    "rmsprop": (dict(name="rmsprop", eps=1e-6), optax.rmsprop(LR, eps=1e-6)),
    "rmsprop-momentum": (
        dict(name="rmsprop", momentum=0.5),
        optax.rmsprop(LR, eps=1e-8, momentum=0.5),
    ),
    "adagrad": (dict(name="adagrad", eps=1e-7), optax.adagrad(LR, eps=1e-7)),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_make_optimizer_equals_hand_built_chain(case):
    kwargs, inner = CASES[case]
    cfg = OptimConfig(learning_rate=LR, clip_norm=CLIP, **kwargs)
    # Gradient norms around 2-5 > CLIP: clipping is active at every step.
    got, _ = _run(make_optimizer(cfg, TOTAL), scale=1.0)
    want, _ = _run(optax.chain(optax.clip_by_global_norm(CLIP), inner), scale=1.0)
    assert _global_norm(_grads(0)) > CLIP
    for g, w in zip(got, want, strict=True):
        for x, y in zip(jax.tree.leaves(g), jax.tree.leaves(w), strict=True):
            assert x.dtype == jnp.float32
            # Injected hyperparameters are float32 arrays where the reference folds
            # Python floats: float32 rounding, 2e-6 of the update scale LR.
            np.testing.assert_allclose(x, y, rtol=2e-6, atol=1e-7)


@pytest.mark.parametrize("name", ["sgd", "adam"])
def test_scheduled_optimizer_equals_optax_schedule_as_learning_rate(name):
    W, frac = 4, 0.1
    cfg = OptimConfig(
        name=name, learning_rate=LR, schedule="warmup_cosine", warmup_steps=W,
        end_value_fraction=frac, clip_norm=None,
    )  # fmt: skip
    lr = optax.warmup_cosine_decay_schedule(0.0, LR, W, TOTAL, end_value=frac * LR)
    inner = optax.sgd(lr) if name == "sgd" else optax.adam(lr)
    got, _ = _run(make_optimizer(cfg, TOTAL), steps=7)
    want, _ = _run(inner, steps=7)
    for g, w in zip(got, want, strict=True):
        for x, y in zip(jax.tree.leaves(g), jax.tree.leaves(w), strict=True):
            np.testing.assert_allclose(x, y, rtol=2e-6, atol=1e-7)
    assert all(float(np.abs(x).max()) == 0.0 for x in jax.tree.leaves(got[0]))  # warm-up from 0


def test_clip_norm_bounds_the_sgd_update():
    lr, c = 0.1, 2.0
    for step, update in enumerate(
        _run(
            make_optimizer(OptimConfig(name="sgd", learning_rate=lr, clip_norm=c), TOTAL), scale=1e4
        )[0]
    ):
        g = _grads(step, 1e4)
        assert _global_norm(g) > 1e3
        assert _global_norm(update) == pytest.approx(lr * c, rel=1e-5)
        # Clipping rescales, it does not rotate: update = -lr * c * g / |g|.
        for u, gi in zip(jax.tree.leaves(update), jax.tree.leaves(g), strict=True):
            expected = -lr * c * np.asarray(gi, np.float64) / _global_norm(g)
            np.testing.assert_allclose(u, expected, rtol=1e-5, atol=1e-9)

    # Small gradients pass through; clip_norm=None disables clipping altogether.
    small = _run(make_optimizer(OptimConfig(name="sgd", learning_rate=lr, clip_norm=100.0), TOTAL))[
        0
    ]
    off = _run(
        make_optimizer(OptimConfig(name="sgd", learning_rate=lr, clip_norm=None), TOTAL), scale=1e4
    )[0]
    for step in range(3):
        for u, gi in zip(jax.tree.leaves(small[step]), jax.tree.leaves(_grads(step)), strict=True):
            np.testing.assert_allclose(u, -lr * np.asarray(gi), rtol=1e-6)
        for u, gi in zip(
            jax.tree.leaves(off[step]), jax.tree.leaves(_grads(step, 1e4)), strict=True
        ):
            np.testing.assert_allclose(u, -lr * np.asarray(gi), rtol=1e-6)


def test_clip_value_bounds_each_element_after_the_norm_clip():
    lr, c, v = 0.1, 3.0, 0.5
    cfg = OptimConfig(name="sgd", learning_rate=lr, clip_norm=c, clip_value=v)
    updates = _run(make_optimizer(cfg, TOTAL))[0]
    for step, update in enumerate(updates):
        g = _grads(step)
        norm = _global_norm(g)
        for u, gi in zip(jax.tree.leaves(update), jax.tree.leaves(g), strict=True):
            gi = np.asarray(gi, np.float64) * min(1.0, c / norm)
            assert np.all(np.abs(np.asarray(u)) <= lr * v * (1 + 1e-6))
            np.testing.assert_allclose(u, -lr * np.clip(gi, -v, v), rtol=1e-5, atol=1e-9)
    assert any(
        np.any(np.abs(np.asarray(x)) == np.float32(lr * v)) for x in jax.tree.leaves(updates[0])
    )


def _warmup_cosine(step, W, D, frac):
    if step < W:
        return step / W
    t = min(step - W, D - W) / (D - W)
    return frac + (1 - frac) * 0.5 * (1 + math.cos(math.pi * t))


def _exponential(step, W, D, rate):
    if step < W:
        return step / W
    return rate ** ((step - W) / D)


@pytest.mark.parametrize(
    "kwargs, oracle",
    [
        (dict(schedule="constant"), lambda s: 1.0),
        (
            dict(schedule="warmup_cosine", warmup_steps=5, end_value_fraction=0.2),
            lambda s: _warmup_cosine(s, 5, 40, 0.2),
        ),
        (
            dict(schedule="warmup_cosine", warmup_steps=0, decay_steps=30),
            lambda s: _warmup_cosine(s, 0, 30, 0.0),
        ),
        (dict(schedule="exponential", decay_rate=0.5), lambda s: _exponential(s, 0, 40, 0.5)),
        (
            dict(schedule="exponential", decay_rate=0.3, decay_steps=10, warmup_steps=4),
            lambda s: _exponential(s, 4, 10, 0.3),
        ),
    ],
)
def test_schedule_matches_formula(kwargs, oracle):
    fn = schedule(OptimConfig(**kwargs), 40)
    for step in (0, 1, 3, 4, 5, 9, 14, 20, 29, 30, 39, 40, 55):
        assert float(fn(step)) == pytest.approx(oracle(step), rel=1e-6, abs=1e-7), step


def test_learning_rate_lives_in_the_state_and_changes_without_retracing():
    cfg = OptimConfig(name="sgd", learning_rate=0.1, clip_norm=None)
    opt, params = make_optimizer(cfg, TOTAL), _params()
    traces = []

    @jax.jit
    def update(grads, state):
        traces.append(None)  # runs once per trace, not per call
        with jax.numpy_dtype_promotion("standard"):
            return opt.update(grads, state, params)

    state = opt.init(params)
    lr = injected_hyperparams(state)["learning_rate"]
    assert lr.dtype == jnp.float32 and float(lr) == pytest.approx(0.1)
    g = _grads(0)
    u1, state = update(g, state)

    state = jax.tree.map(lambda x: x, state)  # fresh containers: the edit below is local
    injected_hyperparams(state)["learning_rate"] = jnp.asarray(0.025, jnp.float32)
    u2, state = update(g, state)
    assert float(injected_hyperparams(state)["learning_rate"]) == pytest.approx(0.025)
    for a, b, gi in zip(jax.tree.leaves(u1), jax.tree.leaves(u2), jax.tree.leaves(g), strict=True):
        np.testing.assert_allclose(a, -0.1 * np.asarray(gi), rtol=1e-6)
        np.testing.assert_allclose(b, -0.025 * np.asarray(gi), rtol=1e-6)
    assert len(traces) == 1


def test_injected_hyperparams_rejects_foreign_state():
    with pytest.raises(ValueError, match="opt_state: expected a state from"):
        injected_hyperparams(optax.sgd(0.1).init(_params()))
