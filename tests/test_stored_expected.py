"""The visible checks' stored expected values (bncourse/stored_expected.npz) are what the reference gives
today, and the learner's package computes none of those pieces itself."""
import numpy as np

from autograder import store_expected
from bncourse import pieces, stored


def test_stored_expected_values_are_current():
    assert store_expected.stale() == [], "run `make stored-expected`"


def test_a_stale_answer_is_named(tmp_path):
    arrays = stored.encode(store_expected.generate())
    key = next(k for k in arrays if k.startswith("batch_mean_noise."))
    arrays[key] = arrays[key] + 1e-9
    path = tmp_path / "stale.npz"
    np.savez(path, **arrays)
    assert store_expected.stale(path) == ["batch_mean_noise"]


def test_a_change_beyond_rounding_is_stale_and_rounding_is_not(tmp_path):
    """Another CPU's kernels move a float64 answer by a unit or two in the last place: not stale.
    Anything larger is."""
    arrays = stored.encode(store_expected.generate())
    key = next(k for k in arrays if k.startswith("gradient_norms.") and arrays[k].dtype.kind == "f")
    for units, is_stale in ((2, False), (1e3, True)):
        changed = dict(arrays)
        changed[key] = arrays[key] * (1 + units * np.finfo(np.float64).eps)
        path = tmp_path / f"moved{units}.npz"
        np.savez(path, **changed)
        assert store_expected.stale(path) == (["gradient_norms"] if is_stale else [])


def test_pieces_without_a_torch_oracle_are_the_stored_ones():
    stored_pieces = set(store_expected.stored_pieces())
    meta, _ = stored._load()
    assert set(meta) == stored_pieces
    assert {"largest_stable_lr", "batch_mean_noise", "effective_smoothness", "shift_per_step"} <= stored_pieces
    assert all(pieces.spec(p).oracle is None for p in stored_pieces)
