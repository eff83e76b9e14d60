"""Releasing several lessons at once says which lessons' graded answers it hands out: each lesson
restates earlier answers (its recap) so that it stands on its own (autograder/recaps.py)."""
import subprocess
import sys

import nbformat
import pytest

from autograder import recaps, submissions
from autograder.settings import REPO
from bncourse import pieces

FIRST, LATER = "01_batch_statistics", "03_backward"  # two lessons with graded pieces, not neighbours


def cell(kind, source, grade_id, solution=False, grade=False):
    make = nbformat.v4.new_code_cell if kind == "code" else nbformat.v4.new_markdown_cell
    return make(source, metadata={"nbgrader": {"grade_id": grade_id, "solution": solution, "grade": grade,
                                               "locked": not solution}})


def source_tree(tmp_path, later_cells):
    """A solutions/ of two lessons: FIRST as it is, LATER made of `later_cells`."""
    for lesson, cells in ((FIRST, None), (LATER, later_cells)):
        nb = (nbformat.read(submissions.notebook_path(lesson, REPO / "solutions"), as_version=4) if cells is None
              else nbformat.v4.new_notebook(cells=cells))
        path = submissions.notebook_path(lesson, tmp_path)
        path.parent.mkdir(parents=True)
        nbformat.write(nb, path)
    return tmp_path


def test_a_given_cell_defining_an_earlier_piece_hands_it_out_and_the_learners_own_cells_do_not(tmp_path):
    mean, variance = (s.name for s in pieces.of_lesson(FIRST)[:2])
    src = source_tree(tmp_path, [
        cell("code", f"def {mean}(x):\n    return x.mean(axis=0)\n", "given"),
        cell("code", f"def {variance}(x):\n    raise NotImplementedError\n", "answer", solution=True),
        cell("code", f"def {variance}(x):\n    return x.var(axis=0)\nassert True", "tests", grade=True),
        cell("code", "%matplotlib inline", "magic"),
    ])
    assert recaps.handed_out(LATER, src) == {FIRST: [mean]}
    assert recaps.leaks([FIRST, LATER], src) == [(LATER, FIRST, [mean])]
    assert recaps.leaks([LATER], src) == [] and recaps.warning([LATER], src) == ""
    text = recaps.warning([FIRST, LATER], src)
    assert text.startswith("warning:") and f"{LATER} hands out {FIRST}'s answers ({mean})" in text


@pytest.mark.parametrize("words", [f"Lesson {FIRST[:2]} derived the formula", f"lessons 00 and {FIRST[:2]}",
                                   f"Lessons 00, {FIRST[:2]} and 02"])
def test_a_recap_that_restates_an_earlier_lesson_in_words_hands_it_out(tmp_path, words):
    src = source_tree(tmp_path, [cell("markdown", f"### Recap\n\n{words}: $y = x$.", "md_recap"),
                                 cell("markdown", f"Lesson {FIRST[:2]} is mentioned outside a recap", "md_intro")])
    assert recaps.handed_out(LATER, src) == {FIRST: ["its recap's text"]}


def test_a_recap_naming_no_other_lesson_hands_out_nothing(tmp_path):
    src = source_tree(tmp_path, [cell("markdown", f"### Recap\n\nLesson {LATER[:2]} itself; 1 and 2.", "md_recap"),
                                 cell("markdown", f"As lesson {FIRST[:2]} showed", "md_learn")])
    assert recaps.handed_out(LATER, src) == {}


def test_an_unknown_lesson_is_refused_with_the_lessons_there_are(tmp_path):
    with pytest.raises(ValueError, match=f"no lesson 'nonsense'.*{FIRST}"):
        recaps.handed_out("nonsense")


def test_release_of_two_lessons_names_the_answers_it_hands_out(tmp_path):
    """Through the command line, into a folder of its own (course/ stays as it is)."""
    released = ["02_normalise_and_scale", "03_backward"]
    expected = recaps.leaks(released)
    assert expected, "lesson 03's recap restates lesson 02's forward pass"
    out = subprocess.run([sys.executable, "-m", "autograder", "release", *released, "--out", tmp_path / "out"],
                         capture_output=True, text=True, cwd=REPO, timeout=600)
    assert out.returncode == 0, out.stdout + out.stderr
    assert all(submissions.notebook_path(lesson, tmp_path / "out").exists() for lesson in released)
    assert "warning:" in out.stderr and "release one lesson at a time" in out.stderr
    for lesson, other, what in expected:
        assert f"{lesson} hands out {other}'s answers ({', '.join(what)})" in out.stderr
    bad = subprocess.run([sys.executable, "-m", "autograder", "release", "nonsense", "--out", tmp_path / "bad"],
                         capture_output=True, text=True, cwd=REPO, timeout=600)
    assert bad.returncode == 2 and "no lesson 'nonsense'" in bad.stderr and not (tmp_path / "bad").exists()


def test_lessons_that_restate_nothing_of_each_other_release_together_without_a_warning():
    """As the host guide says of lessons 01 and 03: lesson 03's recap restates lesson 02 only."""
    assert recaps.handed_out(LATER) and FIRST not in recaps.handed_out(LATER)
    assert recaps.warning([FIRST, LATER]) == ""


def test_the_whole_course_gets_one_line_of_note_naming_how_many_lessons_restate_others():
    every = submissions.lessons()
    restating = {lesson for lesson, _, _ in recaps.leaks(every)}
    note = recaps.warning(every, whole_course=True)
    assert restating and "\n" not in note and note.startswith("note:")
    assert f"{len(restating)} lessons' recaps" in note
