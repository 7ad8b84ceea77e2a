"""Optuna in batches: ask K trials, train them as sweep members, tell their results.

``jaxrnn sweep EXPERIMENT --optuna N --batch K`` runs Optuna's ask-and-tell loop::

    while the study holds fewer than N trials:
        ask K trials (the last batch: what is left of N)
        train them as the members t0000, t0001, ... of one sweep (sweep.engine)
        tell each trial its member's best validation train.best_metric

A batch's members differ only in the searched keys, so those that the engine can
carry per member (:data:`jaxrnn.sweep.VMAPPABLE`: learning rate and the other
optimizer hyperparameters, init scales) train as one compiled group; trials that
differ in any other key (``model.hidden_size``, ``model.cell``, ...) form groups of
their own, one after another, as in any sweep. Every trial is an ordinary member
directory, ``SWEEP/members/t<number>``, so ``jaxrnn eval``, ``sample``, ``runs``
and the sweep's summary tables read it; ``t0003`` is Optuna's trial 3.

The value told to Optuna is the member's best validation ``train.best_metric``
(``best_validation`` in its ``status.json``), in the direction the objective
declares for it. Never the test metric: the test split must not choose the
hyperparameters, else its score is no longer an unbiased estimate. A trial whose
member diverged before its first evaluation is told ``FAIL``.

The search space is the spec of a random sweep: ``--random key=dist:args`` and the
experiment's ``get_sweep()["random"]`` (the flags win per key; a plain override
pins its key, see :mod:`jaxrnn.sweep.spec`), with
``loguniform:a,b``, ``uniform:a,b``, ``int:a,b`` and ``choice:x,y`` as Optuna's
``FloatDistribution(log=True)``, ``FloatDistribution``, ``IntDistribution`` and
``CategoricalDistribution``; a ``--grid key=v1,v2`` key is searched as
``choice:v1,v2``. Every key, and each bound or choice of its range, is checked
against the config before anything is computed.

Pruning is the engine's per-member early stopping (``train.patience``): a member
whose validation value stops improving is frozen, and its trial is told its best
value. Frozen members still cost compute while their group runs (the program steps
every member), so early stopping saves compute only when every member of a group
has stopped, which ends the group; it never frees a member's slot for another trial.

Resume: the study lives in ``SWEEP/study.db`` (SQLite, Optuna's RDB storage).
Running the same command again continues it: the trials that were asked but not
told (the batch a kill interrupted) are trained again from their members'
checkpoints and told; then the search goes on. Each ask uses a TPE sampler seeded
by (the base config's seed, the trial's number), so a trial's parameters are a
function of the study's earlier trials alone, and a resumed search asks what the
uninterrupted one asked. A larger N continues a finished search.

References:
  Akiba et al. (2019). Optuna: A next-generation hyperparameter optimization
  framework. KDD. https://optuna.org
  Bergstra et al. (2011). Algorithms for hyper-parameter optimization (TPE). NeurIPS.
"""

import functools
import hashlib
import json
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import jax
import numpy as np

from jaxrnn.sweep import engine
from jaxrnn.sweep.spec import (
    Member,
    Spec,
    distribution,
    expand,
    file_space,
    parse_grid,
    parse_random,
    parse_seeds,
)
from jaxrnn.training import experiment as experiment_lib
from jaxrnn.training import liveness, rundir
from jaxrnn.training.config import ConfigError, config_hash
from jaxrnn.training.loop import Stop, build
from jaxrnn.training.overrides import apply_overrides, get

INSTALL = "pip install 'jaxrnn[optuna]'"
STUDY = "study.db"
STUDY_NAME = "jaxrnn"


class Search(NamedTuple):
    """A validated search: ``spec`` holds the experiment, the base config, the space
    (``spec.random``), the number of trials (``spec.trials``), the one seed and
    ``max_group_size``; ``batch`` trials are asked at a time."""

    spec: Spec
    batch: int


def require():
    """The ``optuna`` module, or an ImportError that says how to install it."""
    try:
        import optuna
    except ImportError as e:
        raise ImportError(
            f"--optuna needs the optional extra optuna, which is not installed ({e}); "
            f"install it with: {INSTALL}"
        ) from None
    return optuna


def _text(value) -> str:
    """A suggested value as an override string (exact: ``repr`` of a float)."""
    return repr(value) if isinstance(value, float) else str(value)


def load(
    path: str | None = None,
    overrides: Sequence[str] = (),
    *,
    trials: int,
    batch: int,
    grid: Sequence[str] = (),
    random: Sequence[str] = (),
    seeds: int | str | Sequence[int] | None = None,
    max_group_size: int | None = None,
    smoke: bool = False,
) -> Search:
    """An experiment's search, validated before any compute.

    Args:
      path: the experiment file's path, or a built-in experiment's name.
      overrides: ``key=value`` strings applied to every trial.
      trials: how many trials the study holds at the end (``--optuna``).
      batch: trials asked, and trained as one sweep, at a time (``--batch``).
      grid: ``"key=v1,v2"`` strings, searched as ``choice:v1,v2``.
      random: ``"key=dist:args"`` strings (``--random``), over the file's.
      seeds: one seed (every trial's); default the file's, else the base config's.
      max_group_size: members per compiled program (``--max-group-size``).
      smoke: the experiment's seconds-long mode.

    Raises:
      ImportError: optuna is not installed (the message names ``pip install``).
      ConfigError: every problem, one a line: the space is empty, a distribution
        unknown, a key unknown, a bound or choice invalid for its key, ...
    """
    require()
    experiment = experiment_lib.load(path)
    # Not finalized: each member is, after its own overrides.
    base = experiment_lib.overridden_config(experiment, overrides, smoke=smoke)
    file = experiment_lib.get_sweep(experiment)
    problems: list[str] = []
    for name, value, least in (("--optuna", trials, 1), ("--batch", batch, 1)):
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            problems.append(f"{name} {value!r}: expected an integer >= {least}")
    choices = {k: "choice:" + ",".join(v) for k, v in parse_grid(grid, problems).items()}
    _, file_random = file_space(file, overrides)
    space = {**file_random, **parse_random(random, problems)}
    for key in set(choices) & set(space):
        problems.append(f"{key!r}: in both --grid and --random; search it one way")
    space.update(choices)
    if not space and not problems:
        problems.append(
            "search space: expected at least one --random key=dist:args (e.g. "
            "'optim.learning_rate=loguniform:1e-4,1e-1'), --grid key=v1,v2 or 'random' in "
            "the experiment's get_sweep(); got none"
        )
    seeds = seeds if seeds is not None else file.get("seeds", [base.seed])
    seed_list = parse_seeds(seeds, problems)
    if len(seed_list) > 1:
        problems.append(
            f"seeds={seeds!r}: --optuna trains each trial with one seed; expected one, "
            f"got {len(seed_list)}"
        )
    seed = seed_list[0] if seed_list else base.seed
    finalize = functools.partial(experiment_lib.finalize, experiment)
    for key, text in space.items():
        # Each bound (or choice) of a key's range, as a member: a value wrong for its key
        # is reported now, not when a trial draws it after hours of search.
        try:
            name, args = distribution(text)
        except ValueError as e:
            problems.append(f"random {key}={text!r}: {e}")
            continue
        expand(
            base,
            grid={key: [_text(a) for a in args]},
            seeds=[seed],
            problems=problems,
            finalize=finalize,
        )
    if max_group_size is not None and (
        isinstance(max_group_size, bool)
        or not isinstance(max_group_size, int)
        or max_group_size < 1
    ):
        problems.append(f"max_group_size={max_group_size!r}: expected an integer >= 1 (or none)")
    if problems:
        raise ConfigError("\n".join(dict.fromkeys(problems)))
    spec = Spec(
        config=str(path) if path is not None else experiment_lib.DEFAULT,
        experiment=experiment,
        base_overrides=tuple(overrides),
        grid={},
        random=space,
        trials=trials,
        seeds=[seed],
        max_group_size=max_group_size,
        base=base,
        members=[],
    )
    return Search(spec, batch)


def distributions(space: dict[str, str]) -> dict[str, Any]:
    """``{key: "dist:args"}`` as Optuna distributions."""
    optuna = require()
    out = {}
    for key, text in space.items():
        name, args = distribution(text)
        if name == "choice":
            out[key] = optuna.distributions.CategoricalDistribution(args)
        elif name == "int":
            out[key] = optuna.distributions.IntDistribution(*args)
        else:
            out[key] = optuna.distributions.FloatDistribution(*args, log=name == "loguniform")
    return out


def trial_id(number: int) -> str:
    """A trial's member id: ``t0000`` for Optuna's trial 0."""
    return f"t{number:04d}"


def member(search: Search, number: int, params: dict[str, Any]) -> Member:
    """The sweep member of trial ``number`` with Optuna's ``params``."""
    spec = search.spec
    strings = [f"{k}={_text(v)}" for k, v in params.items()] + [f"seed={spec.seeds[0]}"]
    config = experiment_lib.finalize(spec.experiment, apply_overrides(spec.base, strings))
    overrides = {k: get(config, k) for k in [*params, "seed"]}
    return Member(trial_id(number), overrides, config)


def default_dir(search: Search) -> Path:
    """``sweeps/<name>-optuna-<hash>``, named by what makes the search (not the number of
    trials, so that a larger ``--optuna`` continues it)."""
    return Path("sweeps") / f"{search.spec.base.name}-optuna-{_identity(search)['hash']}"


def _identity(search: Search) -> dict:
    """What a study's directory must hold the same of, to be continued."""
    spec = search.spec
    out = {
        "experiment": spec.experiment.sha256,
        "base": config_hash(spec.base),
        "space": spec.random,
        "seed": spec.seeds[0],
        "batch": search.batch,
        "max_group_size": spec.max_group_size,
    }
    digest = hashlib.sha256(json.dumps(out, sort_keys=True).encode()).hexdigest()[:12]
    return {**out, "hash": digest}


def _sampler_seed(seed: int, number: int) -> int:
    """The TPE sampler's seed for the ask of trial ``number``."""
    return int(np.random.SeedSequence([seed, number]).generate_state(1)[0])


def _batches(search: Search, trials) -> list[engine.Group]:
    """Every asked trial's member, in its batch's groups (ids ``b000-g000``, ...)."""
    by_batch: dict[int, list[Member]] = {}
    for t in trials:
        by_batch.setdefault(t.user_attrs["batch"], []).append(member(search, t.number, t.params))
    groups = []
    for b, members in sorted(by_batch.items()):
        for g in engine.plan(members, search.spec.max_group_size):
            groups.append(engine.Group(f"b{b:03d}-{g.id}", g.members))
    return groups


def ask(study, space: dict[str, Any], *, seed: int, batch: int, trials: int) -> list:
    """The trials to train next: those asked and not told (a batch a kill interrupted),
    completed to a batch of ``batch`` (fewer for the last of ``trials``); none once
    ``trials`` are told.

    Each ask uses a TPE sampler seeded by (``seed``, the trial's number), so a trial's
    parameters are a function of the study's told trials: a resumed study asks what
    the uninterrupted one asked, even after a kill between two asks of a batch. Each
    trial records its batch number (user attribute ``batch``).
    """
    optuna = require()
    running = optuna.trial.TrialState.RUNNING
    asked = study.get_trials(deepcopy=False)
    told = sum(t.state != running for t in asked)
    if told >= trials:
        return []
    # Trials are told in order, so those from number `told` on are the ones not told;
    # their batch began at its first trial (a kill may have come between two tells).
    if len(asked) > told:
        number = asked[told].user_attrs["batch"]
        start = next(t.number for t in asked if t.user_attrs["batch"] == number)
    else:
        number = asked[-1].user_attrs["batch"] + 1 if asked else 0
        start = len(asked)
    for n in range(len(asked), min(start + batch, trials)):
        study.sampler = optuna.samplers.TPESampler(seed=_sampler_seed(seed, n))
        study.ask(space).set_user_attr("batch", number)
    return [t for t in study.get_trials(deepcopy=False) if t.state == running]


def run(
    search: Search,
    sweep_dir: str | Path,
    *,
    progress: bool = True,
    echo: Callable[[str], None] = print,
    wandb: bool = False,
    after_training: Callable[[int], None] | None = None,
) -> dict[str, dict]:
    """Run (or continue) the search in ``sweep_dir``.

    Args:
      search: from :func:`load`.
      sweep_dir: the sweep directory; ``study.db`` there holds the study.
      progress: show a live table of each batch's members.
      echo: where messages go.
      wandb: also log each trial's member to a W&B run, offline.
      after_training: called with the batch number once a batch trained, before its
        results are told (a test's kill point).

    Returns:
      ``{member id: {"status", "step", "chosen_step", **test metrics, "value"}}`` for
      the trials of the batches this call ran (``value``: what Optuna was told, NaN
      for a FAIL); ``status`` ``"interrupted"`` for
      those a signal stopped (the study keeps them asked; run again to resume).
    """
    optuna = require()
    spec = search.spec
    sweep_dir = Path(sweep_dir)
    metric = spec.base.train.best_metric
    directions = build(spec.experiment, [spec.base]).directions  # checks every piece
    direction = "minimize" if directions[metric] == "min" else "maximize"
    identity = _identity(search)
    space = distributions(spec.random)
    states = optuna.trial.TrialState
    if jax.process_count() > 1:
        raise ValueError(
            f"--optuna: runs in one process (its study is asked and told by one), got "
            f"{jax.process_count()} processes; run the search on one host"
        )
    results: dict[str, dict] = {}
    existing = sweep_dir / "sweep.json"
    if existing.exists() and "optuna" not in json.loads(existing.read_text()):
        raise ValueError(
            f"sweep_dir: {sweep_dir} holds a sweep, not an Optuna search; choose another directory"
        )
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    with liveness.hold([sweep_dir]), Stop() as stop:
        study = optuna.create_study(
            storage=f"sqlite:///{sweep_dir / STUDY}",
            study_name=STUDY_NAME,
            direction=direction,
            load_if_exists=True,
        )
        recorded = study.user_attrs.get("identity")
        if recorded is None:
            study.set_user_attr("identity", identity)
        elif recorded != identity:
            changed = sorted(k for k in identity if k != "hash" and recorded.get(k) != identity[k])
            raise ValueError(
                f"sweep_dir: {sweep_dir} holds another search (other {', '.join(changed)}); "
                f"choose another directory for a new search"
            )
        while True:
            pending = ask(study, space, seed=spec.seeds[0], batch=search.batch, trials=spec.trials)
            if not pending:
                break
            batch = pending[0].user_attrs["batch"]
            trials = study.get_trials(deepcopy=False)
            groups = _batches(search, trials)
            rundir.write_json(
                sweep_dir / "sweep.json",
                {
                    **engine.describe(groups, spec, spec.experiment),
                    "optuna": {
                        "trials": spec.trials,
                        "batch": search.batch,
                        "direction": direction,
                        "objective": f"validation {metric}",
                        "study": STUDY,
                    },
                },
            )
            ids = {trial_id(t.number) for t in pending}
            now = [g for g in groups if any(m.id in ids for m in g.members)]
            echo(f"batch {batch}: trials {', '.join(sorted(ids))}")
            engine.check(spec.experiment, now)
            got = engine.train_groups(
                spec.experiment,
                now,
                sweep_dir,
                stop=stop,
                progress=progress,
                echo=echo,
                wandb=wandb,
            )
            results.update(got)
            if any(r["status"] == "interrupted" for r in got.values()):
                return results
            if after_training is not None:
                after_training(batch)
            for t in pending:
                status = rundir.read_status(engine.member_dir(sweep_dir, trial_id(t.number)))
                value = (status or {}).get("best_validation", {}).get(metric, math.nan)
                results[trial_id(t.number)]["value"] = value
                if math.isfinite(value):
                    study.tell(t.number, value)
                else:
                    study.tell(t.number, state=states.FAIL)
    return results


def best(sweep_dir: str | Path) -> tuple[str, float, dict] | None:
    """The best trial of a search: its member id, value and params (None: none told)."""
    optuna = require()
    study = optuna.load_study(study_name=STUDY_NAME, storage=f"sqlite:///{Path(sweep_dir) / STUDY}")
    done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    if not done:
        return None
    t = study.best_trial
    return trial_id(t.number), t.value, t.params
