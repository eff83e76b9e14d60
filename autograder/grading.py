"""Release the course and grade a class, through nbgrader's own API.

    release()                       course/ <- nbgrader generate_assignment(solutions/)
    grade(inbox, workdir)           INBOX/<student>/<lesson>/*.ipynb -> grades.csv + feedback
"""
import contextlib
import csv
import fcntl
import os
import re
import shutil
import stat
import sys
import tempfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from autograder import exports, repair, sheets
from autograder.reports import VERDICTS, load_report, report_path, write_verdicts
from autograder.sandbox import UNSANDBOXED
from autograder.settings import CELL_TIMEOUT, RELEASE, SOURCE, make_config
from autograder.submissions import grade_id, is_test_cell
from autograder.submissions import lessons as all_lessons

CSV_COLUMNS = ["student", "lesson", "score", "max_score", "status", "sandbox", "flags", "failed_tests",
               "late_penalty"]  # then one column of points per graded piece (autograder.exports)


class GradingError(RuntimeError):
    """Grading itself broke (not a learner's submission): the command exits non-zero."""


def _api(config):
    from nbgrader.apps.api import NbGraderAPI
    from nbgrader.coursedir import CourseDirectory
    return NbGraderAPI(coursedir=CourseDirectory(config=config), config=config)


def _generate(api, lesson):
    result = api.generate_assignment(lesson, force=True, create=True)
    if not result["success"]:
        raise GradingError(f"nbgrader generate_assignment {lesson} failed:\n"
                           f"{result.get('log', '')}\n{result.get('error', '')}")


def release(lessons=None, out=RELEASE, source=SOURCE):
    """Regenerate the learner notebooks in `out` from `source` (default: course/ from solutions/)."""
    lessons = lessons or all_lessons(source)
    with tempfile.TemporaryDirectory() as tmp:  # a throwaway gradebook: release is pure
        api = _api(make_config(root=tmp, source=source, release=out))
        for lesson in lessons:
            _generate(api, lesson)
    sheets.write(out)  # the one-page sheet and the notation table the lessons link to
    return lessons


# ------------------------------------------------------------------ grading a class

@dataclass
class Row:
    student: str
    lesson: str
    score: float = 0.0
    max_score: float = 0.0
    status: str = "graded"
    failed_tests: list = field(default_factory=list)
    sandbox: str = ""  # how the notebook ran: bubblewrap, NONE (unsandboxed), or "" (not run)
    flags: list = field(default_factory=list)  # code a human should look at (autograder.honesty)
    late_penalty: float = 0.0  # points taken off by the late-submission plugin (score is after it)
    pieces: dict = field(default_factory=dict)  # piece -> points scored
    piece_max: dict = field(default_factory=dict)  # piece -> points it is worth
    verdicts: dict = field(default_factory=dict)  # piece -> hidden.Verdict.data() (the run's report)

    def csv(self):
        return {"student": self.student, "lesson": self.lesson, "score": f"{self.score:g}",
                "max_score": f"{self.max_score:g}", "status": self.status, "sandbox": self.sandbox,
                "flags": " | ".join(self.flags), "failed_tests": " | ".join(self.failed_tests),
                "late_penalty": f"{self.late_penalty:g}",
                **{piece: f"{points:g}" for piece, points in self.pieces.items()}}


# ------------------------------------------------------------------ the inbox is read-only

STAGED = "staged"  # the grader's own copy of each submission: nbgrader's submitted_directory while grading
IGNORED = {".ipynb_checkpoints", "__pycache__"}  # as nbgrader's CourseDirectory.ignore
MAX_SUBMISSION_BYTES = 64 << 20  # everything a submission carries, notebook included
KINDS = [(stat.S_ISLNK, "a symbolic link"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"),
         (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device")]


class Refused(Exception):
    """A submission that is not plain files and folders: it is reported, never followed."""


def _kind(mode):
    return next((name for test, name in KINDS if test(mode)), "not a regular file")


def _files(folder):
    """{relative path: lstat} of every regular file under folder, links never followed.
    Raises Refused for a link, device, FIFO or socket anywhere in it."""
    found, stack = {}, [Path()]
    while stack:
        rel = stack.pop()
        with os.scandir(folder / rel) as entries:
            for entry in entries:
                info = entry.stat(follow_symlinks=False)
                if entry.name in IGNORED or entry.name.endswith(".pyc"):
                    continue
                if stat.S_ISDIR(info.st_mode):
                    stack.append(rel / entry.name)
                elif stat.S_ISREG(info.st_mode):
                    found[rel / entry.name] = info
                else:
                    raise Refused(f"{(rel / entry.name).as_posix()} is {_kind(info.st_mode)}")
    return found


def _read(path):
    """The bytes of a regular file, opened without following a link (a file swapped for a
    link after it was listed is refused, not read)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError as e:
        raise Refused(f"{path.name} could not be opened ({e.strerror})") from None
    with os.fdopen(fd, "rb") as f:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise Refused(f"{path.name} is {_kind(info.st_mode)}")
        return f.read(MAX_SUBMISSION_BYTES + 1)


def _pick_notebook(files, lesson):
    """The submitted notebook among a lesson folder's files, and a note when it was not where
    expected."""
    notebooks = sorted(p for p in files if len(p.parts) == 1 and p.suffix == ".ipynb")
    expected = Path(f"{lesson}.ipynb")
    if expected in notebooks:
        return expected, ""
    if len(notebooks) == 1:
        return notebooks[0], f"graded {notebooks[0].name} (expected {lesson}.ipynb)"
    if not notebooks:
        return None, f"missing: no notebook in {lesson}/"
    return None, f"missing: several notebooks in {lesson}/, none named {lesson}.ipynb"


def _stage(inbox_student, student, lesson, work, release=None):
    """Copy one submission from the (read-only) inbox into the grader's own staging folder:
    the notebook as <lesson>.ipynb and every other file it carries (timestamp.txt,
    submission_secret.txt, a learner's data), as nbgrader carries them. Returns (ready, note).
    Nothing in the inbox is written, moved or deleted; links and special files are refused.
    release: the released notebook, from which damaged nbgrader metadata of the staged copy is
    repaired (autograder.repair)."""
    target = work / STAGED / student / lesson
    shutil.rmtree(target, ignore_errors=True)  # the grader's own copy from an earlier run
    folder = inbox_student / lesson
    try:
        for path, what in ((inbox_student, "the student's folder"), (folder, f"{lesson}/")):
            try:
                mode = os.lstat(path).st_mode
            except FileNotFoundError:
                return False, f"missing: no folder {lesson}/"
            if not stat.S_ISDIR(mode):
                if stat.S_ISREG(mode):
                    return False, f"missing: {what} is a file, not a folder"
                raise Refused(f"{what} is {_kind(mode)}")
        files = _files(folder)
        if sum(info.st_size for info in files.values()) > MAX_SUBMISSION_BYTES:
            raise Refused(f"it holds more than {MAX_SUBMISSION_BYTES >> 20} MiB")
        path, note = _pick_notebook(files, lesson)
        if path is None:
            return False, note
        contents = {rel: _read(folder / rel) for rel in files
                    if rel == path or rel.suffix != ".ipynb"}
    except Refused as e:
        return False, f"refused: {e}; nothing in it was graded or followed"
    try:
        nb = nbformat.reads(contents.pop(path).decode("utf-8"), as_version=4)
        nbformat.validate(nb)
    except Exception as e:  # malformed JSON or not a notebook at all
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        return False, f"malformed notebook {path.name}: {first[:160]}"
    repaired = repair.repair(nb, nbformat.read(release, as_version=4)) if release and release.exists() else []
    if repaired:
        nb.cells.append(nbformat.v4.new_markdown_cell(
            "**Grader:** " + "; ".join(repaired) + ". Only the release's test cells and points are scored."))
        note = "; ".join([note] * bool(note) + repaired)
    target.mkdir(parents=True)
    nbformat.write(nb, target / f"{lesson}.ipynb")
    for rel, data in contents.items():
        (target / rel).parent.mkdir(parents=True, exist_ok=True)
        (target / rel).write_bytes(data)
    return True, note


def _check_separate(inbox, work):
    """The workspace may sit beside the inbox or around it (nbgrader's course root holding
    submitted/), never inside it, and the inbox may not be one of the grader's own folders."""
    if work == inbox or inbox in work.parents:
        raise GradingError(f"--workdir {work} is inside the inbox {inbox}: grading writes there, "
                           "and the inbox is read-only. Choose a folder outside it.")
    for own in (STAGED, "release", "autograded", "feedback", "reports"):
        if inbox == work / own or (work / own) in inbox.parents:
            raise GradingError(f"the inbox {inbox} is the grader's own {own}/ folder of "
                               f"{work}: grade the collected submissions (e.g. submitted/) instead.")


def _failed_tests(work, student, lesson, deleted=()):
    """'test_id: message' for every test cell that failed, read from the autograded notebook,
    and for every one deleted from it (as the grader's report lists them)."""
    path = work / "autograded" / student / lesson / f"{lesson}.ipynb"
    if not path.exists():
        return []
    failed = []
    for cell in nbformat.read(path, as_version=4).cells:
        if not is_test_cell(cell):
            continue
        for out in cell.get("outputs", []):
            if out.output_type == "error":
                message = f"{out.ename}: {out.evalue}".strip().splitlines()[0]
                failed.append(f"{grade_id(cell)}: {message[:600]}")
                break
    return failed + [f"{test}: this test cell was deleted from the notebook; it scores 0" for test in deleted]


def _scores(db_url, rows):
    from nbgrader.api import Gradebook
    with Gradebook(db_url) as gb:
        for row in rows:
            row.max_score = gb.find_assignment(row.lesson).max_score
            if row.status.startswith(("missing", "malformed", "refused", "grading error")):
                continue
            row.pieces = exports.piece_scores(gb, row.lesson, row.student)
            row.piece_max = {cell.name[len("test_"):]: cell.max_score
                             for notebook in gb.find_assignment(row.lesson).notebooks
                             for cell in notebook.grade_cells if cell.name.startswith("test_")}
            if not row.pieces:
                row.status = "grading error: no grades recorded"
                continue
            scores = exports.submission_scores(gb, row.lesson, row.student)
            row.score, row.late_penalty = scores["score"], scores["late_penalty"]


def students_in(inbox):
    """Every student folder of the inbox (a link in its place is listed, to be refused)."""
    return sorted(p.name for p in Path(inbox).iterdir() if not p.name.startswith(".")
                  and (p.is_symlink() or stat.S_ISDIR(p.lstat().st_mode)))


def workspace_settings(work, cell_timeout=CELL_TIMEOUT):
    """The grading workspace's folders (README, "Grading workspace"): nbgrader's course root
    when WORK has a source/ folder (as on a JupyterHub), else the repository's solutions/."""
    source = work / "source" if (work / "source").is_dir() else SOURCE
    return {"root": work, "source": source, "release": work / "release", "submitted": STAGED,
            "cell_timeout": cell_timeout}


def grade(inbox, workdir, lessons=None, as_student=None, progress=True, cell_timeout=CELL_TIMEOUT,
          workers=None, student=None):
    """Grade every student x lesson of INBOX into WORKDIR; return the rows of grades.csv.

    INBOX/<student>/<lesson>/<lesson>.ipynb, or with as_student=NAME: INBOX/<lesson>/... for
    one learner (their own working copy). A bad submission becomes a row with a status; it
    never stops the class. workers: notebooks graded at once (default: one per core); the
    results are the same as one at a time. student=NAME regrades that student of INBOX only
    and merges their rows into WORKDIR/grades.csv (every other row as it was).
    """
    inbox, work = Path(inbox).resolve(), Path(workdir).resolve()
    if not inbox.is_dir():
        raise GradingError(f"inbox {inbox} is not a folder")
    _check_separate(inbox, work)
    folders = {as_student: inbox} if as_student else {s: inbox / s for s in students_in(inbox)}
    if student is not None:
        if student not in folders:
            raise GradingError(f"no student {student!r} in {inbox}; students there: "
                               f"{', '.join(folders) or 'none'}")
        folders = {student: folders[student]}
    settings = workspace_settings(work, cell_timeout)
    known = all_lessons(settings["source"])
    if lessons is None:  # (a student folder that is a link is not looked into)
        present = {p.name for f in folders.values() if not f.is_symlink() for p in f.iterdir()
                   if p.is_symlink() or stat.S_ISDIR(p.lstat().st_mode)}
        lessons = [lesson for lesson in known if lesson in present]
    unknown = sorted(set(lessons) - set(known))
    if unknown:
        raise GradingError(f"no such lesson(s) {unknown}; lessons are {known}")
    work.mkdir(parents=True, exist_ok=True)
    config = make_config(**settings)
    api = _api(config)
    for lesson in lessons:  # records each lesson's test cells (and hidden tests) in the gradebook
        _generate(api, lesson)

    rows = []
    for student, folder in folders.items():
        for lesson in lessons:
            ready, note = _stage(folder, student, lesson, work,
                                 Path(settings["release"]) / lesson / f"{lesson}.ipynb")
            rows.append(Row(student, lesson, status="graded" + (f"; {note}" if note else "")
                            if ready else note))
    todo = [r for r in rows if r.status.startswith("graded")]
    workers = max(1, min(workers or os.cpu_count() or 1, len(todo)))
    for row in todo:  # an earlier run's report must not stand in for a run that breaks now
        report_path(work, row.student, row.lesson).unlink(missing_ok=True)
    _autograde_all(settings, todo, progress, workers)
    _scores(config.CourseDirectory.db_url, rows)
    for row in todo:
        report = load_report(work, row.student, row.lesson)
        row.sandbox, row.flags = report.get("sandbox", ""), report.get("flags", [])
        if report.get("stopped"):
            row.status += f"; stopped early: {report['stopped']}"
        if report.get("note"):
            row.status += f"; {report['note']}"
        row.failed_tests = _failed_tests(work, row.student, row.lesson, report.get("deleted_tests", ()))
        row.verdicts = report.get("verdicts", {})
    if student is not None:
        merge_csv(rows, work / "grades.csv")
    else:
        write_csv(rows, work / "grades.csv")
    write_verdicts([v for row in todo for v in verdict_rows(row)], {(r.student, r.lesson) for r in rows},
                   work / VERDICTS, merge=student is not None)
    return rows


# ------------------------------------------------------------------ one notebook, N workers

class GradebookLock:
    """One gradebook, many workers: nbgrader does not support concurrent autograding, so a
    worker holds this lock for all of its nbgrader work except the notebook's run in the
    sandbox (SandboxedExecute releases it meanwhile), the long part that runs in parallel."""

    def __init__(self, path):
        self.path = Path(path)
        self._fd = None

    def acquire(self):
        self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(self._fd, fcntl.LOCK_EX)

    def release(self):
        fcntl.flock(self._fd, fcntl.LOCK_UN)
        os.close(self._fd)
        self._fd = None

    @contextlib.contextmanager
    def held(self):
        self.acquire()
        try:
            yield
        finally:
            self.release()

    @contextlib.contextmanager
    def released(self):
        if self._fd is None:  # not held (nbgrader called directly): nothing to hand over
            yield
            return
        self.release()
        try:
            yield
        finally:
            self.acquire()


_worker = {}  # in each worker process: its nbgrader API and the lock


def _start_worker(settings):
    from sqlalchemy.exc import SAWarning

    from autograder.nbgrader_plugins import Coordination
    warnings.simplefilter("ignore", SAWarning)  # nbgrader 0.9's own session noise
    lock = GradebookLock(Path(settings["root"]) / ".gradebook.lock")
    Coordination.while_running = lock.released
    _worker.update(api=_api(make_config(**settings)), lock=lock)


def _grade_one(lesson, student):
    """Autograde and write feedback for one notebook: (the reason it could not be graded, or '';
    a note for its status, or '': feedback that could not be written is said, never silent)."""
    api = _worker["api"]
    with _worker["lock"].held():
        result = api.autograde(lesson, student, force=True, create=True)
        if not result["success"]:
            return "grading error: " + _reason(result.get("log", "") + result.get("error", "")), ""
        written = api.generate_feedback(lesson, student, force=True)
    if not written["success"]:
        return "", "no feedback page: " + _reason(written.get("log", "") + written.get("error", ""))
    return "", ""


def _autograde_all(settings, todo, progress, workers):
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed
    from concurrent.futures.process import BrokenProcessPool

    from tqdm.auto import tqdm

    bar = tqdm(total=len(todo), desc="grading", unit="notebook", disable=not progress, file=sys.stderr)
    left = list(todo)

    def finished(row, outcome):
        problem, note = outcome
        if problem:
            row.status = problem
        elif note:
            row.status += f"; {note}"
        left.remove(row)
        bar.update()

    if workers > 1:
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                                 initializer=_start_worker, initargs=(settings,)) as pool:
            futures = {pool.submit(_grade_one, row.lesson, row.student): row for row in todo}
            for future in as_completed(futures):
                try:
                    finished(futures[future], future.result())
                except BrokenProcessPool:
                    continue  # a worker died: its rows are graded below, one at a time
    if left:
        _start_worker(settings)
        for row in list(left):
            finished(row, _grade_one(row.lesson, row.student))
    bar.close()


def _reason(log):
    """The most telling line of a failed nbgrader run: its last real exception."""
    errors = [ln.strip() for ln in log.splitlines()
              if re.match(r"\s*[A-Za-z_.]*(Error|Exception|Timeout)\w*: ", ln)
              and "NbGraderException" not in ln]
    return (errors[-1] if errors else "nbgrader could not process the notebook")[:200]


def write_csv(rows, path, kept=()):
    """grades.csv: CSV_COLUMNS, then one column per graded piece of the lessons present.
    kept: rows (dicts) of an earlier grades.csv to keep, before the new rows."""
    lessons = list(dict.fromkeys([r["lesson"] for r in kept] + [r.lesson for r in rows]))
    columns = CSV_COLUMNS + exports.piece_columns(lessons)
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns, restval="", extrasaction="ignore")
        writer.writeheader()
        writer.writerows(kept)
        writer.writerows(r.csv() for r in rows)


def merge_csv(rows, path):
    """Put the regraded students' rows into an existing grades.csv: each replaces that
    student's earlier row of the same lesson in place; new ones go at the end."""
    new = {(r.student, r.lesson): r.csv() for r in rows}
    kept = []
    if path.exists():
        with open(path, newline="") as f:
            for old in csv.DictReader(f):
                kept.append(new.pop((old["student"], old["lesson"]), old))
    write_csv([r for r in rows if (r.student, r.lesson) in new], path, kept)


def verdict_rows(row):
    """verdicts.csv's rows of one submission: each graded piece's points (the gradebook's) and
    its verdict (the sandboxed run's report). None of it is read from a message."""
    out = []
    for piece, points in row.pieces.items():
        found = row.verdicts.get(piece)
        if found is None:  # scored by nbgrader but never judged (not a hidden-test piece)
            found = {"passed": points >= row.piece_max.get(piece, 0), "kind": "unjudged", "mistake": None}
        out.append({"student": row.student, "lesson": row.lesson, "piece": piece,
                    "points": f"{points:g}", "max_points": f"{row.piece_max.get(piece, 0):g}",
                    "passed": str(bool(found["passed"])).lower(), "kind": found["kind"],
                    "mistake": found["mistake"] or ""})
    return out


def summary(rows):
    """A table for the terminal: one line per student, one column per lesson, and notes."""
    lessons = list(dict.fromkeys(r.lesson for r in rows))
    students = list(dict.fromkeys(r.student for r in rows))
    cell = {(r.student, r.lesson): r for r in rows}
    width = max([len("student")] + [len(s) for s in students]) + 2
    cols = [max(len(lesson), 9) + 2 for lesson in lessons]
    lines = ["student".ljust(width) + "".join(lsn.ljust(c) for lsn, c in zip(lessons, cols)) + "total"]
    notes = []
    for s in students:
        got = sum(cell[s, lsn].score for lsn in lessons)
        out = sum(cell[s, lsn].max_score for lsn in lessons)
        line = s.ljust(width)
        for lsn, c in zip(lessons, cols):
            r = cell[s, lsn]
            line += f"{r.score:g}/{r.max_score:g}".ljust(c)
            if r.status != "graded":
                notes.append(f"  {s}/{lsn}: {r.status}")
            notes += [f"  {s}/{lsn}: {t}" for t in r.failed_tests]
            notes += [f"  {s}/{lsn}: REVIEW {flag}" for flag in r.flags]
        lines.append(line + f"{got:g}/{out:g}")
    if notes:
        lines += ["", "Notes:"] + notes
    unsandboxed = [r for r in rows if r.sandbox == UNSANDBOXED]
    if unsandboxed:
        from autograder.sandbox import diagnose
        why = diagnose() or "bubblewrap is missing or cannot create namespaces here."
        warning = (f"WARNING: {len(unsandboxed)} notebook(s) ran WITHOUT A SANDBOX: their code could "
                   "read the hidden reference and the instructor's files. Grades of those rows are "
                   "not safe against cheating; see docs/threat-model.md.\nWhy: " + why)
        lines = [warning, ""] + lines + ["", warning]
    return "\n".join(lines)
