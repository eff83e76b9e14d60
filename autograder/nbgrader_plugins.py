"""nbgrader preprocessors that make grades and feedback trustworthy.

- SandboxedExecute (autograde, in place of Execute): runs the submission in a sandbox and
  scores each test cell by judging the learner's recorded answers outside it.
- StderrIsNotFailure (autograde, right after Execute): nbgrader 0.9 scores a test cell 0 as
  soon as anything reaches stderr, so a harmless torch or numpy warning would cost a correct
  answer its points. Stderr text is kept, but as ordinary output; only errors fail a cell.
- PrivateFeedback (generate_feedback): feedback shows each failing test's message, never the
  hidden test source nor a traceback through the hidden helpers.
"""
import contextlib
from pathlib import Path

import nbformat
from nbgrader import utils
from nbgrader.coursedir import CourseDirectory
from nbgrader.preprocessors import ClearHiddenTests, Execute, NbGraderPreprocessor
from traitlets import Unicode

from autograder.submissions import tested_piece
from bncourse import answers


class StderrIsNotFailure(NbGraderPreprocessor):
    def preprocess_cell(self, cell, resources, index):
        if cell.cell_type == "code" and utils.is_grade(cell):
            for output in cell.outputs:
                if output.output_type == "stream" and output.name == "stderr":
                    output.name = "stdout"
        return cell, resources


HIDDEN_PLACEHOLDER = "# (hidden tests ran here; their source is not shown)"


class PrivateFeedback(ClearHiddenTests):
    def preprocess_cell(self, cell, resources, index):
        if cell.cell_type == "code":
            if self._remove_hidden_test_region(cell):
                cell.source = cell.source.rstrip("\n") + "\n" + HIDDEN_PLACEHOLDER
            for output in cell.get("outputs", []):
                if output.output_type == "error":
                    # the message only: a traceback would quote hidden test and helper source
                    output.traceback = [f"{output.ename}: {output.evalue}"]
        return cell, resources


# ------------------------------------------------------------------ sandboxed, tamper-proof grading

class Coordination:
    """Set by a parallel grading worker: a context manager under which the gradebook is free
    for other workers (the notebook's run itself needs no gradebook)."""
    while_running = contextlib.nullcontext


class SandboxedExecute(Execute):
    """nbgrader's Execute step, in a sandbox, with grades that the submission cannot touch.

    The notebook runs in autograder.sandbox (no instructor files, no network, limits). Its
    hidden test cells only record the learner's answers to inputs chosen here from a secret
    key; once the sandbox is gone, each test cell's output is replaced by the verdict on
    those answers (autograder.hidden), so nbgrader's SaveAutoGrades scores the verdicts and
    nothing the kernel printed or patched. Answer cells that use torch's normalisation or the
    grader's files score 0 (autograder.honesty); odd code is flagged for a human.
    """

    release_directory = Unicode("", help="the released notebooks, to tell learner code from "
                                         "the code they were handed").tag(config=True)
    source_directory = Unicode("", help="the instructor's notebooks: their cells tagged as "
                                        "demonstrations are not run while grading").tag(config=True)

    def preprocess(self, nb, resources):
        from autograder import demonstrations, hidden, honesty, sandbox
        from autograder.reports import save_report, secret_key

        info = resources["nbgrader"]
        lesson, student = info["assignment"], info["student"]
        workspace = Path(info["db_url"].replace("sqlite:///", "")).parent
        key = secret_key(workspace, student, lesson)
        pieces = [p for p in _tested_pieces(nb) if p in hidden.PIECES]
        cases = {p: hidden.hidden_cases(p, key) for p in pieces}
        calls = {p: hidden.calls_for(p, cases[p]) for p in pieces}
        # read from the instructor's notebook only: a submission's own tags skip nothing
        skip = demonstrations.to_skip(nb, demonstrations.from_source(self.source_directory, lesson))
        with Coordination.while_running():
            run = sandbox.run_submission(nb, lesson, calls, cell_timeout=self.timeout,
                                         scratch_root=workspace, skip=skip,
                                         carried=_carried(resources.get("metadata", {}).get("path")))
        _take_outputs(nb, run.notebook)
        course = CourseDirectory(config=self.config)  # the handed-in notebook, as nbgrader finds it
        submitted = Path(course.format_path(course.submitted_directory, student, lesson),
                         f"{info['notebook']}.ipynb")
        for index, outputs in demonstrations.own_outputs(submitted, skip).items():
            nb.cells[index].outputs = nb.cells[index].outputs[:1] + outputs  # the note, then theirs
        only_skipped = set().union(*(demonstrations.defined_names(nb.cells[i].source) for i in skip))
        forbidden, flags = honesty.read_notebook(nb.cells, lesson, self._released(lesson),
                                                 {p: p for p in pieces})
        verdicts = {}  # piece -> hidden.Verdict.data(): kept beside the gradebook, for the class report
        for cell in nb.cells:
            piece = tested_piece(cell)
            if piece not in cases:
                continue
            if piece in forbidden:
                verdicts[piece] = {"passed": False, "kind": "not_own_work", "mistake": None}
                cell.outputs = [_error("NotYourOwnWork", f"{piece} earns no points: its answer cell "
                                       + "; ".join(forbidden[piece]) + ". Answers must compute BatchNorm "
                                       "with their own code (numpy or torch primitives such as mean, "
                                       "sum, sqrt); they may not use torch's normalisation layers, "
                                       "the course's own helpers, the hidden reference or the "
                                       "solutions.")]
                continue
            missing = run.problems.get(piece) or (
                "the notebook stopped before this test ran: " + run.stopped if run.stopped
                else "this test cell did not finish (see its error, or an error above it)")
            demonstrations.blame(run.answers.get(piece), only_skipped)
            replay = answers.Replay(piece, calls[piece], run.answers.get(piece),
                                    missing=f"no answers of {piece} were recorded: {missing}")
            found = hidden.judged(piece, replay, cases[piece])
            verdicts[piece] = found.data()
            cell.outputs = ([nbformat.v4.new_output("stream", name="stdout", text=found.message + "\n")]
                            if found.passed else [_error("CheckFailed", found.message)])
        present = set(_tested_pieces(nb))
        deleted = [c.metadata.nbgrader.grade_id for c in self._released_cells(lesson)
                   if tested_piece(c) not in present | {None}]
        for grade_id in deleted:  # said where the learner reads it: nbgrader has already scored it 0
            nb.cells.append(nbformat.v4.new_markdown_cell(
                f"**Grader:** the test cell `{grade_id}` was deleted from this notebook, so "
                f"`{grade_id[len('test_'):]}` scores 0."))
        if skip:  # said where the learner reads it
            nb.cells.append(nbformat.v4.new_markdown_cell(
                f"**Grader:** {len(skip)} demonstration cell{'s' * (len(skip) > 1)} of this lesson "
                "decide no grade and were not run while grading: "
                + ", ".join(f"`{name}`" for name in skip.values()) + "."))
        for grade_id in deleted:
            verdicts[grade_id[len("test_"):]] = {"passed": False, "kind": "deleted", "mistake": None}
        save_report(workspace, student, lesson, sandbox=run.sandbox, flags=flags,
                    stopped=run.stopped, note=run.note, deleted_tests=deleted, verdicts=verdicts,
                    skipped=list(skip.values()))
        return nb, resources

    def _released_cells(self, lesson):
        if not self.release_directory:
            return []
        return [c for path in Path(self.release_directory, lesson).glob("*.ipynb")
                for c in nbformat.read(path, as_version=4).cells]

    def _released(self, lesson):
        return [c.source for c in self._released_cells(lesson) if c.cell_type == "code"]


def _carried(folder):
    """{relative path: bytes} of the regular files beside the notebook in autograded/ (what
    the submission carried: data, timestamp.txt...), links and other notebooks left out."""
    if not folder:
        return {}
    found = {}
    for path in Path(folder).rglob("*"):
        if path.is_symlink() or not path.is_file() or path.suffix == ".ipynb":
            continue
        found[path.relative_to(folder)] = path.read_bytes()
    return found


def _tested_pieces(nb):
    return [p for p in map(tested_piece, nb.cells) if p]


def _take_outputs(nb, executed):
    """Copy outputs from the sandbox's notebook, cell by cell, where the code is the same."""
    if executed is None:
        return
    ran = executed.get("cells", [])
    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "code" or index >= len(ran):
            continue
        other = ran[index]
        if other.get("cell_type") == "code" and other.get("source") == cell.source:
            cell.outputs = other.get("outputs", [])
            cell.execution_count = other.get("execution_count")


def _error(ename, evalue):
    return nbformat.v4.new_output("error", ename=ename, evalue=evalue, traceback=[f"{ename}: {evalue}"])
