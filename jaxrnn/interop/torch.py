"""PyTorch interop: ``nn.RNN`` / ``nn.GRU`` / ``nn.LSTM`` to jaxrnn layers and back.

Per layer ``k`` and direction (PyTorch's names end in ``_l{k}``, and ``_l{k}_reverse``
for the backward direction), with ``G`` fused gates (RNN 1, GRU 3, LSTM 4) in
PyTorch's order, which jaxrnn shares (GRU ``(r, z, n)``, LSTM ``(i, f, g, o)``)::

    PyTorch                          jaxrnn (row vectors, x @ W)
    weight_ih_l{k}  [G*H, I]         W_xh = weight_ih.T    [I, G*H]
    weight_hh_l{k}  [G*H, P]         W_hh = weight_hh.T    [P, G*H]
    weight_hr_l{k}  [P, H]           W_hr = weight_hr.T    [H, P]   (LSTM, proj_size=P > 0)
    bias_ih_l{k}, bias_hh_l{k} [G*H] RNN, LSTM: b = bias_ih + bias_hh
                                     GRU: b = bias_ih + [bias_hh_r, bias_hh_z, 0], b_hn = bias_hh_n

The GRU keeps ``b_hn`` apart because PyTorch adds it inside the reset gate,
``n = tanh(W_in x + b_in + r ⊙ (W_hn h + b_hn))``. Converting back puts all of
``b`` in ``bias_ih`` and zeros in ``bias_hh`` (GRU: ``b_hn`` in its ``n`` block).
So jaxrnn -> PyTorch -> jaxrnn gives the same params exactly, while
PyTorch -> jaxrnn -> PyTorch gives the same function, not the same bias split.
A module with ``bias=False`` becomes params with ``b = 0`` (and ``b_hn = 0``).

The layer is always ``stack_layers(*layers)``, each layer ``rnn(cell)`` or
``bidirectional(cell, cell)``, even for ``num_layers=1``: params are
``StackParams(layers=(p_0, ..., p_{L-1}))`` and the final carry a tuple with one
entry per layer whatever ``num_layers``, so code need not special-case depth.

Differences to keep in mind:
  * jaxrnn layers are batch-major (``xs: [B, T, I]``); for ``batch_first=False``
    modules transpose ``[T, B, I]`` inputs and outputs.
  * PyTorch's ``h_n: [num_layers * num_directions, B, H_out]`` (row ``k * D + d``)
    and ``(h_n, c_n)`` for the LSTM map to the per-layer carries with
    :func:`carry_from_torch` / :func:`carry_to_torch`; ``h`` and ``c`` are matched
    by name (``LSTMCarry(h, c)``), never by position.
  * Dropout between layers is not converted: the jaxrnn layer computes what the
    module computes in ``eval()`` mode.
  * Variable lengths: ``layer.apply(..., lengths=lengths)`` equals the module on
    ``pack_padded_sequence(xs, lengths)``, with zeros at padded steps.

PyTorch is imported inside the functions that need it, so importing this module
does not import PyTorch.

Example:
  >>> from jaxrnn.interop import torch as jt
  >>> module = torch.nn.LSTM(8, 16, num_layers=2, bidirectional=True, batch_first=True)
  >>> layer, params = jt.from_torch(module)
  >>> h_n, c_n = jt.carry_to_torch(layer.apply(params, xs)[0])   # xs: [B, T, 8]

References:
  PyTorch documentation, ``torch.nn.RNN``, ``torch.nn.GRU``, ``torch.nn.LSTM``
  (equations and parameter layout), https://pytorch.org/docs/stable/nn.html#recurrent-layers.
  Sak, Senior, Beaufays (2014). Long Short-Term Memory Recurrent Neural Network
  Architectures for Large Scale Acoustic Modeling (LSTMP, ``proj_size``). Interspeech.
"""

from collections import OrderedDict

import jax.numpy as jnp
import numpy as np

from jaxrnn.cells.base import check_positive
from jaxrnn.cells.elman import ElmanCarry, ElmanParams, elman
from jaxrnn.cells.gru import GRUCarry, GRUParams, gru
from jaxrnn.cells.lstm import LSTMCarry, LSTMParams, lstm
from jaxrnn.combinators.layer import (
    BidirectionalCarry,
    BidirectionalParams,
    bidirectional,
    rnn,
    stack_layers,
)
from jaxrnn.combinators.stack import StackParams
from jaxrnn.interop.entries import check_entries

# Gates per mode; PyTorch's ``RNNBase.mode`` values.
_GATES = {"RNN_TANH": 1, "RNN_RELU": 1, "GRU": 3, "LSTM": 4}
# Class names accepted as modes; a bare "RNN" has PyTorch's default nonlinearity, tanh.
_CLASS_MODES = {"RNN": "RNN_TANH", "GRU": "GRU", "LSTM": "LSTM"}
_PARAMS = {"RNN_TANH": ElmanParams, "RNN_RELU": ElmanParams, "GRU": GRUParams, "LSTM": LSTMParams}
_CARRIES = {"RNN_TANH": ElmanCarry, "RNN_RELU": ElmanCarry, "GRU": GRUCarry, "LSTM": LSTMCarry}

_INSTALL = (
    "jaxrnn.interop.torch needs PyTorch, which is not installed: run "
    "`pip install 'jaxrnn[torch]'` (on the CI machine: `pip install torch==2.13.0`)"
)


def _import_torch():
    try:
        import torch
    except ImportError as e:
        raise ImportError(_INSTALL) from e
    return torch


def _check_mode(mode) -> str:
    if not isinstance(mode, str):
        raise TypeError(f"mode: expected a str such as 'LSTM', got {type(mode).__name__}")
    if mode in _GATES:
        return mode
    if mode in _CLASS_MODES:
        return _CLASS_MODES[mode]
    raise ValueError(
        f"mode: expected one of {sorted(_GATES)} or a class name {sorted(_CLASS_MODES)}, "
        f"got {mode!r}"
    )


def _check_module(torch, module) -> None:
    if not isinstance(module, torch.nn.RNN | torch.nn.GRU | torch.nn.LSTM):
        raise TypeError(
            "module: expected a torch.nn.RNN, torch.nn.GRU or torch.nn.LSTM, "
            f"got {type(module).__name__}"
        )


def _check_dtype(dtype) -> jnp.dtype:
    dtype = jnp.dtype(dtype)
    if not jnp.issubdtype(dtype, jnp.floating):
        raise TypeError(f"dtype: expected a floating dtype, got {dtype}")
    return dtype


def _to_numpy(value) -> np.ndarray:
    """A torch tensor, NumPy or JAX array as float64 NumPy (exact for every float dtype)."""
    if hasattr(value, "detach"):  # a torch tensor; bfloat16 has no NumPy view, float64 does
        value = value.detach().cpu().double().numpy()
    return np.asarray(value, dtype=np.float64)


def _to_tensor(torch, x):
    a = np.asarray(x)
    if a.dtype == jnp.bfloat16:  # NumPy has no bfloat16 that torch can read
        return torch.from_numpy(a.astype(np.float32)).to(torch.bfloat16)
    return torch.from_numpy(np.array(a))  # a copy: JAX's buffers are read-only


def _suffix(layer: int, direction: int) -> str:
    return f"_l{layer}" + ("_reverse" if direction else "")


def _expected_shapes(mode, input_size, hidden_size, num_layers, num_directions, proj_size, bias):
    """PyTorch's parameter names and shapes, in the module's own order."""
    G, H = _GATES[mode], hidden_size
    out_size = proj_size or H
    shapes = OrderedDict()
    for k in range(num_layers):
        layer_input = input_size if k == 0 else num_directions * out_size
        for d in range(num_directions):
            s = _suffix(k, d)
            shapes["weight_ih" + s] = (G * H, layer_input)
            shapes["weight_hh" + s] = (G * H, out_size)
            if bias:
                shapes["bias_ih" + s] = (G * H,)
                shapes["bias_hh" + s] = (G * H,)
            if proj_size:
                shapes["weight_hr" + s] = (proj_size, H)
    return shapes


def _cell(mode, hidden_size, proj_size):
    if mode == "GRU":
        return gru(hidden_size)  # reset_after=True is PyTorch's GRU
    if mode == "LSTM":
        return lstm(hidden_size, projection_size=proj_size or None)
    return elman(hidden_size, activation="tanh" if mode == "RNN_TANH" else "relu")


def _cell_params(mode, arrays, suffix, hidden_size, bias, dtype):
    """One direction of one layer, from float64 NumPy arrays."""
    G, H = _GATES[mode], hidden_size

    def cast(x):
        return jnp.asarray(x, dtype)

    W_xh = cast(arrays["weight_ih" + suffix].T)
    W_hh = cast(arrays["weight_hh" + suffix].T)
    if bias:
        b_ih, b_hh = arrays["bias_ih" + suffix], arrays["bias_hh" + suffix]
    else:
        b_ih = b_hh = np.zeros((G * H,))
    if mode == "GRU":
        # bias_hh_n sits inside r ⊙ (W_hn h + b_hn), so only the r and z blocks fold into b.
        b = b_ih + np.concatenate([b_hh[: 2 * H], np.zeros((H,))])
        return GRUParams(W_xh, W_hh, cast(b), b_hn=cast(b_hh[2 * H :]))
    if mode == "LSTM":
        W_hr = arrays.get("weight_hr" + suffix)
        return LSTMParams(
            W_xh, W_hh, cast(b_ih + b_hh), W_hr=None if W_hr is None else cast(W_hr.T)
        )
    return ElmanParams(W_xh, W_hh, cast(b_ih + b_hh))


def _build(mode, hidden_size, num_layers, bidirectional_, proj_size):
    cell = _cell(mode, hidden_size, proj_size)
    make = (lambda: bidirectional(cell, cell)) if bidirectional_ else (lambda: rnn(cell))
    return stack_layers(*(make() for _ in range(num_layers)))


def from_state_dict(
    state_dict,
    *,
    mode: str,
    num_layers: int,
    bidirectional: bool = False,
    proj_size: int = 0,
    dtype=jnp.float32,
):
    """A jaxrnn layer and params from a PyTorch RNN/GRU/LSTM ``state_dict``.

    ``input_size``, ``hidden_size`` and ``bias`` are read from the shapes and keys
    (``weight_ih_l0``, ``weight_hh_l0``, ``bias_ih_l0``); see the module docstring
    for the mapping.

    Args:
      state_dict: ``module.state_dict()``, or any mapping from PyTorch's parameter
        names to tensors or arrays.
      mode: ``"RNN_TANH"``, ``"RNN_RELU"``, ``"GRU"``, ``"LSTM"`` (PyTorch's
        ``module.mode``) or a class name ``"RNN"`` (= ``"RNN_TANH"``), ``"GRU"``, ``"LSTM"``.
      num_layers, bidirectional, proj_size: the module's hyperparameters.
      dtype: the params' dtype (``float64`` for modules made ``.double()``).

    Returns:
      ``(layer, params)``: ``layer = stack_layers(...)`` of ``rnn(cell)`` or
      ``bidirectional(cell, cell)`` layers and ``params = StackParams(layers)``.
    """
    mode = _check_mode(mode)
    check_positive("num_layers", num_layers)
    if not isinstance(proj_size, int) or isinstance(proj_size, bool) or proj_size < 0:
        raise ValueError(f"proj_size: expected an int >= 0, got {proj_size!r}")
    if proj_size and mode != "LSTM":
        raise ValueError(f"proj_size: only the LSTM has a projection, got {proj_size} for {mode}")
    dtype = _check_dtype(dtype)
    arrays = {name: _to_numpy(value) for name, value in state_dict.items()}
    for name in ("weight_ih_l0", "weight_hh_l0"):
        if name not in arrays or arrays[name].ndim != 2:
            raise ValueError(
                f"state_dict: expected a 2-D entry {name!r}, got keys {sorted(arrays)}"
            )
    G = _GATES[mode]
    rows, input_size = arrays["weight_ih_l0"].shape
    if rows % G:
        raise ValueError(
            f"state_dict: expected weight_ih_l0 with a multiple of {G} rows ({G} gates "
            f"for {mode}), got shape {arrays['weight_ih_l0'].shape}"
        )
    H = rows // G
    if proj_size >= H:
        raise ValueError(f"proj_size: expected a value < hidden_size={H}, got {proj_size}")
    bias = "bias_ih_l0" in arrays
    D = 2 if bidirectional else 1
    expected = _expected_shapes(mode, input_size, H, num_layers, D, proj_size, bias)
    context = (
        f"a {mode} with input_size={input_size}, hidden_size={H}, num_layers={num_layers}, "
        f"bidirectional={bidirectional}, proj_size={proj_size}, bias={bias}"
    )
    check_entries("state_dict", {k: v.shape for k, v in arrays.items()}, expected, context)
    layers = []
    for k in range(num_layers):
        dirs = [_cell_params(mode, arrays, _suffix(k, d), H, bias, dtype) for d in range(D)]
        layers.append(BidirectionalParams(*dirs) if bidirectional else dirs[0])
    return _build(mode, H, num_layers, bidirectional, proj_size), StackParams(tuple(layers))


def from_torch(module, *, dtype=jnp.float32):
    """A jaxrnn layer and params computing what ``module`` computes in ``eval()`` mode.

    Args:
      module: a ``torch.nn.RNN``, ``torch.nn.GRU`` or ``torch.nn.LSTM`` with any
        ``num_layers``, ``bidirectional``, ``nonlinearity``, ``proj_size``, ``bias``
        and ``batch_first`` (the jaxrnn layer is always batch-major).
      dtype: the params' dtype (``float64`` for modules made ``.double()``).

    Returns:
      ``(layer, params)`` as :func:`from_state_dict`: ``layer.apply(params, xs, carry=...,
      lengths=...)`` returns ``(final_carry, ys)`` with ``ys`` = the module's output
      (batch-major) and ``carry_to_torch(final_carry)`` = its ``h_n`` (``(h_n, c_n)``).

    Example:
      >>> layer, params = from_torch(torch.nn.GRU(8, 16, num_layers=2))
    """
    torch = _import_torch()
    _check_module(torch, module)
    return from_state_dict(
        module.state_dict(),
        mode=module.mode,
        num_layers=module.num_layers,
        bidirectional=module.bidirectional,
        proj_size=module.proj_size,
        dtype=dtype,
    )


def _layer_directions(params):
    """``params.layers`` as a list of per-layer direction lists, checked."""
    if not isinstance(params, StackParams):
        raise TypeError(
            "params: expected StackParams (from from_torch or stack_layers(...).init), "
            f"got {type(params).__name__}"
        )
    layers = [
        [p.forward, p.backward] if isinstance(p, BidirectionalParams) else [p]
        for p in params.layers
    ]
    if not layers or len({len(dirs) for dirs in layers}) != 1:
        raise ValueError(
            "params: expected one or more layers, all unidirectional or all bidirectional "
            f"(as in PyTorch), got directions per layer {[len(d) for d in layers]}"
        )
    return layers


def _torch_arrays(mode, p, where, bias):
    """PyTorch's arrays for one direction of one layer (suffix-free names)."""
    expected_type = _PARAMS[mode]
    if type(p) is not expected_type:
        raise TypeError(
            f"{where}: expected {expected_type.__name__} for {mode}, got {type(p).__name__}"
        )
    out = {"weight_ih": np.asarray(p.W_xh).T, "weight_hh": np.asarray(p.W_hh).T}
    b = np.asarray(p.b)
    hn = None
    if mode == "GRU":
        if p.b_hn is None:
            raise ValueError(f"{where}: PyTorch's GRU is gru(reset_after=True); got b_hn=None")
        if p.layer_norm is not None:
            raise ValueError(f"{where}: PyTorch's GRU has no layer norm; got layer_norm params")
        hn = np.asarray(p.b_hn)
    if mode == "LSTM":
        if p.peephole is not None or p.layer_norm is not None:
            raise ValueError(
                f"{where}: PyTorch's LSTM has no peepholes or layer norm; got "
                f"peephole={p.peephole is not None}, layer_norm={p.layer_norm is not None}"
            )
        if p.W_hr is not None:
            out["weight_hr"] = np.asarray(p.W_hr).T
    if bias:
        out["bias_ih"] = b
        out["bias_hh"] = np.zeros_like(b)
        if hn is not None:
            out["bias_hh"][2 * hn.shape[0] :] = hn
    elif np.any(b != 0) or (hn is not None and np.any(hn != 0)):
        raise ValueError(f"bias: expected zero biases in {where} for bias=False, got non-zero")
    return out


def to_state_dict(params, *, mode: str, bias: bool = True):
    """PyTorch's ``state_dict`` for jaxrnn params (see the module docstring for the mapping).

    Sizes, ``num_layers``, ``bidirectional`` and ``proj_size`` are read from ``params``.

    Args:
      params: ``StackParams`` whose layers are all cell params or all
        ``BidirectionalParams`` (as :func:`from_torch` returns).
      mode: as in :func:`from_state_dict`; must match the params' cell type.
      bias: the module's ``bias``; with ``bias=False`` every ``b`` (and ``b_hn``) must be 0.

    Returns:
      An ``OrderedDict`` of torch tensors in the params' dtype and PyTorch's
      parameter order, for ``module.load_state_dict``. ``b`` goes to ``bias_ih``
      and ``bias_hh`` is zero (GRU: ``b_hn`` in its ``n`` block).
    """
    torch = _import_torch()
    mode = _check_mode(mode)
    layers = _layer_directions(params)
    arrays = {}
    for k, dirs in enumerate(layers):
        for d, p in enumerate(dirs):
            where = f"params.layers[{k}]" + (
                "" if len(dirs) == 1 else f".{('forward', 'backward')[d]}"
            )
            s = _suffix(k, d)
            arrays.update({n + s: a for n, a in _torch_arrays(mode, p, where, bias).items()})
    first = layers[0][0]
    input_size, H = first.W_xh.shape[0], first.W_xh.shape[1] // _GATES[mode]
    proj_size = first.W_hr.shape[1] if getattr(first, "W_hr", None) is not None else 0
    expected = _expected_shapes(mode, input_size, H, len(layers), len(layers[0]), proj_size, bias)
    context = (
        f"a {mode} with input_size={input_size}, hidden_size={H}, num_layers={len(layers)}, "
        f"bidirectional={len(layers[0]) == 2}, proj_size={proj_size} (read from layer 0)"
    )
    check_entries("params", {n: a.shape for n, a in arrays.items()}, expected, context)
    return OrderedDict((n, _to_tensor(torch, arrays[n])) for n in expected)


def to_torch(params, module):
    """Copy jaxrnn params into ``module`` in place (any dtype is cast to the module's).

    Args:
      params: as for :func:`to_state_dict`, with the module's sizes.
      module: a ``torch.nn.RNN``, ``torch.nn.GRU`` or ``torch.nn.LSTM``.

    Returns:
      ``module``, whose ``eval()`` outputs now equal ``layer.apply(params, ...)``.
    """
    torch = _import_torch()
    _check_module(torch, module)
    state = to_state_dict(params, mode=module.mode, bias=module.bias)
    D = 2 if module.bidirectional else 1
    expected = _expected_shapes(
        module.mode,
        module.input_size,
        module.hidden_size,
        module.num_layers,
        D,
        module.proj_size,
        module.bias,
    )
    check_entries("params", {n: tuple(t.shape) for n, t in state.items()}, expected, repr(module))
    with torch.no_grad():
        for name, value in state.items():
            getattr(module, name).copy_(value)  # in place: optimisers keep their references
    return module


def _check_hx(name, h, rows):
    if h.ndim not in (2, 3) or h.shape[0] != rows:
        raise ValueError(
            f"{name}: expected shape [num_layers * num_directions = {rows}, B, H] "
            f"(or [{rows}, H] unbatched), got {h.shape}"
        )


def carry_from_torch(
    hx, *, mode: str, num_layers: int, bidirectional: bool = False, dtype=jnp.float32
):
    """PyTorch's initial state ``hx`` as the ``carry`` of the layer :func:`from_torch` returns.

    Args:
      hx: ``h_0: [num_layers * D, B, H_out]`` (``D = 2`` if bidirectional; row ``k * D + d``
        is layer ``k``, direction ``d``), or for the LSTM the pair ``(h_0, c_0)`` with
        ``c_0: [num_layers * D, B, H]``. Unbatched ``[num_layers * D, H]`` also works.
      mode, num_layers, bidirectional: the module's (``mode`` as in :func:`from_state_dict`).
      dtype: the carry dtype, that of the params.

    Returns:
      A tuple with one carry per layer: ``ElmanCarry(h)``, ``GRUCarry(h)``,
      ``LSTMCarry(h, c)``, or ``BidirectionalCarry(forward, backward)`` of them.
    """
    mode = _check_mode(mode)
    check_positive("num_layers", num_layers)
    dtype = _check_dtype(dtype)
    D = 2 if bidirectional else 1
    rows = num_layers * D
    if mode == "LSTM":
        if not isinstance(hx, tuple | list) or len(hx) != 2:
            raise TypeError(f"hx: expected a pair (h_0, c_0) for the LSTM, got {type(hx).__name__}")
        h, c = (_to_numpy(v) for v in hx)
        _check_hx("hx[0] (h_0)", h, rows)
        _check_hx("hx[1] (c_0)", c, rows)
        if h.shape[1:-1] != c.shape[1:-1]:
            raise ValueError(
                f"hx: expected h_0 and c_0 with one batch shape, got {h.shape}, {c.shape}"
            )

        def carry(i):
            return LSTMCarry(h=jnp.asarray(h[i], dtype), c=jnp.asarray(c[i], dtype))
    else:
        if isinstance(hx, tuple | list):
            raise TypeError(f"hx: expected one tensor h_0 for {mode}, got a {type(hx).__name__}")
        h = _to_numpy(hx)
        _check_hx("hx", h, rows)

        def carry(i):
            return _CARRIES[mode](jnp.asarray(h[i], dtype))

    if bidirectional:
        return tuple(BidirectionalCarry(carry(k * D), carry(k * D + 1)) for k in range(num_layers))
    return tuple(carry(k) for k in range(num_layers))


def carry_to_torch(final_carry):
    """The final carry of the layer :func:`from_torch` returns, as PyTorch's ``h_n``.

    Args:
      final_carry: a tuple with one carry per layer, as ``layer.apply`` returns.

    Returns:
      ``h_n: [num_layers * D, B, H_out]`` (row ``k * D + d``), or ``(h_n, c_n)`` for
      the LSTM, as torch tensors in the carry's dtype.
    """
    torch = _import_torch()
    # A bare cell carry is a NamedTuple too; the stack's final carry is a plain tuple.
    if type(final_carry) is not tuple or not final_carry:
        raise TypeError(
            "final_carry: expected a non-empty tuple with one carry per layer (as layer.apply "
            f"returns), got {type(final_carry).__name__}"
        )
    flat = []
    for c in final_carry:
        flat.extend((c.forward, c.backward) if isinstance(c, BidirectionalCarry) else (c,))
    kinds = {type(c) for c in flat}
    if len(kinds) != 1 or not kinds <= {ElmanCarry, GRUCarry, LSTMCarry}:
        raise TypeError(
            "final_carry: expected ElmanCarry, GRUCarry or LSTMCarry in every layer, "
            f"got {sorted(k.__name__ for k in kinds)}"
        )
    h_n = _to_tensor(torch, np.stack([np.asarray(c.h) for c in flat]))
    if isinstance(flat[0], LSTMCarry):
        return h_n, _to_tensor(torch, np.stack([np.asarray(c.c) for c in flat]))
    return h_n
