"""The ``jaxrnn`` command: ``train``, ``eval`` and ``runs``.

    jaxrnn train [CONFIG] [key.sub=value ...] [--workdir DIR] [--smoke]
    jaxrnn eval RUN_DIR
    jaxrnn runs [ROOT]

``CONFIG`` is a path or a name under ``configs/`` (default: ``adding_lstm``).
Overrides are validated against the typed config before anything is computed.
Without ``--workdir`` a run lives in ``runs/<name>-<config hash>``, so running the
same command again resumes it.
"""

import argparse
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
    # Overrides may follow options (`--workdir D key=value`), which argparse's
    # positionals do not allow; collect them from the leftovers.
    args, extra = parser.parse_known_args(argv)
    if extra and (args.command != "train" or any(e.startswith("-") or "=" not in e for e in extra)):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    if args.command == "train":
        args.overrides = [*args.overrides, *extra]
        if args.config and "=" in args.config:
            # `jaxrnn train key=value`: no config given, only overrides.
            args.overrides, args.config = [args.config, *args.overrides], None
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
