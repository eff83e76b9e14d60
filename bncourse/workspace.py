"""Create or top up the learner's working copy of course/ (my_course/, git-ignored).

Lessons and files that are not there yet are copied in; nothing that exists is ever
overwritten, so pulling a newer course/ never destroys a learner's answers.
    python -m bncourse.workspace [COURSE_DIR] [WORK_DIR]
"""
import shutil
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def sync(course=REPO / "course", work=REPO / "my_course"):
    """Copy what is missing from course/ into work/; return the copied paths."""
    copied = []
    for src in sorted(Path(course).rglob("*")):
        if src.is_dir() or ".ipynb_checkpoints" in src.parts:
            continue
        dst = Path(work) / src.relative_to(course)
        if not dst.exists():
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dst)
            copied.append(dst)
    return copied


def main(course=REPO / "course", work=REPO / "my_course"):
    """sync(), saying what it did."""
    new = sync(course, work)
    print(f"{work}: " + (f"added {len(new)} file(s): " + ", ".join(str(p.relative_to(work)) for p in new)
                         if new else "up to date (your work is untouched)"), flush=True)
    return new


if __name__ == "__main__":
    main(*(Path(a) for a in sys.argv[1:3])) if len(sys.argv) > 2 else main()
