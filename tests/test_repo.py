"""Repository invariants: one source for notebooks, pinned environment, learner copy safety."""
import filecmp
import json
import re
import tomllib

import nbformat
import pytest
import yaml

from autograder import grading, submissions
from autograder.settings import REPO
from bncourse import workspace

LESSONS = submissions.lessons()


def test_course_is_what_release_generates(tmp_path):
    """course/ must equal `python -m autograder release` output: no drift, no hand edits."""
    grading.release(out=tmp_path / "course")
    diff = filecmp.dircmp(REPO / "course", tmp_path / "course")
    stack, problems = [diff], []
    while stack:
        d = stack.pop()
        problems += [f"{d.left}: {x}" for x in d.left_only + d.right_only + d.diff_files + d.funny_files]
        stack += d.subdirs.values()
    assert not problems, "course/ is out of date: run `make release`\n" + "\n".join(problems)


@pytest.mark.parametrize("tree", ["solutions", "course"])
def test_notebooks_are_committed_without_outputs(tree):
    for path in (REPO / tree).rglob("*.ipynb"):
        for cell in json.loads(path.read_text())["cells"]:
            assert not cell.get("outputs") and not cell.get("execution_count"), path


def test_learner_notebooks_hide_solutions_and_hidden_tests():
    for lesson in LESSONS:
        text = submissions.notebook_path(lesson).read_text()
        for marker in ("BEGIN SOLUTION", "BEGIN HIDDEN TESTS", "autograder"):
            assert marker not in text, (lesson, marker)
        assert "raise NotImplementedError" in text


def test_every_lesson_follows_the_template():
    """Learn / Implement / Reflect sections, a figure, and for every graded function:
    solution cell, then its visible check, then its test cell with hidden tests."""
    for lesson in LESSONS:
        cells = nbformat.read(submissions.notebook_path(lesson, REPO / "solutions"), 4).cells
        text = "\n".join(c.source for c in cells)
        for heading in ("## Learn", "## Implement", "## Reflect", "**Time:**", "**Prerequisites:**"):
            assert heading in text, (lesson, heading)
        assert re.search(r"\bplots\.|\.plot_", text), f"{lesson} draws no figure"
        first_code = next(c for c in cells if c.cell_type == "code")  # where bncourse is missing: says how to get it
        assert submissions.grade_id(first_code) == "get_bncourse", f"{lesson}: run `make public-url`"
        ids = [submissions.grade_id(c) for c in cells]
        solutions = [submissions.grade_id(c) for c in cells if submissions.is_solution(c)]
        assert solutions
        for piece in solutions:
            i = ids.index(piece)
            assert ids[i + 1:i + 3] == [f"check_{piece}", f"test_{piece}"], (lesson, piece)
            assert f"checks.check_{piece}({piece}" in cells[i + 1].source
            assert "BEGIN HIDDEN TESTS" in cells[i + 2].source
            assert "<summary>Hint</summary>" in cells[i - 1].source, (lesson, piece, "hint")


def _pins(lines):
    return {re.split("==", p)[0].strip().lower(): p.strip() for p in lines if "==" in p}


def test_environment_yml_matches_pyproject():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    env = yaml.safe_load((REPO / "environment.yml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    # the conda environment also carries the `hub` extra (JupyterHub for deploy/hub/) and the
    # `deploy` extra (the kubernetes client that tests/test_deploy.py checks deploy/ with)
    extras = project["optional-dependencies"]
    assert _pins(project["dependencies"] + extras["hub"] + extras["deploy"]) == _pins(pip)
    assert "torch==2.13.0" in project["dependencies"]
    python = next(d for d in env["dependencies"] if isinstance(d, str) and d.startswith("python"))
    assert python == "python=3.11" and project["requires-python"].startswith(">=3.11")


def test_the_package_list_is_every_package_folder_plus_the_data():
    """pyproject.toml lists its packages (bncourse.datasets comes from the top-level datasets/,
    where no search looks): the list must hold every package folder under bncourse/ and
    autograder/ that setuptools' own search finds, so a new one is not silently left out of the
    wheel, and the one mapped folder."""
    from setuptools import find_namespace_packages
    setuptools = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    found = find_namespace_packages(str(REPO), include=["bncourse", "bncourse.*", "autograder", "autograder.*"])
    assert sorted(setuptools["packages"]) == sorted({*found, "bncourse.datasets"})
    assert setuptools["package-dir"] == {"bncourse.datasets": "datasets"}


def test_ci_runs_the_readme_test_command():
    assert "make test" in (REPO / ".ci" / "run").read_text()
    readme = (REPO / "README.md").read_text()
    assert "make lab" in readme and "make test" in readme


def test_workspace_copies_once_and_never_overwrites(tmp_path):
    work = tmp_path / "my_course"
    first = workspace.sync(REPO / "course", work)
    assert sorted(p.name for p in first) == sorted([f"{lesson}.ipynb" for lesson in LESSONS] + [
        f"{sheet}.{kind}" for sheet in ("batchnorm_on_one_page", "notation") for kind in ("md", "html")])
    mine = work / LESSONS[0] / f"{LESSONS[0]}.ipynb"
    mine.write_text("my answers")
    assert workspace.sync(REPO / "course", work) == []
    assert mine.read_text() == "my answers"
    (work / LESSONS[-1] / f"{LESSONS[-1]}.ipynb").unlink()  # a lesson added later is copied in
    assert [p.name for p in workspace.sync(REPO / "course", work)] == [f"{LESSONS[-1]}.ipynb"]


def test_the_learner_package_never_imports_the_grader():
    """bncourse/ ships to learners; the grader plugs into it (entry point), not the reverse."""
    import ast
    for path in (REPO / "bncourse").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            assert not any(n.split(".")[0] == "autograder" for n in names), path


def test_hidden_tests_run_in_process_where_the_grader_is_installed(tmp_path, monkeypatch, capsys):
    """An instructor running a solution notebook: record_answers grades with the hidden tests."""
    import numpy as np

    from bncourse.answers import record_answers
    from bncourse.checks import CheckFailed
    monkeypatch.chdir(tmp_path)  # no calls file here: not inside a grading run
    record_answers("batch_mean", lambda x: x.mean(axis=0))
    assert "hidden inputs match the reference" in capsys.readouterr().out
    with pytest.raises(CheckFailed):
        record_answers("batch_mean", lambda x: np.asarray(x).mean(axis=1))


def test_no_import_cycles():
    """Between the course's modules (bncourse, autograder), imports inside functions included."""
    import ast
    modules = {".".join(p.relative_to(REPO).with_suffix("").parts).removesuffix(".__init__"): p
               for pkg in ("bncourse", "autograder") for p in (REPO / pkg).rglob("*.py")}
    graph = {}
    for name, path in modules.items():
        found = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                found |= {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module:
                found |= {node.module} | {f"{node.module}.{a.name}" for a in node.names}
        graph[name] = sorted(found & set(modules) - {name})

    def cycle_from(start, path=()):
        for nxt in graph[start]:
            if nxt in path:
                return path[path.index(nxt):] + (start, nxt)
            found = cycle_from(nxt, path + (start,))
            if found:
                return found
        return None

    for name in graph:
        cycle = cycle_from(name)
        assert cycle is None, " -> ".join(cycle)


def test_ruff_is_clean():
    """The rules are pyproject.toml's [tool.ruff]; `make test` installs ruff (the check extra)."""
    import subprocess
    import sys
    out = subprocess.run([sys.executable, "-m", "ruff", "check", "--output-format", "concise", "."],
                         cwd=REPO, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
