"""The run loop around the pure train step: data, logging, evaluation, checkpoints, resume.

A run directory holds::

    config.json        the fully resolved config (a different config refuses to resume)
    manifest.json      versions, git commit, devices, seed, config hash
    CITATION.bib       how to cite jaxrnn, with those versions (jaxrnn.cite)
    metrics.jsonl      one JSON object per logged step / evaluation
    checkpoints/       orbax checkpoints (latest k, best k, final)
    status.json        running / interrupted / stopped / finished, and the final metrics
    loss.png           the loss curves

Running on an existing directory resumes from its latest complete checkpoint.
Every batch is a pure function of (seed, step) and per-step randomness is
``fold_in(key, step)``, so a resumed run computes exactly what an uninterrupted
one would have: a run killed with SIGKILL and resumed ends with bit-identical
parameters (CPU). SIGTERM/SIGINT save a checkpoint at the next step boundary.
"""

import json
import os
import platform
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import jax
import jax.numpy as jnp

import jaxrnn
from jaxrnn import cite, data, text
from jaxrnn.models import Model, many_to_many, many_to_one
from jaxrnn.training import config as config_lib
from jaxrnn.training import distributed
from jaxrnn.training import text as text_training
from jaxrnn.training import trees as tree_training
from jaxrnn.training.checkpoint import Checkpointer
from jaxrnn.training.optim import make_optimizer, schedule
from jaxrnn.training.step import (
    TrainState,
    make_eval_step,
    make_train_step,
    supervised,
    task_loss,
)


class NonFiniteError(RuntimeError):
    """Raised under ``train.nonfinite = "stop"`` when a step's loss or gradient is not finite."""


class Experiment(NamedTuple):
    """Everything a config builds: the data, the model, the optimizer and the steps.

    ``init_params(key) -> params``; ``objective(params, batch, key) -> (loss,
    metrics)`` is what the steps differentiate and evaluate.
    """

    task: data.Task
    eval_task: data.Task
    model: Model
    init_params: Callable
    objective: Callable
    optimizer: object
    train_step: Callable
    eval_step: Callable


def make_task(cfg: config_lib.TaskConfig, split: str = "train", *, tree: bool = False) -> data.Task:
    if cfg.name == "expressions":  # as trees for a tree cell (`tree`), else as strings
        return tree_training.expressions_task(cfg, split, tree=tree)
    if cfg.name == "adding":
        return data.adding(cfg.length, min_length=cfg.min_length)
    if cfg.name == "copying":
        return data.copying(cfg.length)
    if cfg.name == "parity":
        return data.parity(cfg.length, min_length=cfg.min_length)
    if cfg.name == "addition":
        return text.addition(cfg.digits, split=split)
    if cfg.name == "shakespeare":
        return text.shakespeare(cfg.length, chars=cfg.text_chars, split=split)
    return data.digits(pixelwise=cfg.pixelwise, split=split)


def make_cell(cfg: config_lib.ModelConfig) -> jaxrnn.Cell | jaxrnn.trees.TreeCell:
    if cfg.cell in config_lib.TREE_CELLS:
        return tree_training.make_tree_cell(cfg)
    recurrent = (
        jaxrnn.initializers.identity(cfg.identity_scale)
        if cfg.recurrent_init == "identity"
        else jaxrnn.initializers.orthogonal()
    )

    def one():
        if cfg.cell == "elman":
            return jaxrnn.elman(
                cfg.hidden_size, activation=cfg.activation, recurrent_init=recurrent
            )
        gates = 4 if cfg.cell == "lstm" else 3
        fused = jaxrnn.initializers.fused(*[recurrent] * gates)
        if cfg.cell == "gru":
            bias = (
                jaxrnn.initializers.chrono_gru_bias(cfg.chrono_t_max)
                if cfg.chrono_t_max
                else jaxrnn.initializers.zeros
            )
            return jaxrnn.gru(
                cfg.hidden_size, layer_norm=cfg.layer_norm, recurrent_init=fused, bias_init=bias
            )
        bias = jaxrnn.initializers.chrono_lstm_bias(cfg.chrono_t_max) if cfg.chrono_t_max else None
        return jaxrnn.lstm(
            cfg.hidden_size,
            forget_bias=cfg.forget_bias,
            layer_norm=cfg.layer_norm,
            recurrent_init=fused,
            bias_init=bias,
        )

    if cfg.num_layers == 1:
        return one()
    return jaxrnn.stack(
        *[one() for _ in range(cfg.num_layers)], residual=cfg.residual, dropout=cfg.dropout
    )


def build(cfg: config_lib.Config) -> Experiment:
    tree = cfg.model.cell in config_lib.TREE_CELLS
    task = make_task(cfg.task, "train", tree=tree)
    eval_task = make_task(cfg.task, "test", tree=tree)
    cell = make_cell(cfg.model)
    if task.kind == "seq2seq":
        model = text_training.seq2seq(cfg.model, task.input_size, make_cell)
        objective = text_training.seq2seq_objective(model, cfg.model.scheduled_sampling)
        init_params, eval_step = model.init, text_training.seq2seq_eval_step(model, objective)
    elif cfg.task.name == "expressions":
        model, objective, eval_step = tree_training.expressions_model(cfg.task, cell, task)
        init_params = lambda key: model.init(key, task.input_size)  # noqa: E731
    else:
        if task.kind == "tokens":
            model = many_to_many(cell, task.output_size, remat=cfg.model.remat)
        else:
            model = many_to_one(cell, task.output_size, remat=cfg.model.remat)
        objective = supervised(model, task_loss(task.kind))
        init_params = lambda key: model.init(key, task.input_size)  # noqa: E731
        eval_step = make_eval_step(objective)
    optimizer = make_optimizer(cfg.optim, cfg.train.steps)
    train_step = make_train_step(objective, optimizer, schedule(cfg.optim, cfg.train.steps))
    return Experiment(
        task,
        eval_task,
        model,
        init_params,
        objective,
        optimizer,
        train_step,
        eval_step,
    )


def init_state(cfg: config_lib.Config, exp: Experiment) -> TrainState:
    key = jax.random.key(cfg.seed)
    k_init, k_train = jax.random.split(key)
    params = exp.init_params(k_init)
    return TrainState(jnp.zeros((), jnp.int32), params, exp.optimizer.init(params), k_train)


def data_key(cfg: config_lib.Config) -> jax.Array:
    """The key of the training batches: batch ``s`` is ``task.batch(data_key, s, B)``."""
    return jax.random.key(cfg.seed + 1)


def eval_key(cfg: config_lib.Config) -> jax.Array:
    """The key of the held-out batches, never the training stream's."""
    return jax.random.key(cfg.seed + 1_000_003)


def evaluate(cfg: config_lib.Config, exp: Experiment, params) -> dict:
    """Mean metrics over ``eval_batches`` fixed held-out batches (their own key)."""
    key = eval_key(cfg)
    totals: dict = {}
    for i in range(cfg.train.eval_batches):
        batch = exp.eval_task.batch(key, i, cfg.train.eval_batch_size)
        for name, value in exp.eval_step(params, batch).items():
            totals[name] = totals.get(name, 0.0) + float(value) / cfg.train.eval_batches
    totals["baseline_loss"] = exp.task.baseline
    return totals


def manifest(cfg: config_lib.Config) -> dict:
    import flax
    import jaxlib
    import optax

    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            cwd=Path(__file__).parent,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        commit = None
    devices = jax.devices()
    return {
        "jaxrnn": jaxrnn.__version__,
        "git_commit": commit,
        "python": platform.python_version(),
        "jax": jax.__version__,
        "jaxlib": jaxlib.__version__,
        "optax": optax.__version__,
        "flax": flax.__version__,
        "device_kind": devices[0].device_kind,
        "device_count": len(devices),
        "seed": cfg.seed,
        "config_hash": config_lib.config_hash(cfg),
    }


def _prepare_workdir(cfg: config_lib.Config, workdir: Path) -> None:
    workdir.mkdir(parents=True, exist_ok=True)
    resolved = config_lib.to_dict(cfg)
    path = workdir / "config.json"
    if path.exists():
        existing = json.loads(path.read_text())
        if existing != resolved:
            raise ValueError(
                f"workdir: {workdir} holds a run of a different config "
                f"(hash {config_lib.config_hash(config_lib.from_dict(existing))}, this one "
                f"{config_lib.config_hash(cfg)}); choose another workdir to start a new run"
            )
    if not distributed.is_primary():
        return  # process 0 writes; the others only check
    if not path.exists():
        # Atomic, so that another process of a multi-process run reads all or nothing.
        tmp = workdir / "config.json.tmp"
        tmp.write_text(json.dumps(resolved, indent=2, sort_keys=True))
        tmp.replace(path)
    versions = manifest(cfg)
    (workdir / "manifest.json").write_text(json.dumps(versions, indent=2))
    cite.write_bibtex(workdir / "CITATION.bib", versions)


def _write_status(workdir: Path, status: str, **extra) -> None:
    if not distributed.is_primary():
        return
    tmp = workdir / "status.json.tmp"
    tmp.write_text(json.dumps({"status": status, **extra}, indent=2))
    tmp.replace(workdir / "status.json")  # atomic


def _truncate_log(path: Path, step: int) -> None:
    """Drop log lines past ``step`` (written after the checkpoint a resumed run restarts from)."""
    if not distributed.is_primary() or not path.exists():
        return
    kept = []
    for line in path.read_text().splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            # A line cut by a kill. The log is flushed before every checkpoint, so it
            # lies past the checkpoint we resume from.
            continue
        if record["step"] <= step:
            kept.append(line)
    path.write_text("".join(ln + "\n" for ln in kept))


def _skipped_until(path: Path, step: int) -> int:
    """The ``nonfinite_skipped`` count logged at ``step`` (0 for a fresh run)."""
    if step == 0 or not path.exists():
        return 0
    at_step = [r for r in read_log(path) if r["kind"] == "train" and r["step"] == step]
    return at_step[-1]["nonfinite_skipped"] if at_step else 0


class _Stop:
    """SIGTERM/SIGINT set a flag; the loop checkpoints and exits at the next step boundary."""

    def __init__(self):
        self.signum = None

    def __enter__(self):
        self._old = {s: signal.signal(s, self._handle) for s in (signal.SIGTERM, signal.SIGINT)}
        return self

    def _handle(self, signum, frame):
        self.signum = signum

    def __exit__(self, *exc):
        for s, handler in self._old.items():
            signal.signal(s, handler)


def train(
    cfg: config_lib.Config,
    workdir: str | Path,
    *,
    progress: bool = True,
    echo: Callable[[str], None] = print,
) -> dict:
    """Train ``cfg`` in ``workdir`` (resuming if it holds checkpoints); returns the final eval.

    Data-parallel over all devices (of all processes after ``jax.distributed.initialize()``):
    each batch is split over the devices along its batch axis and the state is
    replicated (see :mod:`jaxrnn.training.distributed`); on one device this is
    plain single-device training. Only process 0 writes logs, status and plots.

    Raises:
        ValueError: before any compute, if ``train.batch_size`` is not a multiple
            of the device count, or ``workdir`` holds a run of another config.
    """
    workdir = Path(workdir)
    batch_sharding = distributed.data_sharding(cfg.train.batch_size)
    _prepare_workdir(cfg, workdir)
    exp = build(cfg)
    state = distributed.place(init_state(cfg, exp), distributed.replicated())
    ckpt = Checkpointer(
        workdir / "checkpoints",
        keep_last=cfg.train.keep_last,
        keep_best=cfg.train.keep_best,
        best_metric=cfg.train.best_metric,
        best_mode=config_lib.metric_mode(cfg.train.best_metric),
    )
    log_path = workdir / "metrics.jsonl"
    restored = ckpt.restore(state)
    start = 0
    if restored is not None:
        start, state = restored
        echo(f"resuming {workdir} from step {start}")
    _truncate_log(log_path, start)
    _write_status(workdir, "running", step=start)
    batch_key = data_key(cfg)
    # One dispatch, not dozens; each device computes and keeps only its part of the batch.
    next_batch = jax.jit(exp.task.batch, static_argnums=2, out_shardings=batch_sharding)
    steps, skipped = cfg.train.steps, _skipped_until(log_path, start)
    status, last_eval = "finished", {}
    # Every batch type has a `mask` over its valid positions (steps, or tree nodes).
    tokens_per_step = cfg.train.batch_size * exp.task.batch(batch_key, 0, 1).mask.size

    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    bar = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeRemainingColumn(),
        TextColumn("{task.fields[info]}"),
        disable=not progress,
    )
    # Only process 0 logs; the others write the same records to nowhere.
    log_file = log_path.open("a") if distributed.is_primary() else open(os.devnull, "w")  # noqa: SIM115
    with _Stop() as stop, bar, log_file as log:
        task_id = bar.add_task(cfg.name, total=steps, completed=start, info="")
        t_last, step_last = time.perf_counter(), start
        for step in range(start, steps):
            batch = next_batch(batch_key, step, cfg.train.batch_size)
            state, metrics = exp.train_step(state, batch)
            done = step + 1
            finite = bool(metrics["finite"])
            if not finite:
                skipped += 1
                if cfg.train.nonfinite == "stop":
                    status = "stopped"
                    _write_status(workdir, status, step=done)
                    loss, norm = float(metrics["loss"]), float(metrics["grad_norm"])
                    raise NonFiniteError(
                        f"step {done}: non-finite loss or gradient (loss={loss}, "
                        f"grad_norm={norm}); the last good checkpoint is at step "
                        f"{ckpt.latest_step()}"
                    )
            checkpoint_now = done % cfg.train.checkpoint_every == 0 or done == steps
            stopping = stop.signum is not None and done < steps
            # A checkpoint's step is always logged: a resumed run reads its count of
            # skipped steps from there.
            if done % cfg.train.log_every == 0 or checkpoint_now or stopping:
                now = time.perf_counter()
                rate = (done - step_last) / max(now - t_last, 1e-9)
                t_last, step_last = now, done
                record = {k: float(v) for k, v in jax.device_get(metrics).items()}
                record.update(step=done, steps_per_s=rate, tokens_per_s=rate * tokens_per_step)
                record["nonfinite_skipped"] = skipped
                log.write(json.dumps({"kind": "train", **record}) + "\n")
                bar.update(task_id, info=f"loss {record['loss']:.4f}")
            eval_now = done % cfg.train.eval_every == 0 or done == steps
            if eval_now:
                last_eval = evaluate(cfg, exp, state.params)
                log.write(json.dumps({"kind": "eval", "step": done, **last_eval}) + "\n")
            if checkpoint_now:
                log.flush()
                metrics_for_best = last_eval if eval_now else None
                ckpt.save(done, state, metrics=metrics_for_best, final=done == steps)
            bar.update(task_id, completed=done)
            if stopping:
                log.flush()
                ckpt.save(done, state, metrics=last_eval if eval_now else None)
                status = "interrupted"
                _write_status(workdir, status, step=done)
                echo(
                    f"{signal.Signals(stop.signum).name} received: saved a checkpoint at step "
                    f"{done}. Resume with the same command (workdir {workdir})."
                )
                break
    ckpt.close()
    if status == "finished":
        if not last_eval:  # the run had already finished: report its final state again
            last_eval = evaluate(cfg, exp, state.params)
        _write_status(workdir, status, step=steps, final=last_eval)
        if distributed.is_primary():
            plot_losses(log_path, workdir / "loss.png")
    return {"status": status, "step": int(state.step), **last_eval}


def read_log(path: Path) -> list[dict]:
    return [json.loads(ln) for ln in Path(path).read_text().splitlines() if ln.strip()]


def plot_losses(log_path: Path, out: Path) -> None:
    """Train and eval loss against step (log scale), as a PNG beside the log."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    records = read_log(log_path)
    fig, ax = plt.subplots(figsize=(5, 3.2), dpi=150)
    for kind, style in (("train", "-"), ("eval", "o-")):
        rows = [r for r in records if r["kind"] == kind]
        if rows:
            ax.plot([r["step"] for r in rows], [r["loss"] for r in rows], style, label=kind, ms=3)
    baseline = next((r["baseline_loss"] for r in records if r["kind"] == "eval"), None)
    if baseline is not None:
        ax.axhline(baseline, color="grey", ls="--", lw=1, label="input-independent baseline")
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.legend(frameon=False)
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)


def final_params(workdir: str | Path, cfg: config_lib.Config | None = None):
    """The params of a run's latest checkpoint (for evaluation and tests)."""
    workdir = Path(workdir)
    if cfg is None:
        cfg = config_lib.from_dict(json.loads((workdir / "config.json").read_text()))
    exp = build(cfg)
    ckpt = Checkpointer(workdir / "checkpoints")
    restored = ckpt.restore(init_state(cfg, exp))
    ckpt.close()
    if restored is None:
        raise FileNotFoundError(f"workdir: no complete checkpoint under {workdir / 'checkpoints'}")
    return cfg, exp, restored[1]
