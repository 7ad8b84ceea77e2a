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
from jaxrnn.training import distributed, rundir
from jaxrnn.training import experiment as experiment_lib
from jaxrnn.training import program as program_lib
from jaxrnn.training.checkpoint import Checkpointer
from jaxrnn.training.config import Config
from jaxrnn.training.loop import Group, Member, Stop, build, chosen, run_group
from jaxrnn.training.optim import schedule
from jaxrnn.training.overrides import from_dict
from jaxrnn.training.progress import Board


def train(
    experiment: str | Path | experiment_lib.Experiment | None = None,
    overrides: Sequence[str] = (),
    *,
    workdir: str | Path | None = None,
    smoke: bool = False,
    progress: bool = False,
    echo: Callable[[str], None] = print,
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

    Returns:
      ``{"status", "step", "chosen_step", **test metrics, "baseline", "workdir"}``.

    Raises:
      FileNotFoundError, ExperimentError, ConfigError, RunDirError: before any compute.
    """
    if not isinstance(experiment, experiment_lib.Experiment):
        experiment = experiment_lib.load(experiment)
    config = experiment_lib.get_config(experiment, overrides, smoke=smoke)
    directory = Path(workdir) if workdir is not None else rundir.default_dir(config, experiment)
    member = Member("run", config, directory)
    with Stop() as stop, Board([("run", "")], config.name, progress) as board:
        outcome = run_group(experiment, [member], stop=stop, board=board, echo=echo)["run"]
    return {**outcome, "workdir": str(directory)}


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
