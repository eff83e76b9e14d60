"""Demonstration cells: the lesson's experiments, plots and timings, which decide no grade.

The instructor tags them in solutions/ with the ordinary cell tag `demonstration`; the
release keeps the tag, so learners run everything. While grading, a submission's cell is
left out only when it is the handed-out cell itself: the same nbgrader cell id (grade_id) as
a tagged cell of the *instructor's* notebook and exactly its source. Tags in a submission
count for nothing; a cell the learner edited, or a copy of a demonstration in a cell of the
learner's own, always runs; so does a cell the submission marks as an answer or a test
(running more is always safe). (The released demonstrations are locked cells: nbgrader puts
their source back before grading, so a learner's edit of one never reaches the grader.)
tests/test_demonstrations.py checks that no untagged cell of a lesson reads a name that only
a tagged cell defines, so nothing a graded piece, a check or a test needs is ever skipped.
"""
import ast
import base64
import binascii
import re
from pathlib import Path

import nbformat

from bncourse.runner import CELL_OUTPUT_BYTES, cap_outputs

TAG = "demonstration"


def is_tagged(cell):
    return cell.get("cell_type") == "code" and TAG in cell.get("metadata", {}).get("tags", [])


def from_source(source_dir, lesson):
    """{grade_id: source} of the tagged cells of the instructor's notebook of `lesson` in
    source_dir; {} when there is none."""
    if not source_dir:
        return {}
    path = Path(source_dir, lesson, f"{lesson}.ipynb")
    if not path.is_file():
        return {}
    nb = nbformat.read(path, as_version=4)
    return {c.metadata.nbgrader.grade_id: c.source for c in nb.cells
            if is_tagged(c) and c.source.strip() and c.get("metadata", {}).get("nbgrader", {}).get("grade_id")}


def to_skip(nb, tagged):
    """{index: grade_id} of the submission's cells that grading leaves out (see the module
    doc); tagged: from_source()."""
    skip = {}
    for index, cell in enumerate(nb.cells):
        meta = cell.get("metadata", {}).get("nbgrader", {})
        if cell.get("cell_type") != "code" or meta.get("solution") or meta.get("grade"):
            continue
        name = meta.get("grade_id")
        if name in tagged and name not in skip.values() and cell.get("source") == tagged[name]:
            skip[index] = name
    return skip


def defined_names(source):
    """Names a cell binds at its top level (assignments, imports, defs, loop and with targets,
    also inside if/try/for/with blocks); empty when it does not parse."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return set()
    found = set()

    def visit(statements):
        for node in statements:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                found.add(node.name)
                continue
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                found.update((a.asname or a.name).split(".")[0] for a in node.names)
                continue
            bodies = [getattr(node, f, []) for f in ("body", "orelse", "finalbody", "handlers")]
            if any(bodies):  # a block: its header here (loop and with targets), its body below
                heads = [getattr(node, "target", None)] + [i.optional_vars for i in getattr(node, "items", [])]
                heads += [ast.Name(id=h.name, ctx=ast.Store()) for h in getattr(node, "handlers", []) if h.name]
            else:
                heads = [node]
            for head in filter(None, heads):
                found.update(n.id for n in ast.walk(head) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store))
            for body in bodies:
                visit(body)

    visit(tree.body)
    return found


def used_names(source):
    """The global names a cell reads: at its top level, or inside the functions and classes it
    defines (less their parameters and locals); None when it does not parse (then it may use
    anything)."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return None

    def reads(node):
        found = set()
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                a = child.args
                local = {x.arg for x in a.posonlyargs + a.args + a.kwonlyargs + [a.vararg, a.kwarg] if x}
                local |= {n.id for n in ast.walk(child) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)}
                found |= reads(child) - local
                found |= {n.id for d in getattr(child, "decorator_list", []) for n in ast.walk(d)
                          if isinstance(n, ast.Name)}
            elif isinstance(child, ast.Name) and isinstance(child.ctx, ast.Load):
                found.add(child.id)
            else:
                found |= reads(child)
        return found

    return reads(tree)


_NAME_ERROR = re.compile(r"^(.*?) raised NameError: name '([^']+)' is not defined")


def blame(answers, names):
    """Reword the recorded errors of a learner's function that failed for want of a global only
    a skipped cell defines (`names`): the learner is told why, not handed a bare NameError."""
    for answer in answers or []:
        if not answer.error or answer.error[0] != "raised":
            continue
        found = _NAME_ERROR.match(answer.error[1])
        if found and found.group(2) in names:
            fn, name = found.groups()
            answer.error = (KIND, f"{fn} uses `{name}`, defined in a demonstration cell that is not "
                                  "run while grading; define it inside your function or in your own cell")


KIND = "demonstration"  # the failure kind of such an error (a plain message: nothing to diagnose)


def own_outputs(submitted, skip):
    """{index: outputs} for the skipped cells: what each showed on the learner's own run, read
    from their handed-in notebook (`submitted`, a path; it is only read), found by grade_id.
    Kept for their feedback (a skipped plot still shows their figure), filtered by shown()."""
    try:
        cells = nbformat.read(submitted, as_version=4).cells
    except Exception:  # unreadable: the grader has already graded what it could read
        return {}
    by_id = {c.get("metadata", {}).get("nbgrader", {}).get("grade_id"): c for c in cells
             if c.get("cell_type") == "code"}
    return {index: shown(by_id[name].get("outputs", [])) for index, name in skip.items() if name in by_id}


_PNG = re.compile(r"^[A-Za-z0-9+/=\s]*$")


def shown(outputs, limit=CELL_OUTPUT_BYTES):
    """Of a submission's outputs, what a feedback page may show: printed text, plain-text
    results and PNG figures (valid base64), nothing that could run or load in a reader's browser
    (HTML, JavaScript, SVG), capped at `limit` bytes as the runner caps a cell it ran."""
    kept = []
    for output in outputs:
        kind = output.get("output_type")
        if kind == "stream" and isinstance(output.get("text"), str):
            new = nbformat.v4.new_output("stream", name="stdout", text=output["text"])
        elif kind in ("display_data", "execute_result"):
            data = {k: v for k, v in output.get("data", {}).items()
                    if (k == "text/plain" and isinstance(v, str)) or (k == "image/png" and _is_png(v))}
            if not data:
                continue
            new = nbformat.v4.new_output("display_data", data=data)
        else:
            continue
        kept.append(new)
    return cap_outputs(kept, limit)


def _is_png(value):
    if not isinstance(value, str) or not _PNG.match(value):
        return False
    try:
        return base64.b64decode(value, validate=False)[:8] == b"\x89PNG\r\n\x1a\n"
    except (binascii.Error, ValueError):
        return False
