"""Slides from each lesson's Learn sections (tools/slides.py, `make slides`).

The slide metadata of solutions/ and course/ is the tool's rule, cell by cell; the rule shows a
Learn section and hides answers, checks, tests and folds; a deck built from course/ opens in
Chromium offline as a reveal.js deck of several slides, its maths drawn as MathML (no raw TeX
left in the text), nothing requested off this machine. A screenshot of a slide with maths is
kept in tests/artifacts/slides/.
"""
import importlib.util
import re
import shutil

import nbformat
import pytest

from autograder.paths import REPO
from tests.offline_browser import offline_page, screenshots

spec = importlib.util.spec_from_file_location("slides", REPO / "tools" / "slides.py")
slides = importlib.util.module_from_spec(spec)
spec.loader.exec_module(slides)

LESSON = "03_backward"  # maths in headings and prose: a fraction, a square root, hats, sums
RAW_TEX = ("\\frac", "\\sqrt", "\\hat", "\\sum", "\\varepsilon", "$$", "\\(", "\\[")


def test_slide_metadata_of_solutions_and_course_follows_the_rule():
    problems = slides.stale(slides.SOURCE) + slides.stale(slides.COURSE)
    assert not problems, "\n".join(problems[:20] + ["run `make slides`"])


def test_the_rule_shows_learn_sections_and_hides_answers_checks_and_folds():
    md, code = nbformat.v4.new_markdown_cell, nbformat.v4.new_code_cell
    demo = code("plots.show()")
    demo.metadata["tags"] = ["demonstration"]
    answer = code("def f(x):\n    return x")
    answer.metadata["nbgrader"] = {"solution": True, "grade_id": "f"}
    cells = [md("# Lesson"), code("import numpy"), md("### Recap"), md("## Learn: an idea"), md("### A detail"),
             demo, md("More prose, $\\frac{1}{N}$"), md("<details><summary>Hint</summary>x</details>"),
             answer, code("checks.check_f(f)"), md("## Implement"), md("prose"), code("plots.show()"),
             md("## Learn"), md("text"), md("## Reflect"), md("question")]
    assert slides.slide_types(cells) == [
        "slide", "skip", "skip", "slide", "subslide", "-", "subslide", "skip",
        "skip", "skip", "skip", "skip", "skip", "slide", "subslide", "skip", "skip"]


def test_every_lesson_has_a_learn_section_to_present_and_no_answer_in_it():
    for path in slides.lesson_notebooks(slides.SOURCE):
        nb = nbformat.read(path, as_version=4)
        shown = [c for c in nb.cells if c.metadata.get("slideshow", {}).get("slide_type") != "skip"]
        assert sum(c.metadata.slideshow.slide_type == "slide" for c in shown) >= 2, path.name
        for cell in shown:
            nbg = cell.metadata.get("nbgrader", {})
            assert not (nbg.get("solution") or nbg.get("grade")), (path.name, cell.source[:80])
            assert "BEGIN SOLUTION" not in cell.source and "HIDDEN TESTS" not in cell.source


def test_a_deck_opens_offline_as_reveal_slides_with_its_maths_drawn(tmp_path):
    if not (slides.REVEAL / "dist" / "reveal.js").exists():
        if shutil.which("npm"):
            pytest.fail(f"{slides.REVEAL} is missing: run `make slides-deps` (reveal.js from npm into .slides/)")
        pytest.skip("no `npm`: reveal.js for the slides cannot be installed")
    deck, = slides.build(tmp_path, [LESSON])
    html = deck.read_text()
    assert "cdn" not in html.lower() and "unpkg.com" not in html and "mathjax" not in html.lower()
    # the lesson's links to the notation and the sheet reach them from the deck's folder too
    links = [h for h in re.findall(r'href="([^"#:]+)"', html) if not h.startswith("reveal.js/")]
    assert links and all((tmp_path / h).resolve().is_file() for h in links), links
    errors = []
    with offline_page(viewport=(1280, 800)) as (page, blocked):
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(deck.as_uri())
        page.wait_for_function("window.Reveal && Reveal.isReady()", timeout=15_000)
        facts = page.evaluate("""() => ({
            total: Reveal.getTotalSlides(),
            horizontal: Reveal.getHorizontalSlides().length,
            text: document.querySelector('.reveal .slides').textContent,
            maths: document.querySelectorAll('.reveal .slides math').length,
            tex: document.querySelectorAll('.reveal .slides code.tex').length,
        })""")
        # every Learn section a slide, its paragraphs sub-slides: several of each
        assert facts["horizontal"] >= 4 and facts["total"] >= 12, facts
        assert facts["maths"] >= 10 and facts["tex"] == 0, facts
        raw = [t for t in RAW_TEX if t in facts["text"]]
        assert not raw, raw
        # the deck holds the Learn sections and nothing of the answers or tests
        assert "The computational graph" in facts["text"]
        assert "checks.check_" not in facts["text"] and "raise NotImplementedError" not in facts["text"]
        # go to the first slide showing a fraction, and see the browser draw it: a fraction's
        # numerator sits above its denominator
        found = page.evaluate("""() => {
            for (const [h, column] of Reveal.getHorizontalSlides().entries()) {
                const stack = column.querySelectorAll(':scope > section');
                const parts = stack.length ? Array.from(stack) : [column];
                for (const [v, s] of parts.entries()) {
                    if (s.querySelector('math mfrac')) { Reveal.slide(h, v); return [h, v]; }
                }
            }
            return null;
        }""")
        assert found is not None
        page.wait_for_timeout(1200)  # the slide transition
        geometry = page.evaluate("""() => {
            const f = Reveal.getCurrentSlide().querySelector('math mfrac');
            const [num, den] = [f.children[0].getBoundingClientRect(), f.children[1].getBoundingClientRect()];
            return {numBottom: num.bottom, denTop: den.top, width: f.getBoundingClientRect().width};
        }""")
        assert geometry["width"] > 0 and geometry["numBottom"] <= geometry["denTop"] + 1, geometry
        shot = screenshots("slides") / f"{LESSON}_slide_{found[0]}_{found[1]}.png"
        page.screenshot(path=str(shot))
    assert not blocked, blocked
    assert not errors, errors
    print(f"\nscreenshot: {shot}")
