"""Who is running a run directory, and whether that process is still alive.

**One writer per directory.** A run (a solo run, or a sweep's group of members) holds
an exclusive lock on each of its directories for as long as it runs: ``.lock``, an
advisory ``fcntl.flock`` on an open file, which also records the holder's host and pid.
A second process started on the same directory (a double submission on a cluster, a
second terminal) is refused at once, and told who holds it. The kernel releases the
lock when its process ends, however it ends (``kill -9`` included), so a dead run's
lock is simply taken over: there are no stale lock files to clean up. On NFS, Linux
maps ``flock`` to POSIX locks, which NFSv4 arbitrates across hosts.

**A status that shows who is alive.** While a run trains, its ``status.json`` carries
``host``, ``pid``, ``started``, ``heartbeat`` (the Unix time it was written),
``heartbeat_every`` and the latest ``step`` and ``last_checkpoint``. A background
thread rewrites it (atomically, see :func:`jaxrnn.training.rundir.write_json`) every
``HEARTBEAT_SECONDS``, and the loop at every checkpoint and change of status; never at
every step. A ``running`` status is believed only while its process lives:

* read on the host that wrote it: while a process with its pid exists and its
  heartbeat is younger than ``STALE_AFTER`` intervals (a pid may be reused);
* read from another host: while its heartbeat is younger than ``STALE_AFTER``
  intervals (two minutes).

Otherwise the run has *stopped*: killed, or its machine lost. Running the same
command resumes it from its last checkpoint.

**A status that names a checkpoint which no longer restores** (its final checkpoint
truncated, say) is corrected by the next ``jaxrnn runs`` or ``jaxrnn train``
(:func:`verified`): it becomes ``stopped`` at the latest checkpoint that still reads
back, with ``damaged`` saying which one did not and why, and the same command resumes it
from there and writes the lost steps again (identically: a resume is bit-exact).
"""

import contextlib
import fcntl
import os
import socket
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from jaxrnn.training import distributed, rundir

HEARTBEAT_SECONDS = 30.0
# A heartbeat this many intervals old is dead: long enough for a slow shared file
# system, short enough to see a lost machine within minutes.
STALE_AFTER = 4
LOCK = ".lock"


class BusyError(rundir.RunDirError):
    """Another live process holds the run directory."""


def identity() -> dict:
    """This process, as a status records it: host and pid."""
    return {"host": socket.gethostname(), "pid": os.getpid()}


# The directories this process holds: a hold nested in another (``extend`` writes the
# lineage, then trains through the loop) keeps the outer lock rather than refusing itself.
_held: set[Path] = set()


@contextlib.contextmanager
def hold(directories: Sequence[Path]) -> Iterator[None]:
    """Hold the lock of every directory (created if missing) until the block ends.

    Only process 0 of a multi-process run locks (the others never write). Re-entrant:
    a directory this process already holds is held on.

    Raises:
      BusyError: a directory is held by another live process, named by host and pid.
    """
    if not distributed.is_primary():
        yield
        return
    with contextlib.ExitStack() as stack:
        for directory in directories:
            directory = Path(directory)
            directory.mkdir(parents=True, exist_ok=True)
            if directory.resolve() in _held:
                continue
            f = stack.enter_context((directory / LOCK).open("a+"))
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                f.seek(0)
                holder = f.read().strip() or "another process"
                raise BusyError(
                    f"{directory}: in use by {holder}; one process at a time trains a run "
                    f"directory (wait for it to end, or stop it first)"
                ) from None
            f.seek(0)
            f.truncate()
            me = identity()
            f.write(f"pid {me['pid']} on host {me['host']}\n")
            f.flush()
            _held.add(directory.resolve())
            stack.callback(_held.discard, directory.resolve())
        yield


def is_alive(status: dict, now: float | None = None) -> bool:
    """Whether the process that wrote a ``running`` status still runs (module docstring)."""
    if "heartbeat" not in status:  # written by a jaxrnn before heartbeats
        return False
    now = time.time() if now is None else now
    fresh = now - status["heartbeat"] < STALE_AFTER * status["heartbeat_every"]
    if status["host"] != socket.gethostname():
        return fresh
    try:
        os.kill(status["pid"], 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, under another user
        pass
    return fresh


def describe(status: dict) -> str:
    """How ``jaxrnn runs`` shows a status: ``running`` only while its process lives."""
    kind, step = status["status"], status.get("step", 0)
    checkpoint = status.get("last_checkpoint")
    last = f"last checkpoint {checkpoint}" if checkpoint else "no checkpoint yet"
    if kind == "running" and not is_alive(status):
        return f"stopped at step {step} ({last}), resumable"
    if kind == "interrupted":
        return f"interrupted at step {step} ({last}), resumable"
    if kind == "stopped":  # corrected by ``verified``
        lost = status["damaged"]["checkpoint"]
        return f"stopped at step {step} ({last}; checkpoint {lost} no longer restores), resumable"
    return kind


# What a status says about the end of a run, which a rolled-back run no longer has.
_OUTCOME = ("final", "chosen_step", "best_validation", "stopped_early_at")


def verified(directory: Path, status: dict) -> dict:
    """``status``, corrected (and rewritten) if the checkpoint it names no longer restores.

    A status not of a live run names its latest checkpoint (``last_checkpoint``). When
    that one no longer reads back (:meth:`~jaxrnn.training.checkpoint.Checkpointer.damage`),
    the status becomes ``stopped`` at the latest checkpoint that does (step 0 if none),
    without the outcome of the run, and with ``damaged``: ``{"checkpoint", "error"}``.
    A directory that another process holds is left to that process.
    """
    named = status.get("last_checkpoint")
    if not named or (status["status"] == "running" and is_alive(status)):
        return status
    from jaxrnn.training.checkpoint import Checkpointer  # orbax: only when there is a checkpoint

    ckpt = Checkpointer(Path(directory) / "checkpoints")
    try:
        steps = ckpt.steps()
        problem = ckpt.damage(named) if named in steps else "it is missing"
        if problem is None:
            return status
        good = next((s for s in reversed(steps) if s != named and ckpt.damage(s) is None), 0)
    finally:
        ckpt.close()
    corrected = {k: v for k, v in status.items() if k not in _OUTCOME}
    corrected.pop("last_checkpoint")
    corrected.update(status="stopped", step=good, damaged={"checkpoint": named, "error": problem})
    if good:
        corrected["last_checkpoint"] = good
    try:
        with hold([Path(directory)]):
            rundir.write_status(Path(directory), **corrected)
    except BusyError:
        return status
    return corrected


class Heartbeat:
    """The ``status.json`` of a group's members, kept fresh while this process trains them.

    ``write`` records a member's status now (at a checkpoint, a change of status);
    ``done`` only notes the latest step, which the next heartbeat writes for the
    members still running. Use as a context manager: the thread runs inside it.
    """

    def __init__(self, every: float = HEARTBEAT_SECONDS):
        self.every = every
        started = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        self._base = {**identity(), "started": started, "heartbeat_every": every}
        self._status: dict[Path, dict] = {}  # a member's record, from its first write
        self._done = 0
        self._lock = threading.Lock()
        self._quit = threading.Event()
        self._thread = threading.Thread(target=self._beat, name="jaxrnn-heartbeat", daemon=True)

    def done(self, step: int) -> None:
        """Note ``step`` as the latest one trained; the next heartbeat writes it."""
        self._done = step

    def write(self, directory: Path, status: str | None = None, **fields) -> None:
        """Set ``directory``'s status and fields, and write its ``status.json`` now."""
        with self._lock:
            record = self._status.setdefault(Path(directory), dict(self._base))
            if status is not None:
                record["status"] = status
            record.update(fields)
            self._write(Path(directory))

    def _write(self, directory: Path) -> None:
        record = self._status[directory]
        if record["status"] == "running" and "step" in record:
            record["step"] = max(record["step"], self._done)
        record["heartbeat"] = time.time()
        rundir.write_status(directory, **record)

    def _beat(self) -> None:
        while not self._quit.wait(self.every):
            with self._lock:
                for directory in self._status:
                    try:
                        self._write(directory)
                    except OSError:  # a full disk: the loop's own next write reports it
                        continue

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._quit.set()
        self._thread.join()
