"""A plain, non-editable install of the course package runs the lessons' data code from any
working directory: the digits ship inside the package. They live at the top of the repository, in
datasets/; pyproject.toml maps that folder into the package as bncourse.datasets, so the wheel
carries every file of it in bncourse/datasets/ (and no top-level `datasets` package).

The package is built into a wheel from the repository's files (what a clone holds) and
installed with `--no-index --no-deps`, pip's configuration and PIP_* variables off, into a fresh
virtual environment without system site packages, in a folder outside the repository. Its
dependencies (torch, numpy, jupyter, ...) are not installed again: one `.pth` line makes the
project environment's site-packages importable *after* the fresh environment's own, so the
`bncourse` that runs is the installed wheel's (asserted), never the repository's. A
`python -c` and lesson 00's cells up to its data cell (run by nbclient in a kernel of the fresh
environment) then load the digits from a working directory that is neither.
"""
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import nbformat
import pytest

from autograder.settings import REPO
from tests.fresh_env import clean_env, fresh_venv

pytestmark = pytest.mark.install

LESSON = "00_internal_covariate_shift"


def source_tree(dest):
    """The repository's files as a clone (plus work in progress) holds them, without caches."""
    listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
                            cwd=REPO, check=True, capture_output=True).stdout.decode().split("\0")
    for name in filter(None, listed):
        path = REPO / name
        if path.is_file() and "__pycache__" not in path.parts:
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, dest / name)
    return dest


def run(args, **kwargs):
    out = subprocess.run(args, capture_output=True, text=True, env=clean_env(), timeout=300, **kwargs)
    assert out.returncode == 0, f"{args}\n{out.stdout}\n{out.stderr}"
    return out


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """(python of a fresh venv holding the course's wheel, a working directory outside both)."""
    start = time.perf_counter()
    root = tmp_path_factory.mktemp("install")
    src = source_tree(root / "src")
    pip = [sys.executable, "-m", "pip", "--isolated", "--disable-pip-version-check"]
    run(pip + ["wheel", "--no-deps", "--no-index", "--no-build-isolation", "--quiet", "-w", str(root / "wheels"),
               str(src)])
    (wheel,) = (root / "wheels").glob("bncourse-*.whl")
    venv = root / "venv"
    python = fresh_venv(venv)
    run(pip + ["--python", str(python), "install", "--no-index", "--no-deps", "--quiet", str(wheel)])
    elsewhere = root / "elsewhere"
    elsewhere.mkdir()
    print(f"fresh environment with the wheel in {time.perf_counter() - start:.1f} s")
    return python, venv, elsewhere


def test_the_wheel_carries_the_data_and_no_build_script(installed):
    """Every file of the repository's datasets/ (an instructor's new one too: pyproject.toml's
    package-data must name it) lands in bncourse/datasets/, and nowhere else."""
    python, venv, elsewhere = installed
    code = ("import importlib.metadata as m; d = m.distribution('bncourse'); print(d._path); "
            "print('\\n'.join(str(f) for f in d.files))")
    where, *files = run([str(python), "-c", code], cwd=elsewhere).stdout.split()
    assert Path(where).is_relative_to(venv), where
    data = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "--", "datasets"],
                          cwd=REPO, check=True, capture_output=True, text=True).stdout.split()
    assert {"datasets/digits.npz", "datasets/README.md"} <= set(data)
    missing = [name for name in data if f"bncourse/{name}" not in files]
    assert not missing, f"not in the wheel: {missing} (add them to pyproject.toml's package-data)"
    assert not any(f.startswith("datasets/") for f in files)  # no top-level `datasets` package
    assert not any("make_digits" in f for f in files)


def test_the_installed_package_reads_its_misconception_probes(installed):
    """bncourse/probes.npz (package data) names a mistake from another directory."""
    python, venv, elsewhere = installed
    code = ("from bncourse.misconceptions import diagnose; "
            "print([m.name for m in diagnose('batch_mean', lambda x: x.mean(axis=1))])")
    assert run([str(python), "-c", code], cwd=elsewhere).stdout.strip() == "['wrong_axis']"


def test_the_installed_package_loads_the_digits_from_another_directory(installed):
    python, venv, elsewhere = installed
    code = textwrap.dedent("""
        import bncourse
        from bncourse import data
        x, y = data.load_digits("train")
        xv, yv = data.load_digits("validation")
        from importlib import resources
        print(bncourse.__file__)
        print(data.DIGITS_PATH)
        print(x.shape, x.dtype, y.shape, xv.shape, data.sha256(data.DIGITS_PATH) == data.DIGITS_SHA256)
        print(resources.files("bncourse.datasets"))
    """)
    out = run([str(python), "-c", code], cwd=elsewhere).stdout.splitlines()
    assert Path(out[0]).is_relative_to(venv) and Path(out[1]).is_relative_to(venv), out
    assert not Path(out[0]).is_relative_to(REPO)
    assert out[2] == "(1438, 64) float32 (1438,) (359, 64) True"
    # importlib.resources finds the wheel's copy, inside the installed package
    assert Path(out[3]) == Path(out[0]).parent / "datasets" == Path(out[1]).parent, out


def test_a_lesson_runs_its_data_cell_with_the_installed_package(installed):
    """Lesson 00's code cells up to and including its first `data.load_digits` call (imports,
    the learner's still-empty function definitions, the data cell), in a kernel of the fresh
    environment, working directory outside the repository."""
    python, venv, elsewhere = installed
    lesson = nbformat.read(REPO / "course" / LESSON / f"{LESSON}.ipynb", as_version=4)
    cells = []
    for cell in lesson.cells:
        if cell.cell_type == "code":
            cells.append(nbformat.v4.new_code_cell(cell.source))
            if "data.load_digits" in cell.source:
                break
    assert cells and "data.load_digits" in cells[-1].source
    cells.append(nbformat.v4.new_code_cell(
        "import sys, bncourse\nprint('python', sys.executable)\nprint('bncourse', bncourse.__file__)"))
    notebook = elsewhere / "lesson.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=cells), notebook)
    runner = textwrap.dedent(f"""
        import nbformat
        from nbclient import NotebookClient
        nb = nbformat.read({str(notebook)!r}, as_version=4)
        NotebookClient(nb, timeout=120, kernel_name="python3", resources={{"metadata": {{"path": "."}}}}).execute()
        for cell in nb.cells:
            for output in cell.get("outputs", []):
                print(output.get("text", ""), end="")
    """)
    out = run([str(python), "-c", runner], cwd=elsewhere).stdout
    assert "images: (1438, 64) float32" in out, out
    lines = dict(line.split(" ", 1) for line in out.splitlines() if line.startswith(("python ", "bncourse ")))
    assert Path(lines["python"]).parent.parent == venv, lines  # the fresh environment's kernel
    assert Path(lines["bncourse"]).is_relative_to(venv), lines
