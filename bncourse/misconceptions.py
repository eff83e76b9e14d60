"""The classic mistakes of each piece, and how to recognise them.

When a learner's function gives a wrong answer, `diagnose(piece, fn)` runs it on inputs
crafted so that each known mistake produces a clearly different answer, and returns the
mistakes whose answer it reproduces. Their `message` is what the learner reads.
"""
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from bncourse.adapters import decode_text, is_text, run_gradient_norms, run_module, run_steps, torch_function
from bncourse.cases import Formula
from bncourse.pieces.lesson03 import forward_cache


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
        from bncourse import oracle as ref  # (being moved to autograder/mistakes.py)
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


# ---------------------------------------------------------------- lessons 00 and 06

A_PROBE = np.random.default_rng(11).normal(0.5, 2.0, (5, 3))  # 15 values: ddof and percentile methods differ
MEANS_PROBE = np.random.default_rng(12).normal(0, 2, (5, 3))
STDS_PROBE = np.random.default_rng(13).uniform(0.2, 3.0, (5, 3))


def _summary(a, ddof=0, method="linear", median_for_mean=False):
    a = np.asarray(a, np.float64)
    centre = np.median(a) if median_for_mean else a.mean()
    return np.array([centre, a.std(ddof=ddof), *np.percentile(a, [15, 50, 85], method=method)])


MLP_X = np.random.default_rng(14).normal(0, 1, (6, 3))
MLP_PARAMS = {"w0": np.random.default_rng(15).normal(0, 0.9, (4, 3)), "b0": np.array([0.2, -0.1, 0.4, 0.0]),
              "w1": np.random.default_rng(16).normal(0, 0.9, (5, 4)), "b1": np.array([0.1, 0.3, -0.2, 0.0, 0.5]),
              "w2": np.random.default_rng(17).normal(0, 0.9, (2, 5)), "b2": np.array([-0.3, 0.2])}


def _mlp_values(x, params, batchnorm=False, what="inputs", eval_mode=False):
    """What a mistaken recorder would return for judge.torch_mlp(params) (tanh, BatchNorm with
    its initial weight 1 and bias 0): each Linear's inputs or outputs."""
    count = len([k for k in params if k.startswith("w")])
    h, ins, outs = np.asarray(x, np.float64), [], []
    for k in range(count):
        ins.append(h)
        z = h @ params[f"w{k}"].T + params[f"b{k}"]
        outs.append(z)
        if k < count - 1:
            if batchnorm:
                z = z / np.sqrt(1 + 1e-5) if eval_mode else _normalised(z, 0)
            h = np.tanh(z)
    return (0,) + tuple(outs if what == "outputs" else ins)


def _recorded(k):
    return lambda out: out[k] if isinstance(out, (tuple, list)) and len(out) > k else None


LRS = np.array([0.3, 0.01, 3.0, 0.1, 1.0, 0.03])
LOSSES = np.array([0.4, 1.2, 0.9, 0.2, np.nan, 0.8])  # 1.0 diverged, yet 3.0 ended below the start
LOSSES_ABOVE_START = np.array([0.4, 1.2, 2.5, 0.2, np.nan, 0.8])
START = 2.3


def _first_failure(lrs, losses, start):
    """The rate before the first failure, going up the sorted grid."""
    last = 0.0
    for k in np.argsort(lrs):
        if not losses[k] < start:
            break
        last = lrs[k]
    return last
G0 = np.random.default_rng(18).normal(0, 1, 6)
ETAS = np.array([0.01, 0.1, 1.0])
GS = G0 + np.random.default_rng(19).normal(0, 1, (3, 6)) * np.array([[0.05], [0.2], [0.5]])
NOISE_X = np.random.default_rng(20).normal(1.0, 2.0, (23, 3))


def _smooth(g0, gs, etas, eta=True, g_norm=True, reduce=np.max, squared=False):
    change = np.linalg.norm(gs - g0, axis=1) ** (2 if squared else 1)
    return reduce(change / ((etas if eta else 1.0) * (np.linalg.norm(g0) if g_norm else 1.0)))


def _noise(x, b, remainder=False, ddof=0, reduce=np.mean):
    starts = range(0, len(x), b) if remainder else range(0, len(x) - b + 1, b)
    means = np.array([x[s:s + b].mean(axis=0) for s in starts])
    return reduce(means.std(axis=0, ddof=ddof))


CATALOGUE.update({
    "activation_summary": [
        Misconception("unbiased", "your standard deviation divides by n-1 (ddof=1); summarise the values "
                      "you have as they are: the biased std, np.std's default",
                      like(lambda a: _summary(a, ddof=1), A_PROBE)),
        Misconception("per_feature", "you summarised each feature (column) separately; the summary is over "
                      "all the layer's values at once: five numbers",
                      like(lambda a: a.mean(axis=0), A_PROBE, output=lambda out: np.asarray(out).reshape(-1)[:3]
                           if out is not None and np.size(out) == 15 else None)),
        Misconception("percentile_method", "your percentiles are not np.percentile's default linear "
                      "interpolation (e.g. nearest value, or a fraction like 0.15 where percentiles take 15)",
                      like(lambda a: _summary(a, method="nearest"), A_PROBE)),
        Misconception("median_for_mean", "the first number is the median; it should be the mean",
                      like(lambda a: _summary(a, median_for_mean=True), A_PROBE)),
    ],
    "record_layer_inputs": [
        Misconception("outputs", "you recorded each Linear's output; the hook's second argument holds "
                      "its inputs (a tuple: args[0] is x)",
                      like(lambda x, p: _mlp_values(x, p, what="outputs")[1], MLP_X, MLP_PARAMS,
                           output=_recorded(1))),
        Misconception("top_level", "you only looked at the model's top-level children; the Linear layers "
                      "sit inside nested blocks: iterate over model.modules()",
                      like(lambda x, p: _mlp_values(x, p)[-1], MLP_X, MLP_PARAMS,
                           output=lambda out: out[1] if isinstance(out, (tuple, list)) and len(out) == 2 else None)),
        Misconception("eval_mode", "you switched the model to eval mode; record it in the mode it is in "
                      "(with BatchNorm in train mode, eval mode changes what the later layers receive)",
                      like(lambda x, p, batchnorm: _mlp_values(x, p, True, eval_mode=True)[2], MLP_X, MLP_PARAMS,
                           batchnorm=True, output=_recorded(2))),
    ],
    "shift_per_step": [
        Misconception("later_std", "you divided by the later checkpoint's std; measure the move in units "
                      "of the spread before it, stds[t] (stds[:-1])",
                      like(lambda m, s: np.abs(np.diff(m, axis=0)) / s[1:], MEANS_PROBE, STDS_PROBE)),
        Misconception("signed", "your shifts keep their sign; take the absolute value of the change",
                      like(lambda m, s: np.diff(m, axis=0) / s[:-1], MEANS_PROBE, STDS_PROBE)),
        Misconception("not_scaled", "you did not divide by the std: the shift is measured in units of the "
                      "layer's own spread", like(lambda m, s: np.abs(np.diff(m, axis=0)), MEANS_PROBE, STDS_PROBE)),
    ],
    "largest_stable_lr": [
        Misconception("first_failure", "you stopped at the first rate that failed; a larger rate can still "
                      "train (training is noisy), so keep every rate whose loss is finite and below the "
                      "start and take the largest", like(_first_failure, LRS, LOSSES, START)),
        Misconception("best_loss", "you returned the rate with the lowest final loss; the question is the "
                      "largest rate that still trained",
                      like(lambda lrs, f, s: lrs[np.nanargmin(f)], LRS, LOSSES, START)),
        Misconception("assumes_sorted", "you took the last rate that trained in the order given; the rates "
                      "come in any order: take the largest",
                      like(lambda lrs, f, s: [r for r, v in zip(lrs, f) if v < s][-1], LRS, LOSSES, START)),
        Misconception("ignores_start", "you only checked that the loss is finite; a rate trained only if "
                      "its final loss is below the starting loss",
                      like(lambda lrs, f, s: lrs[np.isfinite(f)].max(), LRS, LOSSES_ABOVE_START, START)),
    ],
    "effective_smoothness": [
        Misconception("no_eta", "you did not divide by the step size eta: the change of gradient is per "
                      "unit of distance moved, eta * ||g0||", like(lambda *a: _smooth(*a, eta=False), G0, GS, ETAS)),
        Misconception("no_g_norm", "you divided by eta but not by ||g0||: the step w - eta * g0 moves a "
                      "distance eta * ||g0||", like(lambda *a: _smooth(*a, g_norm=False), G0, GS, ETAS)),
        Misconception("mean_not_max", "you averaged over the step sizes; take the largest ratio (max)",
                      like(lambda *a: _smooth(*a, reduce=np.mean), G0, GS, ETAS)),
        Misconception("squared", "you used the squared norm of the gradient change; use the norm itself",
                      like(lambda *a: _smooth(*a, squared=True), G0, GS, ETAS)),
    ],
    "batch_mean_noise": [
        Misconception("remainder", "you kept the last, smaller batch; drop the remainder (N // B full "
                      "batches of B rows)", like(lambda x, b: _noise(x, b, remainder=True), NOISE_X, 5)),
        Misconception("unbiased", "you used the unbiased std (ddof=1) of the batch means; use ddof=0",
                      like(lambda x, b: _noise(x, b, ddof=1), NOISE_X, 5)),
        Misconception("theory", "you returned the textbook value std(x) / sqrt(B); measure it: split x into "
                      "batches and take the std of their means",
                      like(lambda x, b: float((x.std(axis=0) / np.sqrt(b)).mean()), NOISE_X, 5)),
        Misconception("max_not_mean", "you took the largest std over the features; average it over them",
                      like(lambda x, b: _noise(x, b, reduce=np.max), NOISE_X, 5)),
    ],
})


def _norms_like(mistake, batchnorm=False):
    """gradient_norms written with a mistake, run on the probe MLP as the grader runs it."""
    import torch
    import torch.nn.functional as F

    def norms(model, x, y):
        linears = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
        if mistake == "eval_mode":
            model.eval()
        if mistake != "no_zero_grad":
            model.zero_grad()
        F.cross_entropy(model(x), y, reduction="sum" if mistake == "sum_loss" else "mean").backward()
        if mistake == "includes_bias":
            return np.array([torch.cat([m.weight.grad.reshape(-1), m.bias.grad]).norm().item() for m in linears])
        power = 2 if mistake == "squared" else 1
        return np.array([m.weight.grad.norm().item() ** power for m in linears])
    wrong = run_gradient_norms(norms)
    labels = np.array([0, 1, 1, 0, 1, 0])
    kwargs = {"batchnorm": True} if batchnorm else {}
    return like(lambda *a, **k: wrong(*a, **k)[0], MLP_X, labels, MLP_PARAMS, output=_out(0), **kwargs)


def _stepped(fn):
    """Did fn change the model's parameters (e.g. an optimiser step)?"""
    out = _run(fn, MLP_X, np.array([0, 1, 1, 0, 1, 0]), MLP_PARAMS)
    try:
        return float(np.asarray(out[1])) > 0
    except Exception:
        return False


_stepped.calls = [((MLP_X, np.array([0, 1, 1, 0, 1, 0]), MLP_PARAMS), {})]

CATALOGUE["gradient_norms"] = [
    Misconception("no_zero_grad", "the gradients already in .grad leaked into yours: call model.zero_grad() "
                  "before backward() (backward adds to .grad)", _norms_like("no_zero_grad")),
    Misconception("includes_bias", "you included the bias in each layer's norm; measure the weight's "
                  "gradient only (m.weight.grad)", _norms_like("includes_bias")),
    Misconception("sum_loss", "your loss sums over the batch; F.cross_entropy's default is the mean",
                  _norms_like("sum_loss")),
    Misconception("squared", "you returned squared norms; return the norm itself", _norms_like("squared")),
    Misconception("eval_mode", "you switched the model to eval mode; measure it in the mode it is in "
                  "(BatchNorm in train mode normalises with the batch's statistics)",
                  _norms_like("eval_mode", batchnorm=True)),
    Misconception("stepped", "you changed the model's parameters (an optimiser step?); only measure the "
                  "gradients", _stepped),
]


# ---------------------------------------------------------------- lesson 05

FN_ARGS = (X, GAMMA, BETA, DOUT)


def _function_like(wrong_dx=None, unbiased=False):
    def wrong(x, g, b, d, eps=1e-5):
        y = _bn(x, g, b, eps, ddof=1 if unbiased else 0)
        return y if wrong_dx is None else wrong_dx(d, forward_cache(x, g, b, eps))
    return like(wrong, *FN_ARGS, eps=EPS, output=_out(0 if wrong_dx is None else 1))


_NEAR_1E3 = 1e3 + np.random.default_rng(8).standard_normal((32, 3)) * np.array([0.05, 1.0, 3.0])
_FN_NEAR_1E3 = (_NEAR_1E3, GAMMA[:3], BETA[:3], np.random.default_rng(9).standard_normal((32, 3)))


def _function_one_pass_probe(fn):
    """Right in float64, its output far off in float32 when features sit near 1e3 (where a
    two-pass float32 variance keeps x_hat to ~1e-4): a one-pass E[x^2] - E[x]^2."""
    exact = _bn(*_FN_NEAR_1E3[:3], 1e-5)
    good = _out(0)(_run(fn, *_FN_NEAR_1E3))
    bad = _out(0)(_run(fn, *(a.astype(np.float32) for a in _FN_NEAR_1E3)))
    if good is None or bad is None or not _same(good, exact):
        return False
    try:
        return bool(np.max(np.abs(np.asarray(bad, np.float64) - exact)) > 0.05)
    except Exception:
        return False


_function_one_pass_probe.calls = [(_FN_NEAR_1E3, {}), (tuple(a.astype(np.float32) for a in _FN_NEAR_1E3), {})]

CATALOGUE["BatchNormFunction"] = [
    Misconception("one_pass", "your forward pass computes the variance in one pass, E[x^2] - E[x]^2: in "
                  "float32, with features far from 0, the two nearly equal terms cancel and leave rounding "
                  "noise; subtract the mean first, then average the squares (two passes)",
                  _function_one_pass_probe),
    Misconception("unbiased", "your forward pass normalises with the unbiased variance (N-1); BatchNorm "
                  "uses the biased batch variance", _function_like(unbiased=True)),
    Misconception("direct_path_only", "your backward treats the batch mean and variance as constants "
                  "(dx = weight * dy / sqrt(var + eps)); add the paths through the mean and the variance",
                  _function_like(lambda d, c: _dx(d, c, sum_term=False, x_hat_term=False))),
    Misconception("no_mean_term", "your backward's dx drops the mean term: subtract dy.mean(dim=0)",
                  _function_like(lambda d, c: _dx(d, c, sum_term=False))),
    Misconception("no_variance_term", "your backward's dx drops the variance term: subtract "
                  "x_hat * (dy * x_hat).mean(dim=0)", _function_like(lambda d, c: _dx(d, c, x_hat_term=False))),
    Misconception("n_minus_1", "your backward uses N-1 where the biased variance's derivative has N",
                  _function_like(lambda d, c: _dx(d, c, n_minus_1=True))),
    Misconception("no_gamma", "your backward's dx is missing the factor weight (gamma)",
                  _function_like(lambda d, c: _dx(d, c, gamma=False))),
]


def _mistaken_module(piece, **mistake):
    """A BatchNorm module with one of the classic mistakes (torch ops, after torch's design)."""
    import torch

    function = torch_function()
    flag = mistake.get

    class Mistaken(torch.nn.Module):
        def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True, track_running_stats=True,
                     device=None, dtype=None, *, bias=True):
            super().__init__()
            self.num_features, self.eps, self.momentum = num_features, eps, momentum
            self.affine, self.track_running_stats = affine, track_running_stats
            kw = {"dtype": dtype}
            params = affine or flag("affine_false_params")
            start = torch.zeros if flag("weight_init_zero") else torch.ones
            self.register_parameter("weight", torch.nn.Parameter(start(num_features, **kw)) if params else None)
            with_bias = params and (bias or flag("bias_kw_ignored"))
            self.register_parameter("bias", torch.nn.Parameter(torch.zeros(num_features, **kw)) if with_bias
                                    else None)
            tracked = track_running_stats or flag("ignores_tracking")
            values = {"running_mean": torch.zeros(num_features, **kw),
                      "running_var": torch.zeros(num_features, **kw) if flag("var_init_zero")
                      else torch.ones(num_features, **kw),
                      "num_batches_tracked": torch.tensor(
                          0, dtype=torch.float32 if flag("float_count") else torch.long)}
            for name, value in values.items():
                if flag("buffers_as_parameters") and name != "num_batches_tracked" and tracked:
                    self.register_parameter(name, torch.nn.Parameter(value, requires_grad=False))
                else:
                    self.register_buffer(name, value if tracked else None)
            self.tracked = tracked

        def reset_running_stats(self):
            if self.tracked:
                with torch.no_grad():
                    self.running_mean.zero_()
                    self.running_var.fill_(1)
                    if not flag("reset_keeps_count"):
                        self.num_batches_tracked.zero_()

        def forward(self, x):
            dims = (4,) if piece == "BatchNorm2d" else (2, 3)
            if x.dim() not in dims and not flag("no_dim_check"):
                raise ValueError(f"expected {' or '.join(f'{d}D' for d in dims)} input (got {x.dim()}D input)")
            c = self.num_features
            moved = x.movedim(1, -1)
            rows = moved.reshape(-1, c)
            batch = (self.training or not self.tracked or flag("eval_batch_stats"))
            if batch and rows.shape[0] == 1 and not flag("no_single_value_error"):
                raise ValueError("Expected more than 1 value per channel when training")
            if batch and self.eps <= 0 and not flag("no_eps_check"):
                raise ValueError(f"batch_norm eps must be positive during training, but got {self.eps}")
            ones = torch.ones(c, dtype=x.dtype)
            weight = self.weight if self.affine else ones
            bias = self.bias if self.bias is not None else torch.zeros_like(ones)
            if (self.training or flag("updates_in_eval")) and self.tracked:
                if not flag("not_counted"):
                    self.num_batches_tracked += 1
                m = self.momentum
                if m is None:
                    m = 0.1 if flag("momentum_none_as_01") else 1.0 / float(max(self.num_batches_tracked, 1))
                if rows.shape[0] > 0:
                    with torch.no_grad():
                        n = x.shape[0] if flag("bessel_batch_n") else rows.shape[0]
                        var = rows.var(dim=0, unbiased=False)
                        var = var if flag("biased_running_var") else var * n / max(n - 1, 1)
                        self.running_mean.mul_(1 - m).add_(m * rows.mean(dim=0))
                        self.running_var.mul_(1 - m).add_(m * var)
            if batch and flag("per_pixel") and x.dim() > 2:  # one column per (channel, position)
                per = x[0].numel() // c
                return function.apply(x.reshape(x.shape[0], -1), weight.repeat_interleave(per),
                                      bias.repeat_interleave(per), self.eps).reshape(x.shape)
            if batch:
                out = function.apply(rows, weight, bias, self.eps)
            else:
                out = weight * (rows - self.running_mean) / torch.sqrt(self.running_var + self.eps) + bias
            return out.reshape(moved.shape).movedim(-1, 1)
    Mistaken.__name__ = piece
    return Mistaken


PROBE_CHANNELS = 3


def _module_args(piece, config=None):
    """Probe inputs for a module: 4 train/eval steps and a state to load, with the state's keys
    of this configuration (no weight and bias without affine, no buffers without tracking)."""
    config, n, c = config or {}, 4, PROBE_CHANNELS
    rng = np.random.default_rng(21)
    spatial = (2, 3) if piece == "BatchNorm2d" else (2,)
    xs = rng.normal(0, 1, (4, n, c) + spatial) * rng.uniform(0.5, 3, (1, 1, c) + (1,) * len(spatial)) \
        + rng.normal(0, 2, (1, 1, c) + (1,) * len(spatial))
    training = np.array([True, True, False, True])
    douts = rng.normal(0, 1, xs.shape)
    affine = config.get("affine", True)
    has_bias = affine and config.get("bias", True)
    weight = GAMMA[:c] if affine else np.zeros(0)
    bias = BETA[:c] if has_bias else np.zeros(0)
    state = {"weight": GAMMA[:c], "bias": BETA[:c], "running_mean": MEAN[:c], "running_var": VAR[:c] + 1,
             "num_batches_tracked": np.array(7)}
    keys = ({"weight"} if affine else set()) | ({"bias"} if has_bias else set()) | (
        {"running_mean", "running_var", "num_batches_tracked"} if config.get("track_running_stats", True) else set())
    return (xs, training, douts, weight, bias, {k: v for k, v in state.items() if k in keys})


def _answer(out, key):
    """A module's recorded answer `key`: text, an array, or None when there is none."""
    if not isinstance(out, dict) or key not in out:
        return None
    return decode_text(out[key]) if is_text(out[key]) else np.asarray(out[key])


def _module_like(piece, key, config=None, **mistake):
    """Probe: does the module answer `key` as the module with this mistake does?"""
    config = dict(config or {})
    args = _module_args(piece, config)
    def wrong(*a, **k):  # built when asked: importing the checks stays cheap
        return run_module(_mistaken_module(piece, **mistake), exact=True, piece=piece)(*a, **k)

    def probe(fn):
        got, bad = _answer(_run(fn, *args, **config), key), _answer(wrong(*args, **config), key)
        if isinstance(bad, str) or isinstance(got, str):
            return got == bad
        return _same(got, bad)
    probe.calls = [(args, config)]
    return probe


def _answer_probe(piece, key, predicate):
    """Probe: does the module's answer `key` (text or array) show the mistake?"""
    args = _module_args(piece)

    def probe(fn):
        answer = _answer(_run(fn, *args), key)
        return answer is not None and bool(predicate(answer))
    probe.calls = [(args, {})]
    return probe


def _wrong_initial_params(answer):
    c = PROBE_CHANNELS
    return answer.shape == (2 * c,) and not np.array_equal(answer, np.r_[np.ones(c), np.zeros(c)])


def _crash_probe(piece, config, phrase):
    """Probe: does the module crash with `phrase` in the error under this configuration?"""
    args = _module_args(piece, config)

    def probe(fn):
        try:
            fn(*[np.array(a, copy=True) if isinstance(a, np.ndarray) else a for a in args], **config)
        except Exception as e:
            return phrase in str(e)
        return False
    probe.calls = [(args, config)]
    return probe


def _module_mistakes(piece):
    m = [
        Misconception("buffers_as_parameters", "running statistics are parameters in your module; they are "
                      "state, not learned: register_buffer them (optimisers must not see them, state_dict and "
                      ".to() must)", _answer_probe(piece, "layout", lambda text: "running_" in text.split(";")[0])),
        Misconception("float_count", "num_batches_tracked must be an int64 tensor, torch.tensor(0, "
                      "dtype=torch.long), whatever the module's dtype",
                      _module_like(piece, "layout", float_count=True)),
        Misconception("affine_false_params", "with affine=False torch has no weight and bias: "
                      "register_parameter('weight', None) (and 'bias'), do not create fixed ones",
                      _module_like(piece, "layout", {"affine": False}, affine_false_params=True)),
        Misconception("ignores_tracking", "with track_running_stats=False there are no running statistics: "
                      "register the three buffers as None, and normalise with the batch's statistics in "
                      "eval mode too", _module_like(piece, "layout", {"track_running_stats": False},
                                                     ignores_tracking=True)),
        Misconception("initial_params", "a new module's weight must start at 1 and its bias at 0 (torch's "
                      "reset_parameters): then the layer starts as a pure normalisation",
                      _answer_probe(piece, "initial weight and bias", _wrong_initial_params)),
        Misconception("not_counted", "num_batches_tracked does not count the training batches: add 1 for "
                      "each one", _module_like(piece, "num_batches_tracked", not_counted=True)),
        Misconception("momentum_none_as_01", "with momentum=None your running statistics still use 0.1; "
                      "None means a cumulative average, weight 1 / num_batches_tracked (counted first)",
                      _module_like(piece, "running_mean", {"momentum": None}, momentum_none_as_01=True)),
        Misconception("updates_in_eval", "your module updates the running statistics in eval mode; "
                      "evaluation must leave them alone", _module_like(piece, "running_mean", updates_in_eval=True)),
        Misconception("eval_batch_stats", "in eval mode your module normalises with the batch's statistics; "
                      "with tracking on, eval uses running_mean and running_var",
                      _module_like(piece, "y", eval_batch_stats=True)),
        Misconception("biased_running_var", "running_var takes the *unbiased* batch variance in torch "
                      "(divide by n - 1, n the values per channel)",
                      _module_like(piece, "running_var", biased_running_var=True)),
        Misconception("var_init_zero", "running_var starts at 1, not 0", _module_like(piece, "running_var",
                                                                                   var_init_zero=True)),
        Misconception("eval_ignores_tracking", "with track_running_stats=False the running statistics are "
                      "None, so eval mode cannot use them: normalise with the batch's statistics whenever "
                      "self.training or not self.track_running_stats",
                      _crash_probe(piece, {"track_running_stats": False}, "NoneType")),
        Misconception("reset_keeps_count", "reset_running_stats() must also set num_batches_tracked back to 0",
                      _module_like(piece, "after reset_running_stats()", reset_keeps_count=True)),
        Misconception("no_single_value_error", "a batch with one value per channel cannot be normalised in "
                      "training: raise ValueError('Expected more than 1 value per channel when training, ...') "
                      "as torch does", _module_like(piece, "errors", no_single_value_error=True)),
        Misconception("no_dim_check", "your _check_input_dim accepts inputs of the wrong number of "
                      "dimensions; raise ValueError as torch does", _module_like(piece, "errors", no_dim_check=True)),
        Misconception("no_bias_argument", "torch's constructor has a keyword-only argument bias=True after "
                      "dtype (`*, bias=True`): with bias=False the layer learns a weight but no bias",
                      _crash_probe(piece, {"bias": False}, "unexpected keyword argument 'bias'")),
        Misconception("bias_kw_ignored", "with bias=False torch registers no bias parameter "
                      "(register_parameter('bias', None)); the weight stays",
                      _module_like(piece, "layout", {"bias": False}, bias_kw_ignored=True)),
        Misconception("no_eps_check", "torch refuses eps <= 0 whenever it normalises with the batch's "
                      "statistics: raise ValueError('batch_norm eps must be positive during training, but "
                      "got ...')", _module_like(piece, "errors", no_eps_check=True)),
    ]
    if piece == "BatchNorm2d":
        m.insert(0, Misconception("per_pixel", "you normalised every (channel, pixel) position on its own, "
                                  "over the batch only; BatchNorm2d keeps one mean and variance per channel, "
                                  "over N * H * W values", _module_like(piece, "y", per_pixel=True)))
        m.insert(1, Misconception("bessel_batch_n", "your unbiased running_var uses n = N (the batch size); "
                                  "each channel's statistics come from n = N * H * W values, so the factor is "
                                  "n / (n - 1) with that n", _module_like(piece, "running_var", bessel_batch_n=True)))
    else:
        m.insert(0, Misconception("per_position", "for (N, C, L) input you normalised every (channel, position) "
                                  "on its own; BatchNorm1d keeps one mean and variance per channel over N * L",
                                  _module_like(piece, "y", per_pixel=True)))
    return m


CATALOGUE["BatchNorm1d"] = _module_mistakes("BatchNorm1d")
CATALOGUE["BatchNorm2d"] = _module_mistakes("BatchNorm2d")
