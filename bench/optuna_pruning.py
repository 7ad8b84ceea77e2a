"""What per-member early stopping (``train.patience``) saves in an Optuna batch.

    python bench/optuna_pruning.py                 # ~2 min on 2 cores
    python bench/optuna_pruning.py --steps 400 --batch 4 --patience 3

The same search (``adding_lstm --smoke``, hidden 8, learning rate log-uniform in
[1e-2, 1], one batch of K trials, an evaluation every 10 steps) runs twice in fresh
sweep directories, without and with ``train.patience``. Reported per run: the wall time
of ``search.run`` (compilation cached by a warm-up run first), the steps the group's
program ran (each step computes all K members), the member-steps it computed (K times
that), the member-steps the trials needed (each up to its early stop), and each trial's
value and stop.

Under the engine's one program per group, a frozen member is still stepped (its
update is masked, not skipped): the group ends only when every member stopped, so the
saving is the steps after the *last* member's stop, never those after each one's.
"""

import argparse
import json
import tempfile
import time
from pathlib import Path

import jax

from jaxrnn.sweep import search


def once(root: Path, name: str, overrides: list[str], args) -> dict:
    found = search.load(
        "adding_lstm",
        overrides,
        trials=args.batch,
        batch=args.batch,
        random=["optim.learning_rate=loguniform:1e-2,1"],
        smoke=True,
    )
    start = time.perf_counter()
    results = search.run(found, root / name, progress=False, echo=lambda s: None)
    wall = time.perf_counter() - start
    stops = []
    for member_id in sorted(results):
        status = json.loads((root / name / "members" / member_id / "status.json").read_text())
        stops.append(status.get("stopped_early_at") or status["step"])
    ran = max(stops)
    return {
        "run": name,
        "wall_s": round(wall, 2),
        "group_steps": ran,
        "member_steps_computed": ran * len(stops),
        "member_steps_needed": sum(stops),
        "stops": stops,
        "values": [round(results[m]["value"], 4) for m in sorted(results)],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--patience", type=int, default=3)
    args = parser.parse_args()
    base = ["model.hidden_size=8", f"train.steps={args.steps}", "train.eval_every=10"]
    with jax.numpy_dtype_promotion("standard"), tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        once(root, "warmup", base, args)  # fills the compilation cache
        rows = [
            once(root, "no patience", base, args),
            once(
                root, f"patience {args.patience}", [*base, f"train.patience={args.patience}"], args
            ),
        ]
    for row in rows:
        print(json.dumps(row))


if __name__ == "__main__":
    main()
