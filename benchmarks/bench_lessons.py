"""Timings that the course promises, measured on this machine (report medians).

  - Run-All time of each lesson as a learner runs it (course notebook + model answers),
    and of the instructor's source notebook (hidden tests included): goal < 20 s;
  - latency of each visible check: goal < 0.5 s;
  - time to grade the demo class through nbgrader.
    python benchmarks/bench_lessons.py [--runs 3] [--skip-demo]
"""
import argparse
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


def lesson_times(runs):
    print(f"Run-All per lesson (median of {runs}; kernel start included; goal < 20 s)")
    for lesson in submissions.lessons():
        learner = statistics.median(run_all(submissions.filled_notebook(lesson), REPO) for _ in range(runs))
        source = statistics.median(
            run_all(nbformat.read(submissions.notebook_path(lesson, REPO / "solutions"), 4), REPO)
            for _ in range(runs))
        print(f"  {lesson:28s} learner {learner:5.1f} s   source with hidden tests {source:5.1f} s"
              f"   {'ok' if max(learner, source) < 20 else 'OVER GOAL'}")


def check_latency(runs):
    import contextlib
    import io

    from bncourse import checks
    ns = {}
    for lesson in submissions.lessons():
        for code in submissions.solution_sources(lesson).values():
            exec("import numpy as np\n" + code, ns)
    import subprocess
    imports = [float(subprocess.run([sys.executable, "-c", "import time; t = time.perf_counter(); "
                                     "from bncourse import checks; print(time.perf_counter() - t)"],
                                    capture_output=True, text=True, check=True).stdout)
               for _ in range(3)]
    print(f"\nImporting bncourse.checks in a fresh kernel (torch included, once per notebook): "
          f"{statistics.median(imports):.2f} s")
    print(f"Visible check latency (median of {runs} after a warm-up; goal < 0.5 s)")
    from bncourse import judge, oracle
    for name in oracle.PIECES:
        check = getattr(checks, f"check_{name}")
        kwargs = {"namespace": ns} if name in judge.PARTS else {}
        times = []
        for _ in range(runs + 1):
            start = time.perf_counter()
            with contextlib.redirect_stdout(io.StringIO()):
                assert check(ns[name], **kwargs)
            times.append(time.perf_counter() - start)
        med = statistics.median(times[1:])
        print(f"  check_{name:27s} {med * 1000:7.1f} ms   (first call {times[0] * 1000:.0f} ms)"
              f"   {'ok' if med < 0.5 else 'OVER GOAL'}")


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
    args = parser.parse_args()
    lesson_times(args.runs)
    check_latency(max(args.runs, 5))
    if not args.skip_demo:
        demo_class()
