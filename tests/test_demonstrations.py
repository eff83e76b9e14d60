"""Demonstration cells (autograder/demonstrations.py): tagged in solutions/, not run while
grading. The tags themselves are checked statically over every lesson; the grading side
through the real nbgrader pipeline, on real lesson-01 notebooks."""
import base64
import html

import nbformat
import pytest

from autograder import demonstrations, grading, sandbox, submissions
from autograder.reports import load_report
from autograder.settings import RELEASE, SOURCE
from bncourse.runner import SKIPPED_NOTE

LESSONS = submissions.lessons()
LESSON = "01_batch_statistics"
MARK = "a learner's edited demonstration ran"


def _cells(lesson, tree=SOURCE):
    return nbformat.read(submissions.notebook_path(lesson, tree), 4).cells


@pytest.mark.parametrize("lesson", LESSONS)
def test_tagged_cells_define_nothing_an_untagged_cell_reads(lesson):
    """So skipping them cannot change what a graded piece, a test or a check sees."""
    code = [c for c in _cells(lesson) if c.cell_type == "code"]
    tagged = [c for c in code if demonstrations.is_tagged(c)]
    assert tagged, f"{lesson} tags no demonstration cell"
    kept = [c for c in code if not demonstrations.is_tagged(c)]
    kept_defines = set().union(*(demonstrations.defined_names(c.source) for c in kept))
    for cell in tagged:
        meta = cell.metadata.get("nbgrader", {})
        assert not meta.get("solution") and not meta.get("grade"), submissions.grade_id(cell)
        assert demonstrations.used_names(cell.source) is not None  # (parses: its names are known)
        only_here = demonstrations.defined_names(cell.source) - kept_defines
        for other in kept:
            read = demonstrations.used_names(other.source)
            assert read is not None and not only_here & read, (
                f"{submissions.grade_id(other)} reads {sorted(only_here & read)}, which only the "
                f"demonstration {submissions.grade_id(cell)} defines")


@pytest.mark.parametrize("lesson", LESSONS)
def test_the_release_keeps_the_tags_and_the_code(lesson):
    """Learners run everything: the tag is kept, and the released code is the source's, so a
    cell left as handed out matches its tagged source exactly."""
    released = {submissions.grade_id(c): c for c in _cells(lesson, RELEASE)}
    for cell in _cells(lesson):
        if demonstrations.is_tagged(cell):
            twin = released[submissions.grade_id(cell)]
            assert demonstrations.is_tagged(twin) and twin.source == cell.source


def test_tags_and_metadata_of_a_submission_decide_nothing():
    nb = submissions.filled_notebook(LESSON)
    tagged = demonstrations.from_source(SOURCE, LESSON)
    plain = demonstrations.to_skip(nb, tagged)
    assert sorted(plain.values()) == sorted(tagged)
    for cell in nb.cells:
        cell.metadata["tags"] = [demonstrations.TAG]  # a learner tags every cell
    assert demonstrations.to_skip(nb, tagged) == plain
    assert demonstrations.to_skip(nb, {}) == {}  # nothing tagged in the source: nothing skipped
    index, name = next(iter(plain.items()))
    nb.cells[index].source += "\nprint('mine')"  # an edited demonstration runs
    assert index not in demonstrations.to_skip(nb, tagged)
    nb.cells[index].source = tagged[name]
    nb.cells[index].metadata["nbgrader"]["solution"] = True  # a cell that claims to be an answer runs
    assert index not in demonstrations.to_skip(nb, tagged)


# ------------------------------------------------------------------ the real pipeline

USES_A_DEMO_GLOBAL = '''def batch_mean(x):
    """Wrong on purpose: leans on x_small, which only the demonstration cell `mini_batch` defines."""
    return x.mean(axis=0) + 0 * x_small.sum()
'''


def _edited(nb, grade_id):
    """The learner edits the handed-out demonstration `grade_id` (a locked cell: nbgrader puts
    its source back), and pastes it twice into cells of their own: verbatim, and edited."""
    at, cell = next((i, c) for i, c in enumerate(nb.cells) if submissions.grade_id(c) == grade_id)
    original = cell.source
    cell.source += f"\nprint({MARK!r} + ' (in the locked cell)')"
    nb.cells.insert(at + 1, nbformat.v4.new_code_cell(original))
    nb.cells.insert(at + 2, nbformat.v4.new_code_cell(original + f"\nprint({MARK!r})"))
    nb.cells.append(nbformat.v4.new_code_cell(IMPORTED))
    return nb


IMPORTED = "import sys\nprint('loaded:', sorted({'torch', 'numpy'} & set(sys.modules)))"


def _learner_tagged(nb):
    """Every cell tagged by the learner, and a cell of the learner's own, tagged too."""
    for cell in nb.cells:
        cell.metadata["tags"] = [demonstrations.TAG]
    own = nbformat.v4.new_code_cell(f"print({MARK!r})", metadata={"tags": [demonstrations.TAG]})
    nb.cells.insert(3, own)
    return nb


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    if not sandbox.sandbox_available():
        pytest.skip("bubblewrap cannot run here; `make test` installs it (Debian: apt-get install bubblewrap)")
    inbox, work = tmp_path_factory.mktemp("inbox"), tmp_path_factory.mktemp("work")
    handed = {
        "solution": submissions.filled_notebook(LESSON),
        "edited": _edited(submissions.filled_notebook(LESSON), "toy_batch"),
        "demo_global": submissions.filled_notebook(LESSON, {"batch_mean": USES_A_DEMO_GLOBAL}),
        "self_tagged": _learner_tagged(submissions.filled_notebook(LESSON)),
    }
    for student, nb in handed.items():
        submissions.write(nb, inbox / student / LESSON / f"{LESSON}.ipynb")
    before = {s: (inbox / s / LESSON / f"{LESSON}.ipynb").read_bytes() for s in handed}
    rows = grading.grade(inbox, work, progress=False, workers=2)
    for student, data in before.items():  # grading never modifies what it grades
        assert (inbox / student / LESSON / f"{LESSON}.ipynb").read_bytes() == data
    return {r.student: r for r in rows}, work


def _autograded(work, student):
    return nbformat.read(work / "autograded" / student / LESSON / f"{LESSON}.ipynb", 4)


def _feedback(work, student):
    return html.unescape((work / "feedback" / student / LESSON / f"{LESSON}.html").read_text())


def _printed(cell):
    return "".join(o.get("text", "") for o in cell.get("outputs", []) if o.get("output_type") == "stream")


def test_a_correct_notebook_scores_full_marks_and_its_feedback_names_the_skipped_cells(graded):
    rows, work = graded
    row = rows["solution"]
    assert row.status == "graded" and row.score == row.max_score > 0, row.failed_tests
    tagged = demonstrations.from_source(SOURCE, LESSON)
    assert load_report(work, "solution", LESSON)["skipped"] == list(tagged)
    text = _feedback(work, "solution")
    assert "not run while grading" in text
    assert all(f"{name}" in text for name in tagged)
    for cell in _autograded(work, "solution").cells:
        if demonstrations.is_tagged(cell):  # not run: the note, no execution count
            assert _printed(cell) == SKIPPED_NOTE and cell.execution_count is None
        elif cell.cell_type == "code":
            assert _printed(cell) != SKIPPED_NOTE and cell.execution_count is not None


def test_a_demonstration_the_learner_edited_or_copied_runs(graded):
    rows, work = graded
    assert rows["edited"].score == rows["edited"].max_score
    cells = _autograded(work, "edited").cells
    at = next(i for i, c in enumerate(cells) if submissions.grade_id(c) == "toy_batch")
    locked, verbatim, edited = cells[at:at + 3]
    # the handed-out cell: nbgrader restored its source, so it is the demonstration, skipped
    assert MARK not in locked.source and _printed(locked) == SKIPPED_NOTE
    # the learner's own cells run, the verbatim copy too: only the handed-out cell is skipped
    assert verbatim.source == locked.source and verbatim.execution_count is not None
    assert _printed(verbatim) != SKIPPED_NOTE
    assert MARK in _printed(edited) and edited.execution_count is not None


def test_a_numpy_lessons_grading_kernel_never_imports_torch(graded):
    """Lesson 01's answers and its recording need NumPy only: the kernel pays for nothing more
    (the tripwire arms as torch loads; tests/cheats.py has answers that load it)."""
    _, work = graded
    [last] = [c for c in _autograded(work, "edited").cells if c.source == IMPORTED]
    assert _printed(last) == "loaded: ['numpy']\n"


def test_a_function_that_uses_a_skipped_cells_global_is_told_so(graded):
    rows, work = graded
    row = rows["demo_global"]
    assert 0 < row.score < row.max_score  # batch_mean only: batch_variance keeps its points
    [failed] = row.failed_tests
    assert ("batch_mean uses `x_small`, defined in a demonstration cell that is not run while "
            "grading; define it inside your function or in your own cell") in failed
    assert "uses `x_small`" in _feedback(work, "demo_global")


def test_tags_a_learner_adds_skip_nothing(graded):
    rows, work = graded
    assert rows["self_tagged"].score == rows["self_tagged"].max_score
    report = load_report(work, "self_tagged", LESSON)
    assert report["skipped"] == load_report(work, "solution", LESSON)["skipped"]
    cells = _autograded(work, "self_tagged").cells
    assert any(MARK in _printed(c) for c in cells)  # the learner's own tagged cell ran


def test_a_skipped_cells_own_outputs_are_shown_only_as_text_and_png():
    """The learner's own outputs of a skipped cell reach a page an instructor opens too: nothing
    that could run or load in a browser, no fake PNG, and a cap on size."""
    png = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\0" * 32).decode()
    new = nbformat.v4.new_output
    outputs = [new("stream", name="stderr", text="hello\n"),
               new("display_data", data={"text/html": "<script>steal()</script>", "image/png": png,
                                         "image/svg+xml": "<svg onload='x()'/>", "text/plain": "<Figure>"}),
               new("display_data", data={"image/png": '" onerror="x()'}),
               new("display_data", data={"image/png": base64.b64encode(b"GIF89a").decode()}),
               new("execute_result", data={"application/javascript": "x()"}, execution_count=1),
               new("error", ename="E", evalue="v", traceback=[])]
    kept = demonstrations.shown(outputs)
    assert [o.output_type for o in kept] == ["stream", "display_data"]
    assert kept[0].name == "stdout" and sorted(kept[1].data) == ["image/png", "text/plain"]
    flood = [new("stream", name="stdout", text="x" * 1000)] * 50
    capped = demonstrations.shown(flood, limit=10_000)
    assert len(capped) < 12 and "cut" in capped[-1].text
