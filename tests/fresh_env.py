"""A fresh environment for tests that install or run the course the way a learner would:
an environment variable set without this project's pip, Python, venv or Jupyter settings, and
a venv without system site packages that sees this project's installed dependencies (torch,
numpy, jupyter, pip ...) through one .pth line, after its own site-packages."""
import os
import subprocess
import sys
import sysconfig
from pathlib import Path


def clean_env(**extra):
    """os.environ without PIP_*, PYTHON*, VIRTUAL_ENV, JUPYTER*, CONDA*; MPLBACKEND=Agg; EXTRA."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PIP_", "PYTHON", "VIRTUAL_ENV", "JUPYTER", "CONDA"))}
    return {**env, "MPLBACKEND": "Agg", **extra}


def fresh_venv(venv):
    """Create VENV (no pip, no system site packages) reaching the dependencies; its python.

    The .pth line is a path line, so the editable install's own .pth in the project's
    site-packages is never processed: `bncourse` is importable only once installed here."""
    venv = Path(venv)
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, env=clean_env())
    python = venv / "bin" / "python"
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          check=True, capture_output=True, text=True, env=clean_env()).stdout.strip()
    Path(site, "zz-course-dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return python
