"""Test settings: float64 available, strict dtype promotion, a compilation cache, a key fixture.

Strict promotion turns every silent float32/float64 or bfloat16/float32 mix
inside jaxrnn into an error, so dtype handling is tested by every test.

Many tests train the same smoke-sized programs (in this process, in the other
xdist worker and in the ``jaxrnn`` subprocesses they start), so compiled programs
are kept in JAX's persistent compilation cache, shared through the environment.
A cached program is the same executable, so results do not depend on a hit.
"""

import contextlib
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import jax
import pytest

os.environ.setdefault(
    "JAX_COMPILATION_CACHE_DIR", str(Path(tempfile.gettempdir()) / "jaxrnn-tests-xla-cache")
)
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.2")
jax.config.update("jax_compilation_cache_dir", os.environ["JAX_COMPILATION_CACHE_DIR"])
jax.config.update(
    "jax_persistent_cache_min_compile_time_secs",
    float(os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"]),
)
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


@pytest.fixture
def held_elsewhere():
    """``with held_elsewhere(directory) as pid:``: a child process holds the directory's
    run lock (``jaxrnn.training.liveness.hold``) until the block ends. (Holds within one
    process are re-entrant, so another process is needed to be refused.)"""
    return _held_by_a_child


@contextlib.contextmanager
def _held_by_a_child(directory: Path):
    code = (
        "import sys; from jaxrnn.training import liveness\n"
        f"with liveness.hold([{str(directory)!r}]):\n"
        "    print('held', flush=True); sys.stdin.read()"
    )
    child = subprocess.Popen(
        [sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert child.stdout.readline().strip() == "held"
        yield child.pid
    finally:
        child.kill()
        child.wait()
