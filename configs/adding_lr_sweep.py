"""jaxrnn sweep configs/adding_lr_sweep.py

A learning-rate sweep, the kind every paper's appendix reports: a GRU (H = 32) on the
adding problem with T = 50 (Hochreiter & Schmidhuber 1997, Sec. 5.4), Adam after
global-norm clipping at 1, batch 32, 1,500 steps; ``get_sweep()`` crosses four peak
learning rates with three seeds, and the twelve runs train as one compiled program.

Expected (measured on 2 CPU cores): see the "Sweeps" section of experiments/README.md
for the table (mean ± std over seeds of the final test MSE per learning rate) and the
plots; `jaxrnn train configs/adding_lr_sweep.py` runs the base config alone.
"""

from jaxrnn.training.config import Config, ModelConfig, OptimConfig, TaskConfig, TrainConfig


def get_config(smoke: bool = False) -> Config:
    """The base run of the sweep; ``smoke``: a seconds-long run with T = 10 and H = 8."""
    return Config(
        name="adding_lr_sweep",
        seed=0,
        task=TaskConfig(name="adding", length=10 if smoke else 50),
        model=ModelConfig(cell="gru", hidden_size=8 if smoke else 32),
        optim=OptimConfig(name="adam", learning_rate=3e-3, clip_norm=1.0),
        train=TrainConfig(
            steps=20 if smoke else 1500,
            batch_size=8 if smoke else 32,
            eval_every=10 if smoke else 100,
            eval_batch_size=16 if smoke else 500,
            eval_batches=1 if smoke else 2,
            checkpoint_every=10 if smoke else 500,
            best_metric="loss",
        ),
    )


def get_sweep() -> dict:
    """Four peak learning rates (half a decade apart) × three seeds."""
    return {
        "grid": {"optim.learning_rate": ["3e-4", "1e-3", "3e-3", "1e-2"]},
        "seeds": [0, 1, 2],
    }
