"""How far each number the lessons state moves with the CPU's kernel paths.

    .venv/bin/python tools/kernel_spread.py [--lesson 07] [--json FILE]

Runs every experiment of tests/experiment_runs.py in child processes, one per environment in
ENVIRONMENTS (torch's kernel paths ATEN_CPU_CAPABILITY=avx512/avx2/default, each also with MKL's
portable code path, MKL_CBWR=COMPATIBLE: a machine whose matrix products add up in another
order), two at a time, then prints each marked number of the lessons' prose with the value its
marker gives under every environment, and whether each experiment's check holds everywhere.
Use it to choose how a number is stated: a tolerance must cover the spread shown here.
Takes a few minutes.
"""
import argparse
import json
import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tools"))

import prose_numbers  # noqa: E402

from tests import experiment_runs  # noqa: E402
from tests.test_prose_numbers import LESSONS, NAMESPACE, markdown_and_code  # noqa: E402

ENVIRONMENTS = {f"{cap}{'+mkl' if mkl else ''}":
                {"ATEN_CPU_CAPABILITY": cap, **({"MKL_CBWR": "COMPATIBLE"} if mkl else {})}
                for cap in ("avx512", "avx2", "default") for mkl in (False, True)}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lesson", help="only lessons whose name starts with this")
    parser.add_argument("--json", help="also write the values to this file")
    args = parser.parse_args()
    base = {k: v for k, v in os.environ.items() if k not in ("ATEN_CPU_CAPABILITY", "MKL_CBWR")}
    names = list(ENVIRONMENTS)
    workers = {}
    for pair in (names[i:i + 2] for i in range(0, len(names), 2)):   # two at a time: two cores
        started = {n: experiment_runs.Worker({**base, **ENVIRONMENTS[n]}, experiment_runs.PREFETCH) for n in pair}
        for worker in started.values():
            for key in experiment_runs.PREFETCH:
                worker.result(*key)
        workers.update(started)
    table = {}
    for lesson in LESSONS:
        if args.lesson and not lesson.startswith(args.lesson):
            continue
        cells, _ = markdown_and_code(lesson)
        for claim in (c for text in cells for c in prose_numbers.claims(text)):
            if "result(" not in claim.expr:
                continue
            values = {}
            for n in names:
                c = prose_numbers.check(prose_numbers.Claim(claim.number, claim.expr),
                                        {**NAMESPACE, "result": workers[n].result})
                values[n] = c.value
            table.setdefault(lesson, []).append((claim.number, claim.expr.strip(), values))
            finite = [v for v in values.values() if v is not None]
            print(f"{lesson[:2]} {claim.number:>8s}  min {min(finite):.4g}  max {max(finite):.4g}  "
                  + " ".join(f"{n}={v:.4g}" for n, v in values.items()) + f"   <- {claim.expr.strip()[:90]}")
    print("\nchecks (ok under every environment?)")
    for name, (_, check) in experiment_runs.CASES.items():
        oks = {n: check(workers[n].result(name))[0] for n in names}
        print(f"{name:22s} " + " ".join(f"{n}={'ok' if ok else 'FAILS'}" for n, ok in oks.items()))
    if args.json:
        Path(args.json).write_text(json.dumps(table, indent=1))
    for worker in workers.values():
        worker.close()


if __name__ == "__main__":
    main()
