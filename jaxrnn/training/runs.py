"""Training an experiment from Python, and reading a run back (for evaluation and sampling).

From a notebook, the same runner as ``jaxrnn train``::

    import jaxrnn.training

    results = jaxrnn.training.train("my_experiment.py", ["optim.learning_rate=1e-3"], smoke=True)
    results["loss"], results["workdir"]

and a finished run (or a sweep member's folder) back::

    run = jaxrnn.training.load_run(results["workdir"])
    run.config, run.params, run.model          # the params the test split scored
"""

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from jaxrnn.tasks.data import eval_batches
from jaxrnn.training import distributed, liveness, rundir
from jaxrnn.training import experiment as experiment_lib
from jaxrnn.training import program as program_lib
from jaxrnn.training.checkpoint import Checkpointer
from jaxrnn.training.config import Config, to_dict
from jaxrnn.training.loop import Group, Member, Stop, build, chosen, run_group
from jaxrnn.training.optim import schedule
from jaxrnn.training.overrides import apply_overrides, from_dict
from jaxrnn.training.progress import Board


def train(
    experiment: str | Path | experiment_lib.Experiment | None = None,
    overrides: Sequence[str] = (),
    *,
    workdir: str | Path | None = None,
    smoke: bool = False,
    progress: bool = False,
    echo: Callable[[str], None] = print,
    wandb: bool = False,
) -> dict:
    """Train an experiment (or resume its run) and score its test split, as ``jaxrnn train``.

    Args:
      experiment: an experiment file's path, a built-in's name, a loaded
        :class:`~jaxrnn.training.experiment.Experiment`; None: the default experiment.
      overrides: ``key=value`` strings (see :mod:`jaxrnn.training.overrides`).
      workdir: the run directory; None: ``runs/<name>-<run hash>``.
      smoke: the experiment's seconds-long mode.
      progress: draw a progress bar.
      echo: where messages go.
      wandb: also log to a W&B run, offline (``pip install 'jaxrnn[wandb]'``).

    Returns:
      ``{"status", "step", "chosen_step", **test metrics, "baseline", "workdir"}``.

    Raises:
      FileNotFoundError, ExperimentError, ConfigError, RunDirError: before any compute.
    """
    if not isinstance(experiment, experiment_lib.Experiment):
        experiment = experiment_lib.load(experiment)
    config = experiment_lib.get_config(experiment, overrides, smoke=smoke)
    directory = Path(workdir) if workdir is not None else rundir.default_dir(config, experiment)
    return _run_one(experiment, config, directory, progress, echo, wandb)


def _run_one(experiment, config: Config, directory: Path, progress: bool, echo, wandb) -> dict:
    """Train (or resume) one run in ``directory`` through the single loop."""
    member = Member("run", config, directory)
    with Stop() as stop, Board([("run", "")], config.name, progress) as board:
        outcomes = run_group(experiment, [member], stop=stop, board=board, echo=echo, wandb=wandb)
    return {**outcomes["run"], "workdir": str(directory)}


# What ``extend`` may change: the step budget, and how often and how much a run
# evaluates, logs and checkpoints. Anything else would make the continued run a
# different experiment from its first part.
EXTENDABLE = (
    "train.steps",
    "train.eval_every",
    "train.eval_batches",
    "train.eval_batch_size",
    "train.log_every",
    "train.checkpoint_every",
)


def extend(
    directory: str | Path,
    overrides: Sequence[str],
    *,
    progress: bool = False,
    echo: Callable[[str], None] = print,
    wandb: bool = False,
) -> dict:
    """Continue a finished run from its final checkpoint to a larger ``train.steps``, as
    ``jaxrnn train --extend RUN_DIR train.steps=N``.

    The run keeps its directory, metrics history and checkpoints; ``run.json`` and
    each start's ``manifest.json`` record the lineage (``extended``: the step budgets and
    config hashes). An extended run equals a run started with the larger budget where
    the learning-rate schedule does not depend on ``train.steps`` (``constant``); a
    schedule that does (warm-up fractions, cosine or linear decay to the end) was
    followed for the first budget, and the continuation follows the new one from the
    step it has reached.

    Args:
      directory: the run directory (the default one is named by the config hash,
        which changes with ``train.steps``, so it is named explicitly).
      overrides: ``key=value`` strings; only the keys in ``EXTENDABLE`` may change.

    Raises:
      FileNotFoundError, ExperimentError, ConfigError: as :func:`train`.
      RunDirError: the run is not finished (resume it with its own command), or a key
        outside ``EXTENDABLE`` changes (all such keys are listed).
    """
    directory = Path(directory)
    experiment = load_experiment(directory)
    like = experiment_lib.base_config(experiment)
    stored = from_dict(rundir.read_json(directory / "config.json"), like)
    config = experiment_lib.finalize(experiment, apply_overrides(stored, overrides))
    differences = rundir.differences(to_dict(stored), to_dict(config))
    refused = [d for d in differences if not d.startswith(EXTENDABLE)]
    if refused:
        raise rundir.RunDirError(
            f"--extend {directory}: only {', '.join(EXTENDABLE)} may change, and these differ: "
            + "; ".join(refused)
        )
    with liveness.hold([directory]):  # before the first write, as the loop does
        status = rundir.read_status(directory) or {}
        if differences:  # else an extension that was cut short, which this resumes
            if status.get("status") != "finished" or "stopped_early_at" in status:
                state = "stopped early" if "stopped_early_at" in status else status.get("status")
                raise rundir.RunDirError(
                    f"--extend {directory}: the run is {state or 'not started'}, not finished; "
                    f"resume an unfinished run with the command that started it"
                )
            if config.train.steps <= status["step"]:
                raise rundir.RunDirError(
                    f"train.steps: expected more than the {status['step']} steps the run has "
                    f"trained, got {config.train.steps}"
                )
            rundir.record_extension(directory, stored, config, status["step"])
        if status.get("status") == "finished" and status["step"] < config.train.steps:
            # Not finished any more: the loop resumes it from its final checkpoint.
            rundir.write_status(
                directory, "interrupted", step=status["step"], last_checkpoint=status["step"]
            )
        return _run_one(experiment, config, directory, progress, echo, wandb)


class Run(NamedTuple):
    """A run read back from its directory.

    Attributes:
      directory: the run directory.
      experiment: its experiment, rebuilt from the copy the run keeps.
      config: its resolved config.
      group: its data, model (``group.models[0]``), objective and optimizer.
      state: the :class:`~jaxrnn.training.program.MemberState` of the checkpoint read.
      params: the params at ``step``.
      step: the step of ``params``: the run's chosen step, or the one asked for.
    """

    directory: Path
    experiment: experiment_lib.Experiment
    config: Config
    group: Group
    state: Any
    params: Any
    step: int

    @property
    def model(self):
        """The run's model (``get_model`` of its config)."""
        return self.group.models[0]


def load_experiment(directory: Path) -> experiment_lib.Experiment:
    """The experiment a run was started with: the original file if it still hashes as
    recorded, else the copy in the run directory (helpers imported from the original's
    folder).

    Raises:
      FileNotFoundError: ``directory`` is no run directory.
      ExperimentError: neither the copy nor the original file hashes as recorded.
    """
    directory = Path(directory)
    if not directory.is_dir():
        what = "a file" if directory.exists() else "no such path"
        raise FileNotFoundError(
            f"run_dir: {str(directory)!r} is not a directory ({what}); give a run directory "
            f"(runs/<name>-<hash>, or a sweep's members/<id>)"
        )
    run_file = directory / "run.json"
    if not run_file.exists():
        if (directory / "sweep.json").exists():
            members = sorted(p.name for p in (directory / "members").glob("*"))
            shown = ", ".join(members[:3]) + (", ..." if len(members) > 3 else "")
            raise FileNotFoundError(
                f"run_dir: {str(directory)!r} is a sweep directory, not a run directory; give "
                f"one of its members, {directory / 'members'}/<id> ({shown or 'none started'})"
            )
        raise FileNotFoundError(
            f"run_dir: {str(directory)!r} is not a run directory of this jaxrnn (no run.json; "
            f"run directories are written by `jaxrnn train` and `jaxrnn sweep`)"
        )
    try:
        recorded = rundir.read_json(run_file)["experiment"]
        original = Path(recorded["path"])
    except (KeyError, TypeError) as e:
        raise rundir.RunDirError(
            f"run_dir: {run_file} names no experiment (missing {e}); it is damaged"
        ) from e
    candidates = [(original, original.parent), (directory / "experiment.py", original.parent)]
    found = []
    for path, folder in candidates:
        if path.is_file():
            experiment = experiment_lib.load(path, folder=folder)
            if experiment.sha256 == recorded["sha256"]:
                return experiment
            found.append(f"{path} hashes to {experiment.sha256[:12]}")
    raise experiment_lib.ExperimentError(
        f"run_dir: {directory} was trained with experiment {recorded['name']!r} whose hash is "
        f"{recorded['sha256'][:12]}, and no file with that hash is at hand ("
        + ("; ".join(found) or "neither the run's copy nor the original exists")
        + "): an experiment it loads may have changed. Restore it to rebuild this run."
    )


def load_run(directory: str | Path, step: int | None = None) -> Run:
    """Read a run (or a sweep member's folder) back: its experiment, config and params.

    Args:
      directory: the run directory.
      step: a checkpoint step; None: the run's latest checkpoint, with the params it
        chose there (those of its best validation step, which every checkpoint holds;
        the latest params where it has chosen none).

    Raises:
      FileNotFoundError: no run directory, or no complete checkpoint (of ``step``).
      ExperimentError: the run's experiment cannot be rebuilt exactly.
    """
    directory = Path(directory)
    experiment = load_experiment(directory)
    like = experiment_lib.base_config(experiment)
    config = from_dict(rundir.read_json(directory / "config.json"), like)
    group = build(experiment, [config])
    mode = group.directions[config.train.best_metric]
    template = program_lib.initial_state(
        config, group.models[0], group.objective, group.optimizers[0], program_lib.worst(mode)
    )
    ckpt = Checkpointer(directory / "checkpoints")
    try:
        if step is None:
            restored = ckpt.restore(template)
            if restored is None:
                raise FileNotFoundError(
                    f"run_dir: no complete checkpoint under {directory / 'checkpoints'}"
                )
            state = restored[1]
        elif step not in ckpt.steps():
            raise FileNotFoundError(
                f"step: no checkpoint of step {step} under {directory / 'checkpoints'}; "
                f"have {ckpt.steps()}"
            )
        else:
            state = ckpt.restore_step(step, template)
    finally:
        ckpt.close()
    if step is None:
        stacked = jax.tree.map(lambda x: jnp.asarray(x)[None], state)
        params, (step,) = chosen(stacked, config.train.keep_best)
        params = jax.tree.map(lambda x: x[0], params)
    else:
        params = state.train.params
    return Run(directory, experiment, config, group, state, params, step)


def evaluate(run: Run, split: str = "test") -> dict[str, float]:
    """A run's metrics on a held-out split (``"test"`` or ``"validation"``) with its params."""
    config = run.config
    sharding = distributed.member_sharding(1)
    program = program_lib.make_program(
        run.group.data,
        run.group.objective,
        run.group.optimizers[0],
        schedule(config.optim, config.train.steps),
        config,
        sharding,
    )
    batches = eval_batches(
        run.group.data, split, config.train.eval_batch_size, config.train.eval_batches
    )
    params = distributed.place(jax.tree.map(lambda x: jnp.asarray(x)[None], run.params), sharding)
    return program_lib.evaluate(program, run.group.objective, params, batches)[0]
