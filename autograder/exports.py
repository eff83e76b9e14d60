"""Grades out of the gradebook, in the columns instructors use.

- `piece_scores(gb, lesson, student)`: {piece: points} of one graded submission, read from
  nbgrader's gradebook; `piece_columns(lessons)`: the per-piece columns, in lesson order.
  grades.csv (python -m autograder grade) and `nbgrader export` share them.
- `GradesExport`: nbgrader's default exporter in this course (`nbgrader export`, and the
  formgrader's export): one row per student and lesson, the same per-piece columns as
  grades.csv.
- `CanvasExport`: a gradebook CSV that Canvas imports, one row per student of a roster
  (Canvas's own gradebook export), matched by student id:
      nbgrader export --exporter=autograder.exports.CanvasExport \\
          --CanvasExport.roster=canvas_roster.csv --to canvas_grades.csv
"""
import csv
from pathlib import Path

import nbformat
from nbgrader.api import MissingEntry
from nbgrader.plugins import ExportPlugin
from traitlets import Unicode

from autograder.paths import SOURCE
from autograder.submissions import lessons as all_lessons
from autograder.submissions import notebook_path, tested_piece

SCORE_COLUMNS = ["student", "lesson", "score", "max_score", "late_penalty", "timestamp"]


def lesson_pieces(lesson, source=SOURCE):
    """The graded pieces of a lesson, in notebook order (its test cells test_<piece>)."""
    path = notebook_path(lesson, source)
    if not path.exists():
        return []
    return [p for p in map(tested_piece, nbformat.read(path, as_version=4).cells) if p]


def piece_columns(lessons):
    return [piece for lesson in lessons for piece in lesson_pieces(lesson)]


def piece_scores(gb, lesson, student):
    """{piece: points scored} of a submission in the gradebook ({} when there is none)."""
    try:
        submission = gb.find_submission(lesson, student)
    except MissingEntry:
        return {}
    return {grade.name[len("test_"):]: grade.score for notebook in submission.notebooks
            for grade in notebook.grades if grade.name.startswith("test_")}


def submission_scores(gb, lesson, student):
    """score (after any late penalty), max_score, late_penalty and timestamp of a submission;
    score 0 and no timestamp when the student handed nothing in (as nbgrader's export)."""
    assignment = gb.find_assignment(lesson)
    row = {"student": student, "lesson": lesson, "max_score": assignment.max_score,
           "score": 0.0, "late_penalty": 0.0, "timestamp": ""}
    try:
        submission = gb.find_submission(lesson, student)
    except MissingEntry:
        return row
    penalty = submission.late_submission_penalty or 0.0
    row.update(score=max(0.0, submission.score - penalty), late_penalty=penalty,
               timestamp=str(submission.timestamp or ""))
    return row


def number(value):
    return f"{value:g}" if isinstance(value, (int, float)) else value


def _chosen(items, wanted):
    wanted = [str(w) for w in wanted]
    return [i for i in items if not wanted or i in wanted]


class GradesExport(ExportPlugin):
    """`nbgrader export`: grades.csv's score and per-piece columns for every student x lesson
    in the gradebook (--student / --assignment narrow it, as for nbgrader's own exporter)."""

    def export(self, gradebook):
        dest = self.to or "grades.csv"
        lessons = _chosen([a.name for a in gradebook.assignments], self.assignment)
        lessons = sorted(lessons, key=lambda name: (name not in all_lessons(), name))
        students = _chosen(sorted(s.id for s in gradebook.students), self.student)
        pieces = piece_columns(lessons)
        self.log.info("Exporting grades (%d lessons, %d students) to %s", len(lessons),
                      len(students), dest)
        with open(dest, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=SCORE_COLUMNS + pieces)
            writer.writeheader()
            for lesson in lessons:
                for student in students:
                    row = submission_scores(gradebook, lesson, student)
                    row.update(piece_scores(gradebook, lesson, student))
                    writer.writerow({k: number(v) for k, v in row.items()})


class CanvasExport(ExportPlugin):
    """A CSV for Canvas's gradebook import: Canvas's identity columns, a 'Points Possible'
    row, and one column of points per lesson (late penalties applied; 0 for a lesson not
    handed in). Rows are the roster's students, matched to nbgrader's student ids through
    `id_column`; a graded student missing from the roster is an error, not a silent drop."""

    roster = Unicode("", help="Canvas's exported gradebook CSV (its roster)").tag(config=True)
    id_column = Unicode("SIS Login ID", help="roster column holding nbgrader's student id"
                        ).tag(config=True)
    IDENTITY = ["Student", "ID", "SIS User ID", "SIS Login ID", "Section"]

    def export(self, gradebook):
        if not self.roster:
            raise ValueError("CanvasExport needs --CanvasExport.roster=<Canvas gradebook CSV>")
        with open(self.roster, newline="", encoding="utf-8-sig") as f:
            roster = [r for r in csv.DictReader(f)
                      if r.get("Student", "").strip() not in ("", "Points Possible")
                      and "Test Student" not in r.get("Student", "")]
        if roster and self.id_column not in roster[0]:
            raise ValueError(f"the roster {self.roster} has no column {self.id_column!r}; "
                             f"its columns are {list(roster[0])}")
        ids = {r[self.id_column].strip() for r in roster}
        unmatched = sorted({s.id for s in gradebook.students} - ids)
        if unmatched:
            raise ValueError(f"students in the gradebook but not in the roster (by "
                             f"{self.id_column!r}): {', '.join(unmatched)}")
        lessons = _chosen([a.name for a in gradebook.assignments], self.assignment)
        known = {s.id for s in gradebook.students}
        dest = self.to or "canvas_grades.csv"
        columns = [c for c in self.IDENTITY if not roster or c in roster[0]]
        with open(dest, "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(columns + lessons)
            writer.writerow(["Points Possible"] + [""] * (len(columns) - 1)
                            + [number(gradebook.find_assignment(a).max_score) for a in lessons])
            for person in roster:
                sid = person[self.id_column].strip()
                scores = [number(submission_scores(gradebook, a, sid)["score"]) if sid in known
                          else "0" for a in lessons]
                writer.writerow([person.get(c, "") for c in columns] + scores)
        self.log.info("Canvas gradebook for %d students written to %s", len(roster), Path(dest))
