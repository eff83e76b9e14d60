"""Judging a learner's function: test inputs, expected values, tolerances, verdicts.

Shared by the visible checks (`bncourse.checks`) and the hidden tests (`autograder.hidden`):
both build `Case`s, run the learner's function on fresh copies of the inputs and compare
the result with an exact float64 answer under the tolerance model below.

Tolerance model. A correct float64 answer is within ~1e-10 of the exact value. A correct
float32 answer carries rounding error that grows with the *magnitude of its inputs*, not of
its output: the mean of features near 1e4 is off by ~eps*1e4 even when exact arithmetic
would give 1e4 + 0.3. So every piece declares `roundoff(case)`, the size of the inputs that
its error scales with, and the allowed error is

    |answer - exact| <= UNIT[dtype] * (|exact| + roundoff)             (variance: squared term)

with UNIT[float32] = TOLERANCE_K * eps32. TOLERANCE_K is calibrated by
`benchmarks/calibrate_tolerances.py`: torch's own float32 kernels and several correct
implementations (pairwise sums, sequential loops, einsum, fused x*a+b) stay below it, while
each known bug (N-1, one-pass variance, eps outside the square root, ...) lands far above it.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass, field

import numpy as np

TOLERANCE_K = 8
UNIT = {
    np.dtype(np.float64): 1e-10,
    np.dtype(np.float32): TOLERANCE_K * float(np.finfo(np.float32).eps),
}
CACHE_KEYS = ("x", "mean", "var", "eps", "x_hat", "gamma", "beta")
# The pieces a piece is assembled from. While it is judged they are swapped for trusted
# versions, so a mistake in an earlier step never costs a later step its points.
PARTS = {"batchnorm_forward": ("batch_mean", "batch_variance", "normalise", "scale_and_shift")}


@dataclass
class Case:
    """One call of a learner's function: positional args (+ kwargs) and a readable label."""

    label: str
    args: tuple
    kwargs: dict = field(default_factory=dict)

    @property
    def dtype(self):
        return np.asarray(self.args[0]).dtype

    def fresh_args(self):
        """Copies, so a function that writes into its inputs cannot spoil the next check."""
        return tuple(np.array(a, copy=True) if isinstance(a, np.ndarray) else a for a in self.args)


class Failure(Exception):
    """A learner's function gave a wrong answer on one case; `str()` explains it."""

    def __init__(self, message, case=None, kind="value"):
        super().__init__(message)
        self.case, self.kind = case, kind


# ---------------------------------------------------------------- inputs

def make_batch(rng, n, d, dtype=np.float64, offset=0.0, constant_cols=0):
    """An (n, d) batch whose features have different means and spreads.

    offset: typical |mean| of a feature (1e3-1e4 exposes the one-pass variance in float32).
    constant_cols: how many features are constant (their variance is exactly 0).
    """
    signs = rng.choice([-1.0, 1.0], size=d)
    loc = signs * offset * (0.5 + rng.random(d)) if offset else rng.normal(0.0, 2.0, d)
    spread = 10.0 ** rng.uniform(-1.5, 1.0, d)  # small spreads make eps matter
    x = loc + spread * rng.standard_normal((n, d))
    x[:, :constant_cols] = 2.5  # exactly representable, so its float32 mean is exact too
    return x.astype(dtype)


def batch_stats(x):
    """Exact biased statistics of x, rounded to x's dtype (as a learner's function returns them)."""
    x64 = np.asarray(x, np.float64)
    mean, var = x64.mean(axis=0), x64.var(axis=0)
    return mean.astype(x.dtype), var.astype(x.dtype)


def _shape_grid(rng, count):
    """Varied shapes; N != D mostly, so a transposed answer shows up as a shape error."""
    fixed = [(4, 3), (2, 1), (2, 5), (7, 1), (64, 8), (5, 5)]
    extra = [(int(rng.integers(2, 65)), int(rng.integers(1, 13))) for _ in range(count)]
    return fixed + extra


def make_cases(piece, seed=0, count=12):
    """Inputs for one piece: fixed edge cases + `count` random shapes, float32 and float64,
    with large offsets and constant features."""
    rng = np.random.default_rng(seed)
    cases = []
    for i, (n, d) in enumerate(_shape_grid(rng, count)):
        dtype = np.float32 if i % 2 else np.float64
        offset = [0.0, 1e3, 1e4][(i // 2) % 3]  # each offset in both dtypes
        constant = int(d > 1 and i % 3 == 0)
        x = make_batch(rng, n, d, dtype, offset, constant)
        label = f"{np.dtype(dtype).name} x of shape {x.shape}" + (
            f", features offset by ~{offset:g}" if offset else "") + (
            ", one constant feature" if constant else "")
        cases.append(_case_for(piece, rng, x, label, i))
    return cases


def _params(rng, d, dtype):
    gamma = rng.normal(1.0, 0.5, d).astype(dtype)
    beta = rng.normal(0.0, 1.0, d).astype(dtype)
    return gamma, beta


def _case_for(piece, rng, x, label, i):
    n, d = x.shape
    dtype = x.dtype
    if piece in ("batch_mean", "batch_variance"):
        return Case(label, (x,))
    if piece == "normalise":
        mean, var = batch_stats(x)
        if i % 2 == 0:  # statistics that are not x's own (as at inference time)
            mean = (mean + rng.normal(0, 1, d)).astype(dtype)
            var = (var * rng.uniform(0.5, 2.0, d)).astype(dtype)
            label += ", mean/var not x's own"
        kwargs = {"eps": [1e-5, 1e-3, 0.1][i % 3]} if i % 4 else {}
        return Case(label + (f", eps={kwargs['eps']:g}" if kwargs else ""), (x, mean, var), kwargs)
    if piece == "scale_and_shift":
        x_hat = rng.standard_normal((n, d)).astype(dtype)
        gamma, beta = _params(rng, d, dtype)
        return Case(label.replace(" x ", " x_hat "), (x_hat, gamma, beta))
    if piece == "batchnorm_forward":
        gamma, beta = _params(rng, d, dtype)
        kwargs = {"eps": [1e-5, 1e-3][i % 2]} if i % 3 else {}
        return Case(label + (f", eps={kwargs['eps']:g}" if kwargs else ""), (x, gamma, beta), kwargs)
    raise KeyError(piece)


# ---------------------------------------------------------------- tolerances

def _f64(a):
    return np.asarray(a, dtype=np.float64)


def _eps_of(case):
    return case.kwargs.get("eps", case.args[3] if len(case.args) > 3 else 1e-5)


def allowed_error(piece, case, exact, what="out"):
    """Largest |answer - exact| a correct implementation may show, element-wise."""
    unit = UNIT[np.dtype(case.dtype)]
    a = [_f64(v) for v in case.args]
    if what in ("mean", "var"):  # cache entries of batchnorm_forward
        piece = {"mean": "batch_mean", "var": "batch_variance"}[what]
    if piece == "batch_mean":
        roundoff = np.abs(a[0]).max(axis=0)
    elif piece == "batch_variance":
        # two-pass error: the mean's rounding error enters squared, plus relative rounding
        return unit * np.abs(exact) + (unit * np.abs(a[0]).max(axis=0)) ** 2
    elif piece == "normalise":
        x, mean, var = a[:3]
        roundoff = np.maximum(np.abs(x), np.abs(mean)) / np.sqrt(var + _eps_of(case))
    elif piece == "scale_and_shift":
        x_hat, gamma, beta = a
        roundoff = np.abs(gamma * x_hat) + np.abs(beta)
    elif piece == "batchnorm_forward":
        x, gamma, beta = a
        var = x.var(axis=0)
        eps = _eps_of(case)
        # the batch mean's rounding error (~unit*max|x|) shifts every x_hat by ~that / std,
        # and var's (squared term) changes its scale
        x_hat_err = np.abs(x).max(axis=0) * (1 + unit * np.abs(x).max(axis=0) / np.sqrt(var + eps))
        roundoff = x_hat_err / np.sqrt(var + eps)
        if what == "out":
            roundoff = np.abs(gamma) * roundoff + np.abs(beta)
    else:
        raise KeyError(piece)
    return unit * (np.abs(exact) + roundoff)


# ---------------------------------------------------------------- verdicts

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


def compare(name, got, exact, allowed, case):
    """Raise Failure unless `got` matches `exact` (float64) within `allowed`."""
    got = _as_array(got, name)
    exact = np.asarray(exact, np.float64)
    if got.shape != exact.shape:
        raise Failure(f"{name} has shape {got.shape}, expected {exact.shape}", case, "shape")
    if not np.all(np.isfinite(got)):
        raise Failure(f"{name} contains nan or inf", case, "nonfinite")
    err = np.abs(got.astype(np.float64) - exact)
    if np.all(err <= allowed):
        return
    worst = np.unravel_index(np.argmax(err - allowed), err.shape)
    raise Failure(f"{name} is wrong: at index {tuple(int(i) for i in worst)} got "
                  f"{got[worst]:.8g}, expected {exact[worst]:.8g} "
                  f"(error {err[worst]:.2g}, allowed {np.broadcast_to(allowed, err.shape)[worst]:.2g})",
                  case)


class Raised(Exception):
    """An exception recorded inside the grading sandbox, raised again where it is judged."""

    def __init__(self, kind, text):
        super().__init__(text)
        self.kind, self.text = kind, text


def run(fn, args, kwargs):
    """Call fn; return (output, None), or (None, (kind, message)) when it raises."""
    from bncourse.tripwire import ForbiddenCall
    try:
        return fn(*args, **kwargs), None
    except Raised as e:
        return None, (e.kind, e.text)
    except NotImplementedError as e:
        return None, ("not_implemented", f"{_unimplemented(fn, e)} is not implemented yet: replace "
                      "`raise NotImplementedError()` with your code")
    except ForbiddenCall as e:
        return None, ("forbidden", f"{_name(fn)} called torch's own normalisation: {e}")
    except Exception as e:  # the learner's code crashed: say how, briefly
        return None, ("raised", f"{_name(fn)} raised {type(e).__name__}: {e}")


def call(fn, case):
    """Run fn on fresh copies of the case's inputs; report exceptions and input mutation."""
    args = case.fresh_args()
    before = [np.array(a, copy=True) if isinstance(a, np.ndarray) else None for a in args]
    out, error = run(fn, args, case.kwargs)
    if error is not None:
        raise Failure(error[1], case, error[0])
    for i, (a, b) in enumerate(zip(args, before)):
        if b is not None and not np.array_equal(a, b, equal_nan=True):
            raise Failure(f"{_name(fn)} changed its input argument {i + 1} in place (e.g. `x -= mean`); "
                          "write results into new arrays instead: the caller still needs x",
                          case, "mutated")
    return out


def _name(fn):
    return getattr(fn, "__name__", "your function")


def _unimplemented(fn, error):
    """Which function still raises NotImplementedError: fn itself, or a step it calls."""
    tb = error.__traceback__
    while tb.tb_next is not None:
        tb = tb.tb_next
    where = tb.tb_frame.f_code.co_name
    return _name(fn) if where in (_name(fn), "<module>") else f"{where} (called by {_name(fn)})"


def judge_case(piece, fn, case, expected):
    """Check one case. `expected(case)` returns the exact answer: an array, or (y, cache) for
    batchnorm_forward. Raises Failure."""
    out = call(fn, case)
    exact = expected(case)
    if piece != "batchnorm_forward":
        compare(f"{piece}'s output", out, exact, allowed_error(piece, case, exact), case)
        return
    if not (isinstance(out, tuple) and len(out) == 2 and isinstance(out[1], dict)):
        raise Failure("batchnorm_forward must return a pair (y, cache) with cache a dict; got "
                      f"{type_name(out)}", case, "type")
    y, cache = out
    exact_y, exact_cache = exact
    compare("y", y, exact_y, allowed_error(piece, case, exact_y), case)
    missing = [k for k in CACHE_KEYS if k not in cache]
    if missing:
        raise Failure(f"the cache is missing the key(s) {missing}; it needs exactly "
                      f"{list(CACHE_KEYS)}", case, "cache_keys")
    for key in ("mean", "var"):
        compare(f"cache['{key}']", cache[key], exact_cache[key],
                allowed_error(piece, case, exact_cache[key], key), case)
    compare("cache['x_hat']", cache["x_hat"], exact_cache["x_hat"],
            allowed_error(piece, case, exact_cache["x_hat"], "x_hat"), case)
    for key in ("x", "gamma", "beta", "eps"):
        compare(f"cache['{key}']", cache[key], exact_cache[key], 0.0, case)


def expected_from(module, piece):
    """`expected(case)` for judge_case: what `module.<piece>` answers on the case's inputs."""
    return lambda case: getattr(module, piece)(*case.args, **case.kwargs)


def first_failure(piece, fn, cases, expected):
    """The Failure of fn's first wrong answer over `cases`, or None when all are right."""
    for case in cases:
        try:
            judge_case(piece, fn, case, expected)
        except Failure as failure:
            return failure
    return None


# ---------------------------------------------------------------- grading a piece on its own

def _exact_mean(x):
    return _f64(x).mean(axis=0)


def _exact_variance(x):
    return _f64(x).var(axis=0)


def _exact_normalise(x, mean, var, eps=1e-5):
    return (_f64(x) - _f64(mean)) / np.sqrt(_f64(var) + eps)


def _exact_scale_and_shift(x_hat, gamma, beta):
    return _f64(gamma) * _f64(x_hat) + _f64(beta)


# Steps 1-4 in float64 numpy: the trusted parts while a piece is recorded in the grading
# sandbox, where torch's BatchNorm kernels are switched off (bncourse.tripwire).
EXACT_STEPS = type("ExactSteps", (), {
    "batch_mean": staticmethod(_exact_mean), "batch_variance": staticmethod(_exact_variance),
    "normalise": staticmethod(_exact_normalise), "scale_and_shift": staticmethod(_exact_scale_and_shift)})


def _keep_dtype(trusted, name):
    """Trusted maths computes in float64; hand back the input's dtype, as a learner's would."""
    def part(*args, **kwargs):
        return np.asarray(trusted(*args, **kwargs)).astype(np.asarray(args[0]).dtype)
    part.__name__ = name
    return part


@contextlib.contextmanager
def trusted_parts(piece, namespace, trusted):
    """Inside the block, the earlier pieces that `piece` calls through `namespace` (a notebook's
    globals()) are `trusted.<name>`; the learner's own are put back afterwards."""
    names = [n for n in PARTS.get(piece, ()) if namespace is not None and n in namespace]
    saved = {n: namespace[n] for n in names}
    try:
        for n in names:
            namespace[n] = _keep_dtype(getattr(trusted, n), n)
        yield
    finally:
        if namespace is not None:
            namespace.update(saved)
