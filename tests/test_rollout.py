"""``jaxrnn.scan`` against its documented Python loop, and its properties.

The oracle runs the docstring's loop literally, one sequence at a time, with Python
``if``s on the mask and resets.
"""

from typing import NamedTuple

import hypothesis.extra.numpy as hnp
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jax.test_util import check_grads

import jaxrnn

H, I, T, B = 4, 3, 7, 3
F64 = jnp.float64
TOL = {"rtol": 1e-12, "atol": 1e-12}

CELLS = {
    "elman": lambda: jaxrnn.elman(H),
    "gru": lambda: jaxrnn.gru(H),
    "lstmp": lambda: jaxrnn.lstm(H, projection_size=2, peephole=True),
}


def randomize(tree, key):
    leaves, treedef = jax.tree.flatten(tree)
    keys = jax.random.split(key, len(leaves))
    new = [0.5 * jax.random.normal(k, x.shape, F64) for k, x in zip(keys, leaves, strict=True)]
    return jax.tree.unflatten(treedef, new)


def setup(name, key, batch_shape=(B,), steps=T):
    cell = CELLS[name]()
    k_p, k_x = jax.random.split(key)
    params = randomize(cell.init(k_p, I), k_p)
    xs = jax.random.normal(k_x, (*batch_shape, steps, I), F64)
    return cell, params, xs


def loop_oracle(cell, params, xs, carry=None, *, mask=None, resets=None, reverse=False):
    """The docstring's loop, per sequence, batch-major ``xs: [*batch, T, I]``."""
    batch_shape, steps = xs.shape[:-2], xs.shape[-2]
    apply = jax.jit(cell.apply)
    if carry is None:
        carry = cell.initial_carry(params, batch_shape)
    finals, outputs = [], []
    for b in np.ndindex(*batch_shape):
        carry0 = jax.tree.map(lambda leaf, b=b: leaf[b], carry)
        c, ys = carry0, [None] * steps
        order = range(steps - 1, -1, -1) if reverse else range(steps)
        for t in order:
            if resets is not None:
                # Backwards, a packed sequence starts right after the step that began it.
                r = (t + 1 < steps and resets[b][t + 1]) if reverse else resets[b][t]
                if r:
                    c = carry0
            c_new, y = apply(params, c, xs[b][t])
            if mask is None or mask[b][t]:
                c = c_new
            else:
                y = jnp.zeros_like(y)
            ys[t] = y
        finals.append(c)
        outputs.append(jnp.stack(ys))
    final = jax.tree.map(
        lambda *leaves: jnp.stack(leaves).reshape(*batch_shape, *leaves[0].shape), *finals
    )
    ys = jnp.stack(outputs).reshape(*batch_shape, *outputs[0].shape)
    return final, ys


def assert_trees_close(a, b, **tol):
    la, lb = jax.tree.leaves(a), jax.tree.leaves(b)
    assert len(la) == len(lb)
    for x, y in zip(la, lb, strict=True):
        np.testing.assert_allclose(x, y, **(tol or TOL))


def assert_trees_equal(a, b):
    assert jax.tree.structure(a) == jax.tree.structure(b)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_array_equal(x, y)


def random_bool(key, shape, p=0.7):
    return np.asarray(jax.random.bernoulli(key, p, shape))


# --------------------------------------------------------------------------- against the loop


@pytest.mark.parametrize("name", CELLS)
@pytest.mark.parametrize(
    "options",
    ["plain", "mask", "resets", "reverse", "reverse_mask_resets", "mask_resets"],
)
def test_scan_equals_python_loop(name, options, key):
    cell, params, xs = setup(name, key, (2, 2))
    k_m, k_r = jax.random.split(jax.random.fold_in(key, 1))
    kw = {}
    if "mask" in options:
        kw["mask"] = random_bool(k_m, (2, 2, T))
    if "resets" in options:
        kw["resets"] = random_bool(k_r, (2, 2, T), 0.3)
    if "reverse" in options:
        kw["reverse"] = True
    want = loop_oracle(cell, params, xs, **kw)
    got = jaxrnn.scan(cell, params, xs, **kw)
    assert_trees_close(got, want)


def test_scan_without_batch_dims_equals_loop(key):
    cell, params, xs = setup("gru", key, ())
    mask = random_bool(key, (T,))
    resets = random_bool(jax.random.fold_in(key, 2), (T,), 0.3)
    for reverse in (False, True):
        want = loop_oracle(cell, params, xs, mask=mask, resets=resets, reverse=reverse)
        got = jaxrnn.scan(cell, params, xs, mask=mask, resets=resets, reverse=reverse)
        assert_trees_close(got, want)


def test_given_carry_equals_loop(key):
    cell, params, xs = setup("lstmp", key)
    carry = randomize(cell.initial_carry(params, (B,)), jax.random.fold_in(key, 3))
    resets = random_bool(key, (B, T), 0.3)
    want = loop_oracle(cell, params, xs, carry, resets=resets)
    got = jaxrnn.scan(cell, params, xs, carry, resets=resets)
    assert_trees_close(got, want)
    assert not np.allclose(got[0].c, jaxrnn.scan(cell, params, xs, resets=resets)[0].c)


@pytest.mark.parametrize("reverse", [False, True])
def test_unroll_and_time_major_agree(reverse, key):
    cell, params, xs = setup("gru", key)
    mask = random_bool(key, (B, T))
    resets = random_bool(jax.random.fold_in(key, 1), (B, T), 0.3)
    ref = jaxrnn.scan(cell, params, xs, mask=mask, resets=resets, reverse=reverse)
    for unroll in (3, True):
        got = jaxrnn.scan(
            cell, params, xs, mask=mask, resets=resets, reverse=reverse, unroll=unroll
        )
        assert_trees_close(got, ref)
    final, ys = jaxrnn.scan(
        cell,
        params,
        jnp.swapaxes(xs, 0, 1),
        mask=mask.T,
        resets=resets.T,
        reverse=reverse,
        time_major=True,
    )
    assert ys.shape == (T, B, H)
    assert_trees_close((final, jnp.swapaxes(ys, 0, 1)), ref)


def test_reverse_reads_each_padded_sequence_backwards(key):
    """Reverse with lengths equals a forward run on each sequence flipped within its length."""
    cell, params, xs = setup("lstmp", key)
    lengths = np.array([T, 3, 0])
    final, ys = jaxrnn.scan(cell, params, xs, lengths=lengths, reverse=True)
    for b, n in enumerate(lengths):
        f_b, y_b = jaxrnn.scan(cell, params, xs[b, :n][::-1])
        np.testing.assert_allclose(ys[b, :n], y_b[::-1], **TOL)
        np.testing.assert_array_equal(ys[b, n:], 0.0)
        assert_trees_close(jax.tree.map(lambda leaf, b=b: leaf[b], final), f_b)


# --------------------------------------------------------------------------- lengths


def test_lengths_equal_the_equivalent_mask(key):
    cell, params, xs = setup("lstmp", key)
    lengths = np.array([5, 0, T])
    mask = np.arange(T)[None, :] < lengths[:, None]
    for reverse in (False, True):
        got = jaxrnn.scan(cell, params, xs, lengths=lengths, reverse=reverse)
        want = jaxrnn.scan(cell, params, xs, mask=mask, reverse=reverse)
        assert_trees_equal(got, want)


def test_final_carry_with_lengths_is_carry_at_last_valid_step(key):
    cell, params, xs = setup("gru", key)
    lengths = np.array([2, T, 0])
    final, ys = jaxrnn.scan(cell, params, xs, lengths=lengths)
    apply = jax.jit(cell.apply)
    for b, n in enumerate(lengths):
        c = cell.initial_carry(params)
        for t in range(n):  # run only to the length
            c, y = apply(params, c, xs[b, t])
            np.testing.assert_allclose(ys[b, t], y, **TOL)
        np.testing.assert_allclose(final.h[b], c.h, **TOL)
        np.testing.assert_array_equal(ys[b, n:], 0.0)


def test_padding_invariance(key):
    cell, params, xs = setup("lstmp", key)
    lengths = np.array([4, T, 1])
    pad = 5.0 * jax.random.normal(key, (B, 3, I), F64)  # garbage, must be ignored
    for reverse in (False, True):
        final, ys = jaxrnn.scan(cell, params, xs, lengths=lengths, reverse=reverse)
        final_p, ys_p = jaxrnn.scan(
            cell, params, jnp.concatenate([xs, pad], 1), lengths=lengths, reverse=reverse
        )
        assert_trees_close(final_p, final)
        np.testing.assert_allclose(ys_p[:, :T], ys, **TOL)
        np.testing.assert_array_equal(ys_p[:, T:], 0.0)


# --------------------------------------------------------------------------- properties


@pytest.mark.parametrize("reverse", [False, True])
def test_causality(reverse, key):
    """Changing x[t] leaves the outputs computed before step t bit-identical."""
    cell, params, xs = setup("lstmp", key)
    run = jax.jit(lambda xs: jaxrnn.scan(cell, params, xs, reverse=reverse)[1])
    ys = run(xs)
    for t in (0, 3, T - 1):
        ys2 = run(xs.at[:, t].add(1.0))
        before = slice(t + 1, None) if reverse else slice(0, t)
        np.testing.assert_array_equal(ys2[:, before], ys[:, before])
        assert not np.allclose(ys2[:, t], ys[:, t])


def test_batch_independence(key):
    cell, params, xs = setup("lstmp", key, (4,))
    lengths = np.array([T, 3, 5, 1])
    run = jax.jit(lambda xs: jaxrnn.scan(cell, params, xs, lengths=lengths))
    final, ys = run(xs)
    final2, ys2 = run(xs.at[1].multiply(-2.0))
    others = np.array([0, 2, 3])
    np.testing.assert_array_equal(ys2[others], ys[others])
    assert_trees_equal(
        jax.tree.map(lambda c: c[others], final2), jax.tree.map(lambda c: c[others], final)
    )
    assert not np.allclose(ys2[1], ys[1])


_scan_masked = jax.jit(jaxrnn.scan, static_argnums=0, static_argnames="reverse")
_gru = jaxrnn.gru(H)
_gru_apply = jax.jit(_gru.apply)


@settings(max_examples=10, deadline=None, derandomize=True, database=None)
@given(
    mask=hnp.arrays(np.bool_, (B, T)),
    reverse=st.booleans(),
)
def test_holes_in_mask_equal_compacted_sequence(mask, reverse):
    """A mask with holes equals running only the valid steps, in order."""
    _, params, xs = setup("gru", jax.random.key(0))
    final, ys = _scan_masked(_gru, params, xs, mask=mask, reverse=reverse)
    for b in range(B):
        np.testing.assert_array_equal(ys[b][~mask[b]], 0.0)
        (valid,) = np.nonzero(mask[b])
        c = _gru.initial_carry(params)
        for t in valid[::-1] if reverse else valid:
            c, y = _gru_apply(params, c, xs[b, t])
            np.testing.assert_allclose(ys[b, t], y, **TOL)
        np.testing.assert_allclose(final.h[b], c.h, **TOL)


@pytest.mark.parametrize("reverse", [False, True])
def test_packed_with_resets_equals_separate_runs(reverse, key):
    cell, params, xs = setup("lstmp", key, (2,))
    segments = [(0, 3), (3, 4), (4, T)]  # a length-1 segment in the middle
    resets = np.zeros((2, T), bool)
    resets[:, [s for s, _ in segments]] = True
    resets[1, 0] = False  # a reset at t=0 is implied by the initial carry
    final, ys = jaxrnn.scan(cell, params, xs, resets=resets, reverse=reverse)
    last = segments[0] if reverse else segments[-1]
    for s, e in segments:
        f_seg, y_seg = jaxrnn.scan(cell, params, xs[:, s:e], reverse=reverse)
        np.testing.assert_allclose(ys[:, s:e], y_seg, **TOL)
        if (s, e) == last:
            assert_trees_close(final, f_seg)


@pytest.mark.parametrize("remat", [None, 3])
def test_a_window_of_a_stream_resets_to_reset_to_not_to_its_incoming_carry(remat, key):
    # Truncated BPTT: the window starts from the stream's carry; a document that begins
    # at t = 4 starts from the cell's initial carry (zeros).
    cell, params, xs = setup("gru", key, (2,))
    incoming = randomize(cell.initial_carry(params, (2,)), jax.random.fold_in(key, 1))
    zeros = cell.initial_carry(params, (2,))
    resets = np.zeros((2, T), bool)
    resets[:, 4] = True
    final, ys = jaxrnn.scan(cell, params, xs, incoming, resets=resets, reset_to=zeros, remat=remat)
    # The oracle: the loop from the incoming carry up to t = 4, then from zeros.
    _, ys_a = loop_oracle(cell, params, xs[:, :4], incoming)
    final_b, ys_b = loop_oracle(cell, params, xs[:, 4:])
    np.testing.assert_allclose(ys, np.concatenate([ys_a, ys_b], axis=1), **TOL)
    assert_trees_close(final, final_b)
    # Without reset_to, a reset restarts from the initial carry given, as documented.
    _, ys_default = jaxrnn.scan(cell, params, xs, incoming, resets=resets)
    _, ys_again = loop_oracle(cell, params, xs[:, 4:], incoming)
    np.testing.assert_allclose(ys_default[:, 4:], ys_again, **TOL)
    with pytest.raises(ValueError, match=r"reset_to: expected leaf shapes \[\(2, 4\)\]"):
        jaxrnn.scan(cell, params, xs, incoming, resets=resets, reset_to=cell.initial_carry(params))


def test_no_recompilation_on_second_call(key):
    cell, params, xs = setup("lstmp", key)
    traces = []

    @jax.jit
    def run(params, xs, lengths):
        traces.append(1)
        return jaxrnn.scan(cell, params, xs, lengths=lengths, reverse=True)

    run(params, xs, jnp.array([1, 2, 3]))
    run(randomize(params, jax.random.fold_in(key, 9)), xs + 1.0, jnp.array([T, 0, 2]))
    assert len(traces) == 1
    assert run._cache_size() == 1


class NoisyCarry(NamedTuple):
    h: jax.Array  # [*batch, H], per sequence
    key: jax.Array  # a typed PRNG key, per rollout


def noisy_elman():
    """An Elman cell whose output carries noise from a key kept in the carry."""
    base = jaxrnn.elman(H)

    def initial_carry(params, batch_shape=(), *, key=None):
        return NoisyCarry(base.initial_carry(params, batch_shape).h, key)

    def apply(params, carry, x):
        key, sub = jax.random.split(carry.key)
        (h,), _ = base.apply(params, jaxrnn.ElmanCarry(carry.h), x)
        return NoisyCarry(h, key), h + jax.random.normal(sub, h.shape, h.dtype)

    return jaxrnn.Cell(base.init, initial_carry, apply)


@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("batch_shape", [(), (2,)], ids=str)
def test_per_rollout_key_advances_through_masks_and_resets(batch_shape, reverse, key):
    """A key in the carry advances on every step, masked or reset, with or without batch dims."""
    cell = noisy_elman()
    _, params, xs = setup("elman", key, batch_shape)
    mask = random_bool(key, (*batch_shape, T))
    resets = random_bool(jax.random.fold_in(key, 1), (*batch_shape, T), 0.4)
    k0 = jax.random.key(7)
    final, ys = jaxrnn.scan(cell, params, xs, mask=mask, resets=resets, reverse=reverse, key=k0)
    # Oracle: the key splits once per step whatever the mask says; h follows the loop.
    base = CELLS["elman"]()
    h0 = base.initial_carry(params, batch_shape).h
    h, k, want = h0, k0, [None] * T
    for t in range(T - 1, -1, -1) if reverse else range(T):
        r = (
            (resets[..., t + 1] if t + 1 < T else np.zeros_like(resets[..., 0]))
            if reverse
            else resets[..., t]
        )
        h = jnp.where(r[..., None], h0, h)
        k, sub = jax.random.split(k)
        (h_new,), _ = base.apply(params, jaxrnn.ElmanCarry(h), xs[..., t, :])
        noise = jax.random.normal(sub, h_new.shape, F64)
        want[t] = jnp.where(mask[..., t, None], h_new + noise, 0.0)
        h = jnp.where(mask[..., t, None], h_new, h)
    np.testing.assert_allclose(ys, jnp.stack(want, -2), **TOL)
    np.testing.assert_allclose(final.h, h, **TOL)
    np.testing.assert_array_equal(jax.random.key_data(final.key), jax.random.key_data(k))


# --------------------------------------------------------------------------- learned initial carry


def test_learned_initial_carry_gradient_matches_finite_differences(key):
    cell = jaxrnn.learned_initial_carry(jaxrnn.lstm(H, projection_size=2))
    k_p, k_x = jax.random.split(key)
    params = randomize(cell.init(k_p, I), k_p)
    xs = jax.random.normal(k_x, (B, T, I), F64)
    resets = random_bool(key, (B, T), 0.3)
    lengths = np.array([T, 4, 2])

    # The learned carry broadcast over the batch is the loop's initial carry.
    want = loop_oracle(
        cell,
        params,
        xs,
        jax.tree.map(lambda c: jnp.broadcast_to(c, (B, *c.shape)), params.carry),
        resets=resets,
        mask=np.arange(T) < lengths[:, None],
    )
    assert_trees_close(jaxrnn.scan(cell, params, xs, resets=resets, lengths=lengths), want)

    def loss(carry):
        final, ys = jaxrnn.scan(
            cell, params._replace(carry=carry), xs, resets=resets, lengths=lengths
        )
        return jnp.sum(ys**2) + jnp.sum(final.c)

    grad = jax.grad(loss)(params.carry)
    assert all(np.abs(g).max() > 1e-3 for g in jax.tree.leaves(grad))
    check_grads(jax.jit(loss), (params.carry,), order=1, modes=("rev",))


def test_learned_initial_carry_custom_init_is_broadcast(key):
    cell = jaxrnn.learned_initial_carry(jaxrnn.lstm(H), init=jaxrnn.initializers.constant(0.3))
    params = cell.init(key, I)
    carry = cell.initial_carry(params, (2, 3))
    assert carry.h.shape == (2, 3, H) and carry.c.shape == (2, 3, H)
    np.testing.assert_array_equal(np.stack(jax.tree.leaves(params.carry)), np.float32(0.3))
    np.testing.assert_array_equal(np.stack(jax.tree.leaves(carry)), np.float32(0.3))


# --------------------------------------------------------------------------- gradients


@pytest.mark.parametrize("reverse", [False, True])
def test_masked_reset_rollout_gradients_match_finite_differences(reverse, key):
    cell, params, xs = setup("gru", key, (2,), steps=5)
    mask = np.array([[1, 0, 1, 1, 0], [1, 1, 1, 0, 0]], bool)
    resets = np.array([[0, 0, 1, 0, 0], [0, 1, 0, 0, 0]], bool)

    def f(params, xs):
        final, ys = jaxrnn.scan(cell, params, xs, mask=mask, resets=resets, reverse=reverse)
        return jnp.sum(jnp.sin(ys)) + jnp.sum(final.h**2)

    check_grads(jax.jit(f), (params, xs), order=2, modes=("rev",))


# --------------------------------------------------------------------------- bad input


def test_bad_inputs_are_named(key):
    cell, params, xs = setup("gru", key)
    with pytest.raises(
        ValueError, match=r"lengths: expected values in \[0, T=7\], got min 1, max 9"
    ):
        jaxrnn.scan(cell, params, xs, lengths=np.array([1, 9, 2]))
    with pytest.raises(ValueError, match=r"lengths: expected values in \[0, T=7\], got min -1"):
        jaxrnn.scan(cell, params, xs, lengths=np.array([1, -1, 2]))
    with pytest.raises(TypeError, match=r"lengths: expected an integer array, got dtype float64"):
        jaxrnn.scan(cell, params, xs, lengths=np.array([1.0, 2.0, 3.0]))
    with pytest.raises(ValueError, match=r"lengths: expected shape \(3,\).*got \(2,\)"):
        jaxrnn.scan(cell, params, xs, lengths=np.array([1, 2]))
    with pytest.raises(
        ValueError, match=r"mask: expected shape \(3, 7\) \(\[\*batch, T\]\), got \(7, 3\)"
    ):
        jaxrnn.scan(cell, params, xs, mask=np.ones((T, B), bool))
    with pytest.raises(
        ValueError, match=r"mask: expected shape \(7, 3\) \(\[T, \*batch\]\), got \(3, 7\)"
    ):
        jaxrnn.scan(
            cell, params, jnp.swapaxes(xs, 0, 1), mask=np.ones((B, T), bool), time_major=True
        )
    with pytest.raises(TypeError, match=r"mask: expected a bool array, got dtype int"):
        jaxrnn.scan(cell, params, xs, mask=np.ones((B, T), np.int32))
    with pytest.raises(ValueError, match=r"resets: expected shape \(3, 7\).*got \(3, 6\)"):
        jaxrnn.scan(cell, params, xs, resets=np.ones((B, T - 1), bool))
    with pytest.raises(ValueError, match=r"xs: expected shape \[\*batch, T, I\], got \(3,\)"):
        jaxrnn.scan(cell, params, jnp.ones((I,), F64))
    wrong = cell.initial_carry(params, (2,))
    with pytest.raises(
        ValueError, match=r"carry: expected leaf shapes \[\(3, 4\)\], got \[\(2, 4\)\]"
    ):
        jaxrnn.scan(cell, params, xs, wrong)
    with pytest.raises(ValueError, match=r"x: expected shape \[\*batch, 3\]"):
        jaxrnn.scan(cell, params, jnp.ones((B, T, I + 1), F64))


def _int_carry(cell, params, xs):
    carry = cell.initial_carry(params, (B,))
    return jaxrnn.scan(cell, params, xs, jax.tree.map(lambda h: h.astype(jnp.int32), carry))


# (id, call, error, the words the message must hold: the argument, expected and actual)
BAD_ARGUMENTS = [
    ("int-carry", _int_carry, TypeError, ["carry.h int32", "expected floating, like float64"]),
    (
        "other-kind",
        lambda cell, params, xs: jaxrnn.scan(cell, jaxrnn.elman(H).init(jax.random.key(1), I), xs),
        ValueError,
        ["params: expected the params of this cell, GRUParams(", "got ElmanParams("],
    ),
    (
        "other-hidden-size",
        lambda cell, params, xs: jaxrnn.scan(
            cell, jaxrnn.gru(H + 1).init(jax.random.key(1), I), xs
        ),
        ValueError,
        ["params: expected the leaf shapes", "params.W_hh [5, 15] (expected [4, 12])"],
    ),
    (
        "params-none",
        lambda cell, params, xs: jaxrnn.scan(cell, None, xs),
        TypeError,
        ["params: expected the cell's params (cell.init(key, input_size=3)), got None"],
    ),
    (
        "layer-for-cell",
        lambda cell, params, xs: jaxrnn.scan(jaxrnn.rnn(cell), params, xs),
        TypeError,
        ["cell: expected a jaxrnn.Cell, got Layer", "call its apply(params, xs)"],
    ),
    (
        "reverse-no",
        lambda cell, params, xs: jaxrnn.scan(cell, params, xs, reverse="no"),
        TypeError,
        ["reverse: expected True or False, got 'no'"],
    ),
    (
        "time-major-1",
        lambda cell, params, xs: jaxrnn.scan(cell, params, xs, time_major=1),
        TypeError,
        ["time_major: expected True or False, got 1"],
    ),
    (
        "xs-list",
        lambda cell, params, xs: jaxrnn.scan(cell, params, np.asarray(xs).tolist()),
        TypeError,
        ["xs: expected an array of shape [*batch, T, I], got list [["],
    ),
    (
        "xs-none",
        lambda cell, params, xs: jaxrnn.scan(cell, params, None),
        TypeError,
        ["xs: expected an array of shape [*batch, T, I], got NoneType None"],
    ),
    (
        "lengths-list",
        lambda cell, params, xs: jaxrnn.scan(cell, params, xs, lengths=[7, 2, 5]),
        TypeError,
        ["lengths: expected an integer array [*batch], got list [7, 2, 5]"],
    ),
    (
        "mask-string",
        lambda cell, params, xs: jaxrnn.scan(cell, params, xs, mask="all"),
        TypeError,
        ["mask: expected a bool array, got str 'all'"],
    ),
]


@pytest.mark.parametrize("case", BAD_ARGUMENTS, ids=[c[0] for c in BAD_ARGUMENTS])
@pytest.mark.parametrize("jit", [False, True], ids=["eager", "jit"])
def test_a_bad_argument_is_named_with_what_was_expected_and_given(case, jit, key):
    """Checked once, where the argument enters ``jaxrnn.scan``, before any cell sees it;
    under ``jit`` the same error comes at trace time."""
    _, call, error, words = case
    cell, params, xs = setup("gru", key)
    run = (
        (lambda: jax.jit(lambda: call(cell, params, xs))())
        if jit
        else (lambda: call(cell, params, xs))
    )
    with pytest.raises(error) as raised:
        run()
    for word in words:
        assert word in str(raised.value)


def test_the_argument_checks_add_nothing_to_the_compiled_program(key):
    """``params`` is checked against ``cell.init`` run abstractly: the init's random
    draws and orthogonalisation never enter the traced rollout."""
    cell, params, xs = setup("gru", key)
    jaxpr = str(jax.make_jaxpr(lambda p, xs: jaxrnn.scan(cell, p, xs))(params, xs))
    for primitive in ("random_bits", "random_seed", "householder", "qr", "threefry"):
        assert primitive not in jaxpr


def test_lengths_captured_by_an_outer_jit_are_accepted_and_checked(key):
    cell, params, xs = setup("gru", key)
    lengths = jnp.array([7, 2, 5], jnp.int32)  # a concrete constant closed over by jit
    want = jaxrnn.scan(cell, params, xs, lengths=lengths)
    got = jax.jit(lambda xs: jaxrnn.scan(cell, params, xs, lengths=lengths))(xs)
    np.testing.assert_allclose(got[1], want[1], **TOL)
    too_long = jnp.array([8, 2, 5], jnp.int32)
    with pytest.raises(
        ValueError, match=r"lengths: expected values in \[0, T=7\], got min 2, max 8"
    ):
        jax.jit(lambda xs: jaxrnn.scan(cell, params, xs, lengths=too_long))(xs)


def test_given_training_carry_with_its_own_key_needs_no_key_argument(key):
    cell, params, xs = setup("gru", key)
    noisy = jaxrnn.zoneout(cell, 0.5)
    carry = noisy.initial_carry(params, (B,), key=jax.random.key(3))
    got = jaxrnn.scan(noisy, params, xs, carry)
    want = jaxrnn.scan(noisy, params, xs, key=jax.random.key(3))
    np.testing.assert_array_equal(got[1], want[1])
    with pytest.raises(ValueError, match="carry: expected leaf shapes"):
        jaxrnn.scan(noisy, params, xs, noisy.initial_carry(params, (B + 1,), key=key))
