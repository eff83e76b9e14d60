"""The classic mistakes' answers, worked out on the grading side (never shipped to learners).

bncourse.misconceptions recognises each piece's classic mistakes: it runs the learner's
function on fixed, crafted inputs and compares what comes back with what the mistake answers
there. Those inputs and answers are data, bncourse/probes.npz, written from here:

    make probe-data          (python -m autograder.mistakes)

so the learner package holds no formula, right or wrong. tests/test_probe_data.py fails,
naming the misconception, when the committed file is not what this module writes.

MISTAKES[piece][name] builds, when asked, what that misconception's probe needs: `calls`
[(args, kwargs)] (the inputs; the grader records the learner's answers to exactly these),
`wrong` (what the mistake answers to the call, or the part of it the probe compares: the
probe's output selector in bncourse.misconceptions must pick the same part), and, for a probe
that also checks the answer is right elsewhere (one-pass variance), `exact`.
"""
import sys
from pathlib import Path

import numpy as np

from autograder import reference
from bncourse import misconceptions
from bncourse.cases import Formula
from bncourse.judge import pure
from bncourse.pieces.lesson03 import forward_cache  # as the backward's cases make it

PROBE_DATA = Path(misconceptions.__file__).with_name(misconceptions.PROBE_DATA)


def _f64(a):
    return np.asarray(a, dtype=np.float64)


def like(wrong, *args, **kwargs):
    """A probe's data: fn(*args, **kwargs) is compared with wrong(*args, **kwargs)."""
    return lambda: {"calls": [(args, dict(kwargs))], "wrong": _f64(wrong(*args, **kwargs))}


def inputs(*calls, exact=None):
    """A probe's data when it needs only its inputs (and the exact answer it compares with)."""
    def entry():
        data = {"calls": [(args, dict(kwargs)) for args, kwargs in calls]}
        if exact is not None:
            data["exact"] = _f64(exact())
        return data
    return entry


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

_X_NEAR_1E4 = 1e4 + np.random.default_rng(7).standard_normal((64, 3))


def _normalised(x, axes, ddof=0, eps=1e-5, eps_outside=False):
    mean = x.mean(axis=axes, keepdims=True)
    var = x.var(axis=axes, keepdims=True, ddof=ddof)
    return (x - mean) / ((np.sqrt(var) + eps) if eps_outside else np.sqrt(var + eps))


def _bn(x, gamma, beta, eps, ddof=0, eps_outside=False):
    return gamma * _normalised(x, 0, ddof, eps, eps_outside) + beta


MISTAKES = {
    "batch_mean": {
        "wrong_axis": like(lambda x: x.mean(axis=1), X),
        "whole_array": like(lambda x: x.mean(), X),
        "keepdims": like(lambda x: x.mean(axis=0, keepdims=True), X),
        "sum_not_mean": like(lambda x: x.sum(axis=0), X),
        "n_minus_1_mean": like(lambda x: x.sum(axis=0) / (len(x) - 1), X),
    },
    "batch_variance": {
        "unbiased": like(lambda x: x.var(axis=0, ddof=1), X),
        # right in float64, far off in float32 near 1e4: compared with the exact variance
        "one_pass": inputs(((_X_NEAR_1E4,), {}), ((_X_NEAR_1E4.astype(np.float32),), {}),
                           exact=lambda: _X_NEAR_1E4.var(axis=0)),
        "std_not_var": like(lambda x: x.std(axis=0), X),
        "not_centred": like(lambda x: (x ** 2).mean(axis=0), X),
        "wrong_axis": like(lambda x: x.var(axis=1), X),
        "keepdims": like(lambda x: x.var(axis=0, keepdims=True), X),
    },
    "normalise": {
        "eps_outside_sqrt": like(lambda x, m, v, eps: (x - m) / (np.sqrt(v) + eps), X, MEAN, VAR, eps=EPS),
        "no_eps": like(lambda x, m, v, eps: (x - m) / np.sqrt(v), X, MEAN, VAR, eps=EPS),
        "var_not_std": like(lambda x, m, v, eps: (x - m) / (v + eps), X, MEAN, VAR, eps=EPS),
        "not_centred": like(lambda x, m, v, eps: x / np.sqrt(v + eps), X, MEAN, VAR, eps=EPS),
        "own_statistics": like(lambda x, m, v, eps: (x - x.mean(0)) / np.sqrt(x.var(0) + eps),
                               X, MEAN, VAR, eps=EPS),
        "fixed_eps": like(lambda x, m, v, eps: (x - m) / np.sqrt(v + 1e-5), X, MEAN, VAR, eps=0.1),
    },
    "scale_and_shift": {
        "swapped": like(lambda h, g, b: b * h + g, X, GAMMA, BETA),
        "shift_then_scale": like(lambda h, g, b: g * (h + b), X, GAMMA, BETA),
        "no_beta": like(lambda h, g, b: g * h, X, GAMMA, BETA),
        "no_gamma": like(lambda h, g, b: h + b, X, GAMMA, BETA),
        "per_row": like(lambda h, g, b: g[:, None] * h + b[:, None], X_SQUARE, GAMMA, BETA),
    },
    "batchnorm_forward": {  # y (the probe picks y), or one entry of the cache
        "unbiased": like(lambda x, g, b, eps: _bn(x, g, b, eps, ddof=1), X, GAMMA, BETA, EPS),
        "eps_outside_sqrt": like(lambda x, g, b, eps: _bn(x, g, b, eps, eps_outside=True), X, GAMMA, BETA, EPS),
        "no_scale_shift": like(lambda x, g, b, eps: _bn(x, 1.0, 0.0, eps), X, GAMMA, BETA, EPS),
        "swapped": like(lambda x, g, b, eps: _bn(x, b, g, eps), X, GAMMA, BETA, EPS),
        "cache_std": like(lambda x, g, b, eps: np.sqrt(x.var(axis=0) + eps), X, GAMMA, BETA, EPS),
        "cache_y_as_x_hat": like(lambda x, g, b, eps: _bn(x, g, b, eps), X, GAMMA, BETA, EPS),
    },
}


# ---------------------------------------------------------------- lessons 03 and 04

DOUT = np.random.default_rng(3).standard_normal(X.shape)
CACHE = forward_cache(X, GAMMA, BETA, EPS)


def _backward_parts(dout, cache):
    """The pieces of the closed form, for writing mistaken variants of it."""
    x_hat, n = cache["x_hat"], len(dout)
    scale = cache["gamma"] / np.sqrt(cache["var"] + cache["eps"])
    return x_hat, n, scale, dout.sum(axis=0), (dout * x_hat).sum(axis=0)


def _dx(dout, cache, n_minus_1=False, sum_term=True, x_hat_term=True, gamma=True, direct=True):
    x_hat, n, scale, dbeta, dgamma = _backward_parts(dout, cache)
    if not gamma:
        scale = scale / cache["gamma"]
    dx = (dout if direct else np.zeros_like(dout)) - (dbeta / n if sum_term else 0) \
        - (x_hat * dgamma / (n - n_minus_1) if x_hat_term else 0)
    return scale * dx


def _backward_mistakes(staged=False):  # dx, dgamma or dbeta: the probe picks the output
    lost = {  # the staged backward's chaining kept one share where a value feeds two nodes
        # x_c: node 5's share alone (sum x_hat = 0, so node 7 then sends back nothing)
        "xc_share_replaced": like(lambda d, c: _dx(d, c, direct=False, sum_term=False), DOUT, CACHE),
        # x: node 7's share alone
        "x_share_replaced": like(lambda d, c: _dx(d, c, direct=False, x_hat_term=False), DOUT, CACHE),
    } if staged else {}
    return {
        "dgamma_not_summed": like(lambda d, c: d * c["x_hat"], DOUT, CACHE),
        "dbeta_not_summed": like(lambda d, c: d, DOUT, CACHE),
        "dgamma_mean": like(lambda d, c: (d * c["x_hat"]).mean(axis=0), DOUT, CACHE),
        "dbeta_mean": like(lambda d, c: d.mean(axis=0), DOUT, CACHE),
        "direct_path_only": like(lambda d, c: _dx(d, c, sum_term=False, x_hat_term=False), DOUT, CACHE),
        "no_mean_term": like(lambda d, c: _dx(d, c, sum_term=False), DOUT, CACHE),
        "no_variance_term": like(lambda d, c: _dx(d, c, x_hat_term=False), DOUT, CACHE),
        "n_minus_1": like(lambda d, c: _dx(d, c, n_minus_1=True), DOUT, CACHE),
        "no_gamma": like(lambda d, c: _dx(d, c, gamma=False), DOUT, CACHE),
        "ones_not_dout": like(lambda d, c: np.full(d.shape[1], float(len(d))), DOUT, CACHE),
        **lost,
    }


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
        ref = reference  # the hidden reference's float64 steps
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
    return pure("batchnorm_layer_forward", layer)  # run over a sequence of steps


_steps_rng = np.random.default_rng(6)
XS = 2.0 + 1.5 * _steps_rng.standard_normal((6, 5, 4)) + np.arange(6)[:, None, None] * 0.5
TRAINING = np.array([True, True, False, True, False, False])


def _steps_like(mistake, output):
    """The mistaken layer's answer number `output` (ys, running means, running vars, counts)."""
    return like(lambda *a, **k: _wrong_layer(**mistake)(*a, **k)[output], XS, TRAINING, GAMMA, BETA)


RUNNING = (np.array([0.5, -1.0, 2.0, 0.0]), np.array([1.5, 0.2, 3.0, 1.0]))
BATCH = (np.array([1.0, 0.0, -1.0, 4.0]), np.array([0.5, 2.0, 0.1, 1.0]))

# lesson 03's nodes: the values each node reads, from X, and random upstream gradients
_XC = X - X.mean(axis=0)
_VAR_X = (_XC ** 2).mean(axis=0)
_S = np.sqrt(_VAR_X + EPS)
_R, _XHAT = 1 / _S, _XC / _S
_rng_up = np.random.default_rng(6)
UP_ND, UP_D = _rng_up.standard_normal(X.shape), _rng_up.standard_normal(X.shape[1])

MISTAKES.update({
    # lesson 03's nodes: the slips of deriving a node by hand (the others are named by the spec's
    # explain: the node and the input whose gradient is wrong)
    "scale_shift_backward": {
        "dx_hat_no_gamma": like(lambda dy, xh, g: dy, UP_ND, _XHAT, GAMMA),
        "dgamma_mean": like(lambda dy, xh, g: (dy * xh).mean(axis=0), UP_ND, _XHAT, GAMMA),
        "dbeta_mean": like(lambda dy, xh, g: dy.mean(axis=0), UP_ND, _XHAT, GAMMA),
    },
    "product_backward": {
        "dxc_times_s": like(lambda d, xc, r: d / r, UP_ND, _XC, _R),
        "dr_mean": like(lambda d, xc, r: (d * xc).mean(axis=0), UP_ND, _XC, _R),
    },
    "reciprocal_backward": {
        "sign": like(lambda dr, s: dr / s ** 2, UP_D, _S),
        "power": like(lambda dr, s: -dr / s, UP_D, _S),
        "no_upstream": like(lambda dr, s: -1 / s ** 2, UP_D, _S),
    },
    "sqrt_backward": {
        "no_half": like(lambda ds, v, e: ds / np.sqrt(v + e), UP_D, _VAR_X, EPS),
        "inverted": like(lambda ds, v, e: ds * np.sqrt(v + e) / 2, UP_D, _VAR_X, EPS),
        "no_eps": like(lambda ds, v, e: ds / (2 * np.sqrt(v)), UP_D, _VAR_X, EPS),
    },
    "variance_backward": {
        "n_minus_1": like(lambda dv, xc: 2 * xc * dv / (len(xc) - 1), UP_D, _XC),
        "no_2": like(lambda dv, xc: xc * dv / len(xc), UP_D, _XC),
        "no_1_over_n": like(lambda dv, xc: 2 * xc * dv, UP_D, _XC),
    },
    "centre_backward": {
        "dmean_sign": like(lambda d: d.sum(axis=0), UP_ND),
        "dmean_mean": like(lambda d: -d.mean(axis=0), UP_ND),
    },
    "mean_backward": {
        "no_1_over_n": like(lambda dm, x: np.ones_like(x) * dm, UP_D, X),
        "over_d": like(lambda dm, x: np.ones_like(x) * dm / x.shape[1], UP_D, X),
    },
    "batchnorm_backward_staged": _backward_mistakes(staged=True),
    "batchnorm_backward": _backward_mistakes(),
    "numerical_gradient": {
        "one_sided": like(lambda f, x, d, h=1e-5: _difference(f, x, d, h, "forward"), F_PROBE, X_PROBE, DOUT_PROBE),
        "over_h": like(lambda f, x, d, h=1e-5: _difference(f, x, d, h, "over_h"), F_PROBE, X_PROBE, DOUT_PROBE),
        "ignores_dout": like(lambda f, x, d, h=1e-5: _difference(f, x, d, h, with_dout=False), F_PROBE, X_PROBE,
                             DOUT_PROBE),
    },
    "update_running_stats": {
        "flipped": like(lambda rm, rv, bm, bv, momentum=0.9: ((1 - momentum) * rm + momentum * bm,
                                                              (1 - momentum) * rv + momentum * bv),
                        *RUNNING, *BATCH, momentum=0.9),
        "batch_only": like(lambda rm, rv, bm, bv, momentum=0.9: (bm, bv), *RUNNING, *BATCH, momentum=0.9),
        "unchanged": like(lambda rm, rv, bm, bv, momentum=0.9: (rm, rv), *RUNNING, *BATCH, momentum=0.9),
    },
    "batchnorm_inference": {
        "batch_statistics": like(lambda x, g, b, rm, rv, eps=1e-5: g * (x - x.mean(0)) / np.sqrt(x.var(0) + eps) + b,
                                 X, GAMMA, BETA, MEAN, VAR, eps=EPS),
        "eps_outside_sqrt": like(lambda x, g, b, rm, rv, eps=1e-5: g * (x - rm) / (np.sqrt(rv) + eps) + b,
                                 X, GAMMA, BETA, MEAN, VAR, eps=EPS),
        "no_scale_shift": like(lambda x, g, b, rm, rv, eps=1e-5: (x - rm) / np.sqrt(rv + eps),
                               X, GAMMA, BETA, MEAN, VAR, eps=EPS),
    },
    "update_running_stats_torch": {
        "flipped": like(lambda rm, rv, x, momentum=0.1, batches_seen=0: (
            momentum * rm + (1 - momentum) * x.mean(0),
            momentum * rv + (1 - momentum) * x.var(0, ddof=1)), *RUNNING, X, momentum=0.1),
        "biased": like(lambda rm, rv, x, momentum=0.1, batches_seen=0: 0.9 * rv + 0.1 * x.var(0),
                       *RUNNING, X, momentum=0.1),  # the new running_var
        "none_as_default": like(lambda rm, rv, x, momentum=None, batches_seen=0: (
            0.9 * rm + 0.1 * x.mean(0), 0.9 * rv + 0.1 * x.var(0, ddof=1)), *RUNNING, X,
            momentum=None, batches_seen=3),
        "cumulative_off_by_one": like(lambda rm, rv, x, momentum=None, batches_seen=0: (
            (1 - 1 / batches_seen) * rm + x.mean(0) / batches_seen,
            (1 - 1 / batches_seen) * rv + x.var(0, ddof=1) / batches_seen), *RUNNING, X,
            momentum=None, batches_seen=3),
    },
    "init_running_stats": {
        "var_zero": like(lambda n, dtype=np.float64: np.zeros(n), 4),  # running_var
    },
    "batchnorm_layer_forward": {
        "updates_in_eval": _steps_like({"eval_updates": True}, 1),
        "batch_stats_in_eval": _steps_like({"eval_batch_stats": True}, 0),
        "never_updates": _steps_like({"never_updates": True}, 1),
        "not_counted": _steps_like({"no_count": True}, 3),
        "running_in_training": _steps_like({"train_running": True}, 0),
    },
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


MISTAKES.update({
    "layer_norm": {
        "batch_axis": like(lambda x, g, b, eps=1e-5: g * _normalised(x, 0, eps=eps) + b, X, GAMMA, BETA, eps=EPS),
        "no_keepdims": like(lambda x, g, b, eps=1e-5: g * (x - x.mean(1)) / np.sqrt(
            ((x - x.mean(1)) ** 2).mean(1) + eps) + b, X_SQUARE, GAMMA, BETA, eps=EPS),
        "unbiased": like(lambda x, g, b, eps=1e-5: g * _normalised(x, 1, ddof=1, eps=eps) + b,
                         X, GAMMA, BETA, eps=EPS),
        "eps_outside_sqrt": like(lambda x, g, b, eps=1e-5: g * _normalised(x, 1, eps=eps, eps_outside=True) + b,
                                 X, GAMMA, BETA, eps=EPS),
    },
    "group_norm": {
        "strided_groups": like(lambda x, g, ga, b, eps=1e-5: _affine(_grouped(x, g, "strided", eps=eps), ga, b),
                               X4, 3, GAMMA6, BETA6, eps=EPS),
        "per_channel": like(lambda x, g, ga, b, eps=1e-5: _affine(_grouped(x, x.shape[1], eps=eps), ga, b),
                            X4, 3, GAMMA6, BETA6, eps=EPS),
        "whole_example": like(lambda x, g, ga, b, eps=1e-5: _affine(_grouped(x, 1, eps=eps), ga, b),
                              X4, 3, GAMMA6, BETA6, eps=EPS),
        "batch_statistics": like(lambda x, g, ga, b, eps=1e-5: _affine(_normalised(x, (0, 2, 3), eps=eps), ga, b),
                                 X4, 3, GAMMA6, BETA6, eps=EPS),
        "unbiased": like(lambda x, g, ga, b, eps=1e-5: _affine(_grouped(x, g, ddof=1, eps=eps), ga, b),
                         X4, 3, GAMMA6, BETA6, eps=EPS),
    },
    "fold_batchnorm": {
        "no_running_mean": _fold_like(mean_term=False),
        "no_eps": _fold_like(eps_term=False),
        "ignores_layer_bias": _fold_like(layer_bias=False),
        "no_beta": _fold_like(beta_term=False),
        "input_axis": _fold_like(input_axis=True),
    },
})


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
MLP_LABELS = np.array([0, 1, 1, 0, 1, 0])


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


def _norms_like(mistake, batchnorm=False):
    """gradient_norms written with a mistake, run on the probe MLP as the grader runs it: its
    norms (the first of its two answers as the grader records them)."""
    def wrong(*a, **k):
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
        return pure("gradient_norms", norms)(*a, **k)[0]
    kwargs = {"batchnorm": True} if batchnorm else {}
    return like(wrong, MLP_X, MLP_LABELS, MLP_PARAMS, **kwargs)


MISTAKES.update({
    "activation_summary": {
        "unbiased": like(lambda a: _summary(a, ddof=1), A_PROBE),
        "per_feature": like(lambda a: a.mean(axis=0), A_PROBE),  # the first 3 of 15 per-value numbers
        "percentile_method": like(lambda a: _summary(a, method="nearest"), A_PROBE),
        "median_for_mean": like(lambda a: _summary(a, median_for_mean=True), A_PROBE),
    },
    "record_layer_inputs": {
        "outputs": like(lambda x, p: _mlp_values(x, p, what="outputs")[1], MLP_X, MLP_PARAMS),
        "top_level": like(lambda x, p: _mlp_values(x, p)[-1], MLP_X, MLP_PARAMS),
        "eval_mode": like(lambda x, p, batchnorm: _mlp_values(x, p, True, eval_mode=True)[2], MLP_X, MLP_PARAMS,
                          batchnorm=True),
    },
    "shift_per_step": {
        "later_std": like(lambda m, s: np.abs(np.diff(m, axis=0)) / s[1:], MEANS_PROBE, STDS_PROBE),
        "signed": like(lambda m, s: np.diff(m, axis=0) / s[:-1], MEANS_PROBE, STDS_PROBE),
        "not_scaled": like(lambda m, s: np.abs(np.diff(m, axis=0)), MEANS_PROBE, STDS_PROBE),
    },
    "largest_stable_lr": {
        "first_failure": like(_first_failure, LRS, LOSSES, START),
        "best_loss": like(lambda lrs, f, s: lrs[np.nanargmin(f)], LRS, LOSSES, START),
        "assumes_sorted": like(lambda lrs, f, s: [r for r, v in zip(lrs, f) if v < s][-1], LRS, LOSSES, START),
        "ignores_start": like(lambda lrs, f, s: lrs[np.isfinite(f)].max(), LRS, LOSSES_ABOVE_START, START),
    },
    "effective_smoothness": {
        "no_eta": like(lambda *a: _smooth(*a, eta=False), G0, GS, ETAS),
        "no_g_norm": like(lambda *a: _smooth(*a, g_norm=False), G0, GS, ETAS),
        "mean_not_max": like(lambda *a: _smooth(*a, reduce=np.mean), G0, GS, ETAS),
        "squared": like(lambda *a: _smooth(*a, squared=True), G0, GS, ETAS),
    },
    "batch_mean_noise": {
        "remainder": like(lambda x, b: _noise(x, b, remainder=True), NOISE_X, 5),
        "unbiased": like(lambda x, b: _noise(x, b, ddof=1), NOISE_X, 5),
        "theory": like(lambda x, b: float((x.std(axis=0) / np.sqrt(b)).mean()), NOISE_X, 5),
        "max_not_mean": like(lambda x, b: _noise(x, b, reduce=np.max), NOISE_X, 5),
    },
    "gradient_norms": {
        "no_zero_grad": _norms_like("no_zero_grad"),
        "includes_bias": _norms_like("includes_bias"),
        "sum_loss": _norms_like("sum_loss"),
        "squared": _norms_like("squared"),
        "eval_mode": _norms_like("eval_mode", batchnorm=True),
        "stepped": inputs(((MLP_X, MLP_LABELS, MLP_PARAMS), {})),  # did it move a parameter?
    },
})


# ---------------------------------------------------------------- lesson 05

FN_ARGS = (X, GAMMA, BETA, DOUT)


def _function_like(wrong_dx=None, unbiased=False):
    """y (unbiased) or dx (a mistaken backward) of BatchNormFunction: the probe picks the output."""
    def wrong(x, g, b, d, eps=1e-5):
        y = _bn(x, g, b, eps, ddof=1 if unbiased else 0)
        return y if wrong_dx is None else wrong_dx(d, forward_cache(x, g, b, eps))
    return like(wrong, *FN_ARGS, eps=EPS)


_NEAR_1E3 = 1e3 + np.random.default_rng(8).standard_normal((32, 3)) * np.array([0.05, 1.0, 3.0])
_FN_NEAR_1E3 = (_NEAR_1E3, GAMMA[:3], BETA[:3], np.random.default_rng(9).standard_normal((32, 3)))

MISTAKES["BatchNormFunction"] = {
    # right in float64, its output far off in float32 near 1e3: compared with the exact y
    "one_pass": inputs((_FN_NEAR_1E3, {}), (tuple(a.astype(np.float32) for a in _FN_NEAR_1E3), {}),
                       exact=lambda: _bn(*_FN_NEAR_1E3[:3], 1e-5)),
    "unbiased": _function_like(unbiased=True),
    "direct_path_only": _function_like(lambda d, c: _dx(d, c, sum_term=False, x_hat_term=False)),
    "no_mean_term": _function_like(lambda d, c: _dx(d, c, sum_term=False)),
    "no_variance_term": _function_like(lambda d, c: _dx(d, c, x_hat_term=False)),
    "n_minus_1": _function_like(lambda d, c: _dx(d, c, n_minus_1=True)),
    "no_gamma": _function_like(lambda d, c: _dx(d, c, gamma=False)),
}


def _mistaken_module(piece, **mistake):
    """A BatchNorm module with one of the classic mistakes (torch ops, after torch's design)."""
    import torch

    flag = mistake.get

    def normalised(rows, weight, bias, eps):  # each column over the rows (autograd gives the gradients)
        mean = rows.mean(dim=0)
        x_hat = (rows - mean) / torch.sqrt(((rows - mean) ** 2).mean(dim=0) + eps)
        return weight * x_hat + bias

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
            batch = (self.training or not self.tracked or flag("eval_batch_stats")
                     or flag("tracking_switched") and not self.track_running_stats)
            if batch and rows.shape[0] == 1 and not flag("no_single_value_error"):
                raise ValueError("Expected more than 1 value per channel when training")
            if batch and self.eps <= 0 and not flag("no_eps_check"):
                raise ValueError(f"batch_norm eps must be positive during training, but got {self.eps}")
            ones = torch.ones(c, dtype=x.dtype)
            weight = self.weight if self.affine else ones
            bias = self.bias if self.bias is not None else torch.zeros_like(ones)
            moving = self.track_running_stats or flag("tracking_switched") or flag("ignores_tracking")
            counted = self.training or flag("updates_in_eval") or flag("tracking_switched") and batch
            if counted and self.tracked and moving:
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
                return normalised(x.reshape(x.shape[0], -1), weight.repeat_interleave(per),
                                  bias.repeat_interleave(per), self.eps).reshape(x.shape)
            if batch:
                out = normalised(rows, weight, bias, self.eps)
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


def _module_like(piece, key, config=None, **mistake):
    """The module with this mistake: its answer `key` (raw: text as uint8, or numbers)."""
    config = dict(config or {})

    def entry():
        args = _module_args(piece, config)
        answer = pure(piece, _mistaken_module(piece, **mistake))(*args, **config)  # float64 inputs
        return {"calls": [(args, dict(config))], "wrong": np.asarray(answer[key])}
    return entry


def _module_inputs(piece, config=None, exact=None):
    config = dict(config or {})
    return inputs((_module_args(piece, config), config), exact=exact)


def _module_mistakes(piece):
    c = PROBE_CHANNELS
    m = {
        "buffers_as_parameters": _module_inputs(piece),
        "float_count": _module_like(piece, "layout", float_count=True),
        "affine_false_params": _module_inputs(piece, {"affine": False}),
        "ignores_tracking": _module_like(piece, "layout", {"track_running_stats": False}, ignores_tracking=True),
        # a new module's weight and bias, as torch's reset_parameters leaves them
        "initial_params": _module_inputs(piece, exact=lambda: np.r_[np.ones(c), np.zeros(c)]),
        "not_counted": _module_like(piece, "num_batches_tracked", not_counted=True),
        "momentum_none_as_01": _module_like(piece, "running_mean", {"momentum": None}, momentum_none_as_01=True),
        "updates_in_eval": _module_like(piece, "running_mean", updates_in_eval=True),
        "eval_batch_stats": _module_like(piece, "y", eval_batch_stats=True),
        "biased_running_var": _module_like(piece, "running_var", biased_running_var=True),
        "var_init_zero": _module_like(piece, "running_var", var_init_zero=True),
        # built tracking, then m.track_running_stats = False: torch's running statistics stay put
        "tracking_switched": _module_like(piece, "running_mean", {"set_track_running_stats": False},
                                          tracking_switched=True),
        "stats_in_graph": _module_inputs(piece),
        "eval_ignores_tracking": _module_inputs(piece, {"track_running_stats": False}),
        "reset_keeps_count": _module_like(piece, "after reset_running_stats()", reset_keeps_count=True),
        "no_single_value_error": _module_like(piece, "errors", no_single_value_error=True),
        "no_dim_check": _module_like(piece, "errors", no_dim_check=True),
        "no_bias_argument": _module_inputs(piece, {"bias": False}),
        "bias_kw_ignored": _module_like(piece, "layout", {"bias": False}, bias_kw_ignored=True),
        "no_eps_check": _module_like(piece, "errors", no_eps_check=True),
    }
    if piece == "BatchNorm2d":
        m["per_pixel"] = _module_like(piece, "y", per_pixel=True)
        m["bessel_batch_n"] = _module_like(piece, "running_var", bessel_batch_n=True)
    else:
        m["per_position"] = _module_like(piece, "y", per_pixel=True)
    return m


# the module's steps

def _parameters_like(key, config=None, **mistake):
    """make_parameters_and_buffers with this mistake: the mistaken module's parameters and buffers,
    registered on the module it is handed; its answer `key`."""
    config = dict(config or {})

    def wrong(module, num_features, **kwargs):
        twin = _mistaken_module("BatchNorm1d", **mistake)(num_features, **kwargs)
        for name, p in twin._parameters.items():
            module.register_parameter(name, p)
        for name, b in twin._buffers.items():
            module.register_buffer(name, b)

    def entry():
        args = (np.zeros((1, PROBE_CHANNELS)),)
        return {"calls": [(args, dict(config))],
                "wrong": np.asarray(pure("make_parameters_and_buffers", wrong)(*args, **config)[key])}
    return entry


def _plain_attribute(key):
    def wrong(module, num_features, **kwargs):
        reference._reference_parameters(module, num_features, **kwargs)
        running_var = module.running_var
        del module._buffers["running_var"]
        object.__setattr__(module, "running_var", running_var)

    def entry():
        args = (np.zeros((1, PROBE_CHANNELS)),)
        return {"calls": [(args, {})], "wrong": np.asarray(pure("make_parameters_and_buffers", wrong)(*args)[key])}
    return entry


def _training_args():
    rng = np.random.default_rng(23)
    c = PROBE_CHANNELS
    xs = rng.normal(0, 1, (4, 6, c)) * rng.uniform(0.5, 3, c) + rng.normal(0, 2, c)
    return (xs, np.ones(4, bool), rng.normal(0, 1, xs.shape), GAMMA[:c], BETA[:c], {})


def _training_like(key, config=None, not_counted=False, momentum_none_as_01=False, biased=False, old_weight=False):
    import torch
    config = dict(config or {})

    def wrong(rows, weight, bias, running_mean, running_var, count, momentum=0.1, eps=1e-5):
        if count is not None:
            if not not_counted:
                count += 1
            m = momentum if momentum is not None else 0.1 if momentum_none_as_01 else 1 / float(count)
            old, new = (m, 1 - m) if old_weight else (1 - m, m)
            with torch.no_grad():
                running_mean.mul_(old).add_(new * rows.mean(dim=0))
                running_var.mul_(old).add_(new * rows.var(dim=0, unbiased=not biased))
        mean = rows.mean(dim=0)
        return weight * (rows - mean) / torch.sqrt(((rows - mean) ** 2).mean(dim=0) + eps) + bias

    def entry():
        args = _training_args()
        answer = pure("training_forward", wrong)(*args, **config)
        return {"calls": [(args, dict(config))], "wrong": np.asarray(answer[key])}
    return entry


EVAL_ARGS = (X, GAMMA, BETA, MEAN + 1, VAR, DOUT)


def _eval_like(batch=False, eps_outside=False):
    import torch

    def wrong(rows, weight, bias, running_mean, running_var, eps=1e-5):
        if batch:
            running_mean, running_var = rows.mean(dim=0), rows.var(dim=0, unbiased=False)
        std = torch.sqrt(running_var) + eps if eps_outside else torch.sqrt(running_var + eps)
        return weight * (rows - running_mean) / std + bias
    return like(lambda *a, **k: pure("eval_forward", wrong)(*a, **k)[0], *EVAL_ARGS, eps=EPS)


def _check_like(dims, no_single=False, single_example=False, single_in_eval=False, no_eps=False, no_dims=False):
    def wrong(x, accepted, use_batch, eps=1e-5):
        if x.dim() not in accepted and not no_dims:
            raise ValueError("wrong dims")
        one = x.shape[0] == 1 if single_example else x.numel() // x.shape[1] == 1
        if one and (use_batch or single_in_eval) and not no_single:
            raise ValueError("one value")
        if use_batch and eps <= 0 and not no_eps:
            raise ValueError("eps")
    return like(pure("check_input", wrong), np.zeros((1, PROBE_CHANNELS)), np.array(dims))


MISTAKES["make_parameters_and_buffers"] = {
    "buffers_as_parameters": inputs(((np.zeros((1, PROBE_CHANNELS)),), {})),
    "plain_attribute": _plain_attribute("layout"),
    "float_count": _parameters_like("layout", float_count=True),
    "affine_false_params": inputs(((np.zeros((1, PROBE_CHANNELS)),), {"affine": False})),
    "ignores_tracking": _parameters_like("layout", {"track_running_stats": False}, ignores_tracking=True),
    "initial_params": inputs(((np.zeros((1, PROBE_CHANNELS)),), {}),
                             exact=lambda: np.r_[np.ones(PROBE_CHANNELS), np.zeros(PROBE_CHANNELS)]),
    "bias_kw_ignored": _parameters_like("layout", {"bias": False}, bias_kw_ignored=True),
    # a new module's buffers, as torch's reset_running_stats leaves them
    "initial_buffers": inputs(((np.zeros((1, PROBE_CHANNELS)),), {}),
                              exact=lambda: np.r_[np.zeros(PROBE_CHANNELS), np.ones(PROBE_CHANNELS), 0]),
}
MISTAKES["training_forward"] = {
    "not_counted": _training_like("num_batches_tracked", not_counted=True),
    "momentum_none_as_01": _training_like("running_mean", {"momentum": None}, momentum_none_as_01=True),
    "biased_running_var": _training_like("running_var", biased=True),
    "momentum_old_weight": _training_like("running_mean", old_weight=True),
    "stats_in_graph": inputs((_training_args(), {})),
}
MISTAKES["eval_forward"] = {
    "eval_batch_stats": _eval_like(batch=True),
    "eps_outside_sqrt": _eval_like(eps_outside=True),
}
MISTAKES["check_input"] = {
    "no_single_value_error": _check_like((2, 3), no_single=True),
    "single_example": _check_like((2, 3), single_example=True),
    "single_value_in_eval": _check_like((2, 3), single_in_eval=True),
    "no_eps_check": _check_like((4,), no_eps=True),
    "no_dim_check": _check_like((4,), no_dims=True),
}
MISTAKES["BatchNorm1d"] = _module_mistakes("BatchNorm1d")
MISTAKES["BatchNorm2d"] = _module_mistakes("BatchNorm2d")


# ---------------------------------------------------------------- the data file

def build():
    """{"piece/name": {"calls": [(args, kwargs)], "wrong": array, "exact": array}} for every
    misconception (wrong and exact where the probe compares with them)."""
    return {f"{piece}/{name}": make() for piece, named in MISTAKES.items() for name, make in named.items()}


def write(path=PROBE_DATA):
    blob = misconceptions.pack(build())
    Path(path).write_bytes(blob)
    return len(blob)


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else PROBE_DATA
    size = write(target)
    print(f"{target}: {len(MISTAKES)} pieces, {sum(map(len, MISTAKES.values()))} misconceptions, {size} bytes")
