"""The graded pieces, each described once: its spec.

A spec holds no answer. It says which lesson a piece belongs to and how a learner writes it,
how to make its inputs, what its outputs are called, how far a correct answer may land from
the exact one (its rounding-error model), how to turn it into a function of arrays, which
earlier pieces it may call (judged with trusted stand-ins for them), what torch computes in
its place, and what the answer may not use. The judging engine (bncourse.judge), the visible
checks, the hidden tests, calibration, the tripwire and the honesty checks read everything
from here; none of them names a piece. The mistakes each piece is known for live beside
their probes' stored expected values in bncourse.misconceptions, keyed by the piece's name.

One module per lesson (lesson00.py ... lesson07.py) declares that lesson's specs in order.
"""
import importlib

from bncourse.pieces.spec import NORMALISATION_OPS

LESSON_MODULES = ("lesson00", "lesson01", "lesson02", "lesson03", "lesson04", "lesson05", "lesson06",
                  "lesson07")


def _load():
    specs = {}
    for module in LESSON_MODULES:
        for spec in importlib.import_module(f"{__name__}.{module}").SPECS:
            if spec.name in specs:
                raise ValueError(f"two specs for {spec.name}")
            specs[spec.name] = spec
    return specs


REGISTRY = _load()


def spec(piece):
    try:
        return REGISTRY[piece]
    except KeyError:
        raise KeyError(f"no graded piece is called {piece!r}") from None


def of_lesson(lesson):
    """The specs of one lesson, in the order the lesson grades them."""
    return [s for s in REGISTRY.values() if s.lesson == lesson]


def lessons():
    return sorted({s.lesson for s in REGISTRY.values()})


def lesson_bans(lesson):
    """The torch operators that no answer of the lesson may call: armed for the whole notebook
    while it is graded (each piece's own bans are armed while it is recorded)."""
    bans = [set(s.bans) for s in of_lesson(lesson)]
    common = set.intersection(*bans) if bans else set()
    return [op for op in NORMALISATION_OPS if op in common]
