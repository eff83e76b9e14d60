"""Every relative link of README.md and docs/**/*.md leads somewhere: the file exists and, for a
`#anchor` into a Markdown page, the page has that heading (GitHub's and MyST's slug of it)."""
import json
import re
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

REPO = Path(__file__).resolve().parent.parent
PAGES = [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md"))]

LINK = re.compile(r"(?<!!)\[(?:[^\]]|\][^(])*?\]\(([^)\s]+)\)|!\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^```.*?^```", re.S | re.M)


def links(text):
    """The link targets of a Markdown text, code blocks and inline code left out."""
    text = FENCE.sub("", text)
    text = re.sub(r"`[^`\n]*`", "", text)
    return [a or b for a, b in LINK.findall(text)]


def slug(heading):
    """A heading's anchor as GitHub and MyST (myst_heading_anchors) make it."""
    text = re.sub(r"[`*_]|\[([^\]]*)\]\([^)]*\)", r"\1", heading.strip().lower())
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(page):
    """A page's #targets: its headings' slugs and the ids of its HTML anchors (<a id="...">)."""
    text = FENCE.sub("", page.read_text())
    return ({slug(m) for m in re.findall(r"^#{1,6}\s+(.*)$", text, re.M)}
            | set(re.findall(r"<a\s+id=\"([^\"]+)\"", text)))


def test_the_link_finder_finds_links_and_not_code():
    text = "See [a](x.md#b), ![img](p.png) and [c](https://e.org).\n`[not](y.md)`\n```\n[no](z.md)\n```\n"
    assert links(text) == ["x.md#b", "p.png", "https://e.org"]
    assert slug("Isolation: bubblewrap, the pod, or none") == "isolation-bubblewrap-the-pod-or-none"
    assert slug("The `site` extra") == "the-site-extra"


@pytest.mark.parametrize("page", PAGES, ids=[p.relative_to(REPO).as_posix() for p in PAGES])
def test_every_relative_link_resolves(page):
    broken = []
    for target in links(page.read_text()):
        parts = urlsplit(target)
        if parts.scheme or target.startswith("//"):
            continue  # a web address: not checked offline
        path = (page.parent / unquote(parts.path)).resolve() if parts.path else page
        if not path.exists():
            broken.append(f"{target}: no {path.relative_to(REPO) if path.is_relative_to(REPO) else path}")
        elif parts.fragment and path.suffix == ".md" and parts.fragment not in anchors(path):
            broken.append(f"{target}: {path.name} has no heading #{parts.fragment}")
    assert not broken, f"{page.relative_to(REPO)}: " + "; ".join(broken)


def test_the_guides_are_linked_from_the_readme_and_the_index():
    readme = links((REPO / "README.md").read_text())
    index = links((REPO / "docs" / "index.md").read_text())
    for guide in ("learners.md", "instructors.md", "jupyterhub.md", "threat-model.md"):
        assert f"docs/{guide}" in readme and guide in index, guide
    assert "workshop/index.md" in index and "docs/workshop/index.md" in readme
    assert "docs/batchnorm_on_one_page.md" in readme and "docs/notation.md" in readme


def test_the_index_lists_every_lesson_by_its_title():
    """docs/index.md's lesson list is written by hand: it names every lesson of course/ by the title
    its notebook gives itself (the first heading), so a renamed or added lesson fails here."""
    expected = []
    for path in sorted((REPO / "course").glob("*/*.ipynb")):
        first = "".join(json.loads(path.read_text())["cells"][0]["source"]).splitlines()[0]
        expected.append((first.lstrip("# ").strip(), f"../course/{path.parent.name}/{path.name}"))
    listed = re.findall(r"^\d+\. \[([^\]]+)\]\(([^)]+\.ipynb)\)$", (REPO / "docs" / "index.md").read_text(), re.M)
    assert listed == expected
