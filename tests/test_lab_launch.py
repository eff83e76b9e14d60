"""`make lab`'s launcher (bncourse/lab.py) without a browser: the learner's settings reach
Jupyter's own look-up for that launch only, the same environment keeps the instructor's tools,
and the hub's learner servers get the same settings. tests/test_lab.py shows in Chromium what
the learner then sees.
"""
import json
import os
import re
import subprocess
import sys
from pathlib import Path

from bncourse import lab

REPO = Path(__file__).resolve().parents[1]
INSTRUCTOR_PLUGINS = ["@jupyter/nbgrader:formgrader", "@jupyter/nbgrader:course-list",
                      "@jupyter/nbgrader:create-assignment"]
NEWS = "@jupyterlab/apputils-extension:announcements"
# what JupyterLab and Jupyter Server would read, asked through their own look-up functions
PROBE = """
import json, os, sys
from jupyter_core.paths import jupyter_config_path
from jupyter_server.extension.config import ExtensionConfigManager
from jupyterlab_server.config import get_page_config
folder = os.environ.get("JUPYTER_CONFIG_PATH", "").split(os.pathsep)[0]
print(json.dumps({
    "folder": folder, "files": sorted(os.path.relpath(os.path.join(d, f), folder)
                                      for d, _, fs in os.walk(folder) for f in fs) if folder else [],
    "disabled": get_page_config([], None)["disabledExtensions"],
    "server": ExtensionConfigManager(read_config_path=jupyter_config_path()).get_jpserver_extensions(),
    "options": sys.argv[1:]}))
"""


def launch(monkeypatch, capfd, tmp_path):
    """bncourse.lab.main with the probe in JupyterLab's place: (what it saw, return code)."""
    monkeypatch.setattr(lab, "command", lambda work, options: [sys.executable, "-c", PROBE, str(work), *options])
    monkeypatch.delenv("JUPYTER_CONFIG_PATH", raising=False)
    code = lab.main(argv=[f"--work={tmp_path / 'my_course'}", "--port=1234"])
    out = capfd.readouterr().out
    return json.loads(out.strip().splitlines()[-1]), code, out


def test_make_lab_gives_the_learner_settings_for_that_launch_only(monkeypatch, capfd, tmp_path):
    seen, code, out = launch(monkeypatch, capfd, tmp_path)
    assert code == 0
    assert seen["options"] == [str(tmp_path / "my_course"), "--port=1234"]  # options passed on
    assert (tmp_path / "my_course" / "01_batch_statistics" / "01_batch_statistics.ipynb").is_file()
    folder = Path(seen["folder"])
    assert folder.name.startswith("bncourse-lab-")
    assert str(folder) in out  # it says where the settings are
    assert not folder.exists()  # made for the launch, gone when JupyterLab stops
    assert {"labconfig/page_config.json", "jupyter_server_config.d/zz-bncourse-learner.json"} <= set(seen["files"])
    disabled = set(seen["disabled"])
    assert set(INSTRUCTOR_PLUGINS) | {NEWS} <= disabled
    # a laptop has no nbgrader exchange: no assignment list, and no Nbgrader menu left empty
    assert {"@jupyter/nbgrader:assignment-list", "@jupyter/nbgrader:menu"} <= disabled
    assert "@jupyter/nbgrader:validate-assignment" not in disabled
    server = seen["server"]
    assert server["nbgrader.server_extensions.formgrader"] is False
    assert server["nbgrader.server_extensions.course_list"] is False
    assert server["nbgrader.server_extensions.assignment_list"] is False
    assert server["nbgrader.server_extensions.validate_assignment"] is True


def test_the_same_environment_without_the_launcher_keeps_the_instructors_tools():
    env = {k: v for k, v in os.environ.items() if k != "JUPYTER_CONFIG_PATH"}
    out = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, check=True)
    seen = json.loads(out.stdout)
    assert not set(INSTRUCTOR_PLUGINS) & set(seen["disabled"])
    assert seen["server"]["nbgrader.server_extensions.formgrader"] is True


def test_the_hubs_learner_servers_get_the_same_settings_with_the_assignment_list():
    """One source: bncourse/learner_jupyter/ is what deploy/hub/learner_env.py and the learners'
    image copy into their environment's etc/jupyter; the laptop layer stays out of it (the hub
    has an exchange: tests/test_hub.py fetches and submits through the assignment list)."""
    assert lab.LEARNER == REPO / "bncourse" / "learner_jupyter"
    dockerfile = (REPO / "deploy" / "singleuser" / "Dockerfile").read_text()
    assert re.findall(r"^COPY (\S+) /usr/local/etc/jupyter$", dockerfile, re.M) == ["bncourse/learner_jupyter"]
    assert ('shutil.copytree(REPO / "bncourse" / "learner_jupyter", prefix / "etc" / "jupyter"'
            in (REPO / "deploy" / "hub" / "learner_env.py").read_text())
    shared = json.loads((lab.LEARNER / lab.PAGE_CONFIG).read_text())["disabledExtensions"]
    assert {p for p, off in shared.items() if off} == set(INSTRUCTOR_PLUGINS) | {NEWS}
    server = json.loads((lab.LEARNER / lab.SERVER_CONFIG).read_text())["ServerApp"]["jpserver_extensions"]
    assert server["nbgrader.server_extensions.assignment_list"] is True
