"""Build datasets/digits.npz: scikit-learn's 8x8 handwritten digits with a fixed train/validation
split. A build-time script, run by a maintainer, never by a lesson; see datasets/README.md
(the data ships inside the bncourse package, as bncourse/datasets/; this script stays in the repository).

    .venv/bin/pip install scikit-learn     # build-time only, not a course dependency
    .venv/bin/python tools/make_digits.py [--out PATH]

scikit-learn ships the data inside its package, so nothing is downloaded. The archive holds

    images       uint8 (1797, 8, 8), pixel values 0..16
    labels       uint8 (1797,), digits 0..9
    train        uint16 (1438,), sorted indices into images/labels
    validation   uint16 (359,), sorted indices; disjoint from train, together they cover all

The split is stratified by class: in each class, a fixed-seed permutation puts round(20 %) of
the images in validation and the rest in train. It uses only numpy, so it does not depend on
scikit-learn's version. The archive is written byte for byte reproducibly: fixed zip
timestamps, file attributes, host system and compression level (np.savez_compressed leaves
the host system to the platform, so its bytes differ between Windows and Unix). Every run
prints the same sha256, which bncourse.data.DIGITS_SHA256 must equal.
"""
import argparse
import hashlib
import io
import zipfile
from pathlib import Path

import numpy as np

SEED = 20240611
VALIDATION_FRACTION = 0.2
OUT = Path(__file__).resolve().parents[1] / "datasets" / "digits.npz"


def stratified_split(labels, fraction=VALIDATION_FRACTION, seed=SEED):
    """Sorted (train, validation) index arrays; each class puts round(fraction * size) of its
    members, chosen by a fixed-seed permutation, in validation."""
    rng = np.random.default_rng(seed)
    validation = []
    for digit in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == digit))
        validation.append(members[: round(fraction * members.size)])
    validation = np.sort(np.concatenate(validation))
    train = np.setdiff1d(np.arange(labels.size), validation)  # sorted
    return train.astype(np.uint16), validation.astype(np.uint16)


def digits_arrays():
    """The arrays stored in digits.npz, in file order."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images, labels = bunch.images, bunch.target
    assert images.shape == (1797, 8, 8) and labels.shape == (1797,)
    assert np.array_equal(images, np.round(images)) and images.min() >= 0 and images.max() <= 16
    assert set(np.unique(labels)) == set(range(10))
    labels = labels.astype(np.uint8)
    train, validation = stratified_split(labels)
    return {"images": images.astype(np.uint8), "labels": labels,
            "train": train, "validation": validation}


def write_npz(path, arrays):
    """Write arrays as an .npz archive that np.load reads, with no time stamp or platform in
    it: the same arrays always give the same bytes (with the same zlib)."""
    with zipfile.ZipFile(path, "w") as archive:
        for name, array in arrays.items():
            buffer = io.BytesIO()
            np.lib.format.write_array(buffer, np.ascontiguousarray(array), allow_pickle=False)
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.create_system = 3  # unix, whatever platform builds it
            info.external_attr = 0o644 << 16
            archive.writestr(info, buffer.getvalue(), compress_type=zipfile.ZIP_DEFLATED,
                             compresslevel=9)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT, help=f"where to write (default {OUT})")
    out = parser.parse_args().out
    arrays = digits_arrays()
    write_npz(out, arrays)
    with np.load(out, allow_pickle=False) as check:  # round trip
        assert all(np.array_equal(check[k], v) and check[k].dtype == v.dtype
                   for k, v in arrays.items())
    data = out.read_bytes()
    print(f"{out}: {len(data)} bytes, train {arrays['train'].size}, "
          f"validation {arrays['validation'].size}")
    print(f"sha256 {hashlib.sha256(data).hexdigest()}")


if __name__ == "__main__":
    main()
