"""Spoken digit strings synthesised by espeak-ng, as log-mel frames with their digits.

The speech engine: ``libespeak-ng`` and its voices ship in the PyPI wheel
``espeakng-loader==0.2.4`` (``pip install espeakng-loader==0.2.4``), driven here through
``ctypes`` (:func:`synthesize`; 22,050 Hz, 16-bit). An utterance says 1 to 7 random
digits as words ("three one four"), in one of 24 voices (British and American English,
each with 12 of espeak's voice variants), at a random speed (140–220 words a minute)
and pitch (25–75 of espeak's 0–100), with white noise added at a random signal-to-noise
ratio of 10–30 dB.

**Held-out voices.** Whole voice variants are held out, in both accents: the test
utterances are spoken by ``m4`` and ``f2`` only, the validation ones by ``m6`` and
``f4``; training by the other 8 variants (16 voices).

Features (:func:`log_mel`, NumPy): a Hann window of 512 samples (23 ms) every 220 (10
ms), the power spectrum, 40 triangular mel filters from 20 Hz to 8 kHz (HTK's mel
scale), ``log(energy + 1e-6)``; three consecutive frames stacked into one step of 30
ms (120 features), standardised with the training steps' mean and standard deviation.

espeak-ng's output varies slightly from one call to the next (its noise sources), so
the utterances are synthesised once and cached (:func:`jaxrnn.tasks.carriers.cached`,
keyed by the library's bytes and the counts): every run on a machine reads the same.

References:
  Graves, Fernández, Gomez, Schmidhuber (2006). Connectionist Temporal Classification. ICML.
"""

import ctypes
import functools
import platform

import numpy as np

from jaxrnn.tasks.carriers import Carrier, cached, locate
from jaxrnn.tasks.data import Batch, Dataset

CARRIER = Carrier("espeakng-loader", "0.2.4", "pip install espeakng-loader==0.2.4")
RATE = 22_050
WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
NUM_LABELS = 11  # the blank (0) and the digits 0..9 as labels 1..10
MAX_DIGITS = 7
ACCENTS = ("en", "en-us")
VARIANTS = {
    "train": ("m1", "m2", "m3", "m5", "m7", "f1", "f3", "f5"),
    "validation": ("m6", "f4"),
    "test": ("m4", "f2"),
}
SPEED, PITCH, SNR_DB = (140, 220), (25, 75), (10.0, 30.0)
N_FFT, HOP, N_MELS, STACK = 512, 220, 40, 3
COUNTS = {"train": 3200, "validation": 400, "test": 800}
_SYNCHRONOUS = 2  # espeak_AUDIO_OUTPUT: AUDIO_OUTPUT_SYNCHRONOUS
_RATE, _PITCH = 1, 3  # espeak_PARAMETER: espeakRATE, espeakPITCH
_CHARS_UTF8, _POS_CHARACTER = 1, 1
_CALLBACK = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p
)


def voices(split: str) -> list[str]:
    """The espeak voice names of ``split`` (``"en+m1"``, ...)."""
    return [f"{accent}+{variant}" for accent in ACCENTS for variant in VARIANTS[split]]


def _library_file() -> str:
    name = "libespeak-ng.dylib" if platform.system() == "Darwin" else "libespeak-ng.so"
    return f"espeakng_loader/{name}"


@functools.cache
def _engine():
    """The library, initialised once per process, and the list its callback fills."""
    library = ctypes.CDLL(str(locate(CARRIER, _library_file())))
    voices_dir = locate(CARRIER, "espeakng_loader/espeak-ng-data/phontab").parent
    library.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
    rate = library.espeak_Initialize(_SYNCHRONOUS, 0, str(voices_dir).encode(), 0)
    if rate != RATE:
        raise RuntimeError(f"{CARRIER.package}: espeak_Initialize gave {rate}, expected {RATE} Hz")
    chunks = []

    @_CALLBACK
    def keep(wav, n, events):
        if n > 0:
            chunks.append(np.ctypeslib.as_array(wav, (n,)).copy())
        return 0

    library.espeak_SetSynthCallback(keep)
    return library, chunks, keep  # keep: the callback must outlive every call


def synthesize(text: str, voice: str, speed: int = 175, pitch: int = 50) -> np.ndarray:
    """``text`` spoken by ``voice`` at ``speed`` words a minute and ``pitch`` (0–100):
    int16 samples at :data:`RATE`.

    Raises:
      ValueError: espeak-ng does not know ``voice``.
    """
    library, chunks, _ = _engine()
    if library.espeak_SetVoiceByName(voice.encode()) != 0:
        raise ValueError(f"voice: espeak-ng has no voice {voice!r}")
    library.espeak_SetParameter(_RATE, int(speed), 0)
    library.espeak_SetParameter(_PITCH, int(pitch), 0)
    chunks.clear()
    data = text.encode()
    library.espeak_Synth(data, len(data) + 1, 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None)
    library.espeak_Synchronize()
    return np.concatenate(chunks) if chunks else np.zeros(0, np.int16)


def mel_filterbank(n_mels: int = N_MELS, n_fft: int = N_FFT, rate: int = RATE,
                   low: float = 20.0, high: float = 8000.0) -> np.ndarray:  # fmt: skip
    """``[n_mels, n_fft // 2 + 1]``: triangles on HTK's mel scale (``2595 log10(1 + f /
    700)``), each rising from the previous centre to 1 at its own and falling to the next."""
    mel = lambda f: 2595.0 * np.log10(1.0 + np.asarray(f) / 700.0)  # noqa: E731
    hz = lambda m: 700.0 * (10.0 ** (np.asarray(m) / 2595.0) - 1.0)  # noqa: E731
    edges = hz(np.linspace(mel(low), mel(high), n_mels + 2))
    bins = np.fft.rfftfreq(n_fft, 1.0 / rate)
    left, centre, right = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    rising = (bins - left) / (centre - left)
    falling = (right - bins) / (right - centre)
    return np.maximum(0.0, np.minimum(rising, falling))


def log_mel(samples: np.ndarray, rate: int = RATE) -> np.ndarray:
    """``[frames, N_MELS]`` log-mel energies of float ``samples`` (module docstring)."""
    if rate != RATE:
        raise ValueError(f"rate: expected {RATE} Hz (the filterbank's), got {rate}")
    x = np.pad(np.asarray(samples, np.float64), (0, max(0, N_FFT - len(samples))))
    frames = 1 + (len(x) - N_FFT) // HOP
    index = np.arange(N_FFT)[None, :] + HOP * np.arange(frames)[:, None]
    power = np.abs(np.fft.rfft(x[index] * np.hanning(N_FFT), axis=-1)) ** 2
    return np.log(power @ mel_filterbank().T + 1e-6)


def _utterances(split: str, count: int, seed: int) -> dict[str, np.ndarray]:
    """``count`` utterances of ``split``'s voices: stacked features, their lengths and digits."""
    rng = np.random.default_rng(seed)
    names = voices(split)
    steps, digits = [], []
    for i in range(count):
        said = rng.integers(0, 10, rng.integers(1, MAX_DIGITS + 1))
        voice = names[i % len(names)]
        speed, pitch = rng.integers(*SPEED, endpoint=True), rng.integers(*PITCH, endpoint=True)
        clean = synthesize(" ".join(WORDS[d] for d in said), voice, speed, pitch) / 32768.0
        snr = rng.uniform(*SNR_DB)
        noise = rng.normal(size=clean.shape) * np.sqrt(np.mean(clean**2)) / 10.0 ** (snr / 20.0)
        frames = log_mel(clean + noise)
        frames = frames[: len(frames) // STACK * STACK].reshape(-1, STACK * N_MELS)
        steps.append(frames.astype(np.float32))
        digits.append(said)
    lengths = np.array([len(s) for s in steps], np.int32)
    inputs = np.zeros((count, lengths.max(), STACK * N_MELS), np.float32)
    labels = np.zeros((count, MAX_DIGITS), np.int32)
    for i, (s, d) in enumerate(zip(steps, digits, strict=True)):
        inputs[i, : len(s)] = s
        labels[i, : len(d)] = d + 1
    return {"inputs": inputs, "lengths": lengths, "labels": labels}


def spoken_digits(scale: float = 1.0) -> Dataset:
    """The three splits as :class:`~jaxrnn.tasks.data.Batch` es: ``inputs [N, T, 120]``
    standardised (training statistics), ``targets [N, 7]`` the digits as labels 1..10,
    0-padded, ``mask [N, T]`` the valid steps. ``scale``: that share of
    :data:`COUNTS` utterances (smoke runs), at least one per voice."""
    counts = {s: max(len(voices(s)), round(n * scale)) for s, n in COUNTS.items()}
    parts = {}
    for seed, split in enumerate(counts):
        name = f"spoken_digits-{split}-{counts[split]}"
        build = functools.partial(_utterances, split, counts[split], seed)
        parts[split] = cached(name, [locate(CARRIER, _library_file())], build)
    train = parts["train"]
    valid = np.arange(train["inputs"].shape[1]) < train["lengths"][:, None]
    mean, std = train["inputs"][valid].mean(0), train["inputs"][valid].std(0) + 1e-6

    def batch(part) -> Batch:
        mask = np.arange(part["inputs"].shape[1]) < part["lengths"][:, None]
        inputs = np.where(mask[..., None], (part["inputs"] - mean) / std, 0.0)
        return Batch(inputs.astype(np.float32), part["labels"], mask)

    return Dataset(batch(parts["train"]), batch(parts["validation"]), batch(parts["test"]))
