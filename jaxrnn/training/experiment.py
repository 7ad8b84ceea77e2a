"""Experiments as plug-ins: one Python file, anywhere on disk, gets the whole runner.

An experiment file declares its pieces as module-level functions::

    get_config(smoke: bool = False) -> Config        # required: the run's typed config
    get_data(config) -> Stream | Dataset             # required: batches, or finite splits
    get_model(config, data) -> model                 # required: anything with init(key) -> params
    get_objective(config, model, data) -> Objective  # required: the loss, metric directions
    get_baseline(config, data, test) -> Baseline     # optional: the figure beside the test result
    get_sweep() -> dict                              # optional: its sweep (grid, random, seeds)
    finalize_config(config) -> config                # optional: derive settings after overrides
    generate(config, model, data, params, prompt, length, key, *, temperature, top_k) -> str
                                                     # optional: text for ``jaxrnn sample``
    CITATION = "@article{...}"                       # optional: the data set's BibTeX
    LABELS = {"optim.learning_rate": "learning rate", "loss": "test MSE"}
                                                     # optional: sweep-table labels

(see :mod:`jaxrnn.tasks` for ``Stream``, ``Dataset``, ``Objective`` and ``Baseline``).
``jaxrnn train path/to/file.py key=value ...`` and ``jaxrnn sweep path/to/file.py
...`` then run it; :func:`jaxrnn.training.train` does the same from Python. The
file's docstring opens with the command that runs it and the result it should
give; ``smoke=True`` shrinks it to a run of seconds for tests (big_vision style).

``LABELS`` names the columns of a sweep's tables (:mod:`jaxrnn.sweep.tables`): each
key is a config key as an override writes it, or a metric of the objective; each
value is plain text, ``$...$`` for math. It is checked with the other pieces, before
any compute: a key that is neither is an error naming it.

``get_data`` is called once per group of sweep members (they share every data
setting), ``get_model`` once per member (each is initialised from its own config)
and ``get_objective`` once per group; a sweep calls each once more per group
before it trains any, to check every group first.

Built-in experiments are files of this form in the repository's ``configs/``,
installed as the package data ``jaxrnn.configs``; a bare name (``adding_lstm``)
finds them, from a source checkout and from a wheel alike.

**Identity.** An experiment's ``sha256`` is that of its file's bytes, and of the
files of experiments it loads with :func:`load` while it is being loaded (a sweep
file built on another experiment, say). A run records it: editing the file is
never missed, and moving it does not break resume. Helper modules the file
imports are *not* hashed: a change there goes unnoticed, so keep what decides a
result in the experiment file, or in a versioned package.

A file is loaded with its own folder first on ``sys.path``, as ``python file.py``
would run it, so that helper modules beside it import.
"""

import contextlib
import difflib
import functools
import hashlib
import importlib.util
import inspect
import sys
import types
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import jax

from jaxrnn.cells.base import describe
from jaxrnn.tasks.baselines import Baseline
from jaxrnn.tasks.data import Dataset, Stream, shapes
from jaxrnn.tasks.objectives import Objective, check_directions, directions
from jaxrnn.training.config import Config, ConfigError, to_dict
from jaxrnn.training.labels import label_problems
from jaxrnn.training.overrides import apply_overrides

DEFAULT = "adding_lstm"
REQUIRED = {
    "get_config": "get_config(smoke: bool = False) -> jaxrnn.training.Config",
    "get_data": "get_data(config) -> jaxrnn.tasks.Stream | jaxrnn.tasks.Dataset",
    "get_model": "get_model(config, data) -> a model with init(key) -> params",
    "get_objective": "get_objective(config, model, data) -> jaxrnn.tasks.Objective",
}
OPTIONAL = {
    "get_baseline": "get_baseline(config, data, test) -> jaxrnn.tasks.Baseline",
    "get_sweep": "get_sweep() -> dict",
    "finalize_config": "finalize_config(config) -> jaxrnn.training.Config",
    "generate": "generate(config, model, data, params, prompt, length, key, *, temperature, "
    "top_k) -> str",
    "CITATION": "CITATION: str (BibTeX)",
    "LABELS": "LABELS: dict[str, str] (sweep-table labels: a config key or a metric -> text)",
}


class ExperimentError(ValueError):
    """An experiment file lacks a piece, or a piece has the wrong form.

    The message names the file, the piece, what was expected and what was found.
    """


class Experiment(NamedTuple):
    """A loaded experiment file.

    Attributes:
      name: the file's stem (``adding_lstm``).
      path: its absolute path.
      sha256: the hash of its bytes and of the experiment files it loaded (hex).
      module: the executed module, whose attributes are the pieces.
      source: the bytes that were hashed and executed: what a run directory keeps as
        ``experiment.py``, even when the file is edited while a sweep runs.
    """

    name: str
    path: Path
    sha256: str
    module: types.ModuleType
    source: bytes

    def fail(self, piece: str, problem: str) -> ExperimentError:
        """An :class:`ExperimentError` about ``piece`` of this file."""
        return ExperimentError(f"experiment file {str(self.path)!r}: {piece}: {problem}")

    def has(self, piece: str) -> bool:
        """Whether the file declares the optional ``piece``."""
        return getattr(self.module, piece, None) is not None


def builtin_dir() -> Path:
    """The folder of the built-in experiment files (``configs/``, installed as
    ``jaxrnn.configs``), found without importing it."""
    spec = importlib.util.find_spec("jaxrnn.configs")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("jaxrnn.configs: the built-in experiments are not installed")
    return Path(next(iter(spec.submodule_search_locations)))


def builtin_names() -> list[str]:
    """The names of the built-in experiments (what a bare name may be)."""
    return sorted(p.stem for p in builtin_dir().glob("*.py") if not p.name.startswith("_"))


def resolve(path_or_name: str | Path | None) -> Path:
    """The file an experiment argument names: a path to a file, or a built-in's name.

    Raises:
      FileNotFoundError: naming the argument, the built-in experiments and the
        closest one.
    """
    given = Path(DEFAULT if path_or_name is None else path_or_name)
    if given.is_file():
        return given.resolve()
    if given.parent == Path(".") and given.suffix in ("", ".py"):
        candidate = builtin_dir() / f"{given.stem}.py"
        if candidate.is_file():
            return candidate.resolve()
    names = builtin_names()
    close = difflib.get_close_matches(given.stem, names, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    raise FileNotFoundError(
        f"experiment: no file {str(path_or_name)!r} and no built-in experiment of that name; "
        f"give the path to an experiment file or one of {', '.join(names)}{hint}"
    )


# The experiments being loaded, innermost last, with the experiments each loaded in
# turn: a file loaded while another is being loaded is part of the outer one's identity.
_LOADING: list[list[Experiment]] = []
# Loaded experiments by file, content and import folder, with the experiments they
# loaded: loading a file again gives the same module, so that its section classes, and
# so its configs, compare equal, and what it registers is registered once.
_LOADED: dict[tuple[Path, str, Path], tuple[Experiment, list[Experiment]]] = {}


@contextlib.contextmanager
def _on_path(folder: Path):
    sys.path.insert(0, str(folder))
    try:
        yield
    finally:
        with contextlib.suppress(ValueError):
            sys.path.remove(str(folder))


def load(path_or_name: str | Path | None = None, *, folder: Path | None = None) -> Experiment:
    """Import an experiment file and check that it declares the required pieces.

    Args:
      path_or_name: the file's path, or a built-in experiment's name; None: the
        default experiment (``adding_lstm``).
      folder: put first on ``sys.path`` while it runs (None: the file's own folder);
        a run's copy of its experiment imports helpers from the original's folder.

    Returns:
      The :class:`Experiment`.

    Raises:
      FileNotFoundError: no such file or built-in (see :func:`resolve`).
      ExperimentError: the file fails to import, or lacks a required piece.
    """
    path = resolve(path_or_name)
    folder = Path(folder or path.parent)
    source = path.read_bytes()
    own = hashlib.sha256(source).hexdigest()
    cached = _LOADED.get((path, own, folder))
    if cached is not None and all(load(d.path).sha256 == d.sha256 for d in cached[1]):
        experiment = cached[0]
    else:
        experiment = _execute(path, source, own, folder)
    if _LOADING:
        _LOADING[-1].append(experiment)
    return experiment


def _execute(path: Path, source: bytes, own: str, folder: Path) -> Experiment:
    module_name = f"jaxrnn_experiment_{path.stem}_{own[:12]}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise ExperimentError(f"experiment file {str(path)!r}: not an importable Python file")
    module = importlib.util.module_from_spec(spec)
    # Registered before it runs: dataclasses and pydantic look the module up by name.
    sys.modules[module_name] = module
    _LOADING.append([])
    try:
        with _on_path(folder):
            # The bytes hashed above, not the file read again: an edit in between would
            # run one version under the other's hash.
            exec(compile(source, str(path), "exec"), module.__dict__)
    except Exception as e:
        sys.modules.pop(module_name, None)
        raise ExperimentError(
            f"experiment file {str(path)!r}: importing it failed: {type(e).__name__}: {e}"
        ) from e
    finally:
        loaded = _LOADING.pop()
    digest = own
    if loaded:
        digest = hashlib.sha256((own + "".join(d.sha256 for d in loaded)).encode()).hexdigest()
    experiment = Experiment(path.stem, path, digest, module, source)
    missing = [piece for piece in REQUIRED if not callable(getattr(module, piece, None))]
    if missing:
        found = sorted(name for name in vars(module) if name.startswith("get_"))
        raise ExperimentError(
            f"experiment file {str(path)!r}: missing "
            + "; ".join(REQUIRED[piece] for piece in missing)
            + f" (it defines {', '.join(found) or 'none of the pieces'})"
        )
    _LOADED[path, own, folder] = experiment, loaded
    return experiment


def _call(experiment: Experiment, piece: str, *args, **kwargs):
    """Call a piece, with its file and name on any error it raises (chained, so that the
    traceback into the user's code stays)."""
    fn = getattr(experiment.module, piece)
    try:
        inspect.signature(fn).bind(*args, **kwargs)
    except TypeError as e:
        raise experiment.fail(piece, f"expected {(REQUIRED | OPTIONAL)[piece]}; {e}") from None
    try:
        return fn(*args, **kwargs)
    except (ConfigError, ExperimentError):
        raise
    except Exception as e:
        if piece == "finalize_config" and isinstance(e, ValueError):
            raise ConfigError(f"finalize_config() in {str(experiment.path)!r}: {e}") from e
        raise experiment.fail(f"{piece}()", f"raised {type(e).__name__}: {e}") from e


def base_config(experiment: Experiment, *, smoke: bool = False) -> Config:
    """The file's ``get_config(smoke=smoke)``, checked to be a :class:`~jaxrnn.training.Config`.

    Raises:
      ExperimentError: it returns anything else.
    """
    config = _call(experiment, "get_config", smoke=smoke)
    if not isinstance(config, Config):
        raise experiment.fail(
            "get_config()", f"expected a jaxrnn.training.Config, got {type(config).__name__}"
        )
    return config


def get_config(
    experiment: Experiment, overrides: Sequence[str] = (), *, smoke: bool = False
) -> Config:
    """The experiment's config: ``get_config(smoke)``, then the overrides, then its
    ``finalize_config`` if it declares one.

    Raises:
      ExperimentError: ``get_config`` returns no :class:`~jaxrnn.training.Config`.
      ConfigError: an override is invalid (every problem in one error).
    """
    return finalize(experiment, overridden_config(experiment, overrides, smoke=smoke))


def overridden_config(
    experiment: Experiment, overrides: Sequence[str] = (), *, smoke: bool = False
) -> Config:
    """``get_config(smoke)`` with the overrides, before ``finalize_config``: what a
    sweep member starts from. (A member that started from a finalized config would
    keep the settings derived for the base, not for its own overrides.)

    Raises:
      ExperimentError, ConfigError: as :func:`get_config`.
    """
    return apply_overrides(base_config(experiment, smoke=smoke), overrides)


def finalize(experiment: Experiment, config: Config) -> Config:
    """The file's ``finalize_config(config)`` (the config itself where it declares none),
    applied after the overrides of a run or of each sweep member.

    Raises:
      ConfigError: it raised a ``ValueError`` (the message names the file).
      ExperimentError: it returned anything but a :class:`~jaxrnn.training.Config`.
    """
    if not experiment.has("finalize_config"):
        return config
    config = _call(experiment, "finalize_config", config)
    if not isinstance(config, Config):
        raise experiment.fail(
            "finalize_config()", f"expected a jaxrnn.training.Config, got {type(config).__name__}"
        )
    return config


def get_data(experiment: Experiment, config: Config) -> Stream | Dataset:
    """``get_data(config)``, checked to be a :class:`~jaxrnn.tasks.Stream` or
    :class:`~jaxrnn.tasks.Dataset`."""
    data = _call(experiment, "get_data", config)
    if not isinstance(data, Stream | Dataset):
        raise experiment.fail(
            "get_data()",
            f"expected a jaxrnn.tasks.Stream or jaxrnn.tasks.Dataset, got {type(data).__name__}",
        )
    return data


def get_model(experiment: Experiment, config: Config, data) -> Any:
    """``get_model(config, data)``, checked to have ``init``."""
    model = _call(experiment, "get_model", config, data)
    if not callable(getattr(model, "init", None)):
        raise experiment.fail(
            "get_model()",
            f"expected a model with init(key) -> params, got {type(model).__name__} with no init",
        )
    return model


def get_objective(experiment: Experiment, config: Config, model, data) -> Objective:
    """``get_objective(config, model, data)``, checked to be an :class:`~jaxrnn.tasks.Objective`."""
    objective = _call(experiment, "get_objective", config, model, data)
    if not isinstance(objective, Objective):
        raise experiment.fail(
            "get_objective()",
            f"expected a jaxrnn.tasks.Objective, got {type(objective).__name__}",
        )
    problems = check_directions(objective.metrics, "Objective.metrics")
    if problems:
        raise experiment.fail("get_objective()", "; ".join(problems))
    return objective


def get_baseline(experiment: Experiment, config: Config, data, test: list) -> Baseline | None:
    """``get_baseline(config, data, test)`` if the file declares it, else None."""
    if not experiment.has("get_baseline"):
        return None
    baseline = _call(experiment, "get_baseline", config, data, test)
    if baseline is not None and not isinstance(baseline, Baseline):
        raise experiment.fail(
            "get_baseline()", f"expected a jaxrnn.tasks.Baseline, got {type(baseline).__name__}"
        )
    return baseline


def get_sweep(experiment: Experiment) -> dict:
    """The file's ``get_sweep()`` dict, ``{}`` where it declares none."""
    if not experiment.has("get_sweep"):
        return {}
    sweep = _call(experiment, "get_sweep")
    allowed = {"grid", "random", "trials", "seeds", "max_group_size"}
    if not isinstance(sweep, dict) or set(sweep) - allowed:
        found = sorted(set(sweep) - allowed) if isinstance(sweep, dict) else type(sweep).__name__
        raise experiment.fail(
            "get_sweep()", f"expected a dict with keys among {sorted(allowed)}, got {found}"
        )
    return sweep


def citation(experiment: Experiment) -> str | None:
    """The data set's BibTeX (``CITATION``), or None."""
    text = getattr(experiment.module, "CITATION", None)
    if text is not None and not isinstance(text, str):
        raise experiment.fail("CITATION", f"expected a BibTeX string, got {type(text).__name__}")
    return text


def labels(experiment: Experiment) -> dict[str, str]:
    """The file's ``LABELS`` (names for a sweep's table columns), ``{}`` where it
    declares none; its keys are checked against the config and metrics by :func:`check`.

    Raises:
      ExperimentError: it is no ``{str: str}``, or a text has an unpaired ``$``.
    """
    value = getattr(experiment.module, "LABELS", None)
    if value is None:
        return {}
    problems = label_problems(value)
    if problems:
        raise experiment.fail("LABELS", "; ".join(problems))
    return dict(value)


def generator(experiment: Experiment) -> Callable | None:
    """The file's ``generate`` (text from a trained model, for ``jaxrnn sample``), or None."""
    return getattr(experiment.module, "generate", None)


def check(
    experiment: Experiment, config: Config, data, model, objective: Objective
) -> dict[str, str]:
    """Trace (never run) the pieces together, before any compute.

    Draws the shapes of a training batch, of ``model.init(key)`` and of the loss at
    training and at evaluation (``jax.eval_shape``), and checks what the runner
    needs: a scalar loss, scalar metrics, a direction for every metric,
    ``train.best_metric`` among the evaluation metrics, and the keys of ``LABELS``
    among the config's keys and the metrics.

    Returns:
      ``{metric: "min" | "max"}``, every metric's direction (``loss`` included).

    Raises:
      ExperimentError: naming the file, the piece, what was expected and what was found.
    """
    key = jax.random.key(0)
    batch_size = config.train.batch_size
    try:
        batch = shapes(data, batch_size)
    except Exception as e:
        raise experiment.fail("get_data()", f"drawing a training batch failed: {e}") from e
    try:
        params = jax.eval_shape(model.init, key)
    except Exception as e:
        raise experiment.fail("get_model()", f"model.init(key) failed: {e}") from e
    stateful = objective.carry is not None

    def traced(params, batch, k):
        if not stateful:
            return objective.loss(params, batch, k)
        carry = objective.carry(params, batch_size)
        loss, (metrics, _) = objective.loss(params, carry, batch, k)
        return loss, metrics

    found: dict[str, set] = {}
    for where, k in (("training", key), ("evaluation", None)):
        try:
            loss, metrics = jax.eval_shape(functools.partial(traced, k=k), params, batch)
        except Exception as e:
            raise experiment.fail(
                "get_objective()", f"Objective.loss at {where} failed: {type(e).__name__}: {e}"
            ) from e
        if getattr(loss, "shape", None) != ():
            raise experiment.fail(
                "get_objective()",
                f"Objective.loss must return (loss, metrics) with a scalar loss; at {where} "
                f"the loss is {describe(loss)}",
            )
        if not isinstance(metrics, dict):
            raise experiment.fail(
                "get_objective()",
                f"Objective.loss must return (loss, metrics) with a dict of metrics; got "
                f"{type(metrics).__name__}",
            )
        bad = {
            k: describe(v)
            for k, v in metrics.items()
            if any(x.shape != () for x in jax.tree.leaves(v))
        }
        if bad:
            raise experiment.fail(
                "get_objective()", f"metrics must be scalars (or Mean of scalars); got {bad}"
            )
        found[where] = set(metrics)
    declared = directions(objective)
    undeclared = sorted((found["training"] | found["evaluation"]) - set(declared))
    if undeclared:
        raise experiment.fail(
            "get_objective()",
            f"metrics {undeclared} have no direction; declare each in Objective.metrics as "
            f"'min' or 'max' (declared: {sorted(declared)})",
        )
    evaluated = found["evaluation"] | {"loss"} | (set(declared) if objective.evaluate else set())
    if config.train.best_metric not in evaluated:
        close = difflib.get_close_matches(config.train.best_metric, sorted(evaluated), n=1)
        raise ConfigError(
            f"train.best_metric={config.train.best_metric!r}: expected a metric the evaluation "
            f"reports, one of {', '.join(sorted(evaluated))}"
            + (f" (did you mean {close[0]!r}?)" if close else "")
        )
    problems = label_problems(labels(experiment), to_dict(config), declared)
    if problems:
        raise experiment.fail("LABELS", "; ".join(problems))
    return declared
