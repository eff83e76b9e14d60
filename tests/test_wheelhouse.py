"""`make wheelhouse` (tools/wheelhouse.py) fills a folder with every wheel the course installs, and
the course installs from it with the network off.

The wheelhouse is built once per test session, as a host builds it (with the machine's own pip
configuration). The install then runs as a room without network would: inside `unshare -n` (a
network namespace where only loopback is up; no address outside is reachable, asserted), in a
fresh venv, with pip's `--isolated --no-index --find-links WHEELHOUSE` and no PIP_* variable, so
no configured index, local wheel folder or cache can stand in for a missing wheel. It follows
`make install`'s two steps: torch==2.13.0 first, then the course's package, editable, from a
copy of the repository (its build backend must come from the wheelhouse too); then
`python -m bncourse.doctor`, what the set-up message asks participants to run, must find the
machine ready. `--no-compile` only skips writing .pyc files, to keep the test short. The times
are printed (pytest -s shows them).
"""
import os
import platform
import shutil
import subprocess
import sys
import time

import pytest

from autograder.settings import REPO
from tests.fresh_env import clean_env
from tests.test_install import source_tree

pytestmark = pytest.mark.install
sys.path.insert(0, str(REPO / "tools"))
import wheelhouse as builder  # noqa: E402

THIS_PLATFORM = sys.platform.startswith("linux") and platform.machine() == "x86_64"
NO_NETWORK = "the network-off install needs root on Linux, unshare and ip (a network namespace of its own)"


@pytest.fixture(scope="session")
def wheelhouse(tmp_path_factory):
    dest = tmp_path_factory.mktemp("wheelhouse")
    start = time.perf_counter()
    out = subprocess.run([sys.executable, str(REPO / "tools" / "wheelhouse.py"), str(dest)],
                         capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stdout + out.stderr
    wheels = list(dest.glob("*.whl"))
    print(f"\nwheelhouse: {len(wheels)} wheels, {sum(p.stat().st_size for p in wheels) / 1e6:.0f} MB, "
          f"built in {time.perf_counter() - start:.1f} s")
    return dest


def test_make_wheelhouse_runs_the_builder_into_the_folder_given(tmp_path):
    out = subprocess.run(["make", "-n", "wheelhouse", f"WHEELHOUSE={tmp_path / 'wh'}"], cwd=REPO,
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert f"tools/wheelhouse.py {tmp_path / 'wh'}" in out.stdout


def test_a_platform_tag_it_cannot_read_is_refused_before_any_download(tmp_path):
    out = subprocess.run([sys.executable, str(REPO / "tools" / "wheelhouse.py"), str(tmp_path / "wh"),
                          "--platform", "amiga"], capture_output=True, text=True)
    assert out.returncode == 2 and "--platform 'amiga'" in out.stderr and "manylinux" in out.stderr
    assert not (tmp_path / "wh").exists()
    assert builder.os_of("manylinux_2_28_x86_64") == "linux" and builder.os_of("macosx_11_0_arm64") == "darwin"


def test_cuda_wheels_are_recognised_by_name(tmp_path):
    for name in ("nvidia_cublas_cu12-12.8.4.1-py3-none-manylinux_2_27_x86_64.whl",
                 "triton-3.5.0-cp311-cp311-manylinux_2_27_x86_64.whl", "numpy-2.4.6-cp311-cp311-linux_x86_64.whl"):
        (tmp_path / name).touch()
    assert builder.cuda_wheels(tmp_path) == ["nvidia_cublas_cu12-12.8.4.1-py3-none-manylinux_2_27_x86_64.whl",
                                             "triton-3.5.0-cp311-cp311-manylinux_2_27_x86_64.whl"]


@pytest.mark.skipif(not THIS_PLATFORM, reason="the CPU wheel's name is checked on Linux x86_64")
def test_it_holds_the_cpu_torch_and_no_cuda_wheel(wheelhouse):
    names = [p.name for p in wheelhouse.glob("*.whl")]
    assert [n for n in names if n.startswith("torch-")] == \
        [f"torch-2.13.0+cpu-cp{sys.version_info[0]}{sys.version_info[1]}-"
         f"cp{sys.version_info[0]}{sys.version_info[1]}-manylinux_2_28_x86_64.whl"]
    assert builder.cuda_wheels(wheelhouse) == []
    assert any(n.startswith("setuptools-") for n in names)  # `pip install -e .` builds with it
    said = (wheelhouse / builder.INSTRUCTIONS).read_text()
    version = f"{sys.version_info[0]}.{sys.version_info[1]}"
    assert "PIP_NO_INDEX=1" in said and f"linux-x86_64, Python {version}" in said
    assert f"python{version} -m venv" in said


def offline(*args, **kwargs):
    """Run ARGS in a network namespace of its own, where only loopback is up (as on a laptop with
    its network off: Jupyter's kernel talks to it over 127.0.0.1), without PIP_* variables."""
    out = subprocess.run(["unshare", "-n", "sh", "-c", 'ip link set lo up && exec "$@"', "sh", *map(str, args)],
                         capture_output=True, text=True, env=clean_env(), timeout=900, **kwargs)
    assert out.returncode == 0, f"{args}\n{out.stdout}\n{out.stderr}"
    return out.stdout


@pytest.mark.skipif(not (THIS_PLATFORM and os.geteuid() == 0 and shutil.which("unshare") and shutil.which("ip")),
                    reason=NO_NETWORK)
def test_the_course_installs_from_it_with_the_network_off(wheelhouse, tmp_path):
    src = source_tree(tmp_path / "src")
    venv = tmp_path / "venv"
    python = venv / "bin" / "python"
    offline(sys.executable, "-m", "venv", venv)
    pip = [python, "-m", "pip", "--isolated", "install", "--quiet", "--no-compile", "--no-cache-dir", "--no-index",
           "--find-links", wheelhouse]
    times = []
    for what in (["torch==2.13.0"], ["-e", src]):  # make install's two steps
        start = time.perf_counter()
        offline(*pip, *what, cwd=tmp_path)
        times.append(time.perf_counter() - start)
    print(f"\noffline install: torch in {times[0]:.1f} s, the rest in {times[1]:.1f} s")
    offline(python, "-m", "pip", "check")
    check = ("import socket, sys, torch, bncourse, jupyterlab, notebook, nbgrader, matplotlib, tqdm\n"
             "try:\n    socket.create_connection(('1.1.1.1', 443), timeout=2)\n    sys.exit('network reachable')\n"
             "except OSError:\n    pass\n"
             "print(torch.__version__, bncourse.__file__)")
    version, where = offline(python, "-c", check, cwd=tmp_path).split()
    assert version == "2.13.0+cpu"
    assert where.startswith(str(src))  # the editable install of the copy, not the repository
    start = time.perf_counter()
    doctor = offline(python, "-m", "bncourse.doctor", cwd=src)  # the set-up message's check, offline
    print(f"bncourse.doctor offline in {time.perf_counter() - start:.1f} s")
    assert "ready for the course" in doctor and "✗" not in doctor, doctor
