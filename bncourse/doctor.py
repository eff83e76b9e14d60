"""Pre-flight check: is this machine ready for the course?  `make doctor`, or

    python -m bncourse.doctor [--kernel NAME]

One line per check, ✓ (ready), ✗ (not ready, with a `fix:` line under it) or – (for your
information, never a failure), then the total time. The exit status is 1 when a check failed.
Workshop hosts send this to participants before the day; on a prepared laptop it answers in a
few seconds (the goal is under 15 s; `benchmarks/` measures it, not a test).

Checked: the Python version (3.11-3.13), torch importable, version 2.13.0 and a CPU-only build
(no CUDA packages), the course's data file, a Jupyter kernel starting and running `1+1`, one
visible check passing on a correct answer, whether bubblewrap is there (only instructors need
it: shown where the grader is installed), and the free disk space. The kernel starts first and
boots while the other checks run.
"""
import argparse
import os
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

PYTHONS = ((3, 11), (3, 13))  # allowed, inclusive; 3.11 is the one tested
TESTED = (3, 11)
TORCH = "2.13.0"
MIN_FREE = 1 << 30  # bytes: notebooks are small, but feedback, caches and pip need room
KERNEL = os.environ.get("BNCOURSE_DOCTOR_KERNEL", "python3")
REINSTALL = "make clean-venv install"


@dataclass
class Line:
    status: str  # "ok", "fail" or "info"
    text: str
    fix: str = ""


def check_python(version=None, executable=None):
    version = tuple((version or sys.version_info)[:3])
    executable = executable or sys.executable
    shown = ".".join(map(str, version))
    low, high = PYTHONS
    if not low <= version[:2] <= high:
        return Line("fail", f"Python {shown} ({executable}): the course needs 3.11, 3.12 or 3.13",
                    "install Python 3.11 (the tested one; 3.12 and 3.13 are allowed), then "
                    "`make clean-venv install PYTHON=/path/to/python3.11`")
    note = "tested" if version[:2] == TESTED else "allowed, not tested: 3.11 is the tested one"
    return Line("ok", f"Python {shown} ({executable}): {note}")


def cuda_packages():
    """Installed distributions that only a CUDA build of torch brings."""
    from importlib import metadata
    names = {(d.metadata["Name"] or "").lower() for d in metadata.distributions()}
    return sorted(n for n in names if n.startswith("nvidia-") or n in ("triton", "pytorch-triton"))


def check_torch():
    try:
        import torch
    except Exception as error:  # ImportError, or a broken build's OSError
        return Line("fail", f"torch does not import: {error}", f"install the course's environment: `{REINSTALL}`")
    version = torch.__version__
    if version.split("+")[0] != TORCH:
        return Line("fail", f"torch {version}: the course pins torch=={TORCH}", f"`{REINSTALL}`")
    cuda = cuda_packages()
    if torch.version.cuda or getattr(torch.version, "hip", None) or cuda:
        build = f"CUDA {torch.version.cuda}" if torch.version.cuda else "a GPU build"
        listed = ", ".join(cuda[:3]) + (", ..." if len(cuda) > 3 else "")
        extra = f" with {len(cuda)} CUDA packages ({listed})" if cuda else ""
        return Line("fail", f"torch {version} is {build}{extra}: the course wants the CPU-only build",
                    "`make clean-venv && BNCOURSE_TORCH_INDEX=cpu make install` (PyTorch's CPU index)")
    return Line("ok", f"torch {version}, CPU-only build (no CUDA packages)")


def check_data():
    from bncourse import data
    try:
        path = data.verify()
    except data.DatasetError as error:
        return Line("fail", f"course data: {error}", f"reinstall the course: `{REINSTALL}`")
    return Line("ok", f"course data: {path.name}, checksum verified")


def start_kernel(name):
    """A started KernelManager (booting in the background), or the Line of its failure. The
    kernel's own stderr (its start-up warnings) goes to a file, shown only when it fails."""
    import tempfile
    log = tempfile.TemporaryFile("w+")
    try:
        from jupyter_client.manager import KernelManager
        manager = KernelManager(kernel_name=name)
        manager.start_kernel(stdout=log, stderr=log)
        manager.doctor_log = log
        return manager
    except Exception as error:
        return kernel_failure(name, error, log)


def kernel_failure(name, error, log=None):
    try:
        from jupyter_client.kernelspec import KernelSpecManager
        known = ", ".join(sorted(KernelSpecManager().find_kernel_specs())) or "none"
    except Exception:
        known = "unknown"
    said = ""
    if log is not None:
        log.seek(0)
        last = [line.strip() for line in log.read().splitlines() if line.strip()][-1:]
        said = f" (the kernel said: {last[0][:200]})" if last else ""
    return Line("fail", f"Jupyter kernel '{name}' did not start: {type(error).__name__}: {error}{said}",
                f"kernels found: {known}. Reinstall the course's environment (`{REINSTALL}`); "
                f"`jupyter kernelspec list` shows the kernels")


def check_kernel(manager, name, timeout=60):
    if isinstance(manager, Line):
        return manager
    start = time.perf_counter()
    client = manager.client()
    try:
        client.start_channels()
        client.wait_for_ready(timeout=timeout)
        results = []

        def hook(message):
            if message["msg_type"] == "execute_result":
                results.append(message["content"]["data"].get("text/plain"))

        reply = client.execute_interactive("1+1", timeout=timeout, output_hook=hook)
        if reply["content"]["status"] != "ok" or results != ["2"]:
            return Line("fail", f"Jupyter kernel '{name}' answered 1+1 with {results or reply['content']}",
                        f"`{REINSTALL}`")
        return Line("ok", f"Jupyter kernel '{name}' started and ran 1+1 = 2 "
                          f"({time.perf_counter() - start:.1f} s after the other checks)")
    except Exception as error:
        return kernel_failure(name, error, manager.doctor_log)
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)
        manager.doctor_log.close()


def check_visible_check():
    """A correct batch_mean through the learners' own visible check (lesson 01)."""
    import contextlib
    import io

    import numpy as np

    def batch_mean(x):
        return np.sum(x, axis=0) / x.shape[0]

    printed = io.StringIO()
    try:
        from bncourse import checks
        with contextlib.redirect_stdout(printed):
            checks.check_batch_mean(batch_mean, raise_on_failure=True)
    except Exception as error:
        return Line("fail", f"visible check check_batch_mean failed on a correct answer: {error}",
                    f"reinstall the course (`{REINSTALL}`); if it persists, tell your instructor")
    said = printed.getvalue().strip().splitlines()
    summary = said[0].lstrip("✓ ").split(":")[0] if said else "batch_mean passed"
    return Line("ok", f"visible check: {summary} (a correct batch_mean, lesson 01's check)")


def check_bubblewrap(platform=None, which=shutil.which):
    platform = platform or sys.platform
    need = "only instructors need it, to sandbox the grading of a class"
    if not platform.startswith("linux"):
        return Line("info", f"bubblewrap: Linux only, not used on {platform} ({need})")
    found = which("bwrap")
    if found:
        return Line("info", f"bubblewrap: {found} ({need})")
    return Line("info", f"bubblewrap: not installed; fine for learners ({need}: "
                        "`sudo apt-get install bubblewrap`; `make grade-demo` then says whether grading is sandboxed)")


def grading_installed():
    """Whether a grading package plugs into the course here (the instructor's edition): only then
    is bubblewrap worth a line. The student edition and the hub's learners have none."""
    from importlib.metadata import entry_points
    return bool(entry_points(group="bncourse.graders"))


def check_disk(path=None, minimum=MIN_FREE):
    path = Path(path or Path.cwd())
    free = shutil.disk_usage(path).free
    text = f"disk: {free / 2**30:.1f} GiB free in {path}"
    if free < minimum:
        return Line("fail", text + f" (less than {minimum / 2**30:.1f} GiB)",
                    "free some space: JupyterLab, pip and the grader's feedback need room")
    return Line("ok", text)


MARKS = {"ok": "✓", "fail": "✗", "info": "–"}
PLAIN = {"ok": "OK  ", "fail": "FAIL", "info": "--  "}


def marks(stream):
    try:
        "✓✗–".encode(stream.encoding or "ascii")
        return MARKS
    except (UnicodeEncodeError, LookupError):
        return PLAIN


def main(argv=None, out=None):
    out = out or sys.stdout
    parser = argparse.ArgumentParser(prog="python -m bncourse.doctor", description=__doc__.split("\n\n")[0])
    parser.add_argument("--kernel", default=KERNEL,
                        help="the Jupyter kernel to start (default %(default)s; env BNCOURSE_DOCTOR_KERNEL)")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    mark = marks(out)
    print("bncourse doctor: is this machine ready for the course?", file=out, flush=True)
    lines = []

    def report(line):
        lines.append(line)
        print(f"{mark[line.status]} {line.text}", file=out, flush=True)
        if line.status == "fail" and line.fix:
            print(f"    fix: {line.fix}", file=out, flush=True)

    report(check_python())
    kernel = start_kernel(args.kernel)  # boots while the checks below run
    for check in (check_torch, check_data, check_visible_check):
        try:
            report(check())
        except Exception as error:
            report(Line("fail", f"{check.__name__}: {type(error).__name__}: {error}", f"`{REINSTALL}`"))
    report(check_kernel(kernel, args.kernel))
    if grading_installed():
        report(check_bubblewrap())
    report(check_disk())
    failed = [line for line in lines if line.status == "fail"]
    elapsed = time.perf_counter() - start
    checked = sum(line.status != "info" for line in lines)
    if failed:
        print(f"{len(failed)} of {checked} checks failed in {elapsed:.1f} s: fix the {mark['fail'].strip()} "
              "lines above, then run `make doctor` again", file=out)
    else:
        print(f"all {checked} checks passed in {elapsed:.1f} s: ready for the course", file=out)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
