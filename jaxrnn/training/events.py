"""TensorBoard event files beside ``metrics.jsonl`` (tensorboardX), and W&B offline runs.

Every record a run logs (:mod:`jaxrnn.training.loop`) is also written as scalars
tagged ``<split>/<metric>`` at its step: ``train/loss``, ``train/steps_per_s``,
``validation/accuracy``, ``test/loss`` (the test split at the chosen step). The
resolved config is written as text (``config``, JSON), and the loss plot
(``loss.png``) as an image (``loss``) at the end. TensorBoard keeps a scalar as a
float32, so a value read back equals ``metrics.jsonl``'s rounded to float32.

The event files live in the run directory itself, so ``tensorboard --logdir runs``
shows every run, and ``tensorboard --logdir sweeps/<name>/members`` overlays a
sweep's members, each under its id.

A resumed run opens a new event file with ``purge_step`` just past the step it
resumed from: TensorBoard hides what the killed process logged after its last
checkpoint, as the loop truncates ``metrics.jsonl`` there. (An extended run,
``jaxrnn train --extend``, keeps its earlier ``test/`` points in TensorBoard, where
``metrics.jsonl`` keeps the last test record only.)

**Weights & Biases**, optional (``pip install 'jaxrnn[wandb]'``, then ``jaxrnn train
--wandb`` or ``run_group(..., wandb=True)``): the same records go to a W&B run in
*offline* mode under ``<run directory>/wandb/``, which ``wandb sync`` uploads later (no
network at run time). Train and validation records are logged at their step, the test
metrics into the run's summary (their step, the chosen one, may lie before the last
logged one, and W&B keeps steps increasing), the config as the run's config, the loss
plot as an image. The W&B run's id is fixed by the run directory, so a resumed run
continues the same W&B run; a sweep's members form a group named after the sweep. W&B
drops a step it has seen, so a resume logs only the steps past what the killed process
logged, which a bit-exact resume recomputes identically anyway.

A failure to write (a full disk, a broken install) never stops a run: it warns
once per writer, and the run goes on with its JSONL log alone.

References:
  tensorboardX, ``SummaryWriter`` (``purge_step``): https://tensorboardx.readthedocs.io/
  W&B, ``wandb.init`` (``mode="offline"``, ``id``, ``resume``, ``group``):
  https://docs.wandb.ai/ref/python/init/
"""

import contextlib
import hashlib
import importlib.util
import json
import logging
import sys
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path

# Not numbers of a record: what it is, and where.
_LABELS = ("kind", "split", "step")


WANDB_MISSING = "--wandb: W&B is not installed; pip install 'jaxrnn[wandb]'"


def check_wandb() -> None:
    """Raise before any compute when W&B is asked for and not installed.

    Raises:
      ValueError: naming the ``pip install`` line.
    """
    if importlib.util.find_spec("wandb") is None:
        raise ValueError(WANDB_MISSING)


def _tensorboardx():
    """``tensorboardX``, imported without PyTorch: tensorboardX imports torch when it is
    installed, only to accept torch tensors, which jaxrnn never passes; that import
    would double a short run's start-up time."""
    masked = "torch" not in sys.modules
    if masked:
        sys.modules["torch"] = None  # makes `import torch` raise ImportError
    try:
        import tensorboardX
    finally:
        if masked:
            del sys.modules["torch"]
    # tensorboardX warns "NaN or Inf found in input tensor." for every non-finite scalar,
    # without its tag or step: a diverged sweep member would print it a few times each
    # step until its group ends. The value is written all the same (TensorBoard shows
    # it), metrics.jsonl has it, and the run's status says the member diverged.
    logging.getLogger("tensorboardX.x2num").setLevel(logging.ERROR)
    return tensorboardX


class _TensorBoard:
    """A run directory's TensorBoard event file (module docstring)."""

    what = "TensorBoard events"

    def __init__(self, directory: Path, start: int, config: Mapping | None):
        self.writer = _tensorboardx().SummaryWriter(
            str(directory),
            # The records of steps <= start are kept (metrics.jsonl keeps them too).
            purge_step=start + 1 if start else None,
            flush_secs=30,
            # Event files are named by the second they are opened in: a resume within
            # the same second as the start would otherwise overwrite the first file.
            filename_suffix=f".from{start}",
        )
        if config is not None:
            text = json.dumps(config, indent=2, default=str)
            # Indented four spaces: TensorBoard renders text as Markdown, this as code.
            lines = "\n".join("    " + line for line in text.splitlines())
            self.writer.add_text("config", lines, 0)

    def numbers(self, numbers: Mapping[str, float], step: int, kind: str) -> None:
        for tag, value in numbers.items():
            self.writer.add_scalar(tag, value, step)

    def image(self, tag: str, png: Path, step: int) -> None:
        import matplotlib.image

        pixels = matplotlib.image.imread(png)[..., :3]  # RGBA floats in [0, 1] -> RGB
        self.writer.add_image(tag, pixels, step, dataformats="HWC")

    def close(self) -> None:
        self.writer.close()


class _WandB:
    """A run directory's W&B run, offline (module docstring)."""

    what = "W&B records"

    def __init__(self, directory: Path, start: int, config: Mapping | None):
        import wandb

        where = Path(directory).resolve()
        members = where.parent
        self.run = wandb.init(
            dir=str(where),
            mode="offline",
            project=(config or {}).get("name", "jaxrnn"),
            name=where.name,
            group=members.parent.name if members.name == "members" else None,
            config=dict(config or {}),
            # One W&B run per run directory, continued by a resume.
            id=hashlib.sha256(str(where).encode()).hexdigest()[:16],
            resume="allow",
            reinit="create_new",  # a sweep's group logs several runs at once
            settings=wandb.Settings(silent=True, console="off"),
        )

    def numbers(self, numbers: Mapping[str, float], step: int, kind: str) -> None:
        if kind == "test":  # at the chosen step, which may lie before the last one logged
            self.run.summary.update(numbers)
        else:
            self.run.log(dict(numbers), step=step)

    def image(self, tag: str, png: Path, step: int) -> None:
        import wandb

        self.run.log({tag: wandb.Image(str(png))}, step=step)

    def close(self) -> None:
        self.run.finish()


class Events:
    """A run directory's TensorBoard events (and W&B run); a context manager that closes them.

    Args:
      directory: the run directory (or sweep member's), where the event file goes.
      start: the step the run starts or resumes from (events after it are purged).
      config: the resolved config, written as text.
      enabled: write anything at all (only process 0 of a multi-process run writes).
      wandb: also log to a W&B run in offline mode (see the module docstring).
    """

    def __init__(
        self,
        directory: Path,
        start: int,
        config: Mapping | None = None,
        enabled: bool = True,
        wandb: bool = False,
    ):
        self.directory = Path(directory)
        self._views = []
        kinds = [_TensorBoard, _WandB] if wandb else [_TensorBoard]
        for kind in kinds if enabled else []:
            try:
                self._views.append(kind(self.directory, start, config))
            except Exception as error:  # of any kind: these are views, never the record
                self._warn(kind.what, error)

    def write(self, record: Mapping) -> None:
        """One record of ``metrics.jsonl``: each number as ``<split or kind>/<key>``."""
        split = record.get("split", record["kind"])
        numbers = {
            f"{split}/{key}": value
            for key, value in record.items()
            if key not in _LABELS and isinstance(value, int | float)
        }
        self._each(lambda view: view.numbers(numbers, record["step"], record["kind"]))

    def image(self, tag: str, png: Path, step: int) -> None:
        """A PNG file (the loss plot) as an image at ``step``."""
        self._each(lambda view: view.image(tag, png, step))

    def close(self) -> None:
        """Flush and close the event file (and finish the W&B run); later records are
        dropped. Safe to call twice."""
        self._each(lambda view: view.close())
        self._views = []

    def _each(self, write: Callable) -> None:
        """``write(view)`` for each view; one that fails is dropped, with one warning."""
        for view in list(self._views):
            try:
                write(view)
            except Exception as error:  # of any kind: these are views, never the record
                self._views.remove(view)
                with contextlib.suppress(Exception):
                    view.close()
                self._warn(view.what, error)

    def _warn(self, what: str, error: Exception) -> None:
        warnings.warn(
            f"{self.directory}: {what} are no longer written "
            f"({type(error).__name__}: {error}); metrics.jsonl holds every record",
            stacklevel=4,
        )

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
