"""A correct answer never loses a point, measured over grading keys.

While a class is graded, every student's hidden inputs come from a secret key
(autograder.hidden.seed_for), so a correct answer must pass under *every* key, not only
the fixed in-process one. This runs each piece's model solution (solutions/<lesson>) and
every correct variant in tests/catalogue.py through the hidden verdict exactly as grading
does (hidden cases from the key, the answers recorded through bncourse.answers.answer_calls
with the trusted earlier steps, then autograder.hidden.verdict against the reference and
torch), under many random keys, and prints per piece: keys tried, false fails, and the
worst error/allowed ratio seen (target: no false fail, worst ratio <= 0.5).

    python benchmarks/sweep_keys.py [--keys 2000] [--slow-keys N] [--seed S] [piece ...]

--slow-keys: keys for the slow pieces (SLOW, the torch modules; default: --keys).
A false fail prints the key (hex) and the message: rerun it with --key HEX piece.
"""
import argparse
import ast
import hashlib
import math
import secrets
import sys
import time
from pathlib import Path

import nbformat
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from autograder import hidden  # noqa: E402
from autograder.paths import SOURCE  # noqa: E402
from autograder.submissions import grade_id, is_solution, is_test_cell, notebook_path, solution_sources  # noqa: E402
from bncourse import pieces, timing, verdicts  # noqa: E402
from bncourse.answers import Answer, Replay, answer_calls  # noqa: E402
from tests.catalogue import VARIANTS, compile_piece  # noqa: E402

PIECES = list(hidden.PIECES)
SLOW = ("training_forward", "BatchNormFunction", "BatchNorm1d", "BatchNorm2d")  # 0.25-0.85 s a key; others 0.01-0.35 s


def _notebook_namespace():
    """What a notebook has imported before its answer cells run."""
    import copy

    import torch
    import torch.nn.functional as F
    return {"np": np, "torch": torch, "F": F, "copy": copy}


def solution_namespace(lesson):
    """A lesson's notebook as its model solution stands: its solution cells (solution_sources)
    and the definitions and imports of its other cells (e.g. the recap of earlier lessons'
    steps), run in order in one namespace; no test cell, no experiment."""
    solutions = solution_sources(lesson)
    ns = _notebook_namespace()
    for cell in nbformat.read(notebook_path(lesson, SOURCE), as_version=4).cells:
        if cell.cell_type != "code" or is_test_cell(cell):
            continue
        if is_solution(cell):
            exec(solutions[grade_id(cell)], ns)
            continue
        kept = [node for node in ast.parse(cell.source).body
                if isinstance(node, (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.ClassDef))]
        exec(compile(ast.Module(kept, type_ignores=[]), lesson, "exec"), ns)
    return ns


def answers_for(piece):
    """{name: namespace}: the model solution and every correct variant that answers `piece`
    (a variant's namespace also holds the in_place variant's other pieces, as test_judge does)."""
    found = {"solution": solution_namespace(pieces.spec(piece).lesson)}
    for name, sources in VARIANTS.items():
        if piece in sources:
            ns = _notebook_namespace()
            for source in list(VARIANTS["in_place"].values()) + list(sources.values()):
                compile_piece(source, ns)
            found[name] = ns
    return found


def keys(count, seed):
    """`count` grading keys, reproducible from `seed`."""
    return [hashlib.sha256(f"{seed}:{k}".encode()).digest()[:16] for k in range(count)]


def judged(piece, namespace, key):
    """(passed, message, worst error/allowed) of namespace[piece] under this grading key: the
    path grading takes (autograder.hidden.grade, with the key's cases), in this process."""
    cases = hidden.hidden_cases(piece, key)
    calls = hidden.calls_for(piece, cases)
    arrays, meta = answer_calls(piece, namespace[piece], calls, namespace)
    replay = Replay(piece, calls, [Answer(entry, arrays, i) for i, entry in enumerate(meta)])
    with verdicts.margins() as ratios:
        passed, message = hidden.verdict(piece, replay, cases)
    return passed, message, max(ratios, default=0.0)


def sweep(piece, key_list, answers=None, log=print):
    """Every answer of `piece` under every key: {answer: (keys tried, [(key, message)], worst ratio)}."""
    answers = answers or answers_for(piece)
    result = {}
    for name, ns in answers.items():
        fails, worst = [], 0.0
        for i, key in enumerate(key_list, 1):
            with timing.one_thread():  # tiny tensors: more threads only contend for the cores
                passed, message, ratio = judged(piece, ns, key)
            worst = max(worst, ratio)
            if not passed:
                fails.append((key, message))
                log(f"  FALSE FAIL {piece} / {name} under key {key.hex()}:\n    "
                    + message.replace("\n", "\n    "))
            if i % 250 == 0 and i < len(key_list):
                log(f"  ... {piece} / {name}: {i} keys, {len(fails)} false fails, worst {worst:.3g}")
        result[name] = (len(key_list), fails, worst)
    return result


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("pieces", nargs="*", default=PIECES)
    parser.add_argument("--keys", type=int, default=2000)
    parser.add_argument("--slow-keys", type=int, default=None)
    parser.add_argument("--seed", default=None, help="keys are reproducible from it (default: random)")
    parser.add_argument("--key", default=None, help="one key, in hex (as a false fail prints it)")
    args = parser.parse_args(argv)
    seed = args.seed or secrets.token_hex(4)
    print(f"seed {seed}; {args.keys} keys per piece"
          + (f", {args.slow_keys} for {', '.join(p for p in SLOW if p in args.pieces)}"
             if args.slow_keys is not None else "") + f"; {hidden.HIDDEN_CASES} + 6 hidden cases per key",
          flush=True)
    total_fails, worst_all = 0, 0.0
    for piece in args.pieces:
        count = args.slow_keys if piece in SLOW and args.slow_keys is not None else args.keys
        key_list = [bytes.fromhex(args.key)] if args.key else keys(count, f"{seed}:{piece}")
        start = time.perf_counter()
        result = sweep(piece, key_list)
        took = time.perf_counter() - start
        for name, (tried, fails, worst) in result.items():
            total_fails += len(fails)
            worst_all = max(worst_all, worst)
            flag = "" if not fails and worst <= 0.5 else ("   <-- FALSE FAILS" if fails else "   <-- ratio > 0.5")
            print(f"{piece:28s} {name:20s} keys {tried:5d}  false fails {len(fails):4d}  "
                  f"worst error/allowed {worst:8.3g}{flag}", flush=True)
        print(f"{'':28s} ({took:.0f} s, {took / max(len(key_list) * len(result), 1) * 1000:.0f} ms per key "
              f"and answer)", flush=True)
    print(f"\ntotal false fails: {total_fails}; worst error/allowed over all pieces: "
          f"{worst_all:.3g}" + ("" if math.isfinite(worst_all) else " (a failure)"))
    return 1 if total_fails else 0


if __name__ == "__main__":
    sys.exit(main())
