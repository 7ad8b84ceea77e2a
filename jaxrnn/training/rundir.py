"""Run directories: what a run (or a sweep member) writes, and the checks before it resumes.

A run directory holds::

    run.json           schema version, the experiment's name, path and sha256 (written once)
    config.json        the fully resolved config
    experiment.py      a copy of the experiment file the run was started with
    manifest.json      versions, git commit, devices, seed, run hash, experiment, and the
                       methods used with their references (jaxrnn.training.cite; each start)
    CITATION.bib       how to cite jaxrnn (with those versions), the methods and the data set
    metrics.jsonl      one JSON object per logged step, evaluation and test
    checkpoints/       orbax checkpoints (latest k, best k by validation, final); each holds
                       the params of the best validation step so far too
    status.json        running / interrupted / diverged / finished, step, last checkpoint,
                       host, pid and heartbeat (jaxrnn.training.liveness), final results
    .lock              held by the process that trains the run (jaxrnn.training.liveness)
    loss.png           the training and validation loss, and the baseline

A sweep member's folder (``SWEEP/members/<id>/``) is a run directory too, so
``jaxrnn eval`` and ``jaxrnn sample`` take either.

Running on an existing directory resumes it only if it holds the same run:
:func:`prepare` refuses, before any compute, a directory made by another schema
version, by another version of the experiment file, or with another config, and
says which.
"""

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from jaxrnn.training import cite, distributed
from jaxrnn.training.config import Config, config_hash, to_dict
from jaxrnn.training.experiment import Experiment

# The layout and meaning of run directories and configs. 1: jaxrnn before experiment
# plug-ins (no run.json, configs with task.name); 2: experiments as plug-ins.
SCHEMA_VERSION = 2
# A line per train step, eval and test record; read back by the summaries.
LOG = "metrics.jsonl"


class RunDirError(ValueError):
    """A directory cannot hold this run (another schema, experiment or config)."""


def run_hash(config: Config, experiment: Experiment) -> str:
    """12 hex digits naming a run: the schema version, the resolved config and the
    experiment file's hash. Any change to either gives another run directory."""
    canonical = json.dumps(
        {"schema": SCHEMA_VERSION, "config": to_dict(config), "experiment": experiment.sha256},
        sort_keys=True,
        separators=(",", ":"),
    )
    return hashlib.sha256(canonical.encode()).hexdigest()[:12]


def default_dir(config: Config, experiment: Experiment, root: str | Path = "runs") -> Path:
    """``runs/<name>-<run hash>``: the same command resumes the same run."""
    return Path(root) / f"{config.name}-{run_hash(config, experiment)}"


def write_json(path: Path, value: Any) -> None:
    """Write ``value`` as JSON atomically (another process reads all of it or nothing)."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(value, indent=2, sort_keys=True))
    tmp.replace(path)


def read_json(path: Path) -> Any:
    """The JSON at ``path``.

    Raises:
      RunDirError: the file is not JSON text (the message names it).
    """
    try:
        return json.loads(Path(path).read_text())
    except ValueError as e:  # json.JSONDecodeError, UnicodeDecodeError
        raise RunDirError(f"{path}: not a JSON file ({e}); it is damaged") from e


def differences(old: Mapping, new: Mapping, prefix: str = "") -> list[str]:
    """``key: old there, new here`` for each key whose value differs (nested keys dotted)."""
    out = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key, "<absent>"), new.get(key, "<absent>")
        if isinstance(a, Mapping) and isinstance(b, Mapping):
            out += differences(a, b, f"{prefix}{key}.")
        elif a != b:
            out.append(f"{prefix}{key}: {a!r} there, {b!r} here")
    return out


def check(directory: Path, config: Config, experiment: Experiment) -> None:
    """Refuse a directory that holds another run (before anything is written or computed).

    Raises:
      RunDirError: it was made by another schema version, by another version of
        the experiment file, or with another config; the message says which and how.
    """
    run_file, config_file = directory / "run.json", directory / "config.json"
    if not config_file.exists():
        return
    if not run_file.exists():
        raise RunDirError(
            f"workdir: {directory} was made by an older jaxrnn (run-directory schema 1); this "
            f"jaxrnn writes schema {SCHEMA_VERSION} and never resumes an older run. Choose "
            f"another workdir (evaluate the old run with the jaxrnn that made it)."
        )
    run = read_json(run_file)
    if run.get("schema_version") != SCHEMA_VERSION:
        raise RunDirError(
            f"workdir: {directory} was made with run-directory schema "
            f"{run.get('schema_version')}; this jaxrnn writes schema {SCHEMA_VERSION}. "
            f"Choose another workdir."
        )
    recorded = run["experiment"]
    if recorded["sha256"] != experiment.sha256:
        raise RunDirError(
            f"workdir: {directory} holds a run of experiment {recorded['name']!r} with file hash "
            f"{recorded['sha256'][:12]} (from {recorded['path']}); {experiment.path} now hashes to "
            f"{experiment.sha256[:12]}: the experiment changed since the run started. Choose "
            f"another workdir (the default run directory follows the file's hash)."
        )
    changed = differences(read_json(config_file), to_dict(config))
    if changed:
        raise RunDirError(
            f"workdir: {directory} holds a run of a different config ("
            + "; ".join(changed)
            + "); choose another workdir to start a new run, or continue a finished one "
            f"to more steps with `jaxrnn train --extend {directory} train.steps=N`"
        )


def record_extension(directory: Path, old: Config, new: Config, step: int) -> None:
    """Make ``directory``'s run the run of ``new`` (``jaxrnn train --extend``): its
    ``config.json``, and the lineage in ``run.json`` that each ``manifest.json`` repeats."""
    if not distributed.is_primary():
        return
    run = read_json(directory / "run.json")
    run.setdefault("extended", []).append(
        {
            "at_step": step,
            "steps": [old.train.steps, new.train.steps],
            "config_hash": [config_hash(old), config_hash(new)],
        }
    )
    write_json(directory / "run.json", run)
    write_json(directory / "config.json", to_dict(new))


def manifest(config: Config, experiment: Experiment, dataset_bibtex: str | None = None) -> dict:
    """What produced a run: versions, commit, devices, seed, hashes, the experiment, and
    the methods it uses with their references and its data set's
    (:func:`jaxrnn.training.cite.record`)."""
    return {
        **cite.current_versions(),
        "seed": config.seed,
        "config_hash": config_hash(config),
        "run_hash": run_hash(config, experiment),
        "schema_version": SCHEMA_VERSION,
        "experiment": identity(experiment),
        **cite.record(config, dataset_bibtex),
    }


def identity(experiment: Experiment) -> dict:
    """``{"name", "path", "sha256"}`` of an experiment."""
    return {"name": experiment.name, "path": str(experiment.path), "sha256": experiment.sha256}


def prepare(directory: Path, config: Config, experiment: Experiment, dataset_bibtex=None) -> None:
    """Check ``directory`` (see :func:`check`), then write what a run directory holds
    before its first step: ``run.json``, ``config.json``, ``experiment.py`` (once),
    ``manifest.json`` and ``CITATION.bib`` (every start). Only process 0 writes."""
    directory.mkdir(parents=True, exist_ok=True)
    check(directory, config, experiment)
    if not distributed.is_primary():
        return  # process 0 writes; the others only check
    if not (directory / "config.json").exists():
        # The bytes that were loaded, not the file as it is now: a sweep's later
        # groups start after the user may have edited it.
        (directory / "experiment.py").write_bytes(experiment.source)
        write_json(
            directory / "run.json",
            {"schema_version": SCHEMA_VERSION, "experiment": identity(experiment)},
        )
        write_json(directory / "config.json", to_dict(config))
    versions = manifest(config, experiment, dataset_bibtex)
    extended = read_json(directory / "run.json").get("extended")
    if extended:  # the lineage of jaxrnn train --extend, on every start's manifest
        versions["extended"] = extended
    write_json(directory / "manifest.json", versions)
    cite.write_bibtex(directory / "CITATION.bib", versions)


def write_status(directory: Path, status: str, **extra) -> None:
    """``status.json``: ``{"status": status, **extra}`` (process 0 only, atomically)."""
    if distributed.is_primary():
        write_json(directory / "status.json", {"status": status, **extra})


def read_status(directory: Path) -> dict | None:
    """The run's ``status.json``, or None before its first start."""
    path = Path(directory) / "status.json"
    return read_json(path) if path.exists() else None


def read_log(path: Path) -> list[dict]:
    """The records of a ``metrics.jsonl``; a last line cut by a kill is skipped."""
    records = []
    for line in Path(path).read_text().splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return records


def truncate_log(path: Path, step: int) -> None:
    """Drop log records past ``step`` (written after the checkpoint a resumed run
    restarts from), and test records, which the resumed run writes again."""
    if not distributed.is_primary() or not path.exists():
        return
    kept = [r for r in read_log(path) if r["step"] <= step and r["kind"] != "test"]
    path.write_text("".join(json.dumps(r) + "\n" for r in kept))


def plot_losses(directory: Path, baseline: Mapping | None = None) -> Path:
    """``loss.png``: training and validation loss against step (log scale), the test
    loss at the chosen step, and the baseline's test loss as a dashed line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    records = read_log(directory / LOG)
    fig, ax = plt.subplots(figsize=(5, 3.2), dpi=150)
    for kind, style, label in (
        ("train", "-", "train"),
        ("eval", "o-", "validation"),
        ("test", "*", "test (chosen step)"),
    ):
        rows = [r for r in records if r["kind"] == kind and "loss" in r]
        if rows:
            steps, losses = [r["step"] for r in rows], [r["loss"] for r in rows]
            ax.plot(steps, losses, style, label=label, ms=8 if kind == "test" else 3)
    if baseline is not None and "loss" in baseline:
        name = baseline.get("name", "baseline")
        ax.axhline(baseline["loss"], color="grey", ls="--", lw=1, label=name)
    if all(np.min(line.get_ydata()) > 0 for line in ax.lines if len(line.get_ydata())):
        ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.legend(frameon=False, fontsize=7)
    fig.tight_layout()
    out = directory / "loss.png"
    fig.savefig(out)
    plt.close(fig)
    return out
