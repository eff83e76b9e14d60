"""The lessons' experiments (00, 06, 07): each one, run 5 times, gives identical numbers, and
its check says the effect points the way the lesson describes (a fixed-seed result, so not
flaky). Experiments that measure with a learner's function get the solution's."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from autograder import submissions
from bncourse import covariate_shift, experiments, why_it_works

RUNS = 5


def solution_functions(lesson):
    """The solutions' graded functions (the course does not ship the answers in bncourse)."""
    ns = {"np": np, "torch": torch, "F": F}
    for source in submissions.solution_sources(lesson).values():
        exec(source, ns)
    return ns


def _with(run, lesson, names):
    def with_solutions(seed=0):
        ns = solution_functions(lesson)
        return run(seed=seed, **{name: ns[name] for name in names})
    return with_solutions


CASES = {f"07/{name}": pair for name, pair in experiments.EXPERIMENTS.items()}
CASES["07/folding"] = (lambda seed=0: experiments.folding_study(
    solution_functions("07_placement_and_alternatives")["fold_batchnorm"], seed), experiments.check_folding)
for _name, (_run, _check) in covariate_shift.EXPERIMENTS.items():
    CASES[f"00/{_name}"] = (_with(_run, "00_internal_covariate_shift", covariate_shift.HELPERS), _check)
for _name, (_run, _check) in why_it_works.EXPERIMENTS.items():
    CASES[f"06/{_name}"] = (_with(_run, "06_why_batchnorm_works", why_it_works.HELPERS), _check)


@pytest.mark.parametrize("name", list(CASES))
def test_experiment_is_deterministic_and_shows_its_effect(name):
    run, check = CASES[name]
    results = [run(seed=0) for _ in range(RUNS)]
    assert all(r == results[0] for r in results[1:]), f"{name} differs between runs"
    ok, message = check(results[0])
    assert ok, message
