"""The ``jaxrnn`` command: ``train``, ``eval``, ``runs``, ``sweep``, ``sample``, ``cite``.

    jaxrnn train [EXPERIMENT] [key.sub=value ...] [--workdir DIR] [--smoke]
    jaxrnn eval RUN_DIR [--split test|validation] [--step N]
    jaxrnn runs [ROOT]
    jaxrnn sweep [EXPERIMENT] [--grid key=v1,v2]... [--random key=dist:a,b --trials N]
                 [--seeds N|a-b|a,b,c] [--max-group-size N] [--sweep-dir DIR]
                 [--label KEY=TEXT]... [--siunitx] [key=value ...]
    jaxrnn sweep [EXPERIMENT] --optuna TRIALS [--batch K] [--random key=dist:a,b]... [...]
    jaxrnn sample RUN_DIR [--prompt TEXT] [--length N] [--temperature T] [--top-k K] [--seed S]
    jaxrnn cite [RUN_OR_SWEEP_DIR] [--style bibtex|biblatex] [--cff CITATION.cff]

Every error is one line and a non-zero exit code: 2 for what is wrong before any
compute (a path, an experiment file, a key or value, a directory of another run), 1 for
a run that fails, or whose directory another process is training. ``--debug`` (before
or after the command) shows the traceback instead.

``EXPERIMENT`` is the path to an experiment file (anywhere on disk) or the name of
a built-in one (default: ``adding_lstm``); see :mod:`jaxrnn.training.experiment`.
Overrides are validated against the experiment's typed config before anything is
computed. Without ``--workdir`` a run lives in ``runs/<name>-<run hash>``, so
running the same command again resumes it.
"""

import argparse
import hashlib
import json
import os
import sys
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.table import Table

console = Console()


def _print_results(title: str, results: dict) -> None:
    table = Table()
    table.add_column("metric")
    table.add_column("value", justify="right")
    for name, value in results.items():
        if isinstance(value, dict):
            continue
        table.add_row(name, f"{value:.4g}" if isinstance(value, float) else str(value))
    console.print(title, soft_wrap=True)
    console.print(table)
    console.print(_comparison(results), soft_wrap=True)


def _comparison(results: dict) -> str:
    loss, baseline = results.get("loss"), results.get("baseline") or {}
    if loss is None or "loss" not in baseline:
        return ""
    reference = baseline["loss"]
    verdict = (
        f"{reference / max(loss, 1e-12):.1f}x lower"
        if loss < reference
        else "no better: not learned"
    )
    return f"test loss {loss:.4g} vs {reference:.4g} for {baseline['name']} ({verdict})"


# Exit codes (README, "Exit codes"). An interrupted run exits with EX_TEMPFAIL of
# sysexits.h, "try again later": a requeue script resumes it with the same command,
# while 128 + 15 would say it was killed without saving.
EXIT_FAILED, EXIT_USAGE, EXIT_DIVERGED, EXIT_INTERRUPTED = 1, 2, 3, 75


def _error(args, e: Exception, code: int = EXIT_USAGE, text: str | None = None) -> int:
    """Print ``e`` (or ``text`` about it) as one error line and return the exit ``code``;
    under ``--debug``, raise ``e`` instead, with its traceback."""
    if args.debug:
        raise e
    # escape: messages hold brackets ("[*batch, T, I]") that rich would read as markup.
    console.print("[red]error:[/red]", escape(str(e) if text is None else text), soft_wrap=True)
    return code


# What a user can get wrong before any compute: a path, a name, a key, a value, a file.
USER_ERRORS = (OSError, ValueError)


def _resume_hint(directory: Path, what: str = "run") -> str:
    """After an I/O error (a full disk, a folder not writable) stopped a run or a sweep
    in ``directory``: what it keeps, and how to go on."""
    from jaxrnn.training.checkpoint import Checkpointer

    kept = None
    if what == "sweep":
        if any(p.name.isdigit() for p in directory.glob("members/*/checkpoints/*")):
            kept = "each member's last complete checkpoint is"
    elif (directory / "checkpoints").is_dir():
        ckpt = Checkpointer(directory / "checkpoints")
        step = ckpt.latest_step()
        ckpt.close()
        if step is not None:
            kept = f"its last complete checkpoint, step {step}, is"
    if kept is None:
        return (
            f". The {what} stopped before saving anything: make room, or choose a directory "
            f"you can write to, and run the command again."
        )
    return (
        f". The {what} stopped; {kept} intact: make room (or fix the access), then run the "
        f"same command to resume from there."
    )


def _failure(args, e: Exception, directory: Path, what: str = "run") -> int:
    """Report what stopped a run or a sweep, with its exit code: 1 for a directory in use
    (it may be free later) or an I/O error (with what is kept, and how to go on), 2 for a
    ``ValueError``, which the loop raises only before any compute (the input is wrong)."""
    from jaxrnn.training.liveness import BusyError

    if isinstance(e, BusyError):
        return _error(args, e, EXIT_FAILED)
    if isinstance(e, OSError):  # the disk filled, the folder is not writable, ...
        return _error(args, e, EXIT_FAILED, f"{e}{_resume_hint(directory, what)}")
    return _error(args, e)


def _check_views(args) -> None:
    """``--wandb`` without W&B installed: refused before anything runs (ValueError)."""
    if args.wandb:
        from jaxrnn.training import events

        events.check_wandb()


def cmd_train(args) -> int:
    from jaxrnn.training import experiment as experiment_lib
    from jaxrnn.training import rundir, runs

    if args.extend:
        return _extend(args)
    try:
        _check_views(args)
        experiment = experiment_lib.load(args.experiment)
        cfg = experiment_lib.get_config(experiment, args.overrides, smoke=args.smoke)
    except USER_ERRORS as e:
        return _error(args, e)
    workdir = Path(args.workdir) if args.workdir else rundir.default_dir(cfg, experiment)
    console.print(f"run directory: {workdir}")
    try:
        results = runs.train(
            experiment,
            args.overrides,
            workdir=workdir,
            smoke=args.smoke,
            progress=not args.no_progress,
            echo=console.print,
            wandb=args.wandb,
        )
    except USER_ERRORS as e:
        return _failure(args, e, workdir)
    return _outcome(results, cfg.name)


def _extend(args) -> int:
    from jaxrnn.training import runs

    if args.experiment or args.workdir:
        return _error(
            args,
            ValueError(
                f"--extend {args.extend}: the run names its experiment and directory; got "
                f"experiment={args.experiment!r}, --workdir={args.workdir!r} too"
            ),
        )
    try:
        results = runs.extend(
            args.extend,
            args.overrides,
            progress=not args.no_progress,
            echo=console.print,
            wandb=args.wandb,
        )
    except USER_ERRORS as e:
        return _failure(args, e, Path(args.extend))
    return _outcome(results, Path(args.extend).name)


def _outcome(results: dict, name: str) -> int:
    """Report a run's end and return its exit code."""
    if results["status"] == "diverged":
        console.print(
            f"[red]error:[/red] step {results['step']}: non-finite loss or gradient under "
            f"train.nonfinite='stop'; the run stopped there (test at step "
            f"{results['chosen_step']}: loss {results.get('loss', float('nan')):.4g})"
        )
        return EXIT_DIVERGED
    if results["status"] == "interrupted":
        return EXIT_INTERRUPTED
    _print_results(f"{name}: test split at step {results['chosen_step']}", results)
    return 0


def cmd_eval(args) -> int:
    from jaxrnn.training import runs

    try:
        run = runs.load_run(args.run_dir, args.step)
        metrics = runs.evaluate(run, args.split)
    except USER_ERRORS as e:
        return _error(args, e)
    _print_results(f"{run.config.name}: {args.split} split at step {run.step}", metrics)
    return 0


def _no_runs(root: Path) -> str:
    """Why ``jaxrnn runs ROOT`` finds nothing to list, and what to give instead."""
    if not root.exists():
        return (
            f"root: no folder {str(root)!r}; run directories are made by `jaxrnn train` "
            f"(under runs/ by default)"
        )
    if not root.is_dir():
        return f"root: {str(root)!r} is a file; give the folder that holds run directories"
    if (root / "status.json").exists():
        return (
            f"root: {str(root)!r} is a run directory itself; list the folder that holds it: "
            f"jaxrnn runs {root.parent}"
        )
    if (root / "sweep.json").exists():
        return f"root: {str(root)!r} is a sweep whose members have not started"
    return (
        f"root: {str(root)!r} holds no run directories (folders with a status.json, made by "
        f"`jaxrnn train` and `jaxrnn sweep`)"
    )


def cmd_runs(args) -> int:
    from jaxrnn.training import liveness

    root = Path(args.root)
    # Runs, or a sweep's members (given the sweep's directory or its members/).
    status_files = sorted(root.glob("*/status.json")) + sorted(root.glob("members/*/status.json"))
    if not status_files:
        return _error(args, FileNotFoundError(_no_runs(root)))
    table = Table(title=f"runs under {root}")
    for column in ("run", "status", "step", "loss", "baseline"):
        table.add_column(column)
    for status_file in status_files:
        status = liveness.verified(status_file.parent, json.loads(status_file.read_text()))
        final, baseline = status.get("final", {}), status.get("baseline") or {}
        table.add_row(
            str(status_file.parent.relative_to(root)),
            liveness.describe(status),
            str(status.get("step", "")),
            f"{final['loss']:.4g}" if "loss" in final else "",
            f"{baseline['loss']:.4g}" if "loss" in baseline else "",
        )
    console.print(table)
    return 0


def cmd_sample(args) -> int:
    import jax

    from jaxrnn.training import experiment as experiment_lib
    from jaxrnn.training import runs

    try:
        run = runs.load_run(args.run_dir)
    except USER_ERRORS as e:
        return _error(args, e)
    generate = experiment_lib.generator(run.experiment)
    if generate is None:
        return _error(
            args,
            ValueError(
                f"run_dir: the experiment {run.experiment.name!r} ({run.experiment.path}) "
                f"defines no generate(config, model, data, params, prompt, length, key, *, "
                f"temperature, top_k): its model does not generate text"
            ),
        )
    try:
        out = generate(
            run.config, run.model, run.group.data, run.params, args.prompt,
            args.length, jax.random.key(args.seed), temperature=args.temperature, top_k=args.top_k,
        )  # fmt: skip
    except ValueError as e:
        return _error(args, e)
    # Plain print: the text holds brackets ("[Enter Chorus.]") that rich reads as markup.
    print(out)
    return 0


def cmd_cite(args) -> int:
    """jaxrnn's BibTeX; with a run or sweep directory, also every method it used and its
    data set, each with its paper (:mod:`jaxrnn.training.cite`)."""
    from jaxrnn.training import cite

    if args.style not in cite.STYLES:
        return _error(
            args,
            ValueError(
                f"--style: expected 'bibtex' (@misc, for classic BibTeX and natbib) or "
                f"'biblatex' (@software), got {args.style!r}"
            ),
        )
    try:
        cff = cite.load_cff(args.cff)
        if args.run_or_sweep_dir is None:
            text = cite.bibtex(cff, style=args.style)
        else:
            text = cite.document(cite.collect(args.run_or_sweep_dir), cff, style=args.style)
    except USER_ERRORS as e:
        return _error(args, e)
    # Plain print: BibTeX must reach a redirected file unwrapped and unstyled.
    print(text, end="")
    return 0


def _labels(items: list[str]) -> dict[str, str]:
    """``--label KEY=TEXT`` options as ``{key: text}`` (the keys are checked against the
    sweep's config and metrics when its tables are written)."""
    from jaxrnn.training.labels import label_problems

    labels = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(
                f"--label {item!r}: expected KEY=TEXT, a config key or a metric and its "
                f"label, e.g. --label 'optim.learning_rate=learning rate'"
            )
        labels[key.strip()] = text
    problems = label_problems(labels)
    if problems:
        raise ValueError("--label: " + "; ".join(problems))
    return labels


def cmd_sweep(args) -> int:
    from jaxrnn import sweep

    if args.optuna is not None or args.batch is not None:
        return _search(args)
    try:
        _check_views(args)
        labels = _labels(args.label)
        spec = sweep.load(
            args.experiment,
            args.overrides,
            grid=args.grid,
            random=args.random,
            trials=args.trials,
            seeds=args.seeds,
            max_group_size=args.max_group_size,
            smoke=args.smoke,
        )
    except USER_ERRORS as e:
        return _error(args, e)
    from jaxrnn.training import rundir

    # The same command resumes: the default directory is named by the members' runs.
    digest = hashlib.sha256(
        " ".join(rundir.run_hash(m.config, spec.experiment) for m in spec.members).encode()
    ).hexdigest()[:12]
    sweep_dir = Path(args.sweep_dir or Path("sweeps") / f"{spec.base.name}-{digest}")
    n = len(spec.members)
    console.print(f"sweep directory: {sweep_dir} ({n} member{'s' * (n != 1)})")
    try:
        results = sweep.run(
            spec.experiment,
            spec.members,
            sweep_dir,
            max_group_size=spec.max_group_size,
            progress=not args.no_progress,
            spec=spec,
            echo=console.print,
            wandb=args.wandb,
        )
    except USER_ERRORS as e:
        return _failure(args, e, sweep_dir, "sweep")
    from jaxrnn.training import distributed

    # A diverged member is a result of the sweep (a learning rate too large), not a failure.
    done = all(r["status"] in ("finished", "diverged") for r in results.values())
    if not done:
        return EXIT_INTERRUPTED
    if distributed.is_primary():  # one process writes the tables
        return _tables(args, sweep_dir, labels, "sweep")
    return 0


def _tables(args, sweep_dir: Path, labels: dict[str, str], what: str) -> int:
    """Write a finished sweep's (or search's) summary tables; returns the exit code."""
    from jaxrnn import sweep

    try:
        sweep.summarize(sweep_dir, labels=labels, siunitx=args.siunitx)
    except ValueError as e:  # a --label key that names neither a config key nor a metric
        return _error(
            args,
            e,
            text=f"{e}; the {what} itself finished: run the same command with the --label "
            f"corrected to write the tables (nothing is trained again)",
        )
    console.print(f"summary: {sweep_dir / 'summary.md'}")
    return 0


def _search(args) -> int:
    """``jaxrnn sweep --optuna N --batch K``: Optuna's ask-and-tell, K trials a batch
    trained as one sweep (:mod:`jaxrnn.sweep.search`)."""
    from jaxrnn.sweep import search

    try:
        _check_views(args)
        if args.optuna is None:
            raise ValueError(f"--batch {args.batch}: needs --optuna N, the number of trials")
        if args.trials is not None:
            raise ValueError(
                f"--trials {args.trials}: --optuna N gives the number of trials; drop --trials"
            )
        labels = _labels(args.label)
        found = search.load(
            args.experiment,
            args.overrides,
            trials=args.optuna,
            batch=args.batch if args.batch is not None else min(args.optuna, 8),
            grid=args.grid,
            random=args.random,
            seeds=args.seeds,
            max_group_size=args.max_group_size,
            smoke=args.smoke,
        )
    except (*USER_ERRORS, ImportError) as e:
        return _error(args, e)
    sweep_dir = Path(args.sweep_dir) if args.sweep_dir else search.default_dir(found)
    console.print(
        f"sweep directory: {sweep_dir} (Optuna study {sweep_dir / search.STUDY}: "
        f"{args.optuna} trials, {found.batch} a batch)"
    )
    try:
        results = search.run(
            found, sweep_dir, progress=not args.no_progress, echo=console.print, wandb=args.wandb
        )
    except USER_ERRORS as e:
        return _failure(args, e, sweep_dir, "sweep")
    if any(r["status"] == "interrupted" for r in results.values()):
        return EXIT_INTERRUPTED
    code = _tables(args, sweep_dir, labels, "search")
    if code:
        return code
    top = search.best(sweep_dir)
    if top is not None:
        name, value, params = top
        shown = ", ".join(f"{k}={v}" for k, v in params.items())
        console.print(f"best trial: {name}, validation {value:.6g} with {shown}")
    return 0


def use_compilation_cache() -> None:
    """Keep compiled programs in JAX's persistent compilation cache, in the user's cache
    folder (``~/.cache/jaxrnn/xla`` on Linux, via platformdirs), so that running an
    experiment again, resuming it, or a sweep's next group with the same shapes skips
    XLA's compilation: the smoke run of ``adding_lstm`` reaches its first training step
    2.6x sooner (``bench/startup.py``). A cached program is the same executable, so
    results do not depend on a hit. ``JAX_COMPILATION_CACHE_DIR`` and
    ``JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS``, where set, win.
    """
    import jax
    import platformdirs

    if not os.environ.get("JAX_COMPILATION_CACHE_DIR"):
        folder = Path(platformdirs.user_cache_dir("jaxrnn")) / "xla"
        jax.config.update("jax_compilation_cache_dir", str(folder))
    if not os.environ.get("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"):
        # JAX's default (1 s) would skip most of a run's programs, each compiled in less.
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="jaxrnn", description=__doc__.splitlines()[0])
    debug_help = "on an error, show its traceback instead of one line"
    parser.add_argument("--debug", action="store_true", help=debug_help)
    # --debug after the command too; SUPPRESS: absent there, it keeps the value given before.
    wandb_help = "also log to W&B, offline, under each run directory (jaxrnn[wandb])"
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=debug_help)
    sub = parser.add_subparsers(dest="command", required=True)
    compiles = argparse.ArgumentParser(add_help=False, parents=[common])  # commands that compile
    compiles.add_argument(
        "--no-compile-cache",
        action="store_true",
        help="do not keep compiled programs in the user cache folder (jaxrnn/xla)",
    )
    compiles.add_argument(
        "--reuse-host-memory",
        action="store_true",
        help="keep freed buffers mapped: faster steps at large sizes, more resident memory "
        "(jaxrnn.training.host_memory)",
    )
    train = sub.add_parser(
        "train", parents=[compiles], help="train (or resume) a run of an experiment"
    )
    train.add_argument(
        "experiment", nargs="?", default=None, help="experiment file, or a built-in's name"
    )
    train.add_argument("overrides", nargs="*", help="key.sub=value overrides")
    train.add_argument("--workdir", help="run directory (default runs/<name>-<hash>)")
    train.add_argument(
        "--extend",
        metavar="RUN_DIR",
        help="continue this finished run to a larger train.steps (only the step budget, "
        "evaluation, logging and checkpoint settings may change)",
    )
    train.add_argument("--smoke", action="store_true", help="the experiment's seconds-long mode")
    train.add_argument("--no-progress", action="store_true", help="no progress bar")
    train.add_argument("--wandb", action="store_true", help=wandb_help)
    train.set_defaults(func=cmd_train)
    ev = sub.add_parser(
        "eval", parents=[compiles], help="evaluate a run (or a sweep member) at its chosen step"
    )
    ev.add_argument("run_dir")
    ev.add_argument("--split", choices=("test", "validation"), default="test")
    ev.add_argument("--step", type=int, help="a checkpoint step (default: the chosen one)")
    ev.set_defaults(func=cmd_eval)
    runs = sub.add_parser(
        "runs", parents=[common], help="list run directories with status and final metrics"
    )
    runs.add_argument("root", nargs="?", default="runs")
    runs.set_defaults(func=cmd_runs)
    smp = sub.add_parser(
        "sample", parents=[compiles], help="sample text from a trained model that generates"
    )
    smp.add_argument("run_dir")
    smp.add_argument("--prompt", default="\n", help="text to continue (default a newline)")
    smp.add_argument("--length", type=int, default=300, help="characters to generate")
    smp.add_argument("--temperature", type=float, default=1.0, help="softmax temperature")
    smp.add_argument("--top-k", type=int, default=None, help="sample among the k likeliest")
    smp.add_argument("--seed", type=int, default=0, help="the sampling key's seed")
    smp.set_defaults(func=cmd_sample)
    cite = sub.add_parser(
        "cite",
        parents=[common],
        help="print the BibTeX for jaxrnn (version and commit) and, given a run or sweep "
        "directory, for every method and data set it used",
    )
    cite.add_argument(
        "run_or_sweep_dir",
        nargs="?",
        default=None,
        metavar="RUN_OR_SWEEP_DIR",
        help="a run or sweep directory (default: none, jaxrnn's own entry only)",
    )
    cite.add_argument(
        "--style",
        default="bibtex",
        help="bibtex (default: jaxrnn as @misc, for classic BibTeX and natbib) or biblatex "
        "(@software)",
    )
    cite.add_argument("--cff", help="a CITATION.cff to read (default: jaxrnn's own)")
    cite.set_defaults(func=cmd_cite)
    sw = sub.add_parser(
        "sweep",
        parents=[compiles],
        help="train a sweep of seeds and hyperparameters (or resume it)",
    )
    sw.add_argument(
        "experiment", nargs="?", default=None, help="experiment file, or a built-in's name"
    )
    sw.add_argument("overrides", nargs="*", help="key.sub=value overrides for every member")
    sw.add_argument("--grid", action="append", default=[], help="key=v1,v2,... (repeatable)")
    sw.add_argument("--random", action="append", default=[], help="key=dist:args (repeatable)")
    sw.add_argument("--trials", type=int, help="draws of the --random keys")
    sw.add_argument("--seeds", help="N (0..N-1), a range a-b or a list a,b,c")
    sw.add_argument("--max-group-size", type=int, help="at most N members per program")
    sw.add_argument(
        "--optuna",
        type=int,
        metavar="TRIALS",
        help="search with Optuna (ask-and-tell, TPE) over the --random/--grid space: TRIALS "
        "trials, each a member told its best validation value; needs jaxrnn[optuna]",
    )
    sw.add_argument(
        "--batch",
        type=int,
        metavar="K",
        help="with --optuna: trials asked and trained as one sweep at a time (default 8)",
    )
    sw.add_argument("--sweep-dir", help="sweep directory (default sweeps/<name>-<hash>)")
    sw.add_argument("--smoke", action="store_true", help="the experiment's seconds-long mode")
    sw.add_argument("--no-progress", action="store_true", help="no live table")
    sw.add_argument("--wandb", action="store_true", help=wandb_help)
    sw.add_argument(
        "--label",
        action="append",
        default=[],
        metavar="KEY=TEXT",
        help="a column label for the summary tables, over the experiment's LABELS: a config "
        "key or a metric, then its text ($...$ is math); repeatable",
    )
    sw.add_argument(
        "--siunitx",
        action="store_true",
        help="summary.tex with siunitx S columns, aligned on the decimal marker",
    )
    sw.set_defaults(func=cmd_sweep)
    # Overrides may follow options (`--workdir D key=value`), which argparse's
    # positionals do not allow; collect them from the leftovers.
    args, extra = parser.parse_known_args(argv)
    takes_overrides = args.command in ("train", "sweep")
    if extra and (not takes_overrides or any(e.startswith("-") or "=" not in e for e in extra)):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    if takes_overrides:
        args.overrides = [*args.overrides, *extra]
        if args.experiment and "=" in args.experiment:
            # `jaxrnn train key=value`: no experiment given, only overrides.
            args.overrides, args.experiment = [args.experiment, *args.overrides], None
    try:
        if getattr(args, "reuse_host_memory", False):
            from jaxrnn.training.host_memory import reuse_host_memory

            reuse_host_memory()  # before JAX starts its threads
        if takes_overrides:
            from jaxrnn.training import distributed

            # Before any other JAX call: a multi-process run is described by the
            # JAX_COORDINATOR_ADDRESS / JAX_NUM_PROCESSES / JAX_PROCESS_ID variables.
            distributed.initialize()
        if not getattr(args, "no_compile_cache", True):
            use_compilation_cache()
        if not takes_overrides:
            return args.func(args)
        from jaxrnn.training.loop import Stop

        with Stop():  # until the command returns: a late signal never fails a finished run
            return args.func(args)
    except Exception as e:  # what no command foresaw (a bug, a failing device): still one line
        text = f"{type(e).__name__}: {e} (run again with --debug for the traceback)"
        return _error(args, e, EXIT_FAILED, text)


if __name__ == "__main__":
    sys.exit(main())
