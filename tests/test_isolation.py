"""Pluggable isolation (autograder/sandbox.py): why bubblewrap fails, diagnosed from real
probes where this machine can make the failure happen (no bwrap on PATH, a container
runtime's seccomp filter, user namespaces switched off) and from the known messages
otherwise; and the "pod" mode, refused outside a locked-down pod and grading inside one.

The pod is emulated with bubblewrap itself (the namespaces a container runtime creates:
non-root user, read-only root, no network, own process list, no capabilities) plus
tests/confine.py (no_new_privs and a seccomp filter like the runtimes' default profile)."""
import os
import platform
import shutil
import socket
import subprocess
import sys

import pytest

from autograder import grading, sandbox
from autograder.settings import REPO
from tests.confine import emulated_pod_args

CONFINE = [sys.executable, str(REPO / "tests" / "confine.py")]
PROBE = ("from autograder import sandbox; p = sandbox.probe_bubblewrap(); "
         "print(p.cause or 'ok'); print(sandbox.diagnose())")
ROOT = os.geteuid() == 0
BWRAP = shutil.which("bwrap")
X86 = platform.machine() == "x86_64"
PLAIN = {"bwrap": "/usr/bin/bwrap", "setuid": False, "unprivileged_userns_clone": None,
         "max_user_namespaces": "15000", "apparmor_restrict_unprivileged_userns": None,
         "seccomp": "0", "cap_sys_admin": False, "container": False}
NO_PERMISSION = ("bwrap: No permissions to create new namespace, likely because the kernel does "
                 "not allow non-privileged user namespaces. See <https://deb.li/bubblewrap> or "
                 "<file:///usr/share/doc/bubblewrap/README.Debian.gz>.")


def python(code, env=None, prefix=(), timeout=120):
    env = {**os.environ, **(env or {})}
    return subprocess.run([*prefix, sys.executable, "-c", code], capture_output=True, text=True,
                          env=env, cwd=REPO, timeout=timeout)


@pytest.mark.parametrize("stderr, facts, cause", [
    ("", {"bwrap": None}, "not_installed"),
    ("bwrap: Creating new namespace failed: nesting depth or /proc/sys/user/max_*_namespaces "
     "exceeded (ENOSPC)", {}, "userns_limit"),
    (NO_PERMISSION, {"max_user_namespaces": "0"}, "userns_limit"),
    (NO_PERMISSION, {"unprivileged_userns_clone": "0"}, "userns_disabled"),
    # Ubuntu 24.04: the namespace is made, then AppArmor takes its capabilities away
    ("bwrap: setting up uid map: Permission denied", {"apparmor_restrict_unprivileged_userns": "1"},
     "apparmor"),
    ("bwrap: loopback: Failed RTM_NEWADDR: Operation not permitted",
     {"apparmor_restrict_unprivileged_userns": "1"}, "apparmor"),
    ("bwrap: Creating new namespace failed, likely because the kernel does not support user "
     "namespaces.  bwrap must be installed setuid on such systems.", {}, "no_userns_kernel"),
    ("bwrap: Can't mount proc on /newroot/proc: Operation not permitted", {"container": True},
     "proc_masked"),
    (NO_PERMISSION, {"seccomp": "2", "container": True}, "seccomp"),
    ("bwrap: Creating new namespace failed: Operation not permitted", {"container": True},
     "container"),
    ("bwrap: Specifying --uid requires --unshare-user or --userns", {"container": True}, "container"),
    (NO_PERMISSION, {}, "userns_denied"),
    ("bwrap: execvp /opt/py/bin/python3: No such file or directory", {}, "python"),
    ("bwrap: something new", {}, "unknown"),
])
def test_known_bwrap_failures_are_classified(stderr, facts, cause):
    assert sandbox.classify(stderr, {**PLAIN, **facts}) == cause
    said, fix = sandbox.CAUSES[cause]
    diagnosis = sandbox.Probe(False, cause, stderr).diagnosis
    assert said in diagnosis and fix in diagnosis and "Fix:" in diagnosis


def test_every_cause_has_a_fix():
    assert all(said and fix for said, fix in sandbox.CAUSES.values())


def test_no_bwrap_on_path_is_diagnosed_and_falls_back_loudly(tmp_path):
    assert sandbox.probe_bubblewrap(path=str(tmp_path)).cause == "not_installed"
    out = python(PROBE + "; print(sandbox.isolation())", env={"PATH": str(tmp_path)})
    cause, diagnosis, mode = out.stdout.splitlines()
    assert (cause, mode) == ("not_installed", sandbox.UNSANDBOXED)
    assert diagnosis.startswith("bubblewrap cannot run here: bwrap is not installed") and "apt-get" in diagnosis
    # asked for by name, it is not silently replaced by nothing
    asked = python("from autograder import sandbox; sandbox.isolation()",
                   env={"PATH": str(tmp_path), sandbox.ENV_ISOLATION: "bubblewrap"})
    assert asked.returncode != 0 and "IsolationError" in asked.stderr
    assert "bwrap is not installed" in asked.stderr


def test_the_grader_summary_says_why(tmp_path):
    code = ("from autograder import grading, sandbox; print(grading.summary([grading.Row("
            "'ada', 'l', 1, 1, sandbox=sandbox.UNSANDBOXED)]))")
    out = python(code, env={"PATH": str(tmp_path)})
    assert "WITHOUT A SANDBOX" in out.stdout and "Why: bubblewrap cannot run here: bwrap is not installed" in out.stdout
    off = python(code, env={sandbox.ENV_ISOLATION: "none"})
    assert "Why: isolation was switched off" in off.stdout
    assert "WARNING" not in grading.summary([grading.Row("ada", "l", 1, 1, sandbox=sandbox.POD)])


def test_an_unknown_mode_is_refused():
    out = python("from autograder import sandbox; sandbox.isolation()",
                 env={sandbox.ENV_ISOLATION: "docker"})
    assert out.returncode != 0 and "is not one of bubblewrap, pod, none" in out.stderr


@pytest.mark.skipif(not (BWRAP and X86), reason="needs bwrap and x86_64 (tests/confine.py's filter)")
def test_a_seccomp_filter_refusing_user_namespaces_is_diagnosed():
    """The real thing a default Docker/Kubernetes seccomp profile does to bwrap."""
    out = python(PROBE, prefix=CONFINE)
    assert out.stdout.splitlines()[0] == "seccomp", out.stdout + out.stderr
    assert "seccomp" in out.stdout.splitlines()[1] and "BNCOURSE_ISOLATION=pod" in out.stdout
    if ROOT:  # an unprivileged user gets bwrap's other message (this Python may not be
        # readable by that user, so its stderr is classified here, with the same facts)
        nobody = subprocess.run([*CONFINE, "setpriv", "--reuid=65534", "--regid=65534",
                                 "--clear-groups", BWRAP, "--unshare-all", "--ro-bind", "/", "/",
                                 "true"], capture_output=True, text=True, timeout=60)
        assert nobody.returncode != 0 and "No permissions to create new namespace" in nobody.stderr
        facts = {**sandbox.host_facts(), "seccomp": "2"}
        assert sandbox.classify(nobody.stderr, facts) == "seccomp"


@pytest.mark.skipif(not (BWRAP and ROOT and shutil.which("unshare")),
                    reason="needs bwrap, root and unshare(1)")
def test_user_namespaces_switched_off_is_diagnosed():
    """user.max_user_namespaces = 0, set inside a user namespace of the test's own (the
    limit applies to that namespace's descendants only, not to the machine)."""
    script = (f"echo 0 > /proc/sys/user/max_user_namespaces && "
              f"exec {sys.executable} -c \"{PROBE}\"")
    out = subprocess.run(["unshare", "--user", "--map-root-user", "sh", "-c", script],
                         capture_output=True, text=True, cwd=REPO, timeout=120)
    if "unshare failed" in out.stderr:
        pytest.skip(f"user namespaces cannot be made here: {out.stderr.strip()}")
    cause, diagnosis = out.stdout.splitlines()
    assert cause == "userns_limit", out.stdout + out.stderr
    assert "user.max_user_namespaces" in diagnosis


def test_reachable_tells_an_open_port_from_a_closed_one():
    with socket.socket() as listening, socket.socket() as closed:
        listening.bind(("127.0.0.1", 0))
        listening.listen()
        closed.bind(("127.0.0.1", 0))  # bound, not listening: refused
        targets = [listening.getsockname(), closed.getsockname()]
        assert sandbox.reachable(targets) == [listening.getsockname()]


def test_pod_mode_is_refused_outside_a_locked_down_pod():
    problems = sandbox.pod_problems()
    assert problems  # this test process is no grading pod
    assert any("runs as root" in p for p in problems) == ROOT
    out = python("from autograder import sandbox; sandbox.isolation()",
                 env={sandbox.ENV_ISOLATION: "pod"})
    assert out.returncode != 0 and "IsolationError" in out.stderr
    assert "not a locked-down grading pod" in out.stderr


needs_pod = pytest.mark.skipif(not (BWRAP and X86 and sandbox.probe_bubblewrap().ok),
                               reason="the pod is emulated with bubblewrap and tests/confine.py")


@needs_pod
def test_inside_a_locked_down_pod_every_property_holds(tmp_path):
    """(tests/test_deploy.py grades in such a pod, with the generated Job's own command.)"""
    check = "from autograder import sandbox; print(sandbox.pod_problems()); print(sandbox.isolation())"
    env = {"PATH": "/usr/bin:/bin", sandbox.ENV_ISOLATION: "pod"}
    args = emulated_pod_args([("/scratch", None, False)], env, 65534)
    out = subprocess.run(args + [sys.executable, "-c", check], capture_output=True, text=True, timeout=120)
    assert out.stdout.splitlines() == ["[]", "pod"], out.stdout + out.stderr
    # the same pod without its seccomp filter and no_new_privs (confine.py): refused
    i = args.index(str(REPO / "tests" / "confine.py"))
    loose = args[:i - 1] + args[i + 1:]
    out = subprocess.run(loose + [sys.executable, "-c", check], capture_output=True, text=True, timeout=120)
    assert "no seccomp filter" in out.stdout and "IsolationError" in out.stderr


PRYING = """\
import os
reached = []
for path in {paths!r}:
    try:
        with open(path, "rb") as f:
            f.read(1)
        reached.append(path)
    except OSError:
        pass
for pid in {pids!r}:
    try:
        os.kill(pid, 0)
        reached.append(f"signal {{pid}}")
    except OSError:
        pass
print("reached:", reached)
"""


@needs_pod
def test_in_the_pod_a_submission_reaches_neither_the_grading_code_nor_the_grader(tmp_path):
    """Landlock inside the pod: the hidden reference in the image, the grader's workspace
    and the grader's own process are out of reach; its scratch folder, bncourse and the course's
    data (the repository's datasets/, which the editable install maps to bncourse.datasets) are not."""
    script = f"""
import os, nbformat
from pathlib import Path
from autograder import sandbox
work = Path("/scratch/work"); work.mkdir()
(work / "gradebook.db").write_text("the grader's")
paths = ["{REPO / 'autograder' / 'reference.py'}",
         "{REPO / 'solutions' / '01_batch_statistics' / '01_batch_statistics.ipynb'}",
         str(work / "gradebook.db"), "/proc/1/environ", f"/proc/{{os.getpid()}}/environ"]
code = {PRYING!r}.format(paths=paths, pids=[1, os.getpid()])
control = "open('mine.txt', 'w').write('x'); print('control:', open('mine.txt').read(), "
control += "len(open({str(REPO / 'bncourse' / '__init__.py')!r}).read()) > 0)"
load = "from bncourse import data; print('digits', data.load_digits('validation')[0].shape)"
nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(code), nbformat.v4.new_code_cell(control),
                                     nbformat.v4.new_code_cell(load)])
run = sandbox.run_submission(nb, "01_batch_statistics", {{}}, cell_timeout=60, scratch_root=work)
print(run.sandbox, run.stopped)
for cell in run.notebook.cells:
    for out in cell.get("outputs", []):
        print(out.get("text", "") or out.get("evalue", ""))
"""
    env = {"PATH": "/usr/bin:/bin", "HOME": "/scratch", "TMPDIR": "/scratch", sandbox.ENV_ISOLATION: "pod"}
    args = emulated_pod_args([("/scratch", None, False)], env, 65534)
    out = subprocess.run(args + [sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.startswith("pod "), out.stdout
    assert "reached: []" in out.stdout, out.stdout
    assert "control: x True" in out.stdout, out.stdout
    assert "digits (359, 64)" in out.stdout, out.stdout


needs_bwrap = pytest.mark.skipif(not (BWRAP and sandbox.probe_bubblewrap().ok), reason="needs a working bubblewrap")


@needs_bwrap
def test_in_bubblewrap_a_submission_reads_the_courses_data_and_nothing_else_of_the_repository():
    """The editable install reads the data from the repository's datasets/, outside bncourse/
    (pyproject.toml's package-dir): bubblewrap binds that folder read-only beside bncourse, and
    still shows no other file of the repository."""
    script = f"""
import nbformat
from autograder import sandbox
paths = [{str(REPO / 'autograder' / 'reference.py')!r}, {str(REPO / 'pyproject.toml')!r}]
code = {PRYING!r}.format(paths=paths, pids=[])
load = "from bncourse import data; print('digits', data.load_digits('validation')[0].shape, data.DIGITS_PATH)"
nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(code), nbformat.v4.new_code_cell(load)])
run = sandbox.run_submission(nb, "00_internal_covariate_shift", {{}}, cell_timeout=60)
print(run.sandbox, run.stopped)
for cell in run.notebook.cells:
    for out in cell.get("outputs", []):
        print(out.get("text", "") or out.get("evalue", ""))
"""
    out = python(script, env={sandbox.ENV_ISOLATION: "bubblewrap"}, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.startswith(f"{sandbox.BUBBLEWRAP} "), out.stdout
    assert "reached: []" in out.stdout, out.stdout
    assert f"digits (359, 64) {REPO / 'datasets' / 'digits.npz'}" in out.stdout, out.stdout
