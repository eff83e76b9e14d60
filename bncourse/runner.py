"""Run one notebook top to bottom inside the grading sandbox.

    python -m bncourse.runner NOTEBOOK --lesson ID --timeout SECONDS [--ban OP,OP...] [--skip I,J...]

The grader (autograder/sandbox.py) starts this inside the sandbox, so the kernel and its
client share the sandbox's private network. It saves the notebook after every cell, so
whatever ran before a hang or a crash still counts, and writes REPORT (JSON) on the way
out: which cell stopped the run and why. Everything it writes is evidence for the grader,
never trusted: grades come from the recorded answers, judged outside. The cells --skip names
(the grader's choice of demonstration cells, autograder/demonstrations.py) are not run: they get
SKIPPED_NOTE as their output.
"""
import argparse
import json
import os
import sys
from pathlib import Path

# isort: off
import bncourse  # noqa: F401  (first: it spares this process a slow import)
import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellTimeoutError, DeadKernelError
from nbclient.util import run_sync
# isort: on

from bncourse.tripwire import BANNED_ENV, GRADING_ENV

EXECUTED = "executed.ipynb"
REPORT = "report.json"
SKIPPED_NOTE = "(demonstration: not run while grading; below, what it showed on your own run)\n"
GRACE = 5  # seconds an interrupted cell gets to stop before the kernel is killed
CELL_OUTPUT_BYTES = 4 << 20  # a cell's outputs kept (the kernel caps its printing: bncourse.outputcap)


def _error(ename, evalue):
    return nbformat.v4.new_output("error", ename=ename, evalue=evalue, traceback=[f"{ename}: {evalue}"])


def _responsive(client):
    """After an interrupt: does the kernel answer a new request within GRACE seconds?"""
    import queue
    import time
    kc = client.kc
    msg_id = kc.execute("pass", silent=True, store_history=False)
    deadline = time.monotonic() + GRACE
    while (left := deadline - time.monotonic()) > 0:
        try:
            reply = run_sync(kc.get_shell_msg)(timeout=left)
        except queue.Empty:
            return False
        if reply.get("parent_header", {}).get("msg_id") == msg_id:
            return True
    return False


def _slim(nb):
    """The notebook as the grader reads it back: code cells whole; text cells emptied (their
    place kept), so pictures pasted into markdown never make the executed notebook too big."""
    for cell in nb.cells:
        if cell.cell_type != "code":
            cell.source = ""
            cell.pop("attachments", None)


def cap_outputs(outputs, limit=CELL_OUTPUT_BYTES):
    """A cell's outputs up to `limit` bytes (in order; an error always), saying what was cut (the
    grader caps a skipped demonstration's own outputs the same way: autograder.demonstrations)."""
    sizes = [len(json.dumps(o)) for o in outputs]
    if sum(sizes) <= limit:
        return outputs
    kept, used, cut, cut_bytes = [], 0, 0, 0
    for output, size in zip(outputs, sizes):
        if used + size <= limit or output.get("output_type") == "error":
            kept.append(output)
            used += size
        else:
            cut, cut_bytes = cut + 1, cut_bytes + size
    kept.append(nbformat.v4.new_output("stream", name="stdout", text=(
        f"[... {cut} output(s), {cut_bytes:,} bytes, cut by the grader: a cell keeps {limit >> 20} MiB ...]\n")))
    return kept


def run(path, lesson, timeout, ban=(), skip=()):
    """ban: the aten operators no answer of this lesson may call, armed before the first cell;
    skip: indices of the cells not to run."""
    path = Path(path)
    nb = nbformat.read(path, as_version=4)
    _slim(nb)
    os.environ[GRADING_ENV] = lesson
    os.environ[BANNED_ENV] = ",".join(ban)
    client = NotebookClient(
        nb, timeout=timeout, interrupt_on_timeout=False, allow_errors=True, kernel_name="python3",
        shutdown_kernel="immediate",  # nothing in the kernel is needed after the last cell
        resources={"metadata": {"path": str(path.parent)}},
        extra_arguments=["--HistoryManager.hist_file=:memory:", "--IPKernelApp.log_level=ERROR",
                         # arm the tripwire before the learner's first cell; cap each cell's printing
                         "--IPKernelApp.exec_lines=__import__('bncourse.tripwire')"
                         ".tripwire.arm_from_environment(); __import__('bncourse.outputcap').outputcap.install()"])
    report = {"stopped_at": None, "reason": None}
    out = path.parent / EXECUTED

    def save():
        nbformat.write(nb, out)
        (path.parent / REPORT).write_text(json.dumps(report))

    save()
    with client.setup_kernel():
        for index, cell in enumerate(nb.cells):
            if cell.cell_type != "code":
                continue
            if index in skip:
                cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text=SKIPPED_NOTE)]
                cell.execution_count = None
                continue
            try:
                client.execute_cell(cell, index)
            except CellTimeoutError:
                cell.outputs.append(_error("TimeoutError", f"this cell ran longer than {timeout} s "
                                                            "and was interrupted"))
                run_sync(client.km.interrupt_kernel)()  # an async kernel manager
                if not _responsive(client):
                    report.update(stopped_at=index, reason=f"cell {index} ran longer than {timeout} s "
                                  "and ignored the interrupt; the kernel was stopped there")
                    save()
                    break
            except DeadKernelError:
                cell.outputs.append(_error("DeadKernelError", "the kernel died while running this cell"))
                report.update(stopped_at=index, reason=f"the kernel died in cell {index} "
                              "(it exited, crashed or ran out of memory)")
                save()
                break
            cell.outputs = cap_outputs(cell.outputs)
            save()
    save()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebook")
    parser.add_argument("--lesson", required=True)
    parser.add_argument("--timeout", type=int, default=60)
    parser.add_argument("--ban", default="", help="comma-separated aten operators to switch off")
    parser.add_argument("--skip", default="", help="comma-separated indices of cells not to run")
    args = parser.parse_args(argv)
    run(args.notebook, args.lesson, args.timeout, [op for op in args.ban.split(",") if op],
        {int(i) for i in args.skip.split(",") if i})
    return 0


if __name__ == "__main__":
    sys.exit(main())
