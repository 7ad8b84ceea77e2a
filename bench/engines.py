"""jaxrnn's engines against each other: the fused BPTT fast path, dropout, parallel scans.

Run::

    python bench/engines.py                    # all three sections, ~15-20 min (estimated)
    python bench/engines.py --quick            # tiny shapes, ~1 min: checks the harness
    python bench/engines.py --parts linear --lengths 1024 16384 --out bench/engines.json
    python bench/engines.py --write-readme     # also refresh the table in bench/README.md

Sections (``--parts``), each in a fresh process of its own (all of a section's engines
are XLA, so they share that process, as ``BENCH.md`` allows):

* ``fast-path``: for each variant the fused BPTT engine now covers (LSTM with peepholes,
  projection, layer norm; GRU with the reset gate before the matmul; GRU with layer
  norm; LSTM with variational dropout, with zoneout, with resets, with bfloat16 params
  and inputs) and for the plain LSTM, GRU and Elman, the training step with
  ``bptt="fused"`` and with ``bptt="autodiff"``, and the ratio autodiff / fused (above
  1: the fast path wins), at each ``--configs`` (B, T, I, H).
* ``dropout``: the LSTM with variational dropout (input and state rates 0.25) and with
  zoneout (h 0.1, c 0.5) against the plain LSTM, on the default engine (``bptt="auto"``)
  and on ``bptt="autodiff"``: the ratio of each to the plain LSTM on the same engine
  (the goal: at most 1.2x on the default engine).
* ``linear``: the linear recurrences LRU and minGRU (``--linear-cells`` adds minLSTM
  and RG-LRU) with ``mode="parallel"`` (an associative scan) against
  ``mode="sequential"`` (a ``lax.scan``), at B = 8, I = H = 128 and each of
  ``--lengths``: wall and process CPU time per step, their ratios sequential / parallel
  (above 1: parallel wins), and the compiled memory (``memory_analysis()``: temp +
  argument + output bytes) of each step. Long steps get fewer blocks (``linear``).

One training step is ``bench/_workers.py``'s: forward + BPTT + Adam (lr 1e-3) after
clipping the gradients to global norm 1, float32 (bfloat16 cell params and inputs for
the bf16 variant, which still accumulates in float32), loss = MSE of a linear readout
of every output. Randomised variants get a fresh key every step (``jax.random.split``
inside the step, so no mask is a compile-time constant). The method is ``BENCH.md``'s:
the trainers of one shape are timed round-robin in ``--blocks`` blocks, the order
rotating from block to block, each trainer's turn opening with an untimed warm-up call;
reported are the median and p25-p75 of the timed calls, and ratios of medians. Every
trainer's loss must be finite and decrease over ``--loss-steps`` steps on the same batch
(the linear section checks that at its shortest length, where 20 steps are cheap; at
the others that the losses it timed are finite), and the two engines of a variant (or
the two modes of a linear cell) must take the same first step from the same weights,
batch and key: the same loss and gradient norm up to rounding (``FIRST_STEP_RTOL``);
otherwise the exit status is 1.
"""

import argparse
import contextlib
import json
import logging
import math
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))  # _workers.py and peers.py: the step and method shared with them
sys.path.insert(1, str(HERE.parent))  # a fresh clone need not be installed

from _workers import CLIP_NORM, LR, make_batch  # noqa: E402
from peers import fmt_ms, loss_check, machine, parse_config, parse_list, publish  # noqa: E402

SECTIONS = ("fast-path", "dropout", "linear")
README_MARKERS = ("<!-- bench:engines:start -->", "<!-- bench:engines:end -->")
CONFIGS = ((32, 100, 32, 128), (8, 1000, 16, 64))  # (B, T, I, H)
LENGTHS = (1024, 4096, 16384, 65536)
LINEAR_CELLS = ("lru", "min_gru", "min_lstm", "rg_lru")
# minLSTM and RG-LRU cost about what minGRU costs (T = 4096, 2 cores): on request only.
DEFAULT_LINEAR_CELLS = ("lru", "min_gru")
LINEAR_SHAPE = {"B": 8, "I": 128, "H": 128}
# Quick: tiny shapes, and of the fast path's variants one per way the trainer feeds a
# step (plain, output size P != H, a key, resets, bfloat16): each costs two compilations.
QUICK = {
    "configs": ((2, 6, 3, 4),),
    "variants": ("lstm", "lstm-projection", "lstm-zoneout", "lstm-resets", "lstm-bf16"),
    "lengths": (16, 64),
    "linear_shape": {"B": 2, "I": 4, "H": 4},
    "blocks": 2,
    "calls": 2,
}
QUICK_XLA_FLAGS = "--xla_backend_optimization_level=0 --xla_llvm_disable_expensive_passes=true"
DROPOUT_RATES = {"input_rate": 0.25, "state_rate": 0.25}  # variational: Gal & Ghahramani (2016)
ZONEOUT_RATES = {"h": 0.1, "c": 0.5}  # Krueger et al. (2017)
RESET_PROB = 0.02  # packed sequences of 50 steps on average
# How far two engines' first step may differ, from the same weights, batch and key: the
# loss (the forward pass) and the global norm of the gradient (the backward pass), as
# |a - b| / |b|. They sum in different orders. Later losses are recorded, not checked:
# Adam's early steps are close to lr * sign(g), so where gradients explode the rounding
# noise of the small entries sets their sign and the trajectories part. Measured, the
# layer-norm LSTM at (8, 1000, 16, 64): gradient norm 2.5e9 at the first step, equal in
# both engines to 1e-7; the losses then differ by 1e-3 after one step, 1.4e-2 by step 20.
FIRST_STEP_RTOL = {"float32": 1e-4, "bfloat16": 2e-2}
LINEAR_FIRST_STEP_RTOL = 1e-3  # parallel against sequential scan, float32


class Variant(NamedTuple):
    """A cell to benchmark: ``build(H) -> Cell``, and how its step is fed."""

    label: str
    build: Callable[[int], object]
    keyed: bool = False  # randomised: a fresh key every step (training mode)
    resets: bool = False  # packed sequences: resets [B, T]
    bf16: bool = False  # bfloat16 cell params and inputs


def variants():
    """Every cell this script can time, by name (jaxrnn imported here, not in the parent)."""
    import jax.numpy as jnp

    import jaxrnn

    return {
        "lstm": Variant("LSTM", jaxrnn.lstm),
        "gru": Variant("GRU", jaxrnn.gru),
        "elman": Variant("Elman", jaxrnn.elman),
        "lstm-peephole": Variant("LSTM, peepholes", lambda H: jaxrnn.lstm(H, peephole=True)),
        "lstm-projection": Variant(
            "LSTM, projection P = H/2", lambda H: jaxrnn.lstm(H, projection_size=max(1, H // 2))
        ),
        "lstm-layer-norm": Variant("LSTM, layer norm", lambda H: jaxrnn.lstm(H, layer_norm=True)),
        "gru-reset-before": Variant(
            "GRU, reset before (`reset_after=False`)", lambda H: jaxrnn.gru(H, reset_after=False)
        ),
        "gru-layer-norm": Variant("GRU, layer norm", lambda H: jaxrnn.gru(H, layer_norm=True)),
        "lstm-dropout": Variant(
            "LSTM, variational dropout 0.25/0.25",
            lambda H: jaxrnn.variational_dropout(jaxrnn.lstm(H), **DROPOUT_RATES),
            keyed=True,
        ),
        "lstm-zoneout": Variant(
            "LSTM, zoneout h 0.1 c 0.5",
            lambda H: jaxrnn.zoneout(jaxrnn.lstm(H), ZONEOUT_RATES),
            keyed=True,
        ),
        "lstm-resets": Variant("LSTM, resets", jaxrnn.lstm, resets=True),
        "lstm-bf16": Variant(
            "LSTM, bfloat16 params and inputs",
            lambda H: jaxrnn.lstm(H, dtype=jnp.bfloat16),
            bf16=True,
        ),
        "lru": Variant("LRU", jaxrnn.lru),
        "min_gru": Variant("minGRU", jaxrnn.min_gru),
        "min_lstm": Variant("minLSTM", jaxrnn.min_lstm),
        "rg_lru": Variant("RG-LRU", jaxrnn.rg_lru),
    }


FAST_PATH = (
    "lstm",
    "gru",
    "elman",
    "lstm-peephole",
    "lstm-projection",
    "lstm-layer-norm",
    "gru-reset-before",
    "gru-layer-norm",
    "lstm-dropout",
    "lstm-zoneout",
    "lstm-resets",
    "lstm-bf16",
)
DROPOUT = ("lstm", "lstm-dropout", "lstm-zoneout")


# ----------------------------------------------------------------------- trainer


class Trainer:
    """``bench/_workers.py``'s ``JaxTrainer`` step (same optimizer, loss and donation),
    with a batch that may carry resets and a PRNG key in the state, split every step.

    ``JaxTrainer`` takes one input array and no key, so a randomised cell there would
    need its key as a constant of the compiled program (which XLA may fold) or the same
    masks every step. Here the state is ``(params, opt_state, key)`` and the batch
    ``{"xs", "resets"}``.
    """

    def __init__(self, variant, B, T, I, H, scan_options):
        import jax
        import jax.numpy as jnp
        import optax

        import jaxrnn
        from jaxrnn.cells.base import step_output

        self.jax = jax
        cell = variant.build(H)
        k_cell, k_out = jax.random.split(jax.random.key(0))
        # Distinct buffers for every leaf: RG-LRU's init returns one zeros array as both
        # b_a and b_x, and a buffer cannot be donated twice.
        cell_params = jax.tree.map(jnp.copy, cell.init(k_cell, I))
        O = step_output(cell, cell_params, I).shape[-1]  # H, or P (projection), or I (LRU)
        readout = (
            jax.random.normal(k_out, (O, 1), jnp.float32) / np.sqrt(O),
            jnp.zeros((1,), jnp.float32),
        )
        xs, ys = make_batch(B, T, I)
        batch = {"xs": jnp.asarray(xs, jnp.bfloat16 if variant.bf16 else jnp.float32)}
        if variant.resets:
            starts = np.random.default_rng(1).random((B, T)) < RESET_PROB
            batch["resets"] = jnp.asarray(starts)
        self.opt = optax.chain(optax.clip_by_global_norm(CLIP_NORM), optax.adam(LR))

        def loss_fn(p, batch, ys, key):
            cell_params, W_out, b_out = p
            _, hs = jaxrnn.scan(
                cell, cell_params, batch["xs"], resets=batch.get("resets"), key=key, **scan_options
            )
            return jnp.mean((hs.astype(jnp.float32) @ W_out + b_out - ys) ** 2)

        def step(p, opt_state, key, batch, ys):
            sub = None
            if key is not None:
                key, sub = jax.random.split(key)
            loss, grads = jax.value_and_grad(loss_fn)(p, batch, ys, sub)
            updates, opt_state = self.opt.update(grads, opt_state, p)
            # The norm the clipping computes anyway: a scalar check of the backward pass.
            grad_norm = optax.global_norm(grads)
            return optax.apply_updates(p, updates), opt_state, key, loss, grad_norm

        params = (cell_params, *readout)
        key = jax.random.key(1) if variant.keyed else None
        self.state = (params, self.opt.init(params), key)
        self.jitted = jax.jit(step, donate_argnums=(0, 1, 2))
        self.xs, self.ys = batch, jnp.asarray(ys)
        self.loss = self.grad_norm = None

    def step(self):
        p, s, key, loss, grad_norm = self.jitted(*self.state, self.xs, self.ys)
        self.jax.block_until_ready((p, s, loss))
        self.state, self.loss, self.grad_norm = (p, s, key), loss, grad_norm

    def last_loss(self):
        return float(self.loss)


@contextlib.contextmanager
def engine_log():
    """Collect the ``"jaxrnn"`` logger's debug lines (which BPTT engine a trace chose)."""
    lines = []

    class Collect(logging.Handler):
        def emit(self, record):
            lines.append(record.getMessage())

    logger, handler = logging.getLogger("jaxrnn"), Collect(logging.DEBUG)
    old_level = logger.level
    logger.setLevel(logging.DEBUG)
    logger.addHandler(handler)
    try:
        yield lines
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)


def engine_ran(lines):
    """``"fused"``, ``"autodiff"`` or ``"parallel"`` from a trace's log lines."""
    if any("fused BPTT" in line for line in lines):
        return "fused"
    if any("autodiff BPTT" in line for line in lines):
        return "autodiff"
    return "parallel"


def compile_trainer(tr):
    """Compile ``tr``'s step ahead of time: ``(memory, executable)``, the memory being the
    executable's ``memory_analysis()`` bytes. Unlike ``_workers.compile_step`` this keeps
    JAX's caches: compile times are not measured here, and clearing the caches would
    make every small eager operation of the next trainer's set-up compile again."""
    compiled = tr.jitted.lower(*tr.state, tr.xs, tr.ys).compile()
    mem = compiled.memory_analysis()
    names = ("temp", "argument", "output", "alias")
    return {f"{n}_bytes": int(getattr(mem, f"{n}_size_in_bytes", -1)) for n in names}, compiled


def build(variant, shape, scan_options):
    """A compiled trainer and its record: compiled memory, and the engine that ran."""
    with engine_log() as lines:
        tr = Trainer(variant, *shape, scan_options)
        # The trainer runs the very executable whose memory is reported.
        stats, tr.jitted = compile_trainer(tr)
    return tr, {**stats, "engine_ran": engine_ran(lines)}


def run_steps(tr, rec, n):
    """``n`` steps of ``tr``, their losses and gradient norms put in ``rec``; returns
    the median seconds per step."""
    rec["losses"], rec["grad_norms"], step_s = [], [], []
    for _ in range(n):
        t0 = time.perf_counter()
        tr.step()
        step_s.append(time.perf_counter() - t0)
        rec["losses"].append(tr.last_loss())
        rec["grad_norms"].append(float(tr.grad_norm))
    return float(np.median(step_s))


def time_round_robin(trainers, calls, blocks):
    """``BENCH.md``'s timing: ``blocks`` blocks, the order rotating by one each block;
    each trainer's turn is one untimed warm-up call, then ``calls[name]`` timed calls.

    Returns ``{name: {"times_s": [...], "cpu_s": [...], "timed_losses": [...]}}``: wall
    and process CPU seconds (all threads) of each timed call, and its loss.
    """
    out = {n: {"times_s": [], "cpu_s": [], "timed_losses": []} for n in trainers}
    names = list(trainers)
    for block in range(blocks if names else 0):
        k = block % len(names)
        for name in names[k:] + names[:k]:
            tr = trainers[name]
            tr.step()  # untimed warm-up: this VM is slow right after an idle moment
            for _ in range(calls[name]):
                w0, c0 = time.perf_counter(), time.process_time()
                tr.step()
                c1, w1 = time.process_time(), time.perf_counter()
                out[name]["times_s"].append(w1 - w0)
                out[name]["cpu_s"].append(c1 - c0)
                out[name]["timed_losses"].append(tr.last_loss())
    return out


def summarise(rec, times):
    """Add the timings and their median and p25-p75 (ms) to ``rec``."""
    rec.update(times)
    q25, q50, q75 = np.percentile(times["times_s"], [25, 50, 75])
    rec.update(median_ms=1e3 * q50, p25_ms=1e3 * q25, p75_ms=1e3 * q75)
    rec["cpu_median_ms"] = 1e3 * float(np.median(times["cpu_s"]))


def calls_for(step_s, spec, lo=3, hi=50):
    """Timed calls per block: ``--calls``, or enough to fill ``--block-seconds``."""
    if spec["calls"]:
        return spec["calls"]
    return int(np.clip(round(spec["block_seconds"] / max(step_s, 1e-6), 0), lo, hi))


def rel_diff(a, b):
    """``max |a - b| / |b|``."""
    return float(np.max(np.abs(np.subtract(a, b)) / np.abs(b)))


def first_step_diff(a, b):
    """How far two records' first steps differ: loss and gradient norm, relatively."""
    return max(
        rel_diff(a["losses"][:1], b["losses"][:1]),
        rel_diff(a["grad_norms"][:1], b["grad_norms"][:1]),
    )


# ---------------------------------------------------------------------- sections


def engines_rows(names, engines, spec, log):
    """For each config, every (variant, engine) trainer timed round-robin together."""
    table = variants()
    rows = []
    for cfg in spec["configs"]:
        log(f"{cfg} (B, T, I, H)")
        trainers, calls, row = {}, {}, {"config": list(cfg), "variants": {}}
        for name in names:
            v = table[name]
            row["variants"][name] = {"label": v.label, "engines": {}}
            for engine in engines:
                tr, rec = build(v, cfg, {"bptt": engine})
                step_s = run_steps(tr, rec, spec["loss_steps"])
                rec["loss_problem"] = loss_check(rec["losses"])
                row["variants"][name]["engines"][engine] = rec
                trainers[(name, engine)] = tr
                calls[(name, engine)] = calls_for(step_s, spec)
                log(f"  {name:18s} {engine:8s} ran {rec['engine_ran']:8s} {1e3 * step_s:9.2f} ms")
            a, b = row["variants"][name]["engines"].values()
            row["variants"][name]["first_step_rel_diff"] = first_step_diff(a, b)
            row["variants"][name]["loss_rel_diff"] = rel_diff(a["losses"], b["losses"])
        times = time_round_robin(trainers, calls, spec["blocks"])
        for (name, engine), t in times.items():
            summarise(row["variants"][name]["engines"][engine], t)
        rows.append(row)
        del trainers, times
    return rows


def fast_path(spec, log):
    rows = engines_rows(spec["variants"], ("fused", "autodiff"), spec, log)
    for row in rows:
        for v in row["variants"].values():
            e = v["engines"]
            v["autodiff_over_fused"] = e["autodiff"]["median_ms"] / e["fused"]["median_ms"]
    return rows


def dropout(spec, log):
    rows = engines_rows(DROPOUT, ("auto", "autodiff"), spec, log)
    for row in rows:
        plain = row["variants"]["lstm"]["engines"]
        for v in row["variants"].values():
            for engine, rec in v["engines"].items():
                rec["over_plain"] = rec["median_ms"] / plain[engine]["median_ms"]
            v["autodiff_over_auto"] = (
                v["engines"]["autodiff"]["median_ms"] / v["engines"]["auto"]["median_ms"]
            )
    return rows


def linear(spec, log):
    """Parallel against sequential, length by length; a step whose compiled memory
    exceeds ``--max-gib`` is reported, not run. At long lengths the blocks shrink to
    fit ``--length-seconds`` (at least one: a warm-up and a timed call per trainer)."""
    table = variants()
    s = spec["linear_shape"]
    rows = []
    for i, T in enumerate(spec["lengths"]):
        log(f"T = {T} (B = {s['B']}, I = {s['I']}, H = {s['H']})")
        row = {"T": T, **s, "cells": {}}
        trainers, calls, step_s = {}, {}, {}
        for name in spec["linear_cells"]:
            row["cells"][name] = {"label": table[name].label, "modes": {}}
            for mode in ("sequential", "parallel"):
                tr, rec = build(table[name], (s["B"], T, s["I"], s["H"]), {"mode": mode})
                rec["memory_bytes"] = sum(rec[f"{k}_bytes"] for k in ("temp", "argument", "output"))
                row["cells"][name]["modes"][mode] = rec
                if rec["memory_bytes"] > spec["max_gib"] * 2**30:
                    rec["status"] = f"not run: needs {rec['memory_bytes'] / 2**30:.1f} GiB"
                    log(f"  {name:9s} {mode:10s} {rec['status']}")
                    continue
                # 20 loss steps at the shortest length; at the others one step, which
                # gives the first step (both modes must agree on it) and sizes the blocks.
                step = run_steps(tr, rec, spec["loss_steps"] if i == 0 else 1)
                if i == 0:
                    rec["loss_problem"] = loss_check(rec["losses"])
                elif not math.isfinite(rec["losses"][0]):
                    rec["loss_problem"] = f"non-finite loss {rec['losses']}"
                else:
                    rec["loss_problem"] = None
                rec["status"] = "ok"
                key = (name, mode)
                trainers[key], step_s[key] = tr, step
                calls[key] = calls_for(step, spec, lo=1)
                log(
                    f"  {name:9s} {mode:10s} {1e3 * step:10.1f} ms, "
                    f"{rec['memory_bytes'] / 2**20:9.1f} MiB"
                )
        block_s = sum((1 + calls[k]) * step_s[k] for k in trainers)
        blocks = int(np.clip(spec["length_seconds"] // max(block_s, 1e-9), 1, spec["blocks"]))
        row["blocks"] = blocks
        times = time_round_robin(trainers, calls, blocks)
        for (name, mode), t in times.items():
            rec = row["cells"][name]["modes"][mode]
            summarise(rec, t)
            if not all(map(math.isfinite, t["timed_losses"])) and not rec["loss_problem"]:
                rec["loss_problem"] = f"non-finite loss while timed: {t['timed_losses']}"
        for c in row["cells"].values():
            seq, par = c["modes"]["sequential"], c["modes"]["parallel"]
            if seq.get("status") == par.get("status") == "ok":
                c["wall_seq_over_par"] = seq["median_ms"] / par["median_ms"]
                c["cpu_seq_over_par"] = seq["cpu_median_ms"] / par["cpu_median_ms"]
                c["first_step_rel_diff"] = first_step_diff(par, seq)
            c["memory_par_over_seq"] = par["memory_bytes"] / seq["memory_bytes"]
        rows.append(row)
        del trainers, times
    return rows


RUN = {"fast-path": fast_path, "dropout": dropout, "linear": linear}


def failures(section, rows):
    """Every loss check that failed, and every pair of engines that disagree."""
    out = []
    if section == "linear":
        for row in rows:
            for name, c in row["cells"].items():
                for mode, rec in c["modes"].items():
                    if rec.get("loss_problem"):
                        out.append(f"linear T={row['T']} {name} {mode}: {rec['loss_problem']}")
                d = c.get("first_step_rel_diff")
                if d is not None and d > LINEAR_FIRST_STEP_RTOL:
                    out.append(
                        f"linear T={row['T']} {name}: the modes' first steps (loss, gradient "
                        f"norm) differ by {d:.2e} (tolerance {LINEAR_FIRST_STEP_RTOL:.0e})"
                    )
        return out
    for row in rows:
        cfg = tuple(row["config"])
        for name, v in row["variants"].items():
            for engine, rec in v["engines"].items():
                if rec["loss_problem"]:
                    out.append(f"{section} {cfg} {name} {engine}: {rec['loss_problem']}")
            tol = FIRST_STEP_RTOL["bfloat16" if name.endswith("bf16") else "float32"]
            if v["first_step_rel_diff"] > tol:
                out.append(
                    f"{section} {cfg} {name}: the engines' first steps (loss, gradient norm) "
                    f"differ by {v['first_step_rel_diff']:.2e} (tolerance {tol:.0e})"
                )
    return out


def child(section, spec, result_path):
    """One section in this (fresh) process; writes its rows and versions as JSON."""
    import jax
    import jaxlib
    import optax

    import jaxrnn

    def log(msg):
        print(msg, file=sys.stderr, flush=True)

    t0, t0_cpu = time.perf_counter(), time.process_time()
    rows = RUN[section](spec, log)
    Path(result_path).write_text(
        json.dumps(
            {
                "rows": rows,
                "wall_s": time.perf_counter() - t0,
                "cpu_s": time.process_time() - t0_cpu,
                "backend": jax.default_backend(),
                "versions": {
                    "jax": jax.__version__,
                    "jaxlib": jaxlib.__version__,
                    "optax": optax.__version__,
                    "jaxrnn": jaxrnn.__version__,
                    "numpy": np.__version__,
                },
            }
        )
    )


def run_section(section, spec, log):
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(HERE.parent), env.get("PYTHONPATH")) if p)
    if spec["quick"]:
        # A harness check compiles some 25 tiny programs and times nothing that matters:
        # XLA:CPU's backend optimisations off halve the compile time (measured, 2 cores).
        env["XLA_FLAGS"] = f"{env.get('XLA_FLAGS', '')} {QUICK_XLA_FLAGS}".strip()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "result.json"
        cmd = [sys.executable, str(Path(__file__).resolve()), "--child", section]
        cmd += ["--spec", json.dumps(spec), "--result", str(out)]
        proc = subprocess.run(cmd, env=env)  # the child's log goes straight to stderr
        if proc.returncode != 0 or not out.exists():
            log(f"{section}: the section's process exited with status {proc.returncode}")
            return {"status": "failed", "returncode": proc.returncode}
        return {"status": "ok", **json.loads(out.read_text())}


# ---------------------------------------------------------------------- markdown


def ms(rec):
    if "median_ms" not in rec:
        return rec.get("status", "n/a")
    return f"{fmt_ms(rec['median_ms'])} ({fmt_ms(rec['p25_ms'])}–{fmt_ms(rec['p75_ms'])})"


def fmt_cfg(cfg):
    return "(" + ", ".join(str(v) for v in cfg) + ")"


def markdown(result):
    out = []
    sections = result["sections"]
    if sections.get("fast-path", {}).get("status") == "ok":
        out += [
            '**Fast path**: median ms per training step (p25–p75) with `bptt="fused"` and '
            '`bptt="autodiff"`, and **autodiff / fused** (above 1: the fused engine is faster).',
            "",
            "| (B, T, I, H) | variant | fused | autodiff | autodiff / fused |",
            "|---|---|---|---|---|",
        ]
        for row in sections["fast-path"]["rows"]:
            for v in row["variants"].values():
                e = v["engines"]
                out.append(
                    f"| {fmt_cfg(row['config'])} | {v['label']} | {ms(e['fused'])} | "
                    f"{ms(e['autodiff'])} | **{v['autodiff_over_fused']:.2f}×** |"
                )
        out.append("")
    if sections.get("dropout", {}).get("status") == "ok":
        out += [
            "**Dropout and zoneout**: median ms per step (p25–p75) on the default engine "
            '(`bptt="auto"`) and on `bptt="autodiff"`, each **÷ the plain LSTM on the same '
            "engine** (the goal: ≤ 1.2× on the default engine), and autodiff ÷ default.",
            "",
            "| (B, T, I, H) | variant | default engine (ran) | ÷ plain | autodiff | ÷ plain "
            "| autodiff ÷ default |",
            "|---|---|---|---|---|---|---|",
        ]
        for row in sections["dropout"]["rows"]:
            for v in row["variants"].values():
                a, d = v["engines"]["auto"], v["engines"]["autodiff"]
                out.append(
                    f"| {fmt_cfg(row['config'])} | {v['label']} | {ms(a)} ({a['engine_ran']}) | "
                    f"**{a['over_plain']:.2f}×** | {ms(d)} | {d['over_plain']:.2f}× | "
                    f"{v['autodiff_over_auto']:.2f}× |"
                )
        out.append("")
    if sections.get("linear", {}).get("status") == "ok":
        rows = sections["linear"]["rows"]
        s = rows[0] if rows else LINEAR_SHAPE
        out += [
            f"**Linear recurrences**, B = {s['B']}, I = {s['I']}, H = {s['H']}: median wall ms "
            "per training step (p25–p75) and median process CPU ms (both cores' threads), "
            '`mode="sequential"` and `mode="parallel"`; **sequential / parallel** of the wall '
            "time (above 1: the parallel scan wins) and of the CPU time; compiled memory "
            "(temp + argument + output, MiB).",
            "",
            "| T | cell | sequential wall | parallel wall | seq / par wall | CPU ms seq → par "
            "| seq / par CPU | MiB seq → par |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for row in rows:
            for c in row["cells"].values():
                seq, par = c["modes"]["sequential"], c["modes"]["parallel"]
                both = "wall_seq_over_par" in c

                def cpu(rec):
                    return f"{rec['cpu_median_ms']:.0f}" if "cpu_median_ms" in rec else "n/a"

                out.append(
                    f"| {row['T']} | {c['label']} | {ms(seq)} | {ms(par)} | "
                    + (f"**{c['wall_seq_over_par']:.2f}×**" if both else "n/a")
                    + f" | {cpu(seq)} → {cpu(par)} | "
                    + (f"{c['cpu_seq_over_par']:.2f}×" if both else "n/a")
                    + f" | {seq['memory_bytes'] / 2**20:.0f} → {par['memory_bytes'] / 2**20:.0f} |"
                )
        out.append("")
    failed = [n for n, sec in sections.items() if sec["status"] != "ok"]
    if failed:
        out += [f"Sections that did not finish: {', '.join(failed)}.", ""]
    m = result["machine"]
    out.append(
        f"Machine: {m['processor']}, {m['cpu_count']} cores, backend {result['backend']}; load "
        f"average before/after {m['loadavg_before']} / {m['loadavg_after']}; {m['date']}; "
        f"{result['spec']['blocks']} blocks; wall time {result['wall_s'] / 60:.1f} min; "
        f"versions {json.dumps(result['versions'])}."
    )
    return "\n".join(out)


# -------------------------------------------------------------------------- main


def parse_args(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="tiny shapes: checks the harness")
    ap.add_argument("--parts", type=parse_list(SECTIONS, "parts"), default=list(SECTIONS))
    ap.add_argument(
        "--configs", type=parse_config, nargs="+", help="BxTxIxH ... (fast-path and dropout)"
    )
    ap.add_argument(
        "--variants",
        type=parse_list(FAST_PATH, "variants"),
        help="fast-path variants (default: all; quick: five)",
    )
    ap.add_argument("--lengths", type=int, nargs="+", help="linear: T (default 1k 4k 16k 64k)")
    ap.add_argument(
        "--linear-cells",
        type=parse_list(LINEAR_CELLS, "linear-cells"),
        help="linear: cells (default lru,min_gru)",
    )
    ap.add_argument("--blocks", type=int, help="round-robin blocks (default 5, quick 2)")
    ap.add_argument("--calls", type=int, help="timed calls per block (default: adaptive)")
    ap.add_argument("--block-seconds", type=float, help="timed seconds per turn (default 0.5)")
    ap.add_argument("--loss-steps", type=int, default=20)
    ap.add_argument(
        "--length-seconds",
        type=float,
        default=90.0,
        help="linear: timing budget per length; long lengths get fewer blocks (at least 1)",
    )
    ap.add_argument(
        "--max-gib", type=float, default=10.0, help="linear: do not run a step needing more memory"
    )
    ap.add_argument("--out", type=Path, default=HERE / "engines.json")
    ap.add_argument("--write-readme", action="store_true")
    ap.add_argument("--child", choices=SECTIONS, help=argparse.SUPPRESS)
    ap.add_argument("--spec", help=argparse.SUPPRESS)
    ap.add_argument("--result", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    for name in ("blocks", "calls", "loss_steps"):
        v = getattr(args, name)
        if v is not None and v < (2 if name == "loss_steps" else 1):
            ap.error(
                f"--{name.replace('_', '-')}: expected a positive count (>= 2 for loss), got {v}"
            )
    if args.lengths and min(args.lengths) < 1:
        ap.error(f"--lengths: expected positive lengths, got {args.lengths}")
    return args


def main(argv=None):
    args = parse_args(argv)
    if args.child:
        child(args.child, json.loads(args.spec), args.result)
        return 0

    def log(msg):
        print(msg, file=sys.stderr, flush=True)

    q = args.quick
    spec = {
        "quick": q,
        "configs": [list(c) for c in args.configs or (QUICK["configs"] if q else CONFIGS)],
        "variants": args.variants or list(QUICK["variants"] if q else FAST_PATH),
        "lengths": list(args.lengths or (QUICK["lengths"] if q else LENGTHS)),
        "linear_cells": args.linear_cells or list(DEFAULT_LINEAR_CELLS),
        "linear_shape": QUICK["linear_shape"] if q else LINEAR_SHAPE,
        "blocks": args.blocks or (QUICK["blocks"] if q else 5),
        "calls": args.calls or (QUICK["calls"] if q else None),
        "block_seconds": args.block_seconds or 0.5,
        "loss_steps": args.loss_steps,
        "max_gib": args.max_gib,
        "length_seconds": args.length_seconds,
    }
    t0, load_before = time.perf_counter(), os.getloadavg()
    sections = {}
    for section in args.parts:
        log(f"== {section}")
        sections[section] = run_section(section, spec, log)
    ran = [s for s in sections.values() if s["status"] == "ok"]
    result = {
        "spec": spec,
        "sections": sections,
        "backend": ran[0]["backend"] if ran else None,
        "versions": ran[0]["versions"] if ran else {},
        "wall_s": time.perf_counter() - t0,
        "machine": machine(load_before),
    }
    failed = [
        f"{n}: the section's process failed" for n, s in sections.items() if s["status"] != "ok"
    ]
    for name, sec in sections.items():
        if sec["status"] == "ok":
            failed += failures(name, sec["rows"])
    return publish(
        result, failed, args.out, markdown(result), args.write_readme, log, README_MARKERS
    )


if __name__ == "__main__":
    sys.exit(main())
