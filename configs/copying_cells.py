"""jaxrnn sweep copying_cells

An LSTM with forget-gate bias 1 and a GRU (H = 128) on copying memory (Arjovsky, Shah,
Bengio 2016, Sec. 4.1): ten symbols out of eight, a delimiter after ``task.delay``
steps, the symbols to be written in the last ten steps (T = delay + 20). Delay 100 by
default (``task.delay=200`` and ``500`` for the other lengths;
``--grid model.preset=lstm,gru,chrono_lstm`` adds the LSTM with chrono initialisation,
Tallec & Ollivier 2018, ``T_max = T``). Adam 1e-3 after global-norm clipping at 1,
batch 64, 5,000 steps, validation every 250 steps; the checkpoint of lowest
validation cross-entropy is scored. The sweep: both cells × seeds 0, 1, 2. The
objective reports, beside the per-step cross-entropy, ``copied``: the share of the
ten copied symbols written right.

Expected (measured on 2 CPU cores, 2 December 2026, delay 100): test cross-entropy GRU
0.096 ± 0.006 nats per step with 53 ± 3% of the symbols copied, LSTM 0.1542 ± 0.0001
with 19 ± 2%, both below the memoryless strategy's 10 ln 8 / (delay + 20) = 0.1733
(0.0945 at delay 200, 0.0400 at 500), which copies 1/8; 35 minutes for the sweep
(experiments/README.md, "Copying memory: LSTM and GRU at delays 100, 200, 500").
"""

import jax.numpy as jnp

from jaxrnn import tasks
from jaxrnn.training import Config, OptimConfig, TrainConfig, load_experiment

cells = load_experiment("adding_cells").module
copying = load_experiment("copying_gru").module
Copying, NUM_SYMBOLS, COPY_LENGTH = copying.Copying, copying.NUM_SYMBOLS, copying.COPY_LENGTH
get_data, get_model, get_baseline = copying.get_data, copying.get_model, copying.get_baseline
LABELS = {"model.preset": "cell", "loss": "test nats per step", "copied": "copied symbols right"}


def finalize_config(config: Config) -> Config:
    """The preset's settings (``adding_cells.PRESETS``), with ``T = delay + 20``."""
    return cells.apply_preset(config, config.task.delay + 2 * COPY_LENGTH)


def get_config(smoke: bool = False) -> Config:
    """The sweep's base run (the LSTM); ``smoke``: a seconds-long run with delay 5, H = 8."""
    return Config(
        name="copying_cells",
        seed=0,
        task=Copying(delay=5 if smoke else 100),
        model=cells.Cells(hidden_size=8 if smoke else 128),
        optim=OptimConfig(name="adam", learning_rate=1e-3, clip_norm=1.0),
        train=TrainConfig(
            steps=20 if smoke else 5000,
            batch_size=8 if smoke else 64,
            eval_every=10 if smoke else 250,
            eval_batch_size=16 if smoke else 500,
            eval_batches=1 if smoke else 2,
            checkpoint_every=10 if smoke else 500,
            best_metric="loss",
        ),
    )


def copied(batch: tasks.Batch):
    """The last ten steps, where the symbols are written: ``[B, T]`` bool."""
    return jnp.zeros(batch.mask.shape, bool).at[:, -COPY_LENGTH:].set(True)


def get_objective(config: Config, model, data) -> tasks.Objective:
    """Per-step cross-entropy, accuracy and bits, and ``copied``: the accuracy over the
    last ten steps."""
    return tasks.tokens(model, spans={"copied": copied})


def get_sweep() -> dict:
    """LSTM and GRU × seeds 0, 1, 2 (each cell's seeds train as one program)."""
    return {"grid": {"model.preset": ["lstm", "gru"]}, "seeds": [0, 1, 2]}
