"""jaxrnn train configs/copying_gru.py

A GRU (H = 128) on the copying-memory task with delay 50 (Arjovsky, Shah, Bengio
2016, Sec. 4.1): remember 10 symbols out of 8, output them 50 steps later
(T = 70), Adam 2e-3 after global-norm clipping at 1.

Expected (measured on 2 CPU cores, seed 0): the per-step cross-entropy leaves the
memoryless baseline 10 log(8) / 70 = 0.297 and ends at 0.062 after the 4,000 steps
(0.089 bits per token, 97.6% of all tokens right, i.e. about 83% of the copied
symbols); about 5 minutes.
"""

from jaxrnn.training.config import Config, ModelConfig, OptimConfig, TaskConfig, TrainConfig


def get_config(smoke: bool = False) -> Config:
    """The copying experiment; ``smoke``: a seconds-long run with delay 5 and H = 8."""
    return Config(
        name="copying_gru",
        seed=0,
        task=TaskConfig(name="copying", length=5 if smoke else 50),
        model=ModelConfig(cell="gru", hidden_size=8 if smoke else 128),
        optim=OptimConfig(name="adam", learning_rate=2e-3, clip_norm=1.0),
        train=TrainConfig(
            steps=20 if smoke else 4000,
            batch_size=8 if smoke else 64,
            eval_every=10 if smoke else 250,
            eval_batch_size=16 if smoke else 500,
            eval_batches=1 if smoke else 2,
            checkpoint_every=10 if smoke else 1000,
            best_metric="loss",
        ),
    )
