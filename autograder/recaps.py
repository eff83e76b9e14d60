"""Which graded answers a lesson hands out, so that a release of several lessons can say so.

Each lesson restates what the lessons before it built (its recap), so that a slip in lesson 02
costs nothing in lesson 03: lesson 03's recap holds a correct `batchnorm_forward`, lesson 02's
graded answer. Released together, lessons 02 and 03 hand out lesson 02's answers.

A lesson hands out another lesson's answers when a cell the learner does not write (no solution
region, no test cell) defines one of that lesson's graded pieces, or when one of its recap cells
(grade_id containing "recap") names that lesson, as lesson 05's recap does with lesson 03's
backward formula. Read from the source notebooks (solutions/), which release turns into course/.
"""
import ast
import re

import nbformat

from autograder.paths import SOURCE
from autograder.submissions import grade_id, lessons, notebook_path

LESSON_NAMES = re.compile(r"\blessons?\s+(\d\d(?:(?:\s*,\s*|\s+and\s+)\d\d)*)", re.IGNORECASE)


def _defined(source):
    """Names of the functions and classes a code cell defines (none if it is not plain Python)."""
    try:
        tree = ast.parse(source)
    except SyntaxError:  # IPython magics: such a cell defines no piece
        return set()
    return {n.name for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.ClassDef))}


def handed_out(lesson, source=SOURCE):
    """{other lesson: [what of it the notebook holds]}: the other lesson's graded pieces that the
    notebook's given cells define, or ["its recap's text"] where only a recap cell's words restate it."""
    from bncourse import pieces  # (the registry: which lesson each graded piece belongs to)

    known = lessons(source)
    if lesson not in known:
        raise ValueError(f"no lesson {lesson!r} in {source}: the lessons are {', '.join(known)}")
    by_number = {name[:2]: name for name in known}
    owner = {name: s.lesson for name, s in pieces.REGISTRY.items() if s.lesson != lesson and s.lesson in known}
    defined, named = {}, set()
    for cell in nbformat.read(notebook_path(lesson, source), as_version=4).cells:
        meta = cell.metadata.get("nbgrader", {})
        if meta.get("solution") or meta.get("grade"):  # the learner's own cells and the tests
            continue
        if cell.cell_type == "code":
            for name in sorted(_defined(cell.source) & owner.keys()):
                defined.setdefault(owner[name], []).append(name)
        if "recap" in (grade_id(cell) or "").lower():
            named |= {by_number[n] for group in LESSON_NAMES.findall(cell.source)
                      for n in re.findall(r"\d\d", group) if n in by_number and by_number[n] != lesson}
    return {other: defined.get(other, ["its recap's text"]) for other in sorted(named | defined.keys())}


def leaks(released, source=SOURCE):
    """[(lesson, other lesson, what)] for each released lesson that hands out the graded answers
    of another lesson released with it."""
    return [(lesson, other, what) for lesson in sorted(released)
            for other, what in handed_out(lesson, source).items() if other in released]


def warning(released, source=SOURCE, whole_course=False):
    """The text to print when a release hands out graded answers, or "" when it does not. For the
    whole course (course/ as committed, for self-paced learners, where it is meant) one line."""
    found = leaks(released, source)
    if not found:
        return ""
    if whole_course:
        return (f"note: with every lesson in it, {len({lesson for lesson, _, _ in found})} lessons' recaps hand "
                "out earlier lessons' graded answers; for a graded class release one lesson at a time "
                "(python -m autograder release LESSON; docs/workshop/releasing.md)")
    lines = ["warning: these lessons, released together, hand out graded answers: each lesson restates "
             "earlier lessons' answers (its recap) so that it stands on its own"]
    for lesson, other, what in found:
        lines.append(f"  {lesson} hands out {other}'s answers ({', '.join(what)})")
    lines.append("For a graded class, release one lesson at a time, each after the previous one's deadline; "
                 "for an ungraded workshop this is fine (docs/workshop/releasing.md).")
    return "\n".join(lines)
