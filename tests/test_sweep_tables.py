"""Paper tables of a sweep (:mod:`jaxrnn.sweep.tables`): the rounding rule against
hand-worked cases, and the exact Markdown, LaTeX (plain and siunitx) and CSV text of
fixed summaries; labels from the experiment file, from ``summarize`` and from ``jaxrnn
sweep --label``, each checked against the config's keys and the metrics.

Every expected number here was checked by hand, digit by digit, against the rule in
the module doc (Particle Data Group rounding). Where ``pdflatex`` and siunitx are
installed, the LaTeX tables are also compiled.
"""

import json
import math
import shutil
import subprocess
import textwrap
from decimal import Decimal

import numpy as np
import pytest

from jaxrnn import cli
from jaxrnn.sweep import summary as summary_lib
from jaxrnn.sweep import tables
from jaxrnn.sweep.summary import Setting, Stats, Summary
from jaxrnn.training import experiment as experiment_lib
from jaxrnn.training import loop

nan, inf = math.nan, math.inf


# ------------------------------------------------------------------------ rounding


@pytest.mark.parametrize(
    "mean, std, exponent, expected",
    [
        # The example: 963 lies in 950-999, rounded up to 0.0010 (two figures).
        (0.01774, 0.0009632, 0, ("0.0177", "0.0010", -4)),
        (0.03419, 0.008433, 0, ("0.034", "0.008", -3)),  # 843: one figure
        (0.003689, 0.0003387, 0, ("0.00369", "0.00034", -5)),  # 338: two figures
        (1.0, 0.0354, 0, ("1.000", "0.035", -3)),  # 354: the last of two figures
        (1.0, 0.0355, 0, ("1.00", "0.04", -2)),  # 355: the first of one
        (2.5, 0.949, 0, ("2.5", "0.9", -1)),  # 949: the last of one
        (2.5, 0.95, 0, ("2.5", "1.0", -1)),  # 950: up to 1.0
        (0.125, 0.15, 0, ("0.13", "0.15", -2)),  # a tie, away from zero (round() gives 0.12)
        (-0.125, 0.15, 0, ("-0.13", "0.15", -2)),  # negative: the same digits
        (5678.0, 1234.0, 0, ("5700", "1200", 2)),  # 123: two figures, hundreds
        (-0.4, 12.0, 0, ("0", "12", 0)),  # a std larger than the mean; no "-0"
        (0.017744, nan, 0, ("0.0177", None, -4)),  # one seed: 3 significant figures
        (2.0, 0.0, 0, ("2.00", None, -2)),  # std 0: the same, no ±
        (0.0, 0.0, 0, ("0", None, 0)),
        (123456.0, nan, 0, ("123000", None, 3)),
        (0.01774, 0.0009632, -3, ("17.7", "1.0", -1)),  # in units of 10^-3
        (12345.0, 67.0, 3, ("12.35", "0.07", -2)),  # 12.345 ± 0.067: a tie, and 670
        (inf, nan, 0, ("inf", None, None)),
        (-inf, nan, 0, ("-inf", None, None)),
        (nan, nan, 0, ("nan", None, None)),
    ],
)
def test_round_measurement_hand_worked_cases(mean, std, exponent, expected):
    assert tables.round_measurement(mean, std, exponent) == expected


def test_rounding_keeps_the_value_and_the_figures_the_rule_gives():
    """On random values over 30 decades: each rounded number is within half a unit of
    its last place of the true one, and the std keeps 2 significant figures exactly
    when its three leading digits are 100-354 (1.0 for 950-999 counts as two)."""
    rng = np.random.default_rng(0)
    for mean, std in zip(
        rng.normal(size=500) * 10.0 ** rng.integers(-15, 15, 500),
        rng.random(500) * 10.0 ** rng.integers(-15, 15, 500),
        strict=True,
    ):
        r = tables.round_measurement(mean, std)
        unit = Decimal(1).scaleb(r.place)
        for text, true in ((r.mean, mean), (r.std, std)):
            assert abs(Decimal(text) - Decimal(repr(float(true)))) <= unit / 2
        figures = Decimal(r.std).adjusted() - r.place + 1  # 1200 at place 2: two
        three = int(f"{std:.15e}"[0] + f"{std:.15e}"[2:4])
        assert figures == (2 if three <= 354 or three >= 950 else 1), (std, r)


def test_min_and_max_are_rounded_at_the_means_place():
    assert tables.rounded_at(0.016649, -4) == "0.0166"
    assert tables.rounded_at(4.22e-05, -1, -3) == "0.0"  # 0.0422 in units of 10^-3
    assert tables.rounded_at(-1000.0, None) == "-1000"  # no place: 3 significant figures
    assert tables.rounded_at(-inf, -4) == "-inf"


@pytest.mark.parametrize(
    "values, exponent",
    [
        ([(0.01774, 0.0009632), (0.034567, nan)], 0),
        ([(0.00123, nan), (9999.0, 1.0)], 0),  # the edges of fixed point
        ([(10000.0, 1.0)], 3),
        ([(0.000999, nan)], -6),  # 999 in units of 10^-6
        ([(0.03419, 0.008433), (6.51e-05, 5.119e-06), (0.00032, 0.0004598)], -3),
        ([(12345.0, 67.0)], 3),
        ([(0.0, 0.5), (1e-5, 0.3)], 0),  # a mean near 0: its std sets the scale
        ([(nan, nan), (-inf, nan)], 0),
        ([], 0),
    ],
)
def test_column_exponent(values, exponent):
    assert tables.column_exponent(values) == exponent


def test_default_labels():
    got = tables.default_labels(
        ["optim.learning_rate", "task.length", "model.length"], ["loss", "bits_per_char"]
    )
    assert got == {
        "optim.learning_rate": "learning rate",
        "task.length": "task length",  # two keys end in "length": the whole key
        "model.length": "model length",
        "loss": "test loss",
        "bits_per_char": "test bits per char",
    }


# --------------------------------------------------------------- tables, exactly


def _setting(overrides, finished, diverged, **stats):
    stats = {k: Stats(*v) for k, v in stats.items()}
    return Setting(overrides, ("m0", "m1", "m2"), (0, 1, 2), finished, diverged, stats)


def _lr_h(lr):
    return {"optim.learning_rate": lr, "model.hidden_size": 32}


NOTHING = (nan, nan, nan, nan, 0)
# A best row of three seeds, one of a single seed (two diverged), one all diverged.
FIXED = Summary(
    swept=("optim.learning_rate", "model.hidden_size"),
    metrics=("loss", "accuracy"),
    best_metric="loss",
    best_mode="min",
    settings=(
        _setting(
            _lr_h(0.001),
            3,
            0,
            loss=(0.01774, 0.0009632, 0.0166, 0.0189, 3),
            accuracy=(0.912, 0.0123, 0.9, 0.925, 3),
        ),
        _setting(
            _lr_h(0.03),
            1,
            2,
            loss=(0.034567, nan, 0.034567, 0.034567, 1),
            accuracy=(0.5, nan, 0.5, 0.5, 1),
        ),
        _setting(_lr_h(0.1), 0, 3, loss=NOTHING, accuracy=NOTHING),
    ),
    best=0,
    members=(),
    random={},
    directions={"loss": "min", "accuracy": "max"},
    labels={"model.hidden_size": "$H$"},
)

CAPTION = (
    "Test metrics over each setting's finished seeds (each scored once, with its params "
    "chosen on validation): mean ± sample std (ddof = 1, n = finished), [min, max]; diverged "
    "members are not averaged. ↓: lower is better; ↑: higher is better. "
    "{units}The std is rounded by the Particle Data Group rule, to 2 significant figures "
    "where its three leading digits are 100 to 354 and to 1 otherwise (0.00096 becomes "
    "0.0010), and the mean to the same place; a mean without ± (one seed, or std 0) has 3 "
    "significant figures. {bold}."
)


CHOSEN = "Bold: the setting chosen on validation, of lowest mean best validation "


def _latex_caption(**fields) -> str:
    return (
        CAPTION.format(**fields)
        .replace("±", r"$\pm$")
        .replace("↓", r"$\downarrow$")
        .replace("↑", r"$\uparrow$")
    )


def test_markdown_exactly():
    assert tables.markdown(FIXED) == (
        "| learning rate | $H$ | finished | diverged | test loss ↓ | [min, max] | test accuracy ↑ | [min, max] |\n"  # noqa: E501
        "|---|---|---:|---:|---:|---:|---:|---:|\n"
        "| **0.001** | **32** | **3/3** | **0** | **0.0177 ± 0.0010** | **[0.0166, 0.0189]** | **0.912 ± 0.012** | **[0.900, 0.925]** |\n"  # noqa: E501
        "| 0.03 | 32 | 1/3 | 2 | 0.0346 | [0.0346, 0.0346] | 0.500 | [0.500, 0.500] |\n"
        "| 0.1 | 32 | 0/3 | 3 | – | – | – | – |\n"
        "\n"
        + CAPTION.format(units="", bold=CHOSEN + "loss (learning rate = 0.001, $H$ = 32)")
        + "\n"
    )


def test_latex_exactly():
    caption = _latex_caption(units="", bold=CHOSEN + "loss (learning rate = 0.001, $H$ = 32)")
    assert tables.latex(FIXED) == textwrap.dedent(
        r"""
        \begin{table}[t]
        \centering
        \begin{tabular}{llrrrrrr}
        \toprule
        learning rate & $H$ & finished & diverged & test loss $\downarrow$ & [min, max] & test accuracy $\uparrow$ & [min, max] \\
        \midrule
        \textbf{0.001} & \textbf{32} & \textbf{3/3} & \textbf{0} & \textbf{\boldmath $0.0177 \pm 0.0010$} & \textbf{\boldmath $[0.0166, 0.0189]$} & \textbf{\boldmath $0.912 \pm 0.012$} & \textbf{\boldmath $[0.900, 0.925]$} \\
        0.03 & 32 & 1/3 & 2 & $0.0346$ & $[0.0346, 0.0346]$ & $0.500$ & $[0.500, 0.500]$ \\
        0.1 & 32 & 0/3 & 3 & -- & -- & -- & -- \\
        \bottomrule
        \end{tabular}
        \caption{CAPTION}
        \end{table}
        """  # noqa: E501
    ).lstrip().replace("CAPTION", caption)


def test_latex_siunitx_exactly():
    caption = _latex_caption(
        units="", bold=CHOSEN + r"loss (learning rate = \num{0.001}, $H$ = \num{32})"
    )
    assert tables.latex(FIXED, siunitx=True) == textwrap.dedent(
        r"""
        \begin{table}[t]
        \centering
        \sisetup{uncertainty-mode = separate, table-align-uncertainty = false, reset-text-series = false, text-series-to-math = true}
        \begin{tabular}{llrrS[table-format=1.4(2)]rS[table-format=1.3(2)]r}
        \toprule
        learning rate & $H$ & finished & diverged & {test loss $\downarrow$} & [min, max] & {test accuracy $\uparrow$} & [min, max] \\
        \midrule
        \bfseries \num{0.001} & \bfseries \num{32} & \bfseries 3/3 & \bfseries 0 & \bfseries 0.0177 \pm 0.0010 & \bfseries [\num{0.0166}, \num{0.0189}] & \bfseries 0.912 \pm 0.012 & \bfseries [\num{0.900}, \num{0.925}] \\
        \num{0.03} & \num{32} & 1/3 & 2 & 0.0346 & [\num{0.0346}, \num{0.0346}] & 0.500 & [\num{0.500}, \num{0.500}] \\
        \num{0.1} & \num{32} & 0/3 & 3 & {--} & {--} & {--} & {--} \\
        \bottomrule
        \end{tabular}
        \caption{CAPTION}
        \end{table}
        """  # noqa: E501
    ).lstrip().replace("CAPTION", caption)


def test_csv_keeps_raw_keys_and_every_digit():
    # No labels and no rounding: a program reads the CSV back to the same floats.
    assert tables.csv_text(FIXED) == (
        "optim.learning_rate,model.hidden_size,n_members,n_finished,n_diverged,best,"
        "loss_mean,loss_std,loss_min,loss_max,loss_n,"
        "accuracy_mean,accuracy_std,accuracy_min,accuracy_max,accuracy_n\n"
        "0.001,32,3,3,0,True,0.01774,0.0009632,0.0166,0.0189,3,0.912,0.0123,0.9,0.925,3\n"
        "0.03,32,3,1,2,False,0.034567,nan,0.034567,0.034567,1,0.5,nan,0.5,0.5,1\n"
        "0.1,32,3,0,3,False,nan,nan,nan,nan,0,nan,nan,nan,nan,0\n"
    )


# A loss column spanning three decades (in units of 10^-3), a negative metric to
# maximise with a std-0 row and an infinite one, and the best row not first.
WIDE = Summary(
    swept=("optim.learning_rate",),
    metrics=("loss", "log_likelihood"),
    best_metric="loss",
    best_mode="min",
    settings=(
        _setting(
            {"optim.learning_rate": 3e-4},
            3,
            0,
            loss=(0.03419, 0.008433, 0.0247, 0.04084, 3),
            log_likelihood=(-1234.5, 56.7, -1300.0, -1200.0, 3),
        ),
        _setting(
            {"optim.learning_rate": 3e-2},
            3,
            0,
            loss=(6.51e-05, 5.119e-06, 6.206e-05, 7.101e-05, 3),
            log_likelihood=(-2469.0, 0.0, -2469.0, -2469.0, 3),
        ),
        _setting(
            {"optim.learning_rate": 1e-1},
            3,
            0,
            loss=(0.00032, 0.0004598, 4.22e-05, 0.0008507, 3),
            log_likelihood=(-inf, nan, -inf, -1000.0, 3),
        ),
    ),
    best=1,
    members=(),
    random={},
    directions={"loss": "min", "log_likelihood": "max"},
    labels={"loss": "MSE"},
)


def test_markdown_with_a_column_exponent_negatives_and_infinity():
    units = "(×10ᵏ): in units of 10ᵏ. "
    assert tables.markdown(WIDE) == (
        "| learning rate | finished | diverged | MSE (×10⁻³) ↓ | [min, max] (×10⁻³) | test log likelihood ↑ | [min, max] |\n"  # noqa: E501
        "|---|---:|---:|---:|---:|---:|---:|\n"
        "| 0.0003 | 3/3 | 0 | 34 ± 8 | [25, 41] | -1230 ± 60 | [-1300, -1200] |\n"
        "| **0.03** | **3/3** | **0** | **0.065 ± 0.005** | **[0.062, 0.071]** | **-2470** | **[-2470, -2470]** |\n"  # noqa: E501
        "| 0.1 | 3/3 | 0 | 0.3 ± 0.5 | [0.0, 0.9] | -∞ | [-∞, -1000] |\n"
        "\n" + CAPTION.format(units=units, bold=CHOSEN + "MSE (learning rate = 0.03)") + "\n"
    )
    tex = tables.latex(WIDE)
    assert r"MSE ($\times 10^{-3}$) $\downarrow$ & [min, max] ($\times 10^{-3}$)" in tex
    assert r"& $-\infty$ & $[-\infty, -1000]$ \\" in tex
    assert r"($\times 10^{k}$): in units of $10^{k}$." in tex
    siunitx = tables.latex(WIDE, siunitx=True)
    assert r"{lrrS[table-format=2.3(1)]rS[table-format=-4(2)]r}" in siunitx
    assert r"& {$-\infty$} & [{$-\infty$}, \num{-1000}] \\" in siunitx


def test_a_sweep_without_validation_says_its_best_row_is_chosen_on_test():
    caption = tables.markdown(FIXED._replace(best_by="test")).splitlines()[-1]
    assert caption.endswith(
        "Bold: the best setting (no validation split to choose on), of lowest mean test loss "
        "(learning rate = 0.001, $H$ = 32)."
    )


def test_label_text_is_escaped_for_latex_but_its_math_is_not():
    labelled = FIXED._replace(labels={"optim.learning_rate": r"lr_0 & 100% of $\eta_{\max}$"})
    assert (
        tables.latex(labelled)
        .splitlines()[4]
        .startswith(r"lr\_0 \& 100\% of $\eta_{\max}$ & hidden size & finished")
    )
    assert tables.markdown(labelled).startswith(r"| lr_0 & 100% of $\eta_{\max}$ | hidden size |")


@pytest.mark.skipif(
    not shutil.which("pdflatex") or not shutil.which("kpsewhich"), reason="no pdflatex"
)
def test_the_latex_tables_compile(tmp_path):
    found = subprocess.run(["kpsewhich", "siunitx.sty", "booktabs.sty"], capture_output=True)
    if len(found.stdout.split()) < 2:
        pytest.skip("siunitx or booktabs not installed")
    body = "".join(tables.latex(s, siunitx=x) for s in (FIXED, WIDE) for x in (False, True))
    (tmp_path / "t.tex").write_text(
        "\\documentclass{article}\n\\usepackage{booktabs}\n\\usepackage{siunitx}\n"
        f"\\begin{{document}}\n{body}\\end{{document}}\n"
    )
    done = subprocess.run(
        ["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "t.tex"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout[-3000:]


# -------------------------------------------------------------------------- labels


def _write_experiment(folder, labels: str):
    path = folder / "labelled.py"
    path.write_text(
        textwrap.dedent(
            f"""
            from jaxrnn.training import load_experiment

            adding = load_experiment("adding_lstm").module
            get_config, get_data, get_model = adding.get_config, adding.get_data, adding.get_model
            get_objective = adding.get_objective
            LABELS = {labels}
            """
        )
    )
    return experiment_lib.load(path)


@pytest.mark.parametrize(
    "labels, message",
    [
        (
            '{"optim.lr": "x"}',
            r"LABELS: unknown key 'optim.lr'.*did you mean 'optim.learning_rate'",
        ),
        ('{"los": "x"}', r"LABELS: unknown key 'los': expected a metric \(loss\).*'loss'"),
        ('{"loss": 3}', r"LABELS: 'loss': expected a str key and a str text, got 3"),
        ('{"loss": "$x"}', r"LABELS: 'loss': '\$x' has an unpaired '\$'"),
        ('["loss"]', r"LABELS: expected a dict \{key: text\}, got list"),
    ],
)
def test_experiment_labels_are_checked_before_any_compute(tmp_path, labels, message):
    experiment = _write_experiment(tmp_path, labels)
    config = experiment_lib.get_config(experiment, smoke=True)
    with pytest.raises(experiment_lib.ExperimentError, match=message):
        loop.build(experiment, [config])


def test_labels_given_to_summarize_override_the_experiments_and_are_checked(tmp_path):
    from test_sweep_results import write_sweep

    root = write_sweep(tmp_path)
    described = json.loads((root / "sweep.json").read_text())
    recorded = {"loss": "MSE", "optim.clip_norm": "clip"}  # as the engine records LABELS
    (root / "sweep.json").write_text(json.dumps({**described, "labels": recorded}))
    summary = summary_lib.summarize(root, labels={"loss": "test MSE"}, plots=False, siunitx=True)
    assert summary.labels == {"loss": "test MSE", "optim.clip_norm": "clip"}
    header = (root / "summary.md").read_text().splitlines()[0]
    assert header.startswith("| learning rate | clip | finished | diverged | test MSE ↓ |")
    assert "S[table-format=" in (root / "summary.tex").read_text()
    with pytest.raises(ValueError, match=r"labels: unknown key 'acuracy'.*'accuracy'"):
        summary_lib.read(root, labels={"acuracy": "x"})
    # Any config key may be labelled, swept or not; a metric too, shown or not.
    summary_lib.read(root, "loss", labels={"train.batch_size": "B", "accuracy": "acc"})


@pytest.mark.usefixtures("standard_dtype_promotion")
def test_cli_sweep_writes_labelled_tables(tmp_path, capsys):
    experiment = _write_experiment(tmp_path, '{"optim.learning_rate": "$\\\\eta$", "loss": "MSE"}')
    argv = [
        "sweep", str(experiment.path), "--smoke", "--seeds", "2", "train.steps=3",
        "--grid", "optim.learning_rate=1e-3,3e-3", "--sweep-dir", str(tmp_path / "s"),
        "--no-progress",
    ]  # fmt: skip
    assert cli.main([*argv, "--label", "loss=test MSE", "--siunitx"]) == 0
    root = tmp_path / "s"
    assert json.loads((root / "sweep.json").read_text())["labels"] == {
        "optim.learning_rate": "$\\eta$",
        "loss": "MSE",
    }
    header = (root / "summary.md").read_text().splitlines()[0]
    assert header.startswith("| $\\eta$ | finished | diverged | test MSE ↓ | [min, max] |")
    assert "S[table-format=" in (root / "summary.tex").read_text()
    capsys.readouterr()
    # A finished sweep run again only rewrites its tables; a --label key must exist.
    assert cli.main([*argv, "--label", "los=x"]) == 2
    out = " ".join(capsys.readouterr().out.split())
    assert "unknown key 'los'" in out and "the sweep itself finished" in out
    assert cli.main([*argv, "--label", "no equals sign"]) == 2
    assert "expected KEY=TEXT" in " ".join(capsys.readouterr().out.split())
