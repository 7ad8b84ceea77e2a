"""Experiment configs: loaded by path with ``jaxrnn.training.config.load``, never imported."""
