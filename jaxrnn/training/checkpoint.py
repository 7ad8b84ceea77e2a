"""Checkpoints of a train state: orbax-checkpoint behind one small class.

A checkpoint directory holds one orbax step directory per saved step::

    checkpoints/
        120/                        a complete checkpoint (orbax renamed it into place)
            default/                the train state (arrays, OCDBT)
            metrics/                the metrics it was saved with (JSON), which rank "best"
        140.orbax-checkpoint-tmp/   a save killed midway: never listed, never restored;
                                    the next save of step 140 replaces it

Which checkpoints survive a save (the preservation policy)::

    kept = the last ``keep_last`` steps
         ∪ the best ``keep_best`` steps by ``metrics[best_metric]`` (``best_mode`` min or max)
         ∪ every step saved with ``final=True``

Atomicity comes from orbax: a save writes (and fsyncs) everything into
``<step>.orbax-checkpoint-tmp`` and renames it to ``<step>`` last, so a process
killed mid-save (SIGKILL) leaves at most a temporary directory, which no listing
returns. Damage after the fact (a truncated or deleted file) is caught on restore:
the step is skipped with a warning and the previous step is restored instead, and the
next save of that step replaces it. :meth:`Checkpointer.damage` says whether a step
still reads back without restoring it (``jaxrnn runs`` uses it to correct a status).
(Checked by flipping, truncating and deleting each file of a checkpoint in turn:
every damaged file either made the read fail or was not needed by it; none gave
wrong values. ``tests/test_checkpoint.py`` keeps the array-data cases.)

Typed PRNG keys (``jax.random.key``) are not storable by orbax; every key leaf is
stored as its ``jax.random.key_data`` and rewrapped on restore with the key
implementation of the matching template leaf.

References:
    Orbax, "API Overview" (CheckpointManager, preservation policies):
    https://orbax.readthedocs.io/en/stable/guides/checkpoint/orbax_checkpoint_api_overview.html
"""

import dataclasses
import functools
import math
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import jax
import numpy as np

# Stored inside the metrics JSON (the one per-step record orbax hands to the
# preservation policy, also after a restart), so "final" survives a resume.
_FINAL = "_final"


class TemplateMismatch(ValueError):
    """The template, not the checkpoint, is wrong: ``restore`` must not fall back."""


class Damaged(OSError):
    """A checkpoint step no longer reads back (a truncated, deleted or altered file)."""

    def __init__(self, step: int, directory: Path, reason: str):
        super().__init__(f"checkpoint step {step} under {directory}: {reason}")
        self.reason = reason


def _is_key(x) -> bool:
    return isinstance(x, jax.Array) and jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key)


def _to_storable(state):
    """Typed PRNG key leaves -> their raw ``uint32`` key data; other leaves unchanged."""
    return jax.tree.map(lambda x: jax.random.key_data(x) if _is_key(x) else x, state)


def _from_storable(stored, template):
    """Inverse of ``_to_storable``: rewrap key data where ``template`` holds a typed key."""

    def leaf(s, t):
        return jax.random.wrap_key_data(s, impl=jax.random.key_impl(t)) if _is_key(t) else s

    return jax.tree.map(leaf, stored, template)


def _describe(error: Exception, limit: int = 300) -> str:
    """``Type: message``, cut short: tensorstore appends a kilobyte-long JSON spec."""
    text = f"{type(error).__name__}: {error}"
    return text if len(text) <= limit else text[:limit] + " ..."


def _leaf_specs(tree) -> dict[tuple[str, ...], tuple[tuple[int, ...], str]]:
    """``{path: (shape, dtype)}`` with paths as plain names, so that a NamedTuple's
    ``.params.W_xh`` and orbax's stored ``['params']['W_xh']`` compare equal."""

    def name(k) -> str:
        # GetAttrKey.name (NamedTuple field), DictKey.key, SequenceKey.idx.
        for attr in ("name", "key", "idx"):
            if hasattr(k, attr):
                return str(getattr(k, attr))
        return str(k)

    leaves = jax.tree_util.tree_flatten_with_path(tree)[0]
    return {
        tuple(name(k) for k in path): (tuple(leaf.shape), str(np.dtype(leaf.dtype)))
        for path, leaf in leaves
    }


@dataclasses.dataclass
class _KeepPolicy:
    """An orbax ``PreservationPolicy``: the last k, the best k by a metric, and finals.

    Checkpoints without a finite ``metric`` are never ranked as "best"; ties
    keep the earlier step (a stable sort over steps in increasing order).
    """

    keep_last: int
    keep_best: int
    metric: str
    mode: Literal["min", "max"]

    def should_preserve(self, checkpoints: Sequence[Any], *, context: Any = None) -> Sequence[bool]:
        metrics = [c.metrics if isinstance(c.metrics, dict) else {} for c in checkpoints]
        ranked = [
            i
            for i, m in enumerate(metrics)
            if self.metric in m and math.isfinite(float(m[self.metric]))
        ]
        sign = 1.0 if self.mode == "min" else -1.0
        ranked.sort(key=lambda i: sign * float(metrics[i][self.metric]))
        best = set(ranked[: self.keep_best])
        last = set(range(len(checkpoints) - self.keep_last, len(checkpoints)))
        return [i in last or i in best or bool(m.get(_FINAL)) for i, m in enumerate(metrics)]


@functools.cache
def _manager_class() -> type:
    """Orbax's ``CheckpointManager``, except that an unreadable metrics file loses the
    metrics only.

    Orbax reads every step's metrics when it lists the directory and lets a
    damaged JSON file raise, which would make the whole directory unusable
    (even ``restore`` of an intact older step).

    Orbax is imported here, on the first save or restore, not with this module:
    it takes about 0.3 s to import, which a fresh run need not pay before its
    first step (``bench/startup.py``).
    """
    import orbax.checkpoint as ocp

    class _Manager(ocp.CheckpointManager):
        def _get_metrics(self, step: int):
            try:
                return super()._get_metrics(step)
            except ValueError as error:  # json.JSONDecodeError, UnicodeDecodeError
                warnings.warn(
                    f"checkpoint step {step} under {self.directory}: unreadable metrics "
                    f"({_describe(error)}); it will not count as best or final",
                    stacklevel=2,
                )
                return None

    return _Manager


class Checkpointer:
    """Saves and restores a train state under ``directory``, keeping the last and best.

    Args:
        directory: where the step directories live (created by the first save).
        keep_last: how many of the most recent checkpoints to keep (>= 1, so
            that a run can always resume).
        keep_best: how many additional checkpoints to keep by ``best_metric``
            (0: none).
        best_metric: the key of ``metrics`` (passed to ``save``) that ranks
            checkpoints for ``keep_best``.
        best_mode: ``"min"`` (e.g. a loss) or ``"max"`` (e.g. an accuracy).

    Example::

        ckpt = Checkpointer(workdir / "checkpoints", keep_last=2, keep_best=1)
        restored = ckpt.restore(state)          # state: the freshly initialised state
        start, state = restored if restored is not None else (0, state)
        ...
        ckpt.save(step, state, metrics={"loss": 0.31})
        ckpt.close()
    """

    def __init__(
        self,
        directory: str | Path,
        *,
        keep_last: int = 2,
        keep_best: int = 0,
        best_metric: str = "loss",
        best_mode: Literal["min", "max"] = "min",
    ):
        if not isinstance(keep_last, int) or keep_last < 1:
            raise ValueError(
                f"keep_last: expected an int >= 1 (the latest checkpoint is what a run "
                f"resumes from), got {keep_last!r}"
            )
        if not isinstance(keep_best, int) or keep_best < 0:
            raise ValueError(f"keep_best: expected an int >= 0, got {keep_best!r}")
        if best_mode not in ("min", "max"):
            raise ValueError(f"best_mode: expected 'min' or 'max', got {best_mode!r}")
        self.directory = Path(directory)
        self._policy = _KeepPolicy(keep_last, keep_best, best_metric, best_mode)
        # Steps that failed to restore: the next ``save`` deletes them, because
        # a run resumed before them will write those steps again.
        self._unreadable: set[int] = set()

    @functools.cached_property
    def _manager(self):
        import orbax.checkpoint as ocp

        best_metric, best_mode = self._policy.metric, self._policy.mode
        options = ocp.CheckpointManagerOptions(
            # Synchronous: ``save`` returns only once the step directory is renamed
            # into place, so a SIGKILL right after ``save`` cannot lose it. Async
            # saving would overlap I/O with training but leave that window open.
            enable_async_checkpointing=False,
            preservation_policy=self._policy,
            # Orbax writes per-step metrics only when ``best_fn`` is set; the
            # ranking itself is done by ``policy``.
            best_fn=lambda m: float(m.get(best_metric, math.nan)),
            best_mode=best_mode,
        )
        return _manager_class()(
            self.directory.absolute(),
            options=options,
            # Registering the handler up front lets ``item_metadata`` read steps
            # written by an earlier process, before any save or restore here.
            item_handlers=ocp.StandardCheckpointHandler(),
        )

    def _empty(self) -> bool:
        """No manager yet and no directory: nothing saved, no orbax needed to say so."""
        return "_manager" not in self.__dict__ and not self.directory.exists()

    def steps(self) -> list[int]:
        """The steps of all complete checkpoints, in increasing order."""
        return [] if self._empty() else sorted(self._manager.all_steps())

    def latest_step(self) -> int | None:
        """The most recent complete step, or ``None`` if there is none."""
        return None if self._empty() else self._manager.latest_step()

    def save(self, step: int, state, *, metrics: dict | None = None, final: bool = False) -> None:
        """Write ``state`` as step ``step`` and wait until it is on disk, then prune.

        Saving a step that already exists is a no-op (also with ``final=True``):
        checkpoints are never overwritten. A resumed run recomputes a step
        bit-identically, so the existing checkpoint already holds this state.
        The one exception: steps that this object failed to ``restore`` are
        deleted first, since the run resumed from before them will write them again.

        Args:
            step: the step number (the directory name), >= 0.
            state: a pytree of arrays; typed PRNG keys are allowed anywhere.
            metrics: scalar metrics (e.g. the evaluation) ranking this checkpoint
                for ``keep_best``; ``None`` leaves it out of the ranking.
            final: always keep this checkpoint, whatever ``keep_last``/``keep_best`` say.
        """
        if not isinstance(step, int | np.integer) or step < 0:
            raise ValueError(f"step: expected an int >= 0, got {step!r}")
        step = int(step)
        for bad in sorted(self._unreadable & set(self.steps())):
            self._manager.delete(bad)
        self._unreadable.clear()
        if step in self.steps():
            return
        record = {k: float(v) for k, v in (metrics or {}).items()}
        if final:
            record[_FINAL] = 1.0
        import orbax.checkpoint as ocp

        # force: orbax otherwise refuses a step below its latest one, which
        # happens after falling back past an unreadable checkpoint.
        self._manager.save(
            step, args=ocp.args.StandardSave(_to_storable(state)), metrics=record, force=True
        )
        self._manager.wait_until_finished()

    def damage(self, step: int) -> str | None:
        """Why checkpoint ``step`` would not restore (``"Type: message"``); ``None`` if it reads.

        Reads and decodes every array of the step's OCDBT store (``<step>/default``)
        synchronously through tensorstore, as a restore would, then parses its tree
        metadata. A restore runs this first: orbax's own asynchronous reads, when one
        fails, leave the others to print a traceback each after its event loop has closed.
        """
        import tensorstore as ts

        try:
            store = {
                "driver": "ocdbt",
                "base": (self.directory / str(step) / "default").absolute().as_uri() + "/",
            }
            for key in ts.KvStore.open(store).result().list().result():
                name, _, leaf = key.decode().rpartition("/")
                if leaf in (".zarray", "zarr.json"):  # one array (zarr v2 or v3)
                    driver = "zarr" if leaf == ".zarray" else "zarr3"
                    spec = {"driver": driver, "kvstore": {**store, "path": name + "/"}}
                    ts.open(spec, open=True).result().read().result()
            # Last: orbax reads the tree's metadata with the same asynchronous reads.
            self._manager.item_metadata(step)
        except Exception as error:  # whatever a damaged file raises
            return _describe(error)
        return None

    def restore_step(self, step: int, template):
        """Restore ``step`` after checking that it reads and that its leaves match ``template``'s.

        Raises:
            Damaged: the step no longer reads back; the next ``save`` of it replaces it.
            ValueError: the template does not match (see :meth:`restore`).
        """
        problem = self.damage(step)
        if problem is not None:
            self._unreadable.add(step)
            raise Damaged(step, self.directory, problem)
        stored = self._manager.item_metadata(step).tree
        want, have = _leaf_specs(_to_storable(template)), _leaf_specs(stored)
        if want != have:
            diff = sorted(set(want.items()) ^ set(have.items()))[:4]
            raise TemplateMismatch(
                f"template: its leaves (shape, dtype) do not match checkpoint step {step} "
                f"under {self.directory}; first differences (path, (shape, dtype)) in "
                f"template ^ checkpoint: {diff}. Restore with the state the run was "
                f"started with, or use a new directory."
            )
        import orbax.checkpoint as ocp

        try:
            stored = self._manager.restore(
                step, args=ocp.args.StandardRestore(_to_storable(template))
            )
        except Exception as error:  # damage the read-through above did not see
            self._unreadable.add(step)
            raise Damaged(step, self.directory, _describe(error)) from error
        return _from_storable(stored, template)

    def restore(self, template) -> tuple[int, Any] | None:
        """The latest checkpoint that restores, as ``(step, state)``; ``None`` if none.

        An unreadable step (truncated or missing files) is skipped with a
        warning naming the step and the error, and the previous one is tried.

        Args:
            template: a state with the same tree structure, shapes and dtypes as
                the saved one (the freshly initialised state); its values are unused.

        Returns:
            ``(step, state)`` with ``state`` of the template's structure and
            dtypes and bit-identical to what was saved, or ``None``.

        Raises:
            ValueError: if ``template`` does not match the checkpoint's leaves
                (a different model or optimizer): that is not corruption, so no
                fallback to an older step would help.
        """
        if not self._empty():
            self._manager.reload()
        for step in reversed(self.steps()):
            try:
                return step, self.restore_step(step, template)
            except Damaged as error:
                warnings.warn(
                    f"checkpoint step {step} under {self.directory} could not be restored "
                    f"({error.reason}); falling back to the previous one",
                    stacklevel=2,
                )
        if self._unreadable:
            warnings.warn(
                f"no checkpoint under {self.directory} could be restored "
                f"(unreadable steps {sorted(self._unreadable)}); returning None",
                stacklevel=2,
            )
        return None

    def close(self) -> None:
        """Wait for pending work and release orbax's resources."""
        if "_manager" in self.__dict__:
            self._manager.close()
