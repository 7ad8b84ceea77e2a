"""jaxrnn.training.host_memory: with it, calls whose buffers need more than 64 MiB reuse
pages that earlier calls mapped; with glibc's defaults every call faults its pages in
again. Counted in page faults (``getrusage``), not in time."""

import subprocess
import sys

import pytest

from jaxrnn.training import host_memory

pytestmark = pytest.mark.skipif(not host_memory.available(), reason="glibc only")

CODE = """
import resource, sys
if sys.argv[1] == "reuse":
    from jaxrnn.training.host_memory import reuse_host_memory
    assert reuse_host_memory()
import jax, jax.numpy as jnp
x = jnp.ones((18_000, 1024))  # 70 MiB, and so is each call's output
f = jax.jit(lambda x: x * 2)
for _ in range(30):  # the heap grows for the first ~15 calls (see the module)
    f(x).block_until_ready()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(5):
    f(x).block_until_ready()
print((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 5)
"""


def _faults_per_call(mode: str) -> float:
    out = subprocess.run(
        [sys.executable, "-c", CODE, mode], capture_output=True, text=True, check=True
    )
    return float(out.stdout.split()[-1])


def test_freed_blocks_stay_mapped_and_the_next_call_reuses_them():
    default, reuse = _faults_per_call("default"), _faults_per_call("reuse")
    # 70 MiB is 18,000 pages of 4 KiB: glibc maps it afresh on every call (fewer faults
    # where the kernel backs it with huge pages; the bound below holds then too).
    assert reuse < max(200.0, default / 10), (default, reuse)
