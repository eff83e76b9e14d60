"""`make lab`: JupyterLab on the learner's working copy, without the instructor's tools.

    python -m bncourse.lab [--course DIR] [--work DIR] [any `jupyter lab` option ...]

Tops up the working copy (bncourse.workspace: my_course/, nothing of the learner's overwritten),
then runs `jupyter lab` on it with the learner's settings in a Jupyter configuration directory
made for this launch only (a temporary folder, removed when JupyterLab stops) and put first on
JUPYTER_CONFIG_PATH, which Jupyter reads before ~/.jupyter and the environment's etc/jupyter.
Nothing is written to the environment or to the user's own configuration, so in the same
environment an instructor who runs plain `jupyter lab` still gets nbgrader's formgrader.

The settings are JupyterLab's and Jupyter Server's own: `labconfig/page_config.json`
("disabledExtensions": front-end plugins) and `jupyter_server_config.d/*.json` (server extension
switches). Two layers:
- LEARNER, the folder bncourse/learner_jupyter/, is shared with every learner's server on the
  hub (deploy/hub/learner_env.py copies it into the learners' environment, as
  deploy/singleuser/Dockerfile does into the image): no formgrader, no course list, no "Create
  Assignment" panel (front-end plugins and server extensions), no JupyterLab news pop-up (the
  announcements plugin, which also checks for updates); nbgrader's "Validate" button stays.
- LAPTOP, below, for `make lab` only: a laptop has no nbgrader exchange, so the assignment list
  (fetch / submit, which works on the hub) could only say "the exchange directory does not
  exist"; it goes, and with it the Nbgrader menu, which would be left empty.
"""
import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

from bncourse import workspace

LEARNER = Path(__file__).resolve().parent / "learner_jupyter"
PAGE_CONFIG = Path("labconfig") / "page_config.json"
SERVER_CONFIG = Path("jupyter_server_config.d") / "zz-bncourse-learner.json"
LAPTOP = {
    PAGE_CONFIG: {"disabledExtensions": {"@jupyter/nbgrader:assignment-list": True,
                                         "@jupyter/nbgrader:menu": True}},
    SERVER_CONFIG: {"ServerApp": {"jpserver_extensions": {
        "nbgrader.server_extensions.assignment_list": False}}},
}


def _merge(into, extra):
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        else:
            into[key] = value
    return into


def write_config(dest, layers=(LAPTOP,)):
    """Write the learner's Jupyter configuration into the folder `dest`: LEARNER's files, with
    each layer's settings merged into the file of the same name. Returns `dest`."""
    dest = Path(dest)
    shutil.copytree(LEARNER, dest, dirs_exist_ok=True)
    for layer in layers:
        for name, extra in layer.items():
            path = dest / name
            data = json.loads(path.read_text()) if path.exists() else {}
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(_merge(data, extra), indent=2) + "\n")
    return dest


def environment(config_dir, env=None):
    """`env` (default: this process's) with `config_dir` first on JUPYTER_CONFIG_PATH."""
    env = dict(os.environ if env is None else env)
    env["JUPYTER_CONFIG_PATH"] = os.pathsep.join(
        p for p in (str(config_dir), env.get("JUPYTER_CONFIG_PATH")) if p)
    return env


def command(work, options=()):
    """`jupyter lab` on `work`, run by this Python (no reliance on PATH)."""
    root = ["--allow-root"] if hasattr(os, "geteuid") and os.geteuid() == 0 else []
    return [sys.executable, "-m", "jupyterlab", f"--notebook-dir={work}", *root, *options]


def main(*, argv=None):
    # keyword-only: nothing starts a server by being handed a lesson's inputs (the package
    # scan of tests/test_no_answers.py calls every function that accepts them)
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], allow_abbrev=False)
    parser.add_argument("--course", type=Path, default=workspace.REPO / "course")
    parser.add_argument("--work", type=Path, default=workspace.REPO / "my_course")
    args, options = parser.parse_known_args(argv)
    workspace.main(args.course, args.work)
    with tempfile.TemporaryDirectory(prefix="bncourse-lab-") as config:
        write_config(config)
        print(f"learner settings for this launch: {config} (no formgrader; an instructor's "
              "own `.venv/bin/jupyter lab` has it)", flush=True)
        server = subprocess.Popen(command(args.work, options), env=environment(config))
        # Ctrl-C reaches JupyterLab itself (it asks whether to stop); a kill is passed on, so
        # the configuration folder is only removed once JupyterLab has stopped
        before = (signal.signal(signal.SIGINT, signal.SIG_IGN),
                  signal.signal(signal.SIGTERM, lambda *_: server.terminate()))
        try:
            return server.wait()
        finally:
            signal.signal(signal.SIGINT, before[0])
            signal.signal(signal.SIGTERM, before[1])


if __name__ == "__main__":
    sys.exit(main(argv=sys.argv[1:]))
