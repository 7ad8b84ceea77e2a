"""The one training loop: a group of members, from the first step to the test score.

A run is a group of ``M >= 1`` members that share one compiled program
(:mod:`jaxrnn.training.program`): ``jaxrnn train`` is a group of one, a sweep runs
its groups one after another. Each member has its own run directory
(:mod:`jaxrnn.training.rundir`), log, checkpoints and status, and every policy
applies to each member alike:

* **evaluation** on the validation split every ``eval_every`` steps (and at the
  end), logged as ``{"kind": "eval"}`` records;
* **model choice**: a member's best validation ``train.best_metric`` (its
  direction declared by the objective), its step and its params are kept in its
  state (so in every checkpoint), the ``keep_best`` best checkpoints are kept on
  disk, and after ``patience`` evaluations without improvement the member stops
  early (its state frozen);
* **the test split is scored once**, at the end, with each member's chosen params
  (those of its best validation step; the last step's with ``keep_best=0``), logged
  as a ``{"kind": "test"}`` record and written to ``status.json`` with the baseline;
* **non-finite steps**: ``nonfinite="skip"`` leaves the state unchanged and counts
  the step; ``"stop"`` freezes the member and marks it diverged (a group of one
  then ends);
* **checkpoints** every ``checkpoint_every`` steps (the last ``keep_last`` kept),
  and SIGTERM/SIGINT save one at the next step boundary and stop;
* **TensorBoard**: every record is also written as event files in the member's
  directory (:mod:`jaxrnn.training.events`).

Every batch is a pure function of (seed, step), per-step randomness is
``fold_in(key, step)``, and the bookkeeping above lives in the checkpointed state,
so a run killed with SIGKILL and resumed ends bit-identical to an uninterrupted
one (CPU). Only process 0 of a multi-process run writes files.
"""

import contextlib
import json
import math
import os
import signal
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxrnn.tasks.baselines import Baseline
from jaxrnn.tasks.data import Dataset, Stream, eval_batches, shapes
from jaxrnn.tasks.objectives import Objective, value
from jaxrnn.training import distributed, liveness, rundir
from jaxrnn.training import events as events_lib
from jaxrnn.training import experiment as experiment_lib
from jaxrnn.training import program as program_lib
from jaxrnn.training.checkpoint import Checkpointer, Damaged
from jaxrnn.training.config import Config, ConfigError, to_dict
from jaxrnn.training.optim import make_optimizer, schedule
from jaxrnn.training.progress import Board

# Statuses after which a member trains no more.
TERMINAL = ("finished", "diverged")


class Member(NamedTuple):
    """One run of a group: its id (``"run"`` alone, ``"m000"`` in a sweep), its resolved
    config, its run directory and a label of its swept values."""

    id: str
    config: Config
    directory: Path
    setting: str = ""


class Group(NamedTuple):
    """What a group's members share, built once before any compute.

    Attributes:
      data: the experiment's :class:`~jaxrnn.tasks.Stream` or :class:`~jaxrnn.tasks.Dataset`.
      models: each member's model (``get_model`` of its own config).
      objective: the objective (of the first member's config and model).
      directions: ``{metric: "min" | "max"}``.
      optimizers: each member's optax optimizer.
    """

    data: Stream | Dataset
    models: list
    objective: Objective
    directions: dict[str, str]
    optimizers: list


class Stop:
    """SIGTERM/SIGINT set a flag; the loop checkpoints and exits at the next step boundary.

    A ``Stop()`` block inside another is the outer one (its flag, its handlers): the CLI
    holds one for its whole command, so that a signal that arrives after training (while
    the plot and the report are written) cannot turn a finished run into a killed one.
    """

    _outer = None

    def __init__(self):
        self.signum = None

    def __enter__(self):
        if Stop._outer is not None:
            return Stop._outer
        Stop._outer = self
        self._old = {s: signal.signal(s, self._handle) for s in (signal.SIGTERM, signal.SIGINT)}
        return self

    def _handle(self, signum, frame):
        self.signum = signum

    def __exit__(self, *exc):
        if Stop._outer is self:
            Stop._outer = None
            for s, handler in self._old.items():
                signal.signal(s, handler)


def build(experiment: experiment_lib.Experiment, configs: Sequence[Config]) -> Group:
    """A group's data (once), models (one per member), objective and optimizers,
    traced together to check every piece (:func:`jaxrnn.training.experiment.check`)."""
    first = configs[0]
    data = experiment_lib.get_data(experiment, first)
    models = [experiment_lib.get_model(experiment, c, data) for c in configs]
    objective = experiment_lib.get_objective(experiment, first, models[0], data)
    directions = experiment_lib.check(experiment, first, data, models[0], objective)
    optimizers = [make_optimizer(c.optim, c.train.steps) for c in configs]
    return Group(data, models, objective, directions, optimizers)


def result(status: dict) -> dict:
    """What a run returns: status, step, chosen step, the test metrics, the baseline."""
    out = {"status": status["status"], "step": status["step"]}
    if "chosen_step" in status:
        out["chosen_step"] = status["chosen_step"]
    out.update(status.get("final", {}))
    if status.get("baseline"):
        out["baseline"] = status["baseline"]
    return out


def _restore(ckpts: list[Checkpointer], state, echo) -> tuple[int, Any]:
    """Every member at the latest step all of them hold and can read; ``(0, state)`` if none."""
    common = set.intersection(*(set(c.steps()) for c in ckpts))
    for step in sorted(common, reverse=True):
        try:
            restored = [
                c.restore_step(step, program_lib.member(state, m)) for m, c in enumerate(ckpts)
            ]
        except Damaged as error:  # the next older common step; this one is saved again
            echo(f"{error}; falling back to the previous one")
            continue
        return step, jax.tree.map(lambda *xs: jnp.stack(xs), *restored)
    return 0, state


def _bookkeeping(state) -> dict[str, np.ndarray]:
    fields = ("skipped", "diverged_at", "stopped_at", "best", "best_step", "since_best")
    return dict(zip(fields, distributed.fetch([getattr(state, f) for f in fields]), strict=True))


def _better(new: float, old: float, mode: str) -> bool:
    if not np.isfinite(new):
        return False
    return new < old if mode == "min" else new > old


def run_group(
    experiment: experiment_lib.Experiment,
    members: Sequence[Member],
    *,
    stop: Stop,
    board: Board,
    echo: Callable[[str], None] = print,
    wandb: bool = False,
) -> dict[str, dict]:
    """Train a group of members (resuming what their directories hold) and score the test split.

    Args:
      experiment: the loaded experiment file.
      members: at least one; their configs may differ only in values that the
        program carries as arrays (seed, optimizer hyperparameters, initialisation).
      stop: the signal flag (SIGTERM/SIGINT).
      board: the progress display.
      echo: where messages go.
      wandb: also log each member to a W&B run, offline (:mod:`jaxrnn.training.events`).

    Returns:
      ``{member id: {"status", "step", "chosen_step", **test metrics, "baseline"}}``;
      ``status`` is ``"finished"``, ``"diverged"`` or, after a signal, ``"interrupted"``.

    Raises:
      ValueError: before any compute, for W&B asked for and not installed, a directory
        that holds another run, a batch size that does not split over the devices, or a
        piece of the experiment of the wrong form;
        :class:`~jaxrnn.training.liveness.BusyError` (a ValueError) for a directory that
        another live process trains.
    """
    with contextlib.ExitStack() as held:
        return _run_group(experiment, members, stop, board, echo, held, wandb)


def _run_group(experiment, members, stop, board, echo, held, wandb) -> dict[str, dict]:
    """:func:`run_group`; ``held`` keeps the directories' locks and heartbeat until it returns."""
    if wandb:
        events_lib.check_wandb()
    for m in members:  # before anything, also before reporting a finished run again
        rundir.check(m.directory, m.config, experiment)
    statuses = [rundir.read_status(m.directory) for m in members]
    finished = lambda s: s is not None and s["status"] in TERMINAL and "final" in s  # noqa: E731
    if all(finished(s) for s in statuses):  # reported again, if its checkpoints still read
        statuses = [
            liveness.verified(m.directory, s) for m, s in zip(members, statuses, strict=True)
        ]
    if all(finished(s) for s in statuses):
        for m, s in zip(members, statuses, strict=True):
            board.update(m.id, s["step"], s["final"].get("loss"), s["status"])
        return {m.id: result(s) for m, s in zip(members, statuses, strict=True)}
    configs = [m.config for m in members]
    cfg = configs[0]
    train = cfg.train
    # The one placement of the member axis (and, within it, of each member's batch).
    sharding = distributed.member_sharding(len(members))
    distributed.check_batch_size(train.batch_size, sharding)
    group = build(experiment, configs)  # every piece traced and checked: still no compute
    no_validation = isinstance(group.data, Dataset) and group.data.validation is None
    if no_validation and train.patience is not None:
        raise ConfigError(
            f"train.patience={train.patience}: early stopping needs a validation split, "
            f"and this experiment's data set has none (Dataset.validation=None)"
        )
    # From the first write on, one process per directory: a second one is refused here,
    # after the checks above, which write nothing (not even the directory).
    held.enter_context(liveness.hold([m.directory for m in members]))
    beat = held.enter_context(liveness.Heartbeat())
    for m in members:
        rundir.prepare(m.directory, m.config, experiment, experiment_lib.citation(experiment))
    mode = group.directions[train.best_metric]
    program = program_lib.make_program(
        group.data,
        group.objective,
        group.optimizers[0],
        schedule(cfg.optim, train.steps),
        cfg,
        sharding,
    )
    ids = [m.id for m in members]
    state = program_lib.initial_states(
        configs, group.models, group.objective, group.optimizers, program_lib.worst(mode), ids
    )
    ckpts = [
        Checkpointer(
            m.directory / "checkpoints",
            keep_last=train.keep_last,
            keep_best=train.keep_best,
            best_metric=train.best_metric,
            best_mode=mode,
        )
        for m in members
    ]
    start, state = _restore(ckpts, state, echo)
    if start:
        echo(f"resuming {', '.join(ids)} from step {start} ({members[0].directory.parent})")
    # Placed after the restore, so that the members' arrays are laid out once.
    state = distributed.place(state, sharding)
    data_keys = distributed.place(jnp.stack([program_lib.data_key(c) for c in configs]), sharding)
    validation = (
        None
        if no_validation
        else eval_batches(group.data, "validation", train.eval_batch_size, train.eval_batches)
    )
    batch_shapes = shapes(group.data, train.batch_size)
    mask = getattr(batch_shapes, "mask", None)
    tokens_per_step = mask.size if mask is not None else train.batch_size

    book = _bookkeeping(state)
    logs = []
    # Only process 0 logs; the others write the same records to nowhere.
    primary = distributed.is_primary()
    events = [
        held.enter_context(events_lib.Events(m.directory, start, to_dict(m.config), primary, wandb))
        for m in members
    ]
    for i, m in enumerate(members):
        log_path = m.directory / rundir.LOG
        rundir.truncate_log(log_path, start)
        logs.append(log_path.open("a") if primary else open(os.devnull, "w"))  # noqa: SIM115
        status = "diverged" if book["diverged_at"][i] else "running"
        resumed = {"last_checkpoint": start} if start else {}
        beat.write(m.directory, status, step=int(book["diverged_at"][i]) or start, **resumed)
        board.update(m.id, start, status=status)
    board.start_group(start, train.steps)

    def write_record(i: int, record: dict) -> None:
        logs[i].write(json.dumps(record) + "\n")
        events[i].write(record)

    def frozen() -> np.ndarray:
        return (book["diverged_at"] > 0) | (book["stopped_at"] > 0)

    def active_at(step: int) -> np.ndarray:
        """Members whose step ``step`` is theirs (not frozen before it)."""
        before = lambda at: (at > 0) & (at < step)  # noqa: E731
        return ~(before(book["diverged_at"]) | before(book["stopped_at"]))

    reported = set(np.flatnonzero(book["diverged_at"]).tolist())
    outcome, done = "finished", start
    t_last, step_last = time.perf_counter(), start
    started = False
    try:
        for s in range(start, train.steps):
            if frozen().all():
                break
            state, metrics = program.step(state, data_keys, s)
            done = s + 1
            beat.done(done)
            eval_now = done % train.eval_every == 0 or done == train.steps
            checkpoint_now = done % train.checkpoint_every == 0 or done == train.steps
            stopping = stop.signum is not None and done < train.steps
            if done % train.log_every == 0 or eval_now or checkpoint_now or stopping:
                book = _bookkeeping(state)
                now = time.perf_counter()
                rate = (done - step_last) / max(now - t_last, 1e-9)
                t_last, step_last = now, done
                host = distributed.fetch(metrics)
                for i in np.flatnonzero(active_at(done)):
                    record = {k: float(value(v)[i]) for k, v in host.items()}
                    record.update(step=done, steps_per_s=rate, tokens_per_s=rate * tokens_per_step)
                    record["nonfinite_skipped"] = int(book["skipped"][i])
                    write_record(i, {"kind": "train", **record})
                    board.update(members[i].id, done, record["loss"])
                for i in set(np.flatnonzero(book["diverged_at"]).tolist()) - reported:
                    reported.add(i)
                    at = int(book["diverged_at"][i])
                    beat.write(members[i].directory, "diverged", step=at)
                    board.update(members[i].id, status="diverged")
                    echo(
                        f"{members[i].id}: step {at}: non-finite loss or gradient; the member is "
                        f"frozen at its last good state (train.nonfinite='stop')"
                    )
                if len(members) == 1:
                    board.advance(done, float(value(host["loss"])[0]))
                if not started:  # the first records at once: they show the run is training
                    for log in logs:
                        log.flush()
                    started = True
            evals: list[dict] = [{} for _ in members]
            if eval_now and validation is not None:
                active = active_at(done) & (book["diverged_at"] == 0)
                evals = program_lib.evaluate(
                    program, group.objective, state.train.params, validation
                )
                state, improved, book = _choose(state, evals, book, active, done, train, mode)
                state = program.keep_best(state, distributed.place(improved, sharding))
                for i in np.flatnonzero(active):
                    record = {"kind": "eval", "split": "validation", "step": done, **evals[i]}
                    write_record(i, record)
                    if book["stopped_at"][i]:
                        echo(
                            f"{members[i].id}: stopped early at step {done} (no better "
                            f"validation {train.best_metric} in {train.patience} evaluations)"
                        )
            last = done == train.steps or frozen().all()
            if checkpoint_now or last or stopping:
                for i, log in enumerate(logs):
                    log.flush()
                    metric = evals[i] if train.best_metric in evals[i] else None
                    ckpts[i].save(done, program_lib.member(state, i), metrics=metric, final=last)
                    beat.write(members[i].directory, last_checkpoint=done)
            board.advance(done)
            if last:
                break
            if stopping:
                outcome = "interrupted"
                for i, m in enumerate(members):
                    if not frozen()[i]:
                        beat.write(m.directory, "interrupted", step=done)
                        board.update(m.id, status="interrupted")
                echo(
                    f"{signal.Signals(stop.signum).name} received: saved a checkpoint at step "
                    f"{done}. Resume with the same command."
                )
                break
    finally:
        for log in logs:
            log.close()
    if outcome == "interrupted":
        for c in ckpts:
            c.close()
        return {m.id: result(rundir.read_status(m.directory)) for m in members}
    results = _finish(experiment, members, group, program, state, done, board, beat, events)
    for c in ckpts:
        c.close()
    return results


def _choose(state, evals, book, active, step, train, mode):
    """Update each active member's best validation value, its step and patience; returns
    the new state, which members improved, and the bookkeeping ``book`` now holds (so
    that it need not be read back from the devices)."""
    best, best_step = book["best"].copy(), book["best_step"].copy()
    since, stopped = book["since_best"].copy(), book["stopped_at"].copy()
    improved = np.zeros(len(evals), bool)
    for i, metrics in enumerate(evals):
        if not active[i]:
            continue
        new = metrics.get(train.best_metric, math.nan)  # absent: counted nothing
        if _better(new, float(best[i]), mode):
            best[i], best_step[i], since[i], improved[i] = new, step, 0, True
        else:
            since[i] += 1
            if train.patience is not None and since[i] >= train.patience:
                stopped[i] = step
    sharding = state.best.sharding
    place = lambda a, like: distributed.place(a.astype(like.dtype), sharding)  # noqa: E731
    state = state._replace(
        best=place(best, state.best),
        best_step=place(best_step, state.best_step),
        since_best=place(since, state.since_best),
        stopped_at=place(stopped, state.stopped_at),
    )
    book = {
        **book,
        "best": best,
        "best_step": best_step,
        "since_best": since,
        "stopped_at": stopped,
    }
    return state, improved, book


def chosen(state, keep_best: int) -> tuple[Any, list[int]]:
    """The params a run's test split scores, stacked ``[M, ...]``, and their steps: those
    of each member's best validation step (with ``keep_best > 0``, once one was found),
    else those of its last state (frozen at its step if it diverged or stopped early)."""
    best_step, last_step = distributed.fetch((state.best_step, state.train.step))
    use_best = (best_step > 0) & bool(keep_best)
    steps = np.where(use_best, best_step, last_step).astype(int).tolist()

    def pick(best, last):
        mask = jnp.asarray(use_best).reshape(use_best.shape + (1,) * (best.ndim - 1))
        return jnp.where(mask, best, last)

    return jax.tree.map(pick, state.best_params, state.train.params), steps


def _finish(
    experiment, members, group, program, state, done, board, beat, events
) -> dict[str, dict]:
    """Score the test split once, with every member's chosen params; write the results."""
    cfg = members[0].config
    train = cfg.train
    book = _bookkeeping(state)
    params, steps = chosen(state, train.keep_best)
    test = eval_batches(group.data, "test", train.eval_batch_size, train.eval_batches)
    finals = program_lib.evaluate(program, group.objective, params, test)
    baseline = experiment_lib.get_baseline(experiment, cfg, group.data, test)
    described = _baseline_dict(baseline)
    results = {}
    for i, m in enumerate(members):
        diverged = int(book["diverged_at"][i])
        status = "diverged" if diverged else "finished"
        extra = {
            "chosen_step": steps[i],
            "final": finals[i],
            "baseline": described,
            "directions": group.directions,
        }
        if book["stopped_at"][i]:
            extra["stopped_early_at"] = int(book["stopped_at"][i])
        if np.isfinite(book["best"][i]):
            extra["best_validation"] = {train.best_metric: float(book["best"][i])}
        step = diverged or done
        record = {"kind": "test", "step": steps[i], **finals[i]}
        if distributed.is_primary():
            with (m.directory / rundir.LOG).open("a") as log:
                log.write(json.dumps(record) + "\n")
        events[i].write(record)
        beat.write(m.directory, status, step=step, **extra)
        if distributed.is_primary():
            events[i].image("loss", rundir.plot_losses(m.directory, described), step)
        board.update(m.id, step, finals[i].get("loss"), status)
        results[m.id] = result({"status": status, "step": step, **extra})
    return results


def _baseline_dict(baseline: Baseline | None) -> dict | None:
    if baseline is None:
        return None
    return {"name": baseline.name, **{k: float(v) for k, v in baseline.metrics.items()}}
