"""What a learner sees: JupyterLab on the working copy, Run All in a real browser.

Needs Debian's Chromium (/usr/bin/chromium, installed by `make test` where it can) and the
playwright package (the `browser` extra); skipped, saying why, where either is missing.
"""
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from autograder import submissions
from bncourse import workspace

CHROMIUM = "/usr/bin/chromium"
playwright = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"{CHROMIUM} is not installed")
TOKEN = "bncourse-test"


ANSWERED, UNTOUCHED = "01_batch_statistics", "02_normalise_and_scale"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve(argv, tmp_path_factory):
    """Start JupyterLab (`argv` plus options for a free loopback port and TOKEN) with a clean
    user-settings folder; return (server, its base URL)."""
    settings = tmp_path_factory.mktemp("lab-settings")  # a clean user-settings folder
    tracker = settings / "@jupyterlab" / "notebook-extension" / "tracker.jupyterlab-settings"
    tracker.parent.mkdir(parents=True)
    tracker.write_text('{"windowingMode": "none"}')  # every cell in the page, not just visible ones
    port = free_port()
    server = subprocess.Popen(
        argv + ["--no-browser", f"--port={port}", "--ip=127.0.0.1", f"--ServerApp.token={TOKEN}",
                "--ServerApp.disable_check_xsrf=True",
                "--LabApp.expose_app_in_browser=True"],  # window.jupyterapp: its commands
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        env=os.environ | {"JUPYTERLAB_SETTINGS_DIR": str(settings),
                          "JUPYTERLAB_WORKSPACES_DIR": str(tmp_path_factory.mktemp("workspaces"))})
    base = f"http://127.0.0.1:{port}"
    for _ in range(120):
        try:
            urllib.request.urlopen(f"{base}/api/status?token={TOKEN}", timeout=1)
            return server, base
        except OSError:
            time.sleep(0.5)
    stop(server)
    pytest.fail(f"JupyterLab did not start: {argv}")


def stop(server):
    server.terminate()  # bncourse.lab passes it on to JupyterLab and waits for it
    try:
        server.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(server.pid, signal.SIGKILL)  # its session: the launcher and JupyterLab
        server.wait()


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """JupyterLab as `make lab` starts it (bncourse.lab: the learner's settings) on a learner's
    my_course/ (lesson 01 answered, lesson 02 untouched)."""
    work = tmp_path_factory.mktemp("my_course")
    workspace.sync(work=work)
    lesson = ANSWERED
    submissions.write(submissions.filled_notebook(lesson), work / lesson / f"{lesson}.ipynb")
    server, base = serve([sys.executable, "-m", "bncourse.lab", f"--work={work}"], tmp_path_factory)
    yield base, work
    stop(server)


@pytest.fixture(scope="module")
def browser():
    with playwright.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync"])
        yield b
        b.close()


PANEL = ".jp-NotebookPanel:not(.lm-mod-hidden)"  # the notebook in the active tab


def run_all(browser, base, lesson, screenshot):
    """Open a lesson, Run All from the menu; return (output text, images, [cell ran?])."""
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    # a workspace of its own, reset: only this notebook open
    page.goto(f"{base}/lab/workspaces/{lesson}/tree/{lesson}/{lesson}.ipynb?reset&token={TOKEN}")
    page.wait_for_selector(f"{PANEL} .jp-Cell", timeout=90_000)
    page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle']", timeout=90_000)
    prompts = f"{PANEL} .jp-CodeCell .jp-InputPrompt"
    started = "(sel) => [...document.querySelectorAll(sel)].some(e => /\\[(\\*|\\d+)\\]/.test(e.textContent))"
    for _ in range(3):  # on a loaded machine the first click can land before the kernel
        page.locator(".lm-MenuBar-itemLabel", has_text="Run").first.click()  # the menu bar
        page.click("li[data-command='runmenu:run-all']")
        try:  # a cell queued ([*]) or run ([1]): Run All has started
            page.wait_for_function(started, arg=prompts, timeout=60_000)
            break
        except playwright.TimeoutError:
            if page.locator(".jp-Dialog").count():  # e.g. a kernel chooser: take its default
                page.keyboard.press("Enter")
    # Run All is over when no cell waits or runs ([*]) and the first has run; like any
    # notebook, it stops at the first cell that raises (an unanswered test cell)
    page.wait_for_function(
        """(sel) => { const p = [...document.querySelectorAll(sel)].map(e => e.textContent);
                      return p.length && /\\[\\d+\\]/.test(p[0]) && !p.some(t => t.includes('*')); }""",
        arg=prompts, timeout=240_000)
    ran = [p.strip() not in ("", "[ ]:") for p in page.locator(prompts).all_inner_texts()]
    page.screenshot(path=str(screenshot))  # kept in pytest's tmp folder for a person to look at
    texts = page.locator(f"{PANEL} .jp-OutputArea-output").all_inner_texts()
    images = page.locator(f"{PANEL} .jp-OutputArea-output img").count()
    page.close()
    return "\n".join(texts), images, ran


def test_answered_lesson_runs_with_figures_and_passing_checks(lab, browser, tmp_path):
    base, _ = lab
    lesson = ANSWERED
    text, images, ran = run_all(browser, base, lesson, tmp_path / "answered.png")
    assert all(ran), "Run All stopped early"
    assert "✓ batch_mean passed" in text and "✓ batch_variance passed" in text
    assert "✗" not in text and "CheckFailed" not in text and "Traceback" not in text
    assert images >= 2  # the lesson's figures are drawn, once each


def test_untouched_lesson_runs_and_says_what_to_do(lab, browser, tmp_path):
    base, _ = lab
    lesson = UNTOUCHED
    text, images, ran = run_all(browser, base, lesson, tmp_path / "untouched.png")
    # the cells before the first function run (figures included), its check explains, and
    # its test cell stops Run All with the same one-line message, no traceback
    assert images >= 2 and not all(ran)
    assert "✗ normalise: normalise is not implemented yet" in text
    assert "CheckFailed: normalise: normalise is not implemented yet" in text
    assert "most recent call last" not in text


# ------------------------------------------------- the learner's JupyterLab has no instructor tools

# what nbgrader's instructor tools put on the screen (the Nbgrader menu, the formgrader, the
# course list, the "Create Assignment" panel, and the assignment list, which needs an exchange
# that a laptop has not), and JupyterLab's news pop-up
INSTRUCTOR_TOOL = re.compile(r"nbgrader|formgrader|course list|create assignment|assignment list", re.I)
NEWS = "Would you like to get notified about official Jupyter news?"


def what_is_shown(browser, base, lesson, screenshot):
    """Open a lesson in a fresh workspace; return what the page offers: the menu bar, every
    menu's items, the command palette, the side bars' panels, nbgrader's commands, the
    notifications, the notebook's toolbar. Leaves the page open (returned last)."""
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(f"{base}/lab/workspaces/tools/tree/{lesson}/{lesson}.ipynb?reset&token={TOKEN}")
    page.wait_for_selector(f"{PANEL} .jp-Cell", timeout=90_000)
    page.evaluate("async () => { await window.jupyterapp.restored; }")
    shown = {"menu bar": page.locator(".lm-MenuBar-itemLabel").all_inner_texts(), "menus": []}
    for i in range(len(shown["menu bar"])):
        page.locator(".lm-MenuBar-item").nth(i).click()
        page.wait_for_selector(".lm-Menu .lm-Menu-itemLabel:visible")
        shown["menus"] += page.locator(".lm-Menu .lm-Menu-itemLabel:visible").all_inner_texts()
        page.keyboard.press("Escape")
    page.evaluate("() => window.jupyterapp.commands.execute('apputils:activate-command-palette')")
    page.wait_for_selector(".lm-CommandPalette-itemLabel:visible")
    shown["palette"] = page.locator(".lm-CommandPalette-itemLabel:visible").all_inner_texts()
    page.keyboard.press("Escape")
    shown["side bars"] = page.evaluate("""() => [...document.querySelectorAll('.jp-SideBar .lm-TabBar-tab')]
        .map(t => [t.dataset.id, t.title, t.getAttribute('aria-label'), t.innerText].join(' '))""")
    shown["commands"] = page.evaluate(
        "() => window.jupyterapp.commands.listCommands().filter(c => c.startsWith('nbgrader:'))")
    shown["toolbar"] = page.locator(f"{PANEL} .jp-NotebookPanel-toolbar").inner_text()
    shown["notifications"] = page.locator(".Toastify").all_inner_texts()
    page.screenshot(path=str(screenshot))  # kept in pytest's tmp folder for a person to look at
    return shown, page


def status(base, path):
    """The HTTP status of GET path (the server extensions' pages)."""
    try:
        return urllib.request.urlopen(f"{base}{path}?token={TOKEN}", timeout=30).status
    except urllib.error.HTTPError as e:
        return e.code


SERVER_TOOLS = ("/formgrader", "/courses", "/assignments")  # nbgrader's server extensions' pages


def instructor_tools(shown):
    """Each place on the screen -> the instructor's tools and news it shows."""
    found = {where: [x for x in (what if isinstance(what, list) else [what])
                     if INSTRUCTOR_TOOL.search(x) or NEWS in x]
             for where, what in shown.items() if where != "toolbar"}
    return {where: x for where, x in found.items() if x}


def grade_cells(notebook):
    """The grade_ids of a notebook's graded test cells, in order."""
    cells = json.loads(Path(notebook).read_text())["cells"]
    return [c["metadata"]["nbgrader"]["grade_id"] for c in cells
            if c["metadata"].get("nbgrader", {}).get("grade")]


def test_the_learner_sees_no_instructor_tools_and_validate_lists_every_failing_check(lab, browser, tmp_path):
    base, work = lab
    lesson = UNTOUCHED
    shown, page = what_is_shown(browser, base, lesson, tmp_path / "learner.png")
    assert shown["menus"] and shown["palette"] and shown["side bars"]  # the probes saw something
    assert instructor_tools(shown) == {}
    assert {path: status(base, path) for path in SERVER_TOOLS} == dict.fromkeys(SERVER_TOOLS, 404)
    # Validate stays: it runs the saved notebook in a fresh kernel and lists every graded cell
    # that fails (the visible checks: hidden tests are not in a learner's notebook), where Run
    # All stops at the first
    tests = grade_cells(work / lesson / f"{lesson}.ipynb")
    assert len(tests) > 1
    page.locator(f"{PANEL} .jp-NotebookPanel-toolbar").get_by_text("Validate", exact=True).click()
    page.wait_for_selector(".jp-Dialog:has-text('Validation Results')", timeout=180_000)
    report = page.locator(".jp-Dialog .jp-Dialog-body").inner_text()
    page.screenshot(path=str(tmp_path / "validate.png"))
    page.close()
    assert report.count("The following cell failed") == len(tests), report
    for test in tests:
        piece = test.removeprefix("test_")
        assert f"{piece}: {piece} is not implemented yet" in report, piece


def test_without_the_learner_settings_the_instructor_has_the_tools(lab, browser, tmp_path_factory, tmp_path):
    """The control: plain `jupyter lab` in the same environment, on the same folder, shows the
    instructor's tools and the news question, so the learner test above can fail."""
    _, work = lab
    server, base = serve([sys.executable, "-m", "jupyterlab", f"--ServerApp.root_dir={work}"]
                         + (["--allow-root"] if os.geteuid() == 0 else []), tmp_path_factory)
    try:
        shown, page = what_is_shown(browser, base, UNTOUCHED, tmp_path / "instructor.png")
        page.close()
        statuses = {path: status(base, path) for path in SERVER_TOOLS}
    finally:
        stop(server)
    found = instructor_tools(shown)
    assert "Nbgrader" in shown["menu bar"]
    assert {"Formgrader", "Course List", "Assignment List"} <= set(found["menus"]), found
    assert any("Create Assignment" in tab for tab in found["side bars"]), found
    assert {"nbgrader:open-formgrader", "nbgrader:open-create-assignment"} <= set(found["commands"])
    assert any(NEWS in n for n in found["notifications"]), shown["notifications"]
    assert "Validate" in shown["toolbar"]
    assert 404 not in statuses.values(), statuses  # served (/assignments wants a course_id)
