"""The classic mistakes of each piece, and how to recognise them.

When a learner's function gives a wrong answer, `diagnose(piece, fn)` runs it on inputs
crafted so that each known mistake produces a clearly different answer, and returns the
mistakes whose answer it reproduces. Their `message` is what the learner reads.
"""
from dataclasses import dataclass
from typing import Callable

import numpy as np

from bncourse.judge import EXACT_STEPS as EXACT, Formula, forward_cache, run_steps


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


def _normalised(x, axes, ddof=0, eps=1e-5, eps_outside=False):
    mean = x.mean(axis=axes, keepdims=True)
    var = x.var(axis=axes, keepdims=True, ddof=ddof)
    return (x - mean) / ((np.sqrt(var) + eps) if eps_outside else np.sqrt(var + eps))


def _bn(x, gamma, beta, eps, ddof=0, eps_outside=False):
    return gamma * _normalised(x, 0, ddof, eps, eps_outside) + beta


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


# ---------------------------------------------------------------- lessons 03 and 04

DOUT = np.random.default_rng(3).standard_normal(X.shape)
CACHE = forward_cache(X, GAMMA, BETA, EPS)


def _backward_parts(dout, cache):
    """The pieces of the closed form, for writing mistaken variants of it."""
    x_hat, n = cache["x_hat"], len(dout)
    scale = cache["gamma"] / np.sqrt(cache["var"] + cache["eps"])
    return x_hat, n, scale, dout.sum(axis=0), (dout * x_hat).sum(axis=0)


def _dx(dout, cache, n_minus_1=False, sum_term=True, x_hat_term=True, gamma=True):
    x_hat, n, scale, dbeta, dgamma = _backward_parts(dout, cache)
    if not gamma:
        scale = scale / cache["gamma"]
    dx = dout - (dbeta / n if sum_term else 0) - (x_hat * dgamma / (n - n_minus_1) if x_hat_term else 0)
    return scale * dx


def _out(i):
    return lambda out: out[i] if isinstance(out, (tuple, list)) and len(out) > i else None


def _backward_mistakes(where):
    return [
        Misconception("dgamma_not_summed", f"{where} dgamma has one row per example: sum dout * x_hat "
                      "over the batch (axis 0), one value per feature, shape (D,)",
                      like(lambda d, c: d * c["x_hat"], DOUT, CACHE, output=_out(1))),
        Misconception("dbeta_not_summed", f"{where} dbeta has one row per example: beta is shared by "
                      "every example, so its gradient sums dout over the batch (axis 0)",
                      like(lambda d, c: d, DOUT, CACHE, output=_out(2))),
        Misconception("dgamma_mean", f"{where} dgamma is divided by N: gamma is used by all N examples, "
                      "so the gradients add up, sum(dout * x_hat) over the batch, not their mean",
                      like(lambda d, c: (d * c["x_hat"]).mean(axis=0), DOUT, CACHE, output=_out(1))),
        Misconception("dbeta_mean", f"{where} dbeta is divided by N: sum dout over the batch, "
                      "not its mean", like(lambda d, c: d.mean(axis=0), DOUT, CACHE, output=_out(2))),
        Misconception("direct_path_only", f"{where} dx treats the batch mean and variance as "
                      "constants (dx = gamma * dout / sqrt(var + eps)); they depend on every x in the "
                      "batch, so two more paths carry gradient back to x",
                      like(lambda d, c: _dx(d, c, sum_term=False, x_hat_term=False), DOUT, CACHE,
                           output=_out(0))),
        Misconception("no_mean_term", f"{where} dx drops the term from the batch mean: subtract the "
                      "mean over the batch of dout (the sum(dx_hat) term) as well",
                      like(lambda d, c: _dx(d, c, sum_term=False), DOUT, CACHE, output=_out(0))),
        Misconception("no_variance_term", f"{where} dx drops the term from the batch variance: "
                      "subtract x_hat * mean(dout * x_hat) (the x_hat * sum(dx_hat * x_hat) term) as well",
                      like(lambda d, c: _dx(d, c, x_hat_term=False), DOUT, CACHE, output=_out(0))),
        Misconception("n_minus_1", f"{where} dx uses N-1 where the variance's derivative has N: the "
                      "forward pass divides by N (biased variance), so its gradient does too",
                      like(lambda d, c: _dx(d, c, n_minus_1=True), DOUT, CACHE, output=_out(0))),
        Misconception("no_gamma", f"{where} dx is missing the factor gamma: y = gamma * x_hat + beta, "
                      "so dx_hat = gamma * dout", like(lambda d, c: _dx(d, c, gamma=False), DOUT, CACHE,
                                                       output=_out(0))),
        Misconception("ones_not_dout", f"{where} gradients do not depend on dout, as if the upstream "
                      "gradient were all ones (then dx is 0 for every input, which is why a check with "
                      "ones proves nothing): multiply by the dout you are given",
                      like(lambda d, c: np.full(d.shape[1], float(len(d))), DOUT, CACHE, output=_out(2))),
    ]


F_PROBE = Formula("tanh_layer", W=np.random.default_rng(4).normal(0, 0.5, (4, 3)), b=np.array([0.1, -0.2, 0.3]))
X_PROBE = X[:3]
DOUT_PROBE = np.random.default_rng(5).standard_normal((3, 3))


def _difference(f, x, dout, h=1e-5, kind="centred", with_dout=True):
    """Finite differences of sum(f(x) * dout), right or in a mistaken form."""
    x = np.array(x, dtype=np.float64)
    weight = dout if with_dout else 1.0
    grad = np.zeros_like(x)
    base = np.sum(f(x) * weight)
    for i in np.ndindex(x.shape):
        old = x[i]
        x[i] = old + h
        plus = np.sum(f(x) * weight)
        x[i] = old - h
        minus = np.sum(f(x) * weight)
        x[i] = old
        grad[i] = {"centred": (plus - minus) / (2 * h), "forward": (plus - base) / h,
                   "over_h": (plus - minus) / h}[kind]
    return grad


def _wrong_layer(eval_updates=False, eval_batch_stats=False, never_updates=False, no_count=False,
                 train_running=False):
    """batchnorm_layer_forward with one of the classic mistakes, run over a sequence of steps."""
    def layer(x, gamma, beta, state, training, momentum=0.1, eps=1e-5):
        ref = EXACT  # float64 numpy steps (bncourse.judge)
        mean, var = ref.batch_mean(x), ref.batch_variance(x)
        if training or eval_updates:
            if not never_updates:
                state["running_mean"], state["running_var"] = ref.update_running_stats_torch(
                    state["running_mean"], state["running_var"], x, momentum, state["num_batches_tracked"])
            if not no_count:
                state["num_batches_tracked"] += 1
        if (training and not train_running) or (not training and eval_batch_stats):
            return ref.scale_and_shift(ref.normalise(x, mean, var, eps), gamma, beta)
        return ref.batchnorm_inference(x, gamma, beta, state["running_mean"], state["running_var"], eps)
    return run_steps(layer)


_steps_rng = np.random.default_rng(6)
XS = 2.0 + 1.5 * _steps_rng.standard_normal((6, 5, 4)) + np.arange(6)[:, None, None] * 0.5
TRAINING = np.array([True, True, False, True, False, False])


def _steps_like(mistake, output, **kwargs):
    """Probe: does the sequence of steps give the mistaken layer's `output` part?"""
    wrong = _wrong_layer(**mistake)
    return like(lambda *a, **k: output(wrong(*a, **k)), XS, TRAINING, GAMMA, BETA, output=output, **kwargs)


RUNNING = (np.array([0.5, -1.0, 2.0, 0.0]), np.array([1.5, 0.2, 3.0, 1.0]))
BATCH = (np.array([1.0, 0.0, -1.0, 4.0]), np.array([0.5, 2.0, 0.1, 1.0]))

CATALOGUE.update({
    "batchnorm_backward_staged": _backward_mistakes("your staged backward pass:"),
    "batchnorm_backward": _backward_mistakes("your closed-form backward pass:"),
    "numerical_gradient": [
        Misconception("one_sided", "you used a one-sided difference (L(x + h) - L(x)) / h, whose error "
                      "shrinks only like h; the centred difference (L(x + h) - L(x - h)) / (2h) is "
                      "accurate to h**2",
                      like(lambda f, x, d, h=1e-5: _difference(f, x, d, h, "forward"), F_PROBE, X_PROBE,
                           DOUT_PROBE)),
        Misconception("over_h", "you divided the centred difference by h; the two points are 2h apart: "
                      "divide by 2 * h",
                      like(lambda f, x, d, h=1e-5: _difference(f, x, d, h, "over_h"), F_PROBE, X_PROBE,
                           DOUT_PROBE)),
        Misconception("ignores_dout", "you differentiated sum(f(x)), as if dout were all ones; the "
                      "gradient of L = sum(f(x) * dout) weighs each output by its dout",
                      like(lambda f, x, d, h=1e-5: _difference(f, x, d, h, with_dout=False), F_PROBE,
                           X_PROBE, DOUT_PROBE)),
    ],
    "update_running_stats": [
        Misconception("flipped", "you weighed the new batch by momentum: in this convention "
                      "(the seed's, and Keras') momentum weighs the OLD running value, "
                      "r = momentum * r + (1 - momentum) * batch",
                      like(lambda rm, rv, bm, bv, momentum=0.9: ((1 - momentum) * rm + momentum * bm,
                                                                 (1 - momentum) * rv + momentum * bv),
                           *RUNNING, *BATCH, momentum=0.9)),
        Misconception("batch_only", "you returned the batch statistics: the running averages must "
                      "keep momentum * the old value", like(lambda rm, rv, bm, bv, momentum=0.9: (bm, bv),
                                                             *RUNNING, *BATCH, momentum=0.9)),
        Misconception("unchanged", "your running statistics do not move: add (1 - momentum) * the "
                      "batch statistics", like(lambda rm, rv, bm, bv, momentum=0.9: (rm, rv),
                                               *RUNNING, *BATCH, momentum=0.9)),
    ],
    "batchnorm_inference": [
        Misconception("batch_statistics", "you normalised with the batch's own mean and variance; at "
                      "inference use running_mean and running_var, so each example's output does not "
                      "depend on the rest of the batch",
                      like(lambda x, g, b, rm, rv, eps=1e-5: g * (x - x.mean(0)) / np.sqrt(x.var(0) + eps) + b,
                           X, GAMMA, BETA, MEAN, VAR, eps=EPS)),
        Misconception("eps_outside_sqrt", "you added eps outside the square root; use "
                      "sqrt(running_var + eps), as in training",
                      like(lambda x, g, b, rm, rv, eps=1e-5: g * (x - rm) / (np.sqrt(rv) + eps) + b,
                           X, GAMMA, BETA, MEAN, VAR, eps=EPS)),
        Misconception("no_scale_shift", "you forgot gamma and beta: inference applies the same "
                      "y = gamma * x_hat + beta as training",
                      like(lambda x, g, b, rm, rv, eps=1e-5: (x - rm) / np.sqrt(rv + eps),
                           X, GAMMA, BETA, MEAN, VAR, eps=EPS)),
    ],
    "update_running_stats_torch": [
        Misconception("flipped", "you used the seed's convention (momentum weighs the old value); in "
                      "PyTorch's, momentum is the weight of the NEW batch: r = (1 - momentum) * r + "
                      "momentum * batch",
                      like(lambda rm, rv, x, momentum=0.1, batches_seen=0: (
                          momentum * rm + (1 - momentum) * x.mean(0),
                          momentum * rv + (1 - momentum) * x.var(0, ddof=1)), *RUNNING, X, momentum=0.1)),
        Misconception("biased", "your running variance takes the biased batch variance; PyTorch "
                      "stores the unbiased one (divide by N - 1) in running_var, while the forward pass "
                      "normalises with the biased one",
                      like(lambda rm, rv, x, momentum=0.1, batches_seen=0: 0.9 * rv + 0.1 * x.var(0),
                           *RUNNING, X, momentum=0.1, output=_out(1))),
        Misconception("none_as_default", "with momentum=None PyTorch keeps a cumulative average: the "
                      "new batch weighs 1 / (batches_seen + 1), not 0.1",
                      like(lambda rm, rv, x, momentum=None, batches_seen=0: (
                          0.9 * rm + 0.1 * x.mean(0), 0.9 * rv + 0.1 * x.var(0, ddof=1)), *RUNNING, X,
                           momentum=None, batches_seen=3)),
        Misconception("cumulative_off_by_one", "your cumulative average (momentum=None) weighs the new "
                      "batch by 1 / batches_seen; it is the (batches_seen + 1)-th batch, so its weight "
                      "is 1 / (batches_seen + 1)",
                      like(lambda rm, rv, x, momentum=None, batches_seen=0: (
                          (1 - 1 / batches_seen) * rm + x.mean(0) / batches_seen,
                          (1 - 1 / batches_seen) * rv + x.var(0, ddof=1) / batches_seen), *RUNNING, X,
                           momentum=None, batches_seen=3)),
    ],
    "init_running_stats": [
        Misconception("var_zero", "running_var starts at 1, not 0: before any batch the layer should "
                      "leave inputs as they are, x / sqrt(1 + eps), not divide by sqrt(eps)",
                      like(lambda n, dtype=np.float64: np.zeros(n), 4,
                           output=lambda out: out.get("running_var") if isinstance(out, dict) else None)),
    ],
    "batchnorm_layer_forward": [
        Misconception("updates_in_eval", "your layer updates the running statistics in eval mode; "
                      "evaluation must leave the state unchanged",
                      _steps_like({"eval_updates": True}, _out(1))),
        Misconception("batch_stats_in_eval", "in eval mode your layer normalises with the batch's "
                      "statistics; use the running statistics (batchnorm_inference)",
                      _steps_like({"eval_batch_stats": True}, _out(0))),
        Misconception("never_updates", "your layer never updates running_mean and running_var in "
                      "training: assign the new values back into the state dict",
                      _steps_like({"never_updates": True}, _out(1))),
        Misconception("not_counted", "num_batches_tracked does not count the training batches: add 1 "
                      "after each one (momentum=None needs the count)",
                      _steps_like({"no_count": True}, _out(3))),
        Misconception("running_in_training", "in training mode your layer normalises with the running "
                      "statistics; training uses the batch's own statistics",
                      _steps_like({"train_running": True}, _out(0))),
    ],
})


# ---------------------------------------------------------------- lesson 07

X4 = np.random.default_rng(8).normal(0, 1, (4, 6, 2, 3)) * np.arange(1, 7)[None, :, None, None] \
    + np.array([0.0, 5.0, -3.0, 1.0, 8.0, -2.0])[None, :, None, None]
GAMMA6, BETA6 = np.linspace(0.5, 2.0, 6), np.linspace(-1.0, 1.0, 6)


def _grouped(x, g, grouping="contiguous", **kwargs):
    n, c = x.shape[:2]
    if grouping == "strided":  # channel j in group j % g
        v = x.reshape(n, c // g, g, -1).transpose(0, 2, 1, 3).reshape(n, g, -1)
        out = _normalised(v, 2, **kwargs).reshape(n, g, c // g, -1).transpose(0, 2, 1, 3)
        return out.reshape(x.shape)
    return _normalised(x.reshape(n, g, -1), 2, **kwargs).reshape(x.shape)


def _affine(y, gamma, beta):
    shape = (1, -1) + (1,) * (y.ndim - 2)
    return gamma.reshape(shape) * y + beta.reshape(shape)


LIN_W = np.random.default_rng(9).normal(0, 0.7, (4, 4))
LIN_B = np.array([0.5, -1.0, 2.0, 0.0])
X_LIN = np.random.default_rng(10).normal(1.0, 2.0, (5, 4))
BN_STATS = (GAMMA, BETA, MEAN + 1.0, VAR + 0.5)


def _folded(x, w, b, gamma, beta, mean, var, eps=1e-5, mean_term=True, eps_term=True, layer_bias=True,
            beta_term=True, input_axis=False):
    scale = gamma / np.sqrt(var + (eps if eps_term else 0.0))
    b = b if (layer_bias and b.size) else np.zeros_like(mean)
    new_w = w * (scale[None, :] if input_axis else scale[:, None])
    new_b = (b - (mean if mean_term else 0.0)) * scale + (beta if beta_term else 0.0)
    return x @ new_w.T + new_b


def _fold_like(**mistake):
    return like(lambda *a, **k: _folded(*a, **k, **mistake), X_LIN, LIN_W, LIN_B, *BN_STATS, eps=EPS)


CATALOGUE.update({
    "layer_norm": [
        Misconception("batch_axis", "you normalised each feature over the batch (axis 0): that is "
                      "BatchNorm. LayerNorm normalises each example over its own features: axis 1, "
                      "one mean and one variance per row",
                      like(lambda x, g, b, eps=1e-5: g * _normalised(x, 0, eps=eps) + b, X, GAMMA, BETA, eps=EPS)),
        Misconception("no_keepdims", "you subtracted the per-example means without keeping their axis: "
                      "a (N,) vector broadcasts along the last axis, so example j's mean was subtracted "
                      "from feature j. Use keepdims=True (or [:, None])",
                      like(lambda x, g, b, eps=1e-5: g * (x - x.mean(1)) / np.sqrt(
                          ((x - x.mean(1)) ** 2).mean(1) + eps) + b, X_SQUARE, GAMMA, BETA, eps=EPS)),
        Misconception("unbiased", "you divided by D-1: LayerNorm, like BatchNorm, normalises with the "
                      "biased variance (divide by the number of values averaged)",
                      like(lambda x, g, b, eps=1e-5: g * _normalised(x, 1, ddof=1, eps=eps) + b,
                           X, GAMMA, BETA, eps=EPS)),
        Misconception("eps_outside_sqrt", "you added eps outside the square root; use sqrt(var + eps)",
                      like(lambda x, g, b, eps=1e-5: g * _normalised(x, 1, eps=eps, eps_outside=True) + b,
                           X, GAMMA, BETA, eps=EPS)),
    ],
    "group_norm": [
        Misconception("strided_groups", "your groups take every G-th channel (channel j in group j % G); "
                      "GroupNorm's groups are runs of C/G neighbouring channels: reshape to "
                      "(N, G, C/G * positions), channels first",
                      like(lambda x, g, ga, b, eps=1e-5: _affine(_grouped(x, g, "strided", eps=eps), ga, b),
                           X4, 3, GAMMA6, BETA6, eps=EPS)),
        Misconception("per_channel", "you normalised every channel on its own (that is InstanceNorm, "
                      "G = C); a group holds C/G channels normalised together",
                      like(lambda x, g, ga, b, eps=1e-5: _affine(_grouped(x, x.shape[1], eps=eps), ga, b),
                           X4, 3, GAMMA6, BETA6, eps=EPS)),
        Misconception("whole_example", "you normalised each example as a whole (that is LayerNorm over "
                      "C, H, W, G = 1); split the channels into num_groups groups first",
                      like(lambda x, g, ga, b, eps=1e-5: _affine(_grouped(x, 1, eps=eps), ga, b),
                           X4, 3, GAMMA6, BETA6, eps=EPS)),
        Misconception("batch_statistics", "you took each channel's statistics over the batch (that is "
                      "BatchNorm2d); GroupNorm never mixes examples: its statistics are per example",
                      like(lambda x, g, ga, b, eps=1e-5: _affine(_normalised(x, (0, 2, 3), eps=eps), ga, b),
                           X4, 3, GAMMA6, BETA6, eps=EPS)),
        Misconception("unbiased", "you divided by the group's size minus 1: GroupNorm uses the biased "
                      "variance", like(lambda x, g, ga, b, eps=1e-5: _affine(_grouped(x, g, ddof=1, eps=eps),
                                                                            ga, b), X4, 3, GAMMA6, BETA6, eps=EPS)),
    ],
    "fold_batchnorm": [
        Misconception("no_running_mean", "your folded bias leaves out the running mean: BatchNorm "
                      "subtracts it, so new bias = (bias - running_mean) * scale + beta",
                      _fold_like(mean_term=False)),
        Misconception("no_eps", "your scale is gamma / sqrt(running_var): BatchNorm divides by "
                      "sqrt(running_var + eps)", _fold_like(eps_term=False)),
        Misconception("ignores_layer_bias", "your folded bias ignores the layer's own bias: it passes "
                      "through the BatchNorm too, (bias - running_mean) * scale + beta",
                      _fold_like(layer_bias=False)),
        Misconception("no_beta", "your folded bias forgets BatchNorm's beta (bn.bias)", _fold_like(beta_term=False)),
        Misconception("input_axis", "you scaled the weight's input axis (dim 1); BatchNorm scales each "
                      "OUTPUT channel, i.e. each row of the weight (dim 0)", _fold_like(input_axis=True)),
    ],
})


def diagnose(piece, fn):
    """The known mistakes that fn reproduces, most specific first."""
    return [m for m in CATALOGUE.get(piece, []) if m.probe(fn)]
