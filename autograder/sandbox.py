"""Run a submission where it can touch nothing but its own folder.

`run_submission(nb, lesson, calls, ...)` copies the notebook and the grader's questions
(bncourse.answers) into a fresh scratch folder, runs it with bncourse.runner inside a
bubblewrap sandbox, and reads back the executed notebook and the recorded answers:

- an unprivileged identity in new user, PID, network, IPC and UTS namespaces: no network
  (loopback only), no view of other processes, no capabilities, a new session (no terminal
  injection), killed with everything it started when the run ends or the grader dies;
- a filesystem of read-only binds (the system, Python, the virtual environment, bncourse/,
  datasets/) on a read-only root, plus the scratch folder: the only writable place (it
  holds TMPDIR too). solutions/, autograder/ (the
  hidden reference), the gradebook, other students' work and the grading workspace are
  simply not there;
- limits: address space (RLIMIT_AS), file size, and a wall-clock deadline for the whole run
  on top of bncourse.runner's per-cell timeout.

Where bubblewrap cannot run (macOS, Windows, no user namespaces) the submission runs as a
plain subprocess and every result says so (`Run.sandbox == UNSANDBOXED`). Nothing read back
is trusted: sizes are capped, links are refused, and grades come from the answers alone.
"""
import json
import os
import resource
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import nbformat

import bncourse
from bncourse import answers, runner
from autograder.settings import REPO

SANDBOX = "bubblewrap"
UNSANDBOXED = "NONE (unsandboxed)"
MEMORY_LIMIT = 6 << 30  # bytes of address space for everything in one submission's sandbox
MAX_NOTEBOOK_BYTES = 32 << 20
INSIDE = Path("/home/learner")  # where the submission's folder appears inside the sandbox
ENV_OFF = "BNCOURSE_SANDBOX"  # set to "off" to grade without a sandbox (and be told so)


@dataclass
class Run:
    notebook: object = None                       # the executed notebook, or None
    answers: dict = field(default_factory=dict)   # piece -> [Answer], for the pieces recorded
    problems: dict = field(default_factory=dict)  # piece -> why its answers are unusable
    stopped: str = ""                             # why the run ended early, if it did
    sandbox: str = SANDBOX


def _python_roots():
    """Folders Python needs to run: the venv, the interpreter's install, their real paths."""
    roots = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix,
             os.path.dirname(os.path.realpath(sys.executable))}
    roots |= {os.path.realpath(r) for r in roots}
    return sorted(r for r in roots if r and os.path.isdir(r))


def _bwrap_args(scratch):
    bncourse_dir = Path(bncourse.__file__).resolve().parent
    args = ["bwrap", "--unshare-all", "--die-with-parent", "--new-session",
            "--uid", "65534", "--gid", "65534", "--cap-drop", "ALL",
            "--proc", "/proc", "--dev", "/dev"]  # no /tmp: TMPDIR is in the scratch folder
    for system in ("/usr", "/bin", "/lib", "/lib64", "/lib32", "/sbin", "/etc"):
        if os.path.exists(system):
            args += ["--ro-bind", system, system]
    for root in _python_roots():
        args += ["--ro-bind", root, root]
    # bncourse at its own path, as the editable install finds it; nothing else of the repo
    args += ["--ro-bind", str(bncourse_dir), str(bncourse_dir)]
    if (REPO / "datasets").is_dir():
        args += ["--ro-bind", str(REPO / "datasets"), str(REPO / "datasets")]
    args += ["--bind", str(scratch), str(INSIDE), "--chdir", str(INSIDE),
             "--remount-ro", "/"]  # the sandbox's own root too: only scratch takes writes
    return args


@lru_cache(maxsize=1)
def sandbox_available():
    """bubblewrap is installed and may create namespaces here (and grading was not told
    to skip it)."""
    if os.environ.get(ENV_OFF, "").lower() in ("off", "0", "no"):
        return False
    if shutil.which("bwrap") is None:
        return False
    with tempfile.TemporaryDirectory() as tmp:
        try:
            probe = subprocess.run(_bwrap_args(tmp) + [sys.executable, "-c", "import bncourse"],
                                   capture_output=True, timeout=60)
        except (OSError, subprocess.TimeoutExpired):
            return False
    return probe.returncode == 0


def _limits():
    """In the child, before exec: its own process group, and resource limits."""
    os.setsid()
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))
    resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 30, 1 << 30))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def _matplotlib_cache(scratch):
    """A copy of the grader's font cache, so each run does not rebuild it (~seconds)."""
    import matplotlib
    target = scratch / ".matplotlib"
    target.mkdir()
    for f in Path(matplotlib.get_cachedir()).glob("fontlist-*.json"):
        shutil.copy(f, target / f.name)
    os.chmod(target, 0o777)
    return target


def _read_back(scratch, name, limit):
    """A regular file the sandbox left in scratch (no links, no escapes), or None."""
    path = scratch / name
    try:
        if scratch not in Path(os.path.realpath(path)).parents:
            return None
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return None
    with os.fdopen(fd, "rb") as f:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_size > limit:
            return None
        return f.read(limit + 1)[:limit]


def run_submission(nb, lesson, calls, cell_timeout=60, scratch_root=None, carried=None):
    """Execute nb (a NotebookNode) in a sandbox; calls: {piece: [(args, kwargs)]}.
    carried: {relative path: bytes} of the submission's other files (a learner's data), put
    beside the notebook as nbgrader puts them beside it in autograded/."""
    scratch = Path(tempfile.mkdtemp(prefix="submission-", dir=scratch_root)).resolve()
    try:
        for rel, data in (carried or {}).items():
            rel = Path(rel)
            if rel.parts[0].startswith((".", "judged-")) or str(rel) in (
                    runner.EXECUTED, runner.REPORT, f"{lesson}.ipynb"):
                continue  # never a file the grader reads back or writes itself
            (scratch / rel).parent.mkdir(parents=True, exist_ok=True)
            (scratch / rel).write_bytes(data)
        return _run(nb, lesson, calls, cell_timeout, scratch)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _run(nb, lesson, calls, cell_timeout, scratch):
    os.chmod(scratch, 0o777)  # the sandbox's unprivileged user writes here
    notebook = scratch / f"{lesson}.ipynb"
    nbformat.write(nb, notebook)
    (scratch / answers.FOLDER).mkdir()
    for piece, piece_calls in calls.items():
        answers.save_calls(answers.calls_path(scratch, piece), piece_calls)
    os.chmod(scratch / answers.FOLDER, 0o777)
    (scratch / ".tmp").mkdir(mode=0o777)
    os.chmod(scratch / ".tmp", 0o777)
    sandboxed = sandbox_available()
    inside = INSIDE if sandboxed else scratch
    command = [sys.executable, "-m", "bncourse.runner", str(inside / notebook.name),
               "--lesson", lesson, "--timeout", str(cell_timeout)]
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8",
           "MPLBACKEND": "agg", "MPLCONFIGDIR": str(inside / _matplotlib_cache(scratch).name),
           "JUPYTER_PLATFORM_DIRS": "1", "PYTHONDONTWRITEBYTECODE": "1",
           "OMP_NUM_THREADS": "1", "HOME": str(inside), "TMPDIR": str(inside / ".tmp")}
    # bncourse from where the grader has it: that folder is all the sandbox sees of the repo
    env["PYTHONPATH"] = str(Path(bncourse.__file__).resolve().parents[1])
    if sandboxed:
        command = _bwrap_args(scratch) + command
    code_cells = sum(c.cell_type == "code" for c in nb.cells)
    deadline = min(cell_timeout * code_cells, 1200) + 60
    run = Run(sandbox=SANDBOX if sandboxed else UNSANDBOXED)
    process = subprocess.Popen(command, cwd=scratch, env=env, stdin=subprocess.DEVNULL,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, preexec_fn=_limits)
    try:
        _, err = process.communicate(timeout=deadline)
    except subprocess.TimeoutExpired:
        err = b""
        run.stopped = f"the notebook ran longer than {deadline} s in all and was stopped"
    finally:
        try:
            os.killpg(process.pid, signal.SIGKILL)  # whatever it left behind (unsandboxed)
        except ProcessLookupError:
            pass
        process.wait()
    _collect(run, scratch, calls, err)
    return run


def _collect(run, scratch, calls, err):
    data = _read_back(scratch, runner.EXECUTED, MAX_NOTEBOOK_BYTES)
    try:
        run.notebook = nbformat.reads(data.decode(), as_version=4) if data else None
    except Exception:
        run.notebook = None
    report = _read_back(scratch, runner.REPORT, 1 << 16)
    try:
        reason = json.loads(report).get("reason") if report else None
    except Exception:
        reason = None
    if not run.stopped:
        run.stopped = str(reason)[:300] if reason else ""
    if run.notebook is None and not run.stopped:
        tail = err.decode(errors="replace").strip().splitlines()[-1:] if err else []
        run.stopped = "the notebook could not be run" + (f": {tail[0][:200]}" if tail else "")
    for piece, piece_calls in calls.items():
        data = _read_back(scratch, str(answers.answers_path(".", piece)), answers.MAX_FILE_BYTES)
        if data is None:
            continue
        kept = scratch / f"judged-{piece}.npz"  # the grader's own copy of what it read
        kept.write_bytes(data)
        try:
            run.answers[piece] = answers.load_answers(kept, len(piece_calls))
        except Exception as e:
            run.problems[piece] = f"its recorded answers could not be read ({type(e).__name__})"
