"""The real nbgrader pipeline on real notebooks: one demo-sized class graded once, then
every expectation about scores, messages and feedback checked against its results. Besides
solutions, untouched releases, correct variants and one mutant per notebook, the class holds
notebooks with several mistakes at once: lesson 03 with a wrong backward at every node, lesson 05
with mistakes in several of the module's steps."""
import html
import json
import re
import subprocess
import sys

import nbformat
import pytest

from autograder import grading, submissions
from autograder.settings import REPO
from bncourse import pieces
from bncourse.misconceptions import CATALOGUE
from tests.catalogue import LESSON_OF, MUTANTS, NODE_MUTANTS, STEP_MUTANTS, VARIANTS

LESSONS = submissions.lessons()
# (a piece's judge may land before its lesson; lesson 03's node mutants are graded several in one
# notebook, and lesson 05's step mutants too: see the end of this file)
MUTANTS = [m for m in MUTANTS if m.lesson in LESSONS and m not in sum(NODE_MUTANTS, []) + sum(STEP_MUTANTS, [])]
FIRST = LESSON_OF["batch_mean"]  # the lesson the edge-case submissions (warnings, runaway...) answer
CELL_TIMEOUT = 15  # seconds; the runaway submission below must hit it (others take < 3 s)


def points():
    """{piece: points} from the solution notebooks' test cells."""
    found = {}
    for lesson in LESSONS:
        for cell in nbformat.read(submissions.notebook_path(lesson, REPO / "solutions"), 4).cells:
            meta = cell.metadata.get("nbgrader", {})
            if meta.get("grade") and meta["grade_id"].startswith("test_"):
                found[meta["grade_id"][5:]] = meta["points"]
    return found


def hand_in(inbox, student, lesson, answers=None, fill_rest=True, name=None):
    nb = submissions.filled_notebook(lesson, answers, fill_rest=fill_rest)
    return submissions.write(nb, inbox / student / lesson / (name or f"{lesson}.ipynb"))


WARNING_MEAN = '''def batch_mean(x):
    import sys, warnings
    warnings.warn("a harmless warning from a correct answer")
    print("and a line on stderr", file=sys.stderr)
    return x.mean(axis=0)
'''
RUNAWAY_MEAN = "def batch_mean(x):\n    while True:\n        pass\n"


@pytest.fixture(scope="session")
def graded(tmp_path_factory):
    inbox = tmp_path_factory.mktemp("inbox")
    for lesson in LESSONS:
        hand_in(inbox, "solution", lesson)
        hand_in(inbox, "untouched", lesson, fill_rest=False)
        for name, sources in VARIANTS.items():
            mine = {p: s for p, s in sources.items() if LESSON_OF[p] == lesson}
            if mine:  # (without any, the variant would be the solution again)
                hand_in(inbox, f"variant_{name}", lesson, mine)
    for m in MUTANTS:
        hand_in(inbox, f"mutant_{m.name}", m.lesson, {m.piece: m.source})
    for k, together in enumerate(NODE_MUTANTS):  # a wrong backward at every node at once
        hand_in(inbox, f"every_node_wrong_{k}", together[0].lesson, {m.piece: m.source for m in together})
    for i, row in enumerate(STEP_MUTANTS):  # a mistake in several of the module's steps at once
        assert len({m.piece for m in row}) == len(row) and not any(m.also for m in row)
        hand_in(inbox, f"steps_wrong_{i}", row[0].lesson, {m.piece: m.source for m in row})
    first = FIRST
    hand_in(inbox, "warnings", first, {"batch_mean": WARNING_MEAN})
    hand_in(inbox, "runaway", first, {"batch_mean": RUNAWAY_MEAN})
    hand_in(inbox, "renamed", first, name="my attempt.ipynb")
    bad = inbox / "malformed" / first / f"{first}.ipynb"
    bad.parent.mkdir(parents=True)
    bad.write_text('{"cells": [ not json')
    work = tmp_path_factory.mktemp("work")
    rows = grading.grade(inbox, work, progress=False, cell_timeout=CELL_TIMEOUT)
    return {(r.student, r.lesson): r for r in rows}, work


TRACEBACK_MARKS = ["most recent call last", "Cell In[", "---->", "hidden.py", "checks.py"]


def expected_message(mutant):
    """What feedback must say for MUTANT: its misconception's message, or the text it expects."""
    return {c.name: c.message for c in CATALOGUE[mutant.piece]}.get(mutant.expect, mutant.expect)


def full(lesson):
    return sum(p for piece, p in points().items() if LESSON_OF[piece] == lesson)


def feedback(work, student, lesson):
    return html.unescape((work / "feedback" / student / lesson / f"{lesson}.html").read_text())


@pytest.mark.parametrize("lesson", LESSONS)
def test_solutions_score_full_marks(graded, lesson):
    rows, _ = graded
    row = rows["solution", lesson]
    assert row.status == "graded" and row.failed_tests == []
    assert row.score == row.max_score == full(lesson) > 0


@pytest.mark.parametrize("lesson", LESSONS)
def test_untouched_release_scores_zero_with_a_clear_message(graded, lesson):
    rows, work = graded
    row = rows["untouched", lesson]
    assert row.score == 0 and row.max_score == full(lesson)
    assert len(row.failed_tests) == sum(1 for p in points() if LESSON_OF[p] == lesson)
    assert all("not implemented yet" in t for t in row.failed_tests)
    text = feedback(work, "untouched", lesson)
    assert not any(mark in text for mark in TRACEBACK_MARKS)


VARIANT_LESSONS = [(v, lesson) for v, sources in VARIANTS.items() for lesson in LESSONS
                   if any(LESSON_OF[p] == lesson for p in sources)]


@pytest.mark.parametrize("variant, lesson", VARIANT_LESSONS)
def test_correct_but_different_answers_lose_nothing(graded, variant, lesson):
    row = graded[0][f"variant_{variant}", lesson]
    assert row.score == row.max_score, row.failed_tests


@pytest.mark.parametrize("mutant", MUTANTS, ids=lambda m: m.name)
def test_each_mutant_loses_exactly_its_piece_and_is_named(graded, mutant):
    rows, work = graded
    row = rows[f"mutant_{mutant.name}", mutant.lesson]
    assert row.score == row.max_score - sum(points()[p] for p in (mutant.piece,) + mutant.also), row.failed_tests
    message = expected_message(mutant)
    assert len(row.failed_tests) == 1 + len(mutant.also), row.failed_tests
    failed = row.failed_tests[0]
    assert failed.startswith(f"test_{mutant.piece}:") and message in failed
    assert message in feedback(work, row.student, mutant.lesson)


HIDDEN_SOURCE = TRACEBACK_MARKS + ["BEGIN HIDDEN TESTS", "END HIDDEN TESTS", "judge.py",
                                   "record_answers", "trusted_parts", "reference.py"]


@pytest.mark.parametrize("mutant", MUTANTS[:6] + MUTANTS[-4:], ids=lambda m: m.name)
def test_feedback_shows_the_message_not_the_hidden_tests(graded, mutant):
    text = feedback(graded[1], f"mutant_{mutant.name}", mutant.lesson)
    assert "hidden tests ran here" in text
    for secret in HIDDEN_SOURCE:
        assert secret not in text


@pytest.mark.parametrize("lesson", LESSONS)
def test_a_correct_notebook_runs_without_a_single_error_while_graded(graded, lesson):
    """Every cell that runs while grading (demonstration cells do not: tests/test_demonstrations.py):
    with torch's BatchNorm switched off for the learner's code, the course's own helpers must
    still run (feedback shows every cell's output)."""
    _, work = graded
    nb = nbformat.read(work / "autograded" / "solution" / lesson / f"{lesson}.ipynb", 4)
    errors = [(submissions.grade_id(c), o.get("ename"), o.get("evalue", "")[:120])
              for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
              if o.get("output_type") == "error"]
    assert errors == []


def test_hidden_tests_are_in_the_autograded_notebook_but_not_the_feedback(graded):
    """Guards the test above: the hidden tests really ran, and the reference's code is absent."""
    rows, work = graded
    lesson = FIRST
    autograded = (work / "autograded" / "solution" / lesson / f"{lesson}.ipynb").read_text()
    assert "BEGIN HIDDEN TESTS" in autograded and "hidden inputs match the reference" in autograded
    ref_lines = [ln.strip() for ln in (REPO / "autograder" / "reference.py").read_text().splitlines()
                 if ln.strip().startswith("return")]
    text = feedback(work, "mutant_var_unbiased", LESSON_OF["batch_variance"])
    assert ref_lines and not any(line in text for line in ref_lines)


def test_a_warning_on_stderr_does_not_cost_points(graded):
    rows, work = graded
    row = rows["warnings", FIRST]
    assert row.score == row.max_score, row.failed_tests
    assert "a harmless warning from a correct answer" in feedback(work, "warnings", FIRST)


def test_runaway_code_is_stopped_and_costs_only_its_piece(graded):
    row = graded[0]["runaway", FIRST]
    assert row.score == row.max_score - points()["batch_mean"]
    assert [t.split(":")[0] for t in row.failed_tests] == ["test_batch_mean"]


def test_bad_submissions_are_reported_not_fatal(graded):
    rows, work = graded
    assert rows["malformed", FIRST].status.startswith("malformed notebook")
    assert rows["malformed", FIRST].score == 0
    renamed = rows["renamed", FIRST]
    assert "my attempt.ipynb" in renamed.status and renamed.score == renamed.max_score
    missing = rows["mutant_var_unbiased", LESSON_OF["normalise"]]
    assert missing.status.startswith("missing") and missing.score == 0
    with open(work / "grades.csv") as f:
        header = f.readline().strip().split(",")
    assert header[:4] == ["student", "lesson", "score", "max_score"]


def test_cli_grades_a_learners_own_copy(tmp_path):
    """`python -m autograder grade my_course --as-student me`: one learner, one command."""
    lesson = FIRST
    hand_in(tmp_path / "inbox", "my_course", lesson)
    out = subprocess.run([sys.executable, "-m", "autograder", "grade", str(tmp_path / "inbox" / "my_course"),
                          "--as-student", "me", "--workdir", str(tmp_path / "work")],
                         capture_output=True, text=True, cwd=REPO, timeout=600)
    assert out.returncode == 0, out.stderr
    assert re.search(rf"^me\s+{full(lesson)}/{full(lesson)}", out.stdout, re.M), out.stdout
    assert (tmp_path / "work" / "feedback" / "me" / lesson / f"{lesson}.html").exists()


def test_standard_nbgrader_commands_work_from_the_repository(tmp_path):
    """generate_assignment / autograde / generate_feedback / export with nbgrader_config.py."""
    import shutil
    repo = tmp_path / "repo"
    repo.mkdir()
    for item in ("nbgrader_config.py", "autograder", "bncourse", "solutions"):
        (shutil.copytree if (REPO / item).is_dir() else shutil.copy)(REPO / item, repo / item)
    lesson = FIRST
    nbgrader = [sys.executable, "-m", "nbgrader"]

    def run(*args):
        out = subprocess.run(nbgrader + list(args), cwd=repo, capture_output=True, text=True, timeout=600)
        assert out.returncode == 0, out.stdout + out.stderr
        return out

    run("generate_assignment", lesson, "--force")
    assert (repo / "course" / lesson / f"{lesson}.ipynb").exists()
    nb = submissions.filled_notebook(lesson, release=repo / "course", source=repo / "solutions")
    submissions.write(nb, repo / "grading" / "submitted" / "ada" / lesson / f"{lesson}.ipynb")
    run("autograde", lesson)
    run("generate_feedback", lesson)
    assert (repo / "grading" / "feedback" / "ada" / lesson / f"{lesson}.html").exists()
    run("export")
    exported = (repo / "grades.csv").read_text()  # the course's exporter: score, then per piece
    assert re.search(rf"^ada,{lesson},{full(lesson)},{full(lesson)},0,", exported, re.M), exported
    assert json.loads((repo / "course" / lesson / f"{lesson}.ipynb").read_text())["cells"]


# ------------------------------------------------------------------ several mistakes in one notebook

def _loses_exactly(row, mistakes, work):
    """ROW lost the points of MISTAKES' pieces and no others, each failed test naming its mistake
    (its message, or what it must contain) in the row's feedback too."""
    assert row.status == "graded", row.status
    assert row.max_score == full(row.lesson)
    assert row.score == row.max_score - sum(points()[m.piece] for m in mistakes), row.failed_tests
    failed = {t.split(":")[0].removeprefix("test_"): t for t in row.failed_tests}
    assert set(failed) == {m.piece for m in mistakes}, row.failed_tests
    text = feedback(work, row.student, row.lesson)
    for m in mistakes:
        message = expected_message(m)
        assert message in failed[m.piece] and message in text, (m.name, failed[m.piece])


def test_every_node_of_lesson_03_is_its_own_piece():
    nodes = {m.piece for together in NODE_MUTANTS for m in together}
    assert all({m.piece for m in together} == nodes for together in NODE_MUTANTS)
    assert len(nodes) == 7 and all(points()[n] > 0 for n in nodes)


@pytest.mark.parametrize("k", range(len(NODE_MUTANTS)))
def test_each_wrong_local_derivative_loses_exactly_its_points(graded, k):
    """Lesson 03's derivation: a notebook with a wrong backward at every node (the staged backward
    that chains them stays the solution's) loses each node's point, named, and nothing else:
    the staged backward is judged with torch's node backwards in place of the learner's."""
    rows, work = graded
    together = NODE_MUTANTS[k]
    _loses_exactly(rows[f"every_node_wrong_{k}", together[0].lesson], together, work)


def test_lesson_05s_steps_are_graded_pieces_with_their_own_points():
    steps = ("make_parameters_and_buffers", "training_forward", "eval_forward", "check_input")
    lesson = STEP_MUTANTS[0][0].lesson
    assert {p for p in points() if LESSON_OF[p] == lesson} >= set(steps)
    assert all(points()[s] > 0 for s in steps)
    for module in ("BatchNorm1d", "BatchNorm2d"):
        assert set(steps) <= set(pieces.spec(module).parts)
    assert set(steps) <= {m.piece for row in STEP_MUTANTS for m in row}  # every step has mistakes here


@pytest.mark.parametrize("i", range(len(STEP_MUTANTS)))
def test_a_wrong_step_loses_exactly_its_points(graded, i):
    """Lesson 05's module in steps: a notebook with mistakes in several pieces (BatchNormFunction and
    the steps) loses exactly those pieces' points, each named; the pieces built on them (the
    training step on BatchNormFunction, the modules on all four steps) keep theirs, as they are
    judged with torch's versions of the parts they call."""
    rows, work = graded
    row = STEP_MUTANTS[i]
    _loses_exactly(rows[f"steps_wrong_{i}", row[0].lesson], row, work)
