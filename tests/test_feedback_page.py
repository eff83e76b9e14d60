"""The feedback page a learner opens, in a real browser with no network (issue 22, item 1).

One notebook of lesson 01 (maths, two figures, folded hints) with one known mistake goes through
the real pipeline (autograder.grading.grade: sandbox, nbgrader autograde, generate_feedback);
its feedback HTML is opened in Chromium from file:// with every request that is not file: or
loopback aborted. Screenshots land in tests/artifacts/feedback/ (git-ignored), kept for a person:
the whole page, the summary table, the failing test with its wrapped message, maths with a
figure, and an opened hint.

Needs Debian's Chromium and playwright (the `browser` extra), as tests/test_lab.py.
"""
import html
import os
import re
from pathlib import Path

import nbformat
import pytest

from autograder import grading, submissions
from autograder.feedback import markdown_to_html, verdict_line
from tests.catalogue import MUTANTS
from tests.offline_browser import offline_page, screenshots
from tests.test_grading import TRACEBACK_MARKS, expected_message, points

MUTANT = next(m for m in MUTANTS if m.name == "var_unbiased")  # lesson 01: maths, figures, folds
LESSON = MUTANT.lesson


def test_maths_becomes_mathml_and_a_fold_stays_a_fold():
    page = markdown_to_html("<details><summary>Hint</summary>\n\nDivide by $N$, not $N-1$:\n\n"
                            "$$\n\\sigma^2 = \\frac{1}{N}\\sum_i (x_i - \\mu)^2\n$$\n\n</details>")
    assert page.count("<math") == 3 and page.count('display="block"') == 1 and "<mfrac>" in page
    assert "$" not in page and "\\frac" not in page
    assert page.startswith("<details><summary>Hint</summary>") and page.rstrip().endswith("</details>")


def test_tex_the_converter_cannot_read_is_shown_as_code_never_dropped():
    page = markdown_to_html("Broken: $\\frac{1}{$ here.")
    assert '<code class="tex">\\frac{1}{</code>' in page


def _test_cell(*outputs):
    meta = {"nbgrader": {"grade": True, "solution": False, "grade_id": "test_batch_mean", "points": 2}}
    return nbformat.v4.new_code_cell("", outputs=list(outputs), metadata=meta)


def test_the_summary_names_the_mistake_or_the_first_line():
    named = nbformat.v4.new_output("error", ename="CheckFailed", traceback=[], evalue=(
        "batch_variance (hidden tests): Likely mistake: you divided by N-1.\nat index (1,) got 2, expected 1"))
    other = nbformat.v4.new_output("error", ename="CheckFailed", traceback=[], evalue=(
        "batch_mean (hidden tests, compared with the reference): batch_mean's output has shape (1, 3), "
        "expected (3,)\n(input: float32 x of shape (4, 3))"))
    untouched = nbformat.v4.new_output("error", ename="CheckFailed", traceback=[],
                                       evalue="batch_mean is not implemented yet\nfill in its cell")
    passed = nbformat.v4.new_output("stream", name="stdout", text="batch_mean: all 12 checks passed\n")
    assert verdict_line(_test_cell(named)) == "Likely mistake: you divided by N-1."
    assert verdict_line(_test_cell(other)) == "batch_mean's output has shape (1, 3), expected (3,)"
    assert verdict_line(_test_cell(untouched)) == "batch_mean is not implemented yet"
    assert verdict_line(_test_cell(passed)) == "correct"


def _run_as_a_learner(nb, home):
    """Run All in JupyterLab's kernel (inline figures), as a learner does before handing in: the
    demonstration cells, which grading skips, show what they showed on this run."""
    from nbclient import NotebookClient
    saved = os.environ.pop("MPLBACKEND", None)
    try:
        NotebookClient(nb, timeout=120, allow_errors=True, kernel_name="python3",
                       resources={"metadata": {"path": str(home)}}).execute()
    finally:
        if saved is not None:
            os.environ["MPLBACKEND"] = saved


@pytest.fixture(scope="module")
def page_file(tmp_path_factory):
    inbox = tmp_path_factory.mktemp("inbox")
    nb = submissions.filled_notebook(LESSON, {MUTANT.piece: MUTANT.source})
    _run_as_a_learner(nb, tmp_path_factory.mktemp("home"))
    submissions.write(nb, inbox / "ada" / LESSON / f"{LESSON}.ipynb")
    work = tmp_path_factory.mktemp("work")
    [row] = grading.grade(inbox, work, progress=False, workers=1)
    assert row.status == "graded" and row.failed_tests, row
    return work / "feedback" / "ada" / LESSON / f"{LESSON}.html", work


def test_the_page_carries_nothing_from_the_graders_machine(page_file):
    """No script or style from elsewhere, no path of the grading workspace or the repository."""
    path, work = page_file
    text = path.read_text()
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", text), "something loads from the network"
    assert "<script" not in text  # the maths needs none: MathJax is not loaded, nor anything else
    for private in (str(work), str(Path(grading.__file__).resolve().parents[1]), "/home/learner"):
        assert private not in text
    for mark in TRACEBACK_MARKS + ["BEGIN HIDDEN TESTS", "record_answers"]:
        assert mark not in html.unescape(text), mark


def test_the_page_in_a_browser_offline(page_file):
    path, _ = page_file
    released = nbformat.read(submissions.notebook_path(LESSON), as_version=4)
    pieces = [p for p in map(submissions.tested_piece, released.cells) if p]
    figures = sum(c.cell_type == "code" and "plots." in c.source for c in released.cells)
    assert pieces and figures
    shots = screenshots("feedback")
    with offline_page() as (page, blocked):
        page.goto(path.as_uri(), wait_until="load")
        page.screenshot(path=str(shots / "page.png"), full_page=True)
        text = page.inner_text("body")

        # maths: MathML elements laid out by the browser, no TeX left in the text
        maths = page.evaluate("""() => [...document.querySelectorAll('math')].map(m => ({
            mathml: m instanceof MathMLElement, visible: m.getClientRects().length > 0,
            width: m.getBoundingClientRect().width}))""")
        assert len(maths) >= 20 and all(m["mathml"] for m in maths)
        assert all(m["width"] > 0 for m in maths if m["visible"])
        stacked = page.evaluate("""() => [...document.querySelectorAll('mfrac')].filter(f =>
            f.getClientRects().length).map(f => f.children[0].getBoundingClientRect().bottom
                                                <= f.children[1].getBoundingClientRect().top + 1)""")
        assert stacked and all(stacked), "a fraction is not drawn as numerator over denominator"
        for raw in ("\\frac", "$$", "\\sum", "<Figure size"):
            assert raw not in text, raw

        # the summary: every graded piece, its points, correct or the named mistake
        summary = page.locator("#feedback-summary")
        summary.screenshot(path=str(shots / "summary.png"))
        rows = summary.locator("tbody tr").all_inner_texts()
        assert [r.split("\t")[0].strip() for r in rows] == pieces
        worth = points()
        for piece, row in zip(pieces, rows):
            cells = [c.strip() for c in row.split("\t")]
            if piece == MUTANT.piece:
                assert cells[1] == f"0.0 / {float(worth[piece])}"
                assert cells[2].startswith("Likely mistake:") and expected_message(MUTANT) in cells[2]
            else:
                assert cells[1:] == [f"{float(worth[piece])} / {float(worth[piece])}", "correct"], row

        # each test titled by its piece; its failure message wraps inside its box
        titles = page.locator(".nbgrader-label", has_text="Tests of").all_inner_texts()
        assert [t.strip() for t in titles] == [f"Tests of {p}" for p in pieces]
        assert "Test cell" not in text
        failure = page.locator(".output_error pre", has_text=expected_message(MUTANT))
        assert failure.count() == 1
        box = failure.evaluate("""e => ({scroll: e.scrollWidth, client: e.clientWidth,
            height: e.clientHeight, line: parseFloat(getComputedStyle(e).lineHeight)})""")
        assert box["scroll"] <= box["client"], box
        assert box["height"] > 3 * box["line"], box  # the long first line did wrap
        page.locator(f"a[name='test_{MUTANT.piece}']").scroll_into_view_if_needed()
        page.locator("div.cell", has=failure).screenshot(path=str(shots / "failure.png"))

        # the learner's figures, as figures
        images = page.evaluate("""() => [...document.querySelectorAll('.output_subarea img')].map(i =>
            ({png: i.src.startsWith('data:image/png;base64,'), width: i.naturalWidth}))""")
        assert len(images) == figures and all(i["png"] and i["width"] > 100 for i in images), images
        # (the figures are the learner's own run's: grading skipped those demonstration cells, and says so)
        assert "not run while grading; below, what it showed on your own run" in text
        first_figure = page.locator(".output_subarea img").first
        first_figure.scroll_into_view_if_needed()
        page.screenshot(path=str(shots / "maths_and_figure.png"))

        # folds: closed, with their marker, and they open
        hint = page.locator("details", has=page.locator("summary", has_text="Hint")).first
        body = hint.locator("p").first
        assert hint.evaluate("d => !d.open") and not body.is_visible()
        assert hint.locator("summary").evaluate("s => getComputedStyle(s).display") == "list-item"
        hint.locator("summary").click()
        assert body.is_visible()
        hint.screenshot(path=str(shots / "hint_opened.png"))
    assert blocked == [], f"the page asked the network for {blocked}"
    print(f"\nfeedback screenshots: {shots}")
