"""The class report (issue 22, items 3 and 4): verdicts stored as data beside grades.csv, and
`python -m autograder report DIR` built from them alone, checked on the demo class, whose
mistakes are known (autograder.demo.PLANTED).

The demo class is graded once for the module, on its first lessons with planted mistakes
(lessons 01 and 02: four notebooks each), then two of its learners are regraded with --student
on lesson 00 (the untouched notebook and the broken one), as an instructor would: the stored
verdicts are merged, and the report covers every kind of row. The browser test opens the page
offline in Chromium and keeps a screenshot in tests/artifacts/class_report/.
"""
import csv
import hashlib
import html.parser
import os
import subprocess
import sys
import time
from collections import Counter

import pytest

from autograder import class_report, demo, exports, grading, hidden, reports, submissions
from autograder.settings import REPO
from bncourse import pieces
from bncourse.misconceptions import CATALOGUE
from tests.offline_browser import offline_page, screenshots

LESSONS = submissions.lessons()
FIRST = LESSONS[0]  # the one lesson the untouched and the broken learner hand in
GRADED = LESSONS[1:3]  # lessons 01 and 02: four planted mistakes, eight short notebooks (the cost)


def cpu_seconds():
    t = os.times()  # this process and every child process it has waited for
    return t.user + t.system + t.children_user + t.children_system


def snapshot(folder):
    return {p.relative_to(folder): (p.stat().st_mtime_ns, hashlib.sha256(p.read_bytes()).hexdigest())
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    inbox = demo.build_class(tmp_path_factory.mktemp("demo") / "inbox")
    before = snapshot(inbox)
    work = tmp_path_factory.mktemp("work")
    start, cpu = time.perf_counter(), cpu_seconds()
    grading.grade(inbox, work, GRADED, progress=False)
    for student in (demo.UNTOUCHED, demo.BROKEN):  # regrades: their verdicts merged in
        grading.grade(inbox, work, [FIRST], progress=False, student=student)
    took, cpu = time.perf_counter() - start, cpu_seconds() - cpu
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "autograder", "report", str(work)],
                         capture_output=True, text=True, cwd=REPO)
    print(f"\ngrading the demo class: {took:.1f} s ({cpu:.1f} s of CPU, workers and sandboxes "
          f"included); the report: {time.perf_counter() - start:.1f} s")
    assert out.returncode == 0, out.stderr
    return {"inbox": inbox, "before": before, "work": work, "stdout": out.stdout}


class Tables(html.parser.HTMLParser):
    """The page's tables: {table id: [(row's attributes, [(cell's attributes, text)])]}."""

    def __init__(self, page):
        super().__init__()
        self.tables, self._table, self._cell = {}, None, None
        self.feed(page)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "table":
            self._table = self.tables.setdefault(attrs.get("id") or attrs.get("data-lesson"), [])
        elif tag == "tr" and self._table is not None:
            self._table.append((attrs, []))
        elif tag in ("td", "th") and self._table:
            self._cell = [attrs, ""]
            self._table[-1][1].append(self._cell)

    def handle_endtag(self, tag):
        if tag == "table":
            self._table = None
        elif tag in ("td", "th"):
            self._cell = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell[1] += data


def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def planted_counts():
    """{(lesson, piece, mistake id): learners} that the demo plants in the graded lessons."""
    found = Counter()
    for answers in demo.PLANTED.values():
        for piece, mistake in answers.items():
            if pieces.spec(piece).lesson in GRADED:
                found[pieces.spec(piece).lesson, piece, mistake] += 1
    return dict(found)


def test_the_demo_plants_what_it_says_it_plants():
    """PLANTED names, for each of the demo's mistaken answers, a mistake of the catalogue, and the
    hidden verdict (in-process) names that one first: the data the report is checked against."""
    import numpy as np

    from bncourse.answers import Answer, Replay, answer_calls
    assert {s: set(a) for s, a in demo.PLANTED.items()} == {s: set(a) for s, a in demo.MISTAKES.items()}
    for student, answers in demo.MISTAKES.items():
        for piece, code in answers.items():
            space = {"np": np}
            exec(code, space)
            cases = hidden.hidden_cases(piece)
            calls = hidden.calls_for(piece, cases)
            arrays, meta = answer_calls(piece, space[piece], calls, None)
            replay = Replay(piece, calls, [Answer(e, arrays, i) for i, e in enumerate(meta)])
            verdict = hidden.judged(piece, replay, cases)
            assert (verdict.passed, verdict.kind) == (False, "wrong")
            assert verdict.mistake == demo.PLANTED[student][piece] in {m.name for m in CATALOGUE[piece]}
    assert planted_counts(), "the graded lessons hold none of the planted mistakes"


def test_verdicts_are_stored_as_data_beside_grades_csv(graded):
    """verdicts.csv: one row per graded piece of every notebook that ran, its points the
    gradebook's (they add up to grades.csv's score), passed exactly when it has all its points,
    a kind from hidden.KINDS and a mistake id of that piece's catalogue (or none)."""
    work = graded["work"]
    grades = {(r["student"], r["lesson"]): r for r in read_csv(work / "grades.csv")}
    verdicts = reports.read_verdicts(work)
    keys = [(v["student"], v["lesson"], v["piece"]) for v in verdicts]
    assert len(keys) == len(set(keys))
    ran = {k for k, r in grades.items() if r["status"].startswith("graded")}
    assert {(s, lsn) for s, lsn, _ in keys} == ran
    for student, lesson in ran:
        mine = [v for v in verdicts if (v["student"], v["lesson"]) == (student, lesson)]
        assert sorted(v["piece"] for v in mine) == sorted(exports.lesson_pieces(lesson))
        assert sum(v["points"] for v in mine) == float(grades[student, lesson]["score"])
        for v in mine:
            assert v["passed"] == (v["points"] == v["max_points"] > 0), v
            assert v["kind"] in hidden.KINDS and (v["kind"] == "passed") == v["passed"], v
            assert v["mistake"] is None or v["mistake"] in {m.name for m in CATALOGUE[v["piece"]]}, v
            assert v["mistake"] is None or v["kind"] == "wrong", v
    untouched = [v for v in verdicts if v["student"] == demo.UNTOUCHED]
    assert untouched and {v["kind"] for v in untouched} == {"not_implemented"}
    assert not [v for v in verdicts if v["student"] == demo.BROKEN]  # malformed: nothing ran
    assert grades[demo.BROKEN, FIRST]["status"].startswith("malformed")


def test_a_regrade_keeps_the_other_verdicts(graded):
    """The --student regrades of the fixture added their rows and kept everyone else's: every
    learner of the class graded on GRADED is still there, with the planted mistakes."""
    verdicts = reports.read_verdicts(graded["work"])
    students = {v["student"] for v in verdicts if v["lesson"] in GRADED}
    assert students == {s.name for s in graded["inbox"].iterdir()
                        if any((s / lsn).is_dir() for lsn in GRADED)}


def test_the_report_counts_exactly_the_planted_mistakes(graded):
    """The report's counts, from the stored verdicts and in the page, are the demo's planted
    mistakes, no more, no fewer; every wrong answer of the demo matched a named mistake."""
    work = graded["work"]
    verdicts = reports.read_verdicts(work)
    assert class_report.mistake_counts(verdicts) == planted_counts()
    rows = Tables((work / class_report.REPORT).read_text()).tables["mistakes"][1:]  # (its header first)
    shown = {(row["data-lesson"], row["data-piece"], cells[2][1]): int(cells[3][1]) for row, cells in rows}
    assert shown == planted_counts()
    assert all(row["data-count"] == cells[3][1] for row, cells in rows)
    for lesson, by_piece in class_report.tally(verdicts).items():
        for piece, t in by_piece.items():
            planted = {s for s, a in demo.PLANTED.items() if piece in a}
            assert t.wrong == planted & t.learners and not t.unnamed, (lesson, piece)
    said, lesson, piece = {}, None, None  # the terminal summary: the same counts, under each piece
    for line in graded["stdout"].splitlines():
        if line and not line.startswith(" ") and line.split(":")[0] in LESSONS:
            lesson = line.split(":")[0]
        elif line.startswith("  ") and not line.startswith("   "):
            piece = line.strip().split(":")[0]
        elif " × " in line:
            n, rest = line.strip().split(" × ", 1)
            said[lesson, piece, rest.split(":")[0]] = int(n)
    assert said == planted_counts()
    ranked = [line[2:].split(": ", 1) for line in graded["stdout"].splitlines() if line.startswith("- ")]
    assert {tuple(where.split(" / ")): int(n.split()[0]) for n, where in ranked} == planted_counts()
    assert [int(n.split()[0]) for n, _ in ranked] == sorted(planted_counts().values(), reverse=True)


def test_the_report_says_who_handed_in_what(graded):
    """One row per learner, one column per lesson graded: graded, missing, malformed, or absent
    (not graded at all), as the inbox holds them."""
    header, *rows = Tables((graded["work"] / class_report.REPORT).read_text()).tables["handed-in"]
    columns = [text for _, text in header[1][1:]]
    assert sorted(columns) == sorted(GRADED + [FIRST])
    inbox = graded["inbox"]
    table = {cells[0][1]: [attrs["data-status"] for attrs, _ in cells[1:]] for _, cells in rows}
    assert sorted(table) == sorted(p.name for p in inbox.iterdir())
    for student, statuses in table.items():
        expected = []
        for lesson in columns:
            graded_here = lesson in GRADED or student in (demo.UNTOUCHED, demo.BROKEN)
            if not graded_here:
                expected.append("absent")
            elif not (inbox / student / lesson).is_dir():
                expected.append("missing")
            else:
                expected.append("malformed" if student == demo.BROKEN else "graded")
        assert statuses == expected, (student, columns)


def test_the_report_reads_only_the_stored_files(graded, tmp_path):
    """grades.csv and verdicts.csv alone make the same report: nothing is re-run or re-read."""
    for name in ("grades.csv", reports.VERDICTS):
        (tmp_path / name).write_bytes((graded["work"] / name).read_bytes())
    path, text = class_report.write(tmp_path)
    assert text == graded["stdout"].rsplit("\n\nThe class report:", 1)[0]
    assert path.read_text() == (graded["work"] / class_report.REPORT).read_text()
    empty = subprocess.run([sys.executable, "-m", "autograder", "report", str(tmp_path / "nothing")],
                           capture_output=True, text=True, cwd=REPO)
    assert empty.returncode == 2 and "grade the class first" in empty.stderr


def test_grading_never_wrote_to_the_inbox(graded):
    assert snapshot(graded["inbox"]) == graded["before"]


def test_wrong_answers_with_no_named_mistake_are_a_share_of_the_wrong_ones():
    """The tally on verdicts made up here: kinds kept apart, the unnamed share of wrong answers."""
    def v(student, piece, kind, mistake=None, points=0.0):
        return {"student": student, "lesson": "L", "piece": piece, "points": points, "max_points": 2.0,
                "passed": kind == "passed", "kind": kind, "mistake": mistake}
    rows = [v("a", "p", "passed", points=2.0), v("b", "p", "wrong", "m1"), v("c", "p", "wrong"),
            v("d", "p", "wrong"), v("e", "p", "not_implemented"), v("f", "p", "wrong", "m1"),
            v("a", "q", "wrong", "m2"), v("b", "q", "deleted"), v("g", "p", "raised")]
    t = class_report.tally(rows)["L"]
    assert (len(t["p"].wrong), len(t["p"].unnamed), t["p"].unnamed_share()) == (4, 2, 0.5)
    assert {k: len(w) for k, w in t["p"].other.items()} == {"not_implemented": 1, "raised": 1}
    assert t["p"].points == Counter({0.0: 6, 2.0: 1})
    assert t["q"].unnamed_share() == 0.0 and {k: len(w) for k, w in t["q"].other.items()} == {"deleted": 1}
    assert class_report.mistake_counts(rows) == {("L", "p", "m1"): 2, ("L", "q", "m2"): 1}
    grades = [{"student": s, "lesson": "L", "score": "0", "max_score": "4", "status": "graded"} for s in "abcdefg"]
    page = class_report.page(grades, rows)
    assert "data-wrong='4' data-unnamed='2'" in page and "2 (50%)" in page


# ------------------------------------------------------------------ in a browser, offline

def test_the_page_in_a_browser_offline(graded):
    """report.html opened from file:// in Chromium with every other request refused: its figures
    are <img> with data: URIs that load, the counts table shows the planted mistakes; a
    screenshot of the whole page is kept in tests/artifacts/class_report/."""
    path = graded["work"] / class_report.REPORT
    with offline_page((1280, 900)) as (page, refused):
        page.goto(path.as_uri(), wait_until="load")
        images = page.eval_on_selector_all(
            "img", "els => els.map(e => [e.src.slice(0, 21), e.complete && e.naturalWidth > 0])")
        counts = page.eval_on_selector_all(
            "#mistakes tbody tr", "rows => rows.map(r => [r.dataset.lesson, r.dataset.piece, "
            "r.dataset.mistake, Number(r.cells[3].innerText)])")
        visible = page.locator("#mistakes").is_visible()
        shot = screenshots("class_report") / "class_report.png"
        page.screenshot(path=str(shot), full_page=True)
    assert refused == []
    lessons_with_verdicts = {v["lesson"] for v in reports.read_verdicts(graded["work"])}
    assert len(images) == len(lessons_with_verdicts) > 0
    assert all(src == "data:image/png;base64" and loaded for src, loaded in images), images
    assert visible and {(a, b, c): n for a, b, c, n in counts} == planted_counts()
    assert shot.stat().st_size > 10_000
    print(f"\nscreenshot: {shot}")
