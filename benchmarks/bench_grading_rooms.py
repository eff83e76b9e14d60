"""What grading a room costs, with demonstration cells skipped (autograder/demonstrations.py).

    python benchmarks/bench_grading_rooms.py [--copies 3] [--room 40] [--room-lesson 06_...]
                                             [--workers 2] [--no-skip-too] [--skip-room | --room-only]

1. Per lesson: COPIES correct notebooks of every lesson graded in one run with one worker;
   each notebook's own time (nbgrader autograde + feedback, the sandboxed run included; the
   run's set-up is not) is recorded, and the median per lesson is reported with its ratio to
   lesson 01's (the floor: the cheapest lesson to grade). Goal: every ratio <= 1.5.
   --no-skip-too repeats it with every cell run (as before demonstrations were tagged).
2. A room: ROOM copies of one lesson's correct notebook graded with WORKERS workers, timed
   end to end (gradebook, assignment, every notebook and its feedback): seconds and notebooks
   per minute. Goal: 40 notebooks in under 2 minutes on 2 cores.

Timings on a shared machine are noisy: read medians, and run it more than once.
"""
import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from autograder import demonstrations, grading, submissions  # noqa: E402

FLOOR = "01_batch_statistics"


def hand_in(inbox, students, lessons):
    for k in range(students):
        for lesson in lessons:
            submissions.write(submissions.filled_notebook(lesson),
                              inbox / f"student{k:03d}" / lesson / f"{lesson}.ipynb")


def per_lesson(lessons, copies, skip=True):
    """{lesson: [seconds per notebook]}, every lesson graded in one run with one worker."""
    times = {lesson: [] for lesson in lessons}
    one = grading._grade_one
    tagged = demonstrations.from_source

    def timed(lesson, student):
        start = time.perf_counter()
        problem = one(lesson, student)
        times[lesson].append(time.perf_counter() - start)
        return problem

    grading._grade_one = timed  # (one worker: notebooks are graded in this process)
    if not skip:
        demonstrations.from_source = lambda source_dir, lesson: {}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            hand_in(Path(tmp) / "inbox", copies, lessons)
            rows = grading.grade(Path(tmp) / "inbox", Path(tmp) / "work", progress=False, workers=1)
    finally:
        grading._grade_one, demonstrations.from_source = one, tagged
    wrong = [(r.student, r.lesson, r.failed_tests) for r in rows if r.score != r.max_score]
    assert not wrong, wrong
    return times


def report(times, title):
    print(title)
    floor = statistics.median(times[FLOOR]) if FLOOR in times else None
    for lesson, seconds in times.items():
        median = statistics.median(seconds)
        ratio = f"{median / floor:4.2f}x" if floor else "   - "
        print(f"  {lesson:32s} {median:5.1f} s  ({ratio} lesson 01)   runs: "
              + ", ".join(f"{s:.1f}" for s in seconds))
    return floor


def room(lesson, count, workers):
    with tempfile.TemporaryDirectory() as tmp:
        hand_in(Path(tmp) / "inbox", count, [lesson])
        start = time.perf_counter()
        rows = grading.grade(Path(tmp) / "inbox", Path(tmp) / "work", progress=False, workers=workers)
        took = time.perf_counter() - start
    full = sum(r.score == r.max_score for r in rows)
    print(f"\nA room: {count} notebooks of {lesson}, {workers} workers: {took:.1f} s end to end, "
          f"{count / took * 60:.1f} notebooks per minute ({full}/{count} at full marks; goal: "
          f"{count} in under 120 s)")
    return took


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--copies", type=int, default=3)
    parser.add_argument("--lessons", nargs="*", default=submissions.lessons())
    parser.add_argument("--room", type=int, default=40)
    parser.add_argument("--room-lesson", default="06_why_batchnorm_works")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--no-skip-too", action="store_true", help="also grade with every cell run")
    parser.add_argument("--skip-room", action="store_true")
    parser.add_argument("--room-only", action="store_true")
    args = parser.parse_args()
    if not args.room_only:
        report(per_lesson(args.lessons, args.copies),
               f"Grading one correct notebook, one worker, demonstrations skipped (median of {args.copies}, "
               "all lessons in one run)")
    if args.no_skip_too and not args.room_only:
        report(per_lesson(args.lessons, args.copies, skip=False),
               f"\nThe same with every cell run (median of {args.copies})")
    if not args.skip_room:
        room(args.room_lesson, args.room, args.workers)
