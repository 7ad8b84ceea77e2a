"""Progress on the terminal (rich): a bar for the steps, and a table of members for a sweep."""

from collections.abc import Sequence

from rich.console import Group
from rich.live import Live
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table


class Board:
    """A live view of a run or a sweep: a progress bar over the steps of the group
    being trained and, for more than one member, every member's step, loss and status.

    Args:
      rows: ``(member id, setting)`` of every member of the run or sweep.
      title: the bar's label.
      enabled: draw anything at all.
    """

    def __init__(self, rows: Sequence[tuple[str, str]], title: str, enabled: bool = True):
        self.rows = {member_id: [setting, "0", "", "pending"] for member_id, setting in rows}
        self.enabled = enabled
        self.bar = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            TextColumn("{task.completed}/{task.total}"),
            TimeRemainingColumn(),
            TextColumn("{task.fields[info]}"),
        )
        self.task = self.bar.add_task(title, total=1, completed=0, info="")
        self.live = None

    def _view(self):
        if len(self.rows) == 1:
            return self.bar
        table = Table("member", "setting", "step", "loss", "status", box=None)
        for member_id, row in self.rows.items():
            table.add_row(member_id, *row)
        return Group(self.bar, table)

    def __enter__(self):
        if self.enabled:
            self.live = Live(get_renderable=self._view, refresh_per_second=4)
            self.live.__enter__()
        return self

    def start_group(self, start: int, steps: int) -> None:
        """A group begins (or resumes) at ``start`` of ``steps``."""
        self.bar.update(self.task, total=steps, completed=start)

    def advance(self, step: int, loss: float | None = None) -> None:
        """The group has taken ``step`` steps; ``loss`` of a solo run."""
        info = {} if loss is None else {"info": f"loss {loss:.4f}"}
        self.bar.update(self.task, completed=step, **info)

    def update(self, member_id: str, step: int | None = None, loss=None, status=None) -> None:
        """A member's row."""
        row = self.rows[member_id]
        if step is not None:
            row[1] = str(step)
        if loss is not None:
            row[2] = f"{loss:.4g}"
        if status is not None:
            row[3] = status

    def __exit__(self, *exc):
        if self.live is not None:
            self.live.__exit__(*exc)
