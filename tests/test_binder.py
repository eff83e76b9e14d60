"""Binder, Colab and the course's public address (tools/public_url.py, binder/).

- One value, pyproject.toml's `[tool.bncourse] public-url`, and everything that shows it agrees
  with it: README's Binder badge and Colab lines, every lesson's first code cell in solutions/
  and course/ (a stale address is named).
- Every lesson's first code cell, run by nbclient in a real kernel of an environment where
  `bncourse` cannot be imported (a fresh venv whose only way to the project's packages is one
  `.pth` line, which does not activate the project's editable install), prints the install
  command derived from that value and stops "Run All" there with one line; with a fake
  `google.colab` module it prints Colab's two lines; where bncourse is installed it prints nothing.
- binder/ as repo2docker (the library Binder builds with, its own detection and Dockerfile
  rendering; no Docker needed) reads it: binder/ is the configuration (the root environment.yml
  is ignored), Python 3.11, requirements at pyproject.toml's pins with torch from PyTorch's CPU
  index, and postBuild, executable, installs the course package: run here into a throwaway
  environment. Building the image itself needs Docker and the internet: not done here.
"""
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import textwrap
import time
import tomllib
from pathlib import Path

import nbformat
import pytest
from packaging.requirements import Requirement

from autograder.settings import REPO
from tests.fresh_env import clean_env, fresh_venv

spec = importlib.util.spec_from_file_location("public_url", REPO / "tools" / "public_url.py")
public_url = importlib.util.module_from_spec(spec)
spec.loader.exec_module(public_url)

URL = public_url.public_url()
LESSONS = [p.parent.name for p in public_url.lesson_notebooks(REPO, "course")]
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
STOP_LINE = "NeedsTheCoursePackage: bncourse is not installed: run the command printed above"


# ------------------------------------------------------------------ one public address


def test_everything_shows_the_configured_public_url():
    assert public_url.stale() == [], "run `make public-url`"
    readme = (REPO / "README.md").read_text()
    assert f"]({public_url.binder_url(URL)})" in readme and "mybinder.org/badge_logo.svg" in readme


def test_a_stale_address_is_named():
    other = "https://github.com/someone/elsewhere"
    problems = public_url.stale(other)
    assert problems[0].startswith("README.md")
    for tree in ("solutions", "course"):
        for lesson in LESSONS:
            assert f"{tree}/{lesson}/{lesson}.ipynb: its first code cell" in problems


def test_writing_another_address_rewrites_readme_and_every_lesson(tmp_path):
    """`make public-url`'s first step on a copy: README's block and solutions' first cells follow
    the new value, nothing else in them changes, and writing twice changes nothing more."""
    shutil.copy(REPO / "README.md", tmp_path / "README.md")
    shutil.copytree(REPO / "solutions", tmp_path / "solutions")
    text = (REPO / "pyproject.toml").read_text().replace(f'public-url = "{URL}"', 'public-url = "https://gitlab.com/a/b"')
    (tmp_path / "pyproject.toml").write_text(text)
    new = public_url.public_url(tmp_path)
    assert new == "https://gitlab.com/a/b"
    assert len(public_url.write(root=tmp_path)) == 1 + len(LESSONS)
    assert public_url.stale(root=tmp_path, trees=("solutions",)) == []
    assert public_url.write(root=tmp_path) == []
    assert "https://mybinder.org/v2/gl/a%2Fb/HEAD?urlpath=lab/tree/course" in (tmp_path / "README.md").read_text()
    for lesson in LESSONS:
        before = nbformat.read(REPO / "solutions" / lesson / f"{lesson}.ipynb", 4).cells
        after = nbformat.read(tmp_path / "solutions" / lesson / f"{lesson}.ipynb", 4).cells
        changed = [i for i, (a, b) in enumerate(zip(before, after)) if a != b]
        assert len(before) == len(after) and len(changed) == 1, lesson
        assert "git+https://gitlab.com/a/b" in after[changed[0]].source and URL not in after[changed[0]].source


@pytest.mark.parametrize("url", ["http://github.com/a/b", "https://github.com/a", "https://github.com/a/b/",
                                 "https://github.com/a/b.git", "https://github.com/a/b'; rm", "https://x.org/a/b?c=d"])
def test_a_malformed_address_is_refused(tmp_path, url):
    text = (REPO / "pyproject.toml").read_text().replace(f'public-url = "{URL}"', f'public-url = "{url}"')
    (tmp_path / "pyproject.toml").write_text(text)
    with pytest.raises(ValueError, match="expected https://HOST/OWNER/NAME"):
        public_url.public_url(tmp_path)


def test_the_first_cell_installs_the_course_torch():
    """Colab's two lines take pyproject.toml's torch pin from the CPU index, then bncourse alone."""
    colab = public_url.install_commands(URL, colab=True)
    assert public_url.TORCH in PYPROJECT["project"]["dependencies"]
    assert colab[0].split() == ["%pip", "install", "-q", public_url.TORCH, "--extra-index-url", public_url.CPU_INDEX]
    assert colab[1].split() == ["%pip", "install", "-q", "--no-deps", '"bncourse', "@", f'git+{URL}"']


# ------------------------------------------------------------------ the first cell, in real kernels

RUNNER = textwrap.dedent("""
    import json, sys, nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError
    report = []
    for path in sys.argv[1:]:
        nb = nbformat.read(path, as_version=4)
        error = None
        try:  # Run All: nbclient stops at the first cell that raises
            NotebookClient(nb, timeout=60, kernel_name="python3", resources={"metadata": {"path": "."}}).execute()
        except CellExecutionError as e:
            error = str(e)
        report.append({"error": error, "cells": [
            {"ran": c.get("execution_count") is not None, "outputs": c.get("outputs", [])}
            for c in nb.cells if c.cell_type == "code"]})
    print(json.dumps(report))
""")

PROBE = "import sys, importlib.util\nprint(sys.prefix)\nprint(importlib.util.find_spec('bncourse'))"


def run_notebooks(python, notebooks, cwd):
    out = subprocess.run([str(python), "-c", RUNNER, *map(str, notebooks)], cwd=cwd, env=clean_env(),
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    return json.loads(out.stdout.splitlines()[-1])


def notebook(path, cells):
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells]), path)
    return path


def text(outputs, kind="stream"):
    return "".join(o.get("text", "") for o in outputs if o["output_type"] == kind)


@pytest.fixture(scope="module")
def without_bncourse(tmp_path_factory):
    """(python of a fresh venv in which bncourse cannot be imported, a working directory outside
    the repository). The project's site-packages (ipykernel, nbclient, numpy...) come through
    one .pth line: a path line, so the editable install's own .pth there is never processed."""
    root = tmp_path_factory.mktemp("nobncourse")
    venv = root / "venv"
    python = fresh_venv(venv)
    elsewhere = root / "elsewhere"
    elsewhere.mkdir()
    gone = subprocess.run([str(python), "-c", "import bncourse"], cwd=elsewhere, env=clean_env(),
                          capture_output=True, text=True)
    assert "No module named 'bncourse'" in gone.stderr, gone.stderr
    return python, venv, elsewhere


def test_without_bncourse_every_lesson_prints_the_install_command_and_stops(without_bncourse):
    """Run All of each course/ notebook in a kernel without bncourse: the first code cell prints
    the command and raises; nothing after it runs; the error is one line, no traceback."""
    python, venv, elsewhere = without_bncourse
    start = time.perf_counter()
    probe = notebook(elsewhere / "probe.ipynb", [PROBE])
    report = run_notebooks(python, [probe] + [REPO / "course" / lesson / f"{lesson}.ipynb" for lesson in LESSONS],
                           elsewhere)
    prefix, found = text(report[0]["cells"][0]["outputs"]).split()
    assert Path(prefix) == venv and found == "None"  # the kernel is the fresh environment's
    expected = ("This lesson needs the course's package. Run this in a new cell, then this notebook again:\n"
                + "\n".join(public_url.install_commands(URL, colab=False)) + "\n(or in a terminal: "
                + " && ".join(public_url.clone_commands(URL)) + ")\n")
    for lesson, result in zip(LESSONS, report[1:]):
        first, *rest = result["cells"]
        assert text(first["outputs"]) == expected, lesson
        (error,) = [o for o in first["outputs"] if o["output_type"] == "error"]
        assert error["traceback"] == [STOP_LINE], lesson
        assert STOP_LINE in result["error"], lesson
        assert first["ran"] and not any(c["ran"] or c["outputs"] for c in rest), lesson
    print(f"{len(LESSONS)} lessons run without bncourse in {time.perf_counter() - start:.1f} s")


def test_on_colab_the_first_cell_prints_colabs_two_lines(without_bncourse):
    python, venv, elsewhere = without_bncourse
    lesson = nbformat.read(REPO / "course" / LESSONS[1] / f"{LESSONS[1]}.ipynb", 4)
    first = next(c for c in lesson.cells if c.cell_type == "code")
    fake = "import sys, types\nsys.modules['google.colab'] = types.ModuleType('google.colab')"
    (result,) = run_notebooks(python, [notebook(elsewhere / "colab.ipynb", [fake, first.source, "print('after')"])],
                              elsewhere)
    cells = result["cells"]
    printed = text(cells[1]["outputs"])
    assert printed.splitlines()[1:] == public_url.install_commands(URL, colab=True)
    assert STOP_LINE in result["error"] and not cells[2]["ran"]


def test_with_bncourse_the_first_cell_prints_nothing(tmp_path):
    """Each lesson's first code cell, then `import bncourse`, in a kernel of the project's environment."""
    cells = []
    for lesson in LESSONS:
        nb = nbformat.read(REPO / "course" / lesson / f"{lesson}.ipynb", 4)
        cells.append(next(c for c in nb.cells if c.cell_type == "code").source)
    cells.append("import bncourse\nprint(bncourse.__name__)")
    (result,) = run_notebooks(sys.executable, [notebook(tmp_path / "present.ipynb", cells)], tmp_path)
    assert result["error"] is None
    assert all(c["ran"] and c["outputs"] == [] for c in result["cells"][:-1])
    assert text(result["cells"][-1]["outputs"]) == "bncourse\n"


# ------------------------------------------------------------------ binder/, as repo2docker reads it


def picked_buildpack(folder, monkeypatch):
    """The buildpack repo2docker picks for `folder`: its own list, order and detection."""
    from repo2docker.app import Repo2Docker
    monkeypatch.chdir(folder)  # repo2docker inspects the working directory
    r2d = Repo2Docker()
    bp = next(bp for bp in (BP(base_image=r2d.base_image) for BP in r2d.buildpacks) if bp.detect())
    bp.platform = "linux/amd64"
    return bp


def test_repo2docker_builds_from_binder_and_ignores_the_root_environment(monkeypatch):
    from packaging.specifiers import SpecifierSet
    from repo2docker.buildpacks import PythonBuildPack
    assert not (REPO / ".binder").exists()  # binder/ and .binder/ together are an error
    bp = picked_buildpack(REPO, monkeypatch)
    assert type(bp) is PythonBuildPack and bp.binder_dir == "binder"
    assert bp.environment_yaml_path is None  # the root environment.yml is not read
    assert bp.python_version == "3.11"
    assert bp.python_version + ".0" in SpecifierSet(PYPROJECT["project"]["requires-python"])
    dockerfile = bp.render()
    assert '/bin/pip install --no-cache-dir -r "binder/requirements.txt"' in dockerfile
    assert "RUN ./binder/postBuild" in dockerfile
    assert "environment.yml" not in dockerfile and "pyproject" not in dockerfile


def test_without_binder_repo2docker_would_build_the_root_environment(tmp_path, monkeypatch):
    """What Binder did before binder/ existed (so the test above can fail): conda from the root
    environment.yml, which never installs bncourse."""
    from repo2docker.buildpacks import CondaBuildPack
    for name in ("environment.yml", "pyproject.toml"):
        shutil.copy(REPO / name, tmp_path / name)
    bp = picked_buildpack(tmp_path, monkeypatch)
    assert type(bp) is CondaBuildPack and bp.environment_yaml_path == "environment.yml"


def binder_requirements():
    options, pins = [], {}
    for line in (REPO / "binder" / "requirements.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line.startswith("-"):
            options.append(line.split())
        elif line:
            req = Requirement(line)
            pins[req.name.lower()] = str(req.specifier)
    return options, pins


def test_binder_requirements_are_pyprojects_pins_with_torch_from_the_cpu_index():
    options, pins = binder_requirements()
    assert options == [["--extra-index-url", public_url.CPU_INDEX]]  # PyTorch's CPU wheels; nothing else redirected
    project = {Requirement(r).name.lower(): str(Requirement(r).specifier)
               for r in PYPROJECT["project"]["dependencies"]}
    assert pins["torch"] == project["torch"] == "==2.13.0"
    for name, pin in pins.items():
        assert project.get(name) == pin, (name, pin, project.get(name))
    assert not {"nbgrader", "jupyterlab", "notebook", "pytest"} & set(pins)  # the instructor's tools stay out


def test_binder_provides_every_package_the_course_package_imports():
    """Each third-party import of bncourse/ is in binder/requirements.txt, or (when pyproject.toml
    does not pin it) in repo2docker's own Python 3.11 environment."""
    import ast
    from importlib.metadata import packages_distributions

    import repo2docker
    _, pins = binder_requirements()
    conda = Path(repo2docker.__file__).parent / "buildpacks" / "conda"
    lock = (conda / "environment.py-3.11-linux-64.lock").read_text()
    distributions = packages_distributions()
    imported = set()
    for path in (REPO / "bncourse").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module] if isinstance(node, ast.ImportFrom) and node.module and not node.level else [])
            imported |= {n.split(".")[0] for n in names}
    third_party = imported - set(sys.stdlib_module_names) - {"bncourse"}
    assert {"torch", "numpy"} <= third_party
    for module in sorted(third_party):
        (dist,) = {d.lower() for d in distributions[module]}
        assert dist in pins or f"/{dist.replace('_', '-')}-" in lock.replace("_", "-"), module


def test_postbuild_is_executable_and_installs_the_course_package(tmp_path):
    """binder/postBuild run as repo2docker runs it (from the repository's root, KERNEL_PYTHON_PREFIX
    set) on a copy of the repository, into a throwaway venv with pip: bncourse lands there with its
    data, and none of pyproject.toml's dependencies come with it; the learner's JupyterLab settings
    (no news pop-up) land in the notebook server's environment (NB_PYTHON_PREFIX)."""
    script = REPO / "binder" / "postBuild"
    assert os.access(script, os.X_OK) and script.read_text().startswith("#!/bin/bash\n")
    assert "set -euo pipefail" in script.read_text()
    mode = subprocess.run(["git", "ls-files", "-s", "binder/postBuild"], cwd=REPO, capture_output=True,
                          text=True).stdout
    assert not mode or mode.startswith("100755"), mode  # executable in git too, where it is committed
    src = tmp_path / "src"
    listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
                            cwd=REPO, check=True, capture_output=True).stdout.decode().split("\0")
    for name in filter(None, listed):
        if (REPO / name).is_file() and "__pycache__" not in name:
            (src / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, src / name)
    venv = tmp_path / "kernel"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, env=clean_env())
    # this machine's pip configuration stays on (its local wheel folders hold setuptools for the build)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    out = subprocess.run(["binder/postBuild"], cwd=src, env={**env, "KERNEL_PYTHON_PREFIX": str(venv),
                                                             "NB_PYTHON_PREFIX": str(venv)},
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    code = ("import importlib.util, importlib.metadata as m; print(importlib.util.find_spec('bncourse').origin); "
            "import json; print(json.dumps(sorted(d.metadata['Name'].lower() for d in m.distributions())))")
    where, names = subprocess.run([str(venv / "bin" / "python"), "-c", code], cwd=tmp_path, env=clean_env(),
                                  check=True, capture_output=True, text=True).stdout.splitlines()
    assert Path(where).is_relative_to(venv), where
    assert (Path(where).parent / "datasets" / "digits.npz").is_file()
    names = set(json.loads(names))
    assert "bncourse" in names and not {"torch", "numpy", "nbgrader", "jupyterlab"} & names, names
    page_config = json.loads((venv / "etc" / "jupyter" / "labconfig" / "page_config.json").read_text())
    assert page_config["disabledExtensions"].get("@jupyterlab/apputils-extension:announcements") is True
