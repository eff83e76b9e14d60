"""The course as a static website, for people who want to read a lesson before installing anything.

    python tools/site/build.py [OUT]       (make site; OUT defaults to build/site)

Built from the student edition, never from solutions/: the edition is written to a temporary
folder first (tools/student_edition.py, whose own audit runs), and the site's lessons are its
course/ notebooks. Beside them: the one-page sheet and the notation table (the edition's copies
in course/, which the lessons link to) and the guides of docs/ (learners, instructors,
JupyterHub, threat model, and docs/workshop/ when it exists).

Sphinx with MyST-NB and sphinx-book-theme (the pieces Jupyter Book 1 is made of), pinned in
pyproject.toml's `site` extra; everything comes from the package registry, nothing is downloaded
while building. The notebooks are published as committed, without outputs: they are not run
(learners run them). The maths is MathML written at build time (tools/site/mathml.py), so the
pages need no MathJax. Each lesson page has the theme's Binder and Colab launch links, for the
course's public address (pyproject.toml's [tool.bncourse] public-url, tools/public_url.py).

Before it finishes, the edition's leak audit runs on the built site (audit()): every page,
search index and copied notebook; it fails rather than publish a solution or a hidden test.
tests/test_site.py builds the site and checks it, in Chromium too.
"""
import html
import importlib.util
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
SHEETS = ("batchnorm_on_one_page.md", "notation.md")  # in the site as the edition's course/ copies
# The instructors' guide says what the regions of a source notebook are (`### BEGIN/END SOLUTION`,
# `### BEGIN/END HIDDEN TESTS`)
# and the call a hidden test cell makes, without holding one: those markers are allowed on that page, its source
# and the search index built from the pages; everywhere else every marker counts.
INSTRUCTORS = {"docs/instructors.html", "_sources/docs/instructors.md", "searchindex.js"}
ALLOWED = {marker: INSTRUCTORS for marker in ("END SOLUTION", "END HIDDEN TESTS", "record_answers")}


def _tool(name):
    spec = importlib.util.spec_from_file_location(f"_{name}", REPO / "tools" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def guides(root=REPO):
    """docs/ pages published with the site: every Markdown file but the sheets' sources."""
    docs = Path(root) / "docs"
    return sorted(p for p in docs.rglob("*.md") if p.relative_to(docs).as_posix() not in SHEETS)


def source_tree(edition, src, root=REPO):
    """The Sphinx source folder: course/ from the edition, docs/ from the repository."""
    shutil.copytree(Path(edition) / "course", Path(src) / "course",
                    ignore=shutil.ignore_patterns("*.html", ".ipynb_checkpoints"))
    for page in guides(root):
        target = Path(src) / page.relative_to(root)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(page, target)
    images = Path(root) / "docs" / "images"  # pictures the guides show (the formgrader's screenshot)
    if images.is_dir():
        shutil.copytree(images, Path(src) / "docs" / "images", dirs_exist_ok=True)
    lessons = sorted(p.relative_to(src).with_suffix("").as_posix() for p in (Path(src) / "course").glob("*/*.ipynb"))
    pages = [p.relative_to(Path(root) / "docs").with_suffix("").as_posix() for p in guides(root)]
    first = ["learners", "instructors", "jupyterhub", "threat-model"]  # the guides in a reader's order
    others = [p for p in first if p in pages] + [p for p in pages if p not in first and p != "index"
                                                 and not p.startswith("workshop/")]
    workshop = sorted((p for p in pages if p.startswith("workshop/")), key=lambda p: p != "workshop/index")

    def toctree(caption, entries):
        return "\n```{toctree}\n:hidden:\n:caption: " + caption + "\n\n" + "\n".join(entries) + "\n```\n"

    # the site's navigation, kept out of docs/index.md so that it reads as plain Markdown in the repository
    index = Path(src) / "docs" / "index.md"
    index.write_text(index.read_text() + toctree("Lessons", [f"../{p}" for p in lessons])
                     + toctree("Reference", [f"../course/{Path(s).stem}" for s in SHEETS])
                     + toctree("Guides", others + workshop))
    return lessons


def sphinx(src, out):
    subprocess.run([sys.executable, "-m", "sphinx", "-b", "html", "-q", "-W", "--keep-going", "-j", "1",
                    "-c", str(HERE), "-d", str(Path(src).parent / "doctrees"), str(src), str(out)], check=True)
    # the site's address opens its home page
    (Path(out) / "index.html").write_text(
        '<!DOCTYPE html>\n<meta charset="utf-8">\n<title>BatchNorm from scratch</title>\n'
        '<meta http-equiv="refresh" content="0; url=docs/index.html">\n'
        '<a href="docs/index.html">BatchNorm from scratch</a>\n')


# ------------------------------------------------------------------ the audit

CODE = re.compile(r"<pre[^>]*>(.*?)</pre>", re.S)


def page_code(text):
    """The code blocks of an HTML page, as plain text."""
    return [html.unescape(re.sub(r"<[^>]+>", "", block)) for block in CODE.findall(text)]


def audit(site, root=REPO):
    """What in the built site must not be published: the student edition's audit (markers of
    solutions and hidden tests in every text file, notebooks' outputs, the hidden reference's
    functions and imports of the grader in every notebook), plus the same checks on the code
    blocks of every HTML page and the markers in the search index and scripts."""
    edition = _tool("student_edition")
    site = Path(site)
    problems = [p for p in edition.audit(site, root)
                if not any(p == f"{name}: {marker!r}" for marker, names in ALLOWED.items() for name in names)]
    answers = edition.reference_bodies(root)
    forbidden = {"autograder"} | {f"bncourse.{Path(m).stem}" for m in edition.GRADING_ONLY}
    for path in sorted(site.rglob("*")):
        name = path.relative_to(site).as_posix()
        if path.suffix == ".js" and path.is_file():
            text = path.read_text(errors="replace")
            problems += [f"{name}: {m!r}" for m in edition.MARKERS if m in text and name not in ALLOWED.get(m, ())]
        if path.suffix != ".html":
            continue
        text = path.read_text(errors="replace")
        # the text as read: a marker in inline code is split into one <span> per word
        words = " ".join(html.unescape(re.sub(r"<[^>]+>", " ", text)).split())
        problems += [f"{name}: {m!r} in its text" for m in edition.MARKERS
                     if m in words and name not in ALLOWED.get(m, ())]
        for block in page_code(text):
            try:
                tree = edition.ast.parse(block)
            except SyntaxError:
                continue  # a shell command or output, not Python
            problems += [f"{name}: {node.name} is the hidden reference's {answers[edition._body(node)]}"
                         for node in edition.ast.walk(tree)
                         if isinstance(node, edition.ast.FunctionDef) and edition._body(node) in answers]
            problems += [f"{name}: a code block imports {n}" for n in sorted(edition._imports(tree))
                         if any(n == f or n.startswith(f + ".") for f in forbidden)]
    return problems


def build(out, root=REPO):
    out = Path(out).resolve()
    edition = _tool("student_edition")
    with tempfile.TemporaryDirectory(prefix="bncourse-site-") as tmp:
        edition.build(Path(tmp) / "edition", root)  # raises when the edition would leak
        src = Path(tmp) / "src"
        lessons = source_tree(Path(tmp) / "edition", src, root)
        if out.exists():
            shutil.rmtree(out)
        sphinx(src, out)
    problems = audit(out, root)
    if problems:
        raise edition.EditionError("the site holds what learners must not get:\n  " + "\n  ".join(problems))
    return lessons


def main(argv):
    if len(argv) > 1:
        print(__doc__.split("\n\n")[1], file=sys.stderr)
        return 2
    out = Path(argv[0] if argv else REPO / "build" / "site")
    try:
        lessons = build(out)
    except subprocess.CalledProcessError as error:
        print(f"error: sphinx failed ({error.returncode}): see its messages above", file=sys.stderr)
        return 1
    except Exception as error:
        if type(error).__name__ != "EditionError":
            raise
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(f"site in {out}: {len(lessons)} lessons from the student edition, audited; open {out / 'index.html'}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
