"""The lessons' experiments (00, 06, 07): each one, run 5 times, gives identical numbers, and
its check says the effect points the way the lesson describes (a fixed-seed result, so not
flaky), here and under a second of torch's CPU kernel paths (another CPU moves float32 training's
numbers, not the effect). Experiments that measure with a learner's function get the solution's."""
import pytest

from tests.experiment_runs import CASES, elsewhere, other_path, result

RUNS = 5


@pytest.mark.parametrize("name", list(CASES))
def test_experiment_is_deterministic_and_shows_its_effect(name):
    run, check = CASES[name]
    results = [result(name)] + [run(seed=0) for _ in range(RUNS - 1)]  # the first is shared
    assert all(r == results[0] for r in results[1:]), f"{name} differs between runs"
    ok, message = check(results[0])
    assert ok, message
    ok, message = check(elsewhere(name))
    assert ok, f"under {other_path()}: {message}"
