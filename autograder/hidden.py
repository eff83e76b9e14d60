"""Hidden tests: the entry point that nbgrader test cells call.

    ### BEGIN HIDDEN TESTS
    from autograder.hidden import grade
    grade("batch_mean", batch_mean)
    ### END HIDDEN TESTS

`grade` runs the learner's piece on many randomised inputs (shapes, seeds, float32 and
float64, offsets up to 1e4, N=2, D=1, constant features) and compares every answer with
both the hidden reference and torch.nn.BatchNorm1d. On the first wrong answer it raises
AssertionError whose message names the likely mistake; the message never contains this
file's source or the reference.
"""
import contextlib
import zlib

import numpy as np

from autograder import reference
from bncourse import judge, oracle
from bncourse.checks import explain

HIDDEN_CASES = 40
# The pieces a piece is assembled from: swapped for the reference while it is graded, so a
# mistake in an earlier step never costs the later step its points.
PARTS = {"batchnorm_forward": ("batch_mean", "batch_variance", "normalise", "scale_and_shift")}


def _seed(piece):
    return 1000 + zlib.crc32(piece.encode()) % 100000


def _keep_dtype(ref_fn):
    """The reference computes in float64; hand back the input's dtype, as a learner's would."""
    def part(*args, **kwargs):
        return np.asarray(ref_fn(*args, **kwargs)).astype(np.asarray(args[0]).dtype)
    part.__name__ = ref_fn.__name__
    return part


@contextlib.contextmanager
def reference_parts(piece, namespace):
    """Temporarily replace the learner's earlier pieces in `namespace` by the reference."""
    if namespace is None:
        yield
        return
    names = [n for n in PARTS.get(piece, ()) if n in namespace]
    saved = {n: namespace[n] for n in names}
    try:
        for n in names:
            namespace[n] = _keep_dtype(getattr(reference, n))
        yield
    finally:
        namespace.update(saved)


def hidden_cases(piece):
    return judge.make_cases(piece, seed=_seed(piece), count=HIDDEN_CASES)


def grade(piece, fn, namespace=None):
    """Raise AssertionError naming the mistake unless fn is right on every hidden case."""
    cases = hidden_cases(piece)
    sources = {"the reference": lambda case: getattr(reference, piece)(*case.args, **case.kwargs),
               "torch.nn.BatchNorm1d": oracle.expected(piece)}
    with reference_parts(piece, namespace):
        for source, expected in sources.items():
            for case in cases:
                try:
                    judge.judge_case(piece, fn, case, expected)
                except judge.Failure as failure:
                    raise AssertionError(f"{piece} (hidden tests, compared with {source}): "
                                         + explain(piece, fn, failure)) from None
    print(f"✓ {piece}: all {len(cases)} hidden inputs match the reference and torch.nn.BatchNorm1d")
