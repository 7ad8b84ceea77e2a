"""Placing training state and batches on every device with ``jax.sharding``.

Every run is a group of ``n >= 1`` members (a solo run is a group of one), laid
out over a 2-D ``jax.sharding.Mesh`` of all devices with axes ``("members",
"data")`` (:func:`member_sharding`); ``jax.jit`` partitions the step (plain GSPMD).

* **Member parallelism**: arrays stacked over members (``[n, ...]``: params,
  optimizer state, keys, hyperparameters) are split along the ``members`` axis.
  Members never interact, so this needs no communication.
* **Data parallelism** within a member: each member's batch ``[B, ...]`` is split
  along ``data`` (:func:`batch_spec`), its state replicated there. The gradient is
  a mean over the batch, so XLA inserts the all-reduce; the result equals
  single-device training up to the order of floating-point summation. A solo run
  on ``D`` devices is all data parallelism (a ``(1, D)`` mesh), a sweep of a
  multiple of ``D`` members all member parallelism.

Multi-host: after ``jax.distributed.initialize()`` (see :func:`initialize`),
``jax.devices()`` lists the devices of every process and the same code runs
unchanged; every process computes the same host-side values (batches are pure
functions of ``(seed, step)``) and :func:`place` keeps the shards that live on
its own devices. Only the primary process (:func:`is_primary`) writes logs.

Example::

    sharding = member_sharding(len(members))
    state = place(stacked_states, sharding)      # [n, ...] leaves, split over "members"

References:
    Xu et al. 2021, "GSPMD: General and Scalable Parallelization for ML
    Computation Graphs", arXiv:2105.04663.
    JAX, "Distributed arrays and automatic parallelization":
    https://docs.jax.dev/en/latest/notebooks/Distributed_arrays_and_automatic_parallelization.html
    JAX, "Multi-process environments":
    https://docs.jax.dev/en/latest/multi_process.html
"""

import logging
import math
import os

import jax
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import Mesh, NamedSharding, PartitionSpec

log = logging.getLogger("jaxrnn")

# The two mesh axes: members of a group, and data parallelism within a member.
MEMBERS = "members"
DATA = "data"


def data_ways(sharding: NamedSharding) -> int:
    """How many devices split each member's batch (the ``data`` axis of the mesh)."""
    return sharding.mesh.shape[DATA]


def check_batch_size(batch_size: int, sharding: NamedSharding) -> None:
    """Refuse a batch that does not split evenly over the ``data`` axis.

    Raises:
        ValueError: naming ``train.batch_size``, the device count and what to set.
    """
    ways = data_ways(sharding)
    if not isinstance(batch_size, int) or batch_size < 1 or batch_size % ways:
        raise ValueError(
            f"batch_size: data-parallel training splits each member's batch evenly over "
            f"{ways} devices, so it must be a positive multiple of {ways}; got {batch_size!r}. "
            f"Set train.batch_size to a multiple of {ways} (or run on fewer devices)."
        )


def batch_spec(sharding: NamedSharding) -> NamedSharding:
    """One member's batch ``[B, ...]`` split along ``data`` (inside a member-mapped step)."""
    return NamedSharding(sharding.mesh, PartitionSpec(DATA))


def member_sharding(n: int) -> NamedSharding:
    """Split the leading (member) axis of ``[n, ...]`` arrays over the devices.

    With ``D`` devices, the members are split ``g = gcd(n, D)`` ways and each of
    the ``g`` blocks of ``n / g`` members lives on ``D / g`` devices, which split
    its batches (data parallelism): the devices form a ``(g, D / g)`` mesh with
    axes ``("members", "data")``. So ``n = 1`` is plain data parallelism over all
    devices, and ``n`` a multiple of ``D`` one block per device. No padding
    members are needed, so a sweep trains the same members on any number of
    devices (with the same results, up to floating-point rounding).

    Args:
        n: the size of the member axis, >= 1.

    Returns:
        ``NamedSharding(Mesh(devices.reshape(g, D // g), ("members", "data")),
        P("members"))``.

    Raises:
        ValueError: if ``n`` is not a positive int.
    """
    if not isinstance(n, int | np.integer) or isinstance(n, bool) or n < 1:
        raise ValueError(f"n: expected the number of members, an int >= 1; got {n!r}")
    devices = np.asarray(jax.devices())
    ways = math.gcd(int(n), devices.size)
    if n > 1 and ways < devices.size:
        # A warning, not info: the CLI shows warnings only, and this layout costs time.
        # On 2 CPU devices, 3 members took 21.5 s against 11.1 s on one (bench/README.md).
        log.warning(
            "%d members do not split evenly over %d devices: %d block(s) of %d members, "
            "each block's batches split over %d devices (data parallelism, often slower "
            "than one device per block); a member count that is a multiple of %d avoids it",
            n,
            devices.size,
            ways,
            n // ways,
            devices.size // ways,
            devices.size,
        )
    mesh = Mesh(devices.reshape(ways, devices.size // ways), (MEMBERS, DATA))
    return NamedSharding(mesh, PartitionSpec(MEMBERS))


def _is_key(x) -> bool:
    return isinstance(x, jax.Array) and jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key)


def place(tree, sharding: NamedSharding):
    """Lay out every leaf of ``tree`` with ``sharding``, as global arrays.

    Leaves are NumPy arrays, Python scalars or JAX arrays (typed PRNG keys
    included). Each process must pass the same values (on several processes
    ``jax.device_put`` checks this): each keeps the shards of its own devices.

    Args:
        tree: a pytree of host-side or single-process arrays.
        sharding: e.g. :func:`member_sharding`.

    Returns:
        ``tree`` with every leaf a ``jax.Array`` of sharding ``sharding``.
    """

    def leaf(x):
        if _is_key(x):
            # device_put refuses typed keys for shardings spanning several
            # processes: move the raw key data and rewrap it.
            return jax.random.wrap_key_data(
                leaf(jax.random.key_data(x)), impl=jax.random.key_impl(x)
            )
        if (
            isinstance(x, jax.Array)
            and x.is_fully_addressable
            and not sharding.is_fully_addressable
        ):
            # A committed array of this process cannot be device_put onto other
            # processes' devices; its host copy (the same on every process) can.
            x = np.asarray(x)
        return jax.device_put(x, sharding)

    return jax.tree.map(leaf, tree)


def fetch(tree):
    """Copy every leaf of ``tree`` to the host as a NumPy array, whole, on every process.

    ``jax.device_get`` needs every shard on this process's devices; a member- or
    batch-sharded array of a multi-process run has shards on other processes, so
    those are gathered first (``multihost_utils.process_allgather``).

    Args:
        tree: a pytree of ``jax.Array`` (any sharding) or host values.

    Returns:
        ``tree`` with NumPy leaves of the global shapes.
    """

    def leaf(x):
        if isinstance(x, jax.Array) and not x.is_fully_addressable:
            return multihost_utils.process_allgather(x, tiled=True)
        return np.asarray(jax.device_get(x))

    return jax.tree.map(leaf, tree)


def is_primary() -> bool:
    """Whether this is process 0, the one that writes logs, status files and plots."""
    return jax.process_index() == 0


def initialize() -> bool:
    """Join a multi-process run if the environment describes one; returns whether it did.

    ``jax.distributed.initialize()`` reads ``JAX_COORDINATOR_ADDRESS`` itself and
    detects Slurm, Open MPI and Cloud TPU clusters; this also reads the number
    of processes and this process's id from ``JAX_NUM_PROCESSES`` and
    ``JAX_PROCESS_ID``, so that a run on plain machines needs only three
    environment variables. Must be called before any other JAX call. On CPU the
    cross-process collectives are JAX's default, gloo.

    Example (two processes on one machine)::

        JAX_COORDINATOR_ADDRESS=localhost:12345 JAX_NUM_PROCESSES=2 JAX_PROCESS_ID=0 jaxrnn ...
        JAX_COORDINATOR_ADDRESS=localhost:12345 JAX_NUM_PROCESSES=2 JAX_PROCESS_ID=1 jaxrnn ...
    """
    names = ("JAX_COORDINATOR_ADDRESS", "JAX_NUM_PROCESSES", "JAX_PROCESS_ID")
    if not any(name in os.environ for name in names):
        return False
    missing = [name for name in names if name not in os.environ]
    if missing:
        raise ValueError(
            f"environment: a multi-process run needs all of {', '.join(names)}; "
            f"missing {', '.join(missing)}"
        )
    jax.distributed.initialize(
        os.environ["JAX_COORDINATOR_ADDRESS"],
        num_processes=int(os.environ["JAX_NUM_PROCESSES"]),
        process_id=int(os.environ["JAX_PROCESS_ID"]),
    )
    return True
