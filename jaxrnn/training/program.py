"""The compiled program of a group of members: one step and one evaluation for all of them.

Every run is a group of ``M >= 1`` members (a solo run is a group of one) whose
configs differ at most in values carried as arrays (seed, optimizer
hyperparameters, initialisation; see :mod:`jaxrnn.sweep.engine`). The group trains
as one program over the member axis of the whole train step, with each member's
batch drawn from its own seed inside the same program. Per step ``s`` and member
``m``, with ``train_step`` of :mod:`jaxrnn.training.step`, it computes::

    batch_m          = train_batch(data, data_key(seed_m), s, B)
    state_m, metrics = train_step(state_m, batch_m)        # for every m at once

``jax.vmap`` runs the blocks of members that the member sharding puts on
different devices side by side; within a block, ``lax.map`` runs them one after
another on CPU (measured faster there, see :func:`over_members`) and ``vmap``
elsewhere. A member whose state is frozen (diverged under ``nonfinite="stop"``,
or stopped early) keeps its state exactly: ``jnp.where`` over the member axis
drops its update.

Each member's bookkeeping (non-finite count, divergence and early-stop steps, the
best validation value, its step, the evaluations since, and the params at that
step) is part of its :class:`MemberState`, so it is checkpointed with the train
state and a resumed run takes exactly the decisions an uninterrupted one would.

References:
  Bradbury et al. (2018). JAX: composable transformations of Python+NumPy programs
  (``vmap``). https://github.com/jax-ml/jax
  Lange (2022). PureJaxRL (a whole training run as one vmappable pure function).
"""

import math
import operator
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import NamedSharding

from jaxrnn.tasks.data import Dataset, Stream, batch_size_of, train_batch
from jaxrnn.tasks.objectives import Mean, Objective
from jaxrnn.training import distributed
from jaxrnn.training.config import Config
from jaxrnn.training.step import TrainState, init_state, make_eval_step, make_train_step


class MemberState(NamedTuple):
    """One member's state, as checkpointed (stacked ``[M, ...]`` in a group).

    Attributes:
      train: the :class:`~jaxrnn.training.step.TrainState`.
      skipped: int32, non-finite steps so far (logged as ``nonfinite_skipped``).
      diverged_at: int32, the step whose loss or gradient went non-finite under
        ``nonfinite="stop"`` (0: none); from then on the state is frozen.
      stopped_at: int32, the step of an early stop (0: none); frozen likewise.
      best: float32, the best validation ``best_metric`` so far (``±inf``: none).
      best_step: int32, its step (0: none).
      since_best: int32, evaluations since the best.
      best_params: the params at ``best_step`` (the initial ones before any): the model
        the test split scores, kept here rather than saved at every improvement.
    """

    train: TrainState
    skipped: jax.Array
    diverged_at: jax.Array
    stopped_at: jax.Array
    best: jax.Array
    best_step: jax.Array
    since_best: jax.Array
    best_params: Any


class Program(NamedTuple):
    """A group's compiled functions.

    ``step(state: MemberState[M], data_keys [M], s) -> (state, metrics {name: [M]})``
    draws every member's batch ``s`` and takes one train step for all;
    ``evaluate(params [M], carry [M], batch) -> (metrics [M], carry [M])`` scores
    every member on one shared held-out batch; ``initial_carry(params [M],
    batch_size) -> carry [M]`` starts a stateful objective's held-out stream;
    ``keep_best(state, improved [M]) -> state`` copies the params of the members
    that improved into ``best_params``.
    """

    step: Callable
    evaluate: Callable
    initial_carry: Callable
    keep_best: Callable


def data_key(config: Config) -> jax.Array:
    """The key of a member's training batches: batch ``s`` is drawn from it at step ``s``."""
    return jax.random.key(config.seed + 1)


def _keys(config: Config) -> tuple[jax.Array, jax.Array]:
    """A member's keys for ``model.init`` and for training, from its seed."""
    k_init, k_train = jax.random.split(jax.random.key(config.seed))
    return k_init, k_train


def initial_state(
    config: Config,
    model: Any,
    objective: Objective,
    optimizer: optax.GradientTransformation,
    worst: float,
    params: Any = None,
) -> MemberState:
    """A member's state before step 0: params from ``model.init`` under its seed's key
    (or ``params``, already so made), its optimizer's state, a stateful objective's
    carry, and ``best = worst``."""
    k_init, k_train = _keys(config)
    params = model.init(k_init) if params is None else params
    carry = () if objective.carry is None else objective.carry(params, config.train.batch_size)
    zero = jnp.zeros((), jnp.int32)
    return MemberState(
        init_state(params, optimizer, k_train, carry),
        zero,
        zero,
        zero,
        jnp.asarray(worst, jnp.float32),
        zero,
        zero,
        jax.tree.map(jnp.copy, params),
    )


def _same_program(a, b) -> bool:
    """Whether two closed jaxprs compute the same thing: equal equations (their printed
    form, literals included) and equal captured constants."""
    if str(a.jaxpr) != str(b.jaxpr) or len(a.consts) != len(b.consts):
        return False
    for x, y in zip(a.consts, b.consts, strict=True):
        if jnp.issubdtype(getattr(x, "dtype", np.float32), jax.dtypes.prng_key):
            x, y = jax.random.key_data(x), jax.random.key_data(y)
        if np.shape(x) != np.shape(y) or not np.array_equal(np.asarray(x), np.asarray(y)):
            return False
    return True


def shared_init(models: Sequence[Any]) -> Callable | None:
    """One ``init(key)`` for every member when the members' ``model.init`` are the same
    function of the key (equal traced programs: a sweep over seeds or learning rates),
    else None; None too for a model whose ``init`` reads values on the host."""
    key = jax.random.key(0)
    try:
        traced = [jax.make_jaxpr(m.init, return_shape=True)(key) for m in models]
    except jax.errors.JAXTypeError:
        return None
    (first, shapes), rest = traced[0], traced[1:]
    return models[0].init if all(_same_program(first, j) and s == shapes for j, s in rest) else None


def initial_states(configs, models, objective, optimizers, worst: float, ids) -> MemberState:
    """The members' :func:`initial_state`, stacked (:func:`stack`), built as one compiled
    program. Run eagerly, each small operation of ``model.init`` and ``optimizer.init``
    is a program of its own, traced and lowered one by one: that took 1.2-1.3 s of the
    4.6-8.0 s to the first training step of ``adding_lstm``'s smoke run with a warm
    compilation cache (``bench/startup.py``). Where the members' models initialise
    alike (:func:`shared_init`), one ``init`` runs in a loop over their keys
    (``lax.map``) instead of ``M`` copies of it in the program, so the program's size
    does not grow with ``M``. Not ``vmap``: a batched QR (the orthogonal initialiser)
    runs LAPACK over the batch on XLA:CPU's thread pool, and two of them at once
    deadlocked that pool on 2 cores (jaxlib 0.10.2, ``jax::ParallelBatchMap``). The
    values are those of the eager calls, bit for bit.
    A model whose ``init`` reads values on the host (``np.asarray`` of an array, an
    ``if`` on one) cannot be traced: its states are built eagerly, as before."""
    init = shared_init(models) if len(models) > 1 else None

    def build():
        params = [None] * len(configs)
        if init is not None:
            keys = jnp.stack([_keys(c)[0] for c in configs])
            stacked = jax.lax.map(init, keys)
            params = [jax.tree.map(operator.itemgetter(i), stacked) for i in range(len(configs))]
        states = [
            initial_state(c, model, objective, opt, worst, p)
            for c, model, opt, p in zip(configs, models, optimizers, params, strict=True)
        ]
        return stack(states, ids)

    try:
        return jax.jit(build)()
    except jax.errors.JAXTypeError:  # a concrete value was needed while tracing
        return build()


def stack(states: Sequence[MemberState], ids: Sequence[str]) -> MemberState:
    """Stack members' states along a new leading axis.

    Raises:
      ValueError: if two members' states differ in structure, shape or dtype (they
        cannot share a program), naming both.
    """
    specs = [
        (jax.tree.structure(s), [(x.shape, x.dtype) for x in jax.tree.leaves(s)]) for s in states
    ]
    for member_id, spec in zip(ids, specs, strict=True):
        if spec != specs[0]:
            raise ValueError(
                f"members: {ids[0]} and {member_id} have train states of different structure, "
                f"shapes or dtypes and cannot share a program"
            )
    return jax.tree.map(lambda *xs: jnp.stack(xs), *states)


@jax.jit
def member(tree, index: int):
    """Member ``index`` of a stacked tree.

    One compiled program for the whole tree: across processes, a member-sharded state
    indexed leaf by leaf, op by op, sometimes left the processes waiting in different
    ops (a two-process sweep hung at its checkpoint)."""
    return jax.tree.map(lambda x: x[index], tree)


def over_members(blocks: int, loop_within: bool) -> Callable:
    """``fn`` applied to every member: ``over(fn, tree [M, ...], *shared)``.

    The ``M`` members form ``blocks`` blocks, one per slice of the member sharding,
    and the blocks always run side by side (``vmap`` with ``spmd_axis_name``, which
    the partitioner splits over the devices). Within a block, ``loop_within`` runs
    the members one after another (``lax.map``) instead of vmapping them too. On
    XLA:CPU the loop is the faster of the two: vmapping the GRU train step of
    ``bench/sweep.py`` over 16 members took 9.0-9.5 ms per member, ``lax.map``
    3.8-3.9 ms, a single member 4.6 ms (2 cores), because the batched recurrent
    kernels do not run as well as the plain ones. Other backends vmap within
    blocks too, where one wider matmul fills the device better. Either way every
    member computes what it would compute alone.
    """

    def over(fn, tree, *shared):
        one = lambda t: fn(t, *shared)  # noqa: E731
        if not loop_within:
            return jax.vmap(one, spmd_axis_name=distributed.MEMBERS)(tree)
        split = jax.tree.map(lambda x: x.reshape(blocks, -1, *x.shape[1:]), tree)
        within = lambda t: jax.lax.map(one, t)  # noqa: E731
        out = jax.vmap(within, spmd_axis_name=distributed.MEMBERS)(split)
        return jax.tree.map(lambda x: x.reshape(-1, *x.shape[2:]), out)

    return over


def make_program(
    data: Stream | Dataset,
    objective: Objective,
    optimizer: optax.GradientTransformation,
    schedule: optax.Schedule,
    config: Config,
    sharding: NamedSharding,
) -> Program:
    """The jitted step and evaluation over every member of a group (``config``: any
    member's; ``sharding``: the member sharding, which every output keeps, so the
    step's outputs, fed back in, never make it compile a second program)."""
    train_step = make_train_step(objective, optimizer, schedule)
    eval_step = make_eval_step(objective)
    stop = config.train.nonfinite == "stop"
    batch_size = config.train.batch_size
    blocks = sharding.mesh.shape[distributed.MEMBERS]
    over = over_members(blocks, loop_within=jax.default_backend() == "cpu")
    per_member_batch = distributed.batch_spec(sharding)

    def member_step(pair, s):
        train, key = pair
        batch = train_batch(data, key, s, batch_size)
        batch = jax.lax.with_sharding_constraint(batch, per_member_batch)
        return train_step(train, batch)

    def step(state: MemberState, data_keys, s):
        train, metrics = over(member_step, (state.train, data_keys), s)
        frozen = (state.diverged_at > 0) | (state.stopped_at > 0)
        bad = ~metrics["finite"] & ~frozen
        diverged_at = jnp.where(bad, s + 1, state.diverged_at) if stop else state.diverged_at
        keep = (diverged_at > 0) | (state.stopped_at > 0)  # this step's update is dropped

        def select(new, old):
            return jnp.where(keep.reshape(keep.shape + (1,) * (new.ndim - 1)), old, new)

        state = state._replace(
            train=jax.tree.map(select, train, state.train),
            skipped=state.skipped + bad.astype(state.skipped.dtype),
            diverged_at=diverged_at.astype(state.diverged_at.dtype),
        )
        return state, metrics

    def evaluate(params, carry, batch):
        return over(lambda pc, b: eval_step(pc[0], pc[1], b), (params, carry), batch)

    def initial_carry(params, size):
        return over(lambda p: objective.carry(p, size), params)

    def keep_best(state: MemberState, improved):
        def pick(new, old):
            return jnp.where(improved.reshape(improved.shape + (1,) * (new.ndim - 1)), new, old)

        return state._replace(best_params=jax.tree.map(pick, state.train.params, state.best_params))

    return Program(
        jax.jit(step, donate_argnums=0, out_shardings=sharding),
        jax.jit(evaluate, out_shardings=sharding),
        jax.jit(initial_carry, static_argnums=1, out_shardings=sharding),
        jax.jit(keep_best, donate_argnums=0, out_shardings=sharding),
    )


def evaluate(
    program: Program, objective: Objective, params, batches: Sequence
) -> list[dict[str, float]]:
    """Every member's metrics on a held-out split, as exact means over its examples.

    A scalar metric is weighted by each batch's number of examples, a
    :class:`~jaxrnn.tasks.Mean` summed and divided once (and left out where it counted
    nothing); a stateful objective's carry
    runs through the batches in order from its initial carry; host metrics
    (``objective.evaluate``) are computed per member from its params.

    Returns:
      ``[{metric: value}]``, one dict per member.
    """
    carry = ()
    if objective.carry is not None:
        sizes = {batch_size_of(b) for b in batches}
        if len(sizes) != 1:
            raise ValueError(
                f"batches: a stateful objective threads its carry through a split's batches, "
                f"which must all have one size; got sizes {sorted(sizes)}"
            )
        carry = program.initial_carry(params, sizes.pop())
    totals: dict[str, np.ndarray] = {}
    counts: dict[str, np.ndarray] = {}
    for batch in batches:
        metrics, carry = program.evaluate(params, carry, batch)
        n = batch_size_of(batch)
        for name, value in distributed.fetch(metrics).items():
            if isinstance(value, Mean):
                total, count = np.asarray(value.total, np.float64), value.count
            else:
                total, count = np.asarray(value, np.float64) * n, np.full(np.shape(value), n)
            totals[name] = totals.get(name, 0.0) + total
            counts[name] = counts.get(name, 0.0) + np.asarray(count, np.float64)
    size = len(jax.tree.leaves(params)[0])
    # A mean over nothing (accuracy on longer expressions of a split that has none) is
    # left out, not reported as 0.
    results = [
        {name: float(totals[name][m] / counts[name][m]) for name in totals if counts[name][m]}
        for m in range(size)
    ]
    if objective.evaluate is not None:
        host = distributed.fetch(params)
        for m, result in enumerate(results):
            extra = objective.evaluate(jax.tree.map(operator.itemgetter(m), host), batches)
            result.update({name: float(value) for name, value in extra.items()})
    return results


def worst(mode: str) -> float:
    """The starting ``best`` of a metric minimised (``inf``) or maximised (``-inf``)."""
    return math.inf if mode == "min" else -math.inf
