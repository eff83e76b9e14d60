"""Lesson 07's experiments: each one, run 5 times, gives identical numbers, and its check
says the effect points the way the lesson describes (a fixed-seed result, so not flaky)."""
import numpy as np
import pytest

from autograder import submissions
from bncourse import experiments

RUNS = 5


def model_fold():
    """The solution's fold_batchnorm (the course does not ship the answer in bncourse)."""
    ns = {"np": np}
    exec(submissions.solution_sources("07_placement_and_alternatives")["fold_batchnorm"], ns)
    return ns["fold_batchnorm"]


CASES = dict(experiments.EXPERIMENTS)
CASES["folding"] = (lambda seed=0: experiments.folding_study(model_fold(), seed), experiments.check_folding)


@pytest.mark.parametrize("name", list(CASES))
def test_experiment_is_deterministic_and_shows_its_effect(name):
    run, check = CASES[name]
    results = [run(seed=0) for _ in range(RUNS)]
    assert all(r == results[0] for r in results[1:]), f"{name} differs between runs"
    ok, message = check(results[0])
    assert ok, message
