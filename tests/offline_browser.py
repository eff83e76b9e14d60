"""Debian's Chromium driven by playwright, offline: the pages the grader writes (feedback, the class
report) must show everything from the file itself. Every request that is not file:, data: or
loopback is aborted and listed. Screenshots go to tests/artifacts/<name>/ (git-ignored), kept for
a person to look at."""
import contextlib
import shutil
from pathlib import Path
from urllib.parse import urlsplit

import pytest

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).parent / "artifacts"
# as the machine's probe starts it: without the background-networking flags Chromium calls out at start
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"]


def allowed(url):
    parts = urlsplit(url)
    return parts.scheme in ("file", "data") or parts.hostname in ("127.0.0.1", "localhost", "::1")


def screenshots(name):
    """A fresh folder tests/artifacts/<name>/ for one test's screenshots."""
    folder = ARTIFACTS / name
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    return folder


@contextlib.contextmanager
def offline_page(viewport=(1000, 800)):
    """(page, blocked): a page whose requests off this machine are aborted, and their URLs."""
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is not installed")
    blocked = []

    def route(r):
        if allowed(r.request.url):
            r.continue_()
        else:
            blocked.append(r.request.url)
            r.abort()

    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        try:
            context = browser.new_context(viewport={"width": viewport[0], "height": viewport[1]})
            context.route("**/*", route)
            yield context.new_page(), blocked
        finally:
            browser.close()
