"""Hidden tests: which inputs the grader asks about, and the verdict on the answers.

A learner's piece is judged in two halves that never share a process while grading:
  1. `calls_for(piece, cases)`: the inputs, written into the submission's sandbox; the
     hidden test cell records the learner's answers (bncourse.answers.record_answers);
  2. `verdict(piece, replay, cases)`: back in the grader, those answers are compared with
     the hidden reference *and* torch (BatchNorm1d, or autograd for gradients), and a failure
     names the likely mistake.

`grade(piece, fn)` runs both halves in one process (an instructor running the solutions,
the test suite). The cases are randomised shapes, seeds, float32 and float64, offsets up to
1e4, N=2, D=1 and constant features; while grading a class their seed comes from a secret
key per student, so no submission can know them in advance. Messages never contain this
file's source or the reference.
"""
import hashlib
import hmac
import zlib
from dataclasses import dataclass

from autograder import oracle as torch_oracle
from autograder import reference
from bncourse import judge, pieces
from bncourse.answers import Answer, Calls, Replay, answer_calls
from bncourse.cases import digest
from bncourse.checks import QUIET, CheckFailed, explanation
from bncourse.misconceptions import CATALOGUE

HIDDEN_CASES = 40
PIECES = tuple(pieces.REGISTRY)  # the pieces these hidden tests judge


def seed_for(piece, key=None):
    """The cases' seed: fixed for in-process runs; keyed (HMAC) per student when grading."""
    if key is None:
        return 1000 + zlib.crc32(piece.encode()) % 100000
    return int.from_bytes(hmac.new(key, piece.encode(), hashlib.sha256).digest()[:8], "little")


def hidden_cases(piece, key=None):
    return judge.make_cases(piece, seed=seed_for(piece, key), count=HIDDEN_CASES)


def calls_for(piece, cases):
    """Every input the verdict will ask about: the cases, then the misconception probes."""
    unique = {}
    for args, kwargs in [(c.args, c.kwargs) for c in cases]:
        unique.setdefault(digest(args, kwargs), (args, kwargs))
    probes_from = len(unique)
    for mistake in CATALOGUE.get(piece, []):
        for args, kwargs in mistake.probe.calls:
            unique.setdefault(digest(args, kwargs), (args, kwargs))
    return Calls(unique.values(), probes_from)


def sources(piece):
    """{name: expected(case)}: what the answers are compared with, the reference first, then
    torch (the piece's oracle, or for a piece torch has no layer for, autograder.oracle)."""
    spec = pieces.spec(piece)
    torch_side = judge.oracle_of(piece) if spec.oracle else judge.expected_from(torch_oracle, piece)
    return {"the reference": judge.expected_from(reference, piece), spec.oracle_name: torch_side}


KINDS = {  # a verdict's kind: what happened, as data (the grader adds not_own_work and deleted)
    "passed": "every hidden input answered right",
    "wrong": "a wrong answer (with or without a named mistake)",
    "raised": "the answer raised an error that no named mistake explains",
    "not_implemented": "not implemented yet",
    "missing": "no answers recorded (the notebook stopped, or the test cell did not finish)",
    "forbidden": "called torch's own normalisation",
    "demonstration": "used a name that only a demonstration cell (not run while grading) defines",
    "not_own_work": "its answer cell used what answers may not use (autograder.honesty)",
    "deleted": "its test cell was deleted from the notebook",
    "unjudged": "scored by nbgrader without a verdict of the hidden tests",
}


@dataclass(frozen=True)
class Verdict:
    """One piece's verdict. mistake: the id (Misconception.name, in bncourse.misconceptions'
    CATALOGUE[piece]) of the mistake the message names first, or None; kind: a key of KINDS."""
    piece: str
    passed: bool
    message: str
    kind: str
    mistake: str | None = None

    def data(self):
        """What the grader stores: everything but the message."""
        return {"passed": self.passed, "kind": self.kind, "mistake": self.mistake}


def judged(piece, fn, cases):
    """The Verdict on fn (a Replay of recorded answers, or the function itself)."""
    name = pieces.spec(piece).oracle_name
    for source, expected in sources(piece).items():
        failure = judge.first_failure(piece, fn, cases, expected)
        if failure is not None:
            plain = failure.kind in QUIET  # says it all
            where = "" if plain else f"{piece} (hidden tests, compared with {source}): "
            message, mistake = explanation(piece, fn, failure)
            kind = failure.kind if plain else "raised" if failure.kind == "raised" and not mistake else "wrong"
            return Verdict(piece, False, where + message, kind, mistake.name if mistake else None)
    return Verdict(piece, True, f"✓ {piece}: all {len(cases)} hidden inputs match the reference and {name}",
                   "passed")


def verdict(piece, fn, cases):
    """(passed, message) for fn (a Replay of recorded answers, or the function itself)."""
    found = judged(piece, fn, cases)
    return found.passed, found.message


def grade(piece, fn, namespace=None):
    """Record fn's answers and judge them, in this process; raise CheckFailed naming the
    mistake unless every hidden case is right."""
    cases = hidden_cases(piece)
    calls = calls_for(piece, cases)
    arrays, meta = answer_calls(piece, fn, calls, namespace)  # (answer_calls applies judge.pure)
    replay = Replay(piece, calls, [Answer(entry, arrays, i) for i, entry in enumerate(meta)])
    passed, message = verdict(piece, replay, cases)
    if not passed:
        raise CheckFailed(message) from None
    print(message)
