"""Lesson 02: normalise, scale and shift, and the whole forward pass in training mode."""
import numpy as np

from bncourse import oracle
from bncourse.cases import Case, batch_stats, params
from bncourse.pieces.lesson01 import mean_allowed, variance_allowed
from bncourse.pieces.spec import Spec
from bncourse.rounding import eps_of, f64, unit_of, x_hat_error
from bncourse.verdicts import Failure, compare, type_name

LESSON = "02_normalise_and_scale"
CACHE_KEYS = ("x", "mean", "var", "eps", "x_hat", "gamma", "beta")


def _normalise_case(rng, x, label, i):
    d, dtype = x.shape[1], x.dtype
    mean, var = batch_stats(x)
    if i % 2 == 0:  # statistics that are not x's own (as at inference time)
        mean = (mean + rng.normal(0, 1, d)).astype(dtype)
        var = (var * rng.uniform(0.5, 2.0, d)).astype(dtype)
        label += ", mean/var not x's own"
    kwargs = {"eps": [1e-5, 1e-3, 0.1][i % 3]} if i % 4 else {}
    return Case(label + (f", eps={kwargs['eps']:g}" if kwargs else ""), (x, mean, var), kwargs)


def _normalise_allowed(case, exact, what="out", exact_all=None):
    x, mean, var = (f64(a) for a in case.args)
    roundoff = np.maximum(np.abs(x), np.abs(mean)) / np.sqrt(var + eps_of(case))
    return unit_of(case) * (np.abs(exact) + roundoff)


def _scale_case(rng, x, label, i):
    x_hat = rng.standard_normal(x.shape).astype(x.dtype)
    gamma, beta = params(rng, x.shape[1], x.dtype)
    return Case(label.replace(" x ", " x_hat "), (x_hat, gamma, beta))


def _scale_allowed(case, exact, what="out", exact_all=None):
    x_hat, gamma, beta = (f64(a) for a in case.args)
    return unit_of(case) * (np.abs(exact) + np.abs(gamma * x_hat) + np.abs(beta))


def _forward_case(rng, x, label, i):
    gamma, beta = params(rng, x.shape[1], x.dtype)
    kwargs = {"eps": [1e-5, 1e-3][i % 2]} if i % 3 else {}
    return Case(label + (f", eps={kwargs['eps']:g}" if kwargs else ""), (x, gamma, beta), kwargs)


def forward_allowed(case, exact, what="out", exact_all=None):
    """y (what="out") and the cache's mean, var and x_hat: x_hat errs by the mean's error over
    the std, and by the variance's relative error; y by |gamma| times that, plus beta's rounding."""
    if what in ("mean", "var"):
        return (mean_allowed if what == "mean" else variance_allowed)(Case(case.label, case.args[:1]), exact)
    x, gamma, beta = (f64(a) for a in case.args)
    unit, eps = unit_of(case), eps_of(case)
    roundoff = x_hat_error(np.abs(x).max(axis=0), x.var(axis=0), eps, unit)
    # the variance of n values errs by up to (n + 2) eps/2 relative (variance_allowed), the std
    # by half that, the division by one more: more than the unit once n passes ~26 in float32
    relative = max(unit, (x.shape[0] + 2) * float(np.finfo(case.dtype).eps) / 4 + float(np.finfo(case.dtype).eps))
    x_hat = np.abs(x - x.mean(axis=0)) / np.sqrt(x.var(axis=0) + eps)
    if what == "out":
        roundoff = np.abs(gamma) * roundoff + np.abs(beta)
        x_hat = np.abs(gamma) * x_hat
    return unit * (np.abs(exact) + roundoff) + (relative - unit) * x_hat


def _forward_verdict(out, exact, case):
    """(y, cache): y, then the cache's statistics and x_hat within their allowances, its inputs exactly."""
    if not (isinstance(out, tuple) and len(out) == 2 and isinstance(out[1], dict)):
        raise Failure("batchnorm_forward must return a pair (y, cache) with cache a dict; got "
                      f"{type_name(out)}", case, "type")
    y, cache = out
    exact_y, exact_cache = exact
    compare("y", y, exact_y, forward_allowed(case, exact_y), case)
    missing = [k for k in CACHE_KEYS if k not in cache]
    if missing:
        raise Failure(f"the cache is missing the key(s) {missing}; it needs exactly "
                      f"{list(CACHE_KEYS)}", case, "cache_keys")
    for key in ("mean", "var", "x_hat"):
        compare(f"cache['{key}']", cache[key], exact_cache[key], forward_allowed(case, exact_cache[key], key), case)
    for key in ("x", "gamma", "beta", "eps"):
        compare(f"cache['{key}']", cache[key], exact_cache[key], 0.0, case)



def _native_normalise(x, mean, var, eps=1e-5):
    import torch
    import torch.nn.functional as F
    t = torch.as_tensor
    return F.batch_norm(t(x), t(mean), t(var), training=False, eps=eps).numpy()


def _native_scale(x_hat, gamma, beta):
    import torch
    import torch.nn.functional as F
    t = torch.as_tensor
    return F.batch_norm(t(x_hat), torch.zeros_like(t(gamma)), torch.ones_like(t(gamma)), t(gamma), t(beta),
                        training=False, eps=0.0).numpy()


def _native_forward(x, gamma, beta, eps=1e-5):
    import torch
    import torch.nn.functional as F
    t = torch.as_tensor
    x_hat = F.batch_norm(t(x), None, None, training=True, eps=eps).numpy()
    y = F.batch_norm(t(x), None, None, t(gamma), t(beta), training=True, eps=eps).numpy()
    return y, {"x": x, "mean": x.astype(np.float64).mean(0), "var": x.astype(np.float64).var(0), "eps": eps,
               "x_hat": x_hat, "gamma": gamma, "beta": beta}


SPECS = [
    Spec("normalise", LESSON, "normalise(x, mean, var, eps=1e-5)",
         "Step 3: (x - mean) / sqrt(var + eps) with the given statistics.",
         make_case=_normalise_case, allowed=_normalise_allowed, oracle=oracle.normalise, native=_native_normalise),
    Spec("scale_and_shift", LESSON, "scale_and_shift(x_hat, gamma, beta)", "Step 4: gamma * x_hat + beta, per feature.",
         make_case=_scale_case, allowed=_scale_allowed, oracle=oracle.scale_and_shift, native=_native_scale),
    Spec("batchnorm_forward", LESSON, "batchnorm_forward(x, gamma, beta, eps=1e-5)",
         "Steps 1-4 in training mode, returning (y, cache).",
         make_case=_forward_case, allowed=forward_allowed, oracle=oracle.batchnorm_forward,
         verdict=_forward_verdict, parts=("batch_mean", "batch_variance", "normalise", "scale_and_shift"),
         native=_native_forward),
]
