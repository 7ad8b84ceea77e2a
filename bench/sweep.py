"""Sweep benchmark: one ``jaxrnn sweep`` program against the same runs one after another.

Run::

    python bench/sweep.py            # 16 members: 4 learning rates x 4 seeds, ~10 min on 2 cores
    python bench/sweep.py --quick    # 2 tiny members, < 1 min (what tests/test_bench.py runs)
    python bench/sweep.py --parts sweep,torch --out bench/sweep_results.json
    python bench/sweep.py --members 256 --parts sweep   # 4 learning rates x 64 seeds

The workload (the issue's): GRU, H = 64, adding task with T = 100, B = 32, Adam
after global-norm clipping at 1, a fixed number of steps (200), learning rates
{3e-4, 1e-3, 3e-3, 1e-2} x seeds {0, 1, 2, 3}. Three ways to run the 16 members,
each in a fresh process of its own (so no two share compilation caches or thread
pools, and PyTorch never shares a process with XLA, as in ``bench/peers.py``):

* ``sweep``: ``jaxrnn.sweep.run`` over all members: one compiled program for all 16;
* ``sweep-cores``: the same, with as many JAX CPU devices as cores
  (``JAX_NUM_CPU_DEVICES``, JAX's own setting): the engine shards the member axis
  over devices, so each core's device trains its share of the members side by side
  with the others, instead of every member using all cores in turn;
* ``sequential``: ``jaxrnn.training.train`` (what ``jaxrnn train`` calls) on
  each member's config in turn, in one process — 16 separate ``jaxrnn train``
  commands would also pay 16 interpreter start-ups and imports, so this is the
  sequential side's best case;
* ``torch``: ``nn.GRU`` + ``nn.Linear`` on the last hidden state + ``torch.optim.Adam``
  + ``clip_grad_norm_``, the same sizes, steps and adding-task batches (drawn with
  ``torch.rand``), ``torch.set_num_threads(os.cpu_count())``, 16 runs in turn.

Each part is timed from its first member's start to its last member's end
(compilation, data, evaluation, logging and checkpoints included; interpreter
start-up and imports excluded). Reported: the wall times, the process CPU times
(all threads; less disturbed than wall time when other work shares the cores), the
ratios *sequential / sweep* and *torch / sweep* of wall time (above 1: the sweep is
faster), and, as a
check that the sweep computed the same thing, the largest difference between a
member's final eval loss in the sweep and in its sequential run.
"""

import argparse
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
PARTS = ("sweep", "sweep-cores", "sequential", "torch")
FULL = {
    "H": 64,
    "T": 100,
    "B": 32,
    "steps": 200,
    "learning_rates": [3e-4, 1e-3, 3e-3, 1e-2],
    "seeds": [0, 1, 2, 3],
}
QUICK = {"H": 8, "T": 10, "B": 8, "steps": 10, "learning_rates": [1e-3, 1e-2], "seeds": [0]}
EVAL_BATCH = 256


def with_members(size, n):
    """``size`` with ``n`` members: the first ``n`` learning rates at seed 0 if ``n`` is
    below their number, else every learning rate with ``n / len(learning_rates)`` seeds."""
    lrs = size["learning_rates"]
    if n < len(lrs):
        return {**size, "learning_rates": lrs[:n], "seeds": [0]}
    if n % len(lrs):
        raise ValueError(f"--members: expected fewer than {len(lrs)} or a multiple of it, got {n}")
    return {**size, "seeds": list(range(n // len(lrs)))}


def base_overrides(size):
    """The sweep's base run, as overrides of the ``adding_lstm`` experiment: a GRU on
    adding, evaluated and checkpointed only at the end."""
    steps = size["steps"]
    return [
        "name=bench_sweep",
        f"task.length={size['T']}",
        "model.cell=gru",
        f"model.hidden_size={size['H']}",
        f"optim.learning_rate={size['learning_rates'][0]}",
        f"train.steps={steps}",
        f"train.batch_size={size['B']}",
        f"train.eval_every={steps}",
        f"train.eval_batch_size={EVAL_BATCH}",
        "train.eval_batches=1",
        f"train.checkpoint_every={steps}",
        f"train.log_every={max(1, steps // 4)}",
        "train.keep_last=1",
        "train.keep_best=0",
    ]


def member_overrides(size):
    """Each member's overrides, in the sweep's order (learning rate, then seed)."""
    return [
        [*base_overrides(size), f"optim.learning_rate={lr}", f"seed={seed}"]
        for lr in size["learning_rates"]
        for seed in size["seeds"]
    ]


# ------------------------------------------------------------------------- parts


class Clock:
    """Wall seconds, and this process's CPU seconds (all threads): the CPU time is
    what a part costs even when other work shares the cores and stretches its wall time."""

    def __init__(self):
        self.wall, self.cpu = time.perf_counter(), time.process_time()

    def read(self):
        return {
            "wall_s": time.perf_counter() - self.wall,
            "cpu_s": time.process_time() - self.cpu,
        }


def run_sweep(size, workdir):
    import jaxrnn.sweep

    spec = jaxrnn.sweep.load(
        "adding_lstm",
        base_overrides(size),
        grid=["optim.learning_rate=" + ",".join(str(lr) for lr in size["learning_rates"])],
        seeds=size["seeds"],
    )
    clock = Clock()
    results = jaxrnn.sweep.run(
        spec.experiment, spec.members, Path(workdir) / "sweep", progress=False, echo=print
    )
    return {**clock.read(), "final_loss": [float(results[m.id]["loss"]) for m in spec.members]}


def run_sequential(size, workdir):
    import jaxrnn.training

    finals = []
    clock = Clock()
    for i, overrides in enumerate(member_overrides(size)):
        run = jaxrnn.training.train("adding_lstm", overrides, workdir=Path(workdir) / f"m{i:03d}")
        finals.append(float(run["loss"]))
    return {**clock.read(), "final_loss": finals}


def adding_batch(torch, gen, B, T):
    """``jaxrnn.tasks.synthetic.adding`` at full length: inputs ``[B, T, 2]``, targets ``[B]``."""
    values = torch.rand(B, T, generator=gen)
    first = torch.randint(0, T // 2, (B,), generator=gen)
    second = torch.randint(T // 2, T, (B,), generator=gen)
    markers = torch.zeros(B, T)
    markers[torch.arange(B), first] = 1.0
    markers[torch.arange(B), second] = 1.0
    return torch.stack([values, markers], dim=-1), (values * markers).sum(1)


def run_torch(size, _workdir):
    import torch

    torch.set_num_threads(os.cpu_count())  # as bench/_workers.py: threads = cores
    B, T, H = size["B"], size["T"], size["H"]
    finals = []
    clock = Clock()
    for lr in size["learning_rates"]:
        for seed in size["seeds"]:
            torch.manual_seed(seed)
            gen = torch.Generator().manual_seed(seed + 1)
            rnn, out = torch.nn.GRU(2, H, batch_first=True), torch.nn.Linear(H, 1)
            params = [*rnn.parameters(), *out.parameters()]
            opt = torch.optim.Adam(params, lr=lr)
            for _ in range(size["steps"]):
                xs, ys = adding_batch(torch, gen, B, T)
                opt.zero_grad()
                hs, _ = rnn(xs)
                loss = ((out(hs[:, -1]).squeeze(-1) - ys) ** 2).mean()
                loss.backward()
                torch.nn.utils.clip_grad_norm_(params, 1.0)
                opt.step()
            with torch.no_grad():  # the final evaluation, as jaxrnn's runs do
                xs, ys = adding_batch(torch, torch.Generator().manual_seed(10**6), EVAL_BATCH, T)
                finals.append(float(((out(rnn(xs)[0][:, -1]).squeeze(-1) - ys) ** 2).mean()))
    return {**clock.read(), "final_loss": finals}


RUNNERS = {
    "sweep": run_sweep,
    "sweep-cores": run_sweep,
    "sequential": run_sequential,
    "torch": run_torch,
}


def child(part, size_name, result_path, members=None):
    """One part in this (fresh) process; writes its result as JSON."""
    size = QUICK if size_name == "quick" else FULL
    size = with_members(size, members) if members else size
    versions = {"python": platform.python_version()}
    with tempfile.TemporaryDirectory() as workdir:
        try:
            result = {"status": "ok", **RUNNERS[part](size, workdir)}
        except ImportError as e:  # torch not installed, or no sweep engine: skipped, not failed
            result = {"status": "skipped", "reason": f"{type(e).__name__}: {e}"}
    for name in ("jax", "torch", "jaxrnn"):
        if name in sys.modules:
            versions[name] = getattr(sys.modules[name], "__version__", None)
    if "jax" in sys.modules:
        result["devices"] = sys.modules["jax"].device_count()
    Path(result_path).write_text(json.dumps({**result, "versions": versions}))


# ---------------------------------------------------------------------- parent


def cores() -> int:
    """The cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


def run_part(part, size_name, members=None):
    env = dict(os.environ)
    if part == "sweep-cores":
        env["JAX_NUM_CPU_DEVICES"] = str(cores())
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(HERE.parent), env.get("PYTHONPATH")) if p)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "result.json"
        cmd = [sys.executable, str(Path(__file__).resolve()), "--child", part, "--size", size_name]
        cmd += ["--members", str(members)] if members else []
        proc = subprocess.run([*cmd, "--result", str(out)], env=env, capture_output=True, text=True)
        if proc.returncode != 0 or not out.exists():
            return {"status": "failed", "reason": proc.stderr[-3000:]}
        return json.loads(out.read_text())


def ratios(parts, reference="sweep"):
    """``{part: wall / reference's wall}`` for every other part that ran, when the
    ``reference`` part ran."""
    ref = parts.get(reference, {})
    if ref.get("status") != "ok":
        return {}
    return {
        name: p["wall_s"] / ref["wall_s"]
        for name, p in parts.items()
        if name != reference and p.get("status") == "ok"
    }


def max_diff(parts, a, b):
    """The largest |final eval loss of part ``a`` - of part ``b``| over the members, or
    None unless both ran."""
    if not all(parts.get(p, {}).get("status") == "ok" for p in (a, b)):
        return None
    pairs = zip(parts[a]["final_loss"], parts[b]["final_loss"], strict=True)
    return max(abs(x - y) for x, y in pairs)


def table(result):
    size, parts = result["size"], result["parts"]
    n = len(size["learning_rates"]) * len(size["seeds"])
    lines = [
        f"{n} members ({len(size['learning_rates'])} learning rates x {len(size['seeds'])} "
        f"seeds), GRU H = {size['H']}, T = {size['T']}, B = {size['B']}, "
        f"{size['steps']} steps each:",
        "",
        "| how the members run | wall time (s) | CPU time (s) | wall per member (s) "
        "| wall time / sweep's |",
        "|---|---|---|---|---|",
    ]
    names = {
        "sweep": "`jaxrnn sweep` engine (one compiled program)",
        "sequential": "`jaxrnn train`'s `jaxrnn.training.train`, one run after another",
        "torch": "PyTorch `nn.GRU` + Adam, one run after another",
        "sweep-cores": f"`jaxrnn sweep` engine, {parts.get('sweep-cores', {}).get('devices')} "
        "CPU devices (`JAX_NUM_CPU_DEVICES`)",
    }
    for name in PARTS:
        p = parts.get(name)
        if p is None:
            continue
        if p["status"] != "ok":
            lines.append(f"| {names[name]} | {p['status']} | | | |")
            continue
        ratio = result["ratios"].get(name)
        ratio = "1" if name == "sweep" else "" if ratio is None else f"**{ratio:.1f}×**"
        lines.append(
            f"| {names[name]} | {p['wall_s']:.1f} | {p['cpu_s']:.1f} | {p['wall_s'] / n:.2f} "
            f"| {ratio} |"
        )
    cores = result.get("ratios_cores", {})
    if cores:
        versus = ", ".join(
            f"{names[n].split(',')[0]} **{cores[n]:.1f}×**" for n in PARTS if n in cores
        )
        lines += ["", f"Wall time / the sweep's on CPU devices: {versus}."]
    for key, what in (
        ("max_final_loss_diff", "sweep"),
        ("max_final_loss_diff_cores", "sweep-cores"),
    ):
        if result.get(key) is not None:
            lines += [
                "",
                f"Largest |final eval loss ({what}) - final eval loss (sequential run)| over "
                f"the members: {result[key]:.2e}.",
            ]
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2 tiny members (seconds per part)")
    parser.add_argument("--parts", default=",".join(PARTS), help="comma-separated subset")
    parser.add_argument(
        "--members", type=int, help="member count (default 16, quick 2): learning rates x seeds"
    )
    parser.add_argument("--out", help="write every number as JSON here")
    parser.add_argument("--child", choices=PARTS, help=argparse.SUPPRESS)
    parser.add_argument("--size", choices=("full", "quick"), help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.members is not None and args.members < 1:
        parser.error(f"--members: expected a positive count, got {args.members}")
    size = QUICK if args.quick or args.size == "quick" else FULL
    if args.members:
        try:
            size = with_members(size, args.members)
        except ValueError as e:
            parser.error(str(e))
    if args.child:
        child(args.child, args.size, args.result, args.members)
        return 0
    chosen = [p for p in args.parts.split(",") if p]
    bad = [p for p in chosen if p not in PARTS]
    if bad or not chosen:
        parser.error(f"--parts: expected a comma-separated subset of {','.join(PARTS)}, got {bad}")
    from peers import cpu_name  # bench/ is this script's directory

    size_name = "quick" if args.quick else "full"
    t0 = time.perf_counter()
    parts = {}
    for part in chosen:
        print(f"running {part} ...", file=sys.stderr, flush=True)
        parts[part] = run_part(part, size_name, args.members)
        print(f"  {part}: {parts[part].get('wall_s', parts[part]['status'])}", file=sys.stderr)
    result = {
        "size": size,
        "parts": parts,
        "ratios": ratios(parts),
        "ratios_cores": ratios(parts, "sweep-cores"),
        "max_final_loss_diff": max_diff(parts, "sweep", "sequential"),
        "max_final_loss_diff_cores": max_diff(parts, "sweep-cores", "sequential"),
        "machine": {
            "processor": cpu_name(),
            "cpu_count": os.cpu_count(),
            "load_after": os.getloadavg(),
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "total_wall_s": time.perf_counter() - t0,
        },
    }
    text = table(result)
    print(text)
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=2))
    failed = [p for p, r in parts.items() if r["status"] == "failed"]
    nonfinite = [
        p
        for p, r in parts.items()
        if r["status"] == "ok" and not all(math.isfinite(v) for v in r["final_loss"])
    ]
    for p in failed:
        print(f"FAILED: {p}: {parts[p]['reason']}", file=sys.stderr)
    for p in nonfinite:
        print(f"FAILED: {p}: non-finite final loss {parts[p]['final_loss']}", file=sys.stderr)
    return 1 if failed or nonfinite else 0


if __name__ == "__main__":
    sys.exit(main())
