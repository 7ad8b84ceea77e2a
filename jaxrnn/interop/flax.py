"""Flax interop: Flax's cells to jaxrnn cells and back, and each framework's cells in the other's.

Three seams:

* **Conversion** (:func:`from_flax`, :func:`to_flax`, :func:`carry_from_flax`,
  :func:`carry_to_flax`): a Flax ``LSTMCell`` / ``OptimizedLSTMCell`` / ``GRUCell`` /
  ``SimpleCell`` (``flax.linen`` or ``flax.nnx``) becomes ``jaxrnn.lstm`` / ``gru`` /
  ``elman`` with params computing the same function, and back.
* **A jaxrnn cell in Flax**: :class:`LinenCell` is a ``flax.linen.RNNCellBase`` and
  :class:`NNXCell` a ``flax.nnx.RNNCellBase``, so any :class:`jaxrnn.Cell` (stacks,
  dropout, learned initial carries...) runs inside ``nn.RNN`` / ``nnx.RNN``.
* **A Flax cell in jaxrnn**: :func:`flax_cell` wraps any Flax cell with one feature
  axis as a :class:`jaxrnn.Cell`, so :func:`jaxrnn.scan` rolls it with ``lengths``,
  masks with holes, ``resets``, ``reverse`` and ``remat``, which ``nn.RNN`` lacks.

The last two live in :mod:`jaxrnn.interop.flax_cells` and are imported from here.

Flax's dense layers are row-vector (``x @ kernel``) like jaxrnn's, so the conversion
only splits and concatenates gate blocks, in the order both share (LSTM ``(i, f, g, o)``,
GRU ``(r, z, n)``)::

    Flax (linen name; nnx attribute)            jaxrnn (x @ W)
    LSTMCell, linen OptimizedLSTMCell:
      i{g}.kernel [I, H]  (nnx: if_ for f)      W_xh = [ii | if | ig | io]          [I, 4H]
      h{g}.kernel [H, H]                        W_hh = [hi | hf | hg | ho]          [H, 4H]
      h{g}.bias   [H]                           b    = [hi | hf | hg | ho].bias     [4H]
    nnx OptimizedLSTMCell:
      dense_i.kernel [I, 4H]                    W_xh
      dense_h.kernel [H, 4H], dense_h.bias      W_hh, b
    linen GRUCell:
      i{g}.kernel [I, H], i{g}.bias [H]         W_xh = [ir | iz | in], b = [ir | iz | in].bias
      hr, hz, hn .kernel [H, H]                 W_hh = [hr | hz | hn]               [H, 3H]
      hn.bias [H]                               b_hn (inside the reset gate)
    nnx GRUCell:
      dense_i.kernel [I, 3H], dense_i.bias      W_xh, b
      dense_h.kernel [H, 3H] (no bias)          W_hh; b_hn = 0
    SimpleCell (nnx: dense_i, dense_h):
      i.kernel [I, H], i.bias [H]               W_xh, b
      h.kernel [H, H]                           W_hh  (+ identity if residual=True)

Both of Flax's GRUs are PyTorch's (``n = tanh(W_in x + b_in + r ⊙ (W_hn h + b_hn))``),
i.e. ``jaxrnn.gru(reset_after=True)``; ``flax.nnx.GRUCell`` has no ``b_hn`` (its
``dense_h`` has no bias), so jaxrnn params go into it only with ``b_hn = 0``.

Exactness: every mapping above is a split or a concatenation, so both round trips,
jaxrnn -> Flax -> jaxrnn and Flax -> jaxrnn -> Flax, give the same arrays bit for bit,
in the same dtype (:func:`to_flax` casts to the module's ``param_dtype``). The one
exception is ``SimpleCell(residual=True)``, whose ``h' = f(W_i x + b + W_h h + h)``
becomes ``W_hh = h.kernel + I``: equal functions, round trips equal to rounding.

Carries: Flax's LSTM carry is ``(c, h)``, jaxrnn's ``LSTMCarry(h, c)``;
:func:`carry_from_flax` and :func:`carry_to_flax` match them by name. The GRU's and
SimpleCell's carry is ``h``, jaxrnn's ``GRUCarry(h)`` / ``ElmanCarry(h)``.

Differences to keep in mind:
  * ``nn.RNN(..., seq_lengths=...)`` runs the cell over the padding too and returns its
    outputs there; :func:`jaxrnn.scan` returns zeros at padded steps. Final carries and
    outputs at valid steps agree.
  * Flax's ``dtype`` attribute (the computation dtype) is not carried over: a jaxrnn
    cell computes in its params' dtype, and its state in at least float32.
  * Converted LSTMs and GRUs must use Flax's default ``gate_fn`` (sigmoid) and
    ``activation_fn`` (tanh); a SimpleCell's ``activation_fn`` becomes the Elman
    cell's ``activation`` (by name when it is one of ``jaxrnn.ACTIVATIONS``).
  * The class must be exactly one of the four: a subclass may compute another function,
    so it is refused (it can still run under :func:`jaxrnn.scan` via :func:`flax_cell`).

Example:
  >>> from jaxrnn.interop import flax as jf
  >>> module = flax.linen.LSTMCell(16)
  >>> variables = module.init(key, module.initialize_carry(key, (8,)), jnp.zeros(8))
  >>> cell, params = jf.from_flax(module, variables)
  >>> final, ys = jaxrnn.scan(cell, params, xs, lengths=lengths)     # xs: [B, T, 8]
  >>> rnn = flax.linen.RNN(jf.LinenCell(jaxrnn.gru(16)))             # and the other way

References:
  Flax documentation, ``flax.linen.recurrent`` and ``flax.nnx.nn.recurrent``
  (equations and parameter layout), https://flax.readthedocs.io.
"""

from collections.abc import Mapping

import flax.linen as nn
import jax
import jax.numpy as jnp
from flax import nnx

from jaxrnn.cells.base import ACTIVATIONS, Cell
from jaxrnn.cells.elman import ElmanCarry, ElmanParams, elman
from jaxrnn.cells.gru import GRUCarry, GRUParams, gru
from jaxrnn.cells.lstm import LSTMCarry, LSTMParams, lstm
from jaxrnn.interop.entries import check_entries
from jaxrnn.interop.flax_cells import LinenCell, NNXCell, flax_cell

__all__ = [
    "LinenCell",
    "NNXCell",
    "carry_from_flax",
    "carry_to_flax",
    "flax_cell",
    "from_flax",
    "to_flax",
]

# The classes converted exactly, by their parameter layout (the table above).
_KINDS = {
    nn.LSTMCell: "lstm",
    nn.OptimizedLSTMCell: "lstm",
    nn.GRUCell: "gru",
    nn.SimpleCell: "simple",
    nnx.LSTMCell: "lstm",
    nnx.OptimizedLSTMCell: "lstm_fused",
    nnx.GRUCell: "gru_fused",
    nnx.SimpleCell: "simple",
}
_PARAMS = {
    "lstm": LSTMParams,
    "lstm_fused": LSTMParams,
    "gru": GRUParams,
    "gru_fused": GRUParams,
    "simple": ElmanParams,
}


def _class_name(module) -> str:
    return _class_name_of(type(module))


def _kind(module) -> str:
    kind = _KINDS.get(type(module))
    if kind is None:
        supported = sorted({_class_name_of(c) for c in _KINDS})
        raise TypeError(
            f"module: expected one of {supported} (exactly: a subclass may compute another "
            f"function; run it with flax_cell instead), got {type(module).__module__}."
            f"{type(module).__name__}"
        )
    return kind


def _class_name_of(cls) -> str:
    framework = "nnx" if issubclass(cls, nnx.Module) else "linen"
    return f"flax.{framework}.{cls.__name__}"


def _is_nnx(module) -> bool:
    return isinstance(module, nnx.Module)


def _hidden_size(module) -> int:
    return module.hidden_features if _is_nnx(module) else module.features


def _expected(module, kind, I, H) -> dict:
    """Flax's flat parameter names (``layer.leaf``) and shapes; the input kernel first."""
    if kind == "lstm":
        f = "if_" if _is_nnx(module) else "if"  # ``if`` is a Python keyword for nnx's attribute
        gates = ["i", f[1:], "g", "o"]
        out = {f"i{g}.kernel": (I, H) for g in gates}
        for g in "ifgo":
            out[f"h{g}.kernel"] = (H, H)
            out[f"h{g}.bias"] = (H,)
        return out
    if kind == "lstm_fused":
        return {
            "dense_i.kernel": (I, 4 * H),
            "dense_h.kernel": (H, 4 * H),
            "dense_h.bias": (4 * H,),
        }
    if kind == "gru":
        out = {f"i{g}.kernel": (I, H) for g in "rzn"}
        out.update({f"i{g}.bias": (H,) for g in "rzn"})
        out.update({f"h{g}.kernel": (H, H) for g in "rzn"})
        out["hn.bias"] = (H,)
        return out
    if kind == "gru_fused":
        return {
            "dense_i.kernel": (I, 3 * H),
            "dense_i.bias": (3 * H,),
            "dense_h.kernel": (H, 3 * H),
        }
    i, h = ("dense_i", "dense_h") if _is_nnx(module) else ("i", "h")
    return {f"{i}.kernel": (I, H), f"{i}.bias": (H,), f"{h}.kernel": (H, H)}


def _check_functions(module, kind) -> None:
    """Flax's LSTM and GRU take any ``gate_fn``/``activation_fn``; jaxrnn's are fixed."""
    if kind == "simple":
        return
    for attr, want in (("gate_fn", jax.nn.sigmoid), ("activation_fn", jnp.tanh)):
        got = getattr(module, attr)
        if got is not want:
            raise ValueError(
                f"module.{attr}: jaxrnn's {'LSTM' if 'lstm' in kind else 'GRU'} uses "
                f"{want.__module__}.{want.__name__} (Flax's default), got {got!r}"
            )


def _flat_linen(variables) -> dict:
    if not isinstance(variables, Mapping):
        raise TypeError(
            "variables: expected the module's variables, {'params': {...}} as module.init "
            f"returns (or their 'params'), got {type(variables).__name__}"
        )
    params = variables.get("params", variables)
    flat = {}
    for layer, leaves in params.items():
        if not isinstance(leaves, Mapping):
            raise TypeError(
                f"variables: expected a mapping of leaves (kernel, bias) under {layer!r}, "
                f"got {type(leaves).__name__}"
            )
        flat.update({f"{layer}.{leaf}": value for leaf, value in leaves.items()})
    return flat


def _flat_nnx(module) -> dict:
    state = nnx.state(module, nnx.Param)
    return {".".join(map(str, path)): v[...] for path, v in nnx.to_flat_state(state)}


def _cell(module, kind, H, dtype) -> Cell:
    if kind.startswith("lstm"):
        return lstm(H, dtype=dtype)
    if kind.startswith("gru"):
        return gru(H, dtype=dtype)  # reset_after=True: Flax's GRU
    fn = module.activation_fn
    name = next((n for n, f in ACTIVATIONS.items() if f is fn), None)
    return elman(H, activation=name or fn, dtype=dtype)


def _to_params(module, kind, a: dict, H):
    """jaxrnn params from Flax's flat arrays (checked, one dtype)."""
    cat = jnp.concatenate
    if kind == "lstm":
        f = "if_" if _is_nnx(module) else "if"
        W_xh = cat([a["ii.kernel"], a[f"{f}.kernel"], a["ig.kernel"], a["io.kernel"]], axis=1)
        W_hh = cat([a[f"h{g}.kernel"] for g in "ifgo"], axis=1)
        return LSTMParams(W_xh, W_hh, cat([a[f"h{g}.bias"] for g in "ifgo"]))
    if kind == "lstm_fused":
        return LSTMParams(a["dense_i.kernel"], a["dense_h.kernel"], a["dense_h.bias"])
    if kind == "gru":
        W_xh = cat([a[f"i{g}.kernel"] for g in "rzn"], axis=1)
        W_hh = cat([a[f"h{g}.kernel"] for g in "rzn"], axis=1)
        return GRUParams(W_xh, W_hh, cat([a[f"i{g}.bias"] for g in "rzn"]), a["hn.bias"])
    if kind == "gru_fused":
        W_hh = a["dense_h.kernel"]
        b_hn = jnp.zeros((H,), W_hh.dtype)  # nnx's dense_h has no bias
        return GRUParams(a["dense_i.kernel"], W_hh, a["dense_i.bias"], b_hn)
    i, h = ("dense_i", "dense_h") if _is_nnx(module) else ("i", "h")
    W_hh = a[f"{h}.kernel"]
    if module.residual:  # f(W_i x + b + W_h h + h) = f(W_i x + b + (W_h + I) h)
        W_hh = W_hh + jnp.eye(H, dtype=W_hh.dtype)
    return ElmanParams(a[f"{i}.kernel"], W_hh, a[f"{i}.bias"])


def _from_params(module, kind, p, H) -> dict:
    """Flax's flat arrays from jaxrnn params (type and extras already checked)."""
    if kind == "lstm":
        f = "if_" if _is_nnx(module) else "if"
        x, h, b = (jnp.split(w, 4, axis=-1) for w in (p.W_xh, p.W_hh, p.b))
        out = {f"i{g}.kernel": x[j] for j, g in enumerate(["i", f[1:], "g", "o"])}
        for j, g in enumerate("ifgo"):
            out[f"h{g}.kernel"], out[f"h{g}.bias"] = h[j], b[j]
        return out
    if kind == "lstm_fused":
        return {"dense_i.kernel": p.W_xh, "dense_h.kernel": p.W_hh, "dense_h.bias": p.b}
    if kind == "gru":
        x, h, b = (jnp.split(w, 3, axis=-1) for w in (p.W_xh, p.W_hh, p.b))
        out = {}
        for j, g in enumerate("rzn"):
            out[f"i{g}.kernel"], out[f"i{g}.bias"], out[f"h{g}.kernel"] = x[j], b[j], h[j]
        out["hn.bias"] = p.b_hn
        return out
    if kind == "gru_fused":
        return {"dense_i.kernel": p.W_xh, "dense_i.bias": p.b, "dense_h.kernel": p.W_hh}
    i, h = ("dense_i", "dense_h") if _is_nnx(module) else ("i", "h")
    W_hh = p.W_hh
    if module.residual:
        W_hh = W_hh - jnp.eye(W_hh.shape[0], dtype=W_hh.dtype)
    return {f"{i}.kernel": p.W_xh, f"{i}.bias": p.b, f"{h}.kernel": W_hh}


def _context(module, I, H) -> str:
    return f"a {_class_name(module)} with hidden size {H} and input size {I}"


def from_flax(module, variables=None, *, dtype=None):
    """A jaxrnn cell and params computing what the Flax cell ``module`` computes.

    Args:
      module: a ``flax.linen`` or ``flax.nnx`` ``LSTMCell``, ``OptimizedLSTMCell``,
        ``GRUCell`` or ``SimpleCell`` (exactly these classes; see the module docstring).
      variables: for a linen module, its variables (``module.init(...)``, or their
        ``'params'``); for an NNX module, None: it holds its own.
      dtype: the params' dtype; default the variables' own.

    Returns:
      ``(cell, params)``: ``jaxrnn.lstm(H)`` / ``gru(H)`` / ``elman(H, activation=...)``
      and its ``LSTMParams`` / ``GRUParams`` / ``ElmanParams``, so that
      ``cell.apply(params, carry_from_flax(c, module), x)`` equals ``module``'s step.
      Traceable: ``jax.grad`` through it gives the gradients of the Flax variables.
    """
    kind = _kind(module)
    H = _hidden_size(module)
    if _is_nnx(module):
        if variables is not None:
            raise TypeError(
                "variables: an NNX module holds its own variables, so expected None, got "
                f"{type(variables).__name__}"
            )
        flat = _flat_nnx(module)
        I = module.in_features
    else:
        if variables is None:
            raise TypeError(
                f"variables: expected the variables of the linen {type(module).__name__} "
                "(module.init(key, carry, x)), got None"
            )
        flat = _flat_linen(variables)
        first = next(iter(_expected(module, kind, 0, H)))
        if first not in flat or jnp.ndim(flat[first]) != 2:
            raise ValueError(
                f"variables: expected a 2-D entry {first!r} (the input kernel of "
                f"{_class_name(module)}), got entries {sorted(flat)}"
            )
        I = jnp.shape(flat[first])[0]
    expected = _expected(module, kind, I, H)
    where = "module" if _is_nnx(module) else "variables"
    check_entries(
        where, {k: jnp.shape(v) for k, v in flat.items()}, expected, _context(module, I, H)
    )
    _check_functions(module, kind)
    dtype = jnp.dtype(dtype if dtype is not None else jnp.result_type(flat[next(iter(expected))]))
    if not jnp.issubdtype(dtype, jnp.floating):
        raise TypeError(f"dtype: expected a floating dtype, got {dtype}")
    flat = {k: jnp.asarray(v).astype(dtype) for k, v in flat.items()}
    return _cell(module, kind, H, dtype), _to_params(module, kind, flat, H)


def to_flax(params, module):
    """jaxrnn params as ``module``'s variables (see the module docstring for the mapping).

    Args:
      params: ``LSTMParams`` / ``GRUParams`` / ``ElmanParams`` of the module's kind and
        sizes, without peepholes, projection or layer norm; a ``GRUParams`` has ``b_hn``
        (``gru(reset_after=True)``), zero for ``flax.nnx.GRUCell``.
      module: a Flax cell as in :func:`from_flax`.

    Returns:
      For a linen module, its variables ``{'params': {...}}`` in the module's
      ``param_dtype``, for ``module.apply``; for an NNX module, the module itself, its
      params overwritten in place (cast to each one's dtype).
    """
    kind = _kind(module)
    want = _PARAMS[kind]
    if type(params) is not want:
        raise TypeError(
            f"params: expected {want.__name__} for a {_class_name(module)}, "
            f"got {type(params).__name__}"
        )
    _check_functions(module, kind)
    name = _class_name(module)
    if kind.startswith("lstm") and not (
        params.peephole is None and params.W_hr is None and params.layer_norm is None
    ):
        raise ValueError(
            f"params: {name} has no peepholes, projection or layer norm; got "
            f"peephole={params.peephole is not None}, W_hr={params.W_hr is not None}, "
            f"layer_norm={params.layer_norm is not None}"
        )
    if kind.startswith("gru"):
        if params.b_hn is None:
            raise ValueError(f"params: {name} is gru(reset_after=True); got b_hn=None")
        if params.layer_norm is not None:
            raise ValueError(f"params: {name} has no layer norm; got layer_norm params")
        # The values can be checked only when concrete (not under jit).
        concrete = not isinstance(params.b_hn, jax.core.Tracer)
        if kind == "gru_fused" and concrete and bool(jnp.any(params.b_hn != 0)):
            largest = float(jnp.max(jnp.abs(params.b_hn)))
            raise ValueError(
                f"params.b_hn: {name} has no bias inside the reset gate (its dense_h has "
                f"none), so expected zeros, got max |b_hn| = {largest}; use "
                "flax.linen.GRUCell, which has one (hn.bias)"
            )
    H = _hidden_size(module)
    I = params.W_xh.shape[0]
    flat = _from_params(module, kind, params, H)
    if _is_nnx(module):
        context = _context(module, module.in_features, H)
        expected = _expected(module, kind, module.in_features, H)
    else:
        context = _context(module, I, H) + ", read from params.W_xh"
        expected = _expected(module, kind, I, H)
    check_entries("params", {k: tuple(v.shape) for k, v in flat.items()}, expected, context)
    if _is_nnx(module):
        for key, value in flat.items():
            layer, leaf = key.split(".")
            variable = getattr(getattr(module, layer), leaf)
            variable[...] = value.astype(variable.dtype)
        return module
    out = {}
    for key, value in flat.items():
        layer, leaf = key.split(".")
        out.setdefault(layer, {})[leaf] = value.astype(module.param_dtype)
    return {"params": out}


def carry_from_flax(carry, module):
    """A Flax cell's carry as the jaxrnn cell's: LSTM ``(c, h)`` -> ``LSTMCarry(h, c)``,
    GRU ``h`` -> ``GRUCarry(h)``, SimpleCell ``h`` -> ``ElmanCarry(h)``.

    Args:
      carry: ``module.initialize_carry(...)`` or a step's carry, ``[*batch, H]`` leaves.
      module: the Flax cell (as in :func:`from_flax`), which says what the carry is.
    """
    kind = _kind(module)
    H = _hidden_size(module)
    if kind.startswith("lstm"):
        if not isinstance(carry, tuple | list) or len(carry) != 2:
            raise TypeError(
                f"carry: expected Flax's LSTM carry, the pair (c, h), got {type(carry).__name__}"
            )
        c, h = (jnp.asarray(v) for v in carry)
        if c.shape != h.shape or c.ndim < 1 or c.shape[-1] != H:
            raise ValueError(
                f"carry: expected (c, h) both of shape [*batch, {H}], got {c.shape}, {h.shape}"
            )
        return LSTMCarry(h=h, c=c)
    if isinstance(carry, tuple | list):
        raise TypeError(f"carry: expected one array h for a {_class_name(module)}, got a tuple")
    h = jnp.asarray(carry)
    if h.ndim < 1 or h.shape[-1] != H:
        raise ValueError(f"carry: expected shape [*batch, {H}], got {h.shape}")
    return (GRUCarry if kind.startswith("gru") else ElmanCarry)(h)


def carry_to_flax(carry):
    """A jaxrnn carry as Flax's: ``LSTMCarry(h, c)`` -> ``(c, h)``; ``GRUCarry(h)`` and
    ``ElmanCarry(h)`` -> ``h``."""
    if isinstance(carry, LSTMCarry):
        return carry.c, carry.h
    if isinstance(carry, GRUCarry | ElmanCarry):
        return carry.h
    raise TypeError(
        f"carry: expected an LSTMCarry, GRUCarry or ElmanCarry, got {type(carry).__name__}"
    )
