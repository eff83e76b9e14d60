"""Lesson 03's derivation, graded by the real nbgrader pipeline: each node of BatchNorm's graph
is its own piece, so a wrong local derivative loses exactly that node's points.

One notebook per row of tests/catalogue.NODE_MUTANTS holds a wrong backward for *every* node at
once (the staged backward that chains them stays the solution's): each node's test fails and
names the node, and every other piece, the staged backward included, keeps its points."""
import html

import pytest

from autograder import grading, submissions
from bncourse import pieces
from tests.catalogue import NODE_MUTANTS
from tests.test_grading import points

LESSON = NODE_MUTANTS[0][0].lesson


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    inbox = tmp_path_factory.mktemp("inbox")
    for k, together in enumerate(NODE_MUTANTS):
        nb = submissions.filled_notebook(LESSON, {m.piece: m.source for m in together})
        submissions.write(nb, inbox / f"every_node_wrong_{k}" / LESSON / f"{LESSON}.ipynb")
    work = tmp_path_factory.mktemp("work")
    rows = grading.grade(inbox, work, progress=False)
    return {r.student: r for r in rows}, work


def test_every_node_is_its_own_piece():
    nodes = {m.piece for together in NODE_MUTANTS for m in together}
    assert all({m.piece for m in together} == nodes for together in NODE_MUTANTS)
    assert len(nodes) == 7 and all(points()[n] > 0 for n in nodes)


@pytest.mark.parametrize("k", range(len(NODE_MUTANTS)))
def test_each_wrong_local_derivative_loses_exactly_its_points(graded, k):
    rows, work = graded
    row = rows[f"every_node_wrong_{k}"]
    assert row.status == "graded"
    full = sum(points()[s.name] for s in pieces.of_lesson(LESSON))
    assert row.max_score == full
    assert row.score == full - sum(points()[m.piece] for m in NODE_MUTANTS[k]), row.failed_tests
    failed = {t.split(":")[0]: t for t in row.failed_tests}
    assert set(failed) == {f"test_{m.piece}" for m in NODE_MUTANTS[k]}, row.failed_tests
    text = html.unescape((work / "feedback" / row.student / LESSON / f"{LESSON}.html").read_text())
    for m in NODE_MUTANTS[k]:
        assert m.expect in failed[f"test_{m.piece}"] and m.expect in text, (m.name, failed[f"test_{m.piece}"])
