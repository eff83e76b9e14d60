"""The student edition (`make student-edition DEST=...`, tools/student_edition.py) holds what
learners get and nothing of the grader's, installs, and its lessons and `make check` run.

The edition is built into a temporary folder and scanned here with this file's own code (the
build's audit is not trusted): no solution or hidden-test region, no line of a hidden test, no
body of autograder/reference.py's functions, no autograder/ or solutions/, no grading module,
and its package files are the repository's byte for byte (so tests/test_no_answers.py's
behavioural scan of bncourse/ covers them). Planted leaks prove the scan fails.

Install, as tests/test_install.py does it honestly: a fresh virtual environment without system
site packages at the edition's .venv/, the dependencies (torch, numpy, jupyter, ...) made
importable through one .pth line after its own site-packages (no network here), and the
edition's own `make install` run with pip's configuration files and PIP_* variables off, no
index at all: it installs the package non-editably; `bncourse.__file__` must lie in that
environment and `autograder` must not import. Each lesson then runs in that environment's kernel
from a folder outside both, and stops at its first graded cell, "not implemented yet". `make
check` reports untouched lessons as not implemented, a lesson filled in from solutions/ as
passing, and a wrong answer as failing (exit status 1).
"""
import ast
import functools
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest

from autograder import reference
from autograder.settings import REPO
from tests.fresh_env import clean_env, fresh_venv

pytestmark = pytest.mark.install

BUILD = REPO / "tools" / "student_edition.py"
MARKERS = ("BEGIN SOLUTION", "END SOLUTION", "BEGIN HIDDEN TESTS", "END HIDDEN TESTS",
           "BEGIN MARK SCHEME", "END MARK SCHEME")
GRADING_MODULES = {"answers.py", "runner.py"}  # bncourse's grading-only modules
# reference helpers that answer nothing (bncourse.rounding.f64 is the same conversion)
NOT_ANSWERS = {"_f64": "np.asarray(a, dtype=np.float64)"}


def run(args, ok=True, **kwargs):
    kwargs.setdefault("env", clean_env())
    out = subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=600, **kwargs)
    if ok:
        assert out.returncode == 0, f"{args}\n{out.stdout}\n{out.stderr}"
    return out


def build(dest):
    return run([sys.executable, BUILD, dest])


@pytest.fixture(scope="module")
def edition(tmp_path_factory):
    sources = [p for top in ("course", "bncourse", "binder") for p in (REPO / top).rglob("*") if p.is_file()]
    sources += [REPO / n for n in ("pyproject.toml", "LICENSE", "LICENSE-content.md", "tools/torch_index.py")]
    before = {p: (p.stat().st_mtime_ns, p.stat().st_size) for p in sources}
    dest = tmp_path_factory.mktemp("edition") / "batchnorm-from-scratch"
    start = time.perf_counter()
    build(dest)
    print(f"edition built in {time.perf_counter() - start:.1f} s")
    changed = [p for p in sources if (p.stat().st_mtime_ns, p.stat().st_size) != before[p]]
    assert not changed, f"the build changed the repository: {changed}"
    return dest


# ------------------------------------------------------------------ what must not be in it

@functools.cache
def hidden_test_lines():
    """Every line inside a hidden-test region of solutions/, stripped ({lesson: {line}})."""
    found = {}
    for path in sorted((REPO / "solutions").glob("*/*.ipynb")):
        for cell in nbformat.read(path, as_version=4).cells:
            for region in re.findall(r"### BEGIN HIDDEN TESTS\n(.*?)### END HIDDEN TESTS", cell.source, re.S):
                found.setdefault(path.parent.name, set()).update(s.strip() for s in region.splitlines() if s.strip())
    return found


def _body(node):
    body = node.body[1:] if ast.get_docstring(node) is not None else node.body
    return ast.dump(ast.Module(body=body, type_ignores=[]))


@functools.cache
def reference_bodies():
    """{name: (AST of the body, its source without blanks)} of autograder/reference.py's functions."""
    source = Path(reference.__file__).read_text()
    bodies = {}
    for node in ast.parse(source).body:
        if isinstance(node, ast.FunctionDef) and node.name not in NOT_ANSWERS:
            body = node.body[1:] if ast.get_docstring(node) is not None else node.body
            text = "\n".join(ast.get_source_segment(source, b) for b in body)
            bodies[node.name] = (_body(node), re.sub(r"\s+", "", text))
    return bodies


def python_sources(dest):
    """[(name, source)]: the edition's Python files and its notebooks' code cells."""
    for path in sorted(dest.rglob("*")):
        name = path.relative_to(dest).as_posix()
        if path.suffix == ".py":
            yield name, path.read_text()
        elif path.suffix == ".ipynb":
            for i, cell in enumerate(nbformat.read(path, as_version=4).cells):
                if cell.cell_type == "code":
                    yield f"{name} cell {i}", cell.source


def leaks(dest):
    """What in the edition at `dest` learners must not get."""
    dest = Path(dest)
    found = [f"{top}/" for top in ("autograder", "solutions") if (dest / top).exists()]
    found += [f"bncourse/{m}" for m in GRADING_MODULES if (dest / "bncourse" / m).exists()]
    suffixes = (".py", ".ipynb", ".md", ".html", ".toml", ".txt", "")
    texts = {p.relative_to(dest).as_posix(): p.read_text(errors="replace")
             for p in dest.rglob("*") if p.is_file() and p.suffix in suffixes}
    found += [f"{name}: {m}" for name, text in texts.items() for m in MARKERS if m in text]
    found += [f"{name}: record_answers" for name, text in texts.items() if "record_answers" in text]
    hidden = hidden_test_lines()
    for path in dest.glob("course/*/*.ipynb"):
        code = "\n".join(c.source for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code")
        found += [f"{path.name}: hidden test line {line!r}" for line in hidden.get(path.parent.name, ())
                  if line in code]
    bodies = reference_bodies()
    flat = {name: re.sub(r"\s+", "", text) for name, text in texts.items()}
    for name, (_, text) in bodies.items():
        found += [f"{where}: the reference's {name}" for where, t in flat.items() if text and text in t]
    dumps = {dump: name for name, (dump, _) in bodies.items()}
    for where, source in python_sources(dest):
        try:
            tree = ast.parse(source)
        except SyntaxError:
            continue
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and _body(node) in dumps:
                found.append(f"{where}: {node.name} is the reference's {dumps[_body(node)]}")
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                    [node.module or ""] + [f"{node.module}.{a.name}" for a in node.names]
                found += [f"{where}: imports {n}" for n in names if n.split(".")[0] == "autograder"
                          or n in {f"bncourse.{Path(m).stem}" for m in GRADING_MODULES}]
    return found


def test_the_scan_has_something_to_find():
    """Non-vacuous: hidden tests in every lesson, the reference's functions, markers in solutions/."""
    assert set(hidden_test_lines()) == {p.parent.name for p in (REPO / "solutions").glob("*/*.ipynb")}
    assert len(reference_bodies()) >= 20
    assert leaks(REPO / "solutions") and any("BEGIN SOLUTION" in f for f in leaks(REPO / "solutions"))


def test_the_edition_holds_no_solution_hidden_test_reference_or_grader(edition):
    assert leaks(edition) == []
    assert {p.name for p in edition.iterdir()} >= {"course", "bncourse", "datasets", "README.md", "LICENSE",
                                                    "LICENSE-content.md", "pyproject.toml", "Makefile", "tools"}
    assert not (edition / "autograder").exists() and not (edition / "solutions").exists()


def test_its_package_is_the_repositorys_minus_the_grading_modules(edition):
    """Byte for byte, so what tests/test_no_answers.py and test_probe_data.py prove of bncourse/
    holds for the edition's copy; the only files left out are the grading modules. The data is
    at the top, datasets/, as in the repository, all of it and nothing else."""
    def files(root, top="bncourse"):
        return {p.relative_to(root).as_posix(): p.read_bytes() for p in (root / top).rglob("*")
                if p.is_file() and "__pycache__" not in p.parts}
    ours, theirs = files(REPO), files(edition)
    assert set(ours) - set(theirs) == {f"bncourse/{m}" for m in GRADING_MODULES}
    assert all(theirs[name] == ours[name] for name in theirs)
    assert files(edition, "datasets") == files(REPO, "datasets") and "datasets/digits.npz" in files(REPO, "datasets")
    assert not (edition / "bncourse" / "datasets").exists()
    for lesson in (REPO / "course").glob("*/*.ipynb"):
        assert (edition / lesson.relative_to(REPO)).read_bytes() == lesson.read_bytes()


def test_its_pyproject_has_the_learner_package_only(edition):
    import tomllib
    theirs = tomllib.loads((edition / "pyproject.toml").read_text())
    ours = tomllib.loads((REPO / "pyproject.toml").read_text())
    setuptools = theirs["tool"]["setuptools"]
    learner = [p for p in ours["tool"]["setuptools"]["packages"] if p.split(".")[0] == "bncourse"]
    assert setuptools["packages"] == learner
    assert "bncourse.datasets" in setuptools["packages"] and "autograder" not in setuptools["packages"]
    assert setuptools["package-dir"] == {"bncourse.datasets": "datasets"}
    assert "entry-points" not in theirs["project"] and "optional-dependencies" not in theirs["project"]
    names = {re.split(r"[=<>]", p)[0] for p in theirs["project"]["dependencies"]}
    assert "nbgrader" not in names and "pytest" not in names and "torch" in names
    assert set(theirs["project"]["dependencies"]) <= set(ours["project"]["dependencies"])
    assert "autograder" not in (edition / "Makefile").read_text()


def test_its_readme_reads_the_public_url_and_names_the_commands(edition):
    """The clone line comes from the one config value (tools/public_url.py reads it)."""
    import importlib.util
    spec = importlib.util.spec_from_file_location("public_url", REPO / "tools" / "public_url.py")
    public_url = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(public_url)
    readme = (edition / "README.md").read_text()
    assert f"git clone {public_url.public_url(REPO)}\n" in readme
    assert all(f"`make {target}`" in readme for target in ("lab", "check", "doctor"))
    assert "LICENSE" in readme and "CC BY 4.0" in readme
    targets = set(re.findall(r"^([a-z-]+):", (edition / "Makefile").read_text(), re.M))
    assert {"install", "lab", "check", "doctor", "clean-venv"} <= targets and "grade-me" not in targets


@pytest.mark.parametrize("plant", ["solution", "hidden", "reference", "grader", "import"])
def test_a_planted_leak_is_found(edition, tmp_path, plant):
    """The scan (and the build's own audit) can fail: each kind of leak planted in a copy."""
    copy = tmp_path / "copy"
    build(copy)
    lesson = copy / "course" / "01_batch_statistics" / "01_batch_statistics.ipynb"
    nb = nbformat.read(lesson, as_version=4)
    if plant == "solution":
        nb.cells[-1].source += "\n### BEGIN SOLUTION\n### END SOLUTION"
    elif plant == "hidden":
        nb.cells.append(nbformat.v4.new_code_cell('record_answers("batch_mean", batch_mean)'))
    elif plant == "reference":
        body = ast.get_source_segment(Path(reference.__file__).read_text(), next(
            n for n in ast.parse(Path(reference.__file__).read_text()).body
            if isinstance(n, ast.FunctionDef) and n.name == "batch_variance"))
        (copy / "bncourse" / "extra.py").write_text(body.replace("batch_variance", "helper") + "\n")
    elif plant == "grader":
        (copy / "bncourse" / "runner.py").write_text("")
    else:
        (copy / "bncourse" / "extra.py").write_text("from autograder import hidden\n")
    nbformat.write(nb, lesson)
    assert leaks(copy), plant
    sys.path.insert(0, str(BUILD.parent))
    try:
        import student_edition
    finally:
        sys.path.remove(str(BUILD.parent))
    assert student_edition.audit(copy), plant


def test_a_rebuild_replaces_its_files_only_and_it_stays_out_of_the_repository(tmp_path):
    dest = tmp_path / "edition"
    build(dest)
    (dest / "my_course").mkdir()
    (dest / "my_course" / "mine.ipynb").write_text("my answers")
    (dest / ".git").mkdir()
    (dest / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    (dest / "course" / "99_old").mkdir()
    (dest / "course" / "99_old" / "99_old.ipynb").write_text("{}")
    manifest = dest / ".student-edition-files"
    manifest.write_text(manifest.read_text() + "course/99_old/99_old.ipynb\n")  # as an earlier build's
    build(dest)
    assert (dest / "my_course" / "mine.ipynb").read_text() == "my answers"
    assert (dest / ".git" / "HEAD").is_file() and not (dest / "course" / "99_old").exists()
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("x")
    refused = run([sys.executable, BUILD, other], ok=False)
    assert refused.returncode == 1 and "not empty" in refused.stderr
    assert sorted(other.iterdir()) == [other / "notes.txt"]
    inside = REPO / "grading" / "student-edition-test"
    refused = run([sys.executable, BUILD, inside], ok=False)
    assert refused.returncode == 1 and "outside the repository" in refused.stderr and not inside.exists()


# ------------------------------------------------------------------ it installs and runs

@pytest.fixture(scope="module")
def installed(edition, tmp_path_factory):
    """The edition's `make install` into a fresh .venv (dependencies through one .pth line)."""
    start = time.perf_counter()
    venv = edition / ".venv"
    python = fresh_venv(venv)
    env = clean_env(PIP_CONFIG_FILE=os.devnull, PIP_NO_INDEX="1", PIP_NO_BUILD_ISOLATION="0",
                    PIP_DISABLE_PIP_VERSION_CHECK="1")
    out = run(["make", "-C", edition, "install"], env=env)
    assert "pip install --quiet ." in out.stdout and "tools/torch_index.py" in out.stdout
    elsewhere = tmp_path_factory.mktemp("elsewhere")
    print(f"edition installed in {time.perf_counter() - start:.1f} s")
    return python, venv, elsewhere


def test_the_installed_package_is_the_editions_and_holds_no_grader(installed):
    python, venv, elsewhere = installed
    code = ("import bncourse, importlib.util as u; print(bncourse.__file__); "
            "print(u.find_spec('autograder'), u.find_spec('bncourse.answers'), u.find_spec('bncourse.runner')); "
            "from bncourse import data; print(data.verify())")
    where, missing, digits = run([python, "-c", code], cwd=elsewhere).stdout.splitlines()
    assert Path(where).is_relative_to(venv) and "site-packages" in where, where
    assert missing == "None None None"
    # the edition's datasets/ went into the installed package, where importlib.resources finds it
    assert Path(digits) == Path(where).parent / "datasets" / "digits.npz", digits


def test_every_lesson_runs_to_its_first_unimplemented_piece(edition, installed):
    """Each lesson in a kernel of the edition's environment, from a folder outside both:
    everything before its first graded cell runs, that cell says "not implemented yet"."""
    python, venv, elsewhere = installed
    lessons = sorted((edition / "course").glob("*/*.ipynb"))
    assert len(lessons) >= 8
    runner = f"""
import asyncio, json, nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

async def lesson(path, slots):
    nb = nbformat.read(path, as_version=4)
    nb.cells.insert(0, nbformat.v4.new_code_cell("import sys, bncourse\\nprint(sys.executable, bncourse.__file__)"))
    async with slots:
        try:
            await NotebookClient(nb, timeout=300, kernel_name="python3", resources={{"metadata": {{"path": "."}}}},
                                 extra_arguments=["--IPKernelApp.log_level=ERROR"]).async_execute()
            stopped, error = None, None
        except CellExecutionError as e:
            stopped = next(i for i, c in enumerate(nb.cells)
                           if any(o.output_type == "error" for o in c.get("outputs", [])))
            error = str(e).strip().splitlines()[-1]
    graded = [i for i, c in enumerate(nb.cells) if c.get("metadata", {{}}).get("nbgrader", {{}}).get("grade")]
    print(json.dumps({{"lesson": path, "first": nb.cells[0].outputs[0]["text"].split(), "stopped": stopped,
                      "graded": graded, "error": error}}), flush=True)

async def main():
    slots = asyncio.Semaphore(2)  # two kernels at a time
    await asyncio.gather(*(lesson(p, slots) for p in {[str(p) for p in lessons]!r}))

asyncio.run(main())
"""
    out = run([python, "-c", runner], cwd=elsewhere).stdout
    results = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    assert len(results) == len(lessons)
    for r in results:
        executable, package = r["first"]
        assert Path(executable).parent.parent == venv and Path(package).is_relative_to(venv), r
        assert r["stopped"] == r["graded"][0], r  # nothing before the first graded cell failed
        assert "is not implemented yet" in r["error"], r


def solution_filled(lesson_path, solutions=REPO / "solutions", wrong=None):
    """The lesson notebook with each solution cell replaced by the model solution's code
    (nbgrader's markers dropped); `wrong`: {grade_id: source} to use instead."""
    lesson = lesson_path.parent.name
    model = {c.metadata["nbgrader"]["grade_id"]: c.source
             for c in nbformat.read(solutions / lesson / f"{lesson}.ipynb", as_version=4).cells
             if c.metadata.get("nbgrader", {}).get("solution")}
    nb = nbformat.read(lesson_path, as_version=4)
    filled = 0
    for cell in nb.cells:
        grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
        if cell.metadata.get("nbgrader", {}).get("solution") and cell.cell_type == "code":
            source = (wrong or {}).get(grade_id, model[grade_id])
            cell.source = "\n".join(s for s in source.splitlines() if "### BEGIN SOLUTION" not in s
                                    and "### END SOLUTION" not in s)
            filled += 1
    assert filled
    nbformat.write(nb, lesson_path)


def make_check(edition, *lessons):
    return run(["make", "-C", edition, "--no-print-directory", "check", f"LESSON={' '.join(lessons)}"], ok=False)


def checks_of(lesson):
    return [c.metadata["nbgrader"]["grade_id"].removeprefix("test_")
            for c in nbformat.read(REPO / "course" / lesson / f"{lesson}.ipynb", as_version=4).cells
            if c.metadata.get("nbgrader", {}).get("grade")]


def test_make_check_reports_untouched_filled_and_wrong_lessons(edition, installed):
    """Two untouched lessons; then the first filled in from solutions/; then one piece wrong."""
    first, second = "01_batch_statistics", "02_normalise_and_scale"
    out = make_check(edition, "01", "02")  # creates my_course/
    assert out.returncode == 0, out.stdout + out.stderr
    todo = checks_of(first) + checks_of(second)
    for piece in todo:
        assert f"· {piece}: not implemented yet" in out.stdout, out.stdout
    assert f"Summary: 0 passed, 0 failed, {len(todo)} not implemented yet" in out.stdout

    notebook = edition / "my_course" / first / f"{first}.ipynb"
    solution_filled(notebook)
    out = make_check(edition, "01")
    assert out.returncode == 0, out.stdout + out.stderr
    pieces = checks_of(first)
    assert f"{first}: {len(pieces)} of {len(pieces)} passed" in out.stdout, out.stdout
    assert all(f"✓ {piece}" in out.stdout for piece in pieces), out.stdout
    assert f"Summary: {len(pieces)} passed, 0 failed, 0 not implemented yet" in out.stdout
    assert all(c.get("outputs", []) == [] for c in nbformat.read(notebook, as_version=4).cells
               if c.cell_type == "code")  # the learner's notebook is read, not written

    wrong = "def batch_variance(x):\n    return x.var(axis=0, ddof=1)\n"
    solution_filled(notebook, wrong={"batch_variance": wrong})
    out = make_check(edition, "01")
    assert out.returncode != 0, out.stdout + out.stderr
    assert "✓ batch_mean" in out.stdout and "✗ batch_variance: Likely mistake: you divided by N-1" in out.stdout
    assert f"Summary: {len(pieces) - 1} passed, 1 failed, 0 not implemented yet" in out.stdout


def test_the_doctor_speaks_of_bubblewrap_only_where_the_grader_is(monkeypatch):
    """`make doctor` in the edition: bubblewrap (and `make grade-demo`) is the instructor's business."""
    import importlib.metadata
    import io

    from bncourse import doctor
    assert doctor.grading_installed()  # this repository's package registers the grader
    shown = {}
    for grader in (True, False):
        monkeypatch.setattr(importlib.metadata, "entry_points", lambda group, g=grader: ["grader"] if g else [])
        monkeypatch.setattr(doctor, "start_kernel", lambda name: None)
        monkeypatch.setattr(doctor, "check_kernel", lambda kernel, name: doctor.Line("ok", "kernel (not started)"))
        out = io.StringIO()
        doctor.main([], out=out)
        shown[grader] = "bubblewrap" in out.getvalue()
    assert shown == {True: True, False: False}
