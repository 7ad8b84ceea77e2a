"""Typed configs: every config file, overrides of each type, every error message, hashing.

No training runs here (the training tests run the smoke modes).
"""

import dataclasses
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pydantic
import pytest

from jaxrnn.training import config as config_lib
from jaxrnn.training.config import (
    Config,
    ConfigError,
    ModelConfig,
    TaskConfig,
    apply_overrides,
    config_hash,
    from_dict,
    load,
    to_dict,
)

REPO = Path(__file__).resolve().parents[1]
CONFIG_FILES = sorted(p for p in (REPO / "configs").glob("*.py") if not p.name.startswith("_"))


def _leaves(d, prefix=""):
    """``{dotted key: value}`` of a nested dict."""
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_leaves(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def _get(config, key):
    for part in key.split("."):
        config = getattr(config, part)
    return config


# --- config files -----------------------------------------------------------------------


def test_config_files_exist():
    names = {p.stem for p in CONFIG_FILES}
    assert {"adding_lstm", "copying_gru", "parity_lstm", "digits_lstm"} <= names
    assert config_lib.available_configs() == sorted(names)


@pytest.mark.parametrize("path", CONFIG_FILES, ids=lambda p: p.stem)
@pytest.mark.parametrize("smoke", [False, True])
def test_config_file_loads_validates_and_round_trips(path, smoke):
    cfg = load(str(path), smoke=smoke)
    assert isinstance(cfg, Config)
    assert cfg.name == path.stem
    # Fully resolved, JSON-able, and rebuilt exactly (revalidated) from its JSON.
    assert from_dict(json.loads(json.dumps(to_dict(cfg)))) == cfg
    assert load(path.stem, smoke=smoke) == cfg  # a bare name finds the same file


@pytest.mark.parametrize("path", CONFIG_FILES, ids=lambda p: p.stem)
def test_config_file_docstring_opens_with_its_command(path):
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    first_line = module.__doc__.splitlines()[0]
    command = "sweep" if hasattr(module, "get_sweep") else "train"
    assert first_line == f"jaxrnn {command} configs/{path.name}"
    assert "Expected" in module.__doc__


@pytest.mark.parametrize("path", CONFIG_FILES, ids=lambda p: p.stem)
def test_smoke_mode_is_a_tiny_run_of_the_same_experiment(path):
    full, smoke = load(str(path)), load(str(path), smoke=True)
    assert smoke.train.steps <= 50 < full.train.steps
    assert smoke.model.hidden_size <= 16 and smoke.train.batch_size <= 16
    assert smoke.train.eval_batch_size * smoke.train.eval_batches <= 64
    assert smoke.train.eval_every <= smoke.train.steps
    assert smoke.train.checkpoint_every <= smoke.train.steps
    assert smoke.task.length <= full.task.length
    # Same experiment: same task, cell and optimizer.
    assert (smoke.task.name, smoke.model.cell, smoke.optim) == (
        full.task.name,
        full.model.cell,
        full.optim,
    )


def test_defaults_are_the_default_experiment():
    default = load()
    assert default == Config()
    assert default == load("adding_lstm") == load("adding_lstm.py")
    assert default == load(str(REPO / "configs" / "adding_lstm.py"))
    assert (default.task.name, default.task.length, default.model.cell) == ("adding", 100, "lstm")


def test_load_applies_overrides_after_smoke():
    cfg = load("adding_lstm", ["train.steps=7", "model.hidden_size=4"], smoke=True)
    assert (cfg.train.steps, cfg.model.hidden_size) == (7, 4)
    assert cfg.task.length == load("adding_lstm", smoke=True).task.length


def test_missing_config_file_lists_the_available_ones():
    with pytest.raises(FileNotFoundError) as e:
        load("adding_lsmt")
    assert "'adding_lsmt'" in str(e.value)
    for name in ("adding_lstm", "copying_gru", "parity_lstm", "digits_lstm"):
        assert name in str(e.value)
    with pytest.raises(FileNotFoundError, match="adding_lstm"):
        load("no/such/dir/config.py")


def test_config_file_without_get_config(tmp_path):
    path = tmp_path / "bad.py"
    path.write_text('"""No get_config here."""\nCONFIG = 1\n')
    with pytest.raises(ConfigError, match=r"bad\.py.*defines no get_config"):
        load(str(path))


def test_get_config_must_return_a_config(tmp_path):
    path = tmp_path / "dict_config.py"
    path.write_text("def get_config(smoke=False):\n    return {'seed': 1}\n")
    with pytest.raises(ConfigError, match=r"must return a .*Config, got dict"):
        load(str(path))


def test_smoke_flag_reaches_get_config(tmp_path):
    path = tmp_path / "mine.py"
    path.write_text(
        "from jaxrnn.training.config import Config\n"
        "def get_config(smoke=False):\n"
        "    return Config(name='mine', seed=7 if smoke else 3)\n"
    )
    assert (load(str(path)).seed, load(str(path), smoke=True).seed) == (3, 7)


# --- overrides ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "override, key, expected",
    [
        ("train.steps=500", "train.steps", 500),  # int
        ("seed=3", "seed", 3),  # top-level int
        ("optim.learning_rate=1e-3", "optim.learning_rate", 0.001),  # float
        ("optim.learning_rate=2", "optim.learning_rate", 2.0),
        ("model.forget_bias=-0.5", "model.forget_bias", -0.5),
        ("model.layer_norm=true", "model.layer_norm", True),  # bool
        ("model.layer_norm=True", "model.layer_norm", True),
        ("task.pixelwise=false", "task.pixelwise", False),
        ("optim.clip_norm=none", "optim.clip_norm", None),  # optional -> None
        ("optim.clip_norm=NULL", "optim.clip_norm", None),
        ("optim.clip_norm=0.5", "optim.clip_norm", 0.5),  # optional -> value
        ("optim.decay_steps=100", "optim.decay_steps", 100),
        ("task.min_length=10", "task.min_length", 10),
        ("model.cell=gru", "model.cell", "gru"),  # Literal
        ("optim.schedule=warmup_cosine", "optim.schedule", "warmup_cosine"),
        ("name=my_run", "name", "my_run"),  # str
        ("name=a=b", "name", "a=b"),  # split at the first '='
        ("train.best_metric=accuracy", "train.best_metric", "accuracy"),
    ],
)
def test_override_of_each_type(override, key, expected):
    base = Config()
    cfg = apply_overrides(base, [override])
    value = _get(cfg, key)
    assert value == expected and type(value) is type(expected)
    # Only that key changed; the base config is untouched.
    changed = {k for k, v in _leaves(to_dict(cfg)).items() if _leaves(to_dict(base))[k] != v}
    assert changed == ({key} if _get(base, key) != expected else set())
    assert base == Config()


def test_later_override_wins_and_cross_field_rules_see_all_overrides():
    cfg = apply_overrides(Config(), ["seed=1", "seed=2"])
    assert cfg.seed == 2
    # nesterov alone is invalid with the default Adam; with sgd and momentum, in any order, fine.
    cfg = apply_overrides(Config(), ["optim.nesterov=true", "optim.momentum=0.9", "optim.name=sgd"])
    assert (cfg.optim.name, cfg.optim.momentum, cfg.optim.nesterov) == ("sgd", 0.9, True)
    assert apply_overrides(Config(), []) == Config()


def test_eval_and_checkpoint_intervals_may_exceed_steps():
    cfg = apply_overrides(Config(), ["train.steps=5", "train.eval_every=100"])
    cfg = apply_overrides(cfg, ["train.checkpoint_every=1000"])
    assert (cfg.train.steps, cfg.train.eval_every, cfg.train.checkpoint_every) == (5, 100, 1000)


@pytest.mark.parametrize(
    "overrides, fragments",
    [
        # Unknown keys: the valid keys of the section, and the closest one.
        (
            ["optim.lr=0.1"],
            [
                "unknown key 'optim.lr'",
                "valid keys in 'optim': name, learning_rate, momentum",
                "did you mean 'optim.learning_rate'",
            ],
        ),
        (
            ["optim.learning_rat=0.1"],
            ["'optim.learning_rat'", "did you mean 'optim.learning_rate'"],
        ),
        (["model.hiden_size=8"], ["'model.hiden_size'", "did you mean 'model.hidden_size'"]),
        (
            ["optimizer.lr=1"],
            ["unknown key 'optimizer.lr'", "task, model, optim, train", "did you mean 'optim'"],
        ),
        (["seeds=1"], ["unknown key 'seeds'", "did you mean 'seed'"]),
        (["optim.learning_rate.x=1"], ["unknown key 'optim.learning_rate.x'"]),
        (["optim=3"], ["'optim' is a section", "optim.learning_rate"]),
        # Missing '='.
        (["optim.learning_rate"], ["'optim.learning_rate'", "expected key=value"]),
        # Wrong types.
        (["optim.learning_rate=abc"], ["optim.learning_rate='abc': expected a number"]),
        (["train.steps=1.5"], ["train.steps=1.5: expected an integer"]),
        (["train.steps=ten"], ["train.steps='ten': expected an integer"]),
        (["model.hidden_size=none"], ["model.hidden_size='none': expected an integer"]),
        (["model.layer_norm=maybe"], ["model.layer_norm='maybe': expected a boolean"]),
        (["optim.decay_steps=abc"], ["optim.decay_steps='abc': expected an integer (or none)"]),
        (["optim.learning_rate=nan"], ["optim.learning_rate=nan: expected a finite number"]),
        (["model.forget_bias=inf"], ["model.forget_bias=inf: expected a finite number"]),
        # Out of range.
        (["optim.learning_rate=-1"], ["optim.learning_rate=-1: must be > 0"]),
        (["train.steps=0"], ["train.steps=0: must be > 0"]),
        (["seed=-1"], ["seed=-1: must be >= 0"]),
        (["task.length=1"], ["task.length=1: must be >= 2"]),
        (["task.min_length=1"], ["task.min_length=1: must be >= 2 (or none)"]),
        (["model.dropout=1"], ["model.dropout=1: must be < 1"]),
        (["optim.momentum=-0.1"], ["optim.momentum=-0.1: must be >= 0"]),
        (["optim.decay_rate=0"], ["optim.decay_rate=0: must be > 0"]),
        (["optim.decay_rate=1.5"], ["optim.decay_rate=1.5: must be <= 1"]),
        (["optim.end_value_fraction=2"], ["optim.end_value_fraction=2: must be <= 1"]),
        (["model.chrono_t_max=2"], ["model.chrono_t_max=2: must be > 2 (or none)"]),
        (["train.keep_best=-1"], ["train.keep_best=-1: must be >= 0"]),
        (["name="], ["name='': expected a non-empty string"]),
        # Bad choices: every allowed value is listed.
        (["model.cell=lstmm"], ["model.cell='lstmm': expected one of 'lstm', 'gru', 'elman'"]),
        (
            ["optim.name=adamax"],
            ["optim.name='adamax': expected one of 'sgd', 'adam', 'adamw', 'rmsprop', 'adagrad'"],
        ),
        (["train.nonfinite=ignore"], ["train.nonfinite='ignore'", "'skip', 'stop'"]),
        (
            ["model.cell=elman", "model.activation=relux"],
            ["model.activation='relux': expected one of 'tanh', 'relu', 'sigmoid'", "'gelu'"],
        ),
        # Cross-field rules.
        (["optim.nesterov=true"], ["nesterov=True", "momentum > 0", "name='adam'"]),
        (["optim.name=sgd", "optim.nesterov=true"], ["nesterov=True", "momentum=0.0"]),
        (["optim.momentum=0.9"], ["momentum=0.9", "'sgd' and 'rmsprop'", "name='adam'"]),
        (["optim.weight_decay=0.1"], ["weight_decay=0.1", "'adamw'"]),
        (
            ["train.steps=10", "optim.warmup_steps=10"],
            ["optim.warmup_steps=10 must be < train.steps=10"],
        ),
        (["task.min_length=101"], ["task", "min_length=101 must be <= length=100"]),
        (["task.name=copying", "task.min_length=5"], ["min_length=5", "'copying'"]),
        (["task.pixelwise=true"], ["pixelwise=True", "digits", "'adding'"]),
        (["model.activation=relu"], ["activation='relu'", "cell='elman'", "cell='lstm'"]),
        (["model.cell=elman", "model.layer_norm=true"], ["layer_norm", "cell='elman'"]),
        (["model.dropout=0.1"], ["dropout=0.1", "num_layers > 1"]),
        (["model.residual=true"], ["residual=True", "num_layers > 1"]),
    ],
)
def test_override_errors_name_key_value_and_expectation(overrides, fragments):
    with pytest.raises(ConfigError) as e:
        apply_overrides(Config(), overrides)
    for fragment in fragments:
        assert fragment in str(e.value)


def test_every_problem_is_reported_in_one_error():
    with pytest.raises(ConfigError) as e:
        apply_overrides(Config(), ["optim.lr=1", "model.cell=x", "train.steps=0", "seed"])
    message = str(e.value)
    assert isinstance(e.value, ValueError)
    for fragment in ("'optim.lr'", "model.cell='x'", "train.steps=0", "'seed': expected key=value"):
        assert fragment in message
    assert len(message.splitlines()) == 4


def test_overrides_must_be_a_sequence_of_strings():
    with pytest.raises(ConfigError, match="sequence of 'key=value' strings"):
        apply_overrides(Config(), "seed=1")


def test_the_valid_boundaries_are_accepted():
    cfg = apply_overrides(
        Config(),
        [
            "train.steps=10",
            "optim.warmup_steps=9",
            "task.min_length=100",
            "optim.decay_rate=1",
            "optim.end_value_fraction=1",
            "model.num_layers=2",
            "model.dropout=0.99",
            "train.keep_best=0",
            "model.chrono_t_max=2.5",
        ],
    )
    assert (cfg.optim.warmup_steps, cfg.task.min_length, cfg.model.dropout) == (9, 100, 0.99)


# --- dicts, hashes, immutability ------------------------------------------------------------


def test_to_dict_is_json_and_from_dict_round_trips():
    cfg = apply_overrides(
        Config(),
        ["optim.clip_norm=none", "optim.decay_steps=77", "task.min_length=3", "name=x"],
    )
    d = to_dict(cfg)
    assert json.loads(json.dumps(d)) == d
    assert set(d) == {"name", "seed", "task", "model", "optim", "train"}
    assert d["optim"]["clip_norm"] is None and d["optim"]["decay_steps"] == 77
    assert from_dict(d) == cfg
    assert from_dict({}) == Config()  # missing fields take the defaults


@pytest.mark.parametrize(
    "d, fragments",
    [
        ({"optim": {"lr": 1}}, ["unknown key 'optim.lr'", "did you mean 'optim.learning_rate'"]),
        ({"trian": {}}, ["unknown key 'trian'", "did you mean 'train'"]),
        ({"model": 3}, ["model=3: expected a mapping"]),
        ({"seed": -1, "task": {"length": "x"}}, ["seed=-1: must be >= 0", "task.length='x'"]),
        ({"model": {"cell": "rnn"}}, ["model.cell='rnn': expected one of 'lstm', 'gru', 'elman'"]),
    ],
)
def test_from_dict_errors(d, fragments):
    with pytest.raises(ConfigError) as e:
        from_dict(d)
    for fragment in fragments:
        assert fragment in str(e.value)


def test_from_dict_needs_a_mapping():
    with pytest.raises(ConfigError, match="expected a mapping of keys to values, got list"):
        from_dict([("seed", 1)])


# One valid change per field (with what that change requires); every field must appear.
_ADDITION = ["task.name=addition", "task.digits=3", "model.embedding_size=8"]
_EXPRESSIONS = ["task.name=expressions", "task.max_ops=4", "task.num_train=100"]

CHANGES = {
    "name": ["name=other"],
    "seed": ["seed=1"],
    "task.name": ["task.name=parity"],
    "task.length": ["task.length=50"],
    "task.min_length": ["task.min_length=50"],
    "task.pixelwise": ["task.name=digits", "task.pixelwise=true"],
    "task.digits": _ADDITION,
    "task.text_chars": ["task.name=shakespeare", "task.text_chars=5000"],
    "task.max_ops": _EXPRESSIONS,
    "task.test_max_ops": [*_EXPRESSIONS, "task.test_max_ops=8"],
    "task.num_train": ["task.name=expressions", "task.max_ops=5", "task.num_train=200"],
    "model.cell": ["model.cell=gru"],
    "model.hidden_size": ["model.hidden_size=32"],
    "model.num_layers": ["model.num_layers=2"],
    "model.activation": ["model.cell=elman", "model.activation=relu"],
    "model.forget_bias": ["model.forget_bias=2"],
    "model.recurrent_init": ["model.recurrent_init=identity"],
    "model.identity_scale": ["model.identity_scale=0.5"],
    "model.chrono_t_max": ["model.chrono_t_max=100"],
    "model.layer_norm": ["model.layer_norm=true"],
    "model.dropout": ["model.num_layers=2", "model.dropout=0.1"],
    "model.residual": ["model.num_layers=2", "model.residual=true"],
    "model.remat": ["model.remat=sqrt"],
    "model.embedding_size": [*_ADDITION[:2], "model.embedding_size=16"],
    "model.attention": [*_ADDITION, "model.attention=additive"],
    "model.bidirectional": [*_ADDITION, "model.bidirectional=true"],
    "model.scheduled_sampling": [*_ADDITION, "model.scheduled_sampling=0.5"],
    "optim.name": ["optim.name=adamw"],
    "optim.learning_rate": ["optim.learning_rate=0.0030000000000000005"],  # next float
    "optim.momentum": ["optim.name=sgd", "optim.momentum=0.9"],
    "optim.nesterov": ["optim.name=sgd", "optim.momentum=0.9", "optim.nesterov=true"],
    "optim.weight_decay": ["optim.name=adamw", "optim.weight_decay=0.01"],
    "optim.b1": ["optim.b1=0.8"],
    "optim.b2": ["optim.b2=0.99"],
    "optim.eps": ["optim.eps=1e-6"],
    "optim.schedule": ["optim.schedule=exponential"],
    "optim.warmup_steps": ["optim.warmup_steps=10"],
    "optim.decay_steps": ["optim.decay_steps=100"],
    "optim.decay_rate": ["optim.decay_rate=0.9"],
    "optim.end_value_fraction": ["optim.end_value_fraction=0.1"],
    "optim.clip_norm": ["optim.clip_norm=none"],
    "optim.clip_value": ["optim.clip_value=1"],
    "train.steps": ["train.steps=10"],
    "train.batch_size": ["train.batch_size=32"],
    "train.eval_every": ["train.eval_every=7"],
    "train.eval_batch_size": ["train.eval_batch_size=100"],
    "train.eval_batches": ["train.eval_batches=3"],
    "train.checkpoint_every": ["train.checkpoint_every=7"],
    "train.keep_last": ["train.keep_last=5"],
    "train.keep_best": ["train.keep_best=0"],
    "train.best_metric": ["train.best_metric=accuracy"],
    "train.nonfinite": ["train.nonfinite=stop"],
    "train.log_every": ["train.log_every=5"],
}


def test_config_hash_changes_when_any_field_changes():
    base = Config()
    assert set(CHANGES) == set(_leaves(to_dict(base))), "add the new field to CHANGES"
    hashes = {config_hash(base)}
    for key, overrides in CHANGES.items():
        cfg = apply_overrides(base, overrides)
        assert _get(cfg, key) != _get(base, key), key
        hashes.add(config_hash(cfg))
    assert len(hashes) == len(CHANGES) + 1  # all distinct


def test_config_hash_is_a_short_sha256_of_the_canonical_json():
    import hashlib

    cfg = Config()
    canonical = json.dumps(to_dict(cfg), sort_keys=True, separators=(",", ":"))
    assert config_hash(cfg) == hashlib.sha256(canonical.encode()).hexdigest()[:12]
    assert config_hash(cfg) == config_hash(from_dict(to_dict(cfg)))


def test_config_hash_is_stable_across_processes():
    names = [p.stem for p in CONFIG_FILES]
    code = (
        "import sys; from jaxrnn.training.config import load, config_hash\n"
        "for name in sys.argv[1:]:\n"
        "    print(config_hash(load(name)), config_hash(load(name, smoke=True)))\n"
    )
    outputs = set()
    for hash_seed in ("0", "12345"):  # str hashing differs between these processes
        env = {**os.environ, "PYTHONHASHSEED": hash_seed, "JAX_PLATFORMS": "cpu"}
        result = subprocess.run(
            [sys.executable, "-c", code, *names],
            capture_output=True,
            text=True,
            check=True,
            cwd=REPO,
            env=env,
        )
        outputs.add(result.stdout)
    here = "".join(f"{config_hash(load(n))} {config_hash(load(n, smoke=True))}\n" for n in names)
    assert outputs == {here}


def test_configs_are_frozen_and_hashable():
    cfg = Config()
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.seed = 1
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.optim.learning_rate = 1.0
    assert hash(cfg) == hash(Config()) and {cfg: 1}[Config()] == 1


def test_constructors_validate_and_refuse_unknown_fields():
    with pytest.raises(pydantic.ValidationError, match="hidden_size"):
        ModelConfig(hidden_size=0)
    with pytest.raises(pydantic.ValidationError, match="lenght"):
        TaskConfig(lenght=5)
    with pytest.raises(pydantic.ValidationError, match="min_length=5 must be <= length=4"):
        TaskConfig(length=4, min_length=5)
