"""The visible checks' stored answers (bncourse/stored_answers.npz) are what the reference gives
today, and the learner's package computes none of those pieces itself."""
import numpy as np

from autograder import stored_answers
from bncourse import pieces, stored


def test_stored_answers_are_current():
    assert stored_answers.stale() == [], "run `make stored-answers`"


def test_a_stale_answer_is_named(tmp_path):
    arrays = stored.encode(stored_answers.generate())
    key = next(k for k in arrays if k.startswith("batch_mean_noise."))
    arrays[key] = arrays[key] + 1e-9
    path = tmp_path / "stale.npz"
    np.savez(path, **arrays)
    assert stored_answers.stale(path) == ["batch_mean_noise"]


def test_pieces_without_a_torch_oracle_are_the_stored_ones():
    stored_pieces = set(stored_answers.stored_pieces())
    meta, _ = stored._load()
    assert set(meta) == stored_pieces
    assert {"largest_stable_lr", "batch_mean_noise", "effective_smoothness", "shift_per_step"} <= stored_pieces
    assert all(pieces.spec(p).oracle is None for p in stored_pieces)
