"""Side-by-side training-step benchmark: jaxrnn against PyTorch, Flax, Haiku, Equinox.

Run (peers come with the ``bench`` extra; missing ones are reported as skipped)::

    pip install -e '.[bench]'
    python bench/peers.py                      # full run, < 20 min on 2 cores
    python bench/peers.py --quick              # a few minutes
    python bench/peers.py --write-readme       # also refresh the table in bench/README.md

One training step is forward over the whole sequence + BPTT + Adam after global
norm clipping, float32, loss = MSE of a linear readout of every hidden state
(``bench/_workers.py`` builds it for each peer). The method is the team's
``BENCH.md``:

* each peer runs in its own worker process (PyTorch never shares one with XLA);
* for each (cell, config) the peers are timed round-robin in ``blocks`` blocks,
  the order rotating from block to block; each block starts with an untimed
  warm-up call, then ``calls`` timed calls;
* reported: the median and p25-p75 of all timed calls, the ratio peer / jaxrnn
  (> 1: jaxrnn is faster), achieved GFLOP/s as a fraction of the float32 matmul
  peak measured in the same run, first-call (trace + compile) time, and for
  jaxrnn the compile time and ``memory_analysis()`` bytes at T = 100 vs 1000;
* every peer's loss must be finite and decrease over 20 steps on the same batch;
  a failure is printed loudly and makes the exit status 1.

FLOPs per step = 3 x forward, forward = 2 B T (I + H) G H with G = 4 (LSTM),
3 (GRU), 1 (Elman): the matmuls only, the usual convention.
"""

import argparse
import json
import math
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
PEERS = ("jaxrnn", "pytorch", "flax", "haiku", "equinox")
# On request only (--peers): jaxrnn with its fused BPTT turned off, jaxrnn with freed
# buffers kept mapped (--reuse-host-memory, jaxrnn.training.host_memory), and jaxrnn
# with XLA:CPU's 512-bit vectors (XLA_FLAGS=--xla_cpu_prefer_vector_width=512).
EXTRA_PEERS = ("jaxrnn-autodiff", "jaxrnn-reuse-memory", "jaxrnn-wide-vectors")
CELLS = ("lstm", "gru", "elman")
GATES = {"lstm": 4, "gru": 3, "elman": 1}
# (B, T, I, H), from the performance issue.
CONFIGS = ((32, 100, 32, 128), (32, 100, 64, 512), (8, 1000, 16, 64), (256, 50, 32, 256))
QUICK_CONFIGS = ((32, 100, 32, 128), (8, 1000, 16, 64))
README_MARKERS = ("<!-- bench:results:start -->", "<!-- bench:results:end -->")


def step_flops(cell, B, T, I, H):
    """Matmul FLOPs of one training step: ``3 * 2 B T (I + H) G H``."""
    return 3 * 2 * B * T * (I + H) * GATES[cell] * H


def parse_config(text):
    parts = text.lower().split("x")
    if len(parts) != 4 or not all(p.isdigit() and int(p) > 0 for p in parts):
        raise argparse.ArgumentTypeError(
            f"--configs: expected BxTxIxH with positive integers (e.g. 32x100x32x128), got {text!r}"
        )
    return tuple(int(p) for p in parts)


def parse_list(allowed, name):
    def parse(text):
        items = [s for s in text.split(",") if s]
        bad = [s for s in items if s not in allowed]
        if bad or not items:
            raise argparse.ArgumentTypeError(
                f"--{name}: expected a comma-separated subset of {','.join(allowed)}, got {text!r}"
            )
        return items

    return parse


class Worker:
    """One peer's process, spoken to by one JSON line each way."""

    def __init__(self, peer):
        env = dict(os.environ)
        # A fresh clone need not be installed: let the jaxrnn worker import it.
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(HERE.parent), env.get("PYTHONPATH")) if p
        )
        self.peer = peer
        self.proc = subprocess.Popen(
            [sys.executable, str(HERE / "_workers.py"), peer],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        self.hello = None
        self.dead = None

    def read(self):
        line = self.proc.stdout.readline()
        if not line:
            self.dead = f"worker exited with status {self.proc.wait()}"
            return {"ok": False, "error": self.dead}
        return json.loads(line)

    def ready(self):
        if self.hello is None:
            self.hello = self.read()
            if not self.hello["ok"]:
                self.dead = self.hello.get("unavailable") or self.hello.get("error")
        return self.hello

    def ask(self, **msg):
        if self.dead:
            return {"ok": False, "error": self.dead}
        self.proc.stdin.write(json.dumps(msg) + "\n")
        self.proc.stdin.flush()
        return self.read()

    def close(self):
        if self.proc.poll() is None:
            self.proc.stdin.close()
            self.proc.wait(timeout=60)


def loss_check(losses):
    """``None`` if all losses are finite and the last is below the first, else why not."""
    if not all(math.isfinite(v) for v in losses):
        return f"non-finite loss: {losses}"
    if not losses[-1] < losses[0]:
        return f"loss did not decrease over {len(losses)} steps: {losses[0]} -> {losses[-1]}"
    return None


def calls_for(step_s, args):
    """Timed calls per block: enough to fill ``--block-seconds``, within bounds."""
    if args.calls:
        return args.calls
    return int(np.clip(round(args.block_seconds / max(step_s, 1e-6)), 3, 50))


def bench_row(workers, cell, cfg, args, log):
    """Set up every peer for one (cell, config), then time them round-robin."""
    B, T, I, H = cfg
    shape = {"cell": cell, "B": B, "T": T, "I": I, "H": H}
    peers = {}
    for name, w in workers.items():
        r = w.ask(cmd="setup", loss_steps=args.loss_steps, **shape)
        if not r["ok"]:
            peers[name] = {"status": "error", "error": r["error"]}
            log(f"  {name}: ERROR {r['error']}")
            continue
        problem = loss_check(r["losses"])
        peers[name] = {
            "status": "loss_check_failed" if problem else "ok",
            "first_call_s": r["first_call_s"],
            "losses": r["losses"],
            "loss_problem": problem,
            "times_s": [],
        }
        if problem:
            log(f"  !!! LOSS CHECK FAILED for {name} {cell} {cfg}: {problem}")
        step_s = float(np.median(r["loss_step_s"])) if r["loss_step_s"] else r["first_call_s"]
        peers[name]["calls_per_block"] = calls_for(step_s, args)
    live = [n for n in workers if peers[n]["status"] != "error"]
    for block in range(args.blocks):
        k = block % len(live) if live else 0
        for name in live[k:] + live[:k]:  # rotate who goes first
            r = workers[name].ask(cmd="time", calls=peers[name]["calls_per_block"], **shape)
            if not r["ok"]:
                peers[name].update(status="error", error=r["error"])
                log(f"  {name}: ERROR {r['error']}")
                continue
            peers[name]["times_s"] += r["times_s"]
        live = [n for n in live if peers[n]["status"] != "error"]
    flops = step_flops(cell, *cfg)
    for p in peers.values():
        if p.get("times_s"):
            q25, q50, q75 = np.percentile(p["times_s"], [25, 50, 75])
            p.update(median_ms=1e3 * q50, p25_ms=1e3 * q25, p75_ms=1e3 * q75)
            p["gflops"] = flops / q50 / 1e9
    ours = peers.get("jaxrnn", {}).get("median_ms")
    for name, p in peers.items():
        if ours and "median_ms" in p and name != "jaxrnn":
            p["ratio_to_jaxrnn"] = p["median_ms"] / ours
    # The fastest of the other frameworks: jaxrnn's own variants (EXTRA_PEERS) are not peers.
    ratios = {
        n: p["ratio_to_jaxrnn"]
        for n, p in peers.items()
        if "ratio_to_jaxrnn" in p and not n.startswith("jaxrnn")
    }
    fastest = min(ratios, key=ratios.get) if ratios else None
    return {
        "cell": cell,
        "B": B,
        "T": T,
        "I": I,
        "H": H,
        "step_gflop": flops / 1e9,
        "peers": peers,
        "fastest_peer": fastest,
        "fastest_peer_ratio": ratios.get(fastest),
    }


def fmt_ms(v):
    return f"{v:.1f}" if v >= 10 else f"{v:.2f}"


def markdown(result):
    """The results as Markdown: step times with ratios, throughput, compile and memory."""
    peers = [p for p in result["peers_requested"] if p in result["workers"]]
    avail = [p for p in peers if result["workers"][p]["status"] == "ok"]
    peak = result.get("matmul_peak_gflops")
    out = []
    head = ["cell", "(B, T, I, H)", *avail, "fastest peer / jaxrnn"]
    out.append("| " + " | ".join(head) + " |")
    out.append("|" + "---|" * len(head))
    for row in result["rows"]:
        cells = [row["cell"].upper(), f"({row['B']}, {row['T']}, {row['I']}, {row['H']})"]
        for name in avail:
            p = row["peers"][name]
            if "median_ms" not in p:
                cells.append(f"{p['status']}")
                continue
            text = f"{fmt_ms(p['median_ms'])} ({fmt_ms(p['p25_ms'])}–{fmt_ms(p['p75_ms'])})"
            if "ratio_to_jaxrnn" in p:
                text += f" **{p['ratio_to_jaxrnn']:.2f}×**"
            if p["status"] != "ok":
                text += " LOSS CHECK FAILED"
            cells.append(text)
        fr = row["fastest_peer_ratio"]
        cells.append(f"{fr:.2f} ({row['fastest_peer']})" if fr is not None else "n/a")
        out.append("| " + " | ".join(cells) + " |")
    out.append("")
    out.append(
        "Median ms per training step (p25–p75), and **peer / jaxrnn** (above 1: jaxrnn is faster)."
    )
    skipped = [f"{p} ({result['workers'][p]['reason']})" for p in peers if p not in avail]
    if skipped:
        out.append(f"Skipped (not installed): {'; '.join(skipped)}.")
    if peak:
        out.append("")
        out.append(
            f"Achieved GFLOP/s and share of the measured float32 matmul peak ({peak:.0f} GFLOP/s, "
            "1024² matmul, best of numpy and XLA); first-call time (trace + compile + one step) "
            "in seconds:"
        )
        out.append("")
        head = ["cell", "(B, T, I, H)", "GFLOP/step", *avail]
        out.append("| " + " | ".join(head) + " |")
        out.append("|" + "---|" * len(head))
        for row in result["rows"]:
            cells = [
                row["cell"].upper(),
                f"({row['B']}, {row['T']}, {row['I']}, {row['H']})",
                f"{row['step_gflop']:.2f}",
            ]
            for name in avail:
                p = row["peers"][name]
                if "gflops" in p:
                    cells.append(
                        f"{p['gflops']:.3g} ({100 * p['gflops'] / peak:.0f} %), "
                        f"first {p['first_call_s']:.2f} s"
                    )
                else:
                    cells.append("n/a")
            out.append("| " + " | ".join(cells) + " |")
    if result.get("compile"):
        out.append("")
        out.append("jaxrnn step, compile time and compiled memory (`memory_analysis()`) versus T:")
        out.append("")
        out.append(
            "| cell | (B, I, H) | T | lower s | compile s | temp MiB | argument MiB | output MiB |"
        )
        out.append("|---|---|---|---|---|---|---|---|")
        for c in result["compile"]:
            for r in c["rows"]:

                def mib(b):
                    return f"{b / 2**20:.2f}" if b is not None and b >= 0 else "n/a"

                out.append(
                    f"| {c['cell'].upper()} | ({c['B']}, {c['I']}, {c['H']}) | {r['T']} | "
                    f"{r['lower_s']:.2f} | {r['compile_s']:.2f} | {mib(r['temp_bytes'])} | "
                    f"{mib(r['argument_bytes'])} | {mib(r['output_bytes'])} |"
                )
    m = result["machine"]
    out.append("")
    out.append(
        f"Machine: {m['processor']}, {m['cpu_count']} cores; load average before/after "
        f"{m['loadavg_before']} / {m['loadavg_after']}; {m['date']}; "
        f"{result['blocks']} blocks per row; wall time {result['wall_s'] / 60:.1f} min; "
        f"versions {json.dumps(result['versions'])}."
    )
    return "\n".join(out)


def write_readme(path, text, markers=README_MARKERS):
    """Replace the part of ``path`` between the two ``markers`` lines by ``text``."""
    start, end = markers
    doc = path.read_text()
    if start not in doc or end not in doc:
        raise ValueError(f"{path}: expected the markers {start} and {end}")
    head, rest = doc.split(start, 1)
    _, tail = rest.split(end, 1)
    path.write_text(f"{head}{start}\n{text}\n{end}{tail}")


def publish(result, failures, out, table, write, log, markers=README_MARKERS):
    """Write ``result`` (with ``failures``) to ``out`` as JSON and print ``table``; with
    ``write``, put ``table`` between ``markers`` in bench/README.md.

    Returns the exit status: 1 if anything failed, else 0.
    """
    result["failures"] = failures
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1))
    print(table)
    if write:
        write_readme(HERE / "README.md", table, markers)
    if failures:
        log("\n!!! FAILURES !!!\n" + "\n".join(failures))
        return 1
    return 0


def machine(load_before):
    """The machine a run measured on: processor, cores, load average before and after, date."""
    return {
        "processor": cpu_name(),
        "cpu_count": os.cpu_count(),
        "loadavg_before": [round(v, 2) for v in load_before],
        "loadavg_after": [round(v, 2) for v in os.getloadavg()],
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "python": platform.python_version(),
    }


def cpu_name():
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="small configs, fewer repeats")
    ap.add_argument("--cells", type=parse_list(CELLS, "cells"), default=list(CELLS))
    ap.add_argument(
        "--configs", type=parse_config, nargs="+", help="BxTxIxH ... (default: the issue's four)"
    )
    ap.add_argument("--peers", type=parse_list(PEERS + EXTRA_PEERS, "peers"), default=list(PEERS))
    ap.add_argument("--blocks", type=int, help="round-robin blocks per row (default 5, quick 3)")
    ap.add_argument("--calls", type=int, help="timed calls per block (default: adaptive)")
    ap.add_argument(
        "--block-seconds", type=float, help="timed seconds per block (default 1.0, quick 0.3)"
    )
    ap.add_argument("--loss-steps", type=int, default=20)
    ap.add_argument("--no-extras", action="store_true", help="skip peak, compile and memory")
    ap.add_argument("--out", type=Path, default=HERE / "results.json")
    ap.add_argument("--write-readme", action="store_true")
    args = ap.parse_args(argv)
    if "jaxrnn" not in args.peers:
        ap.error("--peers: expected jaxrnn among them (ratios are to jaxrnn)")
    for name in ("blocks", "calls", "loss_steps"):
        v = getattr(args, name)
        if v is not None and v < (2 if name == "loss_steps" else 1):
            ap.error(
                f"--{name.replace('_', '-')}: expected a positive count (>= 2 for loss), got {v}"
            )
    args.configs = args.configs or list(QUICK_CONFIGS if args.quick else CONFIGS)
    args.blocks = args.blocks or (3 if args.quick else 5)
    args.block_seconds = args.block_seconds or (0.3 if args.quick else 1.0)

    def log(msg):
        print(msg, file=sys.stderr, flush=True)

    t_start = time.perf_counter()
    load_before = os.getloadavg()
    started = {p: Worker(p) for p in args.peers}
    workers, worker_info = {}, {}
    for name, w in started.items():
        hello = w.ready()
        if hello["ok"]:
            workers[name] = w
            worker_info[name] = {"status": "ok", **{k: v for k, v in hello.items() if k != "ok"}}
        else:
            worker_info[name] = {"status": "skipped", "reason": w.dead}
            log(f"{name}: skipped ({w.dead})")
            w.close()
    if "jaxrnn" not in workers:
        log(f"jaxrnn worker failed: {worker_info['jaxrnn']}")
        return 2

    result = {
        "peers_requested": args.peers,
        "workers": worker_info,
        "blocks": args.blocks,
        "loss_steps": args.loss_steps,
        "rows": [],
        "compile": [],
    }
    try:
        if not args.no_extras:
            r = workers["jaxrnn"].ask(cmd="peak")
            result["matmul"] = r
            result["matmul_peak_gflops"] = max(r["numpy_gflops"], r["jax_gflops"])
            log(f"matmul peak: {result['matmul_peak_gflops']:.0f} GFLOP/s")
        for cell in args.cells:
            for cfg in args.configs:
                log(f"{cell} {cfg}")
                row = bench_row(workers, cell, cfg, args, log)
                result["rows"].append(row)
                for n, p in row["peers"].items():
                    if "median_ms" in p:
                        log(
                            f"  {n:8s} {p['median_ms']:9.2f} ms  x{p.get('ratio_to_jaxrnn', 1):.2f}"
                        )
        if not args.no_extras:
            for cell in args.cells:
                r = workers["jaxrnn"].ask(
                    cmd="compile", cell=cell, B=32, I=32, H=256, Ts=[100, 1000]
                )
                result["compile"].append({"cell": cell, "B": 32, "I": 32, "H": 256, **r})
    finally:
        for w in workers.values():
            w.close()

    versions = {}
    for info in worker_info.values():
        versions.update(info.get("versions") or {})
    result["versions"] = versions
    result["wall_s"] = time.perf_counter() - t_start
    result["machine"] = machine(load_before)
    failed = [
        f"{n} {row['cell']} ({row['B']}, {row['T']}, {row['I']}, {row['H']}): "
        + (p.get("loss_problem") or p.get("error", ""))
        for row in result["rows"]
        for n, p in row["peers"].items()
        if p["status"] != "ok"
    ]
    return publish(result, failed, args.out, markdown(result), args.write_readme, log)


if __name__ == "__main__":
    sys.exit(main())
