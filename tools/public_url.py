"""The course's public address, kept in one place: pyproject.toml's `[tool.bncourse] public-url`.

    python tools/public_url.py            print it and what is derived from it
    python tools/public_url.py --write    rewrite what shows it: README's Binder and Colab lines
                                          and the first code cell of every lesson in solutions/
    make public-url                       both, then `make release` (course/ from solutions/)

Everything a learner outside a clone sees is derived here from that one value: the Binder link
(mybinder.org builds the repository's binder/ folder and opens course/ in JupyterLab), and the
command that installs the course package, `bncourse`, straight from the repository with pip.
Every lesson starts with a code cell (`first_cell`) that does nothing where bncourse is
installed and elsewhere (Colab, a notebook opened on its own) prints that command and stops.

On Colab the command is two lines, decided so:
  1. torch==2.13.0 from PyTorch's CPU index. Colab ships its own torch (another version, a CUDA
     build); the lessons state and check torch 2.13's behaviour (BatchNorm's signature, its
     buffers, the kernels the grader switches off), so they get the version they were tested
     with. The CPU build is ~200 MB instead of several GB and the course needs no GPU. The first
     cell stops before anything imports torch, so replacing it needs no restart of the runtime.
  2. bncourse without its dependencies (`--no-deps`): they are the instructor's too (JupyterLab,
     nbgrader, pytest, exact numpy and matplotlib pins); replacing Colab's preloaded numpy would
     need a runtime restart. The lessons run on Colab's numpy, matplotlib and tqdm.
Elsewhere it is one line, with the dependencies, torch's CPU build included (as `make lab`
installs them), into the notebook's own environment; or clone the repository and `make lab`.

`stale()` lists what disagrees with the value (tests/test_binder.py fails while anything does).
Only the standard library: tests and other tools import this file by its path.
"""
import json
import re
import sys
import tomllib
import urllib.parse
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
KEY = "public-url"
PACKAGE = "bncourse"
TORCH = "torch==2.13.0"  # pyproject.toml's pin (tests/test_binder.py holds them equal)
CPU_INDEX = "https://download.pytorch.org/whl/cpu"
CELL_ID = "get_bncourse"  # nbgrader grade_id of every lesson's first code cell
BEGIN, END = "<!-- public-url: begin (make public-url writes this block) -->", "<!-- public-url: end -->"


def public_url(root=REPO):
    """The course's public repository address, checked: https, no trailing slash or `.git`."""
    table = tomllib.loads((Path(root) / "pyproject.toml").read_text()).get("tool", {}).get("bncourse", {})
    url = table.get(KEY)
    if not isinstance(url, str):
        raise ValueError(f"pyproject.toml has no [tool.bncourse] {KEY} = \"https://...\"")
    # https://HOST/OWNER/NAME[/...]: no quotes, spaces, query or .git (it goes into commands and cells)
    if not re.fullmatch(r"https://[A-Za-z0-9.-]+(:[0-9]+)?(/[A-Za-z0-9._~-]+){2,}", url) or url.endswith(".git"):
        raise ValueError(f"[tool.bncourse] {KEY} = {url!r}: expected https://HOST/OWNER/NAME "
                         "(the repository's page, no trailing slash or .git)")
    return url


def binder_url(url, path="course"):
    """mybinder.org's launch link for the repository's default branch, opening `path` in JupyterLab."""
    parts = urllib.parse.urlsplit(url)
    repo = parts.path.strip("/")
    if parts.netloc == "github.com":
        spec = f"gh/{repo}/HEAD"
    elif parts.netloc == "gitlab.com":
        spec = f"gl/{urllib.parse.quote(repo, safe='')}/HEAD"
    else:
        spec = f"git/{urllib.parse.quote(url, safe='')}/HEAD"
    return f"https://mybinder.org/v2/{spec}?urlpath=lab/tree/{path}"


def requirement(url):
    return f'"{PACKAGE} @ git+{url}"'


def install_commands(url, colab):
    """The notebook-cell commands (IPython's %pip) that make `import bncourse` work."""
    if colab:
        return [f"%pip install -q {TORCH} --extra-index-url {CPU_INDEX}",
                f"%pip install -q --no-deps {requirement(url)}"]
    return [f"%pip install -q --extra-index-url {CPU_INDEX} {requirement(url)}"]


def clone_commands(url):
    return [f"git clone {url}", f"cd {url.rsplit('/', 1)[1]}", "make lab"]


def first_cell(url):
    """Source of every lesson's first code cell. It cannot import the course (that is what may be
    missing), so it stands alone: where bncourse is found it does nothing; elsewhere it prints
    what to run and raises, so "Run All" stops there, with one line instead of a traceback."""
    colab = "\n".join(install_commands(url, True))
    other = "\n".join(install_commands(url, False)) + "\n(or in a terminal: " + " && ".join(clone_commands(url)) + ")"
    return (
        "# The lessons need the course's package, bncourse. Where it is installed this cell does nothing.\n"
        "import importlib.util, sys\n"
        f"if importlib.util.find_spec(\"{PACKAGE}\") is None:\n"
        f"    colab = {colab!r}\n"
        f"    other = {other!r}\n"
        "    print(\"This lesson needs the course's package. Run this in a new cell, then this notebook again:\\n\"\n"
        "          + (colab if \"google.colab\" in sys.modules else other))\n"
        "    class NeedsTheCoursePackage(Exception):\n"
        "        def _render_traceback_(self):  # one line, no traceback\n"
        "            return [f\"{type(self).__name__}: {self}\"]\n"
        f"    raise NeedsTheCoursePackage(\"{PACKAGE} is not installed: run the command printed above\")"
    )


def readme_block(url):
    """README's Binder and Colab lines (between BEGIN and END)."""
    badge = "https://mybinder.org/badge_logo.svg"
    colab = "\n".join(install_commands(url, True))
    return f"""{BEGIN}
**On Binder**, nothing to install: [![Binder]({badge})]({binder_url(url)})
Binder builds `binder/` (torch's CPU build and the course package; a few minutes the first
time) and opens JupyterLab on `course/`. The session is temporary: download your notebooks.

**On Colab**: *File → Open notebook → GitHub*, paste the course's address,
{url}, open a lesson from `course/` and run its first cell. It prints
what to run in a new cell before *Run all* again:
```
{colab}
```
The course's torch (`torch==2.13.0`, the CPU build the lessons were tested with) replaces
Colab's own, and the course package comes without the rest of its pins (Colab's numpy and
matplotlib stay). Elsewhere (a lesson opened on its own) the first cell prints one `%pip install`
for the notebook's environment, or clone the repository and `make lab`.
{END}"""


# ------------------------------------------------------------------ where the value shows


def lesson_notebooks(root=REPO, tree="solutions"):
    return sorted(p for p in (Path(root) / tree).glob("*/*.ipynb") if p.stem == p.parent.name)


def _first_code_cell(cells):
    return next((i for i, c in enumerate(cells) if c["cell_type"] == "code"), None)


def _cell(source, template):
    """A locked nbgrader cell in the notebook's own JSON form (another code cell as template)."""
    meta = json.loads(json.dumps(template.get("metadata", {})))
    meta["nbgrader"] = {**meta.get("nbgrader", {}), "grade": False, "grade_id": CELL_ID, "locked": True,
                        "solution": False, "task": False}
    meta["nbgrader"].setdefault("schema_version", 3)
    return {"cell_type": "code", "execution_count": None, "id": CELL_ID.replace("_", "-"), "metadata": meta,
            "outputs": [], "source": source.splitlines(keepends=True)}


def _source(cell):
    return "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]


def stale(url=None, root=REPO, trees=("solutions", "course")):
    """What does not show `url` (default: the configured one) as derived here: README's block,
    each lesson's first code cell. [] when everything is current."""
    url = url or public_url(root)
    problems = []
    readme = (Path(root) / "README.md").read_text()
    if readme_block(url) not in readme:
        problems.append("README.md: the Binder/Colab block between the public-url markers")
    for tree in trees:
        for path in lesson_notebooks(root, tree):
            cells = json.loads(path.read_text())["cells"]
            i = _first_code_cell(cells)
            if i is None or _source(cells[i]) != first_cell(url) \
                    or cells[i]["metadata"].get("nbgrader", {}).get("grade_id") != CELL_ID:
                problems.append(f"{path.relative_to(root)}: its first code cell")
    return problems


def write(url=None, root=REPO):
    """Rewrite README's block and the first code cell of every lesson in solutions/; returns the
    files changed. course/ then comes from `python -m autograder release`."""
    url = url or public_url(root)
    changed = []
    readme_path = Path(root) / "README.md"
    readme = readme_path.read_text()
    block = re.compile(re.escape(BEGIN) + ".*?" + re.escape(END), re.S)
    if not block.search(readme):
        raise ValueError(f"README.md has no public-url block: put the two lines\n{BEGIN}\n{END}\n"
                         "where the Binder and Colab instructions belong")
    new = block.sub(lambda _: readme_block(url), readme, count=1)
    if new != readme:
        readme_path.write_text(new)
        changed.append(readme_path)
    for path in lesson_notebooks(root):
        text = path.read_text()
        notebook = json.loads(text)
        cells = notebook["cells"]
        i = _first_code_cell(cells)
        cell = _cell(first_cell(url), cells[i] if i is not None else {})
        if i is not None and cells[i]["metadata"].get("nbgrader", {}).get("grade_id") == CELL_ID:
            cell["metadata"] = cells[i]["metadata"]
            if "id" in cells[i]:
                cell["id"] = cells[i]["id"]
            cells[i] = cell
        else:
            cells.insert(len(cells) if i is None else i, cell)
        new = json.dumps(notebook, indent=1, ensure_ascii=False, sort_keys=True) + "\n"  # as nbformat writes
        if new != text:
            path.write_text(new)
            changed.append(path)
    return changed


def main(argv):
    url = public_url()
    if argv == ["--write"]:
        for path in write(url):
            print(f"rewrote {path.relative_to(REPO)}")
        return 0
    if argv:
        print(__doc__.split("\n\n")[1], file=sys.stderr)
        return 2
    print(f"public URL:  {url}\nBinder:      {binder_url(url)}\n"
          f"pip:         {install_commands(url, False)[0]}\nColab:       "
          + "\n             ".join(install_commands(url, True)))
    problems = stale(url)
    print("\n".join(["not current (run `make public-url`):", *problems]) if problems else "all current")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
