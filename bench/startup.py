"""Time to the first training step: ``jaxrnn train --smoke`` against the same job in PyTorch.

    python bench/startup.py               # 3 rounds, ~2 min on 2 cores
    python bench/startup.py --rounds 5 --out bench/startup.json

What is measured, each in a fresh process, the kinds interleaved round by round:

* ``import jaxrnn`` and ``jaxrnn --help``: wall time of the whole process;
* ``jaxrnn train adding_lstm --smoke`` (T = 10, H = 8, batch 8, 20 steps, evaluation and
  checkpoints at steps 10 and 20) with the persistent compilation cache **cold** (a new,
  empty cache folder) and **warm** (the folder of the previous cold run), and with
  ``--no-compile-cache``: the time from starting the process to the first line of the
  run's ``metrics.jsonl`` (the loop writes it at once after step 1), and to the end;
* the same job in PyTorch (``nn.LSTM`` + a linear readout of the last step, Adam 3e-3 after
  clipping at global norm 1, MSE, the same sizes and steps; evaluation and checkpoints
  left out, so it is the lower bound of a PyTorch script): time to the end of step 1 and
  to the end of step 20.

Reported: the median over rounds of each, and jaxrnn ÷ PyTorch for the first step
(PyTorch is skipped where it is not installed).
``python -X importtime -c "import jaxrnn.training"`` (what ``jaxrnn train`` imports;
``import jaxrnn`` itself imports each name on first use) says where the import time
goes; the summary lists its five largest modules.
"""

import argparse
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from peers import machine  # noqa: E402

PYTORCH = r"""
import time, sys
t0 = float(sys.argv[1])
import torch
torch.manual_seed(0)
lstm, out = torch.nn.LSTM(2, 8, batch_first=True), torch.nn.Linear(8, 1)
params = [*lstm.parameters(), *out.parameters()]
opt = torch.optim.Adam(params, lr=3e-3)
for step in range(20):
    x = torch.rand(8, 10, 2); x[:, :, 1] = 0; x[:, :2, 1] = 1
    y = (x[:, :, 0] * x[:, :, 1]).sum(1, keepdim=True)
    opt.zero_grad()
    loss = torch.nn.functional.mse_loss(out(lstm(x)[0][:, -1]), y)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(params, 1.0)
    opt.step()
    if step == 0:
        print(time.time() - t0, flush=True)
print(time.time() - t0, flush=True)
"""


def wall(cmd, env=None) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, env=env, check=True, capture_output=True)
    return time.perf_counter() - t0


def smoke(workdir: Path, env, *flags) -> dict:
    """Seconds to the first metrics line and to the end of ``jaxrnn train --smoke``."""
    cmd = [sys.executable, "-m", "jaxrnn.cli", "train", "adding_lstm", "--smoke", "--no-progress"]
    log = workdir / "metrics.jsonl"
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [*cmd, "--workdir", str(workdir), *flags],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    first = None
    while proc.poll() is None:
        if first is None and log.exists() and log.stat().st_size > 0:
            first = time.perf_counter() - t0
        time.sleep(0.002)
    total = time.perf_counter() - t0
    if proc.returncode:
        raise RuntimeError(proc.stderr.read().decode()[-2000:])
    return {"first_step_s": first if first is not None else total, "total_s": total}


def pytorch() -> dict:
    out = subprocess.run(
        [sys.executable, "-c", PYTORCH, repr(time.time())],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()
    return {"first_step_s": float(out[0]), "total_s": float(out[1])}


def import_profile(top: int = 5) -> list[dict]:
    err = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "import jaxrnn.training"],
        capture_output=True,
        text=True,
        check=True,
    ).stderr
    rows = []
    for line in err.splitlines()[1:]:
        _, self_us, cumulative_us, name = (p.strip() for p in line.replace(":", "|", 1).split("|"))
        rows.append(
            {"module": name, "self_s": int(self_us) / 1e6, "cumulative_s": int(cumulative_us) / 1e6}
        )
    return sorted(rows, key=lambda r: -r["self_s"])[:top]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=HERE / "startup.json")
    args = parser.parse_args(argv)
    load_before = os.getloadavg()
    base = {k: v for k, v in os.environ.items() if not k.startswith("JAX_")}
    runs: dict[str, list[dict]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            env = {**base, "XDG_CACHE_HOME": str(Path(tmp) / f"cache{r}")}
            row = {
                "import jaxrnn": {"total_s": wall([sys.executable, "-c", "import jaxrnn"])},
                "jaxrnn --help": {"total_s": wall([sys.executable, "-m", "jaxrnn.cli", "--help"])},
                "smoke, cold cache": smoke(Path(tmp) / f"cold{r}", env),
                "smoke, warm cache": smoke(Path(tmp) / f"warm{r}", env),
                "smoke, --no-compile-cache": smoke(
                    Path(tmp) / f"off{r}", env, "--no-compile-cache"
                ),
            }
            if importlib.util.find_spec("torch") is not None:
                row["PyTorch script"] = pytorch()
            for name, rec in row.items():
                runs.setdefault(name, []).append(rec)
                print(f"round {r}: {name:28s} {json.dumps(rec)}", file=sys.stderr, flush=True)
    med = {
        name: {k: statistics.median(rec[k] for rec in recs) for k in recs[0]}
        for name, recs in runs.items()
    }
    torch_first = med.get("PyTorch script", {}).get("first_step_s")
    lines = [
        "| process | first training step (s) | end (s) | first step ÷ PyTorch's |",
        "|---|---|---|---|",
    ]
    for name, m in med.items():
        first = m.get("first_step_s")
        ratio = f"{first / torch_first:.1f}×" if first and torch_first else ""
        lines.append(
            f"| {name} | {'' if first is None else f'{first:.2f}'} | {m['total_s']:.2f} | {ratio} |"
        )
    profile = import_profile()
    lines.append("")
    lines.append(
        "Largest self times in `python -X importtime -c 'import jaxrnn.training'`: "
        + ", ".join(f"{p['module']} {p['self_s']:.2f} s" for p in profile)
        + "."
    )
    info = machine(load_before)
    lines.append(
        f"\nMachine: {info['processor']}, {info['cpu_count']} cores; load average before/after "
        f"{info['loadavg_before']} / {info['loadavg_after']}; {info['date']}; median of "
        f"{args.rounds} rounds."
    )
    table = "\n".join(lines)
    print(table)
    args.out.write_text(
        json.dumps(
            {"runs": runs, "median": med, "import_profile": profile, "machine": info}, indent=1
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
