"""What a learner sees: JupyterLab on the working copy, Run All in a real browser.

Needs Debian's Chromium (/usr/bin/chromium, installed by `make test` where it can) and the
playwright package (the `browser` extra); skipped, saying why, where either is missing.
"""
import os
import socket
import subprocess
import sys
import time
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


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """JupyterLab serving a learner's my_course/ (lesson 01 answered, lesson 02 untouched)."""
    work = tmp_path_factory.mktemp("my_course")
    workspace.sync(work=work)
    lesson = ANSWERED
    submissions.write(submissions.filled_notebook(lesson), work / lesson / f"{lesson}.ipynb")
    settings = tmp_path_factory.mktemp("lab-settings")  # a clean user-settings folder
    tracker = settings / "@jupyterlab" / "notebook-extension" / "tracker.jupyterlab-settings"
    tracker.parent.mkdir(parents=True)
    tracker.write_text('{"windowingMode": "none"}')  # every cell in the page, not just visible ones
    news = settings / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings"
    news.parent.mkdir(parents=True)
    news.write_text('{"fetchNews": "false"}')
    port = free_port()
    server = subprocess.Popen(
        [str(Path(sys.executable).parent / "jupyter"), "lab", "--no-browser", f"--port={port}",
         "--ip=127.0.0.1", f"--ServerApp.token={TOKEN}", f"--ServerApp.root_dir={work}",
         "--ServerApp.disable_check_xsrf=True", "--LabApp.news_url=None",
         "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"]
        + (["--allow-root"] if os.geteuid() == 0 else []),
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        env=os.environ | {"JUPYTERLAB_SETTINGS_DIR": str(settings),
                          "JUPYTERLAB_WORKSPACES_DIR": str(tmp_path_factory.mktemp("workspaces"))})
    base = f"http://127.0.0.1:{port}"
    for _ in range(120):
        try:
            urllib.request.urlopen(f"{base}/api/status?token={TOKEN}", timeout=1)
            break
        except OSError:
            time.sleep(0.5)
    else:
        server.kill()
        pytest.fail("JupyterLab did not start")
    yield base, work
    server.terminate()
    server.wait(timeout=30)


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
