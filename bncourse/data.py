"""Real data for the lessons, shipped inside the package, never downloaded.

    from bncourse import data
    x, y = data.load_digits("train")        # (1438, 64) float32 in [0, 1], (1438,) int64
    x, y = data.load_digits("validation")   # (359, 64), (359,): the fixed held-out images

The digits are scikit-learn's copy of the UCI handwritten digits (8x8 images, 10 classes),
shipped with the course in ``datasets/digits.npz`` at the top of the repository, with a fixed,
class-stratified train/validation split; see ``datasets/README.md`` for provenance and licence and
``tools/make_digits.py`` (in the repository) for how the file is made. ``datasets/`` installs as
the package ``bncourse.datasets`` (pyproject.toml maps it), so a wheel carries the data inside
``bncourse/datasets/``, and the editable install reads the repository's ``datasets/`` itself. It is
found through ``importlib.resources``, so an installed package (editable or not, any working
directory) finds its own copy. The file's sha256 is checked against ``DIGITS_SHA256`` before
every load, so a missing or damaged file stops with a ``DatasetError`` that says which file and
how to restore it, instead of feeding wrong numbers to a lesson. Only numpy is imported here.
"""
import hashlib
import os
from importlib import resources
from pathlib import Path

import numpy as np


def _datasets():
    """The folder of the course's data (the package bncourse.datasets): a Path for every
    installed package, unzipped. Where the folder itself is gone, the place it belongs, so that
    loading says which file is missing and how to restore it instead of failing at import."""
    try:
        return resources.files("bncourse.datasets")
    except ModuleNotFoundError:
        return resources.files("bncourse") / "datasets"


DATASETS = _datasets()
DIGITS_PATH = DATASETS / "digits.npz"
DIGITS_SHA256 = "63d9e5133a9fd6fc49d80031bc40167e2e13939fb3f70d89261c0e97f4e76f81"
SPLITS = ("train", "validation", "all")

_RESTORE = ("It ships inside the bncourse package: reinstall it (`make install`, or "
            "`pip install --force-reinstall` of the course), or in a clone of the course "
            "restore it with `git checkout -- datasets/{name}`, or rebuild it as "
            "datasets/README.md describes.")


class DatasetError(Exception):
    """A data file of the course is missing or is not the file the course shipped."""


class DatasetMissingError(DatasetError, FileNotFoundError):
    """The data file does not exist."""


class DatasetCorruptError(DatasetError, ValueError):
    """The data file exists but its sha256 is not the expected one."""


def sha256(path):
    """The hex sha256 of the file at path (a path or an importlib.resources Traversable)."""
    with (path.open("rb") if hasattr(path, "open") else open(path, "rb")) as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def verify(path=None, expected=None):
    """Check that the file at path (default ``DIGITS_PATH``; a path or a package resource)
    exists and has the sha256 ``expected`` (default ``DIGITS_SHA256``); return it. Raises
    DatasetMissingError or DatasetCorruptError, whose message names the file and says how to
    restore it."""
    path = DIGITS_PATH if path is None else path
    path = Path(path) if isinstance(path, str | os.PathLike) else path  # else a Traversable (zip)
    expected = DIGITS_SHA256 if expected is None else expected
    restore = _RESTORE.format(name=path.name)
    if not path.is_file():
        raise DatasetMissingError(f"data file {path} is missing. {restore}")
    actual = sha256(path)
    if actual != expected:
        raise DatasetCorruptError(
            f"data file {path} is corrupt or was changed: its sha256 is {actual}, "
            f"expected {expected}. {restore}")
    return path


def load_digits(split="train"):
    """The handwritten digits of one split, ready for a network.

    split: "train" (1438 images), "validation" (359) or "all" (1797, in file order); the
    split is fixed and stratified, so every class appears in both parts.

    Returns (images, labels): images float32 (n, 64), the 8x8 pixels row by row, scaled
    from 0..16 to [0, 1]; labels int64 (n,), digits 0..9.
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, not {split!r}")
    path = verify(DIGITS_PATH)
    with path.open("rb") as f, np.load(f, allow_pickle=False) as archive:
        images, labels = archive["images"], archive["labels"]
        if split != "all":
            index = archive[split].astype(np.intp)
            images, labels = images[index], labels[index]
    images = images.reshape(len(images), -1).astype(np.float32) / np.float32(16)
    return images, labels.astype(np.int64)
