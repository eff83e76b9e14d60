"""One spec per graded piece (bncourse.pieces): the registry, and the machinery that reads it
without naming any piece."""
import ast
import inspect
from pathlib import Path

import nbformat
import pytest

from autograder import reference
from autograder.paths import SOURCE
from autograder.submissions import notebook_path
from bncourse import checks, pieces

REPO = Path(__file__).resolve().parents[1]
# read the specs; none may name a piece (a piece's facts belong in its spec)
ENGINE = ["bncourse/judge.py", "bncourse/checks.py", "bncourse/answers.py", "bncourse/tripwire.py",
          "bncourse/runner.py", "bncourse/stored.py", "bncourse/verdicts.py", "bncourse/rounding.py",
          "autograder/hidden.py", "autograder/honesty.py", "autograder/store_expected.py",
          "benchmarks/calibrate_tolerances.py"]


def test_the_reference_has_one_function_per_spec():
    public = {name for name, value in vars(reference).items() if not name.startswith("_") and callable(value)
              and getattr(value, "__module__", None) == reference.__name__}
    assert public == set(pieces.REGISTRY)


def test_every_spec_is_a_cell_of_its_lesson():
    for lesson in pieces.lessons():
        source = "\n".join(c.source for c in nbformat.read(notebook_path(lesson, SOURCE), as_version=4).cells
                           if c.cell_type == "code")
        for spec in pieces.of_lesson(lesson):
            name = spec.signature.split("(")[0].removeprefix("class ")
            assert name == spec.name and (f"def {name}(" in source or f"class {name}(" in source), spec.name
            assert f'record_answers("{spec.name}"' in source, spec.name


def test_every_spec_has_a_visible_check_with_its_summary():
    for name, spec in pieces.REGISTRY.items():
        check = getattr(checks, f"check_{name}")
        assert check.__doc__.startswith(spec.summary)
        assert list(inspect.signature(check).parameters) == ["fn", "raise_on_failure"]
        assert all(part in pieces.REGISTRY for part in spec.parts)


def test_the_machinery_names_no_piece():
    names = set(pieces.REGISTRY)
    for path in ENGINE:
        tree = ast.parse((REPO / path).read_text())
        found = {node.value for node in ast.walk(tree) if isinstance(node, ast.Constant) and node.value in names}
        found |= {node.id for node in ast.walk(tree) if isinstance(node, ast.Name) and node.id in names}
        found |= {node.attr for node in ast.walk(tree) if isinstance(node, ast.Attribute) and node.attr in names}
        assert not found, f"{path} names {sorted(found)}: that belongs in the piece's spec"


def test_a_visible_check_judges_a_piece_with_torchs_earlier_steps_where_it_looks_them_up():
    """The learner passes only their function: the earlier steps it calls are found in its own
    globals and swapped for torch's while it is checked, then put back."""
    import contextlib
    import io

    from autograder import submissions
    ns = {}
    sources = submissions.solution_sources("02_normalise_and_scale")
    exec("import numpy as np\n"
         "def batch_mean(x):\n    return x.mean(axis=0)\n"  # the lesson's recap cell
         "def batch_variance(x):\n    return ((x - x.mean(axis=0)) ** 2).mean(axis=0)\n", ns)
    exec("\n".join(sources.values()), ns)
    exec("import numpy as np\n"
         "def normalise(x, mean, var, eps=1e-5):  # wrong on purpose: eps outside the root\n"
         "    return (x - mean) / (np.sqrt(var) + eps)", ns)
    wrong_step = ns["normalise"]
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert checks.check_batchnorm_forward(ns["batchnorm_forward"])
    assert "assembles the steps correctly, but with your own" in printed.getvalue()
    assert ns["normalise"] is wrong_step
    with pytest.raises(checks.CheckFailed):  # the wrong step itself fails its own check
        checks.check_normalise(wrong_step, raise_on_failure=True)
