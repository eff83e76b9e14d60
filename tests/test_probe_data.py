"""bncourse/probes.npz, the misconception probes' stored inputs and wrong answers, is what
autograder/mistakes.py writes (`make probe-data`), and the probes run exactly those inputs."""
import tomllib

import numpy as np

from autograder import mistakes
from autograder.settings import REPO
from bncourse import misconceptions
from bncourse.cases import digest
from bncourse.misconceptions import CATALOGUE


def _same_array(a, b):
    a, b = np.asarray(a), np.asarray(b)
    if a.dtype != b.dtype or a.shape != b.shape:
        return False
    if a.dtype.kind in "fc":  # numbers worked out with torch may differ in the last bits elsewhere
        return bool(np.allclose(a, b, rtol=1e-12, atol=1e-14, equal_nan=True))
    return bool(np.array_equal(a, b))


def _same_inputs(a, b):
    """Calls' inputs equal, but for the last bits of numbers worked out with torch (a backward's
    cache comes from torch's forward, whose kernels another CPU's vector unit picks)."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same_inputs(a[k], b[k]) for k in a)
    if isinstance(a, (tuple, list)) and isinstance(b, (tuple, list)):
        return len(a) == len(b) and all(_same_inputs(x, y) for x, y in zip(a, b))
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return _same_array(a, b)
    return digest((a,), {}) == digest((b,), {})


def _differences(committed, fresh):
    """What differs between two entries of the data file, in words."""
    found = []
    if not _same_inputs(committed["calls"], fresh["calls"]):
        found.append("inputs")
    for part in ("wrong", "exact"):
        if (part in committed) != (part in fresh) or part in fresh and not _same_array(committed[part], fresh[part]):
            found.append(f"{part} answer")
    return found


def test_the_committed_probe_data_is_current():
    committed = misconceptions.unpack(mistakes.PROBE_DATA.read_bytes())
    fresh = misconceptions.unpack(misconceptions.pack(mistakes.build()))  # through the same file format
    stale = [f"{key} (not written any more)" for key in committed if key not in fresh]
    stale += [f"{key} (missing)" for key in fresh if key not in committed]
    stale += [f"{key} ({', '.join(d)})" for key in fresh if key in committed
              for d in [_differences(committed[key], fresh[key])] if d]
    assert not stale, f"bncourse/{misconceptions.PROBE_DATA} is stale, run `make probe-data`: " + "; ".join(stale)


def test_every_misconception_has_its_probe_data_and_no_more():
    catalogued = {f"{piece}/{m.name}" for piece, known in CATALOGUE.items() for m in known}
    stored = set(misconceptions.probe_data())
    assert catalogued - stored == set(), "no stored probe for these"
    assert stored - catalogued == set(), "stored probes of no misconception"
    assert set(mistakes.MISTAKES) == set(CATALOGUE)


def test_the_data_file_is_written_the_same_way_twice():
    entries = mistakes.build()
    assert misconceptions.pack(entries) == misconceptions.pack(entries)


def test_probes_call_the_function_only_on_their_recorded_calls():
    """The grader records the answers to probe.calls in the sandbox and replays them
    (bncourse.answers.Replay, by digest): a probe must ask nothing else."""
    for piece, known in CATALOGUE.items():
        for m in known:
            asked = []

            def spy(*args, **kwargs):
                asked.append(digest(args, kwargs))  # noqa: B023 (used within this iteration)
                raise ValueError("spy")
            assert m.probe(spy) is False
            recorded = {digest(args, kwargs) for args, kwargs in m.probe.calls}
            assert asked and set(asked) <= recorded, f"{piece}/{m.name}"


def test_the_data_file_ships_with_the_package():
    package_data = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    assert misconceptions.PROBE_DATA in package_data["bncourse"]


def test_importing_the_misconceptions_is_cheap():
    """No torch at import (the probe data is read when a probe first runs)."""
    import subprocess
    import sys
    code = "import sys, bncourse.misconceptions; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_inputs_moved_beyond_rounding_are_stale():
    committed = misconceptions.unpack(mistakes.PROBE_DATA.read_bytes())
    key = "batchnorm_backward/no_mean_term"  # (a cache dict among its inputs)
    (args, kwargs), = committed[key]["calls"]
    cache = dict(args[1])
    rounded = {**cache, "x_hat": cache["x_hat"] * (1 + 4 * np.finfo(np.float64).eps)}
    moved = {**cache, "x_hat": cache["x_hat"] + 1e-6}
    assert _differences(committed[key], {**committed[key], "calls": [((args[0], rounded), kwargs)]}) == []
    assert _differences(committed[key], {**committed[key], "calls": [((args[0], moved), kwargs)]}) == ["inputs"]
