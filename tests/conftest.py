"""Test settings: float64 available, strict dtype promotion, a compilation cache, a key fixture.

Strict promotion turns every silent float32/float64 or bfloat16/float32 mix
inside jaxrnn into an error, so dtype handling is tested by every test.

Many tests train the same smoke-sized programs (in this process, in the other
xdist worker and in the ``jaxrnn`` subprocesses they start), so compiled programs
are kept in JAX's persistent compilation cache, shared through the environment.
A cached program is the same executable, so results do not depend on a hit.
Subprocesses cache every program (a warm smoke run of adding_lstm: 5.9 s to 4.8 s);
this process only those that take 0.2 s or more, since its thousands of tiny test
programs are rarely compiled again anywhere else.

XLA:CPU's backend optimisations are off for the whole suite (here and in every
subprocess, through ``XLA_FLAGS``): the tests run small shapes, where compiling is
most of the time, and unoptimised code computes the same function (to rounding the
tests' tolerances allow; bit-exact checks compare programs built alike). With the
subprocess caching above, the suite went from 22:49 to 13:42 (summed test time 2680 s
to 1595 s; cold cache, 2 workers); the fused engine's variant tests from 137 s to 48 s.
Benchmarks' quick modes use the same flags (bench/engines.py, bench/gpu.sh).
"""

import contextlib
import os
import subprocess
import sys
import tempfile
from pathlib import Path

FAST_COMPILE = "--xla_backend_optimization_level=0 --xla_llvm_disable_expensive_passes=true"
# Before JAX creates its CPU backend, which reads XLA_FLAGS once.
os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {FAST_COMPILE}".strip()
os.environ.setdefault(
    "JAX_COMPILATION_CACHE_DIR", str(Path(tempfile.gettempdir()) / "jaxrnn-tests-xla-cache")
)
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")

import jax  # noqa: E402
import pytest  # noqa: E402

jax.config.update("jax_compilation_cache_dir", os.environ["JAX_COMPILATION_CACHE_DIR"])
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.2)
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
