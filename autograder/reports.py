"""What the grader keeps beside the gradebook, in the grading workspace (never in a sandbox).

- a secret key, made once per workspace: the hidden inputs of each student and lesson are
  drawn from it, so they are the same on every regrade and unknowable to a submission;
- one small JSON report per student and lesson: whether the sandbox ran, what stopped the
  notebook early, what a human should look at (autograder.honesty's flags) and each piece's
  verdict as data (autograder.hidden.Verdict.data());
- verdicts.csv, beside grades.csv: each graded piece's points and verdict, for every submission
  that ran (VERDICT_COLUMNS), which the class report (autograder.class_report) is built from.
"""
import csv
import hashlib
import hmac
import json
import os
import secrets
from pathlib import Path

SECRET = ".grading-secret"


def secret_key(workspace, student, lesson):
    path = Path(workspace) / SECRET
    if not path.exists():  # made whole, then linked in: parallel workers never see half a key
        draft = path.with_name(f"{SECRET}.{os.getpid()}")
        fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(secrets.token_bytes(32))
        try:
            os.link(draft, path)
        except FileExistsError:
            pass  # another worker was first: use its key
        finally:
            os.unlink(draft)
    return hmac.new(path.read_bytes(), f"{student}/{lesson}".encode(), hashlib.sha256).digest()


def report_path(workspace, student, lesson):
    return Path(workspace) / "reports" / student / f"{lesson}.json"


def save_report(workspace, student, lesson, **report):
    path = report_path(workspace, student, lesson)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=1))


def load_report(workspace, student, lesson):
    path = report_path(workspace, student, lesson)
    return json.loads(path.read_text()) if path.exists() else {}


VERDICTS = "verdicts.csv"
# kind: a key of autograder.hidden.KINDS; mistake: the named mistake's id (bncourse.misconceptions), or ""
VERDICT_COLUMNS = ["student", "lesson", "piece", "points", "max_points", "passed", "kind", "mistake"]


def write_verdicts(verdicts, graded, path, merge=False):
    """Write verdicts.csv: `verdicts` (dicts of VERDICT_COLUMNS) of the (student, lesson) pairs
    in `graded`. merge: those pairs' earlier rows are replaced, every other row is kept (a
    --student regrade, as grading.merge_csv)."""
    kept = []
    if merge and Path(path).exists():
        with open(path, newline="") as f:
            kept = [old for old in csv.DictReader(f) if (old["student"], old["lesson"]) not in graded]
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=VERDICT_COLUMNS)
        writer.writeheader()
        writer.writerows(kept)
        writer.writerows(verdicts)


def read_verdicts(workspace):
    """verdicts.csv's rows: points as numbers, passed a bool, mistake None when none was named."""
    with open(Path(workspace) / VERDICTS, newline="") as f:
        return [{**r, "points": float(r["points"]), "max_points": float(r["max_points"]),
                 "passed": r["passed"] == "true", "mistake": r["mistake"] or None}
                for r in csv.DictReader(f)]
