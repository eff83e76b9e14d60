"""Reading a submission's code for work that is not the learner's own.

Two kinds of finding, from the syntax tree of every code cell the learner wrote or changed:

- `forbidden`: an answer cell that reaches for torch's own normalisation (F.batch_norm,
  nn.BatchNorm1d, layer_norm, ...), the hidden reference (`autograder`) or the instructor's
  files (`solutions/`). That piece earns no points, and the feedback says why. (While
  grading, torch's normalisation kernels also refuse to run at all: bncourse.tripwire.)
- `flags`: code that reaches around the course's machinery (exec, dynamic getattr,
  sys.modules, patching a library's functions, exit tricks, IPython hooks...). These cost
  nothing by themselves (the answers are judged outside the notebook anyway) but are listed
  in grades.csv for a human to look at.

Comments and docstrings are not read: explaining BatchNorm in words is fine.
"""
import ast
import pkgutil
import re

import bncourse
from autograder.submissions import is_test_cell
from bncourse import pieces

TORCH_NORMALISATION = re.compile(
    r"^_?(native_)?batch_norm|^_?BatchNorm|^(instance|layer|group)_norm$|^(Instance|Layer|Group)Norm")
TORCH_IN_STRINGS = re.compile(r"batch_norm|BatchNorm\d|(instance|layer|group)_norm|(Instance|Layer|Group)Norm")
GRADER_FILES = re.compile(r"autograder|solutions[/\\]|reference\.py|gradebook")
SUSPICIOUS_CALLS = {"exec", "eval", "compile", "__import__", "globals", "vars", "setattr", "delattr",
                    "open", "breakpoint"}
SUSPICIOUS_NAMES = {"importlib", "gc", "ctypes", "inspect", "subprocess", "signal", "builtins",
                    "__builtins__", "__dict__", "__globals__", "__code__", "__closure__", "tripwire",
                    "answers", "record_answers", "set_custom_exc", "get_ipython", "_exit", "exit",
                    "modules", "library", "ops", "_C", "kill", "system", "fork", "environ"}


# The course's own modules compute with torch's kernels (stepping over the tripwire, as the
# course's code may): an answer must not lean on them, unless its spec allows one
# (Spec.allowed_helpers). These give no answers: the checks, plots, data, running a notebook.
OPEN_MODULES = {"checks", "plots", "data", "runner", "workspace", "doctor"}
COURSE_HELPERS = {m.name for m in pkgutil.iter_modules(bncourse.__path__)} - OPEN_MODULES
BARE_HELPER_NAMES = COURSE_HELPERS - {"training"}  # `training` is also a lesson 04 parameter


def course_helpers(tree, allowed=()):
    """Reasons an answer leans on the course's own helper modules (empty if it does not).
    allowed: helpers its spec lets it use."""
    helpers = COURSE_HELPERS - set(allowed)
    bare = BARE_HELPER_NAMES - set(allowed)
    reasons = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            module = getattr(node, "module", None) or ""
            names = [f"{module}.{a.name}" if module else a.name for a in node.names]
            for name in names:
                parts = name.split(".")
                if parts[0] == "bncourse" and set(parts[1:]) & helpers:
                    reasons.append(f"imports the course's own {name}")
        elif isinstance(node, ast.Attribute) and (node.attr in bare or _root_name(node) in helpers):
            reasons.append(f"uses the course's own helpers ({ast.unparse(node)[:40]})")
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load) and node.id in bare:
            reasons.append(f"uses the course's own {node.id} module")
    return _unique(reasons)


def _docstrings(tree):
    found = set()
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.Expr) \
                and isinstance(body[0].value, ast.Constant) and isinstance(body[0].value.value, str):
            found.add(id(body[0].value))
    return found


def _root_name(node):
    while isinstance(node, ast.Attribute):
        node = node.value
    return node.id if isinstance(node, ast.Name) else None


def read_cell(source, torch_banned=True, answer=None):
    """(forbidden reasons, flags) for one cell's code. answer: the spec of the piece an answer
    cell answers; it may not use the course's own helpers either (but those its spec allows)."""
    try:
        tree = ast.parse(_without_magics(source))
    except SyntaxError:
        return [], []
    docstrings = _docstrings(tree)
    forbidden, flags = (course_helpers(tree, answer.allowed_helpers) if answer else []), []
    imported_modules = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            module = getattr(node, "module", None) or ""
            for alias in node.names:
                full = f"{module}.{alias.name}" if module else alias.name
                imported_modules.add((alias.asname or alias.name).split(".")[0])
                if GRADER_FILES.search(full):
                    forbidden.append(f"imports {full} (the grader's own code)")
                if torch_banned and TORCH_NORMALISATION.search(alias.name.split(".")[-1]):
                    forbidden.append(f"imports torch's {alias.name}")
                if alias.name.split(".")[0] in SUSPICIOUS_NAMES or module.split(".")[0] in SUSPICIOUS_NAMES:
                    flags.append(f"imports {full}")
        elif isinstance(node, ast.Attribute):
            if torch_banned and TORCH_NORMALISATION.search(node.attr):
                forbidden.append(f"uses torch's {node.attr}")
            elif node.attr in SUSPICIOUS_NAMES and not (
                    node.attr == "modules" and _root_name(node) not in imported_modules | {"sys"}):
                flags.append(f"uses .{node.attr}")  # (model.modules() is a torch method, not sys.modules)
        elif isinstance(node, ast.Name) and node.id in SUSPICIOUS_NAMES:
            flags.append(f"uses {node.id}")
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            if node.func.id in SUSPICIOUS_CALLS:
                flags.append(f"calls {node.func.id}()")
            elif node.func.id == "getattr" and len(node.args) > 1 and not isinstance(node.args[1], ast.Constant):
                flags.append("calls getattr() with a computed name")
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
            if torch_banned and TORCH_IN_STRINGS.search(node.value) and not re.search(r"\s", node.value):
                # a name in a string reaches torch's layer by getattr; a message with spaces does not
                forbidden.append(f"names torch's {TORCH_IN_STRINGS.search(node.value).group(0)} in a string")
            if GRADER_FILES.search(node.value):
                forbidden.append(f"refers to the grader's files ({node.value[:40]!r})")
        elif isinstance(node, (ast.Assign, ast.AugAssign, ast.Delete)):
            targets = node.targets if isinstance(node, (ast.Assign, ast.Delete)) else [node.target]
            for target in targets:
                root = _root_name(target)
                if isinstance(target, ast.Attribute) and root and root in imported_modules | {
                        "np", "numpy", "torch", "checks", "bncourse", "sys", "os", "builtins"}:
                    flags.append(f"replaces {ast.unparse(target)}")
                if isinstance(target, ast.Name) and target.id in ("AssertionError", "Exception", "print"):
                    flags.append(f"replaces the built-in {target.id}")
    return _unique(forbidden), _unique(flags)


def _without_magics(source):
    """IPython magics and shell escapes are not Python: blank them (they are flagged apart)."""
    return "\n".join("" if line.lstrip().startswith(("%", "!")) else line for line in source.splitlines())


def _unique(items):
    return list(dict.fromkeys(items))


def read_notebook(cells, lesson, release_sources=(), answer_cells=None):
    """{piece: [forbidden reasons]} for answer cells, and [flags] for the whole notebook.

    cells: the submission's cells; release_sources: the code the learner was handed (cells
    left exactly as released are not the learner's); answer_cells: {grade_id: piece}."""
    lesson_bans = any(s.bans for s in pieces.of_lesson(lesson))  # for the cells that answer nothing
    answer_cells = answer_cells or {}
    forbidden, flags = {}, []
    released = set(release_sources)
    for index, cell in enumerate(cells):
        if cell.get("cell_type") != "code" or cell.get("source", "") in released:
            continue
        meta = cell.get("metadata", {}).get("nbgrader", {})
        if is_test_cell(cell):
            continue  # nbgrader restores test cells from the source before grading
        source = cell.get("source", "")
        piece = answer_cells.get(meta.get("grade_id")) if meta.get("solution") else None
        spec = pieces.spec(piece) if piece else None
        bad, odd = read_cell(source, bool(spec.bans) if spec else lesson_bans, answer=spec)
        odd += [f"a shell command or magic ({line.strip()[:30]})" for line in source.splitlines()
                if line.lstrip().startswith("!") or line.lstrip().startswith("%%")]
        if piece and bad:
            forbidden.setdefault(piece, []).extend(bad)
        elif bad:
            flags += [f"cell {index}: {reason}, outside the answer cells" for reason in bad]
        flags += [f"cell {index}: {reason}" for reason in odd]
    return forbidden, _unique(flags)
