"""The fused engine: BPTT structured like cuDNN's, for any cell that declares a :class:`Step`.

A cell that declares ``step = Step(project, recur, update)`` (see
:class:`jaxrnn.cells.base.Step`) computes each step as::

    u_t = project(p, c, x_t)          input projection       (x_t W_xh)
    r_t = recur(p, c_{t-1})           recurrent projection   (h_{t-1} W_hh)
    c_t, y_t = update(p, c_{t-1}, u_t, r_t)                  (gates, row by row)

The engine runs the forward pass as a ``lax.scan`` of exactly these calls (with the
resets and masks of :func:`jaxrnn.scan`), saving ``c_{t-1}``, ``u_t`` and ``r_t`` (only
``u_t + r_t`` where ``update`` reads nothing else of them: the LSTM, Elman). Its
backward pass, a ``custom_vjp``, runs the only sequential part as a reverse scan::

    for t = T, ..., 1:
        ∂update/∂(p, c_{t-1}, u_t, r_t)  <- JAX's VJP of update, one step
        ∂L/∂c_{t-1} += ∂L/∂r_t · ∂recur/∂c   (δ W_hhᵀ)

and then differentiates ``project`` and ``recur`` over all ``T·N`` rows at once::

    dW_xh = Σ_t x_tᵀ δu_t     dx_t = δu_t W_xhᵀ     dW_hh = Σ_t h_{t-1}ᵀ δr_t

one matmul each, where autodiff of a scan accumulates ``dW_hh`` and ``dW_xh`` one
small matmul per step, reading and writing the whole gradient each time (Appleyard
et al. 2016). No derivative is written by hand: each piece is differentiated by JAX,
so a new cell gets the engine by declaring its pieces, and the engine cannot disagree
with the cell's own ``apply``.

A masked step keeps the carry: its Jacobian is the identity, and the carry's cotangent
passes through it. A reset step reads ``reset_to``, which receives the cotangent the
step's input carry gets. Per-rollout carry leaves (PRNG keys) have no cotangent.

Forward-mode differentiation (``jax.jvp``) of a ``custom_vjp`` is not defined in JAX:
:func:`dispatch` runs the plain scan instead under ``bptt="auto"`` (with a warning, once)
and raises under ``bptt="fused"``.

References:
  Werbos (1990). Backpropagation through time: what it does and how to do it.
  Proceedings of the IEEE 78(10).
  Appleyard, Kocisky, Blunsom (2016). Optimizing Performance of Recurrent Neural
  Networks on GPUs. arXiv:1604.01946 (weight gradients as one GEMM over time).
  NVIDIA cuDNN, ``cudnnRNNBackwardData`` / ``cudnnRNNBackwardWeights``.
"""

import logging
import warnings

import jax
import jax.numpy as jnp
import numpy as np
from jax.extend import core as jex_core

from jaxrnn.cells.base import Step, carry_dtype
from jaxrnn.rollout.steps import keep_masked, where_rows

log = logging.getLogger("jaxrnn")
_JVP_MESSAGE = "can't apply forward-mode autodiff (jvp) to a custom_vjp function"


class ForwardModeError(TypeError):
    """Forward-mode differentiation reached the fused engine, which has only a VJP."""


def _differentiable(x) -> bool:
    return jnp.issubdtype(x.dtype, jnp.inexact)


def _split(tree):
    """``(floats, rest)``: two trees of ``tree``'s structure, each with None where the
    other holds the leaf; inexact leaves are differentiated, the others (keys) are not."""
    floats = jax.tree.map(lambda x: x if _differentiable(x) else None, tree)
    rest = jax.tree.map(lambda x: None if _differentiable(x) else x, tree)
    return floats, rest


def _join(floats, rest):
    return jax.tree.map(
        lambda f, r: r if f is None else f, floats, rest, is_leaf=lambda x: x is None
    )


def _add(a, b):
    return jax.tree.map(jnp.add, a, b)


def _accumulator(tree):
    """Zeros of ``tree``'s float leaves in at least float32 (a bfloat16 gradient summed
    over ``T`` steps would lose the small terms), None for the others."""
    floats, _ = _split(tree)
    return jax.tree.map(lambda x: jnp.zeros(x.shape, carry_dtype(x.dtype)), floats)


def _cast_like(grads, ref):
    """``grads`` (floats only, None elsewhere) as cotangents of ``ref``: its dtypes, float0
    zeros for its non-float leaves (keys), None where ``ref`` has None."""

    def cotangent(g, x):
        if g is not None:
            return g.astype(x.dtype)
        return None if x is None else np.zeros(x.shape, jax.dtypes.float0)

    return jax.tree.map(
        cotangent,
        grads,
        ref,
        is_leaf=lambda x: x is None,
    )


def _read_params(piece, params, *args):
    """Which leaves of ``params`` the ``piece`` of a step reads: a tree of bools, from its
    jaxpr. The backward pass accumulates gradients only for the leaves ``update`` reads,
    not a zero ``W_hh`` (read only by ``recur``) added at every step."""
    leaves, treedef = jax.tree.flatten(params)
    jaxpr = jax.make_jaxpr(lambda ls, *a: piece(treedef.unflatten(ls), *a))(leaves, *args).jaxpr
    read = {v for eqn in jaxpr.eqns for v in eqn.invars if isinstance(v, jex_core.Var)}
    read |= {v for v in jaxpr.outvars if isinstance(v, jex_core.Var)}
    return treedef.unflatten([v in read for v in jaxpr.invars[: len(leaves)]])


def _reads_only_the_sum(update, params, c, u, r) -> bool:
    """Whether ``update`` reads ``u_t`` and ``r_t`` only as ``u_t + r_t`` (the LSTM and
    Elman cells: ``x W_xh + h W_hh + b``), from its jaxpr. The forward pass then saves the
    sum, one ``[T, N, G·H]`` sequence instead of two, and the backward pass calls
    ``update`` on ``(u_t + r_t, 0)``: the same value, and the same cotangent for both."""
    if not (isinstance(u, jax.ShapeDtypeStruct) and isinstance(r, jax.ShapeDtypeStruct)):
        return False  # a tree (zoneout's u holds its masks)
    if (u.shape, u.dtype) != (r.shape, r.dtype):
        return False
    jaxpr = jax.make_jaxpr(lambda c, u, r: update(params, c, u, r))(c, u, r).jaxpr
    u_var, r_var = jaxpr.invars[-2:]
    uses = [e for e in jaxpr.eqns if u_var in e.invars or r_var in e.invars]
    return (
        len(uses) == 1
        and uses[0].primitive.name == "add"
        and set(uses[0].invars) == {u_var, r_var}
        and not {u_var, r_var} & set(jaxpr.outvars)
    )


def _only_leaves(tree, keep):
    """``tree`` with None for each leaf whose flag in ``keep`` (in leaf order) is False."""
    leaves = [a if k else None for a, k in zip(jax.tree.leaves(tree), keep, strict=True)]
    return jax.tree.unflatten(jax.tree.structure(tree), leaves)


def _over_all_steps(step: Step, params, cs, consts, xs, dus, drs):
    """The VJPs of ``project`` and ``recur`` over all ``T`` steps: ``(dp_project, dxs, dp_recur)``.

    ``cs`` holds the carry entering each step (``[T, ...]`` leaves), ``consts`` the fixed
    leaves (None in ``cs``). Where every leaf is per sequence (``[T, *batch, ...]``) the
    ``T·N`` steps are rows of one call: each weight gradient is one ``[T·N, ·]ᵀ @ [T·N, ·]``
    matmul. A per-rollout leaf (a key) must see one step's shapes (a dropout mask is
    drawn for one step's ``x``), so those cells map the pieces over ``T``; XLA then
    transposes the ``[T, N, G·H]`` deltas before the matmul (about 10 % of an LSTM's step
    at (8, 1000, 16, 64)).
    """
    lead = xs.shape[:-1]
    per_sequence = all(a.shape[: len(lead)] == lead for a in jax.tree.leaves(cs))
    if per_sequence and not jax.tree.leaves(consts):

        def rows(tree):
            return jax.tree.map(lambda a: a.reshape(-1, *a.shape[len(lead) :]), tree)

        _, pull_project = jax.vjp(lambda p, x: step.project(p, rows(cs), x), params, rows(xs))
        _, pull_recur = jax.vjp(lambda p: step.recur(p, rows(cs)), params)
        dp_project, dxs = pull_project(rows(dus))
        return dp_project, dxs.reshape(xs.shape), pull_recur(rows(drs))[0]

    def project(p, c, x):
        return step.project(p, _join(c, consts), x)

    def recur(p, c):
        return step.recur(p, _join(c, consts))

    _, pull_project = jax.vjp(lambda p, x: jax.vmap(project, (None, 0, 0))(p, cs, x), params, xs)
    _, pull_recur = jax.vjp(lambda p: jax.vmap(recur, (None, 0))(p, cs), params)
    dp_project, dxs = pull_project(dus)
    return dp_project, dxs, pull_recur(drs)[0]


def rollout(step: Step, params, carry0, xs, valid, starts, *, reverse, unroll, reset_to):
    """Run ``step`` over time-major ``xs [T, *batch, I]`` with the fused backward pass.

    ``valid`` and ``starts`` are ``[T, *batch]`` bool or None, as in ``jaxrnn.scan``'s
    plain rollout; resets restart from ``reset_to``. Returns ``(final_carry, ys)``,
    the values of the plain rollout (the same calls, in the same order).
    """
    batch_shape = xs.shape[1:-1]
    # Which carry leaves are fixed: keys that every step passes on unchanged (a dropout
    # key, not zoneout's, which is split at every step). The backward pass reads them
    # from carry0 rather than from a saved copy per step, so that XLA sees them as loop
    # invariants and draws a dropout mask once, not at every step (that took the LSTM
    # with dropout from 56 to 111 ms at (8, 1000, 16, 64)). Found while tracing forward's body.
    fixed = {}

    def forward(params, carry0, reset_to, xs, valid, starts):
        def body(c_prev, inputs):
            x, v, s = inputs
            c = c_prev if s is None else where_rows(s, reset_to, c_prev, batch_shape)
            u, r = step.project(params, c, x), step.recur(params, c)
            c_new, y = keep_masked(v, c, *step.update(params, c, u, r), batch_shape)
            pairs = zip(jax.tree.leaves(c_new), jax.tree.leaves(c_prev), strict=True)
            fixed["leaves"] = [a is b and not _differentiable(a) for a, b in pairs]
            saved = _only_leaves(c, [not f for f in fixed["leaves"]])
            shapes = jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype), (c, u, r))
            fixed["sum"] = _reads_only_the_sum(step.update, params, *shapes)
            return c_new, (y, (saved, u + r, None) if fixed["sum"] else (saved, u, r))

        return jax.lax.scan(body, carry0, (xs, valid, starts), reverse=reverse, unroll=unroll)

    @jax.custom_vjp
    def run(params, carry0, reset_to, xs, valid, starts):
        final, (ys, _) = forward(params, carry0, reset_to, xs, valid, starts)
        return final, ys

    def run_fwd(params, carry0, reset_to, xs, valid, starts):
        final, (ys, saved) = forward(params, carry0, reset_to, xs, valid, starts)
        return (final, ys), (params, carry0, reset_to, xs, valid, starts, saved)

    def run_bwd(residuals, cotangents):
        params, carry0, reset_to, xs, valid, starts, (cs, us, rs) = residuals
        d_final, d_ys = cotangents
        consts = _only_leaves(carry0, fixed["leaves"])  # the fixed leaves, None in cs

        # Only the params update reads get a per-step gradient (biases, peepholes, norms).
        c, u, r = jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape[1:], a.dtype), (cs, us, rs))
        r = u if fixed["sum"] else r
        read = _read_params(step.update, params, _join(c, consts), u, r)
        # δr W_hhᵀ contracts W_hh on its last axis, which XLA:CPU's dot runs 1.2-3x slower
        # than the same product on a weight stored transposed (18 against 6 µs a step for
        # the LSTM at (8, 1000, 16, 64)). So the loop gets the matrices recur reads laid
        # out transposed; the barrier keeps XLA from folding the two transposes away.
        by_recur = _read_params(step.recur, params, _join(c, consts))
        flipped = jax.lax.optimization_barrier(
            jax.tree.map(lambda a, k: a.T if k and a.ndim == 2 else None, params, by_recur)
        )

        def recur_params():
            return jax.tree.map(
                lambda t, a: a if t is None else t.T, flipped, params, is_leaf=lambda x: x is None
            )

        p_read = jax.tree.map(lambda x, k: x if k and _differentiable(x) else None, params, read)
        p_rest = jax.tree.map(lambda x, k: None if k and _differentiable(x) else x, params, read)

        def body(acc, inputs):
            dc, dp, d_reset = acc  # dc: the float leaves of the carry's cotangent
            c, u, r, dy, v, s = inputs
            if fixed["sum"]:  # u holds u_t + r_t, which update reads as (u_t + r_t) + 0
                r = jnp.zeros_like(u)
            c_float, c_rest = _split(_join(c, consts))
            u_float, u_rest = _split(u)  # u may hold masks (zoneout's), not differentiated

            def update(p_read, c_float, u_float, r):
                c_in = _join(c_float, c_rest)
                out = step.update(_join(p_read, p_rest), c_in, _join(u_float, u_rest), r)
                c_new, y = keep_masked(v, c_in, *out, batch_shape)
                return _split(c_new)[0], y

            _, pull = jax.vjp(update, p_read, c_float, u_float, r)
            dp_t, dc_in, du, dr = pull((dc, dy))
            # δr W_hhᵀ: the recurrent projection's VJP w.r.t. the carry (linear, so the
            # forward matmul inside jax.vjp is dead code that XLA removes).
            p = recur_params()
            _, pull_recur = jax.vjp(lambda c: step.recur(p, _join(c, c_rest)), c_float)
            dc_in = _add(dc_in, pull_recur(dr)[0])
            dp = jax.tree.map(lambda a, g: a + g.astype(a.dtype), dp, dp_t)
            if s is not None:  # a reset step read reset_to, not the previous carry
                zero = jax.tree.map(jnp.zeros_like, dc_in)
                d_reset = _add(d_reset, where_rows(s, dc_in, zero, batch_shape))
                dc_in = where_rows(s, zero, dc_in, batch_shape)
            # Where update adds u_t and r_t (LSTM, Elman) JAX's VJP returns one array for
            # both: store it once, not a second [T, N, G·H] sequence.
            return (dc_in, dp, d_reset), (du, None if dr is du else dr)

        d_reset0 = jax.tree.map(jnp.zeros_like, _split(reset_to)[0])
        (d_carry0, dp_update, d_reset), (dus, drs) = jax.lax.scan(
            body,
            (_split(d_final)[0], _accumulator(p_read), d_reset0),
            (cs, us, rs, d_ys, valid, starts),
            reverse=not reverse,
            unroll=unroll,
        )
        drs = dus if drs is None else drs
        # project and recur over all T steps at once: one matmul per weight.
        dus = _cast_like(dus, us)  # float0 for the masks
        dp_project, dxs, dp_recur = _over_all_steps(step, params, cs, consts, xs, dus, drs)
        dp = jax.tree.map(
            lambda g1, g2: g1.astype(carry_dtype(g1.dtype)) + g2.astype(carry_dtype(g1.dtype)),
            _split(dp_project)[0],
            _split(dp_recur)[0],
        )
        dp = jax.tree.map(
            lambda g, a: g if a is None else g + a,
            dp,
            dp_update,
            is_leaf=lambda x: x is None,
        )
        return (
            _cast_like(dp, params),
            _cast_like(d_carry0, carry0),
            _cast_like(d_reset, reset_to),
            dxs,
            None,
            None,
        )

    run.defvjp(run_fwd, run_bwd)
    try:
        return run(params, carry0, reset_to, xs, valid, starts)
    except TypeError as e:
        if _JVP_MESSAGE not in str(e):
            raise
        raise ForwardModeError(
            "forward-mode differentiation (jax.jvp, jax.jacfwd, jax.hessian) has no rule "
            "in the fused BPTT engine, which defines a VJP only; pass bptt='autodiff'"
        ) from None


_warned: set[str] = set()


def _warn_once(reason: str) -> None:
    if reason not in _warned:
        _warned.add(reason)
        warnings.warn(f"jaxrnn.scan: {reason}", RuntimeWarning, stacklevel=4)


def dispatch(cell, params, carry0, xs, valid, starts, *, bptt, reverse, unroll, reset_to):
    """The fused engine's ``(final_carry, ys)`` if ``bptt`` and the cell allow it, else None.

    Called by :func:`jaxrnn.scan` at trace time on time-major arguments; logs which
    path runs. A cell without a declared :class:`Step` runs the plain scan by design
    (``bptt="fused"`` then raises a ``ValueError`` saying so). Forward-mode
    differentiation cannot use the engine: under ``bptt="auto"`` the plain scan runs
    and a warning says why, once; under ``bptt="fused"`` it is a ``TypeError``.
    """
    if bptt == "autodiff":
        log.debug("jaxrnn.scan: autodiff BPTT (bptt='autodiff')")
        return None
    if cell.step is None:
        reason = (
            "the cell declares no Step (jaxrnn.cells.base.Step), so JAX differentiates "
            "the plain scan; the built-in cells and their dropout and zoneout wrappers "
            "declare one, stack() and cells built as Cell(init, initial_carry, apply) do not"
        )
        if bptt == "fused":
            raise ValueError(f"bptt='fused': {reason}")
        log.debug("jaxrnn.scan: autodiff BPTT (%s)", reason)
        return None
    # The cell's own argument checks (input size, carry fields), before any compute:
    # the engine calls its pieces, not its apply.
    jax.eval_shape(cell.apply, params, carry0, jax.ShapeDtypeStruct(xs.shape[1:], xs.dtype))
    try:
        out = rollout(
            cell.step, params, carry0, xs, valid, starts,
            reverse=reverse, unroll=unroll, reset_to=reset_to,
        )  # fmt: skip
    except ForwardModeError:
        if bptt == "fused":
            raise
        _warn_once(
            "forward-mode differentiation (jax.jvp) has no rule in the fused BPTT engine; "
            "ran the plain scan instead (pass bptt='autodiff' to choose it and silence this)"
        )
        log.debug("jaxrnn.scan: autodiff BPTT (forward mode)")
        return None
    log.debug("jaxrnn.scan: fused BPTT")
    return out
