"""The built-in experiments: files found by name (``jaxrnn train adding_lstm``) through
:func:`jaxrnn.training.experiment.load`, installed as ``jaxrnn.configs``; never imported."""
