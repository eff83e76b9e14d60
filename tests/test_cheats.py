"""Grades that cannot be gamed: the cheat and fault catalogue (tests/cheats.py) through the
real pipeline, in parallel, with a bystander whose grade and files must come through intact;
then the same correct work graded 20 times, and parallel grading against sequential."""
import hashlib
import subprocess
import sys
import time
from pathlib import Path

import pytest

from autograder import grading, sandbox, submissions
from autograder.reports import read_verdicts
from autograder.settings import REPO
from tests.cheats import CHEATS, LESSON
from tests.test_grading import feedback, hand_in, points

PIECES = ["batch_mean", "batch_variance"]
# seconds a cell may run: memory_hog fills the sandbox's whole 6 GiB of address space once
# (~15 s of page faults on this machine when quiet, two notebooks at a time; 30 s was not enough
# with two test suites beside it), and must be told MemoryError, not "did not finish"
CELL_TIMEOUT = 45
SKIP = {".venv", ".venv-learner", ".hub", ".git", "grading", "__pycache__", ".pytest_cache", "my_course"}


def snapshot(root):
    """sha256 of every file of the repository that a submission must never change."""
    found = {}
    for path in sorted(Path(root).rglob("*")):
        if path.is_file() and not SKIP & set(path.relative_to(root).parts):
            found[str(path.relative_to(root))] = hashlib.sha256(path.read_bytes()).hexdigest()
    return found


def fill(source, **paths):
    return source.format(**paths)


@pytest.fixture(scope="module")
def cheated(tmp_path_factory):
    if not sandbox.sandbox_available():
        pytest.skip("bubblewrap cannot run here; `make test` installs it (Debian: apt-get install bubblewrap)")
    inbox, work = tmp_path_factory.mktemp("inbox"), tmp_path_factory.mktemp("work")
    marker = tmp_path_factory.mktemp("outside") / "a submission was here"
    paths = {"repo": REPO, "work": work, "inbox": inbox, "marker": marker, "victim": "bystander"}
    hand_in(inbox, "bystander", LESSON)
    for cheat in CHEATS:
        answers = {piece: fill(code, **paths) for piece, code in cheat.answers.items()}
        nb = submissions.filled_notebook(LESSON, answers)
        if cheat.edit:
            cheat.edit(nb)
        submissions.write(nb, inbox / cheat.name / LESSON / f"{LESSON}.ipynb")
    before = snapshot(REPO)
    rows = grading.grade(inbox, work, progress=False, cell_timeout=CELL_TIMEOUT, workers=2)
    time.sleep(6)  # longer than the detached process would wait before striking
    return {r.student: r for r in rows}, work, before, marker, inbox


@pytest.mark.parametrize("cheat", CHEATS, ids=lambda c: c.name)
def test_a_cheat_earns_nothing_and_leaves_the_rest_alone(cheated, cheat):
    rows, work, *_ = cheated
    row = rows[cheat.name]
    assert row.sandbox == sandbox.SANDBOX
    expected = sum(points()[p] for p, s in cheat.scores.items() if s == "full")
    assert row.score == expected, row.failed_tests
    failed = {t.split(":")[0][len("test_"):]: t for t in row.failed_tests}
    assert sorted(failed) == sorted(p for p, s in cheat.scores.items() if s == 0)
    if cheat.says:
        [zero] = [p for p, s in cheat.scores.items() if s == 0]
        assert cheat.says in failed[zero], failed[zero]
        assert cheat.says in feedback(work, cheat.name, LESSON)
    if cheat.flag:
        assert any(cheat.flag in f for f in row.flags), row.flags
    assert cheat.status in row.status
    if row.pieces:  # the stored verdicts (verdicts.csv) agree, as data, with the points
        stored = {v["piece"]: v for v in read_verdicts(work) if v["student"] == cheat.name}
        assert set(stored) == set(row.pieces)
        for v in stored.values():
            assert v["passed"] == (v["kind"] == "passed") == (v["points"] == v["max_points"]), v
        assert all(not stored[p]["passed"] for p, s in cheat.scores.items() if s == 0)
        if "deleted" in cheat.name:
            assert {v["kind"] for v in stored.values() if not v["passed"]} == {"deleted"}


def test_nothing_outside_the_submissions_changed(cheated):
    rows, work, before, marker, inbox = cheated
    assert snapshot(REPO) == before
    assert not marker.exists()
    bystander = rows["bystander"]
    assert bystander.score == bystander.max_score and bystander.flags == []
    assert (work / "staged" / "bystander" / LESSON / f"{LESSON}.ipynb").exists()
    assert (inbox / "bystander" / LESSON / f"{LESSON}.ipynb").exists()
    vandal = (work / "autograded" / "vandal" / LESSON / f"{LESSON}.ipynb").read_text()
    assert "reached: []" in vandal  # it could name all those places, and reach none


def test_the_gradebook_keeps_the_grades_it_was_given(cheated):
    """A process left behind by a submission would have rewritten every auto_score."""
    from nbgrader.api import Gradebook
    rows, work, *_ = cheated
    with Gradebook(f"sqlite:///{work / 'gradebook.db'}") as gb:
        for student, row in rows.items():
            assert gb.find_submission(LESSON, student).score == row.score


def test_flags_stay_off_honest_work(cheated):
    rows = cheated[0]
    assert rows["bystander"].flags == []
    assert rows["edited_test_cell"].flags == []


@pytest.fixture(scope="module")
def twenty(tmp_path_factory):
    """20 learners hand in the same correct work, each asked different hidden inputs."""
    inbox = tmp_path_factory.mktemp("inbox")
    for i in range(20):
        hand_in(inbox, f"learner{i:02d}", LESSON)
    hand_in(inbox, "wrong", LESSON, {"batch_mean": "def batch_mean(x):\n    return x.sum(axis=0) / (len(x) - 1)\n"})
    work = tmp_path_factory.mktemp("work")
    parallel = grading.grade(inbox, work, progress=False, cell_timeout=CELL_TIMEOUT, workers=2)
    csv_parallel = (work / "grades.csv").read_text()
    sequential = grading.grade(inbox, work, progress=False, cell_timeout=CELL_TIMEOUT, workers=1)
    return parallel, csv_parallel, sequential, (work / "grades.csv").read_text()


def test_the_same_correct_work_graded_20_times_scores_the_same(twenty):
    parallel = twenty[0]
    scores = {r.score for r in parallel if r.student.startswith("learner")}
    assert scores == {points()["batch_mean"] + points()["batch_variance"]}
    assert sum(r.student.startswith("learner") for r in parallel) == 20


def test_parallel_grading_equals_sequential_and_regrading_changes_nothing(twenty):
    parallel, csv_parallel, sequential, csv_sequential = twenty
    assert csv_parallel == csv_sequential
    assert [r.csv() for r in parallel] == [r.csv() for r in sequential]
    wrong = next(r for r in parallel if r.student == "wrong")
    assert wrong.score == points()["batch_variance"]


def test_without_a_sandbox_grading_runs_and_says_so_loudly(tmp_path):
    hand_in(tmp_path / "inbox", "ada", LESSON)
    env = dict(__import__("os").environ, **{sandbox.ENV_OFF: "off"})
    out = subprocess.run([sys.executable, "-m", "autograder", "grade", str(tmp_path / "inbox"),
                          "--workdir", str(tmp_path / "work"), "--workers", "1"],
                         capture_output=True, text=True, cwd=REPO, timeout=600, env=env)
    assert out.returncode == 0, out.stderr
    assert "WITHOUT A SANDBOX" in out.stdout
    assert sandbox.UNSANDBOXED in (tmp_path / "work" / "grades.csv").read_text()
