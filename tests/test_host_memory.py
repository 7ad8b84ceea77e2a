"""jaxrnn.training.host_memory: with it, calls whose buffers need more than 64 MiB reuse
pages that earlier calls mapped; with glibc's defaults every call faults its pages in
again. Counted in page faults (``getrusage``), not in time."""

import subprocess
import sys

import numpy as np
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
faults = []
for _ in range(20):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    f(x).block_until_ready()
    faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
print(*faults)
"""


def _faults_per_call(mode: str) -> list[int]:
    out = subprocess.run(
        [sys.executable, "-c", CODE, mode], capture_output=True, text=True, check=True
    )
    return [int(v) for v in out.stdout.split()[-20:]]


def test_freed_blocks_stay_mapped_and_the_next_call_reuses_them():
    default, reuse = _faults_per_call("default"), _faults_per_call("reuse")
    # 70 MiB is 18,000 pages of 4 KiB: glibc maps it afresh on every call (fewer faults
    # where the kernel backs it with huge pages; the bound below holds then too).
    # Per call, not summed: under load a late free can still make the heap grow once
    # (one call of 20 faulted its 18,000 pages in a CI run), while a typical call faults
    # none. So the median call must reuse its pages, and most calls must.
    bound = max(200.0, float(np.median(default)) / 10)
    assert np.median(reuse) < bound, (default, reuse)
    assert sum(v >= bound for v in reuse) <= 3, (default, reuse)
