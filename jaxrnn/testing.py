"""Conformance checks for your own cell: :func:`check_cell` and :func:`check_tree_cell`.

``check_cell(cell)`` checks, in float64, at random params, inputs, initial carries
and cotangents, that a :class:`jaxrnn.Cell` has the properties the built-in cells are
tested for, and raises an ``AssertionError`` naming the property, the leaf, the error
and its tolerance when one fails:

====================== ================================================================
``loop``               :func:`jaxrnn.scan` equals the Python loop over ``cell.apply`` that
                       its docstring gives as its semantics (holes, padding, resets,
                       forwards and in reverse), and so does the plain call
                       ``jaxrnn.scan(cell, params, xs, carry)`` (default engine)
``holes``              a mask with holes equals the compacted sequence (valid steps only)
``resets``             resets equal separate runs of the packed pieces (the loop
                       restarting from the initial carry at each)
``reverse``            ``reverse=True`` within ``lengths`` equals the flipped valid prefixes
``engine[fused]``      ``bptt="fused"`` equals autodiff (if the cell declares ``step``)
``engine[parallel]``   ``mode="parallel"`` equals the sequential scan (if it declares
                       ``linear``)
``finite_differences`` the plain call's gradients equal central differences, along a
                       random direction in each leaf of the params, the inputs and the
                       initial carry, and one along all of them
``vmap``               ``jax.vmap`` of the one-sequence rollout equals the batched one
                       (values)
====================== ================================================================

Each compares the final carry, the outputs, and the gradients with respect to the
params, the inputs and the initial carry of a random projection ``L = <dc, final
carry> + <dy, ys>``. The initial carry is ``initial_carry(params) + δ`` for a random
``δ``, so that a learned initial carry (:func:`jaxrnn.learned_initial_carry`) gets its
gradient checked too.

How. The oracle is :func:`loop`, the docstring's loop, run forwards. Each property's
rows are a group of one batch and reach the oracle rearranged: a compacted sequence is
its valid steps in order then idle steps, a reversed one its time-flipped valid prefix,
a reversed rollout with resets restarts after the step that began each sequence
(``resets[t+1]``); the oracle's outputs are put back in place. So ``jaxrnn.scan`` runs
once per engine over the forward batch and once over the reverse batch, and the whole
check is one compiled program: XLA's compilation is most of its cost. The params'
gradients are compared summed over a batch's rows (property ``loop+holes+resets``);
only if that fails is the check run again with one cotangent per property, to name it.

Error model. A rollout of ``T`` steps rounds at every step, and the error made at step
``t`` reaches step ``T`` through the Jacobians ``∂c_T/∂c_t``; while their norms stay near
or below 1 (or the values grow with them), two ways of computing the same rollout and
its BPTT differ by about ``T · eps · |value|``. So every leaf must satisfy::

    max |got - ref| <= rtol · max(1, max |ref|),     rtol = ROUNDING · T · eps(float64)

with ``ROUNDING = 64``, some 35 times the largest error of the built-in cells,
``1.8 · T · eps · |value|`` (the LSTM with peephole, projection and layer norm). A
recurrence whose Jacobians expand (norm ``ρ > 1``, chaotic dynamics) loses about
``log10 ρ`` digits a step: pass a larger ``rtol``, or fewer ``steps``. Central
differences along a unit direction, extrapolated from steps ``h`` and ``h/2`` (Richardson),
err by ``O(h⁴ |L⁽⁵⁾|) + ~eps |L| / h``, about ``1e-9`` at ``h = 1e-5`` (plain central
differences erred by up to 0.75 of the tolerance on the LSTM with layer norm, whose
curvature is large); they must agree within ``fd_rtol · max(1, |L|, |dL|)``,
``fd_rtol = 1e-6``. A real bug errs by the order of the value itself, far above both.

Randomised cells keep a PRNG key in the carry (:func:`jaxrnn.variational_dropout`,
:func:`jaxrnn.zoneout`). Every rollout and the loop start from the same key
(``carry_key``), so their random masks agree. Such per-rollout leaves (a key, or a leaf
without the batch dims) are left to the cell by masks and resets, so where they advance
every step (zoneout's key) a hole is *not* a skipped step: ``holes``, ``resets`` and
``reverse`` then run on the evaluation carry (``key=None``). And since a draw for a
batch differs from the draw for one sequence, ``vmap`` then compares with the loop,
vmapped. The report's ``skipped`` says so.
"""

import math
from functools import partial
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.tree_util import keystr, tree_flatten_with_path

from jaxrnn.rollout.scan import scan
from jaxrnn.rollout.steps import is_key
from jaxrnn.trees.builders import batch_trees, from_nested
from jaxrnn.trees.evaluation import evaluate

ROUNDING = 64  # c in rtol = c · T · eps; the built-in cells reach c = 1.8
FD_RTOL = 1e-6  # extrapolated central differences at FD_STEP err by ~1e-9
FD_STEP = 1e-5  # truncation (h⁴, extrapolated) and rounding (eps / h) both small
NOISE = 0.5  # params: init + NOISE · RMS (1 where zero) · N(0, 1); carries: + NOISE · N(0, 1)
AUTODIFF = {"mode": "sequential", "bptt": "autodiff"}
# A check's arrays are tiny and its time is XLA's compilation: LLVM at -O0 compiles
# the check's program about 40% faster on CPU (measured on the built-in cells).
CPU_COMPILER_OPTIONS = {"xla_backend_optimization_level": 0}


class Check(NamedTuple):
    """A property's worst leaf: ``error`` = max |got - ref| there, and its ``tolerance``."""

    leaf: str
    error: float
    tolerance: float


class Report(NamedTuple):
    """What :func:`check_cell` or :func:`check_tree_cell` checked.

    Attributes:
      checks: property -> its worst leaf (:class:`Check`), each within tolerance;
        ``loop+holes+resets``: the params' gradients summed over those rows.
      skipped: property -> why it did not apply, or what it ran on instead.
    """

    checks: dict[str, Check]
    skipped: dict[str, str]

    def __str__(self) -> str:
        lines = [
            f"{p:22s} {c.error:9.2e} <= {c.tolerance:8.2e}  {c.leaf}"
            for p, c in self.checks.items()
        ]
        return "\n".join(lines + [f"{p:22s} {why}" for p, why in self.skipped.items()])


def default_rtol(steps: int, dtype=jnp.float64) -> float:
    """``ROUNDING · steps · eps(dtype)``: the tolerance of a ``steps``-step rollout."""
    return ROUNDING * steps * float(jnp.finfo(dtype).eps)


def _jit(fn):
    return jax.jit(
        fn, compiler_options=CPU_COMPILER_OPTIONS if jax.default_backend() == "cpu" else None
    )


# ----------------------------------------------------------------------------- pytrees


def _inexact(x) -> bool:
    return x is not None and jnp.issubdtype(x.dtype, jnp.inexact)


def _none(x) -> bool:
    return x is None


def _split(tree):
    """``(floats, rest)``, each with None where the other holds the leaf: the floats are
    differentiated, the rest (keys, integers) passed through."""
    floats = jax.tree.map(lambda x: x if _inexact(x) else None, tree)
    return floats, jax.tree.map(lambda x: None if _inexact(x) else x, tree)


def _join(floats, rest):
    return jax.tree.map(lambda f, r: r if f is None else f, floats, rest, is_leaf=_none)


def _add(tree, floats):
    return jax.tree.map(lambda f, x: x if f is None else x + f, floats, tree, is_leaf=_none)


def _dtype64(x):
    return np.complex128 if jnp.iscomplexobj(x) else np.float64


def _to64(tree):
    """Float leaves as float64 (complex as complex128), in NumPy outside ``jit`` (an
    eager cast compiles a program per leaf shape)."""

    def cast(x):
        return (jnp if isinstance(x, jax.core.Tracer) else np).asarray(x, _dtype64(x))

    return jax.tree.map(lambda x: cast(x) if _inexact(x) else x, tree)


def _real(tree):
    """Complex leaves as ``[..., 2]`` (real, imaginary) pairs: real outputs, real cotangents."""
    return jax.tree.map(
        lambda x: jnp.stack([x.real, x.imag], -1) if jnp.iscomplexobj(x) else x, tree
    )


def _normal(rng, tree, scale=1.0):
    """NumPy ``scale · N(0, 1)`` like each float leaf of ``tree`` (arrays or shapes),
    complex in both parts; None elsewhere. ``scale`` may be a function of the leaf."""

    def draw(x):
        z = rng.standard_normal(x.shape)
        z = z + 1j * rng.standard_normal(x.shape) if jnp.iscomplexobj(x) else z
        return (np.asarray(scale(x) if callable(scale) else scale) * z).astype(_dtype64(x))

    return jax.tree.map(lambda x: draw(x) if _inexact(x) else None, tree)


def _rms_or_one(x):
    x = np.asarray(x)
    rms = float(np.sqrt(np.mean(np.abs(x) ** 2))) if x.size else 0.0
    return NOISE * (rms or 1.0)


def _inner(a, b):
    """``Σ a · b`` over the leaves of two real trees."""
    pairs = zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True)
    return sum((jnp.sum(x * y) for x, y in pairs), jnp.zeros((), jnp.float64))


def _per_rollout(carry, batch_shape):
    """A tree of bools like ``carry``: True for its per-rollout leaves (a typed PRNG key,
    or a leaf whose shape does not start with ``batch_shape``), which masks and resets
    leave to the cell (:mod:`jaxrnn.rollout.steps`)."""
    nb = len(batch_shape)
    return jax.tree.map(lambda x: bool(is_key(x) or x.shape[:nb] != tuple(batch_shape)), carry)


def _drop(tree, flags):
    """``tree`` with None where ``flags`` is True."""
    return jax.tree.map(lambda f, x: None if f else x, flags, tree, is_leaf=_none)


def _select(cond, new, old, flags, rollout):
    """Per row ``new`` where ``cond`` else ``old``; per-rollout leaves take ``rollout``'s."""

    def pick(f, a, b, r):
        return (
            r if f else jnp.where(jnp.reshape(cond, cond.shape + (1,) * (a.ndim - cond.ndim)), a, b)
        )

    return jax.tree.map(pick, flags, new, old, rollout)


def _take(tree, index, axis):
    """``take_along_axis`` of every leaf with ``index [*batch, T']`` along ``axis``."""

    def take(x):
        return jnp.take_along_axis(
            x, jnp.reshape(index, index.shape + (1,) * (x.ndim - index.ndim)), axis
        )

    return jax.tree.map(take, tree)


def _call(kw):
    return ", ".join(f"{k}={v!r}" for k, v in kw.items())


def _first(tree):
    return jax.tree.map(lambda c: c[:1], tree)


def _append_zero_step(y, axis):
    """``y`` with one more step of zeros along ``axis``: where a hole's slot points."""
    return jnp.concatenate([y, jnp.zeros_like(jax.lax.slice_in_dim(y, 0, 1, axis=axis))], axis)


def _zero_unless(m, y):
    """``y`` where ``m`` (``[*batch]``), else zero."""
    return jnp.where(jnp.reshape(m, m.shape + (1,) * (y.ndim - m.ndim)), y, 0)


# ----------------------------------------------------------------------------- the oracle


def loop(cell, params, xs, carry, *, mask=None, resets=None):
    """:func:`jaxrnn.scan`'s documented semantics as a literal Python loop, forwards.

    Args:
      cell, params: the cell and its params.
      xs: ``[*batch, T, I]``.
      carry: the initial carry ``[*batch, ...]``.
      mask: ``[*batch, T]`` bool or None: the valid steps (``lengths`` folded in).
      resets: ``[*batch, T]`` bool or None: where a sequence starts afresh.

    Returns:
      ``(final_carry, ys [*batch, T, ...])``, outputs zero at masked steps.
    """
    batch_shape = xs.shape[:-2]
    flags = _per_rollout(carry, batch_shape)
    c, ys = carry, []
    for t in range(xs.shape[-2]):
        if resets is not None:  # per-rollout leaves are not reset
            c = _select(resets[..., t], carry, c, flags, c)
        new, y = cell.apply(params, c, xs[..., t, :])
        if mask is not None:  # a masked step keeps the carry; per-rollout leaves advance
            new = _select(mask[..., t], new, c, flags, new)
            y = jax.tree.map(partial(_zero_unless, mask[..., t]), y)
        c = new
        ys.append(y)
    return c, jax.tree.map(lambda *y: jnp.stack(y, axis=len(batch_shape)), *ys)


# ----------------------------------------------------------------------------- comparing


def _named_leaves(tree, name):
    return [(name + keystr(path), x) for path, x in tree_flatten_with_path(tree)[0]]


class _Checker:
    """Each property's worst leaf, and every failure."""

    def __init__(self, rtol: float, fd_rtol: float):
        self.rtol, self.fd_rtol = rtol, fd_rtol
        self.checks: dict[str, Check] = {}
        self.skipped: dict[str, str] = {}
        self.failures: list[str] = []

    def record(self, prop, leaf, error, tol, detail):
        ratio = error / tol if tol > 0 else (0.0 if error == 0 else math.inf)
        worst = self.checks.get(prop)
        if worst is None or ratio > worst.error / max(worst.tolerance, 1e-300):
            self.checks[prop] = Check(leaf, error, tol)
        if not ratio <= 1:
            self.failures.append(
                f"{prop}: {leaf}: max error {error:.3e} > tolerance {tol:.3e}{detail}"
            )

    def compare(self, prop, ref: dict, got: dict, detail: str):
        """``{name: pytree}`` leaf by leaf, within ``rtol · max(1, max |ref|)``; exactly for
        integers (a key's data)."""
        for name in ref:
            want, have = _named_leaves(ref[name], name), _named_leaves(got[name], name)
            if [p for p, _ in want] != [p for p, _ in have]:
                paths = [[p for p, _ in leaves] for leaves in (want, have)]
                self.failures.append(
                    f"{prop}: {name}: expected leaves {paths[0]}, got {paths[1]}{detail}"
                )
                continue
            for (leaf, a), (_, b) in zip(want, have, strict=True):
                if a.shape != b.shape:
                    self.failures.append(
                        f"{prop}: {leaf}: expected shape {a.shape}, got {b.shape}{detail}"
                    )
                elif not np.issubdtype(a.dtype, np.inexact):
                    self.record(prop, leaf, 0.0 if np.array_equal(a, b) else math.inf, 0.0, detail)
                else:
                    finite = bool(np.isfinite(a).all() and np.isfinite(b).all())
                    err = float(np.max(np.abs(a - b), initial=0.0)) if finite else math.inf
                    scale = max(1.0, float(np.max(np.abs(a), initial=0.0)) if finite else 1.0)
                    self.record(prop, leaf, err, self.rtol * scale, detail)

    def differences(self, grads, dirs, fd, value, names, detail):
        """The gradient along each direction against its central difference. JAX's gradient
        of a real function of a complex ``z`` is ``∂/∂Re z - i ∂/∂Im z``: ``dL = Re(g · v)``."""
        ad = sum(
            np.real(np.asarray(g)[None] * v).reshape(len(v), -1).sum(-1)
            for g, v in zip(jax.tree.leaves(grads), jax.tree.leaves(dirs), strict=True)
        )
        for name, a, f in zip(names, ad, fd, strict=True):
            tol = self.fd_rtol * max(1.0, abs(a), abs(float(value)))
            err = abs(float(a) - float(f))
            extra = f" (autodiff {a:.10e}, central differences {f:.10e}, h = {FD_STEP}{detail})"
            self.record(
                "finite_differences",
                f"d/d {name}",
                err if math.isfinite(err) else math.inf,
                tol,
                extra,
            )

    def raise_failures(self, what):
        if self.failures:
            raise AssertionError(
                f"{what}: {len(self.failures)} failure(s)\n  " + "\n  ".join(self.failures)
            )


def _vjp(fn, args, cts):
    """``fn(*args) -> (out, aux)``: ``(out, aux, grads)`` with ``grads[k]`` the gradient of
    ``<cts[k], out>`` with respect to ``args`` (cotangents stacked on axis 0)."""
    out, pull, aux = jax.vjp(fn, *args, has_aux=True)
    if jax.tree.leaves(cts)[0].shape[0] == 1:  # no vmap: a smaller program
        return out, aux, jax.tree.map(lambda g: g[None], pull(jax.tree.map(lambda c: c[0], cts)))
    return out, aux, jax.vmap(pull)(cts)


def _directions(rng, args):
    """A random unit direction in each float leaf of ``args``, then one in all of them:
    stacked on axis 0. Unit: a step ``h`` moves the arguments by ``h``, whatever their size."""
    leaves, treedef = jax.tree.flatten(args)
    dirs = [[np.zeros(x.shape, _dtype64(x)) for x in leaves] for _ in range(len(leaves) + 1)]
    for i, x in enumerate(leaves):
        dirs[i][i] = dirs[-1][i] = _normal(rng, x)
    for d in dirs:
        norm = math.sqrt(sum(float(np.sum(np.abs(x) ** 2)) for x in d))
        d[:] = [x / norm for x in d]
    return jax.tree.unflatten(treedef, [np.stack(x) for x in zip(*dirs, strict=True)])


def _differences(loss, args, dirs):
    """Central differences of ``loss`` at ``args`` along each of ``dirs``, extrapolated
    (Richardson): ``(4 D(h/2) - D(h)) / 3`` cancels the ``h²`` term of ``D(h) = (L(x + hv)
    - L(x - hv)) / 2h``, large where layer norm divides by a small deviation. One vmap."""
    n = jax.tree.leaves(dirs)[0].shape[0]
    steps = jax.tree.map(lambda d: FD_STEP * jnp.concatenate([d, -d, d / 2, -d / 2]), dirs)
    v = jax.vmap(lambda s: loss(*jax.tree.map(jnp.add, args, s)))(steps).reshape(4, n)
    return (4 * (v[2] - v[3]) / FD_STEP - (v[0] - v[1]) / (2 * FD_STEP)) / 3


# ----------------------------------------------------------------------------- rows


class _Batch(NamedTuple):
    """Rows of several properties, rolled out together. ``mask``, ``lengths``, ``resets``
    are :func:`jaxrnn.scan`'s arguments; the oracle is ``loop(xs[order], mask=valid,
    resets=restarts)`` with its outputs put back by ``slot`` (``T``: a hole, zero)."""

    name: str
    reverse: bool
    evaluation: bool  # the evaluation carry (key=None) instead of the training one
    groups: dict[str, slice]  # property -> its rows (axis 0)
    mask: np.ndarray
    lengths: np.ndarray
    resets: np.ndarray
    order: np.ndarray
    valid: np.ndarray
    restarts: np.ndarray
    slot: np.ndarray


def _group(kind: str, rng, B: tuple, T: int, reverse: bool) -> dict:
    """One property's ``[*B]`` rows: the scan's arguments and the oracle's schedule."""
    t = np.arange(T)
    ident, ones = np.broadcast_to(t, (*B, T)), np.ones((*B, T), bool)
    g = dict(
        mask=ones,
        lengths=np.full(B, T),
        resets=~ones,
        order=ident,
        valid=ones,
        restarts=~ones,
        slot=ident,
    )
    if kind == "loop":  # holes, padding and resets at random; the first row plain
        mask, resets = rng.random((*B, T)) < 0.75, rng.random((*B, T)) < 0.3
        lengths = rng.integers(T // 2, T + 1, B)
        mask.reshape(-1, T)[0], resets.reshape(-1, T)[0], lengths.reshape(-1)[0] = True, False, T
        lengths.reshape(-1)[1:2] = T - 1
        valid = mask & (t < lengths[..., None])
        g.update(mask=mask, lengths=lengths, resets=resets, valid=valid, restarts=resets)
        if reverse:  # step s = T-1-t forwards; backwards, t restarts if resets[t+1] = resets[T-s]
            restarts = np.concatenate([~ones[..., :1], resets[..., :0:-1]], -1)
            g.update(
                order=T - 1 - ident, valid=valid[..., ::-1], restarts=restarts, slot=T - 1 - ident
            )
    elif kind == "holes":  # T - T//3 steps kept per row at random, packed together
        K = T - T // 3
        keep = np.sort(rng.random((*B, T)).argsort(-1)[..., :K], -1)
        mask = np.zeros((*B, T), bool)
        np.put_along_axis(mask, keep, True, -1)
        order = np.concatenate([keep, np.repeat(keep[..., -1:], T - K, -1)], -1)
        valid = np.broadcast_to(t < K, (*B, T))
        g.update(mask=mask, order=order, valid=valid, slot=np.where(mask, mask.cumsum(-1) - 1, T))
    elif kind == "resets":  # pieces [0, T/3), [T/3, 2T/3), [2T/3, T): each from the start
        resets = np.zeros((*B, T), bool)
        resets[..., sorted({0, T // 3, 2 * T // 3})] = True
        g.update(resets=resets, restarts=resets)
    elif kind == "reverse":  # right padding; each flipped valid prefix, flipped back
        lengths = rng.integers(1, T + 1, B)
        lengths.reshape(-1)[0] = T - 1
        L = lengths[..., None]
        flip = np.where(t < L, L - 1 - t, t)  # an involution
        g.update(lengths=lengths, order=flip, valid=t < L, slot=flip)
    g["lengths"] = g["lengths"].astype(np.int32)
    return g


def _batch(name, kinds, rng, B, T, reverse, evaluation) -> _Batch:
    parts = [_group(kind, rng, B, T, reverse) for kind in kinds]
    groups = {kind: slice(i * B[0], (i + 1) * B[0]) for i, kind in enumerate(kinds)}
    return _Batch(
        name,
        reverse,
        evaluation,
        groups,
        **{k: np.concatenate([p[k] for p in parts]) for k in parts[0]},
    )


# ----------------------------------------------------------------------------- check_cell


def check_cell(
    cell,
    *,
    input_size: int = 3,
    batch_shape: tuple[int, ...] = (2,),
    steps: int = 6,
    key: jax.Array | None = None,
    carry_key: jax.Array | bool | None = True,
    params: Any = None,
    carry: Any = None,
    rtol: float | None = None,
    fd_rtol: float = FD_RTOL,
) -> Report:
    """Check that ``cell`` rolls out, masks, resets, reverses, batches and differentiates
    as :func:`jaxrnn.scan` documents, and that each engine it declares agrees.

    Runs in float64 (inside ``jax.enable_x64``; params and carries are cast to it), at
    params randomised around the cell's init (no zero biases) and random initial
    carries, with random cotangents on the outputs and the final carry. The properties,
    the tolerance model and randomised cells are described in the module docstring.

    Args:
      cell: a :class:`jaxrnn.Cell`; its ``step`` and ``linear`` engines, if declared,
        are checked against autodiff of the plain scan.
      input_size: ``I`` of the random inputs.
      batch_shape: the batch dims of each property's rows (at least one).
      steps: ``T``, at least 3 (room for a hole, a reset and padding).
      key: the key of the cell's init and of the training carry; the other draws come
        from NumPy, seeded by it. Default ``jax.random.key(0)``.
      carry_key: the key of a randomised cell's training carry
        (``initial_carry(..., key=carry_key)``); True: one folded from ``key``; None or
        False: no key (evaluation mode).
      params: check at these params (cast to float64, not randomised).
      carry: the initial carry ``[*batch_shape, ...]`` before ``δ`` (not randomised);
        default ``cell.initial_carry(params, ...)``.
      rtol: the relative tolerance of the rollouts; default :func:`default_rtol`.
      fd_rtol: the relative tolerance of the finite differences.

    Returns:
      A :class:`Report`: each property's worst leaf, and the properties skipped.

    Raises:
      AssertionError: one line per failure: the property, the leaf, the max error and
        its tolerance.

    Example:
      >>> from jaxrnn.testing import check_cell
      >>> print(check_cell(jaxrnn.gru(4)))    # raises if a property fails
      engine[fused]           1.78e-15 <= 4.69e-13  grad params.W_xh
      loop                    0.00e+00 <= 8.53e-14  final carry.h
      ...
      finite_differences      1.12e-09 <= 9.52e-06  d/d params.b
    """
    batch_shape = tuple(batch_shape)
    if not isinstance(steps, int) or isinstance(steps, bool) or steps < 3:
        raise ValueError(
            f"steps: expected an int >= 3 (a hole, a reset and padding), got {steps!r}"
        )
    if not batch_shape or not all(isinstance(b, int) and b > 0 for b in batch_shape):
        raise ValueError(f"batch_shape: expected at least one positive dim, got {batch_shape!r}")
    for name in ("init", "initial_carry", "apply"):
        if not callable(getattr(cell, name, None)):
            raise TypeError(
                f"cell: expected a jaxrnn.Cell with {name}(), got {type(cell).__name__}"
            )
    key = jax.random.key(0) if key is None else key
    with jax.enable_x64(True):
        for per_group in (False, True):  # again per property only to name a failure
            checker = _Checker(default_rtol(steps) if rtol is None else rtol, fd_rtol)
            check = _CellCheck(cell, input_size, batch_shape, steps, key, carry_key, params, carry)
            check.run(checker, per_group)
            if not any("+" in f.partition(":")[0] for f in checker.failures):
                break
        checker.raise_failures("check_cell")
        return Report(checker.checks, checker.skipped)


class _CellCheck:
    """One run of :func:`check_cell`: its random data, its program and its comparisons."""

    def __init__(self, cell, input_size, batch_shape, steps, key, carry_key, params, carry):
        self.cell, self.B, self.T, self.I = cell, batch_shape, steps, input_size
        self.rng = np.random.default_rng(np.asarray(jax.random.key_data(key)).ravel())
        if params is None:  # eager: the init's small programs are shared by all checks
            params = _to64(cell.init(key, input_size))
            params = _add(params, _normal(self.rng, params, _rms_or_one))
        self.params = _to64(params)
        if carry_key is True:  # a stream of its own, apart from the init's
            carry_key = jax.random.fold_in(key, 1)
        self.carry_key = None if carry_key is None or carry_key is False else carry_key
        self.user_carry = None if carry is None else _to64(carry)
        self.engines = {}  # the fast paths the cell declares, checked against AUTODIFF
        if getattr(cell, "step", None) is not None:
            self.engines["engine[fused]"] = {"mode": "sequential", "bptt": "fused"}
        if getattr(cell, "linear", None) is not None:
            self.engines["engine[parallel]"] = {"mode": "parallel"}

    def carry0(self, params, shape, evaluation, carry_key):
        """The initial carry before ``δ``: the user's (repeated over the groups) or the cell's."""
        if self.user_carry is not None and not evaluation:
            n, flags = shape[0] // self.B[0], _per_rollout(self.user_carry, self.B)
            return jax.tree.map(
                lambda f, x: x if f else jnp.concatenate([x] * n), flags, self.user_carry
            )
        return _to64(self.cell.initial_carry(params, shape, key=None if evaluation else carry_key))

    def flags(self, shape, evaluation):
        """The batch's initial carry (shapes only) and its per-rollout leaves."""
        template = jax.eval_shape(
            lambda: self.carry0(self.params, shape, evaluation, self.carry_key)
        )
        return template, _per_rollout(template, shape)

    def advances(self, evaluation) -> bool:
        """Whether one step changes a per-rollout leaf of the carry (a zoneout key)."""
        if not any(jax.tree.leaves(self.flags(self.B, evaluation)[1])):
            return False

        def step(params, carry_key):
            c = self.carry0(params, self.B, evaluation, carry_key)
            return c, self.cell.apply(params, c, jnp.zeros((*self.B, self.I)))[0]

        old, new = _jit(step)(self.params, self.carry_key)
        flags = jax.tree.leaves(_per_rollout(old, self.B))
        for f, a, b in zip(flags, jax.tree.leaves(old), jax.tree.leaves(new), strict=True):
            a, b = (np.asarray(jax.random.key_data(x) if is_key(x) else x) for x in (a, b))
            if f and not np.array_equal(a, b):
                return True
        return False

    def plan(self, checker) -> list[_Batch]:
        """The batches: each property's rows, on the training carry where they can be."""
        B, T, rng = self.B, self.T, self.rng
        if not self.advances(False):
            return [
                _batch("forward", ["loop", "holes", "resets"], rng, B, T, False, False),
                _batch("reverse", ["loop", "reverse"], rng, B, T, True, False),
            ]
        batches = [
            _batch("forward", ["loop"], rng, B, T, False, False),
            _batch("reverse", ["loop"], rng, B, T, True, False),
        ]
        why = "the training carry's per-rollout leaves advance at every step"
        try:
            ok = not self.advances(True)
        except Exception as e:  # a cell without an evaluation mode
            ok, why = False, f"{why}, and the evaluation carry (key=None) fails: {e!r}"
        for prop in ("holes", "resets", "reverse"):
            checker.skipped[prop] = (
                f"on the evaluation carry (key=None): {why}" if ok else f"skipped: {why}"
            )
        if ok:
            batches += [
                _batch("forward, evaluation carry", ["holes", "resets"], rng, B, T, False, True),
                _batch("reverse, evaluation carry", ["reverse"], rng, B, T, True, True),
            ]
        return batches

    def runner(self, b, run):
        """``(params floats, xs, δ, params rest, carry key) -> ((final floats, ys), final
        keys)`` of ``run(params, xs, carry)`` from the batch's initial carry plus ``δ``."""
        shape = (b.mask.shape[0], *self.B[1:])

        def fn(p_float, xs, delta, p_rest, carry_key):
            params = _join(p_float, p_rest)
            final, ys = run(
                params, xs, _add(self.carry0(params, shape, b.evaluation, carry_key), delta)
            )
            f_float, f_rest = _split(final)
            return _real((f_float, ys)), jax.tree.map(
                lambda x: jax.random.key_data(x) if is_key(x) else x, f_rest
            )

        return fn

    def run(self, checker, per_group):
        """Plan the batches, draw their data, run the one program, compare."""
        batches = self.plan(checker)
        p_float, p_rest = _split(self.params)
        inputs = {b.name: self.inputs(b, p_float, p_rest, per_group) for b in batches}
        inputs[batches[0].name]["dirs"] = _directions(self.rng, inputs[batches[0].name]["args"])

        def compute(inputs, p_rest, carry_key):
            return {
                b.name: self.results(
                    b, inputs[b.name], p_rest, carry_key, per_group, b is batches[0]
                )
                for b in batches
            }

        results = jax.tree.map(np.asarray, _jit(compute)(inputs, p_rest, self.carry_key))
        for b in batches:
            self.compare(checker, b, inputs[b.name], results[b.name], per_group)

    def inputs(self, b, p_float, p_rest, per_group):
        """The batch's random arrays (the program's arguments, so that it depends only on
        the cell and the shapes): inputs, ``δ`` and cotangents, all rows' then, if
        ``per_group``, each property's (zero outside its rows and on per-rollout leaves)."""
        shape = (b.mask.shape[0], *self.B[1:])
        template, flags = self.flags(shape, b.evaluation)
        xs = self.rng.standard_normal((*shape, self.T, self.I))
        given = self.user_carry is not None and not b.evaluation
        delta = _normal(self.rng, template, 0.0 if given else NOISE)
        fn = self.runner(b, lambda p, xs, c: scan(self.cell, p, xs, c, **AUTODIFF))
        out = jax.eval_shape(lambda: fn(p_float, xs, delta, p_rest, self.carry_key)[0])
        ct = _normal(self.rng, out)

        def keep(f, x, rows):
            kept = np.zeros_like(x)
            if not f:
                kept[rows] = x[rows]
            return kept

        cts = [ct]
        for rows in b.groups.values() if per_group else ():
            final = jax.tree.map(
                lambda f, x, rows=rows: None if x is None else keep(f, x, rows),
                flags,
                ct[0],
                is_leaf=_none,
            )
            cts.append((final, jax.tree.map(lambda y, rows=rows: keep(False, y, rows), ct[1])))
        return {"args": (p_float, xs, delta), "cts": jax.tree.map(lambda *c: np.stack(c), *cts)}

    def results(self, b, data, p_rest, carry_key, per_group, first):
        """Inside the program: every engine's rollout over the batch with its gradients,
        the oracle's, and for the first batch the vmapped rollouts and the differences."""
        cell, nb, args, cts = self.cell, len(self.B), data["args"], data["cts"]
        full = {"mask": b.mask, "lengths": b.lengths, "resets": b.resets, "reverse": b.reverse}

        def vjp(run, cts):
            fn = self.runner(b, run)
            return _vjp(lambda *a: fn(*a, p_rest, carry_key), args, cts)

        def engine(kw):
            return lambda p, xs, c: scan(cell, p, xs, c, **full, **kw)

        def oracle(p, xs, c):
            final, ys = loop(cell, p, _take(xs, b.order, nb), c, mask=b.valid, resets=b.restarts)
            ys = jax.tree.map(_append_zero_step, ys, jax.tree.map(lambda _: nb, ys))
            return final, _take(ys, b.slot, nb)

        res = {"autodiff": vjp(engine(AUTODIFF), cts)}
        for name, kw in self.engines.items() if not b.evaluation else ():  # training carry only
            res[name] = vjp(engine(kw), _first(cts))
        res["oracle"] = vjp(oracle, jax.tree.map(lambda c: c[1:], cts) if per_group else cts)
        if first:
            res["vmap"] = self.vmapped(b, args, p_rest, carry_key)
            # The plain call (no mask, lengths or resets; the default engine), whose
            # gradients central differences check.
            fn, ct = self.runner(b, lambda p, xs, c: scan(cell, p, xs, c)), _first(cts)
            res["plain"] = _vjp(lambda *a: fn(*a, p_rest, carry_key), args, ct)

            def loss(*a):
                return _inner(jax.tree.map(lambda c: c[0], ct), fn(*a, p_rest, carry_key)[0])

            res["fd"] = _differences(loss, args, data["dirs"]), loss(*args)
        return res

    def vmapped(self, b, args, p_rest, carry_key):
        """Values of the one-sequence scan vmapped over the rows; and of the one-sequence
        loop if the carry has per-rollout leaves (a batched draw differs from a row's)."""
        cell, shape = self.cell, (b.mask.shape[0], *self.B[1:])
        flags = self.flags(shape, b.evaluation)[1]
        axes = jax.tree.map(lambda f: None if f else 0, flags)

        def one_scan(p, xs, c, mask, lengths, resets):
            return scan(cell, p, xs, c, mask=mask, lengths=lengths, resets=resets, **AUTODIFF)

        def one_loop(p, xs, c, mask, lengths, resets):
            return loop(
                cell,
                p,
                xs,
                c,
                mask=mask & (jnp.arange(self.T, dtype=lengths.dtype) < lengths),
                resets=resets,
            )

        def rows(one):
            for _ in self.B:
                one = jax.vmap(one, in_axes=(None, 0, axes, 0, 0, 0))

            def run(p, xs, c):  # per-rollout leaves come out once per row: dropped
                final, ys = one(p, xs, c, b.mask, b.lengths, b.resets)
                return _drop(final, flags), ys

            return self.runner(b, run)(*args, p_rest, carry_key)

        return rows(one_scan), rows(one_loop) if any(jax.tree.leaves(flags)) else None

    def compare(self, checker, b, data, res, per_group):
        flags = self.flags((b.mask.shape[0], *self.B[1:]), b.evaluation)[1]
        for name, kw in self.engines.items() if not b.evaluation else ():
            detail = f" ({b.name} batch: {_call(kw)} against {_call(AUTODIFF)})"
            checker.compare(name, _named(res["autodiff"], 0), _named(res[name], 0), detail)
        for k, (kind, rows) in enumerate(b.groups.items()):
            mask, resets = (a[rows].astype(int).tolist() for a in (b.mask, b.resets))
            detail = (
                f" ({b.name} batch, rows {rows.start}-{rows.stop - 1}: mask {mask}, lengths "
                f"{b.lengths[rows].tolist()}, resets {resets}; the loop against jaxrnn.scan)"
            )
            i, j = (k, k + 1) if per_group else (0, 0)
            ref = _named(res["oracle"], i, rows, flags, params=per_group)
            checker.compare(kind, ref, _named(res["autodiff"], j, rows, flags, per_group), detail)
        if not per_group:
            detail = f" ({b.name} batch, summed over its rows: the loop against jaxrnn.scan)"
            ref, got = (
                {"grad params": _named(res[r], 0)["grad params"]} for r in ("oracle", "autodiff")
            )
            checker.compare("+".join(b.groups), ref, got, detail)
        if "vmap" in res:
            got, vmapped_loop = res["vmap"]
            ref, against = res["autodiff"][:2], "the batched scan"
            if vmapped_loop is not None:
                ref, against = vmapped_loop, "the one-sequence loop, vmapped"
                checker.skipped["vmap"] = f"against {against}: the carry has per-rollout leaves"
            detail = f" ({b.name} batch: vmap of the one-sequence scan against {against})"
            checker.compare("vmap", _named((*ref, None), 0), _named((*got, None), 0), detail)
        if "plain" in res:  # the first row is valid at every step and has no resets
            rows, plain = (slice(0, 1),) * len(self.B), (*res["plain"][:2], None)
            detail = (
                " (the plain call jaxrnn.scan(cell, params, xs, carry) against the loop, first row)"
            )
            ref = _named((*res["oracle"][:2], None), 0, rows, flags)
            checker.compare("loop", ref, _named(plain, 0, rows, flags), detail)
            p_float, _, delta = data["args"]
            names = [n for n, _ in _named_leaves(p_float, "params")] + ["xs"]
            names += [n for n, _ in _named_leaves(delta, "carry")] + ["all"]
            grads = jax.tree.map(lambda g: g[0], res["plain"][2])
            detail = (
                f", the plain call jaxrnn.scan(cell, params, xs, carry) over the {b.name} batch"
            )
            checker.differences(grads, data["dirs"], *res["fd"], names, detail)


def _named(result, k, rows=None, flags=None, params=True):
    """``{name: pytree}`` of ``result = (out, keys, grads)`` at cotangent ``k``, ``rows`` only."""
    (final, ys), keys, grads = result
    named = {"final carry": final if keys is None else _join(final, keys), "ys": ys}
    if grads is not None:
        dp, dx, dc = jax.tree.map(lambda g: g[k], grads)
        named.update({"grad params": dp, "grad xs": dx, "grad carry": dc})
    if rows is not None:

        def cut(f, x):
            return x if x is None or f else x[rows]

        for name in ("final carry", "grad carry")[: 1 + (grads is not None)]:
            named[name] = jax.tree.map(cut, flags, named[name], is_leaf=_none)
        for name in ("ys", "grad xs")[: 1 + (grads is not None)]:
            named[name] = jax.tree.map(lambda x: x[rows], named[name])
    if not params and grads is not None:
        del named["grad params"]
    return named


# ----------------------------------------------------------------------------- trees


def _random_nested(rng, input_size, max_children, max_depth, depth=0):
    """A random nested tuple: internal nodes with 1 to ``max_children`` children."""
    if depth > 0 and (depth >= max_depth or rng.random() < 0.3):
        return rng.standard_normal(input_size)
    k = int(rng.integers(1, max_children + 1))
    return tuple(
        _random_nested(rng, input_size, max_children, max_depth, depth + 1) for _ in range(k)
    )


def _recursion(cell, params, x, children, slots):
    """The plain recursion of :func:`jaxrnn.trees.evaluate`'s docstring over one tree
    (``children [n, K]`` in NumPy): every node's state, ``[n, ...]``."""
    absent, states = cell.initial_state(params, ()), {}

    def state(v):
        if v not in states:
            kids = [state(int(c)) for c in children[v] if c >= 0]
            present = np.arange(slots) < len(kids)
            stacked = jax.tree.map(lambda *s: jnp.stack(s), *kids, *[absent] * (slots - len(kids)))
            states[v] = cell.apply(params, x[v], stacked, present)
        return states[v]

    return jax.tree.map(lambda *s: jnp.stack(s), *[state(v) for v in range(len(children))])


def check_tree_cell(
    cell,
    *,
    input_size: int = 3,
    num_trees: int = 2,
    max_children: int = 2,
    max_depth: int = 2,
    key: jax.Array | None = None,
    params: Any = None,
    rtol: float | None = None,
    fd_rtol: float = FD_RTOL,
) -> Report:
    """Check a tree cell (:mod:`jaxrnn.trees`) against the recursion it defines.

    A tree cell has no carry and no time axis, so :func:`check_cell` does not apply;
    these are the properties of :func:`jaxrnn.trees.evaluate` over random trees (random
    shapes, random inputs at every node, params randomised around the init), in float64,
    as one compiled program:

    ====================== ==============================================================
    ``recursion``          the padded batch, evaluated level by level, equals the plain
                           recursion over each tree: node states, and gradients with
                           respect to the params and the node inputs
    ``vmap``               the batch (``evaluate`` vmaps over it) equals each tree alone,
                           unpadded; values
    ``finite_differences`` the gradients equal central differences
    ====================== ==============================================================

    The tolerances are :func:`check_cell`'s, with the trees' height as ``T``.

    Args:
      cell: a :class:`jaxrnn.trees.TreeCell`.
      input_size: ``I`` of the node inputs.
      num_trees: how many random trees.
      max_children: the most children of a node (at most the cell's arity).
      max_depth: the most levels below the root.
      key: the key of the cell's init; the other draws come from NumPy, seeded by it.
      params: check at these params (cast to float64, not randomised).
      rtol, fd_rtol: the tolerances (:func:`default_rtol` of the height by default).

    Returns:
      A :class:`Report`; raises an ``AssertionError`` like :func:`check_cell`.

    Example:
      >>> from jaxrnn.testing import check_tree_cell
      >>> check_tree_cell(jaxrnn.trees.child_sum_tree_lstm(4), max_children=3)
    """
    key = jax.random.key(0) if key is None else key
    with jax.enable_x64(True):
        rng = np.random.default_rng(np.asarray(jax.random.key_data(key)).ravel())
        if params is None:
            params = _to64(cell.init(key, input_size))
            params = _add(params, _normal(rng, params, _rms_or_one))
        p_float, p_rest = _split(_to64(params))
        nested = [
            _random_nested(rng, input_size, max_children, max_depth) for _ in range(num_trees)
        ]
        singles = [from_nested(t, dtype=np.float64) for t in nested]
        singles = [t._replace(x=rng.standard_normal(t.x.shape)) for t in singles]  # inner nodes too
        batch, sizes = batch_trees(singles), [t.level.shape[0] for t in singles]
        levels, (N, K) = int(batch.level.max()) + 1, batch.children.shape[-2:]

        def batched(p_float, x):
            nodes, _ = evaluate(
                cell, _join(p_float, p_rest), batch._replace(x=x), num_levels=levels
            )
            return _real(nodes), None

        def recursion(p_float, x):
            params, out = _join(p_float, p_rest), []
            for b, t in enumerate(singles):
                s = _recursion(cell, params, x[b], np.asarray(t.children), K)
                pad = cell.initial_state(params, (N - sizes[b],))  # as evaluate's padding nodes
                out.append(jax.tree.map(lambda a, z: jnp.concatenate([a, z]), s, pad))
            return _real(jax.tree.map(lambda *s: jnp.stack(s), *out)), None

        def alone(p_float, x):
            params = _join(p_float, p_rest)
            return [
                _real(evaluate(cell, params, t._replace(x=x[b, : sizes[b]]), num_levels=levels)[0])
                for b, t in enumerate(singles)
            ]

        args = (p_float, np.asarray(batch.x))
        node_mask = np.asarray(batch.node_mask)
        ct = jax.tree.map(
            lambda c: c * node_mask.reshape(c.shape[:2] + (1,) * (c.ndim - 2)),
            _normal(rng, jax.eval_shape(batched, *args)[0]),
        )
        dirs = _directions(rng, args)

        def compute(args, ct, dirs):
            cts = jax.tree.map(lambda c: c[None], ct)

            def loss(*a):
                return _inner(ct, batched(*a)[0])

            return (
                _vjp(recursion, args, cts),
                _vjp(batched, args, cts),
                alone(*args),
                _differences(loss, args, dirs),
                loss(*args),
            )

        ref, got, singles_out, fd, value = jax.tree.map(np.asarray, _jit(compute)(args, ct, dirs))
        checker = _Checker(default_rtol(levels) if rtol is None else rtol, fd_rtol)

        def named(result):
            out, _, (dp, dx) = result
            return {
                "node states": out,
                "grad params": jax.tree.map(lambda g: g[0], dp),
                "grad x": dx[0],
            }

        checker.compare("recursion", named(ref), named(got), " (evaluate against the recursion)")
        for b, single in enumerate(singles_out):
            detail = f" (tree {b}, {sizes[b]} nodes: alone against in the padded batch)"
            in_batch = jax.tree.map(lambda s, b=b: s[b, : sizes[b]], got[0])
            checker.compare("vmap", {"node states": in_batch}, {"node states": single}, detail)
        names = [n for n, _ in _named_leaves(p_float, "params")] + ["x", "all"]
        checker.differences(
            jax.tree.map(lambda g: g[0], got[2]), dirs, fd, value, names, ", the padded batch"
        )
        checker.raise_failures("check_tree_cell")
        return Report(checker.checks, checker.skipped)
