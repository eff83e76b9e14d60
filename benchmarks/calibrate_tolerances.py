"""Print how close correct answers come to the float32/float64 tolerance, and how far
known mistakes land from it: the evidence behind bncourse.judge.TOLERANCE_K.

For each piece: the worst ratio error/allowed over many randomised cases, for torch's own
float32 kernels and every correct variant in tests/catalogue.py (must stay < 1), and for
every mutant the ratio on the case that catches it (must be > 1; the larger the better).
    python benchmarks/calibrate_tolerances.py [seeds] [piece ...]
"""
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from autograder import reference  # noqa: E402
from bncourse import judge, pieces, rounding, verdicts  # noqa: E402
from tests.catalogue import MUTANTS, VARIANTS, compile_piece  # noqa: E402

PIECES = list(pieces.REGISTRY)
NATIVE = "torch float32 kernels"


def worst_ratio(piece, fn, cases, learner=True, namespace=None):
    """max over cases and outputs of error / allowed, as the judge measures it (verdicts.margins);
    inf when an answer is caught before any tolerance (a crash, a shape, a module's layout).
    learner: fn has the learner's signature (else it already takes the judged arrays).
    namespace: where a module finds its BatchNormFunction; the trusted one is swapped in, as
    while grading."""
    fn = judge.pure(piece, fn) if learner else fn
    worst = 0.0
    with judge.trusted_parts(piece, namespace if learner else None):
        for case in cases:
            with verdicts.margins() as ratios:
                try:
                    judge.judge_case(piece, fn, case, judge.expected_from(reference, piece))
                except verdicts.Failure as failure:
                    if failure.kind != "value":
                        return float("inf")
            worst = max([worst] + ratios)
    return worst


def main(seeds=20, chosen=PIECES):
    print(f"TOLERANCE_K = {rounding.TOLERANCE_K}; unit float32 = {rounding.UNIT[np.dtype(np.float32)]:.2g}, "
          f"float64 = {rounding.UNIT[np.dtype(np.float64)]:.2g}; {seeds} seeds x 46 cases per piece\n")
    answers = {NATIVE: {name: s.native for name, s in pieces.REGISTRY.items() if s.native}}
    for name, sources in VARIANTS.items():
        ns = {}
        for src in sources.values():
            compile_piece(src, ns)
        answers[name] = ns
    for piece in chosen:
        cases = [c for s in range(seeds) for c in judge.make_cases(piece, seed=10_000 + s, count=40)]
        print(f"{piece}:")
        for name, ns in answers.items():
            if piece not in (VARIANTS[name] if name in VARIANTS else ns):
                continue  # (ns may hold other variants' pieces, copied in for a PARTS piece)
            fn = ns[piece]
            if pieces.spec(piece).parts and name != NATIVE:
                base = dict(answers["in_place"]) | ns  # the pieces it calls, if the variant lacks them
                # (a function's globals; a class's methods look up their pieces in ns, where it was defined)
                getattr(fn, "__globals__", ns).update({k: v for k, v in base.items() if callable(v)})
            ratio = worst_ratio(piece, fn, cases, learner=name != NATIVE, namespace=ns)
            print(f"  correct  {name:24s} worst error/allowed = {ratio:9.3g}")
        for m in (m for m in MUTANTS if m.piece == piece):
            ns = compile_piece(m.source, dict(answers["in_place"]) | {"np": np})
            print(f"  mutant   {m.name:24s} worst error/allowed = "
                  f"{worst_ratio(piece, ns[piece], cases, namespace=ns):9.3g}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 20, sys.argv[2:] or PIECES)
