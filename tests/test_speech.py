"""The spoken-digit data (``jaxrnn.tasks.spoken_digits``): the mel filterbank and the
log-mel frames against their formulas and a pure tone, the speech engine against facts
of speech (more words and slower speech last longer), the held-out voices, and the
prepared splits."""

import numpy as np
import pytest

from jaxrnn.tasks import carriers, ctc
from jaxrnn.tasks import spoken_digits as digits


@pytest.fixture(autouse=True)
def data_cache(tmp_path_factory, monkeypatch):
    """One cache folder for this module's tests, not the user's."""
    monkeypatch.setenv("JAXRNN_DATA_CACHE", str(tmp_path_factory.getbasetemp() / "speech"))


def _htk_centres(n=digits.N_MELS, low=20.0, high=8000.0):
    """The filters' centres, from HTK's mel formula written out here."""
    m_low, m_high = 2595 * np.log10(1 + low / 700), 2595 * np.log10(1 + high / 700)
    mels = m_low + (m_high - m_low) * np.arange(1, n + 1) / (n + 1)
    return 700 * (10 ** (mels / 2595) - 1)


def test_the_filterbank_is_triangles_peaking_at_the_htk_centres():
    bank = digits.mel_filterbank()
    freqs = np.fft.rfftfreq(digits.N_FFT, 1 / digits.RATE)
    assert bank.shape == (digits.N_MELS, digits.N_FFT // 2 + 1)
    assert bank.min() == 0.0 and bank.max() <= 1.0
    centres = _htk_centres()
    for row, centre in zip(bank, centres, strict=True):
        # Largest at the bin nearest its centre (up to one bin), zero far from it.
        assert abs(freqs[np.argmax(row)] - centre) <= freqs[1]
        assert row[np.abs(freqs - centre) > 2 * centre].sum() == 0.0
    assert bank[:, freqs > 8000 + freqs[1]].sum() == 0.0


@pytest.mark.parametrize("tone", [300.0, 1000.0, 4000.0])
def test_a_pure_tone_lights_the_band_centred_nearest_it(tone):
    t = np.arange(digits.RATE) / digits.RATE  # one second
    frames = digits.log_mel(np.sin(2 * np.pi * tone * t))
    assert frames.shape == (1 + (digits.RATE - digits.N_FFT) // digits.HOP, digits.N_MELS)
    loudest = np.argmax(frames.mean(0))
    centres = _htk_centres()
    assert loudest in np.argsort(np.abs(centres - tone))[:2]
    with pytest.raises(ValueError, match="rate: expected 22050 Hz"):
        digits.log_mel(t, rate=16_000)


def test_the_engine_speaks_longer_for_more_words_and_slower_speech():
    three = digits.synthesize("one two three", "en", speed=140)
    assert three.dtype == np.int16 and np.abs(three).max() > 1000
    one = digits.synthesize("one", "en", speed=140)
    fast = digits.synthesize("one two three", "en", speed=220)
    assert len(one) < len(fast) < len(three)
    # About 0.4 s a word at 140 words a minute, with a little silence around.
    assert 0.8 < len(three) / digits.RATE < 2.5
    with pytest.raises(ValueError, match="voice: espeak-ng has no voice 'xx-nope'"):
        digits.synthesize("one", "xx-nope")


def test_held_out_voices_are_whole_variants_that_exist():
    # espeak-ng falls back silently on an unknown variant: each must be a file.
    folder = carriers.locate(digits.CARRIER, "espeakng_loader/espeak-ng-data/phontab").parent
    variants = [v for split in digits.VARIANTS.values() for v in split]
    assert len(set(variants)) == len(variants) == 12  # no variant in two splits
    assert all((folder / "voices" / "!v" / v).is_file() for v in variants)
    assert digits.voices("test") == ["en+m4", "en+f2", "en-us+m4", "en-us+f2"]
    spectra = [
        digits.log_mel(digits.synthesize("five", v) / 32768).mean(0) for v in ("en+m4", "en+f2")
    ]
    assert np.abs(spectra[0] - spectra[1]).max() > 1.0  # two different voices


def test_the_splits_labels_masks_and_training_standardisation():
    data = digits.spoken_digits(scale=0.02)
    sizes = {s: len(getattr(data, s).targets) for s in ("train", "validation", "test")}
    assert sizes == {"train": 64, "validation": 8, "test": 16}
    for split in data[:3]:
        labels, mask = split.targets, split.mask
        said = (labels != ctc.BLANK).sum(1)
        assert said.min() >= 1 and said.max() <= 7 and labels.max() <= 10
        # Labels are left-aligned, then padding.
        assert all(
            (row[n:] == 0).all() and (row[:n] > 0).all()
            for row, n in zip(labels, said, strict=True)
        )
        assert mask[:, 0].all() and (split.inputs[~mask] == 0).all()
        # A step is 30 ms: at least 0.15 s a digit (5 steps), at most 1 s.
        steps = mask.sum(1)
        assert (steps >= 5 * said).all() and (steps <= 34 * said + 40).all()
    valid = data.train.inputs[data.train.mask]
    np.testing.assert_allclose(valid.mean(0), 0.0, atol=1e-4)
    np.testing.assert_allclose(valid.std(0), 1.0, rtol=1e-3)
    again = digits.spoken_digits(scale=0.02)  # from the cache: the same utterances
    np.testing.assert_array_equal(again.test.inputs, data.test.inputs)
