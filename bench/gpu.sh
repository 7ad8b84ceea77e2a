#!/usr/bin/env bash
# jaxrnn on one GPU, in at most 8 minutes: the benchmarks of bench/ with the flags that fit.
#
#   bench/gpu.sh OUT_DIR          # on the GPU machine (or set $OUT instead of OUT_DIR)
#   bench/gpu.sh --quick OUT_DIR  # tiny sizes on CPU (about a minute on 2 busy cores): checks it
#
# Stages, each a fresh process with a time cap (the caps add up to 470 s, so the script
# ends within 8 minutes even if a stage hangs; a stage cut off is reported, and the rest run):
#
#   peers-unroll{1,8,32}  bench/peers.py: jaxrnn (fused BPTT; unroll 1, 8, 32 through
#                         JAXRNN_BENCH_UNROLL) against PyTorch nn.LSTM/nn.GRU on cuDNN, at
#                         the four sizes of peers.py's CONFIGS; unroll 1 also runs
#                         jaxrnn-autodiff (the fused engine's gain) and the compile and
#                         memory extras
#   linear                bench/engines.py --parts linear: LRU and minGRU, mode="parallel"
#                         against "sequential", at T = 1024 and 16384 (B = 8, I = H = 128)
#   sweep-1run, sweep-16, sweep-256
#                         bench/sweep.py: one solo run (what `jaxrnn train` runs), then the
#                         sweep engine with 16 and with 256 members (vmapped on a GPU)
#
# Written to OUT_DIR: NAME.json (every number), NAME.md (the stage's table), NAME.log (its
# log), env.txt (GPU, versions), stages.tsv (exit status and seconds of each stage) and
# summary.md (all tables, and the sweeps against the one run). Exit status 1 if a stage
# failed or was cut off. Python: $PYTHON, else python3.
set -euo pipefail

quick=0
out=""
for arg in "$@"; do
  case "$arg" in
    --quick) quick=1 ;;
    -h | --help) sed -n '2,27p' "$0"; exit 0 ;;
    -*) echo "gpu.sh: unknown option $arg (expected --quick and an output directory)" >&2; exit 2 ;;
    *) out="$arg" ;;
  esac
done
out="${out:-${OUT:-}}"
if [[ -z "$out" ]]; then
  echo "gpu.sh: expected an output directory, as an argument or in \$OUT" >&2
  exit 2
fi
mkdir -p "$out"
out="$(cd "$out" && pwd)"
bench="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
py="${PYTHON:-python3}"
# Several JAX processes share the GPU at once (peers.py's workers): without this each
# would reserve 75 % of its memory at start-up.
export XLA_PYTHON_CLIENT_PREALLOCATE=false

if ((quick)); then
  # Tiny shapes on CPU; XLA:CPU's backend optimisations off halve the compile time.
  export XLA_FLAGS="${XLA_FLAGS:-} --xla_backend_optimization_level=0 --xla_llvm_disable_expensive_passes=true"
  peer_sizes=(--cells gru --configs 2x6x3x4 --blocks 1 --calls 1)
  peer_extras=(--no-extras)
  unrolls=(1 8)
  linear=(--quick --lengths 16 --linear-cells min_gru)
  sweep=(--quick)
  members=(2)
else
  peer_sizes=(--cells lstm,gru --configs 32x100x32x128 32x100x64x512 8x1000x16x64 256x50x32x256
    --blocks 3 --block-seconds 0.25)
  peer_extras=()
  unrolls=(1 8 32)
  linear=(--lengths 1024 16384 --linear-cells lru,min_gru --blocks 3 --length-seconds 10
    --max-gib 100)
  sweep=()
  members=(16 256)
fi
# Seconds each stage may take (in all 470 s, so the script ends within 8 minutes); quick: 60.
declare -A caps=(
  [peers-unroll1]=120 [peers-unroll8]=70 [peers-unroll32]=80 [linear]=50
  [sweep-1run]=30 [sweep-16]=40 [sweep-256]=80
)

failed=()
: >"$out/stages.tsv"

# stage NAME COMMAND...: COMMAND's stdout (its table) to NAME.md, its stderr to NAME.log;
# killed (with its workers: timeout signals the process group) after the stage's cap.
stage() {
  local name=$1 rc=0 t0=$SECONDS why cap
  shift
  cap=$( ((quick)) && echo 60 || echo "${caps[$name]}")
  echo "== $name (at most ${cap} s)" >&2
  timeout --kill-after=10 "$cap" "$@" >"$out/$name.md" 2>"$out/$name.log" || rc=$?
  printf '%s\t%s\t%s\n' "$name" "$rc" "$((SECONDS - t0))" >>"$out/stages.tsv"
  if ((rc != 0)); then
    [[ $rc == 124 || $rc == 137 ]] && why="cut off after ${cap} s" || why="exit status $rc"
    failed+=("$name: $why (see $name.log)")
    echo "   FAILED: $why" >&2
  fi
}

{
  echo "date: $(date -u '+%Y-%m-%d %H:%M UTC')"
  echo "quick: $quick"
  command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
  "$py" - <<'EOF'
import importlib.util, os
import jax
print("jax", jax.__version__, jax.devices())
if importlib.util.find_spec("torch"):
    import torch
    print("torch", torch.__version__, "cuda", torch.cuda.is_available(), torch.version.cuda)
else:
    print("torch: not installed (its peer is reported as skipped)")
print("cpu count", os.cpu_count())
print("backend", jax.default_backend())
EOF
} >"$out/env.txt" 2>&1 || echo "gpu.sh: the environment probe failed, see $out/env.txt" >&2
backend="$(sed -n 's/^backend //p' "$out/env.txt")"
if ((!quick)) && [[ $backend != gpu ]]; then
  echo "gpu.sh: JAX's backend is '$backend', not gpu (see $out/env.txt); --quick checks the script on CPU" >&2
  exit 2
fi

for u in "${unrolls[@]}"; do
  peers=jaxrnn,pytorch
  extras=(--no-extras)
  if ((u == 1)); then
    peers=jaxrnn,jaxrnn-autodiff,pytorch
    extras=("${peer_extras[@]}")
  fi
  JAXRNN_BENCH_UNROLL=$u stage "peers-unroll$u" "$py" "$bench/peers.py" \
    --peers "$peers" "${peer_sizes[@]}" "${extras[@]}" --out "$out/peers-unroll$u.json"
done

stage linear "$py" "$bench/engines.py" --parts linear "${linear[@]}" \
  --out "$out/linear.json"

stage sweep-1run "$py" "$bench/sweep.py" "${sweep[@]}" --members 1 \
  --parts sequential --out "$out/sweep-1run.json"
for m in "${members[@]}"; do
  stage "sweep-$m" "$py" "$bench/sweep.py" "${sweep[@]}" --members "$m" \
    --parts sweep --out "$out/sweep-$m.json"
done

# The sweeps against the one run: wall time, and how much of N runs' time N members take.
"$py" - "$out" "${members[@]}" >"$out/sweep.md" <<'EOF' || failed+=("sweep summary")
import json, sys
from pathlib import Path

out, members = Path(sys.argv[1]), [int(m) for m in sys.argv[2:]]
def part(name, key):
    path = out / f"{name}.json"
    p = json.loads(path.read_text())["parts"][key] if path.exists() else {}
    return p if p.get("status") == "ok" else None
one = part("sweep-1run", "sequential")
print("| how | members | wall s | wall per member s | wall / one run's |")
print("|---|---|---|---|---|")
if one:
    print(f"| one `jaxrnn train` run | 1 | {one['wall_s']:.1f} | {one['wall_s']:.2f} | 1 |")
for m in members:
    p = part(f"sweep-{m}", "sweep")
    if p is None:
        print(f"| `jaxrnn sweep` engine | {m} | did not finish | | |")
        continue
    ratio = f"**{p['wall_s'] / one['wall_s']:.2f}×**" if one else "n/a"
    print(f"| `jaxrnn sweep` engine | {m} | {p['wall_s']:.1f} | {p['wall_s'] / m:.2f} | {ratio} |")
EOF

{
  echo "# bench/gpu.sh$( ((quick)) && echo ' --quick'), $(date -u '+%Y-%m-%d %H:%M UTC')"
  echo
  echo '```'
  cat "$out/env.txt"
  echo '```'
  for name in "${unrolls[@]/#/peers-unroll}" linear; do
    echo
    echo "## $name"
    echo
    cat "$out/$name.md"
  done
  echo
  echo "## sweeps against one run"
  echo
  cat "$out/sweep.md"
  echo
  echo "Stages (name, exit status, seconds):"
  echo
  sed 's/^/    /' "$out/stages.tsv"
  if ((${#failed[@]})); then
    echo
    echo "Failed: ${failed[*]}"
  fi
} >"$out/summary.md"
echo "gpu.sh: wrote $out (summary.md); $SECONDS s" >&2

if ((${#failed[@]})); then
  printf 'gpu.sh: FAILED: %s\n' "${failed[@]}" >&2
  exit 1
fi
