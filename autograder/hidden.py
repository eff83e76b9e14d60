"""Hidden tests: the entry point that nbgrader test cells call.

    ### BEGIN HIDDEN TESTS
    from autograder.hidden import grade
    grade("batch_mean", batch_mean)
    ### END HIDDEN TESTS

`grade` runs the learner's piece on many randomised inputs (shapes, seeds, float32 and
float64, offsets up to 1e4, N=2, D=1, constant features) and compares every answer with
both the hidden reference and torch.nn.BatchNorm1d. On the first wrong answer it raises
CheckFailed (an AssertionError) whose message names the likely mistake; the message never
contains this file's source or the reference.
"""
import zlib

from autograder import reference
from bncourse import judge, oracle
from bncourse.checks import CheckFailed, explain

HIDDEN_CASES = 40


def _seed(piece):
    return 1000 + zlib.crc32(piece.encode()) % 100000


def hidden_cases(piece):
    return judge.make_cases(piece, seed=_seed(piece), count=HIDDEN_CASES)


def grade(piece, fn, namespace=None):
    """Raise CheckFailed naming the mistake unless fn is right on every hidden case."""
    cases = hidden_cases(piece)
    sources = {"the reference": judge.expected_from(reference, piece),
               "torch.nn.BatchNorm1d": oracle.expected(piece)}
    with judge.trusted_parts(piece, namespace, reference):
        for source, expected in sources.items():
            failure = judge.first_failure(piece, fn, cases, expected)
            if failure is not None:
                raise CheckFailed(f"{piece} (hidden tests, compared with {source}): "
                                  + explain(piece, fn, failure)) from None
    print(f"✓ {piece}: all {len(cases)} hidden inputs match the reference and torch.nn.BatchNorm1d")
