"""`make doctor`'s promise, measured on this machine: the pre-flight check answers in under 15 s
on a prepared laptop. Runs `python -m bncourse.doctor` in fresh processes (a cold first run
included) and prints each wall time and the median.

    python benchmarks/bench_doctor.py [--runs 5]
"""
import argparse
import statistics
import subprocess
import sys
import tempfile
import time

GOAL = 15.0  # seconds


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    times = []
    with tempfile.TemporaryDirectory() as cwd:
        for run in range(args.runs):
            start = time.perf_counter()
            out = subprocess.run([sys.executable, "-m", "bncourse.doctor"], cwd=cwd, capture_output=True, text=True)
            times.append(time.perf_counter() - start)
            print(f"run {run + 1}: {times[-1]:.1f} s, exit {out.returncode}: {out.stdout.splitlines()[-1]}")
    median = statistics.median(times)
    print(f"make doctor: median {median:.1f} s over {len(times)} runs (max {max(times):.1f} s); goal < {GOAL:g} s: "
          f"{'met' if max(times) < GOAL else 'NOT met'}")


if __name__ == "__main__":
    main()
