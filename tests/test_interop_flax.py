"""jaxrnn.interop.flax against Flax itself: same weights, same outputs, carries and gradients.

The oracles are Flax's own cells (linen and NNX, float64 params and inputs) stepped
over time (a ``lax.scan`` of the cell's call), Flax's ``nn.RNN`` / ``nnx.RNN`` with
``seq_lengths``, and, for masks with holes and resets, the loop of ``jaxrnn.scan``'s
docstring written out here over the Flax cell's own step. Tolerance 1e-12; round trips
are compared bit for bit. Gradients are taken with respect to the params (in Flax's
layout, through ``from_flax``, or in jaxrnn's), the inputs and the initial carry.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import linen as nn
from flax import nnx

import jaxrnn
from jaxrnn.interop import flax as jf

I, H, B, T = 3, 4, 3, 5
F64 = jnp.float64
TOL = {"rtol": 1e-12, "atol": 1e-12}
# XLA:CPU's compilation is most of this file's time; LLVM at -O0 halves it. Float
# semantics are unchanged (no fast math either way), and both sides of every comparison
# are compiled together, in one program.
OPTS = {"xla_backend_optimization_level": 0}
# No zero length: nn.RNN picks the final carry at seq_lengths - 1, which wraps to -1.
# int64: Flax's flip_sequences adds them to an int64 arange (strict promotion).
LENGTHS = np.array([T, 2, 4], dtype=np.int64)


def make_module(name):
    """A Flax cell in float64 (NNX's SimpleCell also computes in its own ``dtype``). NNX
    cells start at zeros: their params are drawn below, and Flax's orthogonal init, run
    op by op, would cost seconds of compilation."""
    zeros = nnx.initializers.zeros_init()
    nnx_kw = {"param_dtype": F64, "kernel_init": zeros, "recurrent_kernel_init": zeros}
    nnx_kw["rngs"] = nnx.Rngs(0)
    return {
        "linen_lstm": lambda: nn.LSTMCell(H, param_dtype=F64),
        "linen_optimized_lstm": lambda: nn.OptimizedLSTMCell(H, param_dtype=F64),
        "linen_gru": lambda: nn.GRUCell(H, param_dtype=F64),
        "linen_simple": lambda: nn.SimpleCell(H, param_dtype=F64),
        "linen_simple_relu_residual": lambda: nn.SimpleCell(
            H, param_dtype=F64, activation_fn=nn.relu, residual=True
        ),
        "linen_mgu": lambda: nn.MGUCell(H, param_dtype=F64),
        "nnx_lstm": lambda: nnx.LSTMCell(I, H, **nnx_kw),
        "nnx_optimized_lstm": lambda: nnx.OptimizedLSTMCell(I, H, **nnx_kw),
        "nnx_gru": lambda: nnx.GRUCell(I, H, **nnx_kw),
        "nnx_simple": lambda: nnx.SimpleCell(I, H, dtype=F64, **nnx_kw),
    }[name]()


CONVERTIBLE = [
    "linen_lstm",
    "linen_optimized_lstm",
    "linen_gru",
    "linen_simple",
    "linen_simple_relu_residual",
    "nnx_lstm",
    "nnx_optimized_lstm",
    "nnx_gru",
    "nnx_simple",
]


def random_flax(name, seed=0):
    """``(module, params, step)``: a Flax cell with every param random (biases too),
    its params (linen variables, or the NNX module's state) and its pure step
    ``step(params, carry, x)``."""
    module = make_module(name)
    rng = np.random.default_rng(seed)

    def draw(x):
        return jnp.asarray(0.7 * rng.normal(size=x.shape), x.dtype)

    if isinstance(module, nnx.Module):
        for _, variable in nnx.to_flat_state(nnx.state(module, nnx.Param)):
            variable[...] = draw(variable[...])
        graphdef, state = nnx.split(module)
        return module, state, lambda p, c, x: nnx.merge(graphdef, p)(c, x)
    key = jax.random.key(seed)
    carry = module.initialize_carry(key, (I,))
    variables = jax.eval_shape(module.init, key, carry, jnp.zeros((I,), F64))
    return module, jax.tree.map(draw, variables), module.apply


def converted(module, params):
    """``from_flax`` of the module at ``params`` (traceable, so gradients flow back)."""
    if isinstance(module, nnx.Module):
        graphdef, _ = nnx.split(module)
        return jf.from_flax(nnx.merge(graphdef, params))
    return jf.from_flax(module, params)


def random_carry(module, rng, batch=(B,)):
    """A random carry in Flax's layout: ``(c, h)`` for the LSTMs, ``h`` otherwise."""
    if isinstance(module, nnx.Module):
        template = module.initialize_carry((*batch, I), rngs=nnx.Rngs(0))
    else:
        template = module.initialize_carry(jax.random.key(0), (*batch, I))
    return jax.tree.map(lambda x: jnp.asarray(rng.normal(size=x.shape), F64), template)


def random_params(cell, seed=0, scale=1.0):
    """Params of ``cell.init``'s structure and shapes, every leaf random (tracing only:
    the eager init compiles op by op)."""
    rng = np.random.default_rng(seed)
    shapes = jax.eval_shape(lambda k: cell.init(k, I), jax.random.key(0))
    return jax.tree.map(lambda s: jnp.asarray(scale * rng.normal(size=s.shape), s.dtype), shapes)


def weighted(tree, weights):
    return sum(jnp.sum(a * w) for a, w in zip(jax.tree.leaves(tree), weights, strict=True))


def assert_trees_close(got, want, **tol):
    assert jax.tree.structure(got) == jax.tree.structure(want)
    for (path, g), w in zip(
        jax.tree_util.tree_flatten_with_path(got)[0], jax.tree.leaves(want), strict=True
    ):
        np.testing.assert_allclose(g, w, err_msg=jax.tree_util.keystr(path), **(tol or TOL))


def assert_trees_equal(got, want):
    assert jax.tree.structure(got) == jax.tree.structure(want)
    for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True):
        assert g.dtype == w.dtype
        np.testing.assert_array_equal(g, w)


def values_and_grads(oracle_loss, loss, args, other_args=None):
    """``value_and_grad`` (with aux) of both losses w.r.t. all their arguments, compiled
    as one program (one compilation per test: XLA's is most of this file's time)."""

    def both(args, other_args):
        def vg(f, a):
            return jax.value_and_grad(f, tuple(range(len(a))), has_aux=True)(*a)

        return vg(oracle_loss, args), vg(loss, other_args)

    return jax.jit(both, compiler_options=OPTS)(args, args if other_args is None else other_args)


# ------------------------------------------------------------------ conversion


# One of each parameter layout (the others are checked on values, in the round trips).
GRADIENT_CASES = [
    "linen_lstm",
    "linen_gru",
    "linen_simple_relu_residual",
    "nnx_lstm",
    "nnx_optimized_lstm",
    "nnx_gru",
]


@pytest.mark.parametrize("name", GRADIENT_CASES)
def test_converted_cell_matches_flax_values_and_gradients(name):
    module, params, step = random_flax(name)
    rng = np.random.default_rng(1)
    xs = jnp.asarray(rng.normal(size=(B, T, I)))
    carry0 = random_carry(module, rng)
    R = rng.normal(size=(B, T, H))
    S = [rng.normal(size=x.shape) for x in jax.tree.leaves(carry0)]

    def flax_loss(params, carry, xs):
        carry, ys = jax.lax.scan(lambda c, x: step(params, c, x), carry, jnp.swapaxes(xs, 0, 1))
        ys = jnp.swapaxes(ys, 0, 1)
        return jnp.sum(ys * R) + weighted(carry, S), (carry, ys)

    def jaxrnn_loss(params, carry, xs):
        cell, p = converted(module, params)
        final, ys = jaxrnn.scan(cell, p, xs, jf.carry_from_flax(carry, module))
        final = jf.carry_to_flax(final)  # back to Flax's layout: (c, h) for the LSTM
        return jnp.sum(ys * R) + weighted(final, S), (final, ys)

    ((want, (carry_f, ys_f)), g_f), ((got, (carry_j, ys_j)), g_j) = values_and_grads(
        flax_loss, jaxrnn_loss, (params, carry0, xs)
    )
    np.testing.assert_allclose(ys_j, ys_f, **TOL)
    assert_trees_close(carry_j, carry_f)
    np.testing.assert_allclose(got, want, **TOL)
    assert_trees_close(g_j, g_f)  # params (Flax's layout), initial carry, inputs


def test_carry_is_matched_by_name():
    module = nn.LSTMCell(H, param_dtype=F64)
    c, h = jnp.zeros((B, H), F64), jnp.ones((B, H), F64)
    carry = jf.carry_from_flax((c, h), module)
    assert isinstance(carry, jaxrnn.LSTMCarry)
    np.testing.assert_array_equal(carry.h, h)
    np.testing.assert_array_equal(carry.c, c)
    back = jf.carry_to_flax(carry)
    assert back[0] is carry.c and back[1] is carry.h
    gru_carry = jf.carry_from_flax(h, make_module("nnx_gru"))
    assert isinstance(gru_carry, jaxrnn.GRUCarry)
    assert isinstance(jf.carry_from_flax(h, nn.SimpleCell(H)), jaxrnn.ElmanCarry)
    assert jf.carry_to_flax(gru_carry) is gru_carry.h


def jaxrnn_params_for(name, seed=2):
    """``(module, step, cell, p)``: a Flax cell and its step, the jaxrnn cell it converts
    to and random params of it (every leaf; nnx's GRU has no b_hn, so zero there)."""
    module, params, step = random_flax(name)
    cell, _ = converted(module, params)
    p = random_params(cell, seed)
    if name == "nnx_gru":
        p = p._replace(b_hn=jnp.zeros_like(p.b_hn))
    return module, step, cell, p


EXACT = [n for n in CONVERTIBLE if "residual" not in n]


@pytest.mark.parametrize("name", EXACT)
def test_jaxrnn_to_flax_to_jaxrnn_is_exact(name):
    module, step, cell, p = jaxrnn_params_for(name)
    out = jf.to_flax(p, module)
    if isinstance(module, nnx.Module):
        assert out is module  # written in place
        _, back = jf.from_flax(module)
    else:
        assert set(out) == {"params"}
        _, back = jf.from_flax(module, out)
    assert_trees_equal(back, p)
    # And the Flax cell now computes what the jaxrnn cell computes with these params.
    rng = np.random.default_rng(5)
    carry, x = random_carry(module, rng), jnp.asarray(rng.normal(size=(B, I)))
    params = nnx.state(module) if isinstance(module, nnx.Module) else out

    def both(params, p, carry, x):
        want = step(params, carry, x)
        got = cell.apply(p, jf.carry_from_flax(carry, module), x)
        return want, (jf.carry_to_flax(got[0]), got[1])

    want, got = jax.jit(both, compiler_options=OPTS)(params, p, carry, x)
    assert_trees_close(got, want)


@pytest.mark.parametrize("name", EXACT)
def test_flax_to_jaxrnn_to_flax_is_exact(name):
    module, params, _ = random_flax(name, seed=3)
    _, p = converted(module, params)
    if isinstance(module, nnx.Module):
        other, _, _ = random_flax(name, seed=4)
        jf.to_flax(p, other)
        assert_trees_equal(nnx.state(other, nnx.Param), nnx.state(module, nnx.Param))
    else:
        assert_trees_equal(jf.to_flax(p, module), params)


def test_residual_simple_cell_round_trips_to_rounding():
    module, _, _, p = jaxrnn_params_for("linen_simple_relu_residual")
    variables = jf.to_flax(p, module)
    np.testing.assert_allclose(
        variables["params"]["h"]["kernel"], p.W_hh - jnp.eye(H, dtype=F64), rtol=0, atol=0
    )
    cell, back = jf.from_flax(module, variables)
    assert_trees_close(back, p, rtol=0, atol=1e-15)
    assert cell.apply(back, jaxrnn.ElmanCarry(-jnp.ones(H, F64)), jnp.ones(I, F64))[1].min() == 0


def test_to_flax_casts_to_param_dtype_and_from_flax_keeps_or_casts():
    module = nn.GRUCell(H)  # param_dtype float32
    *_, p = jaxrnn_params_for("linen_gru")
    variables = jf.to_flax(p, module)
    assert all(x.dtype == jnp.float32 for x in jax.tree.leaves(variables))
    _, p32 = jf.from_flax(module, variables)
    assert all(x.dtype == jnp.float32 for x in jax.tree.leaves(p32))
    _, p64 = jf.from_flax(module, variables, dtype=F64)
    assert all(x.dtype == F64 for x in jax.tree.leaves(p64))


# ----------------------------------------------------------- jaxrnn cells in Flax


JAXRNN_CELLS = {
    "lstm": lambda: jaxrnn.lstm(H, dtype=F64),
    "gru": lambda: jaxrnn.gru(H, dtype=F64),
    "stack_elman_lstm": lambda: jaxrnn.stack(
        jaxrnn.elman(H, activation="relu", dtype=F64), jaxrnn.lstm(H, dtype=F64)
    ),
}


def sequence_data(seed):
    rng = np.random.default_rng(seed)
    xs = jnp.asarray(rng.normal(size=(B, T, I)))
    valid = np.arange(T) < LENGTHS[:, None]  # [B, T]
    return rng, xs, valid, rng.normal(size=(B, T, H))


def sequence_loss(carry, ys, valid, R, S):
    """Outputs at valid steps only (nn.RNN outputs the cell's values at padding, jaxrnn
    zeros), and the final carry."""
    return jnp.sum(jnp.where(valid[..., None], ys, 0.0) * R) + weighted(carry, S)


@pytest.mark.parametrize(
    "kind, reverse",
    [("lstm", False), ("gru", True), ("stack_elman_lstm", False)],
    ids=["lstm", "gru-reverse", "stack"],
)
def test_linen_cell_in_nn_rnn_matches_scan(kind, reverse):
    cell = JAXRNN_CELLS[kind]()
    rng, xs, valid, R = sequence_data(5)
    rnn = nn.RNN(jf.LinenCell(cell), return_carry=True, reverse=reverse, keep_order=True)
    # nn.RNN's submodule, then LinenCell's param; random params, not rnn.init's (whose
    # orthogonal init alone takes seconds to compile), in the structure rnn.init makes.
    params = random_params(cell, seed=6, scale=0.5)
    variables = {"params": {"cell": {"cell": params}}}
    shapes = jax.eval_shape(rnn.init, jax.random.key(1), xs)
    assert jax.tree.structure(shapes) == jax.tree.structure(variables)
    template = jax.eval_shape(lambda: cell.initial_carry(params, (B,)))
    S = [rng.normal(size=x.shape) for x in jax.tree.leaves(template)]
    lengths = jnp.asarray(LENGTHS)

    def flax_loss(variables, xs):
        carry, ys = rnn.apply(variables, xs, seq_lengths=lengths)
        return sequence_loss(carry, ys, valid, R, S), (carry, ys)

    def jaxrnn_loss(params, xs):
        carry, ys = jaxrnn.scan(cell, params, xs, lengths=lengths, reverse=reverse)
        return sequence_loss(carry, ys, valid, R, S), (carry, ys)

    ((want, (carry_f, ys_f)), (gv, gx_f)), ((got, (carry_j, ys_j)), (gp, gx_j)) = values_and_grads(
        flax_loss, jaxrnn_loss, (variables, xs), (params, xs)
    )
    assert_trees_close(carry_j, carry_f)
    np.testing.assert_allclose(ys_j[valid], ys_f[valid], **TOL)
    np.testing.assert_array_equal(ys_j[~valid], 0.0)
    np.testing.assert_allclose(got, want, **TOL)
    assert_trees_close(gp, gv["params"]["cell"]["cell"])
    np.testing.assert_allclose(gx_j, gx_f, **TOL)


def test_linen_cell_refuses_a_learned_initial_carry_and_takes_one_given():
    cell = jaxrnn.learned_initial_carry(jaxrnn.gru(H, dtype=F64))
    _, xs, _, _ = sequence_data(6)
    rnn = nn.RNN(jf.LinenCell(cell), return_carry=True)
    with pytest.raises(ValueError, match=r"cell: its initial carry depends on its params"):
        rnn.init(jax.random.key(0), xs)
    params = random_params(cell, seed=2)  # the learned carry too
    lengths = jnp.asarray(LENGTHS)

    def both(params, xs):
        carry0 = cell.initial_carry(params, (B,))
        variables = {"params": {"cell": {"cell": params}}}
        got = rnn.apply(variables, xs, initial_carry=carry0, seq_lengths=lengths)
        return got, jaxrnn.scan(cell, params, xs, lengths=lengths)

    (carry, ys), (want_carry, want_ys) = jax.jit(both, compiler_options=OPTS)(params, xs)
    assert_trees_close(carry, want_carry)
    valid = np.arange(T) < LENGTHS[:, None]
    np.testing.assert_allclose(ys[valid], want_ys[valid], **TOL)


@pytest.mark.parametrize("kind", ["lstm", "learned_gru"])
def test_nnx_cell_in_nnx_rnn_matches_scan(kind):
    if kind == "learned_gru":  # NNX has the params at hand: a learned carry works here
        cell = jaxrnn.learned_initial_carry(jaxrnn.gru(H, dtype=F64))
        module = jf.NNXCell(cell, I, params=random_params(cell, seed=3, scale=0.5))
    else:
        cell = jaxrnn.lstm(H, dtype=F64)
        module = jf.NNXCell(cell, I, params=random_params(cell, seed=3, scale=0.5))
    rng, xs, valid, R = sequence_data(7)
    params = module.param_values()
    template = jax.eval_shape(lambda: cell.initial_carry(params, (B,)))
    S = [rng.normal(size=x.shape) for x in jax.tree.leaves(template)]
    lengths = jnp.asarray(LENGTHS)
    rnn = nnx.RNN(module, return_carry=True)  # its default rngs: the cell draws a carry key

    def flax_loss(rnn, xs):
        carry, ys = rnn(xs, seq_lengths=lengths)
        return sequence_loss(carry, ys, valid, R, S), (carry, ys)

    def jaxrnn_loss(params, xs):
        carry, ys = jaxrnn.scan(cell, params, xs, lengths=lengths)
        return sequence_loss(carry, ys, valid, R, S), (carry, ys)

    # NNX's own transform on the NNX side (gradients of the nnx.Param leaves), inside
    # one jax.jit with the jaxrnn side.
    graphdef, state = nnx.split(rnn)

    def both(state, params, xs):
        nnx_grad = nnx.value_and_grad(flax_loss, argnums=(0, 1), has_aux=True)
        jax_grad = jax.value_and_grad(jaxrnn_loss, (0, 1), has_aux=True)
        return nnx_grad(nnx.merge(graphdef, state), xs), jax_grad(params, xs)

    ((want, (carry_f, ys_f)), (gs, gx_f)), ((got, (carry_j, ys_j)), (gp, gx_j)) = jax.jit(
        both, compiler_options=OPTS
    )(state, params, xs)
    assert_trees_close(carry_j, carry_f)
    np.testing.assert_allclose(ys_j[valid], ys_f[valid], **TOL)
    np.testing.assert_allclose(got, want, **TOL)
    # The gradient state, merged back, holds the gradients in the jaxrnn params' NamedTuple.
    graphdef, _, rest = nnx.split(rnn, nnx.Param, ...)
    assert_trees_close(gp, nnx.merge(graphdef, gs, rest).cell.param_values())
    np.testing.assert_allclose(gx_j, gx_f, **TOL)
    if kind == "learned_gru":
        assert np.abs(gp.carry.h).max() > 0  # the learned carry is trained through nnx.RNN


# ----------------------------------------------------------- Flax cells in jaxrnn


def where_rows(cond, a, b):
    return jax.tree.map(lambda x, y: jnp.where(cond[:, None], x, y), a, b)


def loop_oracle(step, params, carry0, xs, mask, resets):
    """The loop of jaxrnn.scan's docstring over the Flax cell's step: restart from the
    initial carry where ``resets``, keep the carry and output zeros where not ``mask``
    (written as a ``lax.scan`` over ``t``, which compiles faster than the unrolled loop)."""

    def body(carry, inputs):
        x, valid, start = inputs
        carry = where_rows(start, carry0, carry)
        new, y = step(params, carry, x)
        return where_rows(valid, new, carry), jnp.where(valid[:, None], y, 0.0)

    time_major = [jnp.swapaxes(a, 0, 1) for a in (xs, mask, resets)]
    carry, ys = jax.lax.scan(body, carry0, time_major)
    return carry, jnp.swapaxes(ys, 0, 1)


# MGU: a Flax cell with no jaxrnn counterpart, run as it is; the NNX LSTM: a tuple carry.
@pytest.mark.parametrize("name", ["linen_mgu", "nnx_lstm"])
def test_flax_cell_under_scan_with_lengths_mask_resets_matches_loop(name):
    module, params, step = random_flax(name, seed=8)
    cell, cell_params = jf.flax_cell(module, None if isinstance(module, nnx.Module) else params)
    assert_trees_equal(cell_params, params)
    rng, xs, valid, R = sequence_data(9)
    holes = rng.random((B, T)) < 0.75
    resets = rng.random((B, T)) < 0.3
    carry0 = random_carry(module, rng)
    S = [rng.normal(size=x.shape) for x in jax.tree.leaves(carry0)]
    lengths = jnp.asarray(LENGTHS)
    mask = jnp.asarray(holes & valid)

    def oracle_loss(params, carry0, xs):
        carry, ys = loop_oracle(step, params, carry0, xs, mask, jnp.asarray(resets))
        return jnp.sum(ys * R) + weighted(carry, S), (carry, ys)

    def scan_loss(params, carry0, xs):
        carry, ys = jaxrnn.scan(
            cell, params, xs, carry0, lengths=lengths, mask=jnp.asarray(holes), resets=resets
        )
        return jnp.sum(ys * R) + weighted(carry, S), (carry, ys)

    ((want, (carry_o, ys_o)), g_o), ((got, (carry_s, ys_s)), g_s) = values_and_grads(
        oracle_loss, scan_loss, (params, carry0, xs)
    )
    assert_trees_close(carry_s, carry_o)
    np.testing.assert_allclose(ys_s, ys_o, **TOL)
    np.testing.assert_allclose(got, want, **TOL)
    assert_trees_close(g_s, g_o)


@pytest.mark.parametrize("name", ["linen_lstm", "nnx_gru"])
def test_flax_cell_under_scan_matches_flax_rnn(name):
    module, params, _ = random_flax(name, seed=10)
    _, xs, valid, _ = sequence_data(11)
    lengths = jnp.asarray(LENGTHS)
    if isinstance(module, nnx.Module):
        cell, cell_params = jf.flax_cell(module)
        graphdef, _ = nnx.split(module)

        def flax_rnn(state, xs):
            rnn = nnx.RNN(nnx.merge(graphdef, state), return_carry=True)
            return rnn(xs, seq_lengths=lengths)
    else:
        cell, cell_params = jf.flax_cell(module, params)

        def flax_rnn(variables, xs):
            wrapped = {"params": {"cell": variables["params"]}}  # nn.RNN's submodule
            return nn.RNN(module, return_carry=True).apply(wrapped, xs, seq_lengths=lengths)

    def both(params, xs):
        return flax_rnn(params, xs), jaxrnn.scan(cell, params, xs, lengths=lengths)

    (carry_f, ys_f), (carry_s, ys_s) = jax.jit(both, compiler_options=OPTS)(cell_params, xs)
    assert_trees_close(carry_s, carry_f)
    np.testing.assert_allclose(ys_s[valid], ys_f[valid], **TOL)
    np.testing.assert_array_equal(ys_s[~valid], 0.0)


def test_flax_cell_init_and_initial_carry():
    module, variables, _ = random_flax("linen_lstm")
    cell, _ = jf.flax_cell(module, variables)
    fresh = jax.eval_shape(lambda k: cell.init(k, I), jax.random.key(5))
    assert jax.tree.structure(fresh) == jax.tree.structure(variables)
    assert [x.shape for x in jax.tree.leaves(fresh)] == [
        x.shape for x in jax.tree.leaves(variables)
    ]
    c, h = cell.initial_carry(fresh, (B, 2))
    assert c.shape == h.shape == (B, 2, H) and c.dtype == F64
    zeros = jaxrnn.initializers.zeros
    gru = jaxrnn.gru(H, input_init=zeros, recurrent_init=zeros, dtype=F64)
    wrapped = jf.NNXCell(gru, I, rngs=nnx.Rngs(0))
    assert jax.tree.structure(wrapped.param_values()) == jax.tree.structure(random_params(gru))
    nnx_module = make_module("nnx_gru")
    nnx_cell, state = jf.flax_cell(nnx_module)
    assert nnx_cell.init(jax.random.key(5), I) is state  # an NNX module's own variables
    assert nnx_cell.initial_carry(state, (B,)).shape == (B, H)


# ------------------------------------------------------------------ bad input


def test_bad_inputs_raise_clear_errors():
    lstm, variables, _ = random_flax("linen_lstm")
    with pytest.raises(TypeError, match=r"module: expected one of \[.*flax.linen.GRUCell.*got "):
        jf.from_flax(nn.MGUCell(H), variables)

    class MyLSTM(nn.LSTMCell):
        pass

    with pytest.raises(TypeError, match=r"exactly: a subclass .*got .*MyLSTM"):
        jf.from_flax(MyLSTM(H), variables)
    with pytest.raises(TypeError, match=r"variables: expected the variables of the linen LSTMCell"):
        jf.from_flax(lstm)
    with pytest.raises(TypeError, match=r"variables: an NNX module holds its own .*got dict"):
        jf.from_flax(make_module("nnx_gru"), variables)
    with pytest.raises(ValueError, match=r"variables: expected a 2-D entry 'ir.kernel'"):
        jf.from_flax(nn.GRUCell(H), variables)
    with pytest.raises(ValueError, match=r"variables: expected ii.kernel of shape \(3, 5\) \(a fl"):
        jf.from_flax(nn.LSTMCell(5), variables)
    bad = jax.tree.map(lambda x: x, variables)
    del bad["params"]["ho"]
    with pytest.raises(ValueError, match=r"variables: .*missing \['ho.kernel', 'ho.bias'\]"):
        jf.from_flax(lstm, bad)
    with pytest.raises(ValueError, match=r"module.gate_fn: jaxrnn's LSTM uses .*sigmoid"):
        jf.from_flax(nn.LSTMCell(H, gate_fn=jax.nn.hard_sigmoid), variables)
    with pytest.raises(TypeError, match=r"dtype: expected a floating dtype, got int32"):
        jf.from_flax(lstm, variables, dtype=jnp.int32)

    _, p = converted(lstm, variables)
    with pytest.raises(TypeError, match=r"params: expected GRUParams for a flax.linen.GRUCell"):
        jf.to_flax(p, nn.GRUCell(H))
    with pytest.raises(
        ValueError, match=r"params: expected ii.kernel of shape \(3, 5\) \(a .* size 3, read from"
    ):
        jf.to_flax(p, nn.LSTMCell(5))
    nnx_lstm = nnx.eval_shape(lambda: nnx.LSTMCell(I + 1, H, rngs=nnx.Rngs(0)))
    with pytest.raises(ValueError, match=r"params: expected ii.kernel of shape \(4, 4\)"):
        jf.to_flax(p, nnx_lstm)
    peephole = random_params(jaxrnn.lstm(H, peephole=True))
    with pytest.raises(ValueError, match=r"params: flax.linen.LSTMCell has no peepholes"):
        jf.to_flax(peephole, lstm)
    gru_p = random_params(jaxrnn.gru(H))  # b_hn != 0
    with pytest.raises(ValueError, match=r"params.b_hn: flax.nnx.GRUCell has no bias inside"):
        jf.to_flax(gru_p, make_module("nnx_gru"))
    classic = random_params(jaxrnn.gru(H, reset_after=False))
    with pytest.raises(ValueError, match=r"params: flax.linen.GRUCell is gru\(reset_after=True\)"):
        jf.to_flax(classic, nn.GRUCell(H))

    with pytest.raises(TypeError, match=r"carry: expected Flax's LSTM carry, the pair \(c, h\)"):
        jf.carry_from_flax(jnp.zeros((B, H)), lstm)
    with pytest.raises(ValueError, match=r"carry: expected \(c, h\) both of shape \[\*batch, 4\]"):
        jf.carry_from_flax((jnp.zeros((B, H)), jnp.zeros((B, 5))), lstm)
    with pytest.raises(ValueError, match=r"carry: expected shape \[\*batch, 4\], got \(3, 5\)"):
        jf.carry_from_flax(jnp.zeros((B, 5)), nn.GRUCell(H))
    with pytest.raises(TypeError, match=r"carry: expected an LSTMCarry, GRUCarry or ElmanCarry"):
        jf.carry_to_flax((jnp.zeros((B, H)),) * 2)

    with pytest.raises(TypeError, match=r"cell: expected a jaxrnn.Cell, got str"):
        jf.LinenCell("lstm")
    with pytest.raises(TypeError, match=r"cell: expected a jaxrnn.Cell, got LSTMCell"):
        jf.NNXCell(lstm, I, rngs=nnx.Rngs(0))
    with pytest.raises(TypeError, match=r"rngs: expected nnx.Rngs .*got NoneType"):
        jf.NNXCell(jaxrnn.gru(H), I)
    with pytest.raises(ValueError, match=r"in_features: expected a positive int, got 0"):
        jf.NNXCell(jaxrnn.gru(H), 0, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match=r"params: expected the cell's params for in_features=2"):
        jf.NNXCell(jaxrnn.gru(H), 2, params=gru_p)
    with pytest.raises(TypeError, match=r"carry_init: a jaxrnn cell's initial carry"):
        jf.NNXCell(jaxrnn.gru(H), I, params=random_params(jaxrnn.gru(H))).initialize_carry(
            (B, I), carry_init=nnx.initializers.ones
        )

    with pytest.raises(TypeError, match=r"module: expected a flax.linen.RNNCellBase or .*Dense"):
        jf.flax_cell(nn.Dense(H), {})
    with pytest.raises(ValueError, match=r"module: expected a cell with one feature axis .*=3"):
        jf.flax_cell(nn.ConvLSTMCell(H, (3, 3)), {})
    with pytest.raises(TypeError, match=r"variables: expected the variables of the linen GRUCell"):
        jf.flax_cell(nn.GRUCell(H))
    with pytest.raises(ValueError, match=r"variables: expected the variables of flax.linen.GRU"):
        jf.flax_cell(nn.GRUCell(H), variables)
    with pytest.raises(ValueError, match=r"variables: expected the leaf shapes of .*input size 3"):
        jf.flax_cell(nn.LSTMCell(5, param_dtype=F64), variables)
    cell, params = jf.flax_cell(lstm, variables)
    with pytest.raises(ValueError, match=r"x: expected shape \[\*batch, 3\] .*got \(3, 2\)"):
        jaxrnn.scan(cell, params, jnp.zeros((B, T, 2), F64))
    nnx_cell, state = jf.flax_cell(make_module("nnx_gru"))
    with pytest.raises(ValueError, match=r"input_size: expected the NNX module's in_features=3"):
        jaxrnn.scan(nnx_cell, state, jnp.zeros((B, T, 2), F64))
    with pytest.raises(TypeError, match=r"variables: an NNX module holds its own"):
        jf.flax_cell(make_module("nnx_gru"), variables)
