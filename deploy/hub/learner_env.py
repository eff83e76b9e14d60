"""Build the LEARNER environment that students' single-user servers run on the hub.

    python deploy/hub/learner_env.py .venv-learner [--python /usr/bin/python3.11]

The environment of every single-user server on the hub: a second virtual environment with
the course's exact pins (pyproject.toml: torch==2.13.0 first, then jupyterlab, notebook,
nbgrader, ... and the `hub` extra's jupyterhub) and only the learner package `bncourse`
(copied in, with the course's data from datasets/ inside it as bncourse/datasets/, where a wheel puts
it): no `autograder`, no `solutions/`, no tests. nbgrader's
instructor extensions are switched off in the environment's own Jupyter config
(bncourse/learner_jupyter/, the settings `make lab` uses too, copied into <venv>/etc/jupyter):
no formgrader, no course list, no "Create Assignment", no news pop-up; the assignment list
(fetch / submit / feedback) and Validate stay.

It is built on a Python 3.11 that every Unix user can run (the system's /usr/bin/python3.11 by
default; a Python under /root, as pyenv installs it, is not). The instructor's servers run it
too, with their private copy of the grading code on PYTHONPATH and nbgrader's instructor
extensions switched on in their own ~/.jupyter (deploy/hub/instructor/), as nbgrader's docs
set extensions per account.

The environment is relocatable as a whole folder (a hard-linked copy works): bncourse is found
through a .pth line relative to site-packages, and the servers are started as
`<venv>/bin/python -m jupyterhub.singleuser`, never through a script's #! line.
"""
import argparse
import os
import shutil
import stat
import subprocess
import sys
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PACKAGE_DIR = "bncourse-learner"  # <venv>/bncourse-learner/bncourse (datasets/ copied inside)
# test-only and instructor-only pins the learner does not need
NOT_FOR_LEARNERS = {"pytest"}


def pins():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    wanted = project["dependencies"] + project["optional-dependencies"]["hub"]
    return [p for p in wanted if p.split("==")[0].strip().lower() not in NOT_FOR_LEARNERS]


def site_packages(prefix):
    return Path(prefix) / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages"


def world_usable(path, run=True):
    """True if a user who is neither owner nor group can reach and read (run=True: and run)
    `path`: every folder above it searchable by others, the file readable by others."""
    path = Path(os.path.realpath(path))
    for folder in path.parents:
        if not os.stat(folder).st_mode & stat.S_IXOTH:
            return False
    mode = os.stat(path).st_mode
    return bool(mode & stat.S_IROTH and (mode & stat.S_IXOTH or not run))


def build(prefix, base="/usr/bin/python3.11"):
    prefix = Path(prefix).resolve()
    stdlib = subprocess.run([base, "-c", "import os; print(os.__file__)"], check=True,
                            capture_output=True, text=True).stdout.strip()
    if not (world_usable(base) and world_usable(stdlib, run=False)):
        raise SystemExit(f"{base} cannot be run by other users (a folder above it is private): "
                         "give --python a Python 3.11 installed for everyone")
    python = prefix / "bin" / "python"
    if python.exists() and os.path.realpath(python) != os.path.realpath(base):
        shutil.rmtree(prefix)  # made from another Python: start again
    if not python.exists():
        subprocess.run([base, "-m", "venv", str(prefix)], check=True)
    requirements = pins()
    torch = [p for p in requirements if p.startswith("torch==")]
    assert torch == ["torch==2.13.0"], torch
    pip = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    # first and exact, on Linux from PyTorch's CPU index when it answers (tools/torch_index.py)
    index = subprocess.run([sys.executable, str(REPO / "tools" / "torch_index.py")], check=True,
                           stdout=subprocess.PIPE, text=True).stdout.split()
    subprocess.run(pip + index + torch, check=True)
    subprocess.run(pip + [p for p in requirements if p not in torch], check=True)
    # only the learner package, as plain files (no editable link back into this repository)
    target = prefix / PACKAGE_DIR
    shutil.rmtree(target, ignore_errors=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(REPO / "bncourse", target / "bncourse", ignore=ignore)
    # the data (the repository's top-level datasets/) where a wheel puts it: bncourse.datasets
    shutil.copytree(REPO / "datasets", target / "bncourse" / "datasets", ignore=ignore)
    sp = site_packages(prefix)
    (sp / "bncourse-learner.pth").write_text(f"../../../{PACKAGE_DIR}\n")  # relative: relocatable
    # the learner's Jupyter config (shared with `make lab`): nbgrader's instructor extensions off
    shutil.copytree(REPO / "bncourse" / "learner_jupyter", prefix / "etc" / "jupyter", dirs_exist_ok=True)
    check(prefix)
    return prefix


def check(prefix):
    """The environment imports bncourse and nbgrader, finds the course's data, and has no grading package."""
    code = ("import importlib.util, bncourse, nbgrader, jupyterhub, torch;"
            "assert importlib.util.find_spec('autograder') is None, 'autograder is importable';"
            "from bncourse import data; data.verify();"
            "print(torch.__version__, nbgrader.__version__, jupyterhub.__version__)")
    out = subprocess.run([str(Path(prefix) / "bin" / "python"), "-c", code], check=True,
                         capture_output=True, text=True, cwd="/")
    print(f"learner environment {prefix}: torch, nbgrader, jupyterhub = {out.stdout.strip()}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("prefix", nargs="?", default=str(REPO / ".venv-learner"))
    parser.add_argument("--python", default="/usr/bin/python3.11",
                        help="a Python 3.11 every user can run (default: the system's)")
    args = parser.parse_args()
    build(args.prefix, args.python)
