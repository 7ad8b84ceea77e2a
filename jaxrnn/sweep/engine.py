"""Sweeps: members grouped into compiled programs, each group trained by the one training loop.

Members whose configs differ only in *vmappable* keys form a group, and a group
trains as one program over the member axis of the whole train step
(:mod:`jaxrnn.training.program`), by the same loop as a solo run
(:func:`jaxrnn.training.loop.run_group`): each member computes what ``jaxrnn
train`` computes for it alone, keeps its own validation-chosen checkpoints,
patience and non-finite state, and its folder is a run directory of its own.
Groups run one after another.

Vmappable keys (:data:`VMAPPABLE`), carried as arrays:

* ``seed`` (the member's init, dropout and data keys) and ``name``;
* ``optim.learning_rate``, ``momentum``, ``b1``, ``b2``, ``eps``, ``weight_decay``
  (``optax.inject_hyperparams`` state), ``optim.clip_norm`` and ``clip_value``
  (injected clipping bounds, see :mod:`jaxrnn.training.optim`) — except that None
  (clipping off) and a momentum of 0 (no momentum trace) change the optimizer's
  structure and so split groups;
* ``model.forget_bias``, ``identity_scale``, ``recurrent_init`` and ``chrono_t_max``
  of :class:`~jaxrnn.training.ModelConfig`, which only shape the initial params (each
  member is initialised from its own config by the experiment's ``get_model``).

Every other key splits groups: shapes (``model.hidden_size``, ``num_layers``,
``cell``, every ``task.*``, ``train.batch_size``), the traced program
(``model.dropout``, ``model.layer_norm``, ``optim.name``, ``optim.schedule`` and
its parameters, ``nesterov``) and the loop (``train.steps``, ``eval_every``,
``nonfinite``, ...). An experiment's own model section is never vmapped: its keys
split groups, which is always correct, if slower.

A sweep directory::

    sweep.json                      the spec, the experiment (name, path, sha256), the
                                    members (id, overrides, config hash, group), versions,
                                    the experiment's CITATION and LABELS (for the tables)
    members/<id>/                   a run directory per member (config.json, metrics.jsonl,
                                    status.json, checkpoints/, loss.png, ...)

Resume: running again on the same directory resumes every member from the latest
checkpoint its group holds (every batch and step key is a pure function of
(seed, step), so the result equals an uninterrupted sweep); groups whose members
all finished or diverged are not run again, and their files are not touched.
SIGTERM/SIGINT checkpoint the running group at the next step and stop.

References:
  Bradbury et al. (2018). JAX: composable transformations of Python+NumPy programs
  (``vmap``). https://github.com/jax-ml/jax
  optax ``inject_hyperparams``: https://optax.readthedocs.io/
"""

import hashlib
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NamedTuple

from jaxrnn.sweep.spec import Member, Spec
from jaxrnn.training import config as config_lib
from jaxrnn.training import distributed, liveness, rundir
from jaxrnn.training.cite import current_versions
from jaxrnn.training.experiment import Experiment, citation, labels
from jaxrnn.training.loop import Member as RunMember
from jaxrnn.training.loop import Stop, build, run_group
from jaxrnn.training.progress import Board

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


class Group(NamedTuple):
    """Members trained by one compiled program (``id``: ``"g000"``, ...), in spec order."""

    id: str
    members: list[Member]


def group_key(cfg: config_lib.Config) -> str:
    """A hash of ``cfg`` with its vmappable values blanked: equal keys, one program."""
    resolved = config_lib.to_dict(cfg)
    for key in VMAPPABLE:
        *path, leaf = key.split(".")
        if path == ["model"] and not isinstance(cfg.model, config_lib.ModelConfig):
            continue  # an experiment's own model section: its keys split groups
        section = resolved
        for part in path:
            section = section[part]
        if section[leaf] not in _STRUCTURAL.get(key, ()):
            section[leaf] = "<per member>"
    # The section classes count too: two experiments' sections of equal values differ.
    resolved["sections"] = [type(getattr(cfg, s)).__qualname__ for s in ("task", "model")]
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


def member_dir(sweep_dir: str | Path, member_id: str) -> Path:
    """A member's run directory, ``SWEEP/members/<id>``."""
    return Path(sweep_dir) / "members" / member_id


def _setting(member: Member) -> str:
    return ", ".join(f"{k}={v}" for k, v in member.overrides.items())


def describe(groups: Sequence[Group], spec: Spec | None, experiment: Experiment) -> dict:
    """What ``sweep.json`` records: the spec, the experiment, its citation and labels, the
    members (id, overrides, config hash, group) and the versions."""
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
    return {
        "config": spec.config if spec else experiment.name,
        "experiment": rundir.identity(experiment),
        "citation": citation(experiment),
        "labels": labels(experiment),
        "schema_version": rundir.SCHEMA_VERSION,
        "base_overrides": list(spec.base_overrides) if spec else [],
        "grid": spec.grid if spec else {},
        "random": spec.random if spec else {},
        "trials": spec.trials if spec else 0,
        "seeds": spec.seeds if spec else sorted({m.config.seed for g in groups for m in g.members}),
        "members": members,
        "versions": current_versions(),
    }


def _write_sweep_json(
    sweep_dir: Path, groups: list[Group], spec: Spec | None, experiment: Experiment
) -> None:
    """Write ``sweep.json``, or check that the one there describes the same sweep."""
    described = describe(groups, spec, experiment)
    path = sweep_dir / "sweep.json"
    if path.exists():
        existing = json.loads(path.read_text())
        if existing["members"] != json.loads(json.dumps(described["members"])):
            raise ValueError(
                f"sweep_dir: {sweep_dir} holds a different sweep (other members, configs or "
                f"groups; max_group_size counts); choose another directory for a new sweep"
            )
        recorded = existing.get("experiment", {}).get("sha256")
        if recorded != experiment.sha256:
            raise ValueError(
                f"sweep_dir: {sweep_dir} holds a sweep of another version of the experiment "
                f"(file hash {str(recorded)[:12]}; {experiment.path} hashes to "
                f"{experiment.sha256[:12]}); choose another directory for a new sweep"
            )
        return
    if not distributed.is_primary():
        return  # process 0 writes; the others only check
    sweep_dir.mkdir(parents=True, exist_ok=True)
    rundir.write_json(path, described)


def check(experiment: Experiment, groups: Sequence[Group]) -> None:
    """Trace and check every group's pieces (``train.best_metric`` among the metrics it
    reports, ...) before anything is written or trained: groups run one after another,
    and a mistake in the last one must not wait for the others to train."""
    for group in groups:
        build(experiment, [group.members[0].config])


def train_groups(
    experiment: Experiment,
    groups: Sequence[Group],
    sweep_dir: Path,
    *,
    stop: Stop,
    progress: bool = True,
    echo: Callable[[str], None] = print,
    wandb: bool = False,
) -> dict[str, dict]:
    """Train ``groups`` one after another into ``sweep_dir/members/<id>`` (each resumed
    from its checkpoints, finished ones not run again), with a live table (and W&B runs,
    offline, with ``wandb``); after ``stop`` caught a signal, the groups not started are
    ``"interrupted"`` at step 0."""
    members = [m for g in groups for m in g.members]
    results: dict[str, dict] = {}
    rows = [(m.id, _setting(m)) for m in members]
    with Board(rows, members[0].config.name, progress) as board:
        for group in groups:
            if stop.signum is not None:
                results.update({m.id: {"status": "interrupted", "step": 0} for m in group.members})
                continue
            run_members = [
                RunMember(m.id, m.config, member_dir(sweep_dir, m.id), _setting(m))
                for m in group.members
            ]
            outcome = run_group(
                experiment, run_members, stop=stop, board=board, echo=echo, wandb=wandb
            )
            results.update(outcome)
    return results


def run(
    experiment: Experiment,
    members: Sequence[Member],
    sweep_dir: str | Path,
    *,
    max_group_size: int | None = None,
    progress: bool = True,
    spec: Spec | None = None,
    echo: Callable[[str], None] = print,
    wandb: bool = False,
) -> dict[str, dict]:
    """Train every member of a sweep in ``sweep_dir``, resuming what a killed sweep left.

    Args:
      experiment: the loaded experiment file.
      members: from :func:`jaxrnn.sweep.spec.expand` or :func:`jaxrnn.sweep.spec.load`.
      sweep_dir: the sweep directory (created; an existing one is resumed, and must
        hold the same members).
      max_group_size: at most this many members per compiled program (None: a
        group's members all train together); bounds memory.
      progress: show a live table of every member.
      spec: the spec to record in ``sweep.json`` (grid, random, seeds, ...).
      echo: where messages go.
      wandb: also log each member to a W&B run, offline, grouped by the sweep.

    Returns:
      ``{member id: {"status", "step", "chosen_step", **test metrics, "baseline"}}``;
      ``status`` is ``"finished"``, ``"diverged"`` or, after SIGTERM/SIGINT,
      ``"interrupted"`` (also for members of groups not started yet, at step 0).

    Example:
      >>> spec = jaxrnn.sweep.load("adding_lstm", grid=["optim.learning_rate=1e-3,3e-3"],
      ...                          seeds="0-3", smoke=True)
      >>> results = jaxrnn.sweep.run(spec.experiment, spec.members, "sweeps/lr", spec=spec)
    """
    if not members:
        raise ValueError("members: expected at least one member, got none")
    ids = [m.id for m in members]
    if len(set(ids)) != len(ids):
        raise ValueError(f"members: ids must be unique, got {ids}")
    sweep_dir = Path(sweep_dir)
    groups = plan(members, max_group_size)
    check(experiment, groups)
    # The sweep's directory is held too, so that a second process refuses before it
    # writes sweep.json, not at its first member.
    with liveness.hold([sweep_dir]), Stop() as stop:
        _write_sweep_json(sweep_dir, groups, spec, experiment)
        results = train_groups(
            experiment, groups, sweep_dir, stop=stop, progress=progress, echo=echo, wandb=wandb
        )
    return {m.id: results[m.id] for m in members}
