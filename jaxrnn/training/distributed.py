"""Placing training state and batches on every device with ``jax.sharding``.

Two kinds of parallelism, both plain GSPMD: the arrays are laid out over a
``jax.sharding.Mesh`` of all devices and ``jax.jit`` partitions the step.

* **Data parallelism** (one model): each batch's leading (batch) axis is split
  over the devices (:func:`data_sharding`), the train state is replicated
  (:func:`replicated`). The gradient is a mean over the batch, so XLA inserts
  the all-reduce; the result equals single-device training up to the order of
  floating-point summation.
* **Member parallelism** (a sweep): arrays stacked over sweep members
  (``[n, ...]``: params, optimizer state, keys, hyperparameters and the
  ``[n, B, ...]`` batches) are split along the member axis
  (:func:`member_sharding`). Members never interact, so the step needs no
  communication at all.

Multi-host: after ``jax.distributed.initialize()`` (see :func:`initialize`),
``jax.devices()`` lists the devices of every process and the same code runs
unchanged; every process computes the same host-side values (batches are pure
functions of ``(seed, step)``) and :func:`place` keeps the shards that live on
its own devices. Only the primary process (:func:`is_primary`) writes logs.

Example::

    state = place(init_state(cfg, exp), replicated())
    next_batch = jax.jit(task.batch, static_argnums=2,
                         out_shardings=data_sharding(batch_size))

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

# The one mesh axis of data parallelism, and the two of member parallelism.
DEVICES = "devices"
MEMBERS = "members"
REPLICAS = "replicas"


def device_mesh() -> Mesh:
    """A 1-D mesh (axis ``"devices"``) over ``jax.devices()``: all devices of all processes."""
    return Mesh(np.asarray(jax.devices()), (DEVICES,))


def replicated() -> NamedSharding:
    """Every device holds the whole array (the train state under data parallelism)."""
    return NamedSharding(device_mesh(), PartitionSpec())


def data_sharding(batch_size: int) -> NamedSharding:
    """Split the leading (batch) axis of ``[B, ...]`` arrays evenly over all devices.

    Args:
        batch_size: the global batch size ``B``; it must be a multiple of the
            device count ``D`` (each device then holds ``B / D`` examples).

    Returns:
        ``NamedSharding(device_mesh(), P("devices"))``; trailing axes are not split.

    Raises:
        ValueError: if ``batch_size`` is not a positive multiple of ``D``.
    """
    count = jax.device_count()
    if not isinstance(batch_size, int) or batch_size < 1 or batch_size % count:
        raise ValueError(
            f"batch_size: data-parallel training splits each batch evenly over the "
            f"{count} devices, so it must be a positive multiple of {count}; got "
            f"{batch_size!r}. Set train.batch_size to a multiple of {count} (or run on "
            f"fewer devices)."
        )
    return NamedSharding(device_mesh(), PartitionSpec(DEVICES))


def member_sharding(n: int) -> NamedSharding:
    """Split the leading (member) axis of ``[n, ...]`` arrays over the devices.

    With ``D`` devices, the members are split ``g = gcd(n, D)`` ways and each of
    the ``g`` blocks of ``n / g`` members is replicated over ``D / g`` devices:
    the devices form a ``(g, D / g)`` mesh with axes ``("members", "replicas")``.
    So ``n`` a multiple of ``D`` gives one block per device (no redundant work);
    otherwise the computation is still correct, only partly redundant, and this
    is logged. No padding members are needed, so a sweep trains the same members
    on any number of devices (with the same results, up to floating-point
    rounding); choose group sizes that are multiples of ``D`` for full speed.

    Args:
        n: the size of the member axis, >= 1.

    Returns:
        ``NamedSharding(Mesh(devices.reshape(g, D // g), ("members", "replicas")),
        P("members"))``.

    Raises:
        ValueError: if ``n`` is not a positive int.
    """
    if not isinstance(n, int | np.integer) or isinstance(n, bool) or n < 1:
        raise ValueError(f"n: expected the number of members, an int >= 1; got {n!r}")
    devices = np.asarray(jax.devices())
    ways = math.gcd(int(n), devices.size)
    if ways < devices.size:
        log.info(
            "member axis of size %d split %d ways over %d devices (each block replicated "
            "on %d devices); a multiple of %d members would use every device",
            n,
            ways,
            devices.size,
            devices.size // ways,
            devices.size,
        )
    mesh = Mesh(devices.reshape(ways, devices.size // ways), (MEMBERS, REPLICAS))
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
        sharding: e.g. :func:`replicated`, :func:`data_sharding` or :func:`member_sharding`.

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
