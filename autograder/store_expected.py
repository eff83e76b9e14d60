"""Writes bncourse/stored_expected.npz: the visible checks' expected answers for the pieces whose
spec has no torch oracle (bncourse.stored), computed by the hidden reference and checked
against the grading side's torch answers (autograder.oracle) before they are written.

    python -m autograder.store_expected          # make stored-expected
    python -m autograder.store_expected --check  # exit 1 when the file is not current
"""
import argparse
import sys
from pathlib import Path

import numpy as np

import bncourse
from autograder import oracle as torch_oracle
from autograder import reference
from bncourse import checks, judge, pieces, stored
from bncourse.cases import digest

PATH = Path(bncourse.__file__).with_name(stored.FILE)


def stored_pieces():
    return [name for name, spec in pieces.REGISTRY.items() if spec.oracle is None]


def generate():
    """{piece: {digest: answer}} for every visible case of every stored piece."""
    answers = {}
    for piece in stored_pieces():
        spec = pieces.spec(piece)
        for case in judge.make_cases(piece, seed=checks.VISIBLE_SEED, count=spec.visible_count):
            exact = getattr(reference, piece)(*case.args, **case.kwargs)
            failure = judge.first_failure(piece, getattr(reference, piece), [case],
                                          judge.expected_from(torch_oracle, piece))
            if failure is not None:
                raise AssertionError(f"the reference and torch disagree on {piece}: {failure}")
            answers.setdefault(piece, {})[digest(case.args, case.kwargs)] = exact
    return answers


# The reference's float64 answers go through torch's kernels, whose order of additions the CPU's
# vector unit decides: the same answer differs by up to ~1.2 units in the last place between
# ATEN_CPU_CAPABILITY=default, avx2 and avx512 (gradient_norms, measured). Eight units cover that;
# a real change (another reference, other cases) moves an answer by many orders of magnitude more.
ROUNDING_UNITS = 8


def _same(fresh, old):
    if fresh.shape != old.shape or fresh.dtype != old.dtype:
        return False
    if fresh.dtype.kind != "f":
        return np.array_equal(fresh, old)
    tolerance = ROUNDING_UNITS * np.finfo(fresh.dtype).eps * np.maximum(np.abs(fresh), np.abs(old))
    return bool(np.all((np.abs(fresh - old) <= tolerance) | (np.isnan(fresh) & np.isnan(old))))


def stale(path=PATH):
    """The pieces whose stored expected values differ from what generate() gives (empty: current),
    beyond the few units in the last place that another CPU's kernels move them."""
    fresh = stored.encode(generate())
    try:
        with np.load(path, allow_pickle=False) as data:
            old = {k: data[k] for k in data.files}
    except OSError:
        return sorted(stored_pieces())
    names = {k.split(".")[0] for k in set(fresh) ^ set(old) if k != "meta"}
    names |= {k.split(".")[0] for k in set(fresh) & set(old) if k != "meta"
              and not _same(fresh[k], old[k])}
    if not np.array_equal(fresh["meta"], old.get("meta", np.zeros(0, np.uint8))) and not names:
        names.add("(the index)")
    return sorted(names)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args(argv)
    if args.check:
        names = stale()
        print(f"stale stored expected values: {', '.join(names)}" if names else "stored expected values are current")
        return 1 if names else 0
    np.savez_compressed(PATH, **stored.encode(generate()))
    print(f"wrote {PATH} ({PATH.stat().st_size} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
