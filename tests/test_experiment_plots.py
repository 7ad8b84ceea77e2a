"""The analysis scripts of experiments/ that read recorded sweeps: the wall time rebuilt
from ``metrics.jsonl`` (``linear_plots.member_curves``) and the Shakespeare table and
figure (``shakespeare_plots``), on a small sweep directory written here."""

import json
import sys
from pathlib import Path

import numpy as np
import pytest

EXPERIMENTS = Path(__file__).resolve().parents[1] / "experiments"


@pytest.fixture(scope="module")
def scripts():
    sys.path.insert(0, str(EXPERIMENTS))
    try:
        import linear_plots
        import shakespeare_plots

        yield linear_plots, shakespeare_plots
    finally:
        sys.path.remove(str(EXPERIMENTS))


def _member(directory: Path, split: str, dropout: float, final: float, speed: float):
    """A finished member: 4 training records at ``speed`` steps/s, validation every 2."""
    directory.mkdir(parents=True)
    task = {"split": split, "input_dropout": dropout, "state_dropout": dropout}
    (directory / "config.json").write_text(json.dumps({"task": task, "train": {"steps": 4}}))
    status = {"status": "finished", "final": {"bits_per_char": final}}
    (directory / "status.json").write_text(json.dumps(status))
    records = []
    for step in (1, 2, 3, 4):
        records.append({"kind": "train", "step": step, "steps_per_s": speed})
        if step % 2 == 0:
            bpc = 3.0 - step / 4 + final / 10
            records.append(
                {
                    "kind": "eval",
                    "split": "validation",
                    "step": step,
                    "bits_per_char": bpc,
                    "loss": bpc * np.log(2),
                }
            )
    (directory / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))


def test_member_curves_rebuild_the_training_clock(scripts, tmp_path):
    """Each training record's steps_per_s covers the steps since the one before: 4 steps
    at 0.5 steps/s are 2 s apiece, so validation at steps 2 and 4 sits at 4 s and 8 s."""
    linear_plots, _ = scripts
    _member(tmp_path / "m", "C", 0.0, 1.9, speed=0.5)
    steps, seconds, bpc, total, last = linear_plots.member_curves(tmp_path / "m", "bits_per_char")
    np.testing.assert_array_equal(steps, [2, 4])
    np.testing.assert_allclose(seconds, [4.0, 8.0])
    np.testing.assert_allclose(bpc, [2.69, 2.19])
    assert (total, last) == (8.0, 4)


def test_shakespeare_table_groups_seeds_by_setting(scripts, tmp_path, capsys):
    """Two seeds of one setting give one row, mean ± sample std of their test results;
    the figure is written where asked."""
    _, shakespeare_plots = scripts
    for i, final in enumerate((1.85, 1.87)):
        _member(tmp_path / "a" / "members" / f"m{i:03d}", "C", 0.0, final, speed=1.0)
    _member(tmp_path / "b" / "members" / "m000", "B", 0.1, 2.12, speed=2.0)
    out = shakespeare_plots.main([str(tmp_path / "a"), str(tmp_path / "b")], tmp_path / "fig")
    assert out.is_file() and out.stat().st_size > 0
    rows = capsys.readouterr().out
    std = np.std([1.85, 1.87], ddof=1)
    assert f"| split C, no dropout, 4 steps | 2/2 | 1.860 ± {std:.3f} | 1.850, 1.870 |" in rows
    assert "| split B, dropout 0.1/0.1, 4 steps | 1/1 | 2.120 | 2.120 |" in rows
