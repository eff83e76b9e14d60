"""The shipped digits file and its loader: checksum, split, shapes, clear errors; where the data
lives (the repository's top-level datasets/, once) and how the package finds it."""
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from autograder.settings import REPO
from bncourse import data


def test_committed_file_matches_the_checksum():
    assert data.sha256(data.DIGITS_PATH) == data.DIGITS_SHA256
    assert data.verify(data.DIGITS_PATH) == data.DIGITS_PATH


@pytest.mark.parametrize("split, n", [("train", 1438), ("validation", 359), ("all", 1797)])
def test_loader_shapes_dtypes_and_range(split, n):
    images, labels = data.load_digits(split)
    assert images.shape == (n, 64) and images.dtype == np.float32
    assert labels.shape == (n,) and labels.dtype == np.int64
    assert images.min() == 0.0 and images.max() == 1.0
    assert set(np.unique(labels)) == set(range(10))


def test_train_and_validation_are_disjoint_and_cover_everything():
    with np.load(data.DIGITS_PATH) as archive:
        train, validation = archive["train"], archive["validation"]
    assert np.intersect1d(train, validation).size == 0
    assert np.array_equal(np.sort(np.concatenate([train, validation])), np.arange(1797))
    # the splits are the "all" rows at those indices
    x, y = data.load_digits("all")
    xv, yv = data.load_digits("validation")
    assert np.array_equal(x[validation], xv) and np.array_equal(y[validation], yv)
    # stratified, about 80/20 in every class
    share = np.bincount(yv, minlength=10) / np.bincount(y, minlength=10)
    assert np.all(np.abs(share - 0.2) < 0.01)


def test_unknown_split_is_refused():
    with pytest.raises(ValueError, match="split"):
        data.load_digits("test")


def test_missing_file_names_the_file(tmp_path, monkeypatch):
    missing = tmp_path / "digits.npz"
    monkeypatch.setattr(data, "DIGITS_PATH", missing)
    with pytest.raises(data.DatasetError) as error:
        data.load_digits()
    assert isinstance(error.value, FileNotFoundError)
    assert str(missing) in str(error.value) and "missing" in str(error.value)
    assert "git checkout" in str(error.value)


def test_corrupt_file_names_the_file(tmp_path, monkeypatch):
    copy = tmp_path / "digits.npz"
    shutil.copyfile(data.DIGITS_PATH, copy)
    raw = bytearray(copy.read_bytes())
    raw[len(raw) // 2] ^= 0x01  # one bit of one byte
    copy.write_bytes(bytes(raw))
    monkeypatch.setattr(data, "DIGITS_PATH", copy)
    with pytest.raises(data.DatasetError) as error:
        data.load_digits("validation")
    assert isinstance(error.value, ValueError)
    message = str(error.value)
    assert str(copy) in message and "corrupt" in message and data.DIGITS_SHA256 in message


def test_the_file_is_package_data_found_through_importlib_resources():
    from importlib import resources
    assert data.DIGITS_PATH == resources.files("bncourse.datasets") / "digits.npz"
    assert data.DIGITS_PATH.is_file()


def tracked(*paths):
    """[(mode, path)] of what git tracks under paths."""
    out = subprocess.run(["git", "ls-files", "-s", "--", *paths], cwd=REPO, check=True,
                         capture_output=True, text=True).stdout
    return [(line.split()[0], line.split("\t", 1)[1]) for line in out.splitlines()]


def test_the_data_lives_at_the_top_of_the_repository_once():
    """The layout's promise: datasets/ at the top, where an instructor looks for the data and adds
    a file; not a copy or a link inside bncourse/ (pyproject.toml maps the folder into the package)."""
    assert (REPO / "datasets" / "digits.npz").is_file() and (REPO / "datasets" / "README.md").is_file()
    assert not (REPO / "bncourse" / "datasets").exists()
    files = tracked(".")
    assert [path for _, path in files if Path(path).name == "digits.npz"] == ["datasets/digits.npz"]
    assert not [path for mode, path in files if mode == "120000"]  # no link anywhere (Windows, the grader)
    assert {Path(path).name for _, path in tracked("datasets")} >= {"digits.npz", "README.md", "__init__.py"}


def test_the_editable_install_reads_the_top_level_folder():
    """`make install` (pip install -e .) maps bncourse.datasets to the repository's datasets/
    itself: the file the lessons load is the one in git, from any working directory."""
    code = "from bncourse import data; print(data.DIGITS_PATH); print(data.verify() is not None)"
    out = subprocess.run([sys.executable, "-c", code], cwd="/", capture_output=True, text=True, check=True)
    assert out.stdout.splitlines() == [str(REPO / "datasets" / "digits.npz"), "True"]


def test_a_missing_data_folder_is_a_clear_error_not_an_import_error(monkeypatch):
    """With the whole folder gone, bncourse.data still imports (doctor, the lessons' imports) and
    loading names the missing file and how to restore it."""
    monkeypatch.setitem(sys.modules, "bncourse.datasets", None)  # not importable
    folder = data._datasets()
    assert not (folder / "digits.npz").is_file()
    monkeypatch.setattr(data, "DIGITS_PATH", folder / "digits.npz")
    with pytest.raises(data.DatasetMissingError, match="git checkout -- datasets/digits.npz"):
        data.load_digits()


def test_loads_from_a_zipped_package(tmp_path, monkeypatch):
    """A Traversable that is not a file on disk (a zip import) is read and verified too."""
    import zipfile
    archive = tmp_path / "bncourse.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.write(data.DIGITS_PATH, "bncourse/datasets/digits.npz")
    monkeypatch.setattr(data, "DIGITS_PATH", zipfile.Path(archive, "bncourse/datasets/digits.npz"))
    x, y = data.load_digits("validation")
    assert x.shape == (359, 64) and y.shape == (359,)
    monkeypatch.setattr(data, "DIGITS_PATH", zipfile.Path(archive, "bncourse/datasets/other.npz"))
    with pytest.raises(data.DatasetMissingError, match="other.npz"):
        data.load_digits()


def test_no_torch_at_import():
    import subprocess
    import sys

    code = "import sys, bncourse.data; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
