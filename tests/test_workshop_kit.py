"""The host's kit (docs/workshop/) follows the course: the common-mistakes handout says what the
checks say, the agendas' times are the lessons' times, and the pages' links lead somewhere."""
import re
import sys

import nbformat
import pytest

from autograder import submissions
from autograder.settings import REPO
from bncourse import misconceptions, pieces

sys.path.insert(0, str(REPO / "tools"))
import lesson_times  # noqa: E402
import workshop_kit as kit  # noqa: E402

DOCS = REPO / "docs" / "workshop"
REGENERATE = "run `python tools/workshop_kit.py --write`"


def test_the_handout_is_what_the_catalogue_writes():
    assert kit.HANDOUT.read_text() == kit.handout(), f"docs/workshop/common-mistakes.md is stale: {REGENERATE}"


def test_the_agenda_tables_are_what_the_lesson_times_write():
    text = kit.AGENDAS.read_text()
    assert kit.agendas_page(text) == text, f"docs/workshop/agendas.md's tables are stale: {REGENERATE}"


def test_every_named_mistake_is_in_the_handout_in_the_checks_own_words():
    rows = {}
    for line in kit.HANDOUT.read_text().splitlines():
        cells = re.split(r"(?<!\\)\|", line)
        if line.startswith("### "):
            piece = line.strip("# `")
        elif len(cells) == 5 and cells[1].strip() not in ("mistake", "---"):
            rows.setdefault(piece, []).append((cells[1].strip(), cells[3].strip()))
    expected = {piece: [(m.name.replace("_", " "), kit._escape(m.message)) for m in known]
                for piece, known in misconceptions.CATALOGUE.items() if known}
    assert rows == expected


def test_where_a_mistake_shows_is_read_from_its_probe():
    spec = pieces.spec("batchnorm_backward")
    assert spec.outputs[1:2]
    assert kit.shows_in(spec, misconceptions.like(misconceptions._out(1))) == f"`{spec.outputs[1]}`"
    forward = pieces.spec("batchnorm_forward")
    assert kit.shows_in(forward, misconceptions.like(misconceptions._cache("var"))) == "`cache['var']`"
    assert kit.shows_in(forward, misconceptions.like(misconceptions._y)) == "the first returned value"
    assert kit.shows_in(forward, misconceptions.like()) == "the returned value"
    assert kit.shows_in(spec, misconceptions.like()) == "the returned values"
    assert kit.shows_in(spec, misconceptions.module_like("running_var")) == "the module's `running_var`"


def agenda_rows(name):
    text = kit.AGENDAS.read_text()
    table = text[text.index(kit.START.format(name)):text.index(kit.END.format(name))]
    return [[c.strip() for c in line.split("|")[1:-1]] for line in table.splitlines()
            if re.match(r"\| \d+:\d\d ", line)]


def minutes(clock):
    hours, mins = clock.split(":")
    return 60 * int(hours) + int(mins)


@pytest.mark.parametrize("name", list(kit.AGENDAS_PLAN))
def test_each_agenda_adds_up_and_gives_each_lesson_its_title_cells_time(name):
    rows = agenda_rows(name)
    assert rows and minutes(rows[0][0]) == 0 and minutes(rows[-1][1]) == kit.AGENDAS_PLAN[name][0]
    for before, after in zip(rows, rows[1:]):
        assert before[1] == after[0]
    lessons = 0
    for start, end, what, length, _ in rows:
        assert minutes(end) - minutes(start) == int(length)
        lesson = re.fullmatch(r"Lesson `(\w+)`", what)
        if lesson:
            lessons += 1
            title = nbformat.read(submissions.notebook_path(lesson[1]), as_version=4).cells[0].source
            assert f"**Time:** about {length} minutes." in title
            assert int(length) == lesson_times.estimate(lesson[1])["total"]
    assert lessons >= 2


def test_an_agenda_that_outgrows_its_length_or_names_no_lesson_is_refused(monkeypatch):
    lesson = pieces.lessons()[0]
    too_long = lesson_times.estimate(lesson)["total"] - 1
    monkeypatch.setitem(kit.AGENDAS_PLAN, "short", (too_long, [lesson]))
    with pytest.raises(kit.StaleAgenda, match="more than its"):
        kit.agenda_table("short")
    monkeypatch.setitem(kit.AGENDAS_PLAN, "short", (600, ["99_no_such_lesson"]))
    with pytest.raises(kit.StaleAgenda, match="99_no_such_lesson"):
        kit.agenda_table("short")


def test_the_kit_pages_link_to_files_and_anchors_that_exist():
    anchors = set(re.findall(r'<a id="([^"]+)"></a>', kit.HANDOUT.read_text()))
    checked = 0
    for page in DOCS.glob("*.md"):
        for target in re.findall(r"\]\(([^)\s]+)\)", page.read_text()):
            if re.match(r"[a-z]+:", target):
                continue
            path, _, anchor = target.partition("#")
            assert (page.parent / path).exists(), f"{page.name} links to {target}"
            if anchor:
                assert path == "common-mistakes.md" and anchor in anchors, f"{page.name} links to {target}"
            checked += 1
    assert checked > 10
