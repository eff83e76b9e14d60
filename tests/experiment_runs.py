"""The lessons' experiments (00, 06, 07) as the tests run them, each result computed once per
test session: tests/test_experiments.py checks them, tests/test_prose_numbers.py reads the
numbers the lessons quote from them. Experiments that measure with a learner's function get
the solution's (the course does not ship the answers in bncourse)."""
import functools

import numpy as np
import torch
import torch.nn.functional as F

from autograder import submissions
from bncourse import covariate_shift, experiments, why_it_works


def solution_functions(lesson):
    """The solutions' graded functions of a lesson, by name."""
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


@functools.cache
def result(name, seed=0):
    """What experiment `name` ("00/drift", "06/learning_rate", "07/placement", ...) returns."""
    return CASES[name][0](seed=seed)
