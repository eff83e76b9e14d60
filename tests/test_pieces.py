"""One spec per graded piece (bncourse.pieces): the registry, and the machinery that reads it
without naming any piece."""
import ast
import inspect
from pathlib import Path

import nbformat

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
        assert ("namespace" in inspect.signature(check).parameters) == bool(spec.parts)
        assert all(part in pieces.REGISTRY for part in spec.parts)


def test_the_machinery_names_no_piece():
    names = set(pieces.REGISTRY)
    for path in ENGINE:
        tree = ast.parse((REPO / path).read_text())
        found = {node.value for node in ast.walk(tree) if isinstance(node, ast.Constant) and node.value in names}
        found |= {node.id for node in ast.walk(tree) if isinstance(node, ast.Name) and node.id in names}
        found |= {node.attr for node in ast.walk(tree) if isinstance(node, ast.Attribute) and node.attr in names}
        assert not found, f"{path} names {sorted(found)}: that belongs in the piece's spec"
