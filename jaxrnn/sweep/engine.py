"""Training the members of a sweep together: one compiled program per group of members.

Members whose configs differ only in *vmappable* keys form a group. A group trains
as one program over the member axis of the whole train step (params, optimizer
state, PRNG keys and the per-member hyperparameters, which live in the optimizer
state as arrays), with each member's batches drawn from its own seed inside the same
program: ``jax.vmap`` across the blocks of members that the member sharding puts on
different devices, and within a block ``lax.map`` on CPU (measured faster there,
see :func:`_over_members`) or ``vmap`` elsewhere. One compilation serves the whole
group; groups run one after another. Per step and member ``m``, with ``step`` the
train step of :mod:`jaxrnn.training.step`, this computes what ``jaxrnn train``
computes for that member alone::

    batch_m          = task.batch(data_key(seed_m), s, B)
    state_m, metrics = step(state_m, batch_m)        # for every m at once

Vmappable keys (:data:`VMAPPABLE`), carried as arrays:

* ``seed`` (the member's init, dropout and data keys) and ``name``;
* ``optim.learning_rate``, ``momentum``, ``b1``, ``b2``, ``eps``, ``weight_decay``
  (``optax.inject_hyperparams`` state), ``optim.clip_norm`` and ``clip_value``
  (injected clipping bounds, see :mod:`jaxrnn.training.optim`) — except that None
  (clipping off) and a momentum of 0 (no momentum trace) change the optimizer's
  structure and so split groups;
* ``model.forget_bias``, ``identity_scale``, ``recurrent_init`` and ``chrono_t_max``,
  which only shape the initial params (each member is initialised from its own
  config).

Every other key splits groups: shapes (``model.hidden_size``, ``num_layers``,
``cell``, ``task.*``, ``train.batch_size``), the traced program (``model.dropout``
is a Python float inside the stacked cell, ``model.layer_norm``, ``optim.name``,
``optim.schedule`` and its parameters, ``nesterov``) and the loop
(``train.steps``, ``eval_every``, ``nonfinite``, ...).

Each member keeps its own non-finite state: under ``train.nonfinite="stop"`` a
member whose step is non-finite is frozen (``jnp.where`` over the member axis
keeps its whole state) and marked ``diverged``; the others go on. Under
``"skip"`` the step itself leaves a non-finite member's params unchanged, as in a
single run.

A sweep directory::

    sweep.json                      the spec, the members (id, overrides, config hash,
                                    group) and the versions
    members/<id>/config.json        the member's resolved config (and manifest.json)
    members/<id>/metrics.jsonl      records as ``jaxrnn train`` writes them
    members/<id>/status.json        finished | diverged | running | interrupted, step, final
    groups/<gid>/checkpoints/       orbax checkpoints of the group's stacked state

Resume: running again on the same directory restores each unfinished group from
its latest checkpoint (every batch and step key is a pure function of (seed,
step), so the result equals an uninterrupted sweep); groups whose members all
finished or diverged are not run again, and their files are not touched.
SIGTERM/SIGINT checkpoint the running group at the next step and stop.

References:
  Bradbury et al. (2018). JAX: composable transformations of Python+NumPy programs
  (``vmap``). https://github.com/jax-ml/jax
  optax ``inject_hyperparams``: https://optax.readthedocs.io/
"""

import hashlib
import json
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxrnn.sweep.spec import Member, Spec
from jaxrnn.training import config as config_lib
from jaxrnn.training import distributed, loop
from jaxrnn.training.checkpoint import Checkpointer
from jaxrnn.training.step import TrainState

VMAPPABLE = (
    "name",
    "seed",
    "optim.learning_rate",
    "optim.momentum",
    "optim.b1",
    "optim.b2",
    "optim.eps",
    "optim.weight_decay",
    "optim.clip_norm",
    "optim.clip_value",
    "model.forget_bias",
    "model.identity_scale",
    "model.recurrent_init",
    "model.chrono_t_max",
)
# Values of vmappable keys that switch an optimizer part off, changing the state's structure.
_STRUCTURAL = {"optim.clip_norm": (None,), "optim.clip_value": (None,), "optim.momentum": (0.0,)}
TERMINAL = ("finished", "diverged")


class Group(NamedTuple):
    """Members trained by one compiled program (``id``: ``"g000"``, ...), in spec order."""

    id: str
    members: list[Member]


class GroupState(NamedTuple):
    """The state of a group, every leaf with a leading member axis ``[M, ...]``.

    Attributes:
      train: the members' :class:`~jaxrnn.training.step.TrainState`, stacked.
      skipped: int32 ``[M]``: non-finite steps so far (logged as ``nonfinite_skipped``).
      diverged_at: int32 ``[M]``: the step whose loss or gradient went non-finite under
        ``nonfinite="stop"`` (0: none); from then on the member's state is frozen.
    """

    train: TrainState
    skipped: jax.Array
    diverged_at: jax.Array


class Program(NamedTuple):
    """A group's compiled functions (built from any one member's config).

    ``step(state: GroupState, data_keys [M], s) -> (GroupState, metrics {name: [M]})``
    draws every member's batch ``s`` and takes one train step for all;
    ``evaluate(params [M, ...], eval_keys [M], i) -> metrics {name: [M]}`` is the
    eval step on every member's held-out batch ``i``.
    """

    experiment: loop.Experiment
    step: Callable
    evaluate: Callable


def group_key(cfg: config_lib.Config) -> str:
    """A hash of ``cfg`` with its vmappable values blanked: equal keys, one program."""
    resolved = config_lib.to_dict(cfg)
    for key in VMAPPABLE:
        *path, leaf = key.split(".")
        section = resolved
        for part in path:
            section = section[part]
        if section[leaf] not in _STRUCTURAL.get(key, ()):
            section[leaf] = "<per member>"
    canonical = json.dumps(resolved, sort_keys=True)
    return hashlib.sha256(canonical.encode()).hexdigest()[:12]


def plan(members: Sequence[Member], max_group_size: int | None = None) -> list[Group]:
    """Split members into groups by :func:`group_key`, at most ``max_group_size`` each.

    Groups keep the spec order (by first member), so a spec always gives the same plan.
    """
    if max_group_size is not None and (not isinstance(max_group_size, int) or max_group_size < 1):
        raise ValueError(f"max_group_size: expected an int >= 1 or None, got {max_group_size!r}")
    by_key: dict[str, list[Member]] = {}
    for member in members:
        by_key.setdefault(group_key(member.config), []).append(member)
    groups = []
    for same in by_key.values():
        size = max_group_size or len(same)
        for i in range(0, len(same), size):
            groups.append(Group(f"g{len(groups):03d}", same[i : i + size]))
    return groups


def _over_members(blocks: int, loop_within: bool) -> Callable:
    """``fn`` applied to every member: ``over(fn, tree [M, ...], keys [M], i)``.

    The ``M`` members form ``blocks`` blocks, one per slice of the member sharding,
    and the blocks always run side by side (``vmap``, which the partitioner splits
    over the devices). Within a block, ``loop_within`` runs the members one after
    another (``lax.map``) instead of vmapping them too. On XLA:CPU the loop is the
    faster of the two: vmapping the GRU train step of ``bench/sweep.py`` over 16
    members took 9.0–9.5 ms per member, ``lax.map`` 3.8–3.9 ms, a single member
    4.6 ms (2 cores), because the batched recurrent kernels do not run as well as
    the plain ones. Other backends vmap within blocks too, where one wider matmul
    should fill the device better (not measured here). Either way every member
    computes what its own ``jaxrnn train`` computes.
    """

    def over(fn, tree, keys, i):
        member = lambda t, k: fn(t, k, i)  # noqa: E731
        if not loop_within:
            return jax.vmap(member)(tree, keys)
        split = jax.tree.map(lambda x: x.reshape(blocks, -1, *x.shape[1:]), (tree, keys))
        within = lambda t, k: jax.lax.map(lambda tk: member(*tk), (t, k))  # noqa: E731
        out = jax.vmap(within)(*split)
        return jax.tree.map(lambda x: x.reshape(-1, *x.shape[2:]), out)

    return over


def make_program(cfg: config_lib.Config, sharding=None) -> Program:
    """The jitted step and evaluation over every member of the group of ``cfg``.

    ``sharding``: the layout of the member axis, which every output keeps (so the
    step's outputs, fed back in, never make it compile a second program).
    """
    exp = loop.build(cfg)
    stop = cfg.train.nonfinite == "stop"
    batch_size, eval_batch_size = cfg.train.batch_size, cfg.train.eval_batch_size
    blocks = 1 if sharding is None else sharding.mesh.shape[distributed.MEMBERS]
    over_members = _over_members(blocks, loop_within=jax.default_backend() == "cpu")

    def member_step(train, data_key, s):
        return exp.train_step(train, exp.task.batch(data_key, s, batch_size))

    def member_eval(params, eval_key, i):
        return exp.eval_step(params, exp.eval_task.batch(eval_key, i, eval_batch_size))

    def step(state: GroupState, data_keys, s):
        train, metrics = over_members(member_step, state.train, data_keys, s)
        frozen = state.diverged_at > 0
        bad = ~metrics["finite"] & ~frozen
        diverged_at = jnp.where(bad, s + 1, state.diverged_at) if stop else state.diverged_at
        keep = diverged_at > 0  # frozen now: this step's update is dropped, step counter too

        def select(new, old):
            return jnp.where(keep.reshape(keep.shape + (1,) * (new.ndim - 1)), old, new)

        train = jax.tree.map(select, train, state.train)
        skipped = state.skipped + bad.astype(state.skipped.dtype)
        return GroupState(train, skipped, diverged_at.astype(state.diverged_at.dtype)), metrics

    def evaluate(params, eval_keys, i):
        return over_members(member_eval, params, eval_keys, i)

    return Program(
        exp,
        jax.jit(step, donate_argnums=0, out_shardings=sharding),
        jax.jit(evaluate, out_shardings=sharding),
    )


def init_group(members: Sequence[Member]) -> GroupState:
    """Every member's initial state, exactly as ``jaxrnn train`` builds it, stacked.

    Raises:
      ValueError: if the members' states differ in structure, shape or dtype (they
        do not belong in one group).
    """
    states = [loop.init_state(m.config, loop.build(m.config)) for m in members]
    specs = [
        (jax.tree.structure(s), [(x.shape, x.dtype) for x in jax.tree.leaves(s)]) for s in states
    ]
    for member, spec in zip(members, specs, strict=True):
        if spec != specs[0]:
            raise ValueError(
                f"members: {members[0].id} and {member.id} have train states of different "
                f"structure, shapes or dtypes and cannot share a program; their overrides: "
                f"{members[0].overrides} vs {member.overrides}"
            )
    train = jax.tree.map(lambda *xs: jnp.stack(xs), *states)
    n = len(members)
    return GroupState(train, jnp.zeros((n,), jnp.int32), jnp.zeros((n,), jnp.int32))


def _evaluate(program: Program, cfg, params, eval_keys) -> list[dict]:
    """Per member, the mean eval metrics over ``eval_batches`` (as ``loop.evaluate``)."""
    n = cfg.train.eval_batches
    totals: list[dict] = [{} for _ in range(eval_keys.shape[0])]
    for i in range(n):
        metrics = distributed.fetch(program.evaluate(params, eval_keys, i))
        for m, member_totals in enumerate(totals):
            for name, value in metrics.items():
                member_totals[name] = member_totals.get(name, 0.0) + float(value[m]) / n
    for member_totals in totals:
        member_totals["baseline_loss"] = program.experiment.task.baseline
    return totals


def _read_status(member_dir: Path) -> dict | None:
    path = member_dir / "status.json"
    return json.loads(path.read_text()) if path.exists() else None


def _result(status: dict) -> dict:
    """What :func:`run` returns for a member: status, step and the final eval metrics."""
    return {"status": status["status"], "step": status["step"], **status.get("final", {})}


class _Board:
    """A live table of every member's step, latest loss and status (rich)."""

    def __init__(self, members: Sequence[Member], enabled: bool):
        self.rows = {
            m.id: [", ".join(f"{k}={v}" for k, v in m.overrides.items()), "0", "", "pending"]
            for m in members
        }
        self.enabled = enabled

    def _table(self):
        from rich.table import Table

        table = Table("member", "setting", "step", "loss", "status", box=None)
        for member_id, row in self.rows.items():
            table.add_row(member_id, *row)
        return table

    def __enter__(self):
        from rich.live import Live

        self.live = Live(get_renderable=self._table, refresh_per_second=4) if self.enabled else None
        if self.live is not None:
            self.live.__enter__()
        return self

    def update(self, member_id: str, step: int | None = None, loss=None, status=None) -> None:
        row = self.rows[member_id]
        if step is not None:
            row[1] = str(step)
        if loss is not None:
            row[2] = f"{loss:.4g}"
        if status is not None:
            row[3] = status

    def __exit__(self, *exc):
        if self.live is not None:
            self.live.__exit__(*exc)


def _write_sweep_json(sweep_dir: Path, groups: list[Group], spec: Spec | None) -> None:
    """Write ``sweep.json``, or check that the one there describes the same members."""
    members = [
        {
            "id": m.id,
            "overrides": m.overrides,
            "config_hash": config_lib.config_hash(m.config),
            "group": g.id,
        }
        for g in groups
        for m in g.members
    ]
    path = sweep_dir / "sweep.json"
    if path.exists():
        existing = json.loads(path.read_text())["members"]
        if existing != json.loads(json.dumps(members)):
            raise ValueError(
                f"sweep_dir: {sweep_dir} holds a different sweep (other members, configs or "
                f"groups; max_group_size counts); choose another directory for a new sweep"
            )
        return
    if not distributed.is_primary():
        return  # process 0 writes; the others only check
    versions = loop.manifest(groups[0].members[0].config)
    for key in ("seed", "config_hash"):
        versions.pop(key)
    described = {
        "config": spec.config if spec else groups[0].members[0].config.name,
        "base_overrides": list(spec.base_overrides) if spec else [],
        "grid": spec.grid if spec else {},
        "random": spec.random if spec else {},
        "trials": spec.trials if spec else 0,
        "seeds": spec.seeds if spec else sorted({m.config.seed for g in groups for m in g.members}),
        "members": members,
        "versions": versions,
    }
    sweep_dir.mkdir(parents=True, exist_ok=True)
    # Atomic, so that another process of a multi-process run reads all or nothing.
    tmp = sweep_dir / "sweep.json.tmp"
    tmp.write_text(json.dumps(described, indent=2))
    tmp.replace(path)


def _run_group(group: Group, sweep_dir: Path, stop, board: _Board, echo) -> dict[str, dict]:
    dirs = [sweep_dir / "members" / m.id for m in group.members]
    statuses = [_read_status(d) for d in dirs]
    if all(s is not None and s["status"] in TERMINAL for s in statuses):
        for m, s in zip(group.members, statuses, strict=True):
            board.update(m.id, s["step"], s.get("final", {}).get("loss"), s["status"])
        return {m.id: _result(s) for m, s in zip(group.members, statuses, strict=True)}
    for m, d in zip(group.members, dirs, strict=True):
        loop._prepare_workdir(m.config, d)
    cfg = group.members[0].config
    # The one placement of the member axis: over every device (jaxrnn.training.distributed).
    # Before the restore, so that orbax restores every process's shards in place.
    n = len(group.members)
    members_axis = distributed.member_sharding(n)
    program = make_program(cfg, members_axis)
    data_keys = jnp.stack([loop.data_key(m.config) for m in group.members])
    eval_keys = jnp.stack([loop.eval_key(m.config) for m in group.members])
    state, data_keys, eval_keys = distributed.place(
        (init_group(group.members), data_keys, eval_keys), members_axis
    )
    ckpt = Checkpointer(
        sweep_dir / "groups" / group.id / "checkpoints", keep_last=cfg.train.keep_last
    )
    restored, start = ckpt.restore(state), 0
    if restored is not None:
        start, state = restored
        echo(f"group {group.id}: resuming {len(group.members)} members from step {start}")

    diverged_at = distributed.fetch(state.diverged_at)
    logs = []
    for m, d, at in zip(group.members, dirs, diverged_at, strict=True):
        loop._truncate_log(d / "metrics.jsonl", start)
        # Only process 0 logs; the others write the same records to nowhere.
        primary = distributed.is_primary()
        logs.append((d / "metrics.jsonl").open("a") if primary else open(os.devnull, "w"))  # noqa: SIM115
        status = "diverged" if at else "running"
        loop._write_status(d, status, step=int(at) if at else start)
        board.update(m.id, start, status=status)

    steps, log_every = cfg.train.steps, cfg.train.log_every
    tokens_per_step = (
        cfg.train.batch_size * program.experiment.task.batch(loop.data_key(cfg), 0, 1).mask.size
    )
    outcome, evals, evals_step = "finished", None, None
    t_last, step_last = time.perf_counter(), start
    try:
        for s in range(start, steps):
            state, metrics = program.step(state, data_keys, s)
            done = s + 1
            before, diverged_at = diverged_at, distributed.fetch(state.diverged_at)
            for m, d, was, now in zip(group.members, dirs, before, diverged_at, strict=True):
                if now and not was:
                    loop._write_status(d, "diverged", step=int(now))
                    board.update(m.id, done, status="diverged")
            active = diverged_at == 0
            if done % log_every == 0 or done == steps:
                now = time.perf_counter()
                rate = (done - step_last) / max(now - t_last, 1e-9)
                t_last, step_last = now, done
                host = distributed.fetch(metrics)
                skipped = distributed.fetch(state.skipped)
                for i in np.flatnonzero(active):
                    record = {k: float(v[i]) for k, v in host.items()}
                    record.update(step=done, steps_per_s=rate, tokens_per_s=rate * tokens_per_step)
                    record["nonfinite_skipped"] = int(skipped[i])
                    logs[i].write(json.dumps({"kind": "train", **record}) + "\n")
                    board.update(group.members[i].id, done, record["loss"])
            if done % cfg.train.eval_every == 0 or done == steps:
                evals, evals_step = _evaluate(program, cfg, state.train.params, eval_keys), done
                for i in np.flatnonzero(active):
                    logs[i].write(json.dumps({"kind": "eval", "step": done, **evals[i]}) + "\n")
            last = done == steps or not active.any()  # nothing left to train
            if done % cfg.train.checkpoint_every == 0 or last:
                for log in logs:
                    log.flush()
                ckpt.save(done, state, final=last)
            if last:
                break
            if stop.signum is not None:
                for log in logs:
                    log.flush()
                ckpt.save(done, state)
                outcome = "interrupted"
                for m, d, i in zip(group.members, dirs, range(n), strict=True):
                    if active[i]:
                        loop._write_status(d, "interrupted", step=done)
                        board.update(m.id, status="interrupted")
                echo(
                    f"signal received: saved group {group.id} at step {done}. Resume with the "
                    f"same command (sweep directory {sweep_dir})."
                )
                break
    finally:
        for log in logs:
            log.close()
        ckpt.close()
    results = {}
    if outcome == "interrupted":
        for m, d in zip(group.members, dirs, strict=True):
            results[m.id] = _result(_read_status(d))
        return results
    if evals_step is None or not (evals_step == steps or not (diverged_at == 0).any()):
        evals = _evaluate(program, cfg, state.train.params, eval_keys)
    for i, (m, d) in enumerate(zip(group.members, dirs, strict=True)):
        status, step = ("diverged", int(diverged_at[i])) if diverged_at[i] else ("finished", steps)
        loop._write_status(d, status, step=step, final=evals[i])
        board.update(m.id, step, evals[i]["loss"], status)
        results[m.id] = _result({"status": status, "step": step, "final": evals[i]})
    return results


def final_state(sweep_dir: str | Path, member_id: str) -> tuple[config_lib.Config, TrainState]:
    """A member's config and train state at its group's latest checkpoint (for evaluation).

    Raises:
      KeyError: no member ``member_id`` in the sweep.
      FileNotFoundError: its group has no complete checkpoint yet.
    """
    sweep_dir = Path(sweep_dir)
    entries = json.loads((sweep_dir / "sweep.json").read_text())["members"]
    by_id = {e["id"]: e for e in entries}
    if member_id not in by_id:
        raise KeyError(f"member_id: no member {member_id!r} in {sweep_dir}; have {list(by_id)}")
    group_id = by_id[member_id]["group"]
    members = [
        Member(e["id"], e["overrides"], config_lib.from_dict(json.loads(
            (sweep_dir / "members" / e["id"] / "config.json").read_text()
        )))
        for e in entries
        if e["group"] == group_id
    ]  # fmt: skip
    ckpt = Checkpointer(sweep_dir / "groups" / group_id / "checkpoints")
    restored = ckpt.restore(init_group(members))
    ckpt.close()
    if restored is None:
        raise FileNotFoundError(f"sweep_dir: group {group_id} of {sweep_dir} has no checkpoint")
    index = [m.id for m in members].index(member_id)
    train = jax.tree.map(lambda x: x[index], restored[1].train)
    return members[index].config, train


def run(
    base: config_lib.Config,
    members: Sequence[Member],
    sweep_dir: str | Path,
    *,
    max_group_size: int | None = None,
    progress: bool = True,
    spec: Spec | None = None,
    echo: Callable[[str], None] = print,
) -> dict[str, dict]:
    """Train every member of a sweep in ``sweep_dir``, resuming what a killed sweep left.

    Args:
      base: the config the members were made from (recorded; each member carries its own).
      members: from :func:`jaxrnn.sweep.spec.expand` or :func:`jaxrnn.sweep.spec.load`.
      sweep_dir: the sweep directory (created; an existing one is resumed, and must
        hold the same members).
      max_group_size: at most this many members per compiled program (None: a
        group's members all train together); bounds memory.
      progress: show a live table of every member.
      spec: the spec to record in ``sweep.json`` (grid, random, seeds, ...).
      echo: where messages go.

    Returns:
      ``{member id: {"status", "step", **final eval metrics}}``; ``status`` is
      ``"finished"``, ``"diverged"`` (frozen at ``step``; its final metrics are those of
      its last finite params) or, after SIGTERM/SIGINT, ``"interrupted"`` (also for
      members of groups not started yet, at step 0).

    Example:
      >>> spec = jaxrnn.sweep.load("adding_lstm", grid=["optim.learning_rate=1e-3,3e-3"],
      ...                          seeds="0-3", smoke=True)
      >>> results = jaxrnn.sweep.run(spec.base, spec.members, "sweeps/lr", spec=spec)
    """
    del base  # each member carries its full config
    if not members:
        raise ValueError("members: expected at least one member, got none")
    ids = [m.id for m in members]
    if len(set(ids)) != len(ids):
        raise ValueError(f"members: ids must be unique, got {ids}")
    sweep_dir = Path(sweep_dir)
    groups = plan(members, max_group_size)
    _write_sweep_json(sweep_dir, groups, spec)
    results: dict[str, dict] = {}
    with loop._Stop() as stop, _Board(members, progress) as board:
        for group in groups:
            if stop.signum is not None:
                results.update({m.id: {"status": "interrupted", "step": 0} for m in group.members})
                continue
            results.update(_run_group(group, sweep_dir, stop, board, echo))
    return {m.id: results[m.id] for m in members}
