"""How fast a class is graded: N synthetic students over every lesson, sequential vs parallel.

    python benchmarks/bench_grading.py [--students 100] [--workers 2]

Prints the wall time of each run, the time per notebook, two floors it is compared against
(no sandbox, no nbgrader, no judging): starting a bare kernel and running the lesson's import
cell, the least any grader that runs a notebook must pay; and running the whole answered
notebook with nbclient, the least any grader that runs *this* notebook must pay. Then the
speedup. Goals: speedup >= 1.8x on 2 cores; sequential time per notebook within 1.3x of
the floor. Also checks that both runs gave the same scores.
"""
import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import nbformat  # noqa: E402

from autograder import grading, submissions  # noqa: E402
from autograder.reports import SECRET  # noqa: E402
from tests.catalogue import LESSON_OF, MUTANTS, VARIANTS  # noqa: E402


def build_class(inbox, students, lessons):
    """Mostly right, some classic mistakes, a few untouched: like a real class."""
    variants = list(VARIANTS.values())
    for i in range(students):
        for lesson in lessons:
            kind = i % 4
            if kind == 3:
                mutants = [m for m in MUTANTS if m.lesson == lesson]
                m = mutants[i % len(mutants)]
                nb = submissions.filled_notebook(lesson, {m.piece: m.source})
            elif kind == 2:
                answers = {p: s for p, s in variants[i % len(variants)].items() if LESSON_OF[p] == lesson}
                nb = submissions.filled_notebook(lesson, answers)
            else:
                nb = submissions.filled_notebook(lesson, fill_rest=i % 20 != 1)
            submissions.write(nb, inbox / f"student{i:03d}" / lesson / f"{lesson}.ipynb")


def floors(lesson, repeats=5):
    """Median seconds (a) to start a kernel, run the lesson's import cell and stop, and
    (b) to run the whole answered notebook with nbclient, in this process."""
    from jupyter_client.manager import start_new_kernel
    from nbclient import NotebookClient
    nb = submissions.filled_notebook(lesson)
    setup = next(c.source for c in nb.cells if c.cell_type == "code")
    bare, whole = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(repeats):
            start = time.perf_counter()
            km, kc = start_new_kernel(kernel_name="python3",
                                      extra_arguments=["--HistoryManager.hist_file=:memory:"])
            kc.execute_interactive(setup, timeout=120)
            kc.stop_channels()
            km.shutdown_kernel(now=True)
            bare.append(time.perf_counter() - start)
            start = time.perf_counter()
            NotebookClient(nbformat.from_dict(nb), timeout=120, allow_errors=True,
                           shutdown_kernel="immediate", resources={"metadata": {"path": tmp}},
                           extra_arguments=["--HistoryManager.hist_file=:memory:"]).execute()
            whole.append(time.perf_counter() - start)
    return statistics.median(bare), statistics.median(whole)


def timed_grade(inbox, work, workers):
    start = time.perf_counter()
    rows = grading.grade(inbox, work, progress=True, workers=workers)
    return time.perf_counter() - start, rows, [(r.student, r.lesson, r.score, r.status) for r in rows]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--students", type=int, default=100)
    parser.add_argument("--workers", type=int, default=os.cpu_count())
    parser.add_argument("--lessons", nargs="*", default=submissions.lessons(), help="default: all")
    args = parser.parse_args()
    lessons = args.lessons
    measured = {lesson: floors(lesson) for lesson in lessons}
    with tempfile.TemporaryDirectory() as tmp:
        inbox = Path(tmp) / "inbox"
        build_class(inbox, args.students, lessons)
        notebooks = args.students * len(lessons)
        seq, rows, scores_seq = timed_grade(inbox, Path(tmp) / "sequential", 1)
        # the same secret key, so both runs ask the same hidden questions
        (Path(tmp) / "parallel").mkdir()
        shutil.copy(Path(tmp) / "sequential" / SECRET, Path(tmp) / "parallel" / SECRET)
        par, _, scores_par = timed_grade(inbox, Path(tmp) / "parallel", args.workers)
    sandboxes = sorted({r.sandbox for r in rows})
    bare = statistics.mean(b for b, _ in measured.values())
    whole = statistics.mean(w for _, w in measured.values())
    print(f"\n{args.students} students x {len(lessons)} lessons = {notebooks} notebooks "
          f"({os.cpu_count()} cores; sandbox: {', '.join(sandboxes)})")
    for lesson, (b, w) in measured.items():
        print(f"  floors {lesson}: {b:.2f} s bare kernel start + import cell; "
              f"{w:.2f} s the answered notebook run plainly (medians of 5)")
    per = seq / notebooks
    print(f"  sequential: {seq:7.1f} s wall, {per:.2f} s per notebook = {per / bare:.2f}x the bare "
          f"floor, {per / whole:.2f}x the plain run (goal <= 1.3x)")
    print(f"  parallel ({args.workers} workers): {par:7.1f} s wall, {par / notebooks:.2f} s per notebook")
    print(f"  speedup: {seq / par:.2f}x (goal >= 1.8x)")
    print(f"  same scores and statuses from both: {scores_seq == scores_par}")
    for a, b in zip(scores_seq, scores_par):
        if a != b:
            print(f"    differs: sequential {a} / parallel {b}")


if __name__ == "__main__":
    main()
