"""tools/torch_index.py: which index `make install` takes torch from.

Loopback only: an index that answers (a PEP 503 page served here), a port that accepts and
never answers, a port that refuses; and pip resolving the course's pin `torch==2.13.0` to the
CPU build through a loopback copy of PyTorch's CPU index, with pip's own configuration off.
"""
import contextlib
import functools
import html
import http.server
import importlib.util
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from autograder.settings import REPO

SCRIPT = REPO / "tools" / "torch_index.py"
spec = importlib.util.spec_from_file_location("torch_index", SCRIPT)
torch_index = importlib.util.module_from_spec(spec)
spec.loader.exec_module(torch_index)


@contextlib.contextmanager
def silent_port():
    """A port that accepts connections (the kernel's backlog) and never says a word."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    try:
        yield f"http://127.0.0.1:{server.getsockname()[1]}/whl/cpu"
    finally:
        server.close()


@contextlib.contextmanager
def loopback_index(root):
    """Serve the folder `root` (a PEP 503 tree) on loopback; yields the base URL."""
    handler = functools.partial(Quiet, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


class Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def cpu_index(root, wheels=()):
    """A PEP 503 index at root/whl/cpu with a torch page listing `wheels` (linked by name)."""
    page = root / "whl" / "cpu" / "torch"
    page.mkdir(parents=True)
    links = "".join(f'<a href="{html.escape(w.name)}">{html.escape(w.name)}</a>\n' for w in wheels)
    (page / "index.html").write_text(f"<!DOCTYPE html><html><body>\n{links}</body></html>\n")
    for wheel in wheels:
        (page / wheel.name).symlink_to(wheel)
    return root


def test_silent_index_falls_back_within_the_timeout_with_a_notice():
    with silent_port() as url:
        start = time.perf_counter()
        args, notice = torch_index.choose({}, "linux", url=url)
        elapsed = time.perf_counter() - start
    assert args == []
    assert notice.startswith("note: ") and "\n" not in notice
    assert url in notice and "ordinary index" in notice and torch_index.VARIABLE in notice
    assert torch_index.TIMEOUT - 0.5 < elapsed < torch_index.TIMEOUT + 1.5, elapsed


def test_refused_port_falls_back_at_once():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again when the block ends: nothing listens there
    start = time.perf_counter()
    args, notice = torch_index.choose({}, "linux", url=f"http://127.0.0.1:{port}/whl/cpu")
    assert args == [] and "could not be reached" in notice
    assert time.perf_counter() - start < 1.5


def test_answering_index_is_added_as_extra_index(tmp_path):
    with loopback_index(cpu_index(tmp_path)) as base:
        url = f"{base}/whl/cpu"
        assert torch_index.choose({}, "linux", url=url) == (["--extra-index-url", url], None)


@pytest.mark.parametrize("platform", ["darwin", "win32"])
def test_macos_and_windows_get_the_ordinary_wheels_without_a_probe(platform):
    with silent_port() as url:
        start = time.perf_counter()
        assert torch_index.choose({}, platform, url=url) == ([], None)
        assert time.perf_counter() - start < 0.5


def run_script(value):
    env = {k: v for k, v in os.environ.items() if k != torch_index.VARIABLE}
    if value is not None:
        env[torch_index.VARIABLE] = value
    return subprocess.run([sys.executable, str(SCRIPT)], env=env, capture_output=True, text=True, timeout=30)


@pytest.mark.parametrize("value, expected", [
    ("cpu", ["--extra-index-url", torch_index.CPU_INDEX]),
    ("default", []),
    ("https://mirror.example/torch-cpu/", ["--extra-index-url", "https://mirror.example/torch-cpu/"]),
    ("file:///srv/wheels/cpu", ["--extra-index-url", "file:///srv/wheels/cpu"]),
])
def test_the_variable_overrides_without_probing(value, expected):
    start = time.perf_counter()
    out = run_script(value)
    assert out.returncode == 0 and out.stderr == "", out.stderr
    assert out.stdout.split() == expected
    assert time.perf_counter() - start < 2  # no probe: the answer is what was asked for


def test_a_bad_value_is_refused():
    out = run_script("cuda")
    assert out.returncode == 2 and out.stdout == ""
    assert "BNCOURSE_TORCH_INDEX='cuda'" in out.stderr and "cpu" in out.stderr


def test_the_makefile_and_the_hub_environment_use_it():
    makefile = (REPO / "Makefile").read_text()
    assert "tools/torch_index.py" in makefile and "$$args torch==2.13.0" in makefile
    assert "tools\" / \"torch_index.py" in (REPO / "deploy" / "hub" / "learner_env.py").read_text()


def local_torch_wheel():
    for folder in (Path("/opt/wheels"), Path.home() / "wheels"):
        found = sorted(folder.glob("torch-2.13.0+cpu-*.whl")) if folder.is_dir() else []
        if found:
            return found[0]
    return None


def plain_torch_wheel(folder):
    """A stand-in for PyPI's `torch-2.13.0` (the CUDA build on Linux): a tiny wheel, same version
    without the local label."""
    import zipfile
    folder.mkdir(parents=True)
    wheel = folder / "torch-2.13.0-py3-none-any.whl"
    info = "torch-2.13.0.dist-info"
    with zipfile.ZipFile(wheel, "w") as z:
        z.writestr(f"{info}/METADATA", "Metadata-Version: 2.1\nName: torch\nVersion: 2.13.0\n")
        z.writestr(f"{info}/WHEEL", "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
        z.writestr(f"{info}/RECORD", "")
    return wheel


@pytest.mark.skipif(local_torch_wheel() is None, reason="no local torch-2.13.0+cpu wheel to serve")
def test_pip_takes_the_cpu_build_for_the_pin_through_the_extra_index(tmp_path):
    """pip, with its configuration and PIP_* variables off, a main index offering a plain
    torch 2.13.0 (as PyPI does) and the CPU index on loopback, resolves the course's pin
    `torch==2.13.0` to 2.13.0+cpu."""
    root = cpu_index(tmp_path / "index", [local_torch_wheel()])
    plain = plain_torch_wheel(root / "simple" / "torch")
    (root / "simple" / "torch" / "index.html").write_text(f'<a href="{plain.name}">{plain.name}</a>\n')
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    with loopback_index(root) as base:
        args, notice = torch_index.choose({}, "linux", url=f"{base}/whl/cpu")
        assert notice is None
        out = subprocess.run(
            [sys.executable, "-m", "pip", "install", "--isolated", "--dry-run", "--ignore-installed",
             "--no-deps", "--quiet", "--report", "-", "--index-url", f"{base}/simple", *args,
             "torch==2.13.0"],
            env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    import json
    report = json.loads(out.stdout)
    assert [i["metadata"]["version"] for i in report["install"]] == ["2.13.0+cpu"]


def test_conda_environment_points_pip_at_the_same_cpu_index():
    import yaml
    env = yaml.safe_load((REPO / "environment.yml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    assert f"--extra-index-url {torch_index.CPU_INDEX}" in pip
    assert pip.index(f"--extra-index-url {torch_index.CPU_INDEX}") < pip.index("torch==2.13.0")
