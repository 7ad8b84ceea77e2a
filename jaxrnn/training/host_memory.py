"""Keep XLA:CPU's per-call buffers mapped from one call to the next (glibc's malloc).

XLA:CPU allocates the buffers of each call of a compiled program (one block for every
intermediate of the step, and the outputs) with ``posix_memalign`` on the thread that
runs the call, and frees them when the call ends. Under glibc's defaults a block over
32 MiB, or over 64 MiB on any thread but the main one (a thread's arena cannot hold
more), comes from ``mmap`` and goes back with ``munmap``. So every call writes to
freshly mapped pages, which the kernel faults in and zeroes one 4 KiB page at a time:
the LSTM training step of ``bench/peers.py`` at (B, T, I, H) = (32, 100, 64, 512) maps a
90 MB block and takes 22,000 page faults a call, 42,000 at (256, 50, 32, 256); about a
fifth of the step's CPU time is then spent in the kernel. PyTorch keeps freed blocks
in its caching allocator and pays this once.

:func:`reuse_host_memory` sets three of glibc's parameters (``mallopt(3)``): one arena
for every thread, no ``mmap`` for large blocks, and no trimming of the heap's top. A
freed block then stays mapped and a later call reuses it: after a few calls, no page
faults. It must run before JAX starts its threads (before the first computation): a
thread keeps the arena it first allocated from. ``jaxrnn train --reuse-host-memory``
(and ``sweep``, ``eval``, ``sample``) call it.

It is not the default because of what it costs: the process keeps the heap it has
grown, and blocks freed while the next call's are already live (JAX frees an array
when Python drops it) leave gaps that only later calls fill. The peak resident memory
of that LSTM step went from 559 to 760 MB, and at (256, 50, 32, 256) from 605 MB to
1.4 GB; the step got 1.2 to 1.5x faster (``bench/README.md``). And where a step's
buffers are small (H = 128 at B = 32) it is 10-30 % slower: every thread then takes the
one arena's lock. Worth it for steps that need tens of MB or more, with memory to
spare beside the model.
"""

import ctypes
import platform

# mallopt(3) parameter numbers, from glibc's malloc.h.
M_TRIM_THRESHOLD, M_MMAP_MAX, M_ARENA_MAX = -1, -4, -8
_SETTINGS = {
    M_ARENA_MAX: 1,  # every thread allocates from the main heap, which can grow past 64 MiB
    M_MMAP_MAX: 0,  # large blocks from the heap too, never from mmap
    M_TRIM_THRESHOLD: 2**31 - 1,  # (mallopt takes an int) freed memory stays mapped
}


def available() -> bool:
    """Whether this process runs on glibc, whose malloc :func:`reuse_host_memory` sets."""
    return platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"


def reuse_host_memory() -> bool:
    """Set glibc's malloc so that freed blocks stay mapped and are reused (see the
    module docstring); returns whether it did. A no-op returning False where the C
    library is not glibc (macOS, musl)."""
    if not available():
        return False
    libc = ctypes.CDLL("libc.so.6")
    return all(libc.mallopt(param, value) == 1 for param, value in _SETTINGS.items())
