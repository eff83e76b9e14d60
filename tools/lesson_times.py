"""How long each lesson takes, from a stated method (not a measured learner's time).

    python tools/lesson_times.py            # the table
    python tools/lesson_times.py --write    # the title cells' "**Time:**" lines and the table of
                                            # docs/instructors.md (the workshop path)

The method, per lesson:
  reading  all markdown words of the learner's notebook (folds and hints included) at
           READING_WPM words per minute, the rate for technical prose;
  coding   PER_PIECE minutes for each graded piece (reading its docstring, writing, running its
           check, fixing) plus PER_LINE minutes per line of the model solution's code (blank and
           comment lines not counted);
  running  RUNNING minutes: the learner runs the notebook's cells several times; one Run-All of the
           model solution takes seconds (`make bench` prints it for the machine at hand).
The total is rounded up to the next 5 minutes.
"""
import math
import re
import sys
from pathlib import Path

import nbformat

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from autograder import submissions  # noqa: E402
from bncourse import pieces  # noqa: E402

READING_WPM = 150
PER_PIECE = 8
PER_LINE = 1
RUNNING = 2
TIME_LINE = re.compile(r"\*\*Time:\*\* about \d+ minutes[^\n]*")  # the rest of the line goes too
# the table lives in the instructor's guide, under "Workshop path" (it was in README.md before)
TABLE_PAGE = REPO / "docs" / "instructors.md"
README_START, README_END = "<!-- lesson times: tools/lesson_times.py --write -->", "<!-- end of lesson times -->"


def words(lesson, tree=REPO / "course"):
    nb = nbformat.read(submissions.notebook_path(lesson, tree), as_version=4)
    return sum(len(re.findall(r"\S+", c.source)) for c in nb.cells if c.cell_type == "markdown")


def solution_lines(lesson):
    nb = nbformat.read(submissions.notebook_path(lesson, REPO / "solutions"), as_version=4)
    count = 0
    for cell in nb.cells:
        inside = False
        for line in cell.source.splitlines() if cell.cell_type == "code" else ():
            if submissions.SOLUTION_MARKER.match(line):
                inside = "BEGIN" in line
            elif inside and line.strip() and not line.strip().startswith("#"):
                count += 1
    return count


def estimate(lesson):
    """{reading, coding, running, total} in minutes (total rounded up to 5), and the counts."""
    n_words, n_pieces, n_lines = words(lesson), len(pieces.of_lesson(lesson)), solution_lines(lesson)
    reading = n_words / READING_WPM
    coding = PER_PIECE * n_pieces + PER_LINE * n_lines
    total = 5 * math.ceil((reading + coding + RUNNING) / 5)
    return {"words": n_words, "pieces": n_pieces, "lines": n_lines, "reading": reading,
            "coding": coding, "running": RUNNING, "total": total}


def time_line(lesson):
    return f"**Time:** about {estimate(lesson)['total']} minutes."


def readme_table(lessons):
    rows = [README_START, "",
            f"| lesson | words | reading at {READING_WPM}/min | graded pieces | solution lines | coding "
            f"({PER_PIECE} min/piece + {PER_LINE} min/line) | running | estimate |",
            "|---|---|---|---|---|---|---|---|"]
    for lesson in lessons:
        e = estimate(lesson)
        rows.append(f"| `{lesson}` | {e['words']} | {e['reading']:.0f} min | {e['pieces']} | {e['lines']} | "
                    f"{e['coding']} min | {e['running']} min | **{e['total']} min** |")
    return "\n".join(rows + ["", README_END])


def write(lessons):
    for lesson in lessons:
        path = submissions.notebook_path(lesson, REPO / "solutions")
        nb = nbformat.read(path, as_version=4)
        title = nb.cells[0]
        if not TIME_LINE.search(title.source):
            raise SystemExit(f"{path}: the title cell has no '**Time:** about N minutes.' line")
        title.source = TIME_LINE.sub(time_line(lesson), title.source)
        nbformat.write(nb, path)
    page = TABLE_PAGE.read_text()
    start, end = page.index(README_START), page.index(README_END) + len(README_END)
    TABLE_PAGE.write_text(page[:start] + readme_table(lessons) + page[end:])


if __name__ == "__main__":
    lessons = submissions.lessons()
    if sys.argv[1:] == ["--write"]:
        write(lessons)
    print(readme_table(lessons))
