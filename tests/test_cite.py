"""``jaxrnn cite``: the methods a run used, each with its paper, and jaxrnn's own entry.

Every BibTeX entry the library declares (each beside the code of its method) and every
entry ``jaxrnn cite`` prints is parsed with bibtexparser 2, an independent parser; the
entry types and fields are checked against what ``plain.bst`` and natbib's
``plainnat.bst`` render (their required fields per type, and ``@misc`` for software,
which neither style defines as ``@software``). Which methods a run cites is checked on
configs directly (no training): a GRU does not cite the LSTM's papers, the forget-gate
bias is cited only when it is non-zero, clipping only when it is on, and so on.
"""

import importlib
import json
import pkgutil
import re
import subprocess
from pathlib import Path

import pytest

import jaxrnn
from jaxrnn.cells import registry
from jaxrnn.cells.references import Reference, entry_key, short_citation
from jaxrnn.cli import main
from jaxrnn.tasks import seq2seq
from jaxrnn.training import Config, ModelConfig, OptimConfig, cite, rundir, section
from jaxrnn.training import experiment as experiment_lib

bibtexparser = pytest.importorskip("bibtexparser", minversion="2.0")

ROOT = Path(__file__).resolve().parent.parent
CONFIGS = ROOT / "configs"
VERSIONS = {"jaxrnn": "0.1.0", "jax": "9.9.9", "git_commit": "0123456789abcdef" * 2 + "01234567"}

# The fields plain.bst needs per entry type (it warns and drops text without them);
# plainnat.bst requires the same.
REQUIRED = {
    "article": {"author", "title", "journal", "year"},
    "inproceedings": {"author", "title", "booktitle", "year"},
    "phdthesis": {"author", "title", "school", "year"},
    "misc": {"author", "title"},
}
# What plain.bst renders of a @misc (plainnat.bst: these and doi, url).
MISC_FIELDS = {"author", "title", "howpublished", "month", "year", "note", "doi", "url"}


def parse(text: str):
    """The entries of ``text`` by bibtexparser 2; no block may fail (duplicate keys fail)."""
    library = bibtexparser.parse_string(text)
    assert library.failed_blocks == [], [b.error for b in library.failed_blocks]
    return library.entries


def values(entry) -> dict[str, str]:
    return {name.lower(): field.value for name, field in entry.fields_dict.items()}


def declared_entries() -> dict[str, str]:
    """Every BibTeX constant of the library (``NAME = "@type{..."``) by module and name."""
    found = {}
    for info in pkgutil.walk_packages(jaxrnn.__path__, "jaxrnn."):
        module = importlib.import_module(info.name)
        for name, value in vars(module).items():
            if name.isupper() and isinstance(value, str) and value.lstrip().startswith("@"):
                found.setdefault(value, f"{info.name}.{name}")  # first seen: a re-export's
    return {where: text for text, where in found.items()}


def keys(references) -> list[str]:
    return [r.key for r in references]


def config(**model) -> Config:
    return Config(model=ModelConfig(**model))


def load(name: str) -> experiment_lib.Experiment:
    # This checkout's file (a bare name would find the installed package's copy).
    return experiment_lib.load(CONFIGS / f"{name}.py")


# ------------------------------------------------------------------- the entries


def test_every_declared_entry_parses_has_a_unique_key_and_what_plain_renders():
    declared = declared_entries()
    assert len(declared) >= 30
    data_sets = [experiment_lib.citation(load(n)) for n in ("digits_lstm", "shakespeare_char")]
    everything = "\n\n".join([*declared.values(), *data_sets])
    entries = parse(everything)  # one library: a repeated key is a failed block
    assert len(entries) == len(declared) + 2
    # One place each: every entry is written out in one module of the library.
    sources = [p.read_text() for p in (ROOT / "jaxrnn").rglob("*.py")]
    for where, text in declared.items():
        head = text.split(",", 1)[0] + ","
        assert sum(src.count(head) for src in sources) == 1, where
    for where, text in declared.items():
        (entry,) = parse(text)
        fields = values(entry)
        assert entry.key == entry_key(text), where
        assert entry.entry_type in REQUIRED, where
        assert REQUIRED[entry.entry_type] <= set(fields), (where, set(fields))
        assert re.fullmatch(r"(1[89]|20)\d\d", fields["year"]), where
        # plain.bst refuses a volume beside a number where it prints "volume V of SERIES".
        if entry.entry_type == "inproceedings":
            assert not {"volume", "number"} <= set(fields), where
        if entry.entry_type == "misc":
            assert set(fields) <= MISC_FIELDS, where
        # natbib's \doi and \url typeset these verbatim only with the url package.
        for name in ("doi", "url"):
            assert not re.search(r"[_%#&\\{}]", fields.get(name, "")), (where, name)
        # The citation in words, from the same fields: "Last[ & Last| et al.] year".
        short = short_citation(text)
        last = fields["author"].split(" and ")[0].split(",")[0]
        assert short.endswith(fields["year"]) and short.split()[0] in last, (where, short)


def test_short_citations_name_one_two_or_many_authors():
    from jaxrnn.cells import elman, gru, lstm

    assert Reference("x", elman.ELMAN_1990).short == "Elman 1990"
    assert Reference("x", lstm.HOCHREITER_1997).short == "Hochreiter & Schmidhuber 1997"
    assert Reference("x", gru.CHO_2014).short == "Cho et al. 2014"
    assert Reference("x", "@misc{k,\n  title = {t},\n}").short == "k"
    with pytest.raises(ValueError, match=r"bibtex: expected an entry"):
        entry_key("Hochreiter 1997")


# ------------------------------------------------------------ which are cited


def test_a_gru_run_does_not_cite_the_lstm():
    gru = keys(cite.methods(config(cell="gru")))
    assert "cho2014learning" in gru
    assert not {"hochreiter1997long", "gers2000learning", "jozefowicz2015empirical"} & set(gru)
    lstm = keys(cite.methods(config(cell="lstm")))
    assert {"hochreiter1997long", "gers2000learning"} <= set(lstm)
    assert "cho2014learning" not in lstm


def test_the_forget_bias_is_cited_only_when_it_is_set_and_not_replaced_by_chrono():
    def bias_methods(**model):
        found = cite.methods(config(cell="lstm", **model))
        return {r.key for r in found if r.method.startswith("forget-gate bias")}, keys(found)

    assert bias_methods(forget_bias=1.0)[0] == {"gers2000learning", "jozefowicz2015empirical"}
    assert bias_methods(forget_bias=2.0)[0] == {"gers2000learning", "jozefowicz2015empirical"}
    # A zero bias is no method: the forget gate itself is still Gers et al.'s.
    none, cited = bias_methods(forget_bias=0.0)
    assert none == set() and "jozefowicz2015empirical" not in cited
    assert "gers2000learning" in cited
    # Chrono initialisation draws the forget bias instead (lstm.from_settings).
    none, cited = bias_methods(chrono_t_max=100.0)
    assert none == set() and "tallec2018can" in cited
    assert "tallec2018can" not in keys(cite.methods(config(cell="lstm")))
    assert "tallec2018can" in keys(cite.methods(config(cell="gru", chrono_t_max=50.0)))


def test_initialisers_layer_norm_and_the_stack():
    assert "saxe2014exact" in keys(cite.methods(config(cell="elman")))
    irnn = cite.methods(config(cell="elman", activation="relu", recurrent_init="identity"))
    assert ("IRNN: ReLU with identity-initialised recurrent weights", "le2015simple") in [
        (r.method, r.key) for r in irnn
    ]
    assert "saxe2014exact" not in keys(irnn) and "elman1990finding" in keys(irnn)
    tanh_identity = cite.methods(config(cell="elman", recurrent_init="identity"))
    assert [r.method for r in tanh_identity if r.key == "le2015simple"] == [
        "identity-initialised recurrent weights"
    ]
    assert "ba2016layer" not in keys(cite.methods(config(cell="lstm")))
    assert "ba2016layer" in keys(cite.methods(config(cell="gru", layer_norm=True)))
    deep = keys(cite.methods(config(cell="gru", num_layers=2, hidden_size=8)))
    assert not {"gal2016theoretically", "he2016deep"} & set(deep)
    deep = cite.methods(config(cell="gru", num_layers=2, dropout=0.2, residual=True))
    assert {"gal2016theoretically", "he2016deep"} <= set(keys(deep))


@pytest.mark.parametrize("name", registry.names())
def test_every_registered_cell_cites_its_paper_for_the_settings_a_config_passes(name):
    factory = registry.lookup(name)
    assert factory.references is not None
    found = ModelConfig(cell=name).references()  # called with the settings make_cell passes
    assert found and all(isinstance(r, Reference) for r in found)
    assert cite.undeclared(Config(model=ModelConfig(cell=name))) == []


def test_the_optimizer_cites_what_it_runs():
    def cited(**optim):
        return set(keys(cite.methods(Config(optim=OptimConfig(**optim)))))

    assert {"kingma2015adam", "pascanu2013difficulty"} <= cited()  # the defaults
    assert "pascanu2013difficulty" not in cited(clip_norm=None)
    assert "mikolov2012statistical" not in cited()
    assert "mikolov2012statistical" in cited(clip_norm=None, clip_value=0.5)
    sgd = cited(name="sgd")
    assert "robbins1951stochastic" in sgd and "kingma2015adam" not in sgd
    assert not {"polyak1964some", "sutskever2013importance"} & sgd
    assert "polyak1964some" in cited(name="sgd", momentum=0.9)
    nesterov = cited(name="sgd", momentum=0.9, nesterov=True)
    assert "sutskever2013importance" in nesterov and "polyak1964some" not in nesterov
    assert {"kingma2015adam", "loshchilov2019decoupled"} <= cited(name="adamw")
    assert "loshchilov2019decoupled" not in cited()
    assert "tieleman2012rmsprop" in cited(name="rmsprop")
    assert "duchi2011adaptive" in cited(name="adagrad")
    assert "loshchilov2017sgdr" in cited(schedule="warmup_cosine", warmup_steps=10)
    assert "loshchilov2017sgdr" not in cited(schedule="exponential")


def test_the_encoder_decoder_experiment_cites_its_attention():
    addition = load("addition_seq2seq")

    def cited(*overrides):
        return keys(cite.methods(experiment_lib.get_config(addition, overrides, smoke=True)))

    default = cited()
    assert {"bahdanau2015neural", "luong2015effective", "sutskever2014sequence"} <= set(default)
    assert {"hochreiter1997long", "cho2014learning"} <= set(default)  # the cell, the enc-dec
    assert not {"schuster1997bidirectional", "bengio2015scheduled"} & set(default)
    plain = cited("model.attention=none")
    assert not {"bahdanau2015neural", "luong2015effective"} & set(plain)
    dot = cited("model.attention=dot")
    assert "luong2015effective" in dot and "bahdanau2015neural" not in dot
    general = cited("model.attention=general")
    assert "luong2015effective" in general and "bahdanau2015neural" not in general
    # Luong's score in Bahdanau's decoder: both papers.
    mixed = cited("model.attention=general", "model.attention_style=bahdanau")
    assert {"bahdanau2015neural", "luong2015effective"} <= set(mixed)
    more = cited("model.bidirectional=true", "model.scheduled_sampling=0.25")
    assert {"schuster1997bidirectional", "bengio2015scheduled"} <= set(more)
    assert keys(seq2seq.references()) == ["sutskever2014sequence", "cho2014learning"]


def test_every_declared_entry_is_cited_by_some_setting():
    """No entry is dead text: each is what some setting of a config (or the
    encoder-decoder's references) cites, or a data set's entry that a built-in
    experiment cites (``CITATION = jaxrnn.tasks.mnist1d.CITATION``)."""
    configs = [
        config(cell=name, **settings)
        for name in registry.names()
        for settings in ({}, {"forget_bias": 0.0})
        if name not in ("elman", "gru", "lru", "min_gru", "min_lstm", "rg_lru", "recursive")
        or not settings
    ]
    configs += [
        config(cell="elman", recurrent_init="identity"),
        config(cell="gru", chrono_t_max=50.0, layer_norm=True, num_layers=2, dropout=0.1,
               residual=True),
        *[Config(optim=OptimConfig(name=n)) for n in ("sgd", "adamw", "rmsprop", "adagrad")],
        Config(optim=OptimConfig(name="sgd", momentum=0.9)),
        Config(optim=OptimConfig(name="sgd", momentum=0.9, nesterov=True)),
        Config(optim=OptimConfig(clip_value=1.0, schedule="warmup_cosine")),
    ]  # fmt: skip
    cited = {r.bibtex for c in configs for r in cite.methods(c)}
    for kind in ("additive", "dot"):
        cited |= {r.bibtex for r in seq2seq.references(kind, True, 0.5)}
    experiments = [load(name).module for name in experiment_lib.builtin_names()]
    datasets = {m.CITATION for m in experiments if getattr(m, "CITATION", None)}
    assert set(declared_entries().values()) - datasets == cited
    assert not cited & datasets  # a data set is not a method


def test_an_opaque_model_is_named_not_guessed():
    @section
    class MyModel:
        width: int = 3

    @section
    class Cited:
        width: int = 3

        def references(self):
            return [Reference("my own cell", "@misc{mine2026,\n  title = {Mine},\n}")]

    @section
    class Broken:
        width: int = 3

        def references(self):
            return ["@misc{mine2026, title = {Mine}}"]

    opaque = Config(model=MyModel())
    assert keys(cite.methods(opaque)) == ["pascanu2013difficulty", "kingma2015adam"]
    assert cite.undeclared(opaque) == [
        "the experiment's model section MyModel declares no references()"
    ]
    text = cite.document({**VERSIONS, **cite.record(opaque)})
    assert "% Not listed: the experiment's model section MyModel declares no references()." in text
    assert keys(cite.methods(Config(model=Cited())))[0] == "mine2026"
    assert cite.undeclared(Config(model=Cited())) == []
    with pytest.raises(ValueError, match=r"model: Broken.references\(\) must return"):
        cite.methods(Config(model=Broken()))


# ------------------------------------------------------------ jaxrnn's entry


def test_jaxrnn_is_a_misc_that_plain_and_natbib_render_with_version_and_commit():
    (entry,) = parse(cite.bibtex(versions=VERSIONS))
    fields = values(entry)
    assert (entry.entry_type, entry.key) == ("misc", "jaxrnn")
    assert {"author", "title", "howpublished", "year", "note"} <= set(fields) <= MISC_FIELDS
    assert fields["author"] == "{The jaxrnn authors}"
    assert "0.1.0" in fields["note"] and VERSIONS["git_commit"][:12] in fields["note"]
    assert fields["howpublished"]
    # Without a commit (an installed wheel) the note still carries the version.
    (entry,) = parse(cite.bibtex(versions={"jaxrnn": "0.1.0"}))
    assert values(entry)["note"] == "Version 0.1.0"


def test_biblatex_style_gives_software_with_its_version_field():
    (entry,) = parse(cite.bibtex(versions=VERSIONS, style="biblatex"))
    fields = values(entry)
    assert (entry.entry_type, fields["version"]) == ("software", "0.1.0")
    assert VERSIONS["git_commit"][:12] in fields["note"]
    with pytest.raises(ValueError, match=r"style: expected 'bibtex' .* got 'apa'"):
        cite.bibtex(style="apa")


# ------------------------------------------------------------ runs and sweeps


@pytest.fixture(scope="module")
def dirs(tmp_path_factory):
    """A run of the digits experiment (LSTM, a data set) and a sweep of an LSTM and a GRU
    member, as ``rundir.prepare`` writes them before a first step (nothing trained)."""
    root = tmp_path_factory.mktemp("cite")
    digits = load("digits_lstm")
    run = root / "digits"
    cfg = experiment_lib.get_config(digits, smoke=True)
    rundir.prepare(run, cfg, digits, experiment_lib.citation(digits))
    adding = load("adding_lstm")
    sweep = root / "sweep"
    for member, overrides in (("m000", []), ("m001", ["model.cell=gru", "optim.clip_norm=none"])):
        cfg = experiment_lib.get_config(adding, overrides, smoke=True)
        rundir.prepare(sweep / "members" / member, cfg, adding, None)
    (sweep / "sweep.json").write_text(json.dumps({"versions": VERSIONS, "citation": None}))
    return run, sweep


def test_a_runs_manifest_lists_its_methods_and_its_bib_holds_their_entries(dirs):
    run, _ = dirs
    manifest = json.loads((run / "manifest.json").read_text())
    assert [m["method"] for m in manifest["methods"]][:2] == ["LSTM", "LSTM forget gate"]
    for m in manifest["methods"]:
        assert set(m) == {"method", "reference", "key", "bibtex"}
        assert m["reference"] == short_citation(m["bibtex"]) and m["key"] == entry_key(m["bibtex"])
    assert manifest["data_set"]["key"] == "alpaydin1998digits"
    assert manifest["not_listed"] == []
    bib = (run / "CITATION.bib").read_text()
    entries = parse(bib)
    methods = list(dict.fromkeys(m["key"] for m in manifest["methods"]))
    assert [e.key for e in entries] == ["jaxrnn", *methods, "alpaydin1998digits"]
    assert bib == cite.document(manifest)


def test_cli_cite_of_a_run_prints_jaxrnn_and_exactly_its_references(dirs, capsys):
    run, _ = dirs
    assert main(["cite", str(run)]) == 0
    out = capsys.readouterr().out
    assert out == (run / "CITATION.bib").read_text()
    assert main(["cite", str(run), "--style", "biblatex"]) == 0
    entries = parse(capsys.readouterr().out)
    assert (entries[0].entry_type, entries[0].key) == ("software", "jaxrnn")
    assert [e.key for e in entries[1:]] == [e.key for e in parse(out)[1:]]
    commit = cite.current_versions()["git_commit"]
    if commit:
        assert commit[:12] in values(parse(out)[0])["note"]
    assert main(["cite"]) == 0
    assert [e.key for e in parse(capsys.readouterr().out)] == ["jaxrnn"]


def test_a_sweep_cites_the_union_of_its_members(dirs, capsys):
    _, sweep = dirs
    assert main(["cite", str(sweep)]) == 0
    out = capsys.readouterr().out
    cited = [e.key for e in parse(out)]
    assert cited[0] == "jaxrnn" and "git commit 0123456789ab" in out  # the sweep's versions
    # The LSTM member's and the GRU member's; the LSTM's clipping cited once.
    assert {"hochreiter1997long", "cho2014learning", "pascanu2013difficulty"} <= set(cited)
    assert len(cited) == len(set(cited))
    gru = main(["cite", str(sweep / "members" / "m001")])
    gru_keys = [e.key for e in parse(capsys.readouterr().out)]
    assert gru == 0 and "hochreiter1997long" not in gru_keys
    assert "pascanu2013difficulty" not in gru_keys  # clipping off for this member
    cite.write_bibtex(sweep / "CITATION.bib", cite.collect(sweep))  # as summarize() does
    assert (sweep / "CITATION.bib").read_text() == out


@pytest.mark.parametrize(
    "args, words",
    [
        (["nowhere"], ["run_or_sweep_dir", "'nowhere'", "no such path"]),
        (["file.txt"], ["run_or_sweep_dir", "'file.txt'", "is a file"]),
        (["folder"], ["run_or_sweep_dir", "'folder'", "not a run directory", "sweep.json"]),
        (["unstarted"], ["run_or_sweep_dir", "'unstarted'", "has not started"]),
        (["--style", "apa"], ["--style", "'apa'", "'bibtex'", "'biblatex'"]),
    ],
)
def test_bad_input_is_one_line_naming_the_argument(args, words, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "file.txt").write_text("x")
    (tmp_path / "folder").mkdir()
    (tmp_path / "unstarted").mkdir()
    (tmp_path / "unstarted" / "config.json").write_text("{}")
    assert main(["cite", *args]) == 2
    out = " ".join(capsys.readouterr().out.split())  # rich wraps long lines
    assert out.startswith("error:") and out.count("error:") == 1
    for word in words:
        assert word in out


def test_the_bib_compiles_with_plain_and_natbib_where_tex_is_installed(dirs, tmp_path):
    """Only where pdflatex and bibtex are installed (CI has no TeX): BibTeX warns about
    nothing in a run's CITATION.bib, in plain and in natbib's plainnat."""
    import shutil

    if not (shutil.which("pdflatex") and shutil.which("bibtex")):
        pytest.skip("pdflatex and bibtex are not installed")
    run, _ = dirs
    shutil.copy(run / "CITATION.bib", tmp_path / "refs.bib")
    for style, package in (("plain", ""), ("plainnat", r"\usepackage{natbib}")):
        (tmp_path / f"{style}.tex").write_text(
            f"\\documentclass{{article}}\n{package}\n\\begin{{document}}\n\\nocite{{*}}\n"
            f"\\bibliographystyle{{{style}}}\n\\bibliography{{refs}}\n\\end{{document}}\n"
        )
        for tool in (["pdflatex", "-interaction=nonstopmode"], ["bibtex"]):
            proc = subprocess.run([*tool, style], cwd=tmp_path, capture_output=True, text=True)
            assert proc.returncode == 0, proc.stdout[-2000:]
        assert "Warning" not in (tmp_path / f"{style}.blg").read_text()
