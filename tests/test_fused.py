"""The fused engine (``jaxrnn.rollout.fused``) equals autodiff of the plain scan.

The oracle is ``jaxrnn.scan(..., bptt="autodiff")``: ``lax.scan`` of ``cell.apply``
differentiated by JAX as one program, where the engine differentiates the cell's
declared pieces one step at a time and its projections over all steps at once.
(The NumPy BPTT of ``tests/bptt_oracle.py`` checks both against the equations.)
Every comparison runs the fused side with ``bptt="fused"``, which raises instead of
falling back, so a test cannot pass by comparing autodiff with itself. Gradients are
VJPs with random cotangents on the outputs *and* on the final carry, w.r.t. params,
inputs and the initial carry.
"""

import logging

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

import jaxrnn
from jaxrnn.cells.base import Cell
from jaxrnn.rollout import fused

B, T, I, H = 3, 7, 4, 5

CELLS = {
    "elman": lambda: jaxrnn.elman(H),
    "gru": lambda: jaxrnn.gru(H),
    "lstm": lambda: jaxrnn.lstm(H),
}
# Every built-in variant on the fast path, wrappers included.
VARIANTS = {
    "lstm_peephole": lambda: jaxrnn.lstm(H, peephole=True),
    "lstm_projection": lambda: jaxrnn.lstm(H, projection_size=3),
    "lstm_layer_norm": lambda: jaxrnn.lstm(H, layer_norm=True),
    "lstm_all": lambda: jaxrnn.lstm(H, peephole=True, projection_size=3, layer_norm=True),
    "gru_reset_before": lambda: jaxrnn.gru(H, reset_after=False),
    "gru_layer_norm": lambda: jaxrnn.gru(H, layer_norm=True),
    "dropout_lstm": lambda: jaxrnn.variational_dropout(
        jaxrnn.lstm(H), input_rate=0.3, state_rate=0.4
    ),
    "dropout_gru": lambda: jaxrnn.variational_dropout(jaxrnn.gru(H), state_rate=0.5),
    "zoneout_lstm": lambda: jaxrnn.zoneout(jaxrnn.lstm(H), {"h": 0.1, "c": 0.5}),
    "zoneout_gru": lambda: jaxrnn.zoneout(jaxrnn.gru(H), 0.3),
    "learned_init_lstm": lambda: jaxrnn.learned_initial_carry(jaxrnn.lstm(H)),
    "dropout_learned_init": lambda: jaxrnn.variational_dropout(
        jaxrnn.learned_initial_carry(jaxrnn.elman(H)), input_rate=0.2, state_rate=0.2
    ),
}


def _randomize(tree, key, dtype):
    """Random normal leaves of ``tree``'s shapes (a generic init would give zero biases)."""
    leaves, treedef = jax.tree.flatten(tree)
    keys = jax.random.split(key, len(leaves))
    return treedef.unflatten(
        [0.5 * jax.random.normal(k, x.shape, dtype) for k, x in zip(keys, leaves, strict=True)]
    )


def _randomize_floats(tree, key, dtype):
    """``_randomize`` on the float leaves; keys (a dropout carry's) are kept."""
    leaves, treedef = jax.tree.flatten(tree)
    keys = jax.random.split(key, len(leaves))
    return treedef.unflatten(
        [
            0.5 * jax.random.normal(k, x.shape, dtype)
            if jnp.issubdtype(x.dtype, jnp.floating)
            else x
            for k, x in zip(keys, leaves, strict=True)
        ]
    )


def _setup(cell, key, batch_shape, dtype=jnp.float64):
    k_p, k_x, k_c, k_r = jax.random.split(key, 4)
    params = _randomize(cell.init(k_p, I), k_p, dtype)
    xs = jax.random.normal(k_x, (*batch_shape, T, I), dtype)
    # A training carry: randomised cells get their key (the masks are then fixed by it).
    carry = _randomize_floats(cell.initial_carry(params, batch_shape, key=k_r), k_c, dtype)
    return params, xs, carry


def _cotangent(out, key, dtype):
    """Random cotangents for the float leaves of ``out``; float0 zeros for its keys."""
    leaves, treedef = jax.tree.flatten(out)
    keys = jax.random.split(key, len(leaves))
    return treedef.unflatten(
        [
            0.5 * jax.random.normal(k, x.shape, dtype).astype(x.dtype)
            if jnp.issubdtype(x.dtype, jnp.inexact)
            else np.zeros(x.shape, jax.dtypes.float0)
            for k, x in zip(keys, leaves, strict=True)
        ]
    )


def _vjp(cell, params, xs, carry, bptt, key, **kw):
    """``(final_carry, ys)`` and the VJP w.r.t. (params, xs, carry) for random cotangents."""

    @jax.jit  # one compilation instead of op-by-op dispatch
    def vjp(p, x, c):
        out, pullback = jax.vjp(
            lambda p, x, c: jaxrnn.scan(cell, p, x, c, bptt=bptt, **kw), p, x, c
        )
        return out, pullback(_cotangent(out, key, x.dtype))

    return vjp(params, xs, carry)


def _floats(tree):
    return [x for x in jax.tree.leaves(tree) if jnp.issubdtype(x.dtype, jnp.inexact)]


def _assert_close(a, b, rtol, atol):
    for x, y in zip(_floats(a), _floats(b), strict=True):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=rtol, atol=atol)


def _assert_equal_paths(cell, params, xs, carry, key, rtol=1e-10, atol=1e-10, **kw):
    fused = _vjp(cell, params, xs, carry, "fused", key, **kw)
    autodiff = _vjp(cell, params, xs, carry, "autodiff", key, **kw)
    assert jax.tree.structure(fused) == jax.tree.structure(autodiff)
    _assert_close(fused, autodiff, rtol, atol)
    return fused


def _holey_mask(key, shape):
    return jax.random.bernoulli(key, 0.7, shape)


@pytest.mark.parametrize("name", sorted(CELLS))
@pytest.mark.parametrize(("batch_shape", "reverse"), [((), False), ((B,), True), ((2, 2), True)])
def test_equals_autodiff_float64(name, batch_shape, reverse, key):
    cell = CELLS[name]()
    params, xs, carry = _setup(cell, key, batch_shape)
    _, grads = _assert_equal_paths(cell, params, xs, carry, key, reverse=reverse)
    # The gradients are not trivially zero (a zero-vs-zero comparison proves nothing).
    assert all(float(jnp.max(jnp.abs(g))) > 1e-3 for g in jax.tree.leaves(grads))


@pytest.mark.parametrize("name", sorted(CELLS))
@pytest.mark.parametrize("reverse", [False, True])
def test_equals_autodiff_with_lengths_and_mask_holes(name, reverse, key):
    cell = CELLS[name]()
    batch_shape = (2, 3)
    params, xs, carry = _setup(cell, key, batch_shape)
    mask = _holey_mask(jax.random.fold_in(key, 1), (*batch_shape, T))
    lengths = jnp.array([[T, 0, 3], [5, 1, T]], jnp.int32)
    (final, ys), _ = _assert_equal_paths(
        cell, params, xs, carry, key, mask=mask, lengths=lengths, reverse=reverse
    )
    # Masked steps output zeros, and a length-0 sequence keeps its initial carry.
    valid = mask & (jnp.arange(T, dtype=jnp.int32) < lengths[..., None])
    assert bool(jnp.all(jnp.where(valid[..., None], True, ys == 0)))
    np.testing.assert_array_equal(final.h[0, 1], carry.h[0, 1])


@pytest.mark.parametrize("activation", sorted(jaxrnn.ACTIVATIONS))
def test_elman_every_activation(activation, key):
    cell = jaxrnn.elman(H, activation=activation)
    params, xs, carry = _setup(cell, key, (B,))
    mask = _holey_mask(jax.random.fold_in(key, 2), (B, T))
    _assert_equal_paths(cell, params, xs, carry, key, mask=mask, reverse=True)


def test_elman_callable_activation(key):
    # A user function need not be elementwise: the fused path uses its VJP.
    def softmax_ish(z):
        return jax.nn.softmax(z, axis=-1) + 0.1 * z

    cell = jaxrnn.elman(H, activation=softmax_ish)
    params, xs, carry = _setup(cell, key, (B,))
    _assert_equal_paths(cell, params, xs, carry, key)


@pytest.mark.parametrize("name", sorted(CELLS))
def test_equals_autodiff_float32(name, key):
    cell = CELLS[name]()
    params, xs, carry = _setup(cell, key, (B,), jnp.float32)
    mask = _holey_mask(jax.random.fold_in(key, 3), (B, T))
    _assert_equal_paths(cell, params, xs, carry, key, rtol=2e-5, atol=2e-6, mask=mask)


def test_default_carry_time_major_and_jit(key):
    """Under jit with traced lengths, time-major, zero initial carry (the defaults)."""
    cell = jaxrnn.lstm(H)
    params, xs, _ = _setup(cell, key, (B,))
    xs = jnp.moveaxis(xs, 1, 0)
    lengths = jnp.array([T, 2, 5], jnp.int32)

    def grads(p, x, lengths, bptt):
        def loss(p, x):
            final, ys = jaxrnn.scan(cell, p, x, lengths=lengths, time_major=True, bptt=bptt)
            return jnp.sum(jnp.sin(ys)) + jnp.sum(final.c**2)

        return jax.value_and_grad(loss, argnums=(0, 1))(p, x)

    grads = jax.jit(grads, static_argnums=3)
    _assert_close(
        grads(params, xs, lengths, "fused"), grads(params, xs, lengths, "autodiff"), 1e-10, 1e-10
    )


@pytest.mark.parametrize("name", sorted(CELLS))
def test_check_grads_float64(name, key):
    cell = CELLS[name]()
    params, xs, carry = _setup(cell, key, (2,))
    mask = jnp.array([[True, False, True, True, True, False, True]] * 2)

    def f(p, x, c):
        final, ys = jaxrnn.scan(cell, p, x, c, mask=mask, bptt="fused")
        return ys, final

    check_grads(f, (params, xs, carry), order=1, modes=("rev",))


def test_second_order_reverse_over_reverse(key):
    """The hand-written backward is itself differentiable (grad of a grad norm)."""
    cell = jaxrnn.gru(H)
    params, xs, carry = _setup(cell, key, (2,))

    def grad_norm(p, bptt):
        g = jax.grad(lambda p: jnp.sum(jaxrnn.scan(cell, p, xs, carry, bptt=bptt)[1] ** 2))(p)
        return sum(jnp.sum(x**2) for x in jax.tree.leaves(g))

    _assert_close(
        jax.grad(grad_norm)(params, "fused"), jax.grad(grad_norm)(params, "autodiff"), 1e-9, 1e-10
    )


def test_bidirectional_and_stack_layers(key, caplog):
    """Layers call jaxrnn.scan with the default bptt="auto": the fused path runs, and
    equals the same network built from the cells without their fused rollouts."""

    def build(hide):
        def c(cell):
            return Cell(cell.init, cell.initial_carry, cell.apply) if hide else cell

        return jaxrnn.stack_layers(
            jaxrnn.bidirectional(c(jaxrnn.lstm(H)), c(jaxrnn.gru(H))),
            c(jaxrnn.elman(2 * H)),
            residual=True,
        )

    params = _randomize(build(False).init(key, I), key, jnp.float64)
    xs = jax.random.normal(jax.random.fold_in(key, 1), (B, T, I), jnp.float64)
    mask = _holey_mask(jax.random.fold_in(key, 2), (B, T))
    lengths = jnp.array([T, 4, 2], jnp.int32)

    def vjp(net):
        out, pullback = jax.vjp(
            lambda p, x: net.apply(p, x, lengths=lengths, mask=mask), params, xs
        )
        return out, pullback(_cotangent(out, key, jnp.float64))

    with caplog.at_level(logging.DEBUG, logger="jaxrnn"):
        fused = vjp(build(False))
    assert sum("fused BPTT" in r.getMessage() for r in caplog.records) == 3
    caplog.clear()
    with caplog.at_level(logging.DEBUG, logger="jaxrnn"):
        autodiff = vjp(build(True))
    assert not any("fused BPTT" in r.getMessage() for r in caplog.records)
    _assert_close(fused, autodiff, 1e-10, 1e-10)


@pytest.mark.parametrize("name", sorted(VARIANTS))
@pytest.mark.parametrize("reverse", [False, True])
def test_every_variant_on_the_fast_path_with_resets_masks_and_lengths(name, reverse, key, caplog):
    """The variants that used to fall back to autodiff run the fused engine (the log
    says so) and equal autodiff, with resets, a holey mask and lengths together."""
    cell = VARIANTS[name]()
    batch_shape = (2, 3)
    params, xs, carry = _setup(cell, key, batch_shape)
    kw = {
        "mask": _holey_mask(jax.random.fold_in(key, 5), (*batch_shape, T)),
        "lengths": jnp.array([[T, 0, 3], [5, 1, T]], jnp.int32),
        "resets": jax.random.bernoulli(jax.random.fold_in(key, 6), 0.3, (*batch_shape, T)),
        "reverse": reverse,
    }
    with caplog.at_level(logging.DEBUG, logger="jaxrnn"):
        _, grads = _assert_equal_paths(cell, params, xs, carry, key, **kw)
    assert "jaxrnn.scan: fused BPTT" in [r.getMessage() for r in caplog.records]
    # Not a zero-against-zero comparison (a learned initial carry's own params get no
    # gradient here: the carry is given).
    assert all(max(float(jnp.max(jnp.abs(g))) for g in _floats(arg)) > 1e-3 for arg in grads)


def _is_var(v) -> bool:
    return not isinstance(v, jax.extend.core.Literal)


def _per_step_random_draws(closed_jaxpr) -> int:
    """How many random-bit draws inside the reverse scans of ``closed_jaxpr`` (the backward
    passes) depend on what the scan reads step by step: its carry or its scanned inputs.
    A draw from the scan's constants alone is a loop invariant that XLA hoists."""
    found = 0

    def walk(jaxpr, tainted):
        nonlocal found
        for eqn in jaxpr.eqns:
            read = [_is_var(v) and v in tainted for v in eqn.invars]
            hit = any(read)
            if eqn.primitive.name == "scan" and eqn.params["reverse"]:
                body = eqn.params["jaxpr"].jaxpr
                walk(body, set(body.invars[eqn.params["num_consts"] :]))
            elif "random_bits" in eqn.primitive.name and hit:
                found += 1
            else:  # a sub-jaxpr's inputs are the eqn's, in order
                for sub in jax.extend.core.jaxprs_in_params(eqn.params):
                    walk(sub, {w for r, w in zip(read, sub.invars, strict=False) if r})
            if hit:
                tainted.update(eqn.outvars)

    walk(closed_jaxpr.jaxpr, set())
    return found


@pytest.mark.parametrize("name", ["dropout_lstm", "zoneout_lstm"])
def test_the_backward_pass_draws_no_random_bits_per_step(name, key):
    """A dropout mask depends only on the fixed key: the backward pass reads that key from
    the rollout's initial carry, so its draws are loop invariants. Zoneout's masks are
    drawn with the input projection and saved: the backward pass draws none. (Drawing
    them again at every backward step made the fast path 1.3-1.9x slower than autodiff.)"""
    cell = VARIANTS[name]()
    params, xs, carry = _setup(cell, key, (B,))

    def draws(bptt, reverse, grad):
        def loss(p):
            return jnp.sum(jaxrnn.scan(cell, p, xs, carry, bptt=bptt, reverse=reverse)[1] ** 2)

        return _per_step_random_draws(jax.make_jaxpr(jax.grad(loss) if grad else loss)(params))

    assert draws("fused", reverse=False, grad=True) == 0
    if name.startswith("zoneout"):
        # The walker is not blind: a forward scan run in reverse draws at every step (a
        # dropout key, passed on unchanged, is made a constant by lax.scan itself).
        assert draws("autodiff", reverse=True, grad=False) > 0


@pytest.mark.parametrize("name", ["lstm", "gru"])
def test_resets_go_to_the_initial_carry(name, key):
    """With a reset at every step, every step starts from the initial carry: its
    cotangent is the sum of all the steps' (and no earlier step gets any)."""
    cell = CELLS[name]()
    params, xs, carry = _setup(cell, key, (B,))
    resets = jnp.ones((B, T), bool)
    _assert_equal_paths(cell, params, xs, carry, key, resets=resets)


@pytest.mark.parametrize(
    ("param_dtype", "x_dtype"),
    [
        (jnp.bfloat16, jnp.bfloat16),
        (jnp.float32, jnp.bfloat16),
        (jnp.bfloat16, jnp.float32),
    ],
)
def test_bfloat16_accumulates_in_float32(param_dtype, x_dtype, key):
    """bfloat16 params or inputs run on the fast path, the state in float32; both
    engines' gradients stay within bfloat16 rounding of the float64 gradient, and the
    engine (which sums the weight gradients over time in float32) is no worse."""
    cell = jaxrnn.lstm(8)
    params64 = _randomize(cell.init(key, I), key, jnp.float64)
    xs64 = jax.random.normal(jax.random.fold_in(key, 1), (B, 20, I), jnp.float64)
    params = jax.tree.map(lambda a: a.astype(param_dtype), params64)
    xs = xs64.astype(x_dtype)

    def grads(p, x, bptt):
        def loss(p, x):
            final, ys = jaxrnn.scan(cell, p, x, bptt=bptt)
            return jnp.sum(ys.astype(jnp.float32) ** 2) + jnp.sum(final.c.astype(jnp.float32))

        return jax.jit(jax.grad(loss, argnums=(0, 1)))(p, x)

    fused, autodiff = grads(params, xs, "fused"), grads(params, xs, "autodiff")
    exact = grads(jax.tree.map(lambda a: a.astype(jnp.float64), params), xs64, "autodiff")
    assert [g.dtype for g in jax.tree.leaves(fused)] == [
        g.dtype for g in jax.tree.leaves((params, xs))
    ]
    leaves = zip(*map(jax.tree.leaves, (fused, autodiff, exact)), strict=True)
    for f, a, e in leaves:
        scale = float(jnp.max(jnp.abs(e))) + 1e-3
        err_fused = float(jnp.max(jnp.abs(f.astype(jnp.float64) - e))) / scale
        err_autodiff = float(jnp.max(jnp.abs(a.astype(jnp.float64) - e))) / scale
        # bfloat16 keeps 8 bits: a relative error of a few 2^-8 is its rounding.
        assert err_fused < 0.05, (err_fused, err_autodiff)
        assert err_fused <= 2 * err_autodiff + 1e-2, (err_fused, err_autodiff)


@pytest.mark.parametrize("name", sorted(CELLS))
@pytest.mark.parametrize("shape", [(0, 5, I), (2, 0, I), (0, 0, I)])
@pytest.mark.parametrize("bptt", ["fused", "autodiff"])
def test_zero_size_batches_and_sequences(name, shape, bptt, key):
    """An empty batch or an empty sequence is a valid rollout on every path: outputs of
    the right shape, the initial carry back, zero gradients (a ZeroDivisionError in the
    engine's reshape before)."""
    cell = CELLS[name]()
    params = cell.init(key, I)
    final, ys = jaxrnn.scan(cell, params, jnp.ones(shape), bptt=bptt)
    assert ys.shape == (*shape[:-1], H)
    assert jax.tree.map(jnp.shape, final) == jax.tree.map(
        jnp.shape, cell.initial_carry(params, shape[:1])
    )
    grads = jax.grad(lambda p: jnp.sum(jaxrnn.scan(cell, p, jnp.ones(shape), bptt=bptt)[1]))(params)
    assert all(float(jnp.max(jnp.abs(g), initial=0.0)) == 0.0 for g in jax.tree.leaves(grads))


def test_stacked_cell_falls_back(key, caplog):
    """``stack`` declares no Step (layer l+1 reads layer l's output of the same step, so
    no projection runs over all steps at once): autodiff by design, logged at debug level."""
    cell = jaxrnn.stack(jaxrnn.lstm(H), jaxrnn.gru(H))
    params, xs, carry = _setup(cell, key, (B,))
    with caplog.at_level(logging.DEBUG, logger="jaxrnn"):
        auto = _vjp(cell, params, xs, carry, "auto", key)
    assert any("autodiff BPTT" in r.getMessage() for r in caplog.records)
    _assert_close(auto, _vjp(cell, params, xs, carry, "autodiff", key), 0, 0)
    with pytest.raises(ValueError, match=r"bptt='fused'.*declares no Step"):
        jaxrnn.scan(cell, params, xs, carry, bptt="fused")


def test_a_user_cell_that_declares_nothing_runs_by_autodiff(key):
    """A cell built as Cell(init, initial_carry, apply) works, through autodiff."""
    lstm = jaxrnn.lstm(H)
    cell = Cell(lstm.init, lstm.initial_carry, lstm.apply)
    params, xs, carry = _setup(cell, key, (B,))
    _assert_close(
        _vjp(cell, params, xs, carry, "auto", key),
        _vjp(lstm, params, xs, carry, "fused", key),
        1e-12,
        1e-12,
    )


def test_forward_mode_runs_autodiff_with_a_warning_or_names_it(key):
    cell = jaxrnn.gru(H)
    params, xs, _ = _setup(cell, key, (B,))
    fused._warned.clear()
    with pytest.warns(RuntimeWarning, match=r"forward-mode.*bptt='autodiff'"):
        auto = jax.jvp(lambda x: jaxrnn.scan(cell, params, x)[1], (xs,), (jnp.ones_like(xs),))
    plain = jax.jvp(
        lambda x: jaxrnn.scan(cell, params, x, bptt="autodiff")[1], (xs,), (jnp.ones_like(xs),)
    )
    _assert_close(auto, plain, 0, 0)
    with pytest.raises(TypeError, match=r"forward-mode.*pass bptt='autodiff'"):
        jax.jvp(lambda x: jaxrnn.scan(cell, params, x, bptt="fused")[1], (xs,), (xs,))
    # jax.hessian is forward over reverse: it runs, on the plain scan.
    hess = jax.hessian(lambda x: jnp.sum(jaxrnn.scan(cell, params, x)[1] ** 2))(xs[:1, :2])
    assert hess.shape == (1, 2, I, 1, 2, I) and bool(jnp.all(jnp.isfinite(hess)))


def test_debug_log_names_the_path(key, caplog):
    cell = jaxrnn.lstm(H)
    params, xs, carry = _setup(cell, key, (B,))
    for bptt, expected in [
        ("auto", "fused BPTT"),
        ("fused", "fused BPTT"),
        ("autodiff", "autodiff"),
    ]:
        caplog.clear()
        with caplog.at_level(logging.DEBUG, logger="jaxrnn"):
            jaxrnn.scan(cell, params, xs, carry, bptt=bptt)
        assert [r.getMessage() for r in caplog.records if r.name == "jaxrnn"] == [
            f"jaxrnn.scan: {expected}" + (" BPTT (bptt='autodiff')" if bptt == "autodiff" else "")
        ]


def test_bad_bptt_value(key):
    cell = jaxrnn.elman(H)
    params, xs, _ = _setup(cell, key, (B,))
    with pytest.raises(ValueError, match=r"bptt: expected one of .* got 'fast'"):
        jaxrnn.scan(cell, params, xs, bptt="fast")


def test_bad_input_size_is_reported(key):
    cell = jaxrnn.gru(H)
    params, _, _ = _setup(cell, key, (B,))
    with pytest.raises(ValueError, match=r"x: expected shape \[\*batch, 4\]"):
        jaxrnn.scan(cell, params, jnp.zeros((B, T, I + 1)), bptt="fused")


def test_segmented_remat_uses_the_fused_path_per_segment(key):
    cell = jaxrnn.lstm(H)
    params, xs, carry = _setup(cell, key, (B,))
    mask = _holey_mask(jax.random.fold_in(key, 4), (B, T))
    _assert_equal_paths(cell, params, xs, carry, key, mask=mask, remat=3)


@pytest.mark.parametrize(
    ("name", "sums"),
    [
        ("lstm", True),
        ("elman", True),
        ("lstm_peephole", True),
        ("dropout_lstm", True),
        ("gru", False),  # r_t enters the candidate through the reset gate
        ("gru_reset_before", False),
        ("lstm_layer_norm", False),  # u_t and r_t are normalised apart
        ("zoneout_lstm", False),  # u_t holds the masks too
    ],
)
def test_the_forward_pass_saves_one_sum_where_update_reads_only_the_sum(name, sums, key):
    """The engine saves ``u_t + r_t`` instead of both where ``update`` reads only the sum
    (the equality tests above check that its gradients stay exact)."""
    cell = {**CELLS, **VARIANTS}[name]()
    params, xs, carry = _setup(cell, key, (B,))
    u = cell.step.project(params, carry, xs[:, 0])
    r = cell.step.recur(params, carry)
    shapes = jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype), (carry, u, r))
    assert fused._reads_only_the_sum(cell.step.update, params, *shapes) is sums


def test_an_update_that_reads_u_twice_keeps_both(key):
    def update(p, c, u, r):
        h = jnp.tanh(u + r) + 0.1 * u  # u read again: u + r alone does not give the value
        return h, h

    c = jax.ShapeDtypeStruct((B, H), jnp.float32)
    assert not fused._reads_only_the_sum(update, None, c, c, c)
    assert fused._reads_only_the_sum(lambda p, c, u, r: (jnp.tanh(u + r),) * 2, None, c, c, c)
