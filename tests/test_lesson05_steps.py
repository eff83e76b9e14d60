"""Lesson 05's module is graded in steps: a mistake in one step costs that step's points and no
others. Each row of tests/catalogue.STEP_MUTANTS is one notebook carrying a mistake in several
pieces at once (BatchNormFunction and the module's steps), graded through the real nbgrader
pipeline: exactly those pieces lose their points, each named; the pieces built on them (the
training step on BatchNormFunction, the modules on all four steps) keep theirs, as they are
judged with torch's versions of the parts they call. The six notebooks are graded in one run."""
import nbformat
import pytest

from autograder import grading, submissions
from autograder.settings import REPO
from bncourse import pieces
from bncourse.misconceptions import CATALOGUE
from tests.catalogue import STEP_MUTANTS

LESSON = "05_batchnorm_module"
STEPS = ("make_parameters_and_buffers", "training_forward", "eval_forward", "check_input")


def _points():
    nb = nbformat.read(submissions.notebook_path(LESSON, REPO / "solutions"), 4)
    return {c.metadata["nbgrader"]["grade_id"][5:]: c.metadata["nbgrader"]["points"] for c in nb.cells
            if c.metadata.get("nbgrader", {}).get("grade")}


def test_the_steps_are_graded_pieces_with_their_own_points():
    points = _points()
    assert set(points) == {s.name for s in pieces.of_lesson(LESSON)}
    assert all(points[s] > 0 for s in STEPS)
    for module in ("BatchNorm1d", "BatchNorm2d"):
        assert set(STEPS) <= set(pieces.spec(module).parts)
    graded = {m.piece for row in STEP_MUTANTS for m in row}
    assert set(STEPS) <= graded  # every step has mistakes graded here


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    inbox = tmp_path_factory.mktemp("inbox")
    for i, row in enumerate(STEP_MUTANTS):
        assert len({m.piece for m in row}) == len(row) and not any(m.also for m in row)
        nb = submissions.filled_notebook(LESSON, {m.piece: m.source for m in row})
        submissions.write(nb, inbox / f"row{i}" / LESSON / f"{LESSON}.ipynb")
    rows = grading.grade(inbox, tmp_path_factory.mktemp("work"), progress=False)
    return {r.student: r for r in rows}


@pytest.mark.parametrize("i", range(len(STEP_MUTANTS)))
def test_a_wrong_step_loses_exactly_its_points(graded, i):
    mutants, row = STEP_MUTANTS[i], graded[f"row{i}"]
    points = _points()
    assert row.max_score == sum(points.values())
    assert row.score == row.max_score - sum(points[m.piece] for m in mutants), row.failed_tests
    failed = {t.split(":")[0].removeprefix("test_"): t for t in row.failed_tests}
    assert set(failed) == {m.piece for m in mutants}
    for m in mutants:
        message = {c.name: c.message for c in CATALOGUE[m.piece]}.get(m.expect, m.expect)
        assert message in failed[m.piece], failed[m.piece]
