"""Build learner notebooks programmatically: a released notebook with its solution cells
filled in (from solutions/, or with other code). Used by the tests and the grading demo."""
import re
from pathlib import Path

import nbformat

from autograder.paths import RELEASE, SOURCE

SOLUTION_MARKER = re.compile(r"^\s*### (BEGIN|END) SOLUTION\s*$")


def lessons(source=SOURCE):
    """Lesson ids: the folders of solutions/ that hold their notebook."""
    return sorted(p.name for p in Path(source).iterdir() if (p / f"{p.name}.ipynb").exists())


def notebook_path(lesson, tree=RELEASE):
    return Path(tree) / lesson / f"{lesson}.ipynb"


def grade_id(cell):
    return cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")


def is_solution(cell):
    return cell.get("metadata", {}).get("nbgrader", {}).get("solution", False)


def is_test_cell(cell):
    """An nbgrader test cell (graded, not an answer): autograde restores it from the source."""
    meta = cell.get("metadata", {}).get("nbgrader", {})
    return cell.get("cell_type") == "code" and bool(meta.get("grade")) and not meta.get("solution")


def tested_piece(cell):
    """The piece a test cell tests (grade_id test_<piece>), or None for any other cell."""
    grade_id = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id") or ""
    if is_test_cell(cell) and grade_id.startswith("test_"):
        return grade_id[len("test_"):]
    return None


def solution_sources(lesson, source=SOURCE):
    """{grade_id: code} of a lesson's solution cells, with the solution markers removed."""
    nb = nbformat.read(notebook_path(lesson, source), as_version=4)
    return {grade_id(c): "\n".join(line for line in c.source.splitlines()
                                   if not SOLUTION_MARKER.match(line))
            for c in nb.cells if is_solution(c)}


def filled_notebook(lesson, answers=None, fill_rest=True, release=RELEASE, source=SOURCE):
    """The released notebook as a learner would hand it in.

    answers: {grade_id: code} for chosen solution cells (a learner's own code);
    fill_rest: the other solution cells get the model solution (else keep the stub).
    """
    answers = dict(answers or {})
    model = solution_sources(lesson, source) if fill_rest else {}
    nb = nbformat.read(notebook_path(lesson, release), as_version=4)
    for cell in nb.cells:
        if is_solution(cell):
            code = answers.pop(grade_id(cell), model.get(grade_id(cell)))
            if code is not None:
                cell.source = code
    if answers:
        raise KeyError(f"{lesson} has no solution cell(s) {sorted(answers)}")
    return nb


def write(nb, path):
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)
    return path
