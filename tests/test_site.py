"""The course as a website (make site, tools/site/build.py): built from the student edition, its
maths MathML, a Binder and a Colab link on every lesson, the sheet and the notation linked, no
solution or hidden test in any file (the edition's leak audit, run on the built site), and a
lesson page read in Chromium with every request off this machine blocked."""
import ast
import html
import importlib.util
import json
import re
import shutil
import subprocess
import sys
import urllib.parse

import pytest

from autograder import submissions
from autograder.settings import REPO
from tests.offline_browser import offline_page, screenshots


def _tool(path, name):
    spec = importlib.util.spec_from_file_location(name, REPO / path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


site_build = _tool("tools/site/build.py", "_site_build")
public_url = _tool("tools/public_url.py", "_public_url")
LESSONS = submissions.lessons()
# TeX as written in the lessons' Markdown: what a page must not show once the maths is rendered
RAW_TEX = re.compile(r"\$[^$\s][^$]*\$|\\(?:frac|hat|sqrt|sum|mu|sigma|gamma|beta|partial|epsilon|varepsilon)\b")


def _no_network():
    """`unshare -n` (a network namespace with only loopback, down) where this machine allows it."""
    try:
        return subprocess.run(["unshare", "-n", "true"], capture_output=True).returncode == 0
    except OSError:
        return False


OFFLINE = _no_network()


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """The site as `make site` builds it, with no network at all where unshare allows: nothing the
    build needs may be fetched while building."""
    out = tmp_path_factory.mktemp("site") / "site"
    command = [sys.executable, str(REPO / "tools" / "site" / "build.py"), str(out)]
    done = subprocess.run(["unshare", "-n", *command] if OFFLINE else command, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"{len(LESSONS)} lessons from the student edition, audited" in done.stdout
    assert sorted(p.relative_to(out).as_posix() for p in out.glob("course/*/*.html")) == \
        [f"course/{lesson}/{lesson}.html" for lesson in LESSONS]
    return out


def test_the_site_was_built_with_no_network(site):
    if not OFFLINE:
        pytest.skip("unshare -n is not allowed here: the site was built with the network on")
    assert (site / "index.html").is_file()


def page(site, lesson):
    return site / "course" / lesson / f"{lesson}.html"


def visible_text(markup):
    """A page's text outside scripts, styles, code and maths."""
    markup = re.sub(r"<(script|style|pre|code|math)\b.*?</\1>", " ", markup, flags=re.S)
    return html.unescape(re.sub(r"<[^>]+>", " ", markup))


def test_the_lessons_are_the_student_editions_notebooks(site):
    """The notebooks the site publishes (its download button) are course/'s, byte for byte, and
    no line of a solution region of solutions/ is in any file of the site, unless course/ holds it
    too (a later lesson's recap gives an earlier lesson's answer, by design)."""
    for lesson in LESSONS:
        assert (site / "_sources" / "course" / lesson / f"{lesson}.ipynb").read_bytes() == \
            submissions.notebook_path(lesson, REPO / "course").read_bytes()
    solution_lines = set()
    for lesson in LESSONS:
        for cell in json.loads(submissions.notebook_path(lesson, REPO / "solutions").read_text())["cells"]:
            source = "".join(cell["source"])
            for region in re.findall(r"### BEGIN SOLUTION\n(.*?)### END SOLUTION", source, re.S):
                solution_lines |= {line.strip() for line in region.splitlines() if len(line.strip()) > 30}
    course = "".join(submissions.notebook_path(lesson, REPO / "course").read_text() for lesson in LESSONS)
    solution_lines = {line for line in solution_lines if json.dumps(line)[1:-1] not in course}
    assert len(solution_lines) > 20  # the solutions' own lines, long enough to be their own
    texts = [p.read_text(errors="replace") for p in site.rglob("*") if p.suffix in (".html", ".ipynb", ".js")]
    shown = [line for line in solution_lines if any(line in t or html.escape(line) in t for t in texts)]
    assert not shown, shown[:3]


def test_the_leak_audit_passes_on_the_built_site_and_catches_a_planted_leak(site, tmp_path):
    assert site_build.audit(site) == []
    # a page with the hidden reference's batch_mean as a highlighted code block and a solution
    # marker split into one <span> per word, as the theme writes inline code
    reference = ast.parse((REPO / "autograder" / "reference.py").read_text())
    function = next(n for n in reference.body if isinstance(n, ast.FunctionDef) and n.name == "batch_mean")
    code = "".join(f'<span class="n">{html.escape(word)}</span>' for word in re.split(r"(\W)", ast.unparse(function)))
    leak = tmp_path / "course" / "leak.html"
    leak.parent.mkdir()
    leak.write_text(f'<p><code><span class="pre">###</span> <span class="pre">BEGIN</span> '
                    f'<span class="pre">SOLUTION</span></code></p>\n<div class="highlight"><pre>{code}</pre></div>')
    shutil.copy(site / "_sources" / "course" / LESSONS[1] / f"{LESSONS[1]}.ipynb", tmp_path / "course" / "ok.ipynb")
    problems = site_build.audit(tmp_path)
    assert "course/leak.html: 'BEGIN SOLUTION' in its text" in problems
    assert "course/leak.html: batch_mean is the hidden reference's batch_mean" in problems
    assert len(problems) == 2, problems
    # the allowance is the instructors' guide's alone
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "learners.html").write_text("<p>record_answers</p>")
    (tmp_path / "docs" / "instructors.html").write_text("<p>record_answers</p>")
    assert [p for p in site_build.audit(tmp_path) if "record_answers" in p] == [
        "docs/learners.html: 'record_answers'", "docs/learners.html: 'record_answers' in its text"]


def test_maths_is_mathml_with_no_mathjax_and_no_script_from_elsewhere(site):
    # what the check below looks for: TeX left for MathJax (Sphinx's own renderer) or not parsed at all
    assert RAW_TEX.findall(visible_text('<span class="math notranslate">\\(\\hat{x}_{ij}\\)</span>'))
    assert RAW_TEX.findall(visible_text("<p>the mean $\\mu_j$ of column j</p>"))
    for path in sorted(site.rglob("*.html")):
        markup = path.read_text()
        assert not re.search(r"<script[^>]*mathjax|MathJax\s*=", markup, re.I), path.relative_to(site)
        assert not re.search(r"<script[^>]*src=\"(?:https?:)?//", markup), path.relative_to(site)
    for lesson in LESSONS:
        markup = page(site, lesson).read_text()
        assert markup.count("<math") >= 5, lesson
        assert 'class="tex"' not in markup, f"{lesson}: a formula latex2mathml could not read"
        raw = RAW_TEX.findall(visible_text(markup))
        assert not raw, (lesson, raw[:3])


def test_every_lesson_has_a_binder_and_a_colab_link(site):
    url = public_url.public_url()
    owner_name = urllib.parse.urlsplit(url).path.strip("/")
    for lesson in LESSONS:
        notebook = f"course/{lesson}/{lesson}.ipynb"
        markup = html.unescape(page(site, lesson).read_text())
        assert f'href="{public_url.binder_url(url, notebook)}"' in markup, lesson
        assert f'href="https://colab.research.google.com/github/{owner_name}/blob/HEAD/{notebook}"' in markup, lesson


def test_the_sheet_the_notation_and_the_guides_are_linked(site):
    for lesson in LESSONS:
        markup = page(site, lesson).read_text()
        assert 'href="../notation.html"' in markup and 'href="../batchnorm_on_one_page.html"' in markup, lesson
    home = (site / "docs" / "index.html").read_text()
    for target in ("../course/notation.html", "../course/batchnorm_on_one_page.html", "learners.html",
                   "instructors.html", "jupyterhub.html", "threat-model.html", "workshop/index.html",
                   *(f"../course/{lesson}/{lesson}.html" for lesson in LESSONS)):
        assert f'href="{target}' in home, target
    assert (site / "course" / "notation.html").is_file() and (site / "docs" / "threat-model.html").is_file()
    assert 'url=docs/index.html' in (site / "index.html").read_text()


def test_a_lesson_page_reads_offline_in_chromium(site):
    folder = screenshots("site")
    lesson = "02_normalise_and_scale"
    with offline_page(viewport=(1200, 900)) as (browser_page, blocked):
        browser_page.goto(page(site, lesson).as_uri())
        browser_page.wait_for_load_state("load")
        maths = browser_page.locator("math >> visible=true")  # those in closed hint folds are hidden
        assert maths.count() >= 5
        box = maths.first.bounding_box()
        assert box and box["width"] > 0 and box["height"] > 0  # drawn by the browser, not hidden
        text = browser_page.locator("main").inner_text()
        assert "Lesson 02" in text
        assert not RAW_TEX.findall(text), RAW_TEX.findall(text)[:3]
        maths.nth(2).scroll_into_view_if_needed()
        browser_page.screenshot(path=str(folder / f"{lesson}.png"))
        browser_page.goto((site / "docs" / "index.html").as_uri())
        assert "Lesson 07" in browser_page.locator("main").inner_text()
        browser_page.screenshot(path=str(folder / "home.png"))
    assert not blocked, blocked
