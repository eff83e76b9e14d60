"""How far a correct answer may land from the exact one: the units and shared error terms.

A correct float64 answer is within ~1e-10 of the exact value. A correct float32 answer carries
rounding error that grows with the *magnitude of its inputs*, not of its output: the mean of
features near 1e4 is off by ~eps*1e4 even when exact arithmetic would give 1e4 + 0.3. So each
piece's spec (bncourse.pieces) derives its allowance from the sizes its computation rounds,

    |answer - exact| <= UNIT[dtype] * (|exact| + the sizes the rounding scales with)

with UNIT[float32] = TOLERANCE_K * eps32. TOLERANCE_K is calibrated by
`benchmarks/calibrate_tolerances.py`: torch's own float32 kernels and several correct
implementations (pairwise sums, sequential loops, einsum, fused x*a+b) stay below it, while
each known bug (N-1, one-pass variance, eps outside the square root, ...) lands far above it.
"""
import numpy as np

TOLERANCE_K = 8
UNIT = {
    np.dtype(np.float64): 1e-10,
    np.dtype(np.float32): TOLERANCE_K * float(np.finfo(np.float32).eps),
}


def f64(a):
    return np.asarray(a, dtype=np.float64)


def eps_of(case, position=3):
    """The eps a case passes: its keyword, else its positional argument `position`, else 1e-5."""
    return case.kwargs.get("eps", case.args[position] if len(case.args) > position else 1e-5)


def unit_of(case):
    return UNIT[np.dtype(case.dtype)]


def x_hat_error(biggest, var, eps, unit):
    """x_hat's rounding error, in units of `unit`: the mean's error (~unit * max|x|) shifts every
    x_hat by ~that / std, and the variance's (a squared term) changes its scale."""
    std = np.sqrt(var + eps)
    return biggest * (1 + unit * biggest / std) / std


def norm_roundoff(x, gamma, beta, eps, unit):
    """Normalising over the last axis of x (gamma, beta broadcast over it): the error a correct
    float answer carries scales with the group's largest |x| over its standard deviation."""
    x_hat_err = x_hat_error(np.abs(x).max(axis=-1, keepdims=True), x.var(axis=-1, keepdims=True),
                             eps, unit)
    return np.abs(gamma) * np.broadcast_to(x_hat_err, x.shape) + np.abs(beta)

