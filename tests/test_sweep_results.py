"""Sweep results for papers: summary tables, plots and the BibTeX of ``jaxrnn cite``.

The sweep directories here are written by the test in the layout the engine
writes (``sweep.json``, ``members/<id>/`` run directories with ``config.json``,
``metrics.jsonl``: validation ``"eval"`` records and one ``"test"`` record at the
chosen step, and ``status.json``: ``"final"`` (those test metrics) and the
metrics' ``"directions"``) with known logs; every number of the summary is
recomputed independently from those logs with NumPy. The BibTeX is checked against
``CITATION.cff`` read with PyYAML and against ``cffconvert``'s own conversion of it.
"""

import csv
import io
import json
import math
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from jaxrnn.cli import main
from jaxrnn.sweep import plots, tables
from jaxrnn.sweep import summary as summary_lib
from jaxrnn.training import cite, rundir
from jaxrnn.training import config as config_lib
from jaxrnn.training import experiment as experiment_lib

ROOT = Path(__file__).resolve().parent.parent
LRS = (1e-3, 3e-2)
CLIPS = (1.0, 0.5)
SEEDS = (0, 1, 2)
EVAL_STEPS = (10, 20, 30)
DIVERGED = "m004"  # second setting, seed 1
VERSIONS = {"jaxrnn": "0.1.0", "jax": "9.9.9", "python": "3.11.0", "git_commit": "abc123"}
DIRECTIONS = {"loss": "min", "accuracy": "max"}
ADDING = experiment_lib.load("adding_lstm")


def _read_log(path: Path) -> list[dict]:
    return [json.loads(ln) for ln in path.read_text().splitlines()]


def write_sweep(root: Path, best_metric: str = "loss", directions: dict = DIRECTIONS) -> Path:
    """2 settings x 3 seeds with known logs; ``m004`` diverges at step 20.

    Each member logs validation ("eval") records at ``EVAL_STEPS`` and one "test"
    record at its chosen step (the best validation ``best_metric`` in its recorded
    direction), whose metrics are also ``status.json``'s ``"final"``, as the engine
    writes them. The diverged member's test metrics (at its chosen step, before the
    divergence) are finite: only its status keeps it out of the statistics.

    The low-lr setting has the lower loss *and* the lower accuracy, so minimising
    the loss and maximising the accuracy pick different settings.
    """
    rng = np.random.default_rng(0)
    entries = []
    for i, (lr, clip) in enumerate(zip(LRS, CLIPS, strict=True)):
        for seed in SEEDS:
            mid = f"m{len(entries):03d}"
            overrides = {"optim.learning_rate": lr, "optim.clip_norm": clip, "seed": seed}
            cfg = experiment_lib.get_config(
                ADDING,
                [f"{k}={v}" for k, v in overrides.items()] + [f"train.best_metric={best_metric}"],
                smoke=True,
            )
            entries.append(
                {
                    "id": mid,
                    "overrides": overrides,
                    "config_hash": config_lib.config_hash(cfg),
                    "group": "g000",
                }
            )
            d = root / "members" / mid
            d.mkdir(parents=True)
            (d / "config.json").write_text(json.dumps(config_lib.to_dict(cfg)))
            lines, evals = [], []
            for step in EVAL_STEPS:
                loss = (0.1 + 0.2 * i) / step + 0.01 * rng.random()
                accuracy = 0.3 + 0.4 * i + 0.1 * rng.random() + step / 1000
                if mid == DIVERGED and step >= 20:  # frozen: no more evaluations
                    lines.append({"kind": "train", "step": step, "loss": float("nan")})
                    break
                lines.append({"kind": "train", "step": step, "loss": 2 * loss})
                record = {"kind": "eval", "split": "validation", "step": step}
                evals.append({**record, "loss": loss, "accuracy": accuracy})
                lines.append(evals[-1])
            sign = 1.0 if directions[best_metric] == "min" else -1.0
            chosen = min(evals, key=lambda r: sign * r[best_metric])
            # The test split, scored once at the chosen step: near, not equal to, validation.
            test = {
                "loss": chosen["loss"] * (1.0 + 0.2 * rng.random()),
                "accuracy": chosen["accuracy"] - 0.05 * rng.random(),
            }
            lines.append({"kind": "test", "step": chosen["step"], **test})
            (d / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
            status = {
                "status": "diverged" if mid == DIVERGED else "finished",
                "step": 20 if mid == DIVERGED else EVAL_STEPS[-1],
                "chosen_step": chosen["step"],
                "final": test,
                "baseline": {"name": "the training mean", "loss": 0.167},
                "directions": directions,
                "best_validation": {best_metric: chosen[best_metric]},
            }
            (d / "status.json").write_text(json.dumps(status))
    spec = {
        "config": "adding_lstm",
        "experiment": rundir.identity(ADDING),
        "schema_version": rundir.SCHEMA_VERSION,
        "base_overrides": [],
        "grid": {"optim.learning_rate": [repr(lr) for lr in LRS]},
        "random": {},
        "trials": 0,
        "seeds": list(SEEDS),
        "members": entries,
        "versions": VERSIONS,
    }
    (root / "sweep.json").write_text(json.dumps(spec))
    return root


def oracle(root: Path, metric: str) -> dict:
    """Per learning rate: NumPy mean/std(ddof=1)/min/max/n of the logged test value."""
    spec = json.loads((root / "sweep.json").read_text())
    values: dict = {}
    for e in spec["members"]:
        d = root / "members" / e["id"]
        if json.loads((d / "status.json").read_text())["status"] != "finished":
            continue
        (test,) = [r for r in _read_log(d / "metrics.jsonl") if r["kind"] == "test"]
        values.setdefault(e["overrides"]["optim.learning_rate"], []).append(test[metric])
    return {
        lr: (np.mean(v), np.std(v, ddof=1), np.min(v), np.max(v), len(v))
        for lr, v in values.items()
    }


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    root = write_sweep(tmp_path_factory.mktemp("sweep"))
    return root, summary_lib.summarize(root)


def test_summary_numbers_equal_numpy_recomputation(sweep):
    root, s = sweep
    assert s.swept == ("optim.learning_rate", "optim.clip_norm")
    # best_metric first; the baseline (status.json's "baseline") is no result.
    assert s.metrics == ("loss", "accuracy")
    assert [st.overrides["optim.learning_rate"] for st in s.settings] == list(LRS)
    for metric in ("loss", "accuracy"):
        expected = oracle(root, metric)
        for setting in s.settings:
            got = setting.stats[metric]
            mean, std, lo, hi, n = expected[setting.overrides["optim.learning_rate"]]
            np.testing.assert_allclose(
                [got.mean, got.std, got.min, got.max], [mean, std, lo, hi], rtol=1e-12
            )
            assert got.n == n
    assert [(st.n_finished, st.n_diverged) for st in s.settings] == [(3, 0), (2, 1)]
    assert s.settings[1].members == ("m003", "m004", "m005")
    assert s.settings[1].seeds == SEEDS


def test_summary_reports_the_test_split_not_the_last_validation(sweep):
    root, s = sweep
    for m in s.members:
        records = _read_log(root / "members" / m.id / "metrics.jsonl")
        (test,) = [r for r in records if r["kind"] == "test"]
        last_validation = [r for r in records if r["kind"] == "eval"][-1]
        assert m.final == {k: test[k] for k in ("loss", "accuracy")}
        assert m.final["loss"] != last_validation["loss"]
        # The learning curves are the validation records, in step order.
        assert m.evals == [r for r in records if r["kind"] == "eval"]


def validation_oracle(root: Path, metric: str) -> list[float]:
    """Per setting (in order): the NumPy mean over its members, the diverged one too, of
    their best validation ``metric``, read from the logged eval records (not from
    status.json)."""
    spec = json.loads((root / "sweep.json").read_text())
    sign = 1.0 if DIRECTIONS[metric] == "min" else -1.0
    values: dict = {}
    for e in spec["members"]:
        d = root / "members" / e["id"]
        evals = [r[metric] for r in _read_log(d / "metrics.jsonl") if r["kind"] == "eval"]
        values.setdefault(e["overrides"]["optim.learning_rate"], []).append(
            sign * min(sign * v for v in evals)
        )
    return [float(np.mean(v)) for v in values.values()]


def test_best_setting_is_chosen_on_validation_minimising_loss_maximising_accuracy(sweep, tmp_path):
    root, s = sweep
    assert (s.best_metric, s.best_mode, s.best_by) == ("loss", "min", "validation")
    means = validation_oracle(root, "loss")
    np.testing.assert_allclose([st.validation.mean for st in s.settings], means, rtol=1e-12)
    assert [st.validation.n for st in s.settings] == [3, 3]
    assert s.best == int(np.argmin(means)) == 0
    acc_root = write_sweep(tmp_path / "acc", best_metric="accuracy")
    acc = summary_lib.read(acc_root)
    assert (acc.best_metric, acc.best_mode, acc.metrics[0]) == ("accuracy", "max", "accuracy")
    assert acc.best == int(np.argmax(validation_oracle(acc_root, "accuracy"))) == 1


def _set_finals(root: Path, change) -> None:
    for path in sorted((root / "members").glob("*/status.json")):
        status = json.loads(path.read_text())
        change(path.parent.name, status)
        path.write_text(json.dumps(status))


def test_the_test_split_never_chooses_the_best_setting(tmp_path):
    # The setting of better validation loss gets the worse test loss: it stays in bold.
    root = write_sweep(tmp_path)

    def worse_test_for_setting_0(member, status):
        if member in ("m000", "m001", "m002"):
            status["final"]["loss"] = 10.0

    _set_finals(root, worse_test_for_setting_0)
    s = summary_lib.read(root)
    assert s.settings[0].stats["loss"].mean > s.settings[1].stats["loss"].mean
    assert (s.best, s.best_by) == (0, "validation")


def test_a_seed_never_finite_on_validation_keeps_its_setting_from_being_chosen(tmp_path):
    # train.nonfinite=skip: the run finishes, with no finite validation value and so no
    # best_validation in its status.json; its two seedmates alone would win.
    root = write_sweep(tmp_path)

    def nan_from_the_start(member, status):
        if member == "m000":
            status.pop("best_validation")
            status["final"] = {"loss": math.nan, "accuracy": math.nan}

    _set_finals(root, nan_from_the_start)
    s = summary_lib.read(root)
    assert s.settings[0].validation.mean == math.inf and s.settings[0].validation.n == 3
    assert (s.best, s.best_by) == (1, "validation")


def test_a_sweep_without_validation_is_ranked_by_its_test_means(tmp_path):
    # A refit on train + validation records no best validation value.
    root = write_sweep(tmp_path)
    _set_finals(root, lambda member, status: status.pop("best_validation"))
    for log in (root / "members").glob("*/metrics.jsonl"):
        records = [r for r in _read_log(log) if r["kind"] != "eval"]
        log.write_text("".join(json.dumps(r) + "\n" for r in records))
    s = summary_lib.read(root)
    assert [st.validation.n for st in s.settings] == [0, 0]
    means = [st.stats["loss"].mean for st in s.settings]
    assert (s.best, s.best_by) == (int(np.argmin(means)), "test")


def test_best_direction_is_the_one_recorded_in_status_json(tmp_path):
    # Not guessed from the metric's name: an objective declaring "accuracy" a metric
    # to minimise gets the setting of lowest mean accuracy.
    flipped = {"loss": "min", "accuracy": "min"}
    s = summary_lib.read(write_sweep(tmp_path, best_metric="accuracy", directions=flipped))
    assert (s.best_metric, s.best_mode) == ("accuracy", "min")
    assert s.best == int(np.argmin([st.stats["accuracy"].mean for st in s.settings])) == 0


def test_csv_parses_back_to_the_same_numbers(sweep):
    root, s = sweep
    rows = list(csv.DictReader(io.StringIO((root / "summary.csv").read_text())))
    assert len(rows) == len(s.settings)
    for row, setting in zip(rows, s.settings, strict=True):
        assert float(row["optim.learning_rate"]) == setting.overrides["optim.learning_rate"]
        assert int(row["n_finished"]) == setting.n_finished
        assert int(row["n_diverged"]) == setting.n_diverged
        for metric in s.metrics:
            st = setting.stats[metric]
            for field in ("mean", "std", "min", "max"):
                assert float(row[f"{metric}_{field}"]) == getattr(st, field)  # exact round trip
            assert int(row[f"{metric}_n"]) == st.n
    assert [row["best"] for row in rows] == ["True", "False"]


def test_latex_has_booktabs_rules_escapes_and_bold_best(sweep):
    root, s = sweep
    tex = (root / "summary.tex").read_text()
    rules = [tex.index(r) for r in (r"\toprule", r"\midrule", r"\bottomrule")]
    assert rules == sorted(rules)
    # Labels for the raw keys, and each metric's direction (its objective's) as an arrow.
    header = (
        r"learning rate & clip norm & finished & diverged & test loss $\downarrow$ & [min, max]"
    )
    assert header + r" & test accuracy $\uparrow$ & [min, max] \\" in tex
    assert re.search(r"(?<!\\)_", tex) is None  # every underscore escaped
    assert r"\textbackslash" not in tex  # not over-escaped
    # A label's special characters are escaped too (its $...$ would be kept as math).
    labelled = summary_lib.latex(s._replace(labels={"optim.clip_norm": "clip_norm & 100%"}))
    assert r"learning rate & clip\_norm \& 100\% & finished" in labelled
    body = tex[tex.index(r"\toprule") : tex.index(r"\bottomrule")]
    rows = [ln for ln in body.splitlines() if ln.endswith(r"\\")]
    assert len(rows) == 1 + len(s.settings)
    assert {ln.count("&") for ln in rows} == {len(s.swept) + 1 + 2 * len(s.metrics)}
    best, other = rows[1], rows[2]
    assert best.count(r"\textbf{") == best.count("&") + 1 and r"\textbf" not in other
    st = s.settings[0].stats["loss"]
    r = tables.round_measurement(st.mean, st.std)  # rounding: tests/test_sweep_tables.py
    assert rf"\textbf{{\boldmath ${r.mean} \pm {r.std}$}}" in best
    # Rounded by its std: within half a unit of the last place shown.
    assert abs(float(r.mean) - st.mean) <= 0.5 * 10.0**r.place


def test_markdown_table_shape_and_bold_best(sweep):
    root, s = sweep
    lines = (root / "summary.md").read_text().splitlines()
    table = [ln for ln in lines if ln.startswith("|")]
    assert len(table) == 2 + len(s.settings)
    assert len({ln.count("|") for ln in table}) == 1
    assert table[2].count("**") == 2 * (table[2].count("|") - 1)
    assert "**" not in table[3]
    assert table[0].startswith("| learning rate | clip norm | finished | diverged | test loss ↓ |")
    st = s.settings[1].stats["accuracy"]
    r = tables.round_measurement(st.mean, st.std)
    assert f"| {r.mean} ± {r.std} |" in table[3]
    assert abs(float(r.std) - st.std) <= 0.5 * 10.0**r.place
    assert "2/3" in table[3]  # finished / members
    assert "sample std (ddof = 1" in lines[-1]


def test_plots_written_as_png_and_pdf(sweep):
    root, s = sweep
    expected = [f"curves_{m}" for m in s.metrics] + [
        f"final_{m}_vs_optim_{k}" for m in s.metrics for k in ("learning_rate", "clip_norm")
    ]
    for name in expected:
        png, pdf = root / "plots" / f"{name}.png", root / "plots" / f"{name}.pdf"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 1000
        assert pdf.read_bytes()[:5] == b"%PDF-" and pdf.stat().st_size > 1000


def test_learning_curve_is_mean_and_min_max_over_finished_seeds(sweep):
    root, s = sweep
    for setting in s.settings:
        logs = []
        for mid in setting.members:
            d = root / "members" / mid
            if json.loads((d / "status.json").read_text())["status"] != "finished":
                continue
            records = [json.loads(ln) for ln in (d / "metrics.jsonl").read_text().splitlines()]
            logs.append([r["loss"] for r in records if r["kind"] == "eval"])
        logs = np.array(logs)
        steps, mean, lo, hi = plots.curve(s, setting, "loss")
        np.testing.assert_array_equal(steps, EVAL_STEPS)
        np.testing.assert_allclose(mean, logs.mean(0), rtol=1e-12)
        np.testing.assert_array_equal(lo, logs.min(0))
        np.testing.assert_array_equal(hi, logs.max(0))
    assert plots.curve(s, s.settings[0], "bleu") is None


def test_curves_of_a_minimised_metric_are_logarithmic_of_a_maximised_one_linear(
    sweep, tmp_path, monkeypatch
):
    _, s = sweep
    scales = {}
    save = plots._save

    def spy(fig, out_dir, name):
        scales[name] = fig.axes[0].get_yscale()
        return save(fig, out_dir, name)

    monkeypatch.setattr(plots, "_save", spy)
    for metric in ("loss", "accuracy"):
        plots.learning_curves(s, metric, tmp_path)
    assert s.directions == {"loss": "min", "accuracy": "max"}
    assert scales == {"curves_loss": "log", "curves_accuracy": "linear"}


def test_unstarted_and_killed_members_are_counted_not_averaged(tmp_path):
    import shutil

    root = write_sweep(tmp_path)
    shutil.rmtree(root / "members" / "m000")  # its group never started
    # m001 was killed before its test: its log ends with a line cut by the kill.
    log = root / "members" / "m001" / "metrics.jsonl"
    kept = [ln for ln in log.read_text().splitlines() if json.loads(ln)["kind"] != "test"]
    log.write_text("".join(ln + "\n" for ln in kept) + '{"kind": "eval", "st')
    status = root / "members" / "m001" / "status.json"
    status.write_text(json.dumps({"status": "interrupted", "step": 30}))
    s = summary_lib.read(root)
    first = s.settings[0]
    assert [m.status for m in s.members[:3]] == ["pending", "interrupted", "finished"]
    assert (first.n_finished, first.n_diverged, len(first.members)) == (1, 0, 3)
    records = _read_log(root / "members" / "m002" / "metrics.jsonl")
    (expected,) = [r["loss"] for r in records if r["kind"] == "test"]  # the one finished seed
    loss = first.stats["loss"]
    assert (loss.mean, loss.min, loss.max, loss.n) == (expected, expected, expected, 1)
    assert math.isnan(loss.std)
    assert "1/3" in summary_lib.markdown(s).splitlines()[2]


def test_stats_edge_cases_and_bad_arguments(sweep):
    root, _ = sweep
    one = summary_lib.stats([0.5])
    assert (one.mean, one.min, one.max, one.n) == (0.5, 0.5, 0.5, 1) and math.isnan(one.std)
    assert summary_lib.stats([]).n == 0
    with pytest.raises(ValueError, match=r"metrics: expected .*accuracy.*got unknown bleu"):
        summary_lib.read(root, ["loss", "bleu"])
    only = summary_lib.read(root, "accuracy")
    # Still ranked by the config's best_metric (loss), though only accuracy is shown.
    assert only.metrics == ("accuracy",) and only.best == 0
    assert "loss_mean" not in summary_lib.records(only)[0]
    with pytest.raises(FileNotFoundError, match=r"sweep\.json"):
        summary_lib.read(root / "members")


# ---------------------------------------------------------------------------- cite


def parse_bibtex(text: str) -> tuple[str, str, dict[str, str]]:
    """(entry type, key, {field: value without the outer braces}) of the single entry."""
    entries = re.findall(r"^@(\w+)\{([^,]+),$", text, flags=re.M)
    assert len(entries) == 1, text
    body = text[text.index("@") :]
    depth = 0
    for c in body:  # braces balance and never go negative
        depth += {"{": 1, "}": -1}.get(c, 0)
        assert depth >= 0
    assert depth == 0
    fields = dict(re.findall(r"^  (\w+) = \{(.*)\},$", body, flags=re.M))
    return entries[0][0], entries[0][1], fields


def test_bibtex_matches_citation_cff_and_cffconvert():
    assert cite.CFF_PATH == ROOT / "CITATION.cff"  # a source checkout reads its own file
    cff = yaml.safe_load((ROOT / "CITATION.cff").read_text())
    ref = cff["preferred-citation"]
    kind, key, fields = parse_bibtex(cite.bibtex(versions=VERSIONS, style="biblatex"))
    assert (kind, key) == ("software", "jaxrnn")
    assert fields["title"] == "{" + ref["title"] + "}"
    assert fields["version"] == str(ref["version"]) == str(cff["version"])
    assert fields["author"] == " and ".join("{" + a["name"] + "}" for a in ref["authors"])
    assert fields["year"] == str(ref["year"])
    # cffconvert's own conversion (an independent implementation) agrees.
    from cffconvert import Citation

    theirs = dict(re.findall(r"^(\w+) = \{(.*)\}", Citation(yaml.safe_dump(cff)).as_bibtex(), re.M))
    assert fields["title"].strip("{}") == theirs["title"]
    assert fields["author"].strip("{}") == theirs["author"]
    assert fields["year"] == theirs["year"]


def test_bibtex_comment_lists_the_versions():
    import flax
    import jax
    import jaxlib
    import optax

    text = cite.bibtex()
    comment = [ln for ln in text.splitlines() if ln.startswith("%")]
    assert all("@" not in ln for ln in comment)
    versions = comment[-1]
    for name, module in (("jax", jax), ("jaxlib", jaxlib), ("flax", flax), ("optax", optax)):
        assert f"{name} {module.__version__}" in versions
    assert f"python {sys.version.split()[0]}" in versions
    commit = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    if commit:
        assert f"git commit {commit}" in versions
    # What the comment shows by default: cite.current_versions(), as run manifests record.
    current = cite.current_versions()
    assert text == cite.bibtex(versions=current)
    assert (current["jax"], current["jaxlib"], current["flax"], current["optax"]) == (
        jax.__version__,
        jaxlib.__version__,
        flax.__version__,
        optax.__version__,
    )
    assert current["git_commit"] == (commit or None)
    assert current["device_count"] == len(jax.devices())


def test_bibtex_preferred_article_and_people():
    cff = {
        "title": "the software",
        "authors": [{"name": "x"}],
        "preferred-citation": {
            "type": "article",
            "title": "Gated RNNs & their 100% training",
            "authors": [
                {"family-names": "Doe", "given-names": "Jane", "name-particle": "van"},
                {"name": "ACME Lab"},
            ],
            "journal": "J. Mach. Learn.",
            "year": 2025,
            "volume": 3,
            "start": 10,
            "end": 20,
            "doi": "10.1/xyz",
        },
    }
    kind, _, f = parse_bibtex(cite.bibtex(cff, {}))
    assert kind == "article"
    assert f["author"] == "van Doe, Jane and {ACME Lab}"
    assert f["title"] == r"{Gated RNNs \& their 100\% training}"
    assert (f["journal"], f["year"], f["volume"], f["pages"], f["doi"]) == (
        "J. Mach. Learn.",
        "2025",
        "3",
        "10--20",
        "10.1/xyz",
    )
    assert "Versions used" not in cite.bibtex(cff, {})


def test_installed_package_falls_back_to_metadata_that_agrees(monkeypatch):
    cff = yaml.safe_load((ROOT / "CITATION.cff").read_text())
    monkeypatch.setattr(cite, "CFF_PATH", ROOT / "no-such-CITATION.cff")
    meta = cite.load_cff()
    assert meta["title"].startswith("jaxrnn")
    assert meta["version"] == str(cff["version"])
    assert meta["authors"] == cff["authors"]
    with pytest.raises(FileNotFoundError, match=r"path: expected a CITATION.cff file"):
        cite.load_cff(ROOT / "missing.cff")


def test_cli_cite_prints_the_bibtex(capsys, tmp_path):
    assert main(["cite"]) == 0
    out = capsys.readouterr().out
    assert out == cite.bibtex()
    other = tmp_path / "CITATION.cff"
    other.write_text("cff-version: 1.2.0\ntitle: other\nauthors:\n  - name: me\n")
    assert main(["cite", "--cff", str(other)]) == 0
    assert parse_bibtex(capsys.readouterr().out)[2]["title"] == "{other}"
    assert main(["cite", "--cff", str(tmp_path / "nope.cff")]) == 2


def _entries(text: str) -> list[str]:
    """The BibTeX entries of ``text``, each from its ``@`` to its closing brace."""
    starts = [m.start() for m in re.finditer(r"^@", text, flags=re.M)]
    return [text[a:b].rstrip() for a, b in zip(starts, [*starts[1:], len(text)], strict=True)]


def _check_run_citation(directory: Path, data_bibtex: str | None) -> None:
    """``CITATION.bib`` = jaxrnn's BibTeX with the run's manifest versions, then the papers
    of the methods the manifest lists (tests/test_cite.py), then the data set's."""
    manifest = json.loads((directory / "manifest.json").read_text())
    versions = cite.current_versions()  # this process's, as cite collects them
    assert {key: manifest[key] for key in cite.VERSION_KEYS} == {
        key: versions[key] for key in cite.VERSION_KEYS
    }
    bib = (directory / "CITATION.bib").read_text()
    ours = cite.bibtex(versions=manifest)
    assert bib.startswith(ours)
    entries = _entries(bib)
    methods = list(dict.fromkeys(m["key"] for m in manifest["methods"]))
    assert [parse_bibtex(e)[1] for e in entries[: 1 + len(methods)]] == ["jaxrnn", *methods]
    if data_bibtex is None:
        assert len(entries) == 1 + len(methods)
        return
    assert len(entries) == 2 + len(methods)
    assert parse_bibtex(entries[-1]) == parse_bibtex(data_bibtex)  # the data set's, last
    assert bib.rstrip().endswith(data_bibtex.strip())
    # Introduced by a comment (the end of the text before it), which holds no "@".
    assert entries[-2].rstrip().splitlines()[-1].startswith("% The data set")
    assert all("@" not in ln for ln in bib.splitlines() if ln.startswith("%"))


def test_sweep_and_train_dirs_hold_citation_bib(sweep, tmp_path):
    root, _ = sweep
    bib = (root / "CITATION.bib").read_text()
    assert "jax 9.9.9" in bib and "git commit abc123" in bib  # the sweep's own versions
    assert parse_bibtex(bib)[2] == parse_bibtex(cite.bibtex(versions=VERSIONS))[2]
    # A run of an experiment without CITATION: jaxrnn's entry alone (what the runner
    # writes into every run directory, a sweep member's included, before its first step).
    config = experiment_lib.get_config(ADDING, smoke=True)
    rundir.prepare(tmp_path / "run", config, ADDING, experiment_lib.citation(ADDING))
    assert experiment_lib.citation(ADDING) is None
    _check_run_citation(tmp_path / "run", None)


def test_a_run_cites_the_data_set_its_experiment_declares(sweep, tmp_path):
    digits = experiment_lib.load("digits_lstm")
    data_bibtex = experiment_lib.citation(digits)
    assert parse_bibtex(data_bibtex)[:2] == ("misc", "alpaydin1998digits")
    config = experiment_lib.get_config(digits, smoke=True)
    rundir.prepare(tmp_path / "run", config, digits, data_bibtex)
    _check_run_citation(tmp_path / "run", data_bibtex)
    # A sweep's own CITATION.bib cites the data set too: the engine records it in sweep.json.
    root = tmp_path / "sweep"
    shutil.copytree(sweep[0], root)
    described = json.loads((root / "sweep.json").read_text())
    (root / "sweep.json").write_text(json.dumps({**described, "citation": data_bibtex}))
    summary_lib.summarize(root, plots=False)
    bib = (root / "CITATION.bib").read_text()
    assert bib.startswith(cite.bibtex(versions=described["versions"]))
    assert bib.rstrip().endswith(data_bibtex.strip())
