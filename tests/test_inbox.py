"""Grading treats its inbox as read-only, through the real command line: nbgrader's own
submitted/ graded with --workdir at the course root, a learner's own copy, links, FIFOs and
files a submission carries (timestamp.txt, submission_secret.txt, data)."""
import hashlib
import os
import shutil
import stat
import subprocess
import sys

import pytest

from autograder import submissions
from autograder.settings import REPO
from tests.catalogue import LESSON_OF

LESSON = LESSON_OF["batch_mean"]
TIMESTAMP = "2026-11-20 10:00:00.000000 UTC"
SECRET = "0123456789abcdef"


def snapshot(folder):
    """Every entry under folder: kind, mode, size, mtime and content (or link target)."""
    seen = {}
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=False):
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            info = os.lstat(path)
            if stat.S_ISLNK(info.st_mode):
                body = "-> " + os.readlink(path)
            elif stat.S_ISREG(info.st_mode):
                body = hashlib.sha256(open(path, "rb").read()).hexdigest()
            else:
                body = ""
            seen[os.path.relpath(path, folder)] = (stat.filemode(info.st_mode), info.st_size,
                                                   info.st_mtime_ns, body)
    return seen


def grade(*args):
    return subprocess.run([sys.executable, "-m", "autograder", "grade", *map(str, args),
                           "--workers", "1"], capture_output=True, text=True, cwd=REPO, timeout=900)


def rows(csv_path):
    import csv
    with open(csv_path) as f:
        return {r["student"]: r for r in csv.DictReader(f)}


@pytest.fixture(scope="module")
def course_root(tmp_path_factory):
    """nbgrader's layout after `nbgrader collect`, then graded twice as the issue's instructor did:
    python -m autograder grade ROOT/submitted --workdir ROOT."""
    root = tmp_path_factory.mktemp("course")
    shutil.copytree(REPO / "solutions" / LESSON, root / "source" / LESSON)  # nbgrader's course root
    inbox = root / "submitted"
    model = submissions.write(submissions.filled_notebook(LESSON),
                              inbox / "ada" / LESSON / f"{LESSON}.ipynb")
    (model.parent / "timestamp.txt").write_text(TIMESTAMP)
    (model.parent / "submission_secret.txt").write_text(SECRET)
    (model.parent / "data" / "my_batch.csv").parent.mkdir()
    (model.parent / "data" / "my_batch.csv").write_text("1,2\n3,4\n")
    instructor = REPO / "solutions" / LESSON
    # links to the instructor's notebook: a lesson folder, a notebook, a whole student folder
    (inbox / "linked_folder").mkdir()
    (inbox / "linked_folder" / LESSON).symlink_to(instructor)
    (inbox / "linked_notebook" / LESSON).mkdir(parents=True)
    (inbox / "linked_notebook" / LESSON / f"{LESSON}.ipynb").symlink_to(instructor / f"{LESSON}.ipynb")
    (inbox / "linked_student").symlink_to(inbox / "ada")
    fifo = submissions.write(submissions.filled_notebook(LESSON),
                             inbox / "fifo" / LESSON / f"{LESSON}.ipynb").parent / "pipe"
    os.mkfifo(fifo)
    before = snapshot(inbox)
    first = grade(inbox, "--workdir", root)
    second = grade(inbox, "--workdir", root)  # a regrade: the staged copies are the grader's own
    return root, before, first, second


def test_grading_nbgraders_submitted_folder_leaves_it_byte_for_byte(course_root):
    root, before, first, second = course_root
    assert first.returncode == 0, first.stderr
    assert second.returncode == 0, second.stderr
    assert snapshot(root / "submitted") == before


def test_every_collected_submission_is_graded_not_missing(course_root):
    root, _, first, _ = course_root
    assert (root / "release" / LESSON / f"{LESSON}.ipynb").exists()  # generated from source/
    graded = rows(root / "grades.csv")
    ada = graded["ada"]
    assert ada["status"] == "graded" and ada["score"] == ada["max_score"] != "0", ada


def test_files_a_submission_carries_travel_with_it(course_root):
    """nbgrader's late penalties read timestamp.txt from autograded/; release_feedback reads
    timestamp.txt and submission_secret.txt from feedback/."""
    root = course_root[0]
    for step in ("autograded", "feedback"):
        folder = root / step / "ada" / LESSON
        assert (folder / "timestamp.txt").read_text() == TIMESTAMP
        assert (folder / "submission_secret.txt").read_text() == SECRET
    assert (root / "autograded" / "ada" / LESSON / "data" / "my_batch.csv").read_text() == "1,2\n3,4\n"
    from nbgrader.api import Gradebook
    with Gradebook(f"sqlite:///{root / 'gradebook.db'}") as gb:
        assert str(gb.find_submission(LESSON, "ada").timestamp).startswith("2026-11-20 10:00:00")


@pytest.mark.parametrize("student, what", [
    ("linked_folder", f"{LESSON}/ is a symbolic link"),
    ("linked_notebook", f"{LESSON}.ipynb is a symbolic link"),
    ("linked_student", "the student's folder is a symbolic link"),
    ("fifo", "pipe is a FIFO"),
])
def test_links_and_special_files_are_refused_never_followed(course_root, student, what):
    root = course_root[0]
    row = rows(root / "grades.csv")[student]
    assert row["status"].startswith("refused: ") and what in row["status"], row
    assert row["score"] == "0"
    assert not (root / "autograded" / student).exists()


def test_a_workdir_inside_the_inbox_is_refused_before_anything_is_written(tmp_path):
    inbox = tmp_path / "submitted"
    submissions.write(submissions.filled_notebook(LESSON, fill_rest=False),
                      inbox / "ada" / LESSON / f"{LESSON}.ipynb")
    before = snapshot(inbox)
    for workdir in (inbox, inbox / "ada" / "work"):
        out = grade(inbox, "--workdir", workdir)
        assert out.returncode == 2 and "inside the inbox" in out.stderr, out.stderr
    assert snapshot(inbox) == before


def test_a_learners_own_copy_is_left_as_it_was(tmp_path):
    """`make grade-me`: grade my_course --as-student me --workdir grading/me."""
    mine = tmp_path / "my_course"
    submissions.write(submissions.filled_notebook(LESSON), mine / LESSON / f"{LESSON}.ipynb")
    (mine / LESSON / "notes.txt").write_text("my own notes")
    before = snapshot(mine)
    out = grade(mine, "--as-student", "me", "--workdir", tmp_path / "work")
    assert out.returncode == 0, out.stderr
    assert snapshot(mine) == before
    assert rows(tmp_path / "work" / "grades.csv")["me"]["status"] == "graded"
