"""Test settings: float64 available, strict dtype promotion, a key fixture.

Strict promotion turns every silent float32/float64 or bfloat16/float32 mix
inside jaxrnn into an error, so dtype handling is tested by every test.
"""

import jax
import pytest

jax.config.update("jax_enable_x64", True)
jax.config.update("jax_numpy_dtype_promotion", "strict")


@pytest.fixture
def key():
    return jax.random.key(0)


@pytest.fixture
def standard_dtype_promotion():
    """Standard promotion for tests that run optax: its own code (Adam's bias
    correction) is not strict-promotion clean. Use with
    ``pytest.mark.usefixtures("standard_dtype_promotion")``."""
    with jax.numpy_dtype_promotion("standard"):
        yield
