"""Odd but honest submissions keep the points they earned, with a true status, through the real
pipeline (nbgrader, the sandbox): an output flood, a notebook bigger than the grader reads back,
hand-damaged nbgrader metadata. The inbox is left exactly as it was."""
import copy
import json

import nbformat
import pytest

from autograder import grading, sandbox, submissions
from bncourse import runner
from tests.catalogue import MUTANTS
from tests.test_inbox import snapshot

LESSON = "01_batch_statistics"
FULL = 5.0
FLOOD_LINES = 600_000  # ~41 MB printed: more than the grader reads back


def _test_cell(nb, piece):
    return next(c for c in nb.cells if submissions.tested_piece(c) == piece)


def _flood():
    nb = submissions.filled_notebook(LESSON)
    first = next(i for i, c in enumerate(nb.cells) if c.cell_type == "code")
    nb.cells.insert(first + 1, nbformat.v4.new_code_cell(
        f"for i in range({FLOOD_LINES}):\n    print(i, 'x' * 60)"))
    return nb


def _big():
    """A picture pasted into a markdown cell: the notebook is bigger than the grader reads back."""
    nb = submissions.filled_notebook(LESSON)
    nb.cells.insert(1, nbformat.v4.new_markdown_cell(
        "![pasted](data:image/png;base64," + "A" * (sandbox.MAX_NOTEBOOK_BYTES + (2 << 20)) + ")"))
    return nb


def _damaged(change, answers=None):
    nb = submissions.filled_notebook(LESSON, answers)
    change(nb)
    return nb


def _rename(nb):
    _test_cell(nb, "batch_mean").metadata.nbgrader["grade_id"] = "test_batch_mean_renamed"


def _more_points(nb):
    _test_cell(nb, "batch_variance").metadata.nbgrader["points"] = 100


def _deleted(nb):
    del _test_cell(nb, "batch_mean").metadata["nbgrader"]


def _copied(nb):
    copied = nbformat.v4.new_code_cell("assert True")
    copied.metadata["nbgrader"] = copy.deepcopy(_test_cell(nb, "batch_mean").metadata.nbgrader)
    nb.cells.append(copied)


UNBIASED = next(m for m in MUTANTS if m.name == "var_unbiased")
SUBMISSIONS = {
    "flood": _flood,
    "big": _big,
    "renamed": lambda: _damaged(_rename),
    "deleted": lambda: _damaged(_deleted),
    "copied": lambda: _damaged(_copied),
    "more_points_wrong": lambda: _damaged(_more_points, {"batch_variance": UNBIASED.source}),
}


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    root = tmp_path_factory.mktemp("odd")
    for student, make in SUBMISSIONS.items():
        submissions.write(make(), root / "inbox" / student / LESSON / f"{LESSON}.ipynb")
    before = snapshot(root / "inbox")
    rows = {r.student: r for r in grading.grade(root / "inbox", root / "work", progress=False, workers=2)}
    assert snapshot(root / "inbox") == before  # inputs are sacred
    return root / "work", rows


def _autograded(work, student):
    return nbformat.read(work / "autograded" / student / LESSON / f"{LESSON}.ipynb", as_version=4)


def test_an_output_flood_is_cut_and_the_answers_keep_their_points(graded):
    work, rows = graded
    row = rows["flood"]
    assert (row.score, row.max_score, row.status) == (FULL, FULL, "graded"), row
    flood = next(c for c in _autograded(work, "flood").cells if c.cell_type == "code" and "print(i," in c.source)
    text = "".join(o.get("text", "") for o in flood.outputs)
    assert "characters of output cut by the grader" in text
    assert text.startswith("0 x") and text.rstrip().endswith(f"{FLOOD_LINES - 1} " + "x" * 60)
    assert len(text) < 100_000


def test_a_notebook_too_big_to_read_back_is_graded_with_a_true_status(graded):
    work, rows = graded
    row = rows["big"]
    assert (row.score, row.max_score) == (FULL, FULL) and row.status == "graded", row
    # the executed notebook came back (its markdown is not read back): the test cells' outputs show
    cell = _test_cell(_autograded(work, "big"), "batch_mean")
    assert any("hidden inputs match" in o.get("text", "") for o in cell.outputs)


@pytest.mark.parametrize("student, how", [("renamed", "its source"), ("deleted", "its source")])
def test_damaged_metadata_is_repaired_from_the_release(graded, student, how):
    _, rows = graded
    row = rows[student]
    assert (row.score, row.max_score) == (FULL, FULL), row
    assert row.status.startswith("graded; repaired the nbgrader metadata") and f"identified by {how}" in row.status


def test_a_copied_grade_id_adds_nothing(graded):
    _, rows = graded
    row = rows["copied"]
    assert (row.score, row.max_score) == (FULL, FULL), row
    assert "ignored the damaged nbgrader metadata of cell" in row.status


def test_repaired_points_are_the_release_s_and_a_wrong_answer_stays_wrong(graded):
    _, rows = graded
    row = rows["more_points_wrong"]
    assert (row.score, row.max_score) == (2.0, FULL) and row.pieces == {"batch_mean": 2.0, "batch_variance": 0.0}
    assert "repaired the nbgrader metadata of cell" in row.status


def test_the_size_that_cannot_be_read_back_is_said(tmp_path, monkeypatch):
    """Beyond what the grader reads back, the status says so, not 'could not be run'."""
    nb = submissions.filled_notebook(LESSON)
    nbformat.write(nb, tmp_path / runner.EXECUTED)
    (tmp_path / runner.REPORT).write_text(json.dumps({"stopped_at": None, "reason": None}))
    monkeypatch.setattr(sandbox, "MAX_NOTEBOOK_BYTES", 1000)
    run = sandbox.Run()
    sandbox._collect(run, tmp_path, {}, b"")
    assert run.notebook is None and not run.stopped
    assert "the grader reads back: its outputs are not shown; grades come from the recorded answers" in run.note


def test_feedback_that_cannot_be_written_is_said(tmp_path, monkeypatch):
    """A feedback page nbgrader fails to write leaves the grade standing and says so in the status
    (it used to leave no page and no word)."""
    from autograder import feedback

    def broken(self, nb, resources):
        raise RuntimeError("a broken feedback template")
    monkeypatch.setattr(feedback.FeedbackSummary, "preprocess", broken)
    submissions.write(submissions.filled_notebook(LESSON), tmp_path / "inbox" / "ada" / LESSON / f"{LESSON}.ipynb")
    [row] = grading.grade(tmp_path / "inbox", tmp_path / "work", progress=False, workers=1)  # (in this process)
    assert (row.score, row.max_score) == (FULL, FULL)
    assert row.status == "graded; no feedback page: RuntimeError: a broken feedback template", row.status
