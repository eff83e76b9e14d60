"""Sphinx's maths as MathML, written at build time by latex2mathml (the converter the feedback page
uses: autograder/feedback.py), so a page shows its formulas offline with no MathJax and no script.
Registered as the HTML math renderer "mathml" (conf.py: html_math_renderer)."""
from docutils import nodes

from autograder.feedback import tex_to_mathml


def visit_math(self, node):
    self.body.append(tex_to_mathml(node.astext(), "inline"))
    raise nodes.SkipNode


def visit_displaymath(self, node):
    self.body.append(f'<div class="math-display">{tex_to_mathml(node.astext(), "block")}</div>')
    raise nodes.SkipNode


def setup(app):
    app.add_html_math_renderer("mathml", (visit_math, None), (visit_displaymath, None))
    return {"parallel_read_safe": True, "parallel_write_safe": True}
