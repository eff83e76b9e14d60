"""The feedback page a learner opens (nbgrader generate_feedback, configured in settings.py).

nbgrader's own page loads MathJax from a CDN, titles every test "Test cell" and leaves the
failure box unwrapped. Here the page is complete offline and leaves the grader's machine with
nothing pointing back into it:

- FeedbackExporter: nbconvert's HTML exporter whose markdown renders the maths as MathML
  (latex2mathml, at grading time), which the browser draws itself: no script, no font, no
  network. The template (autograder/templates/bnfeedback) drops MathJax, titles each test by
  its piece, wraps messages and draws folds (<details>) as folds.
- FeedbackSummary (a GenerateFeedback preprocessor, after PrivateFeedback): the table at the top,
  one row per graded piece from the gradebook: points, and "correct" or the named mistake.

Figures are the learner's own run's: the sandbox runs the kernel with the inline backend
(autograder/sandbox.py), so the autograded notebook holds image/png outputs, which nbconvert
embeds as data URIs.
"""
import html
import re
from pathlib import Path

from jinja2 import pass_context
from nbconvert.exporters import HTMLExporter
from nbconvert.filters.markdown_mistune import IPythonRenderer, MarkdownWithMath
from nbgrader.preprocessors import NbGraderPreprocessor

from autograder.reports import load_report
from autograder.submissions import tested_piece

TEMPLATES = Path(__file__).parent / "templates"
TEMPLATE = "bnfeedback"
MISTAKE = "Likely mistake:"


def tex_to_mathml(tex, display):
    """MathML for one formula, or the TeX in a <code> box when the converter cannot read it
    (seen, never silently dropped)."""
    from latex2mathml.converter import convert
    try:
        return convert(tex.strip(), display=display)
    except Exception:
        return f'<code class="tex">{html.escape(tex)}</code>'


class MathMLRenderer(IPythonRenderer):
    """nbconvert's markdown renderer, with each formula pre-rendered to MathML."""

    def block_math(self, body):
        return tex_to_mathml(body, "block")

    def inline_math(self, body):
        return tex_to_mathml(body, "inline")

    def latex_environment(self, name, body):
        return tex_to_mathml(f"\\begin{{{name}}}{body}\\end{{{name}}}", "block")


def markdown_to_html(source, **renderer_options):
    return MarkdownWithMath(renderer=MathMLRenderer(escape=False, **renderer_options)).render(source)


class MathMLMarkdown:
    """For an nbconvert exporter: markdown cells rendered with their maths as MathML (the feedback
    page here; the slides, tools/slides.py)."""

    @pass_context  # as HTMLExporter's own: the cell's attachments come from the template's context
    def markdown2html(self, context, source):
        cell = context.get("cell", {})
        return markdown_to_html(source, attachments=cell.get("attachments", {}),
                                embed_images=self.embed_images,
                                path=context.get("resources", {}).get("metadata", {}).get("path", ""),
                                anchor_link_text=self.anchor_link_text,
                                exclude_anchor_links=self.exclude_anchor_links, **self.lexer_options)


class FeedbackExporter(MathMLMarkdown, HTMLExporter):
    """HTMLExporter whose markdown carries its maths as MathML (see the module's docstring)."""


def verdict_line(cell):
    """What the summary says of a test cell: "correct", or its mistake in one line (the named
    misconception when the grader found one, else the failure's first line)."""
    for out in cell.get("outputs", []):
        if out.get("output_type") == "error":
            message = str(out.get("evalue", "")).strip()
            if MISTAKE in message:
                return message[message.index(MISTAKE):].splitlines()[0]
            if not message:
                return out.get("ename", "failed")
            line, piece = message.splitlines()[0], tested_piece(cell)
            # "piece (hidden tests, ...): what is wrong": the table's first column names the piece
            said = re.match(rf"{re.escape(piece)} \([^)]*\): (?=.)", line) if piece else None
            return line[said.end():] if said else line
    return "correct"


def _named_mistakes(info):
    """{piece: "Likely mistake: ..."} from the verdicts the grader stored as data beside the
    gradebook (autograder.reports; the mistake's id, its words from the catalogue); {} where
    there are none (feedback of a notebook graded before they were kept)."""
    from bncourse.misconceptions import CATALOGUE
    workspace = Path(info["db_url"].replace("sqlite:///", "")).parent
    stored = load_report(workspace, info["student"], info["assignment"]).get("verdicts", {})
    found = {}
    for piece, verdict in stored.items():
        words = {m.name: m.message for m in CATALOGUE.get(piece, [])}.get((verdict or {}).get("mistake"))
        if words:
            found[piece] = f"{MISTAKE} {words}."
    return found


class FeedbackSummary(NbGraderPreprocessor):
    """resources["feedback_summary"]: [{piece, grade_id, score, points, verdict}] in notebook order,
    read from the gradebook (so a deleted test cell still has its row, at 0); the mistake named by
    the verdicts stored as data (_named_mistakes), else the test cell's message (verdict_line)."""

    def preprocess(self, nb, resources):
        from nbgrader.api import Gradebook, MissingEntry
        info = resources["nbgrader"]
        cells = {c.metadata.nbgrader.grade_id: c for c in nb.cells if tested_piece(c)}
        named = _named_mistakes(info)
        rows = []
        with Gradebook(info["db_url"]) as gb:
            try:
                submitted = gb.find_submission_notebook(info["notebook"], info["assignment"], info["student"])
            except MissingEntry:
                resources["feedback_summary"] = []
                return nb, resources
            grades = {g.name: g for g in submitted.grades}
            order = [c.name for c in gb.find_notebook(info["notebook"], info["assignment"]).grade_cells]
            for grade_id in order:
                grade = grades.get(grade_id)
                if grade is None or not grade_id.startswith("test_"):
                    continue
                cell = cells.get(grade_id)
                verdict = (named.get(grade_id[len("test_"):]) or verdict_line(cell) if cell is not None
                           else "this test cell was deleted from the notebook")
                score = grade.score or 0.0
                if verdict == "correct" and score < grade.max_score:
                    verdict = "not all points"  # (a manual grade below full marks)
                rows.append({"piece": grade_id[len("test_"):], "grade_id": grade_id, "score": score,
                             "points": grade.max_score, "verdict": verdict,
                             "passed": verdict == "correct"})
        position = {c.metadata.nbgrader.grade_id: i for i, c in enumerate(nb.cells) if tested_piece(c)}
        rows.sort(key=lambda r: position.get(r["grade_id"], len(nb.cells)))
        resources["feedback_summary"] = rows
        return nb, resources


def configure(c):
    """Point nbgrader's GenerateFeedback at this page (called by autograder.settings.configure)."""
    import nbgrader
    formgrader = Path(nbgrader.__file__).parent / "server_extensions" / "formgrader"
    c.GenerateFeedback.exporter_class = FeedbackExporter
    c.FeedbackExporter.template_name = TEMPLATE
    # ours first (its mathjax.html.j2 replaces nbconvert's CDN loader), then nbgrader's feedback page
    c.FeedbackExporter.extra_template_basedirs = [str(TEMPLATES), str(formgrader / "templates")]
    # where ours finds nbgrader's page to extend (feedback/index.html.j2) and, as nbgrader sets
    # for its own page, the Bootstrap CSS that page inlines
    c.FeedbackExporter.extra_template_paths = [
        str(formgrader / "templates"), str(formgrader / "static" / "node_modules" / "bootstrap" / "dist" / "css")]
