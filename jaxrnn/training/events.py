"""TensorBoard event files beside ``metrics.jsonl``, written through tensorboardX.

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

A failure to write (a full disk, a broken install) never stops a run: it warns
once, and the run goes on with its JSONL log alone.

References:
  tensorboardX, ``SummaryWriter`` (``purge_step``): https://tensorboardx.readthedocs.io/
"""

import contextlib
import json
import sys
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path

# Not numbers of a record: what it is, and where.
_LABELS = ("kind", "split", "step")


def _tensorboardx():
    """``tensorboardX``, imported without PyTorch: tensorboardX imports torch when it is
    installed, only to accept torch tensors, which jaxrnn never passes; that import
    would double a short run's start-up time."""
    if "torch" in sys.modules:
        import tensorboardX

        return tensorboardX
    sys.modules["torch"] = None  # makes `import torch` raise ImportError
    try:
        import tensorboardX
    finally:
        del sys.modules["torch"]
    return tensorboardX


class Events:
    """A run directory's TensorBoard events; a context manager that closes them.

    Args:
      directory: the run directory (or sweep member's), where the event file goes.
      start: the step the run starts or resumes from (events after it are purged).
      config: the resolved config, written as text.
      enabled: write anything at all (only process 0 of a multi-process run writes).
    """

    def __init__(
        self, directory: Path, start: int, config: Mapping | None = None, enabled: bool = True
    ):
        self.directory = Path(directory)
        self._writer = None
        if enabled:
            self._guarded(lambda: self._open(start, config))

    def _open(self, start: int, config: Mapping | None) -> None:
        writer = _tensorboardx().SummaryWriter(
            str(self.directory),
            # The records of steps <= start are kept (metrics.jsonl keeps them too).
            purge_step=start + 1 if start else None,
            flush_secs=30,
            # Event files are named by the second they are opened in: a resume within
            # the same second as the start would otherwise overwrite the first file.
            filename_suffix=f".from{start}",
        )
        self._writer = writer
        if config is not None:
            text = json.dumps(config, indent=2, default=str)
            # Indented four spaces: TensorBoard renders text as Markdown, this as code.
            writer.add_text("config", "\n".join("    " + line for line in text.splitlines()), 0)

    def write(self, record: Mapping) -> None:
        """One record of ``metrics.jsonl``: each number as ``<split or kind>/<key>``."""
        if self._writer is None:
            return
        split = record.get("split", record["kind"])

        def scalars():
            for key, value in record.items():
                if key not in _LABELS and isinstance(value, int | float):
                    self._writer.add_scalar(f"{split}/{key}", value, record["step"])

        self._guarded(scalars)

    def image(self, tag: str, png: Path, step: int) -> None:
        """A PNG file (the loss plot) as an image at ``step``."""
        if self._writer is None:
            return

        def add():
            import matplotlib.image

            pixels = matplotlib.image.imread(png)[..., :3]  # RGBA floats in [0, 1] -> RGB
            self._writer.add_image(tag, pixels, step, dataformats="HWC")

        self._guarded(add)

    def _guarded(self, write: Callable[[], None]) -> None:
        try:
            write()
        except Exception as error:  # of any kind: TensorBoard is a view, never the record
            writer, self._writer = self._writer, None
            if writer is not None:
                with contextlib.suppress(Exception):
                    writer.close()
            warnings.warn(
                f"{self.directory}: TensorBoard events are no longer written "
                f"({type(error).__name__}: {error}); metrics.jsonl holds every record",
                stacklevel=3,
            )

    def close(self) -> None:
        """Flush and close the event file; later records are dropped. Safe to call twice."""
        if self._writer is not None:
            self._guarded(self._writer.close)
            self._writer = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
