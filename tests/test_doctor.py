"""`make doctor` (bncourse/doctor.py): the pre-flight check's lines and exit status.
Its speed (goal: under 15 s on a prepared laptop) is measured, not asserted: it prints its time."""
import io
import os
import re
import subprocess
import sys

import pytest

from autograder.settings import REPO
from bncourse import doctor


class Utf8(io.StringIO):
    encoding = "utf-8"


def run_doctor(tmp_path, *args):
    env = {k: v for k, v in os.environ.items() if k != "BNCOURSE_DOCTOR_KERNEL"}
    env["PYTHONIOENCODING"] = "utf-8"
    return subprocess.run([sys.executable, "-m", "bncourse.doctor", *args], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)


def test_a_ready_machine_passes_every_check(tmp_path):
    out = run_doctor(tmp_path)
    lines = out.stdout.splitlines()
    assert out.returncode == 0, out.stdout + out.stderr
    assert lines[0] == "bncourse doctor: is this machine ready for the course?"
    expected = [
        r"✓ Python 3\.1[123]\.\d+ \(.+\): ",
        r"✓ torch 2\.13\.0(\+cpu)?, CPU-only build \(no CUDA packages\)$",
        r"✓ course data: digits\.npz, checksum verified$",
        r"✓ visible check: batch_mean passed \d+ checks against ",
        r"✓ Jupyter kernel 'python3' started and ran 1\+1 = 2 ",
        r"– bubblewrap: .*only instructors need it",
        r"✓ disk: \d+\.\d GiB free in ",
        r"all 6 checks passed in \d+\.\d s: ready for the course$",
    ]
    assert len(lines) == len(expected) + 1, lines
    for pattern, line in zip(expected, lines[1:]):
        assert re.match(pattern, line), (pattern, line)
    assert out.stderr == ""  # the kernel's start-up warnings are kept out of the report


def test_a_missing_kernel_fails_with_a_fix_and_a_nonzero_status(tmp_path):
    out = run_doctor(tmp_path, "--kernel", "no-such-kernel")
    assert out.returncode == 1, out.stdout + out.stderr
    lines = out.stdout.splitlines()
    (i,) = [i for i, line in enumerate(lines) if line.startswith("✗ ")]
    assert "Jupyter kernel 'no-such-kernel' did not start" in lines[i]
    assert lines[i + 1].startswith("    fix: kernels found: ") and "python3" in lines[i + 1]
    assert re.match(r"1 of 6 checks failed in \d+\.\d s: fix the ✗ lines above", lines[-1]), lines[-1]
    assert sum(line.startswith("✓ ") for line in lines) == 5  # the other checks still ran


@pytest.mark.parametrize("version, status", [
    ((3, 10, 14), "fail"), ((3, 11, 7), "ok"), ((3, 12, 1), "ok"), ((3, 13, 0), "ok"), ((3, 14, 0), "fail")])
def test_python_versions(version, status):
    line = doctor.check_python(version, "/usr/bin/python3")
    assert line.status == status, line
    if status == "fail":
        assert "3.11, 3.12 or 3.13" in line.text and "PYTHON=" in line.fix
    elif version[:2] != (3, 11):
        assert "not tested" in line.text


def test_a_fake_old_python_makes_the_whole_report_fail(monkeypatch):
    real = doctor.check_python
    monkeypatch.setattr(doctor, "check_python", lambda: real((3, 10, 4), "/old/python"))
    monkeypatch.setattr(doctor, "start_kernel", lambda name: doctor.Line("ok", "kernel (not started here)"))
    out = Utf8()
    assert doctor.main([], out=out) == 1
    text = out.getvalue()
    assert "✗ Python 3.10.4 (/old/python): the course needs 3.11, 3.12 or 3.13" in text
    assert "    fix: install Python 3.11" in text and "checks failed" in text


def test_bubblewrap_is_information_never_a_failure():
    missing = doctor.check_bubblewrap("linux", which=lambda name: None)
    assert missing.status == "info" and "not installed" in missing.text and "only instructors" in missing.text
    assert "apt-get install bubblewrap" in missing.text
    assert doctor.check_bubblewrap("linux", which=lambda name: "/usr/bin/bwrap").status == "info"
    assert "Linux only" in doctor.check_bubblewrap("darwin").text


def test_too_little_disk_fails(tmp_path):
    assert doctor.check_disk(tmp_path, minimum=1).status == "ok"
    line = doctor.check_disk(tmp_path, minimum=1 << 60)
    assert line.status == "fail" and "free some space" in line.fix


def test_a_console_without_the_marks_gets_plain_words():
    class Ascii(io.StringIO):
        encoding = "ascii"
    assert doctor.marks(Ascii()) == doctor.PLAIN
    assert doctor.marks(Utf8()) == doctor.MARKS


def test_make_doctor_runs_it():
    makefile = (REPO / "Makefile").read_text()
    assert re.search(r"^doctor:", makefile, re.M) and "-m bncourse.doctor" in makefile
