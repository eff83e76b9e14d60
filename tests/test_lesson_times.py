"""Each lesson's time estimate comes from the stated method (tools/lesson_times.py: reading at
150 words per minute, a coding allowance per graded piece and per solution line, running time),
in its title cell and in the workshop path's table (docs/instructors.md); editing a lesson without
updating them fails."""
import sys
from pathlib import Path

import nbformat
import pytest

from autograder import submissions

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tools"))
import lesson_times  # noqa: E402

LESSONS = submissions.lessons()


@pytest.mark.parametrize("lesson", LESSONS)
def test_the_title_cell_gives_the_methods_estimate(lesson):
    title = nbformat.read(submissions.notebook_path(lesson), as_version=4).cells[0].source
    assert lesson_times.time_line(lesson) in title, (
        f"{lesson}: the title cell should say '{lesson_times.time_line(lesson)}': "
        "run `python tools/lesson_times.py --write`, then release")


def test_readme_tabulates_the_estimates():
    assert lesson_times.readme_table(LESSONS) in lesson_times.TABLE_PAGE.read_text(), \
        "docs/instructors.md's lesson-times table is stale: run `python tools/lesson_times.py --write`"


def test_the_estimate_moves_with_the_text():
    e = lesson_times.estimate("01_batch_statistics")
    assert e["total"] % 5 == 0 and e["total"] >= e["reading"] + e["coding"] + e["running"]
    assert e["reading"] == e["words"] / lesson_times.READING_WPM
    assert e["coding"] == lesson_times.PER_PIECE * e["pieces"] + lesson_times.PER_LINE * e["lines"]
