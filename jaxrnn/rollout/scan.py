"""Rolling a cell over a sequence: ``jaxrnn.scan``.

The semantics are those of this Python loop (the test oracle, forward case)::

    carry0 = carry if carry is not None else cell.initial_carry(params, batch, key=key)
    c, ys = carry0, []
    for t in range(T):
        if resets[t]:  c = carry0                  # a new sequence starts at step t
        c_new, y = cell.apply(params, c, xs[t])
        if mask[t]:    c, y = c_new, y             # a valid step
        else:          c, y = c, zeros_like(y)     # a masked step changes nothing
        ys.append(y)
    return c, stack(ys)

``lengths`` is shorthand for ``mask[t] = t < lengths``; since masked steps leave
the carry unchanged, the final carry of each right-padded sequence is the one
at its last valid step, without storing every carry (Flax's ``nn.RNN`` stores
them all to pick the last). ``reverse=True`` runs ``t = T-1, ..., 0``: padding
then comes first and is skipped, so each sequence is read backwards within its
own length, and the state resets *after* the first step of each packed
sequence (``resets[t+1]``).
"""

import math

import jax
import jax.numpy as jnp
import numpy as np

from jaxrnn.cells.base import (
    Cell,
    check_array,
    check_bool,
    check_carry,
    check_is_cell,
    check_params,
)
from jaxrnn.rollout import fused, parallel
from jaxrnn.rollout.steps import is_key, rollout_step

MODES = ("auto", "sequential", "parallel")
BPTT_MODES = ("auto", "fused", "autodiff")
# Where mode="auto" runs a linear recurrence as a parallel scan. On CPU the sequential
# scan won at every length measured (2 cores, 1 Dec 2026, training step: LRU 0.70 s
# against 1.51 s and minGRU 1.58 s against 2.51 s at T = 1024, B = 8, H = 128, in
# bench/engines.py; 2.4-7x at T ~ 1k, H = 64 in experiments/linear_scan_speed.py), with
# 2-3x less memory. On GPU and TPU the parallel scan's O(log T) depth is what these
# recurrences are designed for (Martin & Cundy 2018; Orvieto et al. 2023; De et al.
# 2024); not measured here (no GPU was lent).
PARALLEL_PLATFORMS = ("gpu", "cuda", "rocm", "tpu")


def as_mask(name, value, shape, is_time_major):
    """``value`` as a bool array of ``shape``, or an error naming ``name``, the expected
    shape and layout, and what was given."""
    value = jnp.asarray(check_array(name, value, "a bool array"))
    if value.dtype != jnp.bool_:
        raise TypeError(f"{name}: expected a bool array, got dtype {value.dtype}")
    if value.shape != shape:
        layout = "[T, *batch]" if is_time_major else "[*batch, T]"
        raise ValueError(f"{name}: expected shape {shape} ({layout}), got {tuple(value.shape)}")
    return value


def check_lengths(lengths, batch_shape, T):
    """``lengths`` as an integer array of ``batch_shape`` with values in ``[0, T]``
    (the values checked where they are concrete), or an error naming what is wrong."""
    check_array("lengths", lengths, "an integer array [*batch]", scalars=True)
    # Values can only be checked when concrete: before jnp.asarray, which turns a
    # constant captured by an outer jit into a tracer.
    concrete = None if isinstance(lengths, jax.core.Tracer) else np.asarray(lengths)
    lengths = jnp.asarray(lengths)
    if not jnp.issubdtype(lengths.dtype, jnp.integer):
        raise TypeError(f"lengths: expected an integer array, got dtype {lengths.dtype}")
    if lengths.shape != tuple(batch_shape):
        raise ValueError(
            f"lengths: expected shape {tuple(batch_shape)} (the batch shape of xs), "
            f"got {tuple(lengths.shape)}"
        )
    if concrete is not None:
        lo, hi = (int(concrete.min()), int(concrete.max())) if concrete.size else (0, 0)
        if lo < 0 or hi > T:
            raise ValueError(f"lengths: expected values in [0, T={T}], got min {lo}, max {hi}")
    return lengths


def scan(
    cell: Cell,
    params,
    xs: jax.Array,
    carry=None,
    *,
    lengths: jax.Array | None = None,
    mask: jax.Array | None = None,
    resets: jax.Array | None = None,
    reverse: bool = False,
    time_major: bool = False,
    unroll: int | bool = 1,
    mode: str = "auto",
    bptt: str = "auto",
    remat: int | str | None = None,
    key: jax.Array | None = None,
    reset_to=None,
):
    """Run ``cell`` over the time axis of ``xs`` with ``jax.lax.scan``.

    Args:
      cell: any :class:`jaxrnn.Cell`.
      params: the cell's params.
      xs: ``[*batch, T, I]``, or ``[T, *batch, I]`` if ``time_major``.
      carry: initial carry ``[*batch, ...]``; default ``cell.initial_carry`` (zeros, or
        the learned state of :func:`jaxrnn.learned_initial_carry`).
      lengths: ``[*batch]`` integers in ``[0, T]``: right-padded sequences. Values are
        checked when concrete (outside ``jit``).
      mask: ``[*batch, T]`` bool (``[T, *batch]`` if ``time_major``): valid steps.
        May have holes. Combined with ``lengths`` by logical and.
      resets: bool, shaped like ``mask``: ``True`` where a new sequence starts; the
        carry restarts from the initial carry there.
      reverse: process ``t = T-1, ..., 0``; outputs stay aligned with the inputs.
      time_major: layout of ``xs``, ``mask``, ``resets`` and the returned ``ys``.
      unroll: passed to ``jax.lax.scan``.
      mode: how the forward pass is evaluated: ``"sequential"`` (a ``lax.scan`` over
        time), ``"parallel"`` (an associative scan, ``O(log T)`` depth, for a cell that
        declares a linear recurrence, :class:`jaxrnn.cells.base.Linear`) or ``"auto"``
        (parallel for such a cell on GPU/TPU, sequential otherwise).
      bptt: how the sequential pass is differentiated: ``"auto"`` (default): the fused
        engine (:mod:`jaxrnn.rollout.fused`) for a cell that declares a
        :class:`jaxrnn.cells.base.Step` (the built-in Elman, GRU and LSTM in all their
        variants, and their dropout and zoneout wrappers), else JAX's autodiff of the
        plain scan; ``"fused"``: the fused engine or a ``ValueError`` saying why not;
        ``"autodiff"``: always the plain scan. All give the same values and gradients;
        the ``"jaxrnn"`` logger says at debug level which one ran. Forward-mode
        differentiation (``jax.jvp``) has no fused rule: under ``"auto"`` it runs the
        plain scan (with a warning, once), under ``"fused"`` it is an error.

        The valid pairs, and the engine each runs::

            mode \\ bptt   "auto"            "fused"           "autodiff"
            sequential     fused if declared  fused or error    plain scan
            parallel       associative scan   error             associative scan
            auto           parallel on GPU/TPU for a linear cell, else as sequential

        The parallel engine's backward pass is JAX's autodiff of the associative scan
        (itself a parallel scan), so ``bptt`` has no choice to make there.
      remat: memory-lean BPTT for long sequences: an int ``k`` splits the time axis
        into segments of ``k`` steps and stores only the carries at segment
        boundaries, recomputing each segment's steps in the backward pass
        (memory ~ ``T/k + k`` steps instead of ``T``, one extra forward pass);
        ``"sqrt"``: ``k ~ sqrt(T)`` (:func:`sqrt_segment`); None: store every step. Values and
        gradients are those of the plain rollout.
      key: PRNG key for randomised cells (dropout, zoneout) when ``carry`` is None.
      reset_to: the carry a reset restarts from, shaped like ``carry``; default: the
        initial carry (``carry``, or the cell's). Truncated BPTT over streams passes the
        window's incoming ``carry`` and ``reset_to=cell.initial_carry(params, batch)``,
        so that a document that begins inside a window starts from the cell's initial
        state, not from the state the window began with.

    Returns:
      ``(final_carry, ys)`` with ``ys: [*batch, T, O]`` (``[T, *batch, O]`` if
      ``time_major``); outputs at masked steps are zero.
    """
    # Every argument is checked here, where it enters, so that a mistake is named before
    # any cell or engine trips over it; under jit at trace time only (shapes, dtypes and
    # Python values), so the compiled rollout holds none of it.
    check_is_cell(cell)
    check_remat(remat)
    reverse, time_major = check_bool("reverse", reverse), check_bool("time_major", time_major)
    mode = resolve_mode(cell, mode, bptt)
    layout = "[T, *batch, I]" if time_major else "[*batch, T, I]"
    xs = jnp.asarray(check_array("xs", xs, f"an array of shape {layout}"))
    if xs.ndim < 2:
        raise ValueError(f"xs: expected shape {layout}, got {tuple(xs.shape)}")
    check_params(cell, params, xs.shape[-1])
    if not time_major:
        xs = jnp.moveaxis(xs, -2, 0)
    T, batch_shape = xs.shape[0], xs.shape[1:-1]
    mask_shape = (T, *batch_shape) if time_major else (*batch_shape, T)

    def to_time_major(m):
        return m if time_major else jnp.moveaxis(m, -1, 0)

    valid = None
    if mask is not None:
        valid = to_time_major(as_mask("mask", mask, mask_shape, time_major))
    if lengths is not None:
        lengths = check_lengths(lengths, batch_shape, T)
        steps = jnp.arange(T, dtype=lengths.dtype).reshape((T,) + (1,) * len(batch_shape))
        in_length = steps < lengths
        valid = in_length if valid is None else valid & in_length
    starts = None
    if resets is not None:
        starts = to_time_major(as_mask("resets", resets, mask_shape, time_major))
        if reverse:  # backwards, a sequence starts after the step that began it going forward
            starts = jnp.concatenate([starts[1:], jnp.zeros_like(starts[:1])])

    if carry is None:
        carry0 = cell.initial_carry(params, batch_shape, key=key)
    else:
        # A training carry holds its own key; shape-check it against a keyed template.
        has_key = any(is_key(leaf) for leaf in jax.tree.leaves(carry))
        template_key = jax.random.key(0) if key is None and has_key else key
        template = jax.eval_shape(
            lambda p, k: cell.initial_carry(p, batch_shape, key=k), params, template_key
        )
        check_carry(carry, template)
        carry0 = carry
    if reset_to is not None:
        check_carry(reset_to, jax.eval_shape(lambda: carry0), "reset_to")

    if remat is None:
        final, ys = _run(
            cell, params, carry0, xs, valid, starts,
            reverse=reverse, unroll=unroll, reset_to=reset_to, engine=mode,
        )  # fmt: skip
    else:
        k = sqrt_segment(T) if remat == "sqrt" else int(remat)
        final, ys = _segmented(
            cell, params, carry0, xs, valid, starts, k, reverse, unroll, mode,
            carry0 if reset_to is None else reset_to,
        )  # fmt: skip
    if not time_major:
        ys = jax.tree.map(lambda y: jnp.moveaxis(y, 0, len(batch_shape)), ys)
    return final, ys


def resolve_mode(cell: Cell, mode: str, bptt: str) -> str:
    """The engine :func:`scan` runs for ``mode`` and ``bptt`` (the table in its docstring):
    ``"parallel"``, or one of ``BPTT_MODES`` for the sequential pass; a ``ValueError``
    naming the argument for a value or pair that is not valid."""
    if mode not in MODES:
        raise ValueError(f"mode: expected one of {MODES}, got {mode!r}")
    if bptt not in BPTT_MODES:
        raise ValueError(f"bptt: expected one of {BPTT_MODES}, got {bptt!r}")
    linear = cell.linear is not None
    if mode == "parallel":
        if not linear:
            raise ValueError(
                "mode: 'parallel' needs a cell that declares a linear recurrence (Cell.linear: "
                "jaxrnn.lru, min_gru, min_lstm, rg_lru), got a cell without one; use "
                "mode='sequential'"
            )
        if bptt == "fused":
            raise ValueError(
                "bptt: 'fused' is the sequential pass's engine, so it cannot go with "
                "mode='parallel' (whose backward pass is autodiff of the associative scan); "
                "use bptt='auto' or mode='sequential'"
            )
        return "parallel"
    auto_parallel = linear and bptt != "fused" and jax.default_backend() in PARALLEL_PLATFORMS
    if mode == "auto" and auto_parallel:
        return "parallel"
    return bptt


def _run(cell, params, carry0, xs, valid, starts, *, reverse, unroll, reset_to=None, engine):
    """The rollout proper, time-major: ``xs [T, *batch, I]``, ``valid``/``starts``
    ``[T, *batch]`` bool or None. Returns ``(final_carry, ys [T, *batch, O])``.

    ``engine`` is :func:`resolve_mode`'s answer. Resets restart from ``reset_to``
    (default ``carry0``): a segment of a longer rollout starts from the carry where the
    previous one ended, but still resets to the rollout's initial carry."""
    if reset_to is None:
        reset_to = carry0
    if engine == "parallel":
        return parallel.rollout(
            cell.linear, params, carry0, xs, valid, starts, reverse=reverse, reset_to=reset_to
        )
    ran = fused.dispatch(
        cell, params, carry0, xs, valid, starts,
        bptt=engine, reverse=reverse, unroll=unroll, reset_to=reset_to,
    )  # fmt: skip
    if ran is not None:
        return ran
    return jax.lax.scan(
        rollout_step(cell.apply, params, reset_to, xs.shape[1:-1]),
        carry0,
        (xs, valid, starts),
        reverse=reverse,
        unroll=unroll,
    )


def check_remat(remat):
    """``remat`` itself if it is None, ``"sqrt"`` or a positive int; else a ValueError."""
    ok = remat is None or (isinstance(remat, str) and remat == "sqrt")
    ok = ok or (isinstance(remat, int | np.integer) and not isinstance(remat, bool) and remat > 0)
    if not ok:
        raise ValueError(
            f"remat: expected a positive int (steps per segment), 'sqrt' or None, got {remat!r}"
        )
    return remat


def sqrt_segment(T: int) -> int:
    """Steps per segment for ``remat="sqrt"``: the divisor of ``T`` nearest ``sqrt(T)``
    within ``[sqrt(T)/2, 2 sqrt(T)]``, else ``round(sqrt(T))``.

    Memory ``~ T/k + k`` steps is flat near ``k = sqrt(T)`` (at most 1.25x its minimum
    over that range), while a ``k`` that divides ``T`` leaves no shorter leftover
    segment: one segment rollout to compile instead of two (about a third less
    compile time, measured on the LSTM step at T = 1000, k = 25 against 32).
    """
    root = math.sqrt(T)
    near = [k for k in range(max(1, math.ceil(root / 2)), math.floor(2 * root) + 1) if T % k == 0]
    return min(near, key=lambda k: abs(k - root)) if near else max(1, round(root))


def _segmented(cell, params, carry0, xs, valid, starts, k, reverse, unroll, engine, reset_to):
    """:func:`_run` in segments of ``k`` steps, each under ``jax.checkpoint``, from
    ``carry0``; resets restart from ``reset_to``.

    An outer ``lax.scan`` runs ``n = T // k`` segments; a segment keeps only its
    input carry for the backward pass, where its ``k`` steps are run again to get
    their residuals. The ``T % k`` leftover steps are one more (shorter) segment,
    run last forwards and first backwards: padding them with masked steps instead
    would advance per-rollout leaves (a zoneout key) at steps that do not exist.
    Peak memory is about ``n`` carries plus one segment's residuals, ``~ 2 sqrt(T)``
    steps for ``k ~ sqrt(T)``, at the cost of a second forward pass.

    References:
      Chen, Xu, Zhang, Guestrin (2016). Training Deep Nets with Sublinear Memory
      Cost. arXiv:1604.06174.
      Gruslys, Munos, Danihelka, Lanctot, Graves (2016). Memory-Efficient
      Backpropagation Through Time. NeurIPS.
    """
    T = xs.shape[0]
    n, r = divmod(T, k)

    def segment(params, reset_to, c, xs, valid, starts):
        return _run(
            cell,
            params,
            c,
            xs,
            valid,
            starts,
            reverse=reverse,
            unroll=unroll,
            reset_to=reset_to,
            engine=engine,
        )

    # Inside a scan body XLA cannot merge the recomputation back into the forward
    # pass, so the CSE barriers are not needed there (the jax.checkpoint docs).
    segment_in_scan = jax.checkpoint(segment, prevent_cse=False)
    segment_alone = jax.checkpoint(segment)

    def part(a, lo, hi, shape=None):
        if a is None:
            return None
        a = a[lo:hi]
        return a if shape is None else a.reshape(shape + a.shape[1:])

    def body(c, seg):
        return segment_in_scan(params, reset_to, c, *seg)

    def run_body(c):
        segs = tuple(part(a, 0, n * k, (n, k)) for a in (xs, valid, starts))
        c, ys = jax.lax.scan(body, c, segs, reverse=reverse)
        return c, jax.tree.map(lambda y: y.reshape((n * k, *y.shape[2:])), ys)

    def run_tail(c):
        return segment_alone(params, reset_to, c, *(part(a, n * k, T) for a in (xs, valid, starts)))

    runs = [run_body] * (n > 0) + [run_tail] * (r > 0 or n == 0)  # T = 0: one empty segment
    c, ys = carry0, [None] * len(runs)
    for i in reversed(range(len(runs))) if reverse else range(len(runs)):
        c, ys[i] = runs[i](c)
    return c, jax.tree.map(lambda *y: jnp.concatenate(y), *ys)
