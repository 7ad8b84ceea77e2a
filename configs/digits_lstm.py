"""jaxrnn train configs/digits_lstm.py

An LSTM (H = 128) reads scikit-learn's 8×8 handwritten digits row by row (T = 8,
8 pixels a step) and classifies them from its last state; 1,438 training and
359 test images (a fixed split). Adam 3e-3 after global-norm clipping at 1.
Needs scikit-learn (a runtime dependency).

Expected (measured on 2 CPU cores, seed 0): test accuracy 98.3% (chance: 10%),
cross-entropy 0.048, after the 1,500 steps (~67 epochs), in about 40 s.
``task.pixelwise=true`` reads the pixels one by one (T = 64, Le et al. 2015's
pixel-MNIST protocol at small scale): slower, lower.
"""

from jaxrnn.training.config import Config, ModelConfig, OptimConfig, TaskConfig, TrainConfig


def get_config(smoke: bool = False) -> Config:
    """The digits experiment; ``smoke``: a seconds-long run with H = 8."""
    return Config(
        name="digits_lstm",
        seed=0,
        task=TaskConfig(name="digits", pixelwise=False),
        model=ModelConfig(cell="lstm", hidden_size=8 if smoke else 128),
        optim=OptimConfig(name="adam", learning_rate=3e-3, clip_norm=1.0),
        train=TrainConfig(
            steps=20 if smoke else 1500,
            batch_size=8 if smoke else 64,
            eval_every=10 if smoke else 100,
            # One batch of 500 takes the whole 359-image test split.
            eval_batch_size=16 if smoke else 500,
            eval_batches=1,
            checkpoint_every=10 if smoke else 500,
            best_metric="accuracy",
        ),
    )
