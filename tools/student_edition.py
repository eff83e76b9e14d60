"""The student edition: the course as learners get it, in a folder of its own.

    python tools/student_edition.py DEST        (make student-edition DEST=...)

Instructors keep this repository private: solutions/, the hidden reference and the grader are in
it. What they publish is the student edition, a folder that can be pushed as its own repository
(`git init`, commit, push) or served to a JupyterHub with nbgitpuller. It holds:

  course/               the learner notebooks as committed (`make release` writes them from solutions/)
  bncourse/             the learner package without the grading-only modules (GRADING_ONLY below);
                        every file byte for byte the repository's
  datasets/             the course's data, provenance and checksums, as in this repository: the
                        edition's pyproject maps it into the package as bncourse.datasets
  pyproject.toml        the learner package only; this repository's pins but NOT_FOR_LEARNERS
  Makefile              install, lab, check (every lesson's visible checks), doctor, clean-venv
  tools/torch_index.py  torch's CPU build on Linux, as this repository installs it
  README.md             install, `make lab`, `make check`, `make doctor`, the licence
  LICENSE, LICENSE-content.md, .gitignore
  binder/               when this repository has one: Binder builds the published repository

The build reads the repository and writes only inside DEST, which must lie outside the
repository and be empty, missing, or an earlier edition: then the files listed in its MANIFEST
are replaced and nothing else is touched (.git/, a learner's my_course/ and .venv/ stay).
Before it finishes it audits what it wrote (audit()): no solution or hidden-test region, no
grading module, no import of the grader, no function of the hidden reference (compared by syntax
tree), no notebook output; it fails rather than publish one.
tests/test_student_edition.py builds an edition and checks it independently.
"""
import ast
import importlib.util
import json
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MANIFEST = ".student-edition-files"  # in DEST: what the build wrote, so a rebuild replaces exactly that

# bncourse modules that only grading runs, left out of the edition. The edition's notebooks call
# neither: nbgrader's release removed the hidden-test regions that import bncourse.answers.
GRADING_ONLY = {
    "answers.py": "records a submission's answers inside the grading sandbox and replays them to "
                  "the grader; its in-process branch runs the hidden tests",
    "runner.py": "runs a submitted notebook inside the grading sandbox for the grader",
}
# Kept though grading also uses them: tripwire.py (the course's helpers step over it with
# tripwire.allowed(); arming it is what grading does) and judge.py, pieces/, the .npz files (the
# visible checks' engine, specs, stored expected values and misconception probes: no answer in
# them, tests/test_no_answers.py and tests/test_probe_data.py say so of every file copied here).

# pins of this repository's pyproject.toml that learners do not need
NOT_FOR_LEARNERS = {
    "nbgrader": "grading and the hub's exchange; the edition has no grader and no instructor tools",
    "pytest": "this repository's own tests",
    "latex2mathml": "the grader's feedback page (autograder/feedback.py)",
}

MARKERS = ("BEGIN SOLUTION", "END SOLUTION", "BEGIN HIDDEN TESTS", "END HIDDEN TESTS",
           "BEGIN MARK SCHEME", "END MARK SCHEME",
           "record_answers")  # what every hidden test cell calls
TEXT_SUFFIXES = {".py", ".ipynb", ".md", ".html", ".toml", ".txt", ".json", ".yml", ".yaml", ".cfg", ""}


class EditionError(Exception):
    pass


# ------------------------------------------------------------------ the course's public address

def course_url(root=REPO):
    """The course's public address (pyproject.toml's [tool.bncourse] public-url, read by
    tools/public_url.py), or None where it is not set. The published edition lives there."""
    path = Path(root) / "tools" / "public_url.py"
    if not path.is_file():
        return None
    spec = importlib.util.spec_from_file_location("_public_url", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    try:
        return module.public_url(root)
    except ValueError:
        return None


def binder_link(url, root=REPO):
    """mybinder.org's launch link for the published edition (tools/public_url.py), or None."""
    path = Path(root) / "tools" / "public_url.py"
    if url is None or not (Path(root) / "binder").is_dir() or not path.is_file():
        return None
    spec = importlib.util.spec_from_file_location("_public_url", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.binder_url(url)


# ------------------------------------------------------------------ what is copied

def repository_files(folder, root=REPO):
    """The files under `folder` a clone holds (tracked, or new and not ignored), without caches."""
    try:
        listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z", "--", folder],
                                cwd=root, check=True, capture_output=True).stdout.decode().split("\0")
        paths = [Path(root) / name for name in listed if name]
    except (OSError, subprocess.CalledProcessError):  # not a git checkout: the folder as it is
        paths = [p for p in (Path(root) / folder).rglob("*")]
    skip = {"__pycache__", ".ipynb_checkpoints"}
    return sorted(p for p in paths if p.is_file() and not skip & set(p.relative_to(root).parts)
                  and p.suffix != ".pyc")


def package_files(root=REPO):
    """{path in the edition: source} of the learner package, grading-only modules left out."""
    return {p.relative_to(root).as_posix(): p for p in repository_files("bncourse", root)
            if p.relative_to(root / "bncourse").as_posix() not in GRADING_ONLY}


def data_files(root=REPO):
    """{path in the edition: source} of the course's data: datasets/ at the top, as here."""
    return {p.relative_to(root).as_posix(): p for p in repository_files("datasets", root)}


def notebook_files(root=REPO):
    files = {p.relative_to(root).as_posix(): p for p in repository_files("course", root)}
    for name, path in files.items():
        if path.suffix == ".ipynb":
            nb = json.loads(path.read_text())
            if any(c.get("outputs") or c.get("execution_count") for c in nb["cells"] if c["cell_type"] == "code"):
                raise EditionError(f"{name} has outputs: course/ is published without them (`make release`)")
    return files


def pins(root=REPO):
    project = tomllib.loads((Path(root) / "pyproject.toml").read_text())["project"]
    return [p for p in project["dependencies"] if re.split(r"[=<>!~ \[;]", p)[0].lower() not in NOT_FOR_LEARNERS]


# ------------------------------------------------------------------ what is written

def _toml(value):
    return json.dumps(value, ensure_ascii=False)  # a TOML basic string, or an array of them


def pyproject(root=REPO):
    """The edition's pyproject.toml: the learner package only, this repository's metadata and pins."""
    data = tomllib.loads((Path(root) / "pyproject.toml").read_text())
    project = data["project"]
    setuptools = data.get("tool", {}).get("setuptools", {})
    learner = [p for p in setuptools.get("packages", []) if p.split(".")[0] == "bncourse"]
    package_dir = setuptools.get("package-dir", {})
    package_data = setuptools.get("package-data", {})
    lines = [
        "# BatchNorm from scratch, student edition: the learner package `bncourse` (lessons' helpers,",
        "# visible checks, data). `make install` installs it with exactly these pins.",
        "[build-system]",
        f"requires = {_toml(data['build-system']['requires'])}",
        f"build-backend = {_toml(data['build-system']['build-backend'])}",
        "",
        "[project]",
        f"name = {_toml(project['name'])}",
        f"version = {_toml(project['version'])}",
        f"description = {_toml('BatchNorm from scratch: JupyterLab lessons with visible checks (student edition)')}",
        'readme = "README.md"',
        f"license = {_toml(project['license'])}",
        f"license-files = {_toml(project['license-files'])}",
        f"requires-python = {_toml(project['requires-python'])}",
        "dependencies = [",
        *(f"    {_toml(p)}," for p in pins(root)),
        "]",
        "",
        "[tool.setuptools]",
        "# the learner package; bncourse.datasets is the data folder at the top, datasets/ (package-dir)",
        f"packages = {_toml(learner)}",
        "",
        "[tool.setuptools.package-dir]",
        *(f"{_toml(k)} = {_toml(v)}" for k, v in package_dir.items() if k.split(".")[0] == "bncourse"),
        "",
        "[tool.setuptools.package-data]",
        *(f"{_toml(k)} = {_toml(v)}" for k, v in package_data.items() if k.split(".")[0] == "bncourse"),
        "",
    ]
    return "\n".join(lines)


def torch_pin(root=REPO):
    (pin,) = [p for p in pins(root) if p.startswith("torch==")]
    return pin


def makefile(root=REPO):
    lab = ("\t$(PY) -m bncourse.lab --course course --work my_course"
           if (Path(root) / "bncourse" / "lab.py").is_file() else
           "\t$(PY) -m bncourse.workspace course my_course\n"
           "\t$(VENV)/bin/jupyter lab --notebook-dir=my_course $(if $(filter 0,$(shell id -u)),--allow-root)")
    return f"""\
# BatchNorm from scratch, student edition.
#   make lab      install (first time: a few minutes), then JupyterLab on my_course/, your copy of course/
#   make check    every lesson's visible checks on my_course/, with a summary (LESSON=01 for one lesson)
#   make doctor   is this machine ready? (after installing)
# Python 3.11-3.13 (torch 2.13 has wheels for these; 3.11 is the one tested)
PYTHON ?= $(shell command -v python3.11 || command -v python3.12 || command -v python3.13 || command -v python3)
VENV   := .venv
PY     := $(VENV)/bin/python
# the package is installed as a copy: it is installed again when it or the pins change (git pull)
PACKAGE_FILES := $(shell find bncourse datasets -type f ! -name '*.pyc' | LC_ALL=C sort)
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml $(PACKAGE_FILES) | cksum | cut -d' ' -f1)

.PHONY: install lab check doctor clean-venv

install: $(STAMP)

$(STAMP): pyproject.toml $(PACKAGE_FILES)
\t@test -x $(PY) || $(PYTHON) -c 'import sys; sys.exit(not (3, 11) <= sys.version_info[:2] <= (3, 13))' || \\
\t  {{ echo "error: $(PYTHON) is Python $$($(PYTHON) -V 2>&1): the course needs 3.11, 3.12 or 3.13"; \\
\t    echo "(make PYTHON=/path/to/python3.11)"; exit 1; }}
\ttest -x $(PY) || $(PYTHON) -m venv $(VENV)
\t# torch first and exactly pinned, on Linux from PyTorch's CPU index when it answers within 3 s
\t# (tools/torch_index.py; BNCOURSE_TORCH_INDEX=cpu|default|<url> overrides); nothing later pulls another
\targs="$$($(PY) tools/torch_index.py)" && $(PY) -m pip install --quiet $$args {torch_pin(root)}
\t$(PY) -m pip install --quiet .
\trm -f $(VENV)/.installed-* && touch $@

# my_course/ is created once and topped up with new lessons; nothing in it is ever overwritten
lab: $(STAMP)
{lab}

check: $(STAMP)
\t@$(PY) -m bncourse.workspace course my_course
\t@$(PY) -m bncourse.selfcheck my_course $(foreach lesson,$(LESSON),--lesson $(lesson))

# Installs nothing: says what to run instead
doctor:
\t@test -x $(PY) || {{ echo "✗ no course environment in $(VENV)/"; \\
\t  echo "    fix: run \\`make install\\` (or \\`make lab\\`) first: a few minutes, it downloads the packages"; \\
\t  exit 1; }}
\t@test -f $(STAMP) || \\
\t  echo "note: $(VENV) was installed for an older version of the course: \\`make install\\` updates it"
\t@$(PY) -m bncourse.doctor

clean-venv:
\trm -rf $(VENV)
"""


GITIGNORE = """\
.venv/
__pycache__/
*.pyc
.ipynb_checkpoints/
*.egg-info/
build/
# your own working copy of course/ (created once by `make lab`, never overwritten)
my_course/
"""


def lesson_titles(root=REPO):
    """[(notebook, its title)]: each lesson's first Markdown heading."""
    found = []
    for path in sorted((Path(root) / "course").glob("*/*.ipynb")):
        cells = json.loads(path.read_text())["cells"]
        text = next(("".join(c["source"]) for c in cells if c["cell_type"] == "markdown"), "")
        title = next((line.lstrip("# ").strip() for line in text.splitlines() if line.startswith("#")), path.stem)
        found.append((path, title))
    return found


def readme(root=REPO):
    url = course_url(root)
    if url:
        name = url.rstrip("/").rsplit("/", 1)[1]
        get = f"```bash\ngit clone {url}\ncd {name}\nmake lab\n```"
    else:
        get = "```bash\ngit clone <the address of this repository>\ncd <its folder>\nmake lab\n```"
    binder = binder_link(url, root)
    binder_line = (f"\n**No install**: [open the lessons on Binder]({binder}) (a temporary session: download "
                   "your notebooks before you leave).\n" if binder else "")
    listed = "\n".join(f"- `course/{path.parent.name}/`: {title}" for path, title in lesson_titles(root))
    sheets = sorted(p.name for p in (Path(root) / "course").glob("*.md"))
    if sheets:
        listed += ("\n\nBeside them in `course/` (and `my_course/`): " + ", ".join(f"`{s}`" for s in sheets)
                   + " (printable as HTML too).")
    return f"""\
# BatchNorm from scratch

A course of JupyterLab notebooks in which you implement Batch Normalization step by step: batch
mean and variance, normalise, scale and shift, the backward pass, running statistics, a drop-in
`BatchNorm1d/2d`, then experiments on why it works and where it goes in a network. Each piece you
write has a visible check that compares it with PyTorch and names your likely mistake.

Everything runs offline on a CPU laptop. You need Python 3.11, 3.12 or 3.13, `git` and `make`.

## Start

{get}

`make lab` installs everything into `.venv/` the first time (a few minutes: PyTorch's CPU build,
about 200 MB, NumPy, Matplotlib, JupyterLab), copies `course/` into **`my_course/`**, your own
working copy, and opens JupyterLab there. Later runs add new lessons but never overwrite a file you
have, so `git pull` never touches your answers.
{binder_line}
| command | what it does |
|---|---|
| `make lab` | installs on first use, then JupyterLab on `my_course/` |
| `make check` | every lesson in `my_course/`: which visible checks pass, fail (and why) or are not implemented yet |
| `make doctor` | is this machine ready? One line per check, with a fix under each ✗ |
| `make install` | only the install (`make clean-venv install` starts it again) |

`make check` runs each lesson in a fresh kernel, as *Restart Kernel and Run All Cells* would (your
notebooks are read, not changed), prints per lesson each piece's check (✓ passed, ✗ failed with
your likely mistake, · not implemented yet) and a summary line; `make check LESSON=01` checks one
lesson. It exits non-zero when a check fails. `make doctor` checks Python, torch's CPU build, the
course's data, a Jupyter kernel, a visible check and the free disk.

On Linux, `make` takes torch from PyTorch's CPU wheel index (`https://download.pytorch.org/whl/cpu`)
when it answers within 3 s, otherwise from your ordinary index, saying so;
`BNCOURSE_TORCH_INDEX=cpu`, `=default` or `=<index URL>` overrides the choice
(`tools/torch_index.py`). macOS and Windows get the ordinary wheels, which are CPU builds. Without
`make` (e.g. on Windows): create a virtual environment, `pip install torch==2.13.0` (on Linux with
`--extra-index-url https://download.pytorch.org/whl/cpu`), `pip install .`, then
`python -m bncourse.workspace course my_course` and `jupyter lab --notebook-dir=my_course`.

## Lessons

{listed}

Work through each notebook top to bottom. Run each check cell right after writing a function: it
prints what passed, or your likely mistake. The graded cell under it runs the same check. The
checks here are the visible ones: if your course grades your work, hidden tests try many more
inputs, so a passing check is a good sign, not a grade.

Allowed building blocks: NumPy (and torch) primitives such as `mean`, `sum`, `sqrt`, `einsum`,
arithmetic and broadcasting. Don't call `np.var` or torch's `batch_norm` (in lesson 07,
`layer_norm` and `group_norm`) for the piece you are implementing: the point is to write each step
yourself.

## Licence

The code (the `bncourse` package, the Makefile, `tools/`, the code cells of the notebooks) is under
the MIT licence (`LICENSE`). The lesson text (the notebooks' Markdown cells, this README) is under
Creative Commons Attribution 4.0 International, and the handwritten digits data is CC BY 4.0 by its
authors (`LICENSE-content.md`, `datasets/README.md`).
"""


def planned(root=REPO):
    """{path in the edition: bytes or a source file}."""
    root = Path(root)
    files = {**notebook_files(root), **package_files(root), **data_files(root)}
    files["tools/torch_index.py"] = root / "tools" / "torch_index.py"
    for name in ("LICENSE", "LICENSE-content.md"):
        files[name] = root / name
    if (root / "binder").is_dir():
        files.update({p.relative_to(root).as_posix(): p for p in repository_files("binder", root)})
    files["pyproject.toml"] = pyproject(root).encode()
    files["Makefile"] = makefile(root).encode()
    files["README.md"] = readme(root).encode()
    files[".gitignore"] = GITIGNORE.encode()
    return files


# ------------------------------------------------------------------ the audit

def _imports(tree):
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{a.name}" for a in node.names)
    return names


NOT_ANSWERS = {"_f64"}  # reference helpers that answer nothing (a float64 conversion)


def _body(node):
    body = node.body[1:] if ast.get_docstring(node) is not None else node.body
    return ast.dump(ast.Module(body=body, type_ignores=[]))


def reference_bodies(root=REPO):
    """{AST of a function's body: its name} of the hidden reference's functions."""
    path = Path(root) / "autograder" / "reference.py"
    return {_body(n): n.name for n in ast.parse(path.read_text()).body
            if isinstance(n, ast.FunctionDef) and n.name not in NOT_ANSWERS}


def audit(dest, root=REPO):
    """What in the edition at `dest` must not be published: [problem]."""
    dest = Path(dest)
    problems = []
    answers = reference_bodies(root)
    forbidden = {"autograder"} | {f"bncourse.{Path(m).stem}" for m in GRADING_ONLY}
    for top in ("autograder", "solutions", "tests"):
        if (dest / top).exists():
            problems.append(f"{top}/ is in the edition")
    for module in GRADING_ONLY:
        if (dest / "bncourse" / module).exists():
            problems.append(f"bncourse/{module} is in the edition")
    for path in sorted(p for p in dest.rglob("*") if p.is_file() and ".git" not in p.relative_to(dest).parts):
        name = path.relative_to(dest).as_posix()
        if name.startswith(("my_course/", ".venv/")) or path.suffix not in TEXT_SUFFIXES:
            continue
        text = path.read_text(errors="replace")
        problems += [f"{name}: {marker!r}" for marker in MARKERS if marker in text]
        sources = []
        if path.suffix == ".py":
            sources = [text]
        elif path.suffix == ".ipynb":
            cells = json.loads(text)["cells"]
            problems += [f"{name}: a cell with outputs" for c in cells if c.get("outputs")]
            sources = ["".join(c["source"]) for c in cells if c["cell_type"] == "code"]
        for source in sources:
            try:
                tree = ast.parse(source)
                found = _imports(tree)
            except SyntaxError:  # a learner's cell may hold IPython magics
                tree, found = None, set(re.findall(r"(?:from|import)\s+([\w.]+)", source))
            problems += [f"{name}: {node.name} is the hidden reference's {answers[_body(node)]}"
                         for node in (ast.walk(tree) if tree else ()) if isinstance(node, ast.FunctionDef)
                         and _body(node) in answers]
            problems += [f"{name} imports {n}" for n in sorted(found)
                         if n.split(".")[0] in forbidden or any(n == f or n.startswith(f + ".") for f in forbidden)]
    return problems


# ------------------------------------------------------------------ the build

def build(dest, root=REPO):
    dest, root = Path(dest).resolve(), Path(root).resolve()
    if dest == root or dest.is_relative_to(root) or root.is_relative_to(dest):
        raise EditionError(f"{dest}: write the student edition outside the repository ({root})")
    manifest = dest / MANIFEST
    if dest.exists() and any(dest.iterdir()) and not manifest.is_file():
        raise EditionError(f"{dest} is not empty and holds no student edition ({MANIFEST}): choose an empty folder")
    files = planned(root)
    if manifest.is_file():  # an earlier edition: remove what it wrote, nothing else
        folders = set()
        for name in manifest.read_text().splitlines():
            if name and not name.startswith("#") and (dest / name).is_file():
                (dest / name).unlink()
                folders.update(p for p in (dest / name).parents if p.is_relative_to(dest) and p != dest)
        for folder in sorted(folders, key=lambda p: len(p.parts), reverse=True):
            if folder.is_dir() and not any(folder.iterdir()):
                folder.rmdir()
    for name, content in sorted(files.items()):
        target = dest / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            target.write_bytes(content)
        else:
            shutil.copy2(content, target)
    manifest.write_text("# written by the course's student-edition build; a rebuild replaces these files\n"
                        + "".join(f"{name}\n" for name in sorted(files)))
    problems = audit(dest)
    if problems:
        raise EditionError("the edition holds what learners must not get:\n  " + "\n  ".join(problems))
    return sorted(files)


def main(argv):
    if len(argv) != 1:
        print(__doc__.split("\n\n")[1], file=sys.stderr)
        return 2
    try:
        written = build(argv[0])
    except EditionError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    lessons = sum(name.endswith(".ipynb") for name in written)
    print(f"student edition in {Path(argv[0]).resolve()}: {len(written)} files, {lessons} lessons, "
          f"no solutions, no grader (left out: {', '.join('bncourse/' + m for m in GRADING_ONLY)}, "
          f"pins {', '.join(NOT_FOR_LEARNERS)})")
    print("publish it: cd there, `git init && git add -A && git commit -m 'student edition'`, push it to "
          + (course_url() or "the course's public address") + "; or serve it with nbgitpuller")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
