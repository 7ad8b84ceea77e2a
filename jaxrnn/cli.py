"""The ``jaxrnn`` command: ``train``, ``eval`` and ``runs``.

    jaxrnn train [CONFIG] [key.sub=value ...] [--workdir DIR] [--smoke]
    jaxrnn eval RUN_DIR
    jaxrnn runs [ROOT]
    jaxrnn sweep [CONFIG] [--grid key=v1,v2]... [--random key=dist:a,b --trials N]
                 [--seeds N|a-b|a,b,c] [--max-group-size N] [--sweep-dir DIR] [key=value ...]
    jaxrnn sample RUN_DIR [--prompt TEXT] [--length N] [--temperature T] [--top-k K] [--seed S]
    jaxrnn cite [--cff CITATION.cff]

``CONFIG`` is a path or a name under ``configs/`` (default: ``adding_lstm``).
Overrides are validated against the typed config before anything is computed.
Without ``--workdir`` a run lives in ``runs/<name>-<config hash>``, so running the
same command again resumes it.
"""

import argparse
import hashlib
import json
import sys
from pathlib import Path

from rich.console import Console
from rich.table import Table

from jaxrnn.training import config as config_lib

console = Console()


def _print_results(title: str, results: dict) -> None:
    table = Table()
    table.add_column("metric")
    table.add_column("value", justify="right")
    for name, value in results.items():
        table.add_row(name, f"{value:.4g}" if isinstance(value, float) else str(value))
    console.print(title, soft_wrap=True)
    console.print(table)
    console.print(_comparison(results), soft_wrap=True)


def _comparison(results: dict) -> str:
    loss, baseline = results.get("loss"), results.get("baseline_loss")
    if loss is None or baseline is None:
        return ""
    verdict = (
        f"{baseline / max(loss, 1e-12):.1f}x lower" if loss < baseline else "no better: not learned"
    )
    return (
        f"test loss {loss:.4g} vs {baseline:.4g} for the best input-independent predictor "
        f"({verdict})"
    )


def cmd_train(args) -> int:
    from jaxrnn.training import loop

    try:
        cfg = config_lib.load(args.config, args.overrides, smoke=args.smoke)
    except (config_lib.ConfigError, FileNotFoundError) as e:
        console.print(f"[red]error:[/red] {e}")
        return 2
    workdir = Path(args.workdir or Path("runs") / f"{cfg.name}-{config_lib.config_hash(cfg)}")
    console.print(f"run directory: {workdir}")
    try:
        results = loop.train(cfg, workdir, progress=not args.no_progress, echo=console.print)
    except (ValueError, loop.NonFiniteError) as e:
        console.print(f"[red]error:[/red] {e}")
        return 1
    if results["status"] == "finished":
        _print_results(f"{cfg.name}: final evaluation", results)
    return 0


def cmd_eval(args) -> int:
    from jaxrnn.training import loop

    cfg, exp, state = loop.final_params(args.run_dir)
    results = loop.evaluate(cfg, exp, state.params)
    _print_results(f"{cfg.name}: evaluation at step {int(state.step)}", results)
    return 0


def cmd_runs(args) -> int:
    root = Path(args.root)
    table = Table(title=f"runs under {root}")
    for column in ("run", "status", "step", "loss", "baseline"):
        table.add_column(column)
    for status_file in sorted(root.glob("*/status.json")):
        status = json.loads(status_file.read_text())
        final = status.get("final", {})
        table.add_row(
            status_file.parent.name,
            status["status"],
            str(status.get("step", "")),
            f"{final['loss']:.4g}" if "loss" in final else "",
            f"{final['baseline_loss']:.4g}" if "baseline_loss" in final else "",
        )
    console.print(table)
    return 0


def cmd_sample(args) -> int:
    import jax

    from jaxrnn import text
    from jaxrnn.training import loop
    from jaxrnn.training import text as text_training

    cfg, _, state = loop.final_params(args.run_dir)
    if cfg.task.name != "shakespeare":
        console.print(
            f"[red]error:[/red] run_dir: expected a run of a character-level language model "
            f"(task.name='shakespeare'), got task.name={cfg.task.name!r}"
        )
        return 2
    vocab = text.shakespeare_vocab(cfg.task.text_chars)
    try:
        out = text_training.generate(
            loop.make_cell(cfg.model), state.params, vocab, args.prompt, args.length,
            jax.random.key(args.seed), temperature=args.temperature, top_k=args.top_k,
        )  # fmt: skip
    except ValueError as e:
        console.print(f"[red]error:[/red] {e}")
        return 2
    # Plain print: the text holds brackets ("[Enter Chorus.]") that rich reads as markup.
    print(out)
    return 0


def cmd_cite(args) -> int:
    from jaxrnn import cite

    try:
        cff = cite.load_cff(args.cff)
    except (FileNotFoundError, ValueError) as e:
        console.print(f"[red]error:[/red] {e}")
        return 2
    # Plain print: BibTeX must reach a redirected file unwrapped and unstyled.
    print(cite.bibtex(cff), end="")
    return 0


def cmd_sweep(args) -> int:
    from jaxrnn import sweep

    try:
        spec = sweep.load(
            args.config,
            args.overrides,
            grid=args.grid,
            random=args.random,
            trials=args.trials,
            seeds=args.seeds,
            max_group_size=args.max_group_size,
            smoke=args.smoke,
        )
    except (config_lib.ConfigError, FileNotFoundError) as e:
        console.print(f"[red]error:[/red] {e}")
        return 2
    # The same command resumes: the default directory is named by the members' configs.
    digest = hashlib.sha256(
        " ".join(config_lib.config_hash(m.config) for m in spec.members).encode()
    ).hexdigest()[:12]
    sweep_dir = Path(args.sweep_dir or Path("sweeps") / f"{spec.base.name}-{digest}")
    console.print(f"sweep directory: {sweep_dir} ({len(spec.members)} members)")
    try:
        results = sweep.run(
            spec.base,
            spec.members,
            sweep_dir,
            max_group_size=spec.max_group_size,
            progress=not args.no_progress,
            spec=spec,
            echo=console.print,
        )
    except ValueError as e:
        console.print(f"[red]error:[/red] {e}")
        return 1
    from jaxrnn.training import distributed

    done = all(r["status"] in ("finished", "diverged") for r in results.values())
    if done and distributed.is_primary():  # one process writes the tables
        sweep.summarize(sweep_dir)
        console.print(f"summary: {sweep_dir / 'summary.md'}")
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="jaxrnn", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    train = sub.add_parser("train", help="train (or resume) a run from a config")
    train.add_argument("config", nargs="?", default=None, help="config path or name")
    train.add_argument("overrides", nargs="*", help="key.sub=value overrides")
    train.add_argument("--workdir", help="run directory (default runs/<name>-<hash>)")
    train.add_argument("--smoke", action="store_true", help="the config's seconds-long mode")
    train.add_argument("--no-progress", action="store_true", help="no progress bar")
    train.set_defaults(func=cmd_train)
    ev = sub.add_parser("eval", help="evaluate a run's latest checkpoint")
    ev.add_argument("run_dir")
    ev.set_defaults(func=cmd_eval)
    runs = sub.add_parser("runs", help="list run directories with status and final metrics")
    runs.add_argument("root", nargs="?", default="runs")
    runs.set_defaults(func=cmd_runs)
    smp = sub.add_parser("sample", help="sample text from a trained character-level model")
    smp.add_argument("run_dir")
    smp.add_argument("--prompt", default="\n", help="text to continue (default a newline)")
    smp.add_argument("--length", type=int, default=300, help="characters to generate")
    smp.add_argument("--temperature", type=float, default=1.0, help="softmax temperature")
    smp.add_argument("--top-k", type=int, default=None, help="sample among the k likeliest")
    smp.add_argument("--seed", type=int, default=0, help="the sampling key's seed")
    smp.set_defaults(func=cmd_sample)
    cite = sub.add_parser("cite", help="print the BibTeX for jaxrnn and the versions in use")
    cite.add_argument("--cff", help="a CITATION.cff to read (default: jaxrnn's own)")
    cite.set_defaults(func=cmd_cite)
    sw = sub.add_parser("sweep", help="train a sweep of seeds and hyperparameters (or resume it)")
    sw.add_argument("config", nargs="?", default=None, help="config path or name")
    sw.add_argument("overrides", nargs="*", help="key.sub=value overrides for every member")
    sw.add_argument("--grid", action="append", default=[], help="key=v1,v2,... (repeatable)")
    sw.add_argument("--random", action="append", default=[], help="key=dist:args (repeatable)")
    sw.add_argument("--trials", type=int, help="draws of the --random keys")
    sw.add_argument("--seeds", help="N (0..N-1), a range a-b or a list a,b,c")
    sw.add_argument("--max-group-size", type=int, help="at most N members per program")
    sw.add_argument("--sweep-dir", help="sweep directory (default sweeps/<name>-<hash>)")
    sw.add_argument("--smoke", action="store_true", help="the config's seconds-long mode")
    sw.add_argument("--no-progress", action="store_true", help="no live table")
    sw.set_defaults(func=cmd_sweep)
    # Overrides may follow options (`--workdir D key=value`), which argparse's
    # positionals do not allow; collect them from the leftovers.
    args, extra = parser.parse_known_args(argv)
    takes_overrides = args.command in ("train", "sweep")
    if extra and (not takes_overrides or any(e.startswith("-") or "=" not in e for e in extra)):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    if takes_overrides:
        args.overrides = [*args.overrides, *extra]
        if args.config and "=" in args.config:
            # `jaxrnn train key=value`: no config given, only overrides.
            args.overrides, args.config = [args.config, *args.overrides], None
        from jaxrnn.training import distributed

        # Before any other JAX call: a multi-process run is described by the
        # JAX_COORDINATOR_ADDRESS / JAX_NUM_PROCESSES / JAX_PROCESS_ID variables.
        distributed.initialize()
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
