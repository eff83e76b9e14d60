"""Every number the lessons state as a fact agrees with the code (tools/prose_numbers.py).

Markers (`NUMBER<!--= EXPR -->`) are evaluated with NAMESPACE: `result(name)`, the experiments' return
values (tests/experiment_runs.py, shared with tests/test_experiments.py, so no experiment runs
twice), and again with `result` from a second of torch's CPU kernel paths (experiment_runs.elsewhere):
a learner's CPU adds up in another order, and float32 training is chaotic, so a stated number must
hold on both. Lessons in CHECKED may state no measured-looking number without a marker, unless their
code cells contain it literally (an input such as a learning rate)."""
import inspect
import sys
from pathlib import Path

import nbformat
import pytest

from bncourse import covariate_shift, data, experiments, plots, why_it_works
from tests import experiment_runs
from tests.experiment_runs import result

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tools"))
import prose_numbers  # noqa: E402


def default(fn, name):
    """The default value of fn's argument `name` (a study's learning rate, a check's target)."""
    return inspect.signature(fn).parameters[name].default


NAMESPACE = {"result": result, "default": default, "data": data, "plots": plots,
             "covariate_shift": covariate_shift, "why_it_works": why_it_works, "experiments": experiments}
PATHS = {  # kernel path -> namespace
    f"here ({experiment_runs.CAPABILITY})": NAMESPACE,
    experiment_runs.other_path(): {**NAMESPACE, "result": experiment_runs.elsewhere},
}
LESSONS = sorted(p.name for p in (REPO / "solutions").iterdir() if p.is_dir())
CHECKED = {  # lessons whose every measured-looking number is marked or printed
    "00_internal_covariate_shift",
    "01_batch_statistics",
    "02_normalise_and_scale",
    "03_backward",
    "04_running_statistics",
    "05_batchnorm_module",
    "06_why_batchnorm_works",
    "07_placement_and_alternatives",
}


def markdown_and_code(lesson):
    nb = nbformat.read(REPO / "solutions" / lesson / f"{lesson}.ipynb", as_version=4)
    return ([c.source for c in nb.cells if c.cell_type == "markdown"],
            "\n".join(c.source for c in nb.cells if c.cell_type == "code"))


@pytest.mark.parametrize("lesson", LESSONS)
def test_every_marked_number_is_what_the_code_gives(lesson):
    cells, _ = markdown_and_code(lesson)
    wrong = [f"{claim} [{path}]" for text in cells for c in prose_numbers.claims(text)
             for path, namespace in PATHS.items()
             if (claim := prose_numbers.check(prose_numbers.Claim(c.number, c.expr), namespace)).error]
    assert not wrong, f"{lesson}: numbers in the text that the code does not give:\n" + "\n".join(wrong)


@pytest.mark.parametrize("lesson", sorted(CHECKED))
def test_no_measured_number_is_unmarked(lesson):
    cells, code = markdown_and_code(lesson)
    found = [f"{n}: ...{around}..." for text in cells for n, around in prose_numbers.unmarked(text, code)]
    assert not found, f"{lesson}: numbers stated without a marker or a cell printing them:\n" + "\n".join(found)


def test_a_wrong_number_is_caught():
    right = "BatchNorm shrinks it about 35<!--= 70 / 2 --> times; s = 0.25<!--= 0.5 / math.sqrt(4) -->."
    assert [c.error for c in map(lambda c: prose_numbers.check(c, {}), prose_numbers.claims(right))] == [None, None]
    wrong = right.replace("35<", "36<")
    errors = [prose_numbers.check(c, {}).error for c in prose_numbers.claims(wrong)]
    assert errors[0] and "the code gives 35" in errors[0] and errors[1] is None


def test_tolerances_and_percentages():
    def error(text, namespace=None):
        return prose_numbers.check(prose_numbers.claims(text)[0], namespace or {}).error
    assert error("0.2<!--= 0.2499 -->") is None and error("0.2<!--= 0.2501 -->")  # half a unit of 0.2
    assert error("97.8 %<!--= 100 * acc ~ 0.5 -->", {"acc": 0.975}) is None
    assert error("97.8 %<!--= 100 * acc ~ 0.5 -->", {"acc": 0.97})
    assert error("within 5<!--= x ~ 20% --> %", {"x": 5.9}) is None and error("5<!--= x ~ 20% -->", {"x": 6.1})
    assert "could not evaluate" in error("3<!--= undefined_name -->")


def test_the_second_kernel_path_is_another():
    """The child really runs other kernels (ATEN_CPU_CAPABILITY reached torch), unless this machine
    has only one path."""
    theirs = experiment_runs._worker().capability()
    if experiment_runs.OTHER_CAPABILITY is None and theirs == "DEFAULT":
        pytest.skip("this CPU has only torch's default kernels: one path to check")
    assert theirs != experiment_runs.CAPABILITY


def test_bounds():
    def error(text, value):
        return prose_numbers.check(prose_numbers.claims(text)[0], {"x": value}).error
    assert error("65<!--= x ~ min -->", 64.6) is None and "below" in error("65<!--= x ~ min -->", 64.4)
    assert error("85 %<!--= x ~ max -->", 85.4) is None and "above" in error("85 %<!--= x ~ max -->", 85.6)
    assert error("85<!--= x ~ max -->", -1e9) is None and error("65<!--= x ~ min -->", 1e9) is None


def test_unmarked_numbers_are_found_outside_code_maths_and_inputs():
    text = ("The loss fell to 0.31 after 40 steps, 12 % of the runs diverged and BN was 3 times faster; "
            "marked 0.5<!--= 1/2 -->; `x = 0.7`; $s = 0.25$; torch 2.13; (Ioffe & Szegedy, 2015); lr 0.05.")
    assert [n for n, _ in prose_numbers.unmarked(text, code="train(lr=0.05)")] == ["0.31", "12", "3"]
