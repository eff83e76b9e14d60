"""The classic mistakes of each piece, and how to recognise them.

When a learner's function gives a wrong answer, `diagnose(piece, fn)` runs it on inputs
crafted so that each known mistake produces a clearly different answer, and returns the
mistakes whose answer it reproduces. Their `message` is what the learner reads.
"""
from dataclasses import dataclass
from typing import Callable

import numpy as np


@dataclass(frozen=True)
class Misconception:
    name: str
    message: str
    probe: Callable  # probe(fn) -> True when fn behaves like this mistake


def _same(out, wrong):
    """True when out matches the wrong answer (shape and values, loosely)."""
    try:
        if hasattr(out, "detach"):
            out = out.detach().numpy()
        out = np.asarray(out, dtype=np.float64)
        wrong = np.asarray(wrong, dtype=np.float64)
        return out.shape == wrong.shape and bool(np.allclose(out, wrong, rtol=1e-6, atol=1e-9))
    except Exception:
        return False


def _run(fn, *args, **kwargs):
    """Call fn on copies of args; None if it crashes (a crash matches no mistake)."""
    args = [np.array(a, copy=True) if isinstance(a, np.ndarray) else a for a in args]
    try:
        return fn(*args, **kwargs)
    except Exception:
        return None


# Crafted inputs (float64): 6 examples x 4 features, different means, spreads and small
# variances (so eps placement matters), plus a square 4 x 4 one (so axis mistakes keep shape).
_rng = np.random.default_rng(2015)
X = np.array([3.0, -1.0, 0.5, 10.0]) + np.array([2.0, 0.5, 0.01, 4.0]) * _rng.standard_normal((6, 4))
X_SQUARE = _rng.standard_normal((4, 4)) * 2 + 1
MEAN = np.array([0.5, -2.0, 1.0, 3.0])
VAR = np.array([1e-4, 0.5, 2.0, 1e-3])
GAMMA = np.array([1.5, 0.5, -2.0, 3.0])
BETA = np.array([0.3, -1.0, 2.0, 5.0])
EPS = 1e-3


def like(wrong, *args, output=lambda out: out, **kwargs):
    """Probe: does fn(*args) give the same answer as the mistaken formula `wrong`?"""
    def probe(fn):
        return _same(output(_run(fn, *args, **kwargs)), wrong(*args, **kwargs))
    probe.calls = [(args, kwargs)]  # what the grader records for it (bncourse.answers)
    return probe


_X_NEAR_1E4 = 1e4 + np.random.default_rng(7).standard_normal((64, 3))


def _one_pass_probe(fn):
    """Right in float64, far off in float32 when features sit near 1e4: one-pass variance."""
    x64 = _X_NEAR_1E4
    exact = x64.var(axis=0)
    good64 = _run(fn, x64)
    bad32 = _run(fn, x64.astype(np.float32))
    if good64 is None or bad32 is None or not _same(good64, exact):
        return False
    try:
        return bool(np.max(np.abs(np.asarray(bad32, np.float64) - exact)) > 1e-2)
    except Exception:
        return False


_one_pass_probe.calls = [((_X_NEAR_1E4,), {}), ((_X_NEAR_1E4.astype(np.float32),), {})]


def _y(out):
    return out[0] if isinstance(out, tuple) and out else None


def _cache(key):
    return lambda out: (out[1].get(key) if isinstance(out, tuple) and len(out) == 2
                        and isinstance(out[1], dict) else None)


def _bn(x, gamma, beta, eps, ddof=0, eps_outside=False):
    mu, var = x.mean(axis=0), x.var(axis=0, ddof=ddof)
    std = np.sqrt(var) + eps if eps_outside else np.sqrt(var + eps)
    return gamma * (x - mu) / std + beta


CATALOGUE = {
    "batch_mean": [
        Misconception("wrong_axis", "you averaged across the features of each example (axis=1); "
                      "BatchNorm averages each feature over the batch: axis=0, one mean per feature",
                      like(lambda x: x.mean(axis=1), X)),
        Misconception("whole_array", "you averaged the whole array into one number; "
                      "BatchNorm keeps one mean per feature: average over axis 0 only",
                      like(lambda x: x.mean(), X)),
        Misconception("keepdims", "your mean has shape (1, D); return shape (D,) "
                      "(drop keepdims=True or index [0])",
                      like(lambda x: x.mean(axis=0, keepdims=True), X)),
        Misconception("sum_not_mean", "you summed over the batch but did not divide by N",
                      like(lambda x: x.sum(axis=0), X)),
        Misconception("n_minus_1_mean", "you divided the sum by N-1; a mean divides by N",
                      like(lambda x: x.sum(axis=0) / (len(x) - 1), X)),
    ],
    "batch_variance": [
        Misconception("unbiased", "you divided by N-1 (the unbiased variance, ddof=1); BatchNorm "
                      "normalises with the biased variance of the batch itself: divide by N",
                      like(lambda x: x.var(axis=0, ddof=1), X)),
        Misconception("one_pass", "your variance is right in float64 but loses all precision in "
                      "float32 when features sit far from zero (around 1e4): the one-pass formula "
                      "E[x^2] - E[x]^2 cancels catastrophically. Subtract the mean first, then "
                      "average the squared deviations (two passes)", _one_pass_probe),
        Misconception("std_not_var", "you returned the standard deviation; step 2 returns the "
                      "variance (no square root)", like(lambda x: x.std(axis=0), X)),
        Misconception("not_centred", "you averaged x**2 without subtracting the mean first; the "
                      "variance is the mean of (x - mean)**2", like(lambda x: (x ** 2).mean(axis=0), X)),
        Misconception("wrong_axis", "you computed the variance across features (axis=1); "
                      "BatchNorm needs each feature's variance over the batch: axis=0",
                      like(lambda x: x.var(axis=1), X)),
        Misconception("keepdims", "your variance has shape (1, D); return shape (D,)",
                      like(lambda x: x.var(axis=0, keepdims=True), X)),
    ],
    "normalise": [
        Misconception("eps_outside_sqrt", "you added eps outside the square root, "
                      "(x - mean) / (sqrt(var) + eps); BatchNorm puts it inside: sqrt(var + eps)",
                      like(lambda x, m, v, eps: (x - m) / (np.sqrt(v) + eps), X, MEAN, VAR, eps=EPS)),
        Misconception("no_eps", "you left out eps: a constant feature (var = 0) would divide by "
                      "zero. Divide by sqrt(var + eps)",
                      like(lambda x, m, v, eps: (x - m) / np.sqrt(v), X, MEAN, VAR, eps=EPS)),
        Misconception("var_not_std", "you divided by the variance; divide by the standard "
                      "deviation sqrt(var + eps)",
                      like(lambda x, m, v, eps: (x - m) / (v + eps), X, MEAN, VAR, eps=EPS)),
        Misconception("not_centred", "you did not subtract the mean before dividing",
                      like(lambda x, m, v, eps: x / np.sqrt(v + eps), X, MEAN, VAR, eps=EPS)),
        Misconception("own_statistics", "you recomputed the mean and variance from x instead of "
                      "using the mean and var arguments (at inference, lesson 04, they are "
                      "running statistics, not x's own)",
                      like(lambda x, m, v, eps: (x - x.mean(0)) / np.sqrt(x.var(0) + eps),
                           X, MEAN, VAR, eps=EPS)),
        Misconception("fixed_eps", "you ignored the eps argument and used a fixed value; use the "
                      "eps passed in", like(lambda x, m, v, eps: (x - m) / np.sqrt(v + 1e-5),
                                           X, MEAN, VAR, eps=0.1)),
    ],
    "scale_and_shift": [
        Misconception("swapped", "you swapped gamma and beta: gamma scales (multiplies) and beta "
                      "shifts (adds): y = gamma * x_hat + beta",
                      like(lambda h, g, b: b * h + g, X, GAMMA, BETA)),
        Misconception("shift_then_scale", "you shifted before scaling, gamma * (x_hat + beta); "
                      "step 4 is gamma * x_hat + beta",
                      like(lambda h, g, b: g * (h + b), X, GAMMA, BETA)),
        Misconception("no_beta", "you forgot to add beta", like(lambda h, g, b: g * h, X, GAMMA, BETA)),
        Misconception("no_gamma", "you forgot to multiply by gamma",
                      like(lambda h, g, b: h + b, X, GAMMA, BETA)),
        Misconception("per_row", "you applied gamma and beta per example (row) instead of per "
                      "feature (column); they have shape (D,) and broadcast along the last axis",
                      like(lambda h, g, b: g[:, None] * h + b[:, None], X_SQUARE, GAMMA, BETA)),
    ],
    "batchnorm_forward": [
        Misconception("unbiased", "your forward pass normalises with the unbiased variance (N-1); "
                      "BatchNorm uses the biased batch variance (divide by N)",
                      like(lambda x, g, b, eps: _bn(x, g, b, eps, ddof=1), X, GAMMA, BETA, EPS,
                           output=_y)),
        Misconception("eps_outside_sqrt", "your forward pass adds eps outside the square root; "
                      "use sqrt(var + eps)",
                      like(lambda x, g, b, eps: _bn(x, g, b, eps, eps_outside=True), X, GAMMA, BETA,
                           EPS, output=_y)),
        Misconception("no_scale_shift", "y equals x_hat: you forgot step 4, y = gamma * x_hat + beta",
                      like(lambda x, g, b, eps: _bn(x, 1.0, 0.0, eps), X, GAMMA, BETA, EPS, output=_y)),
        Misconception("swapped", "your forward pass swaps gamma and beta: y = gamma * x_hat + beta",
                      like(lambda x, g, b, eps: _bn(x, b, g, eps), X, GAMMA, BETA, EPS, output=_y)),
        Misconception("cache_std", "cache['var'] holds the standard deviation; store the variance",
                      like(lambda x, g, b, eps: np.sqrt(x.var(axis=0) + eps), X, GAMMA, BETA, EPS,
                           output=_cache("var"))),
        Misconception("cache_y_as_x_hat", "cache['x_hat'] holds y; store the normalised x_hat "
                      "(before gamma and beta)", like(lambda x, g, b, eps: _bn(x, g, b, eps),
                                                      X, GAMMA, BETA, EPS, output=_cache("x_hat"))),
    ],
}


def diagnose(piece, fn):
    """The known mistakes that fn reproduces, most specific first."""
    return [m for m in CATALOGUE.get(piece, []) if m.probe(fn)]
