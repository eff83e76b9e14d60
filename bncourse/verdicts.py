"""Verdicts: an answer compared with the exact one, and the Failure that explains a wrong one."""
import contextlib

import numpy as np


class Failure(Exception):
    """A learner's function gave a wrong answer on one case; `str()` explains it."""

    def __init__(self, message, case=None, kind="value"):
        super().__init__(message)
        self.case, self.kind = case, kind


def type_name(value):
    """The type a learner returned (a recorded answer keeps the original's name)."""
    return getattr(value, "recorded_type", None) or type(value).__name__


def _as_array(value, name):
    if hasattr(value, "detach"):  # a torch tensor is fine too
        value = value.detach().cpu().numpy()
    try:
        arr = np.asarray(value)
    except Exception:
        arr = None
    if arr is None or arr.dtype == object or not np.issubdtype(arr.dtype, np.number):
        raise Failure(f"{name} must be a numpy array of numbers; got {type_name(value)}",
                      kind="type")
    return arr


_MARGINS = []  # the lists margins() hands out, innermost last


@contextlib.contextmanager
def margins():
    """Inside the block, every compare() appends its worst error/allowed ratio to the yielded
    list (0 when exact, inf past a zero allowance): how close answers come to failing
    (benchmarks/sweep_keys.py)."""
    ratios = []
    _MARGINS.append(ratios)
    try:
        yield ratios
    finally:
        _MARGINS.remove(ratios)


def compare(name, got, exact, allowed, case, explain=None):
    """Raise Failure unless `got` matches `exact` (float64) within `allowed`. explain(index,
    got, exact): words naming, in the learner's terms, the part that is wrong (which step,
    which channel, which term), or None."""
    got = _as_array(got, name)
    exact = np.asarray(exact, np.float64)
    if got.shape != exact.shape:
        raise Failure(f"{name} has shape {got.shape}, expected {exact.shape}", case, "shape")
    if not np.all(np.isfinite(got)):
        raise Failure(f"{name} contains nan or inf", case, "nonfinite")
    err = np.abs(got.astype(np.float64) - exact)
    if _MARGINS:
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.where(err > 0, err / np.broadcast_to(allowed, err.shape), 0.0)
        _MARGINS[-1].append(float(ratio.max(initial=0.0)))
    if np.all(err <= allowed):
        return
    worst = np.unravel_index(np.argmax(err - allowed), err.shape)
    index = tuple(int(i) for i in worst)
    words = None
    if explain is not None:
        try:
            words = explain(index, got.astype(np.float64), exact)
        except Exception:  # naming the part is a courtesy: never let it hide the verdict
            words = None
    raise Failure(f"{name} is wrong{' ' + words if words else ''}: at index {index} got "
                  f"{got[worst]:.8g}, expected {exact[worst]:.8g} "
                  f"(error {err[worst]:.2g}, allowed {np.broadcast_to(allowed, err.shape)[worst]:.2g})",
                  case)


class Raised(Exception):
    """An exception recorded inside the grading sandbox, raised again where it is judged."""

    def __init__(self, kind, text):
        super().__init__(text)
        self.kind, self.text = kind, text



def describe(out):
    """What a learner returned, in a few words: its type (and length, for a tuple or list)."""
    if isinstance(out, (tuple, list)):
        return f"a {type_name(out)} of {len(out)}"
    return type_name(out)
