"""Training: configs, optimizers, the train step, checkpoints and the run loop."""
