"""jaxrnn sweep linear_copying

Diagonal linear recurrences against a GRU on copying memory (Arjovsky, Shah, Bengio
2016, Sec. 4.1) with a long delay: minGRU (Feng et al. 2024), the LRU (Orvieto et al.
2023) and a GRU, H = 64, one layer, read out at every step, × seeds 0, 1, 2, as one
sweep. Delay 500 (T = 520) by default, ``task.delay=1000`` for T = 1,020. Adam 2e-3
after global-norm clipping at 1, batch 32, 1,200 steps — a budget cut to fit 2 CPU
cores in an hour, far short of a converged protocol (tens of thousands of steps).

The LRU starts its eigenvalues on the ring 0.9 <= |λ| <= 0.999 with phases up to π/10
and trains them at half the learning rate (``optim.recurrent_lr``), as the LRU paper
does for long-range tasks. A config rejects settings its cell does not read and a
sweep grid has no per-value settings, so ``finalize_config`` derives them for
``model.cell=lru`` alone; the other cells keep their defaults.

Expected (measured on 2 shared CPU cores): a score against the memoryless baseline
10 ln 8 / (T + 20) = 0.0400 nats per step (T = 520) or 0.0204 (T = 1,020); the
per-cell test losses over the seeds, the wall times and the curves are in
experiments/README.md, "Linear recurrences against a GRU", which says which cells
lose to the baseline. The same command resumes an interrupted sweep;
``jaxrnn sweep linear_copying task.delay=1000 train.steps=600`` is the T = 1,020 run.
"""

import math

from jaxrnn.training import (
    Config,
    ModelConfig,
    OptimConfig,
    TrainConfig,
    apply_overrides,
    load_experiment,
)

copying = load_experiment("copying_gru").module
get_data, get_model = copying.get_data, copying.get_model
get_objective, get_baseline = copying.get_objective, copying.get_baseline
Copying = copying.Copying


def get_config(smoke: bool = False) -> Config:
    """The sweep's base run (a GRU); ``smoke``: a seconds-long run with delay 5 and H = 8."""
    return Config(
        name="linear_copying",
        seed=0,
        task=Copying(delay=5 if smoke else 500),
        model=ModelConfig(cell="gru", hidden_size=8 if smoke else 64),
        optim=OptimConfig(name="adam", learning_rate=2e-3, clip_norm=1.0),
        train=TrainConfig(
            steps=20 if smoke else 1200,
            batch_size=8 if smoke else 32,
            eval_every=10 if smoke else 100,
            eval_batch_size=16 if smoke else 256,
            eval_batches=1,
            checkpoint_every=10 if smoke else 100,
            log_every=1 if smoke else 10,
            best_metric="loss",
        ),
    )


def get_sweep() -> dict:
    """minGRU, LRU and GRU × seeds 0, 1, 2 (each cell's seeds train as one program)."""
    return {"grid": {"model.cell": ["min_gru", "lru", "gru"]}, "seeds": [0, 1, 2]}


# The LRU's long-range settings (Orvieto et al. 2023, Sec. 3.3 and App. D): eigenvalues
# on the ring 0.9 <= |λ| <= 0.999, phases up to π/10, the recurrence trained at half the
# learning rate. A config rejects settings its cell does not read, and a sweep grid has
# no per-value settings, so they are derived here, after the overrides, for the LRU only.
LRU_LONG_RANGE = {"model.r_min": 0.9, "model.r_max": 0.999, "model.max_phase": math.pi / 10}


def finalize_config(config: Config) -> Config:
    """For ``model.cell=lru``: the long-range ring and phases (unless overridden) and
    ``optim.recurrent_lr`` = half the learning rate (unless set)."""
    if config.model.cell != "lru":
        return config
    defaults = ModelConfig(cell="lru")
    overrides = [
        f"{key}={value!r}"
        for key, value in LRU_LONG_RANGE.items()
        if getattr(config.model, key.split(".")[1]) == getattr(defaults, key.split(".")[1])
    ]
    if config.optim.recurrent_lr is None:
        overrides.append(f"optim.recurrent_lr={config.optim.learning_rate / 2!r}")
    return apply_overrides(config, overrides)
