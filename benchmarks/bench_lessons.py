"""Timings that the course promises, measured on this machine (report medians).

  - Run-All time of each lesson as a learner runs it (course notebook + model answers),
    and of the instructor's source notebook (hidden tests included): goal < 20 s (lessons 00
    and 07, with experiments: < 30 s; lesson 06: < 120 s);
  - latency of each visible check: goal < 0.5 s;
  - lesson 03: the compact backward's speed over the staged one, (256, 4096) float32, one
    thread: goal >= 3x (median over fresh processes of each one's fastest run);
  - time to grade one notebook of each lesson, and the demo class, through nbgrader.
    python benchmarks/bench_lessons.py [--runs 3] [--skip-demo] [--lessons 00_... 05_...]
"""
import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from autograder import grading, submissions  # noqa: E402
from autograder.settings import REPO  # noqa: E402


def run_all(nb, cwd):
    start = time.perf_counter()
    NotebookClient(nb, timeout=600, kernel_name="python3", allow_errors=False,
                   extra_arguments=["--IPKernelApp.log_level=ERROR"],
                   resources={"metadata": {"path": str(cwd)}}).execute()
    return time.perf_counter() - start


GOALS = {"00_internal_covariate_shift": 30, "06_why_batchnorm_works": 120, "07_placement_and_alternatives": 30}


def lesson_times(runs, lessons):
    print(f"Run-All per lesson (median of {runs}; kernel start included)")
    for lesson in lessons:
        learner = statistics.median(run_all(submissions.filled_notebook(lesson), REPO) for _ in range(runs))
        source = statistics.median(
            run_all(nbformat.read(submissions.notebook_path(lesson, REPO / "solutions"), 4), REPO)
            for _ in range(runs))
        goal = GOALS.get(lesson, 20)
        print(f"  {lesson:28s} learner {learner:5.1f} s   source with hidden tests {source:5.1f} s"
              f"   goal < {goal} s: {'ok' if max(learner, source) < goal else 'OVER GOAL'}")


def check_latency(runs):
    import contextlib
    import io

    from bncourse import checks
    ns = {}
    for lesson in submissions.lessons():
        for code in submissions.solution_sources(lesson).values():
            exec("import copy\nimport numpy as np\nimport torch\nimport torch.nn.functional as F\n" + code, ns)
    import subprocess
    imports = [float(subprocess.run([sys.executable, "-c", "import time; t = time.perf_counter(); "
                                     "from bncourse import checks; print(time.perf_counter() - t)"],
                                    capture_output=True, text=True, check=True).stdout)
               for _ in range(3)]
    print(f"\nImporting bncourse.checks in a fresh kernel (torch included, once per notebook): "
          f"{statistics.median(imports):.2f} s")
    print(f"Visible check latency (median of {runs} after a warm-up; goal < 0.5 s)")
    from bncourse import pieces
    for name in pieces.REGISTRY:  # (a piece's earlier steps: found in ns, where it looks them up)
        check = getattr(checks, f"check_{name}")
        times = []
        for _ in range(runs + 1):
            start = time.perf_counter()
            with contextlib.redirect_stdout(io.StringIO()):
                assert check(ns[name])
            times.append(time.perf_counter() - start)
        med = statistics.median(times[1:])
        print(f"  check_{name:27s} {med * 1000:7.1f} ms   (first call {times[0] * 1000:.0f} ms)"
              f"   {'ok' if med < 0.5 else 'OVER GOAL'}")


BACKWARD_SPEED = """
import json, numpy as np
from autograder import submissions
from bncourse import timing
ns = {"np": np}
for code in submissions.solution_sources("03_backward").values():
    exec(code, ns)
print(json.dumps(timing.compare_backward(ns["batchnorm_backward_staged"], ns["batchnorm_backward"],
                                         repeats=10, verbose=False)))
"""


def backward_speed(processes=5):
    """Each fresh process times the model solutions (fastest of 10 runs after a warm-up)."""
    import json
    import subprocess
    runs = [json.loads(subprocess.run([sys.executable, "-c", BACKWARD_SPEED], capture_output=True, text=True,
                                      check=True, cwd=REPO, env={**os.environ, "OMP_NUM_THREADS": "1"}).stdout)
            for _ in range(processes)]
    med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
    ratios = sorted(r["staged"] / r["compact"] for r in runs)
    print(f"\nLesson 03 backward, (256, 4096) float32, one thread (median over {processes} processes)")
    for name, seconds in med.items():
        print(f"  {name:8s} {seconds * 1e3:7.2f} ms")
    print(f"  compact is {statistics.median(ratios):.1f}x faster than staged (per process: "
          f"{', '.join(f'{r:.1f}' for r in ratios)}; goal >= 3x); torch's kernel is "
          f"{med['compact'] / med['torch']:.1f}x faster than compact")


def grading_times(lessons, copies=3):
    """Seconds to grade one notebook of each lesson (model answers), one at a time: COPIES
    notebooks per lesson in one grading run, its total divided by COPIES (so the run's share of
    generating the assignment is included)."""
    print(f"\nGrading one notebook, one at a time ({copies} per lesson in one run; the run's total / {copies})")
    for lesson in lessons:
        with tempfile.TemporaryDirectory() as tmp:
            inbox = Path(tmp) / "inbox"
            for k in range(copies):
                nb = submissions.filled_notebook(lesson)
                submissions.write(nb, inbox / f"student{k}" / lesson / f"{lesson}.ipynb")
            start = time.perf_counter()
            rows = grading.grade(inbox, Path(tmp) / "work", progress=False, workers=1)
            took = time.perf_counter() - start
        assert all(r.score == r.max_score for r in rows), [r.failed_tests for r in rows]
        print(f"  {lesson:30s} {took / copies:5.1f} s")


def demo_class():
    from autograder.demo import build_class
    with tempfile.TemporaryDirectory() as tmp:
        inbox = build_class(Path(tmp) / "inbox")
        start = time.perf_counter()
        rows = grading.grade(inbox, Path(tmp) / "work", progress=False)
        took = time.perf_counter() - start
    graded = sum(r.status.startswith("graded") for r in rows)
    print(f"\nDemo class: {len(rows)} rows ({graded} notebooks executed) graded in {took:.1f} s "
          f"= {took / max(graded, 1):.1f} s per notebook, sequential")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--skip-demo", action="store_true")
    parser.add_argument("--lessons", nargs="*", default=submissions.lessons(), help="default: all")
    args = parser.parse_args()
    lesson_times(args.runs, args.lessons)
    check_latency(max(args.runs, 5))
    backward_speed()
    if not args.skip_demo:
        grading_times(args.lessons)
        demo_class()
