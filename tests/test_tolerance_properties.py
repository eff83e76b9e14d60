"""Hypothesis hunts for inputs on which a correct answer would lose its points.

The grading cases come from a few fixed recipes (tests/test_key_sweep.py draws many keys of
them). Here Hypothesis draws the batch itself, outside those recipes: shapes from (2, 1) to
(64, 8), float32 or float64, features offset by 0 to 1e4, each feature with its own spread
from 1e-2 to 1e2, constant features; then every correct answer we know (the model solution
and the catalogue's variants) is judged on it as grading judges it, against the hidden
reference and torch. Any failure is a tolerance that is too tight, with the input that
shows it (Hypothesis shrinks it and prints it).
"""
import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from autograder import reference  # noqa: E402
from benchmarks import sweep_keys  # noqa: E402
from bncourse import judge, pieces, timing  # noqa: E402

# pieces whose cases are built around one (N, D) batch (the others build models or modules)
PIECES = ["batch_mean", "batch_variance", "normalise", "scale_and_shift", "batchnorm_forward",
          "scale_shift_backward", "product_backward", "reciprocal_backward", "sqrt_backward",
          "variance_backward", "centre_backward", "mean_backward",
          "batchnorm_backward_staged", "batchnorm_backward", "update_running_stats",
          "update_running_stats_torch", "batchnorm_inference", "layer_norm", "group_norm",
          "BatchNormFunction"]
ANSWERS = {}


def answers(piece):
    if piece not in ANSWERS:
        ANSWERS[piece] = {name: judge.pure(piece, ns[piece]) for name, ns in sweep_keys.answers_for(piece).items()}
    return ANSWERS[piece]


def offsets(piece, dtype):
    """The feature offsets grading uses for this piece and dtype (bncourse.judge.make_cases):
    float32 cases up to the spec's float32_offset (backward: near 0; the Function: 1e3)."""
    limit = pieces.spec(piece).float32_offset if dtype == np.float32 else np.inf
    return [o for o in (0.0, 1.0, 1e2, 1e3, 1e4) if o <= limit]


@st.composite
def batches(draw, piece):
    n, d = draw(st.integers(2, 64)), draw(st.integers(1, 8))
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    offset = draw(st.sampled_from(offsets(piece, dtype)))
    log_spread = np.array(draw(st.lists(st.floats(-2, 2), min_size=d, max_size=d)))
    constant = draw(st.integers(0, d - 1)) if d > 1 else 0
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    x = offset * rng.choice([-1.0, 1.0], d) * (0.5 + rng.random(d)) + 10 ** log_spread * rng.standard_normal((n, d))
    x[:, :constant] = 2.5
    return x.astype(dtype), rng, draw(st.integers(0, 59))


@pytest.mark.parametrize("piece", PIECES)
def test_no_input_makes_a_correct_answer_fail(piece):
    expected = {"the reference": judge.expected_from(reference, piece),
                pieces.spec(piece).oracle_name: judge.oracle_of(piece)}

    @settings(max_examples=100, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
    @given(batches(piece))
    def correct_answers_pass(drawn):
        x, rng, i = drawn
        case = pieces.spec(piece).make_case(rng, x, f"{x.dtype} x of shape {x.shape}", i)
        for name, fn in answers(piece).items():
            for source, exact in expected.items():
                failure = judge.first_failure(piece, fn, [case], exact)
                assert failure is None, f"correct answer {name!r} fails against {source}: {failure}"

    with timing.one_thread():
        correct_answers_pass()
