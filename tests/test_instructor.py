"""What instructors expect of a grader, through the real CLI and nbgrader's own `export`:
per-piece columns, regrading one student without touching the others, a Canvas CSV."""
import csv
import subprocess
import sys

import pytest

from autograder import submissions
from autograder.settings import REPO
from tests.catalogue import LESSON_OF, MUTANTS
from tests.test_inbox import snapshot

LESSON = LESSON_OF["batch_mean"]
UNBIASED = next(m for m in MUTANTS if m.name == "var_unbiased")
NBGRADER_CONFIG = """import sys
sys.path.insert(0, {repo!r})
from autograder.settings import configure
configure(get_config(), root={root!r}, release={root!r} + "/release", submitted="staged")
"""


def run(*args, cwd=REPO):
    out = subprocess.run([sys.executable, *map(str, args)], capture_output=True, text=True,
                         cwd=cwd, timeout=900)
    assert out.returncode == 0, out.stdout + out.stderr
    return out


def read(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def hand_in(inbox, student, answers=None):
    nb = submissions.filled_notebook(LESSON, answers)
    submissions.write(nb, inbox / student / LESSON / f"{LESSON}.ipynb")


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    inbox, work = tmp_path_factory.mktemp("inbox"), tmp_path_factory.mktemp("work")
    hand_in(inbox, "ada")
    hand_in(inbox, "bob", {"batch_variance": UNBIASED.source})
    run("-m", "autograder", "grade", inbox, "--workdir", work, "--workers", "1")
    return inbox, work


def test_grades_csv_has_one_column_per_graded_piece(graded):
    rows = {r["student"]: r for r in read(graded[1] / "grades.csv")}
    assert rows["ada"]["batch_mean"] == rows["bob"]["batch_mean"] != "0"
    assert rows["ada"]["batch_variance"] != "0" and rows["bob"]["batch_variance"] == "0"
    for row in rows.values():
        pieces = float(row["batch_mean"]) + float(row["batch_variance"])
        assert pieces == float(row["score"])


def test_nbgrader_export_gives_the_same_per_piece_columns(graded):
    work = graded[1]
    (work / "nbgrader_config.py").write_text(NBGRADER_CONFIG.format(repo=str(REPO), root=str(work)))
    run("-m", "nbgrader", "export", "--to", work / "exported.csv", cwd=work)
    ours, exported = read(work / "grades.csv"), read(work / "exported.csv")
    pieces = [c for c in ours[0] if c in ("batch_mean", "batch_variance")]
    assert pieces == ["batch_mean", "batch_variance"]
    assert [c for c in exported[0] if c in pieces] == pieces
    key = ["student", "lesson", "score", "max_score", "late_penalty"] + pieces
    assert sorted([r[k] for k in key] for r in exported) == sorted([r[k] for k in key] for r in ours)


def test_canvas_csv_maps_students_by_roster_id(graded):
    work = graded[1]
    (work / "nbgrader_config.py").write_text(NBGRADER_CONFIG.format(repo=str(REPO), root=str(work)))
    roster = work / "roster.csv"
    roster.write_text("Student,ID,SIS User ID,SIS Login ID,Section\n"
                      "    Points Possible,,,,\n"
                      "\"Lovelace, Ada\",101,9001,ada,S1\n"
                      "\"Boole, Bob\",102,9002,bob,S1\n"
                      "\"Curie, Cy\",103,9003,cy,S2\n")
    run("-m", "nbgrader", "export", "--exporter=autograder.exports.CanvasExport",
        f"--CanvasExport.roster={roster}", "--to", work / "canvas.csv", cwd=work)
    lines = list(csv.reader(open(work / "canvas.csv")))
    assert lines[0] == ["Student", "ID", "SIS User ID", "SIS Login ID", "Section", LESSON]
    ours = {r["student"]: r for r in read(work / "grades.csv")}
    assert lines[1][0] == "Points Possible" and lines[1][-1] == ours["ada"]["max_score"]
    by_login = {line[3]: line for line in lines[2:]}
    assert by_login["ada"][-1] == ours["ada"]["score"] and by_login["ada"][1] == "101"
    assert by_login["bob"][-1] == ours["bob"]["score"]
    assert by_login["cy"][-1] == "0"  # on the roster, nothing handed in
    roster.write_text("Student,ID,SIS User ID,SIS Login ID,Section\n\"Lovelace, Ada\",101,9001,ada,S1\n")
    out = subprocess.run([sys.executable, "-m", "nbgrader", "export", "--exporter=autograder.exports.CanvasExport",
                          f"--CanvasExport.roster={roster}", "--to", work / "canvas2.csv"],
                         capture_output=True, text=True, cwd=work, timeout=600)
    assert out.returncode != 0 and "not in the roster" in out.stdout + out.stderr and "bob" in out.stdout + out.stderr


def test_regrading_one_student_leaves_the_others_untouched(graded, tmp_path):
    inbox, work = graded
    before = {r["student"]: r for r in read(work / "grades.csv")}
    verdicts = read(work / "verdicts.csv")
    assert {(v["student"], v["mistake"]) for v in verdicts if v["passed"] == "false"} == {("bob", "unbiased")}
    ada_files = {p: p.stat().st_mtime_ns for p in (work / "autograded" / "ada").rglob("*")}
    ada_files |= {p: p.stat().st_mtime_ns for p in (work / "feedback" / "ada").rglob("*")}
    hand_in(inbox, "bob")  # bob hands in a fixed notebook late
    handed_in = snapshot(inbox)
    out = run("-m", "autograder", "grade", inbox, "--workdir", work, "--student", "bob")
    assert snapshot(inbox) == handed_in
    assert "ada" not in out.stdout.split("Notes:")[0]
    after = {r["student"]: r for r in read(work / "grades.csv")}
    assert after["ada"] == before["ada"]
    assert after["bob"]["score"] == after["bob"]["max_score"] != before["bob"]["score"]
    assert {p: p.stat().st_mtime_ns for p in ada_files} == ada_files
    assert [r["student"] for r in read(work / "grades.csv")] == list(before)
    # verdicts.csv merged the same way: ada's rows as they were, bob's replaced (all passed now)
    again = read(work / "verdicts.csv")
    assert [v for v in again if v["student"] == "ada"] == [v for v in verdicts if v["student"] == "ada"]
    assert sorted(v["piece"] for v in again if v["student"] == "bob") == \
        sorted(v["piece"] for v in verdicts if v["student"] == "bob")
    assert all(v["passed"] == "true" and v["kind"] == "passed" for v in again)
    missing = subprocess.run([sys.executable, "-m", "autograder", "grade", inbox, "--workdir", work,
                              "--student", "nobody"], capture_output=True, text=True, cwd=REPO)
    assert missing.returncode == 2 and "no student 'nobody'" in missing.stderr


def test_the_demo_class_has_its_own_learners_and_they_are_what_they_claim():
    """`make grade-demo` builds its class without the test suite's catalogue: the einsum
    learner is right and each mistake is caught by the hidden tests (in-process)."""
    import numpy as np

    from autograder import demo, hidden
    from bncourse.checks import CheckFailed

    def function(piece, code):
        space = {"np": np}
        exec(code, space)
        return space[piece]

    for piece, code in demo.EINSUM.items():
        hidden.grade(piece, function(piece, code))
    for answers in demo.MISTAKES.values():
        for piece, code in answers.items():
            with pytest.raises(CheckFailed):
                hidden.grade(piece, function(piece, code))
