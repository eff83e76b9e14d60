"""`make check`: every lesson's visible checks on your working copy, and a summary.

    python -m bncourse.selfcheck [WORK_DIR] [--lesson ID ...] [--timeout SECONDS]

Runs each lesson notebook in WORK_DIR (default: my_course/) top to bottom in a fresh kernel, as
"Restart Kernel and Run All Cells" would, from the lesson's own folder, and reports the graded
cell under each piece (the visible check with raise_on_failure=True):
    ✓ passed   ✗ failed (the first line of why)   · not implemented yet
A cell outside those that raises is reported as a failure too. The notebooks are read, never
written: outputs stay in memory. Cells after a lesson's last graded cell are not run: nothing
there changes a verdict. `--lesson 01` (a prefix of the lesson's folder name) picks lessons.

The exit status is 1 when a check failed or a lesson could not run; "not implemented yet" is
not a failure. These are the visible checks only: when your work is graded, hidden tests try
many more inputs.
"""
import argparse
import os
import sys
import time
from pathlib import Path

NOT_IMPLEMENTED = "is not implemented yet"  # how the checks word an unfinished piece (bncourse.judge)
MARKS = {"pass": "✓", "fail": "✗", "todo": "·"}


def lessons(work, chosen=()):
    """[(lesson id, notebook path)]: one notebook per lesson folder, named as the folder."""
    found = sorted((p.parent.name, p) for p in Path(work).glob("*/*.ipynb") if p.stem == p.parent.name)
    return [(lesson, path) for lesson, path in found if not chosen or lesson.startswith(tuple(chosen))]


def graded(cell):
    return cell.cell_type == "code" and bool(cell.get("metadata", {}).get("nbgrader", {}).get("grade"))


def piece_of(cell, index):
    grade_id = cell.metadata.get("nbgrader", {}).get("grade_id") or f"cell {index}"
    return grade_id.removeprefix("test_")


def first_line(text, limit=240):
    line = next((s.strip() for s in str(text).splitlines() if s.strip()), "")
    return line if len(line) <= limit else line[:limit - 3] + "..."


def error_of(cell):
    """(ename, evalue) of the cell's error output, or None."""
    for output in cell.get("outputs", []):
        if output.get("output_type") == "error":
            return output.get("ename", ""), output.get("evalue", "")
    return None


def verdict(cell, index):
    """(piece, status, why) of one graded cell after it ran."""
    piece = piece_of(cell, index)
    error = error_of(cell)
    if error is None:
        return piece, "pass", ""
    ename, evalue = error
    if ename == "NotImplementedError" or NOT_IMPLEMENTED in evalue:
        return piece, "todo", "not implemented yet"
    why = first_line(evalue).removeprefix(f"{piece}: ")
    return piece, "fail", f"{ename}: {why}" if ename != "CheckFailed" else why


def run_lesson(path, timeout, kernel):
    """(verdicts [(piece, status, why)], problems [text]) of one lesson notebook."""
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellTimeoutError, DeadKernelError

    nb = nbformat.read(path, as_version=4)
    marked = [i for i, c in enumerate(nb.cells) if graded(c)]
    if not marked:
        return [], []
    nb.cells = nb.cells[:marked[-1] + 1]
    client = NotebookClient(nb, timeout=timeout, allow_errors=True, kernel_name=kernel,
                            resources={"metadata": {"path": str(path.parent)}},
                            extra_arguments=["--IPKernelApp.log_level=ERROR", "--HistoryManager.hist_file=:memory:"])
    problems = []
    try:
        client.execute()
    except CellTimeoutError:
        problems.append(f"a cell ran longer than {timeout} s: the run stopped there")
    except DeadKernelError:
        problems.append("the kernel died (out of memory?): the run stopped there")
    verdicts = []
    for i, cell in enumerate(nb.cells):
        if graded(cell):
            if cell.get("execution_count") is None and error_of(cell) is None:
                verdicts.append((piece_of(cell, i), "fail", "did not run (see above)"))
            else:
                verdicts.append(verdict(cell, i))
        elif cell.cell_type == "code" and (error := error_of(cell)) is not None:
            problems.append(f"{error[0]}: {first_line(error[1])} (in the cell starting "
                            f"`{first_line(cell.source, 60)}`)")
    return verdicts, problems


def main(*, argv=None, out=None):
    out = out or sys.stdout
    parser = argparse.ArgumentParser(prog="python -m bncourse.selfcheck", description=__doc__.split("\n\n")[0])
    parser.add_argument("work", nargs="?", default="my_course", help="the folder of your lessons (my_course)")
    parser.add_argument("--lesson", action="append", default=[], help="only lessons whose id starts so")
    parser.add_argument("--timeout", type=int, default=600, help="seconds one cell may take")
    parser.add_argument("--kernel", default="python3")
    args = parser.parse_args(argv)
    work = Path(args.work)
    found = lessons(work, args.lesson)
    if not found:
        print(f"no lesson notebooks in {work}/" + (f" starting with {', '.join(args.lesson)}" if args.lesson else "")
              + ": `make lab` creates your working copy", file=out)
        return 1
    os.environ.setdefault("MPLBACKEND", "Agg")  # the kernels draw no figure nobody will see
    print(f"Visible checks of {len(found)} lesson(s) in {work}/ (the hidden tests run only when your "
          "work is graded)", file=out, flush=True)
    counts = dict.fromkeys(MARKS, 0)
    broken = 0
    start = time.perf_counter()
    for lesson, path in found:
        began = time.perf_counter()
        try:
            verdicts, problems = run_lesson(path, args.timeout, args.kernel)
        except Exception as error:  # unreadable notebook, no kernel...
            verdicts, problems = [], [f"could not run: {type(error).__name__}: {first_line(error)}"]
        broken += bool(problems)
        done = sum(status == "pass" for _, status, _ in verdicts)
        print(f"{lesson}: {done} of {len(verdicts)} passed ({time.perf_counter() - began:.1f} s)", file=out)
        for piece, status, why in verdicts:
            counts[status] += 1
            print(f"  {MARKS[status]} {piece}" + (f": {why}" if why else ""), file=out)
        for problem in problems:
            print(f"  ✗ {problem}", file=out)
        out.flush()
    total = sum(counts.values())
    print(f"Summary: {counts['pass']} passed, {counts['fail']} failed, {counts['todo']} not implemented yet "
          f"({total} visible checks in {len(found)} lesson(s), {time.perf_counter() - start:.0f} s)"
          + (f"; {broken} lesson(s) with errors outside the checks" if broken else ""), file=out)
    return 1 if counts["fail"] or broken else 0


if __name__ == "__main__":
    sys.exit(main())
