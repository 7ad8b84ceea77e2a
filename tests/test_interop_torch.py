"""jaxrnn.interop.torch against PyTorch itself: same weights, same outputs, states and gradients.

The oracle is PyTorch's own nn.RNN / nn.GRU / nn.LSTM (float64 modules, tolerance
1e-10; one float32 case). Gradients are checked against ``backward()`` through the
bias-split chain rule: for RNN/LSTM both ``bias_ih`` and ``bias_hh`` receive the
gradient of ``b``; for the GRU ``bias_hh``'s r, z blocks receive ``b``'s and its n
block ``b_hn``'s.
"""

import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

import jaxrnn  # noqa: E402
from jaxrnn.combinators.layer import BidirectionalCarry  # noqa: E402
from jaxrnn.combinators.stack import StackParams  # noqa: E402
from jaxrnn.interop import torch as jt  # noqa: E402

torch.set_num_threads(1)

I, H, P, B, T = 3, 5, 2, 4, 6
KINDS = ["rnn_tanh", "rnn_relu", "gru", "lstm", "lstm_proj"]
# (num_layers, bidirectional)
STRUCTURES = [(1, False), (2, False), (1, True), (2, True)]
TOL = {"rtol": 1e-10, "atol": 1e-10}


def make_module(kind, num_layers=1, bidirectional=False, *, batch_first=True, bias=True, seed=0):
    torch.manual_seed(seed)
    kw = dict(
        num_layers=num_layers, bidirectional=bidirectional, batch_first=batch_first, bias=bias
    )
    if kind.startswith("rnn"):
        module = torch.nn.RNN(I, H, nonlinearity=kind[4:], **kw)
    elif kind == "gru":
        module = torch.nn.GRU(I, H, **kw)
    else:
        module = torch.nn.LSTM(I, H, proj_size=P if kind == "lstm_proj" else 0, **kw)
    # PyTorch's default init is U(-1/sqrt(H), 1/sqrt(H)); widen it so that relu units
    # and saturating gates are both exercised.
    with torch.no_grad():
        for p in module.parameters():
            p.mul_(2.0)
    return module.double().eval()


def random_hx(module, rng, batch=(B,)):
    rows = module.num_layers * (2 if module.bidirectional else 1)
    out = module.proj_size or module.hidden_size
    h = torch.from_numpy(rng.normal(size=(rows, *batch, out)))
    if isinstance(module, torch.nn.LSTM):
        return h, torch.from_numpy(rng.normal(size=(rows, *batch, module.hidden_size)))
    return h


def run_torch(module, xs, hx=None):
    """The module on batch-major ``xs`` (NumPy); returns batch-major outputs."""
    x = torch.from_numpy(xs)
    if not module.batch_first and x.ndim == 3:
        x = x.transpose(0, 1)
    out, state = module(x, hx)
    if not module.batch_first and x.ndim == 3:
        out = out.transpose(0, 1)
    return out, state


def run_jax(module, xs, hx=None, dtype=jnp.float64, **kw):
    layer, params = jt.from_torch(module, dtype=dtype)
    carry = None
    if hx is not None:
        carry = jt.carry_from_torch(
            hx,
            mode=module.mode,
            num_layers=module.num_layers,
            bidirectional=module.bidirectional,
            dtype=dtype,
        )
    # One compilation instead of op-by-op dispatch keeps the file fast.
    final, ys = jax.jit(layer.apply)(params, jnp.asarray(xs, dtype), carry=carry, **kw)
    return final, ys


def assert_state_close(got, want, **tol):
    """``got`` from carry_to_torch, ``want`` PyTorch's h_n or (h_n, c_n)."""
    if isinstance(want, tuple):
        assert isinstance(got, tuple) and len(got) == 2
        for g, w in zip(got, want, strict=True):
            np.testing.assert_allclose(g.numpy(), w.detach().numpy(), **tol)
    else:
        np.testing.assert_allclose(got.numpy(), want.detach().numpy(), **tol)


# batch_first only changes the PyTorch side's layout, so it is varied on the deepest structure.
@pytest.mark.parametrize(
    "structure, batch_first",
    [(s, True) for s in STRUCTURES] + [((2, True), False)],
    ids=lambda v: f"L{v[0]}{'bi' if v[1] else ''}" if isinstance(v, tuple) else f"bf={v}",
)
@pytest.mark.parametrize("kind", KINDS)
def test_outputs_and_states_match_torch(kind, structure, batch_first):
    rng = np.random.default_rng(1)
    module = make_module(kind, *structure, batch_first=batch_first)
    xs = rng.normal(size=(B, T, I))
    hx = random_hx(module, rng)
    with torch.no_grad():
        out, state = run_torch(module, xs, hx)
    final, ys = run_jax(module, xs, hx)
    np.testing.assert_allclose(np.asarray(ys), out.numpy(), **TOL)
    assert_state_close(jt.carry_to_torch(final), state, **TOL)


@pytest.mark.parametrize("kind", KINDS)
def test_default_zero_state_and_no_bias_match_torch(kind):
    rng = np.random.default_rng(2)
    module = make_module(kind, 2, True, bias=False)
    xs = rng.normal(size=(B, T, I))
    with torch.no_grad():
        out, state = run_torch(module, xs)
    final, ys = run_jax(module, xs)
    np.testing.assert_allclose(np.asarray(ys), out.numpy(), **TOL)
    assert_state_close(jt.carry_to_torch(final), state, **TOL)
    # And back into another bias=False module: the b = 0 params fit it exactly.
    _, params = jt.from_torch(module, dtype=jnp.float64)
    other = jt.to_torch(params, make_module(kind, 2, True, bias=False, seed=1))
    for (name, a), (_, b) in zip(module.named_parameters(), other.named_parameters(), strict=True):
        np.testing.assert_array_equal(b.detach().numpy(), a.detach().numpy(), err_msg=name)


def test_unbatched_input_matches_torch():
    rng = np.random.default_rng(3)
    module = make_module("lstm_proj", 2, True)
    xs = rng.normal(size=(T, I))
    hx = random_hx(module, rng, batch=())
    with torch.no_grad():
        out, state = run_torch(module, xs, hx)
    final, ys = run_jax(module, xs, hx)
    np.testing.assert_allclose(np.asarray(ys), out.numpy(), **TOL)
    assert_state_close(jt.carry_to_torch(final), state, **TOL)


def test_float32_matches_torch():
    rng = np.random.default_rng(4)
    module = make_module("lstm", 2, True).float()
    xs = rng.normal(size=(B, T, I)).astype(np.float32)
    hx = tuple(h.float() for h in random_hx(module, rng))
    with torch.no_grad():
        out, state = run_torch(module, xs, hx)
    final, ys = run_jax(module, xs, hx, dtype=jnp.float32)
    assert ys.dtype == jnp.float32
    np.testing.assert_allclose(np.asarray(ys), out.numpy(), rtol=1e-5, atol=1e-5)
    assert_state_close(jt.carry_to_torch(final), state, rtol=1e-5, atol=1e-5)


def flat_carries(final):
    """The per-(layer, direction) carries in PyTorch's h_n row order."""
    rows = []
    for c in final:
        rows.extend((c.forward, c.backward) if isinstance(c, BidirectionalCarry) else (c,))
    return rows


@pytest.mark.parametrize("kind", KINDS)
def test_gradients_match_torch_backward(kind):
    rng = np.random.default_rng(5)
    module = make_module(kind, 2, True)
    xs = rng.normal(size=(B, T, I))
    hx = random_hx(module, rng)
    hx = tuple(h.requires_grad_() for h in hx) if isinstance(hx, tuple) else hx.requires_grad_()
    out, state = run_torch(module, xs, hx)
    R = rng.normal(size=out.shape)
    states = state if isinstance(state, tuple) else (state,)
    S = [rng.normal(size=s.shape) for s in states]
    loss = (out * torch.from_numpy(R)).sum()
    loss = loss + sum((s * torch.from_numpy(w)).sum() for s, w in zip(states, S, strict=True))
    loss.backward()

    layer, params = jt.from_torch(module, dtype=jnp.float64)
    carry = jt.carry_from_torch(
        tuple(h.detach() for h in hx) if isinstance(hx, tuple) else hx.detach(),
        mode=module.mode,
        num_layers=2,
        bidirectional=True,
        dtype=jnp.float64,
    )

    def jax_loss(params, carry):
        final, ys = layer.apply(params, jnp.asarray(xs), carry=carry)
        rows = flat_carries(final)
        total = jnp.sum(ys * R)
        for r, c in enumerate(rows):
            total = total + jnp.sum(c.h * S[0][r])
            if isinstance(c, jaxrnn.LSTMCarry):
                total = total + jnp.sum(c.c * S[1][r])
        return total

    np.testing.assert_allclose(float(jax_loss(params, carry)), loss.item(), **TOL)
    g_params, g_carry = jax.jit(jax.grad(jax_loss, argnums=(0, 1)))(params, carry)

    # Weights map by transposition; both torch biases receive b's gradient (b = b_ih + b_hh),
    # except the GRU's n block of bias_hh, which is b_hn.
    expected = jt.to_state_dict(g_params, mode=module.mode)
    for name, tensor in module.named_parameters():
        want = expected[name].numpy()
        if name.startswith("bias_hh"):
            want = expected[name.replace("bias_hh", "bias_ih")].numpy().copy()
            if kind == "gru":
                want[2 * H :] = expected[name].numpy()[2 * H :]
        np.testing.assert_allclose(want, tensor.grad.numpy(), err_msg=name, **TOL)
    if kind != "gru":  # the stated property, directly: both bias grads are equal
        np.testing.assert_allclose(
            module.bias_ih_l1_reverse.grad.numpy(), module.bias_hh_l1_reverse.grad.numpy(), **TOL
        )
    assert_state_close(jt.carry_to_torch(g_carry), _grads(hx), **TOL)


def _grads(hx):
    return tuple(h.grad for h in hx) if isinstance(hx, tuple) else hx.grad


@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("kind", KINDS)
def test_packed_sequences_match_lengths(kind, bidirectional):
    rng = np.random.default_rng(6)
    module = make_module(kind, 2, bidirectional)
    xs = rng.normal(size=(B, T, I))
    lengths = np.array([T, 2, 5, 1], dtype=np.int64)
    hx = random_hx(module, rng)
    packed = torch.nn.utils.rnn.pack_padded_sequence(
        torch.from_numpy(xs), torch.from_numpy(lengths), batch_first=True, enforce_sorted=False
    )
    with torch.no_grad():
        out_packed, state = module(packed, hx)
    out, _ = torch.nn.utils.rnn.pad_packed_sequence(out_packed, batch_first=True, total_length=T)
    final, ys = run_jax(module, xs, hx, lengths=jnp.asarray(lengths, jnp.int32))
    np.testing.assert_allclose(np.asarray(ys), out.numpy(), **TOL)
    assert_state_close(jt.carry_to_torch(final), state, **TOL)


def random_params(layer, key):
    """Params of ``layer.init``'s structure and shapes, every leaf random (b_hn included)."""
    shapes = jax.eval_shape(lambda k: layer.init(k, I), key)  # tracing only: eager init is slow
    rng = np.random.default_rng(10)
    return jax.tree.map(lambda s: jnp.asarray(rng.normal(size=s.shape)), shapes)


def assert_trees_equal(a, b):
    assert jax.tree.structure(a) == jax.tree.structure(b)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        assert x.dtype == y.dtype
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


@pytest.mark.parametrize("kind", KINDS)
def test_jaxrnn_to_torch_to_jaxrnn_is_exact(kind, key):
    module = make_module(kind, 2, True)
    layer, _ = jt.from_torch(module, dtype=jnp.float64)
    params = random_params(layer, key)
    weight_before = module.weight_ih_l0
    assert jt.to_torch(params, module) is module
    assert module.weight_ih_l0 is weight_before  # copied in place, not replaced
    _, back = jt.from_torch(module, dtype=jnp.float64)
    assert_trees_equal(back, params)
    # The state_dict path, with the class name as mode.
    state = jt.to_state_dict(params, mode=type(module).__name__)
    assert list(state) == [name for name, _ in module.named_parameters()]
    _, back = jt.from_state_dict(
        state,
        mode=module.mode,
        num_layers=2,
        bidirectional=True,
        proj_size=module.proj_size,
        dtype=jnp.float64,
    )
    assert_trees_equal(back, params)
    # And the module now computes what jaxrnn computes with these params.
    xs = np.random.default_rng(7).normal(size=(B, T, I))
    with torch.no_grad():
        out, _ = run_torch(module, xs)
    _, ys = jax.jit(layer.apply)(params, jnp.asarray(xs))
    np.testing.assert_allclose(np.asarray(ys), out.numpy(), **TOL)


@pytest.mark.parametrize("kind", KINDS)
def test_torch_to_jaxrnn_to_torch_keeps_the_function(kind):
    original = make_module(kind, 2, True)
    copy = make_module(kind, 2, True, seed=1)
    _, params = jt.from_torch(original, dtype=jnp.float64)
    jt.to_torch(params, copy)
    for (name, a), (_, b) in zip(original.named_parameters(), copy.named_parameters(), strict=True):
        a, b = a.detach().numpy(), b.detach().numpy()
        if name.startswith("weight"):
            np.testing.assert_array_equal(a, b)
    # The biases are re-split: all of b in bias_ih, zero in bias_hh (GRU: b_hn kept).
    b_ih = original.bias_ih_l1.detach().numpy()
    b_hh = original.bias_hh_l1.detach().numpy()
    if kind == "gru":
        want_ih = b_ih + np.concatenate([b_hh[: 2 * H], np.zeros(H)])
        want_hh = np.concatenate([np.zeros(2 * H), b_hh[2 * H :]])
    else:
        want_ih, want_hh = b_ih + b_hh, np.zeros_like(b_hh)
    np.testing.assert_allclose(copy.bias_ih_l1.detach().numpy(), want_ih, **TOL)
    np.testing.assert_array_equal(copy.bias_hh_l1.detach().numpy(), want_hh)
    xs = np.random.default_rng(8).normal(size=(B, T, I))
    with torch.no_grad():
        out_a, state_a = run_torch(original, xs)
        out_b, state_b = run_torch(copy, xs)
    np.testing.assert_allclose(out_b.numpy(), out_a.numpy(), **TOL)
    assert_state_close(state_b, state_a, **TOL)


def test_state_dict_path_equals_module_path():
    module = make_module("lstm_proj", 2, True)
    _, params_a = jt.from_torch(module, dtype=jnp.float64)
    state = {k: v.numpy() for k, v in module.state_dict().items()}  # NumPy works too
    layer_b, params_b = jt.from_state_dict(
        state, mode="LSTM", num_layers=2, bidirectional=True, proj_size=P, dtype=jnp.float64
    )
    assert_trees_equal(params_b, params_a)
    xs = np.random.default_rng(9).normal(size=(B, T, I))
    with torch.no_grad():
        out, _ = run_torch(module, xs)
    _, ys = jax.jit(layer_b.apply)(params_b, jnp.asarray(xs))
    np.testing.assert_allclose(np.asarray(ys), out.numpy(), **TOL)


def test_single_layer_is_still_a_stack():
    module = make_module("gru", 1, False)
    _, params = jt.from_torch(module, dtype=jnp.float64)
    assert isinstance(params, StackParams)
    assert len(params.layers) == 1 and isinstance(params.layers[0], jaxrnn.GRUParams)
    np.testing.assert_array_equal(params.layers[0].W_xh, module.weight_ih_l0.detach().numpy().T)


def test_dtype_default_is_float32():
    _, params = jt.from_torch(make_module("rnn_tanh").float())
    assert all(x.dtype == jnp.float32 for x in jax.tree.leaves(params))


def test_import_does_not_import_torch():
    code = "import jaxrnn, jaxrnn.interop.torch, sys; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_missing_torch_raises_import_error_with_install_command():
    code = (
        "import sys; sys.modules['torch'] = None\n"
        "from jaxrnn.interop import torch as jt\n"
        "try:\n"
        "    jt.from_torch(None)\n"
        "except ImportError as e:\n"
        "    assert 'pip install torch==2.13.0' in str(e) and 'jaxrnn[torch]' in str(e), e\n"
        "else:\n"
        "    raise AssertionError('no ImportError')\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_bad_inputs_raise_clear_errors():
    lstm2 = make_module("lstm", 2, True)
    state = lstm2.state_dict()
    with pytest.raises(TypeError, match=r"module: expected a torch.nn.RNN.*got Linear"):
        jt.from_torch(torch.nn.Linear(2, 2))
    with pytest.raises(ValueError, match=r"mode: expected one of .*got 'LSTMP'"):
        jt.from_state_dict(state, mode="LSTMP", num_layers=2, bidirectional=True)
    with pytest.raises(ValueError, match=r"state_dict: .*unexpected \['weight_ih_l1'"):
        jt.from_state_dict(state, mode="LSTM", num_layers=1, bidirectional=True)
    with pytest.raises(ValueError, match=r"state_dict: .*unexpected \['weight_ih_l0_reverse'"):
        jt.from_state_dict(state, mode="LSTM", num_layers=2, bidirectional=False)
    with pytest.raises(ValueError, match=r"state_dict: expected weight_hh_l0 of shape \(20, 5\)"):
        jt.from_state_dict(
            {**state, "weight_hh_l0": torch.zeros(20, 4)},
            mode="LSTM",
            num_layers=2,
            bidirectional=True,
        )
    with pytest.raises(ValueError, match=r"state_dict: expected weight_ih_l0 with a multiple of 3"):
        jt.from_state_dict(
            {"weight_ih_l0": torch.zeros(4, 3), "weight_hh_l0": torch.zeros(4, 4)},
            mode="GRU",
            num_layers=1,
        )
    with pytest.raises(ValueError, match=r"proj_size: only the LSTM .*got 2 for GRU"):
        jt.from_state_dict(state, mode="GRU", num_layers=2, bidirectional=True, proj_size=2)
    with pytest.raises(ValueError, match=r"num_layers: expected a positive int, got 0"):
        jt.from_state_dict(state, mode="LSTM", num_layers=0)
    with pytest.raises(TypeError, match=r"dtype: expected a floating dtype, got int32"):
        jt.from_torch(lstm2, dtype=jnp.int32)

    _, params = jt.from_torch(lstm2, dtype=jnp.float64)
    with pytest.raises(
        ValueError,
        match=r"params: expected weight_ih_l0 of shape \(28, 3\) \(LSTM\(3, 7.*got \(20, 3\)",
    ):
        jt.to_torch(params, torch.nn.LSTM(I, 7, num_layers=2, bidirectional=True))
    with pytest.raises(ValueError, match=r"params: .*missing \['weight_ih_l2'"):
        jt.to_torch(params, torch.nn.LSTM(I, H, num_layers=3, bidirectional=True))
    with pytest.raises(TypeError, match=r"params.layers\[0\].forward: expected GRUParams for GRU"):
        jt.to_torch(params, torch.nn.GRU(I, H, num_layers=2, bidirectional=True))
    with pytest.raises(ValueError, match=r"bias: expected zero biases in params.layers\[0\]"):
        jt.to_torch(params, torch.nn.LSTM(I, H, num_layers=2, bidirectional=True, bias=False))
    with pytest.raises(TypeError, match=r"params: expected StackParams .*got LSTMParams"):
        jt.to_state_dict(params.layers[0].forward, mode="LSTM")
    with pytest.raises(ValueError, match=r"params: expected .*all unidirectional or all bidi"):
        jt.to_state_dict(StackParams((params.layers[0], params.layers[1].forward)), mode="LSTM")
    z = np.zeros(H)
    peephole = jaxrnn.LSTMParams(
        np.zeros((I, 4 * H)), np.zeros((H, 4 * H)), np.zeros(4 * H), jaxrnn.LSTMPeephole(z, z, z)
    )
    with pytest.raises(ValueError, match=r"params.layers\[0\]: PyTorch's LSTM has no peepholes"):
        jt.to_state_dict(StackParams((peephole,)), mode="LSTM")
    classic = jaxrnn.GRUParams(np.zeros((I, 3 * H)), np.zeros((H, 3 * H)), np.zeros(3 * H), None)
    with pytest.raises(ValueError, match=r"params.layers\[0\]: PyTorch's GRU is gru\(reset_after"):
        jt.to_state_dict(StackParams((classic,)), mode="GRU")

    with pytest.raises(ValueError, match=r"hx: expected shape \[num_layers \* num_directions = 4"):
        jt.carry_from_torch(torch.zeros(2, B, H), mode="GRU", num_layers=2, bidirectional=True)
    with pytest.raises(TypeError, match=r"hx: expected a pair \(h_0, c_0\) for the LSTM"):
        jt.carry_from_torch(torch.zeros(2, B, H), mode="LSTM", num_layers=2)
    with pytest.raises(TypeError, match=r"hx: expected one tensor h_0 for RNN_TANH"):
        jt.carry_from_torch((torch.zeros(2, B, H),) * 2, mode="RNN", num_layers=2)
    with pytest.raises(TypeError, match=r"final_carry: expected a non-empty tuple"):
        jt.carry_to_torch(jaxrnn.GRUCarry(jnp.zeros((B, H))))
    with pytest.raises(TypeError, match=r"final_carry: expected ElmanCarry, GRUCarry or LSTMCarry"):
        jt.carry_to_torch(
            (jaxrnn.GRUCarry(jnp.zeros((B, H))), jaxrnn.ElmanCarry(jnp.zeros((B, H))))
        )
