"""Slides from each lesson's Learn sections, out of the lesson notebook itself.

    python tools/slides.py --write           set the slide metadata on every cell of solutions/
    python tools/slides.py --check           list the cells whose slide metadata is not the rule's
    python tools/slides.py build OUT [LESSON ...]
                                             reveal.js decks of course/'s lessons, into OUT
    make slides                              --write, course/ from solutions/, then the decks
                                             into build/slides/ (reveal.js from npm, in .slides/)

The slide metadata is data, derived here from the notebook's headings, never edited by hand:
each cell's `metadata.slideshow.slide_type`, the key JupyterLab's property inspector, RISE and
nbconvert read. The rule (`slide_types`):

  - the title cell (the lesson's first cell) is a slide;
  - a `## Learn...` section shows: its heading cell is a slide, every other markdown cell of it
    a sub-slide (the reader's paragraphs are a presenter's slides), and its demonstration code
    cells (tag `demonstration`) stay with the slide before them ("-");
  - inside a Learn section, folds (`<details>`: hints, "after you have derived it") and every
    other code cell (the learner's answers, checks, tests) are skipped, as is everything outside
    a Learn section (Recap, Implement, Reflect, answers).

`python -m autograder release` carries the metadata into course/, so a host can present from
the learner's own notebook (JupyterLab's slide show metadata) or from the decks `build` writes:
nbconvert's reveal.js slides with

  - reveal.js from a local copy (npm's `reveal.js`, pinned in tools/reveal/package.json, copied
    beside the decks into OUT/reveal.js/), never from a CDN;
  - the maths rendered to MathML when the deck is built (latex2mathml, as the feedback page:
    autograder/feedback.py), which the browser draws itself: no MathJax, no script, no font
    downloaded;
  - reveal.js's "white" theme, whose font is in its own folder (the default theme's comes from
    Google Fonts);
  - no jQuery, RequireJS, Mermaid or widget scripts (nbconvert's template loads them from CDNs;
    tools/slides_templates/bnslides/ leaves them out).

The decks show the cells as the course hands them out, without outputs (notebooks are committed
without them): a demonstration's figure appears when the presenter runs the cell in JupyterLab.
"""
import argparse
import html
import os
import re
import shutil
import sys
from pathlib import Path

import nbformat

REPO = Path(__file__).resolve().parents[1]
SOURCE = REPO / "solutions"
COURSE = REPO / "course"
TEMPLATES = Path(__file__).resolve().parent / "slides_templates"
TEMPLATE = "bnslides"
REVEAL = REPO / ".slides" / "node_modules" / "reveal.js"  # `make slides` installs it there
REVEAL_PARTS = ("dist", "plugin", "LICENSE")  # what a deck loads, and reveal.js's licence
DEMONSTRATION = "demonstration"
THEME = "white"


def lesson_notebooks(root):
    return sorted(Path(root).glob("[0-9][0-9]_*/[0-9][0-9]_*.ipynb"))


def _heading(cell, level):
    first = cell.source.lstrip().split("\n", 1)[0] if cell.cell_type == "markdown" else ""
    return first[level:].strip() if first.startswith("#" * level + " ") else None


def slide_types(cells):
    """The slide type of each cell, by the rule in the module's docstring."""
    types, in_learn = [], False
    for i, cell in enumerate(cells):
        section = _heading(cell, 2)
        if section is not None:
            in_learn = section.startswith("Learn")
        if i == 0:
            kind = "slide"
        elif not in_learn:
            kind = "skip"
        elif cell.cell_type == "markdown":
            if cell.source.lstrip().startswith("<details"):
                kind = "skip"
            else:
                kind = "slide" if section is not None else "subslide"
        elif cell.cell_type == "code" and DEMONSTRATION in cell.metadata.get("tags", []):
            kind = "-"
        else:
            kind = "skip"
        types.append(kind)
    return types


def stale(root=SOURCE):
    """'<notebook>: cell <i> is <found>, the rule says <wanted>' for each cell off the rule, and
    each lesson with nothing to show."""
    problems = []
    for path in lesson_notebooks(root):
        nb = nbformat.read(path, as_version=4)
        wanted = slide_types(nb.cells)
        if wanted.count("slide") < 2:
            problems.append(f"{path.relative_to(REPO)}: no Learn section to present")
        for i, (cell, kind) in enumerate(zip(nb.cells, wanted)):
            found = cell.metadata.get("slideshow", {}).get("slide_type")
            if found != kind:
                problems.append(f"{path.relative_to(REPO)}: cell {i} is {found!r}, the rule says {kind!r}")
    return problems


def write(root=SOURCE):
    """Set every cell's slide type by the rule; returns the notebooks changed."""
    changed = []
    for path in lesson_notebooks(root):
        nb = nbformat.read(path, as_version=4)
        before = nbformat.writes(nb)
        for cell, kind in zip(nb.cells, slide_types(nb.cells)):
            cell.metadata["slideshow"] = {"slide_type": kind}
        if nbformat.writes(nb) != before:
            nbformat.write(nb, path)
            changed.append(path)
    return changed


def exporter():
    """nbconvert's SlidesExporter with the course's template and the maths as MathML."""
    from nbconvert.exporters import SlidesExporter

    from autograder.feedback import MathMLMarkdown

    class MathMLSlides(MathMLMarkdown, SlidesExporter):
        pass

    # "white": its font is in reveal.js's own folder (nbconvert's default "simple" asks Google Fonts)
    return MathMLSlides(extra_template_basedirs=[str(TEMPLATES)], template_name=TEMPLATE,
                        reveal_url_prefix="reveal.js", reveal_theme=THEME, exclude_anchor_links=True)


def build(out, lessons=(), root=COURSE, reveal=REVEAL):
    """OUT/<lesson>.slides.html for each lesson (all of them when none is named) and OUT/reveal.js/;
    returns the decks written."""
    if not (reveal / "dist" / "reveal.js").exists():
        raise SystemExit(f"{reveal} is missing: run `make slides` (installs reveal.js from npm into .slides/)")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    local = out / "reveal.js"
    shutil.rmtree(local, ignore_errors=True)
    local.mkdir()
    for part in REVEAL_PARTS:
        (shutil.copytree if (reveal / part).is_dir() else shutil.copy)(reveal / part, local / part)
    notebooks = [p for p in lesson_notebooks(root) if not lessons or p.parent.name in lessons]
    missing = set(lessons) - {p.parent.name for p in notebooks}
    if missing:
        raise SystemExit(f"no such lesson in {root}: {', '.join(sorted(missing))}")
    slides = exporter()
    written = []
    for path in notebooks:
        body, _ = slides.from_filename(str(path))
        deck = out / f"{path.parent.name}.slides.html"
        deck.write_text(relink(body, path.parent, out))
        written.append(deck)
    return written


def relink(body, folder, out):
    """The lesson's relative links (the notation, the one-page sheet: `../notation.md`), made to
    reach the same files from the decks' folder."""
    def fix(match):
        target = match.group(2)
        if re.match(r"[a-z][a-z0-9+.-]*:|#|/", target) or target.startswith("reveal.js/"):
            return match.group(0)
        file, _, anchor = target.partition("#")
        resolved = (folder / file).resolve()
        if not resolved.exists():
            return match.group(0)
        new = os.path.relpath(resolved, out.resolve()) + (f"#{anchor}" if anchor else "")
        return f'{match.group(1)}"{html.escape(new, quote=True)}"'
    return re.sub(r'(\b(?:href|src)=)"([^"]*)"', fix, body)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--write", action="store_true", help="set the slide metadata in solutions/")
    parser.add_argument("--check", action="store_true", help="list cells off the rule (solutions/ and course/)")
    parser.add_argument("command", nargs="?", choices=["build"])
    parser.add_argument("out", nargs="?", default=str(REPO / "build" / "slides"))
    parser.add_argument("lessons", nargs="*")
    args = parser.parse_args(argv)
    if args.write:
        for path in write():
            print(f"slide metadata set: {path.relative_to(REPO)}")
    if args.check:
        problems = stale(SOURCE) + stale(COURSE)
        for line in problems:
            print(line)
        if problems:
            print("run `make slides` (or: python tools/slides.py --write, then python -m autograder release)")
            return 1
        print("slide metadata: every cell of solutions/ and course/ follows the rule")
    if args.command == "build":
        for deck in build(args.out, args.lessons):
            print(f"wrote {deck.relative_to(REPO) if deck.is_relative_to(REPO) else deck}")
    if not (args.write or args.check or args.command):
        parser.print_help()
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))  # autograder.feedback's MathML renderer, from this checkout
    sys.exit(main())
