"""Lesson 05's module is graded in steps: a mistake in one step costs that step's points and no
others. One notebook carries a mistake in BatchNormFunction and in three of the module's four
steps at once, through the real nbgrader pipeline; the training step (which calls the wrong
BatchNormFunction) and the two modules (built from all the wrong steps) keep their points, as
they are judged with torch's versions of the parts they call."""
import nbformat

from autograder import grading, submissions
from autograder.settings import REPO
from bncourse import pieces
from bncourse.misconceptions import CATALOGUE
from tests.catalogue import MUTANTS

LESSON = "05_batchnorm_module"
WRONG = ["function_no_mean_term", "params_float_count", "eval_batch_statistics", "check_no_eps_check"]


def _points():
    nb = nbformat.read(submissions.notebook_path(LESSON, REPO / "solutions"), 4)
    return {c.metadata["nbgrader"]["grade_id"][5:]: c.metadata["nbgrader"]["points"] for c in nb.cells
            if c.metadata.get("nbgrader", {}).get("grade")}


def test_the_steps_are_graded_pieces_with_their_own_points():
    points = _points()
    assert set(points) == {s.name for s in pieces.of_lesson(LESSON)}
    steps = ("make_parameters_and_buffers", "training_forward", "eval_forward", "check_input")
    assert all(points[s] > 0 for s in steps)
    for module in ("BatchNorm1d", "BatchNorm2d"):
        assert set(steps) <= set(pieces.spec(module).parts)


def test_a_wrong_step_loses_exactly_its_points(tmp_path):
    mutants = [next(m for m in MUTANTS if m.name == name) for name in WRONG]
    assert len({m.piece for m in mutants}) == len(mutants) and not any(m.also for m in mutants)
    nb = submissions.filled_notebook(LESSON, {m.piece: m.source for m in mutants})
    submissions.write(nb, tmp_path / "inbox" / "learner" / LESSON / f"{LESSON}.ipynb")
    row, = grading.grade(tmp_path / "inbox", tmp_path / "work", progress=False)
    points = _points()
    assert row.max_score == sum(points.values())
    assert row.score == row.max_score - sum(points[m.piece] for m in mutants), row.failed_tests
    failed = {t.split(":")[0].removeprefix("test_"): t for t in row.failed_tests}
    assert set(failed) == {m.piece for m in mutants}
    for m in mutants:
        message = {c.name: c.message for c in CATALOGUE[m.piece]}.get(m.expect, m.expect)
        assert message in failed[m.piece], failed[m.piece]
