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
PARTS = {"batchnorm_forward": ("batch_mean", "batch_variance", "normalise", "scale_and_shift"),
         "batchnorm_layer_forward": ("batch_mean", "batch_variance", "normalise", "scale_and_shift",
                                     "update_running_stats_torch", "batchnorm_inference"),
         "BatchNorm1d": ("BatchNormFunction",), "BatchNorm2d": ("BatchNormFunction",)}
# Pieces that return several arrays: the names of their outputs, in order.
OUTPUTS = {
    "batchnorm_backward_staged": ("dx", "dgamma", "dbeta"),
    "batchnorm_backward": ("dx", "dgamma", "dbeta"),
    "update_running_stats": ("new running_mean", "new running_var"),
    "update_running_stats_torch": ("new running_mean", "new running_var"),
    "batchnorm_layer_forward": ("y", "running_mean", "running_var", "num_batches_tracked"),
    "gradient_norms": ("the gradient norms", "the largest change it made to a parameter"),
    "BatchNormFunction": ("y", "dx", "dweight", "dbias"),
}
STATE_KEYS = ("running_mean", "running_var", "num_batches_tracked")
BACKWARD = ("batchnorm_backward_staged", "batchnorm_backward")


@dataclass
class Case:
    """One call of a learner's function: positional args (+ kwargs) and a readable label."""

    label: str
    args: tuple
    kwargs: dict = field(default_factory=dict)

    @property
    def dtype(self):
        """The dtype of the first array among the inputs (the one a correct answer keeps)."""
        for a in self.args:
            for v in (a.values() if isinstance(a, dict) else [a]):
                if isinstance(v, np.ndarray) and v.dtype.kind == "f":
                    return v.dtype
        return np.dtype(self.kwargs.get("dtype", np.float64))

    def fresh_args(self):
        """Copies, so a function that writes into its inputs cannot spoil the next check."""
        return tuple(_copy(a) for a in self.args)


def _copy(a):
    if isinstance(a, np.ndarray):
        return np.array(a, copy=True)
    if isinstance(a, dict):
        return {k: _copy(v) for k, v in a.items()}
    return a


def changed_inputs(args, before):
    """[(position, key or None)] of the array inputs that differ from their copies `before`."""
    changed = []
    for j, (a, b) in enumerate(zip(args, before)):
        pairs = [(k, a.get(k), b[k]) for k in b] if isinstance(b, dict) else [(None, a, b)]
        for key, now, then in pairs:
            if isinstance(then, np.ndarray) and not (isinstance(now, np.ndarray) and now.shape == then.shape
                                                     and np.array_equal(now, then, equal_nan=True)):
                changed.append((j, key))
    return changed


class Formula:
    """A smooth function of x that numerical_gradient is asked to differentiate. It is rebuilt
    from its kind and parameters wherever it is needed (a function cannot be written to a file),
    and has a torch twin so torch.autograd can give the exact gradient.

      batchnorm:  f(x) = gamma * (x - mean) / sqrt(var + 1e-5) + beta   (x (N, D) -> (N, D))
      tanh_layer: f(x) = tanh(x @ W + b)                                  (x (N, D) -> (N, K))
    """
    KINDS = ("batchnorm", "tanh_layer")

    def __init__(self, kind, **params):
        if kind not in self.KINDS:
            raise ValueError(f"unknown formula {kind!r}")
        self.kind, self.params = kind, {k: np.asarray(v, np.float64) for k, v in params.items()}
        self.__name__ = f"f_{kind}"

    def __repr__(self):
        return {"batchnorm": "f = a BatchNorm forward pass", "tanh_layer": "f = tanh(x @ W + b)"}[self.kind]

    def __call__(self, x, xp=np):
        p = {k: (xp.as_tensor(v) if xp is not np else v) for k, v in self.params.items()}
        if self.kind == "tanh_layer":
            return xp.tanh(x @ p["W"] + p["b"])
        mean = x.mean(0)
        var = ((x - mean) ** 2).mean(0)
        return p["gamma"] * (x - mean) / xp.sqrt(var + 1e-5) + p["beta"]

    def third_derivatives(self, x, dout, s):
        """phi3_i(s), the third derivative of phi_i(s) = sum(f(x + s e_i) * dout) (x's element i
        moved by s), for every i: what a centred difference's truncation error scales with."""
        x, dout, p = np.asarray(x, np.float64), np.asarray(dout, np.float64), self.params
        if self.kind == "tanh_layer":  # moving x[n, d] moves row n of x @ W + b by s * W[d]
            t = np.tanh((x @ p["W"] + p["b"])[:, None, :] + s * p["W"][None])
            return ((p["W"] ** 3)[None] * (-2 * (1 - t ** 2) * (1 - 3 * t ** 2)) * dout[:, None, :]).sum(axis=-1)
        # batchnorm, column by column: phi(s) = (a + b s) / sqrt(q(s)), q(s) = var(s) + 1e-5 a
        # quadratic in s; the 2nd and 3rd derivatives of q^(-1/2) written out
        n = x.shape[0]
        c, u = p["gamma"] * dout, x - x.mean(axis=0)
        a, b = (c * u).sum(axis=0), c - c.mean(axis=0)
        q = 1e-5 + (u ** 2).mean(axis=0) + 2 * s * u / n + s ** 2 * (n - 1) / n ** 2
        dq, ddq = 2 * u / n + 2 * s * (n - 1) / n ** 2, 2 * (n - 1) / n ** 2
        r2 = 0.75 * dq ** 2 * q ** -2.5 - 0.5 * ddq * q ** -1.5
        r3 = -15 / 8 * dq ** 3 * q ** -3.5 + 9 / 4 * dq * ddq * q ** -2.5
        return (a + b * s) * r3 + 3 * b * r2


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
        if piece in BACKWARD and dtype == np.float32:
            # x - mean of float32 features near 1e4 keeps ~3 digits: a correct backward that
            # recomputes it could not be told from a wrong one (float64 cases keep the offsets)
            offset = 0.0
        if piece == "BatchNormFunction" and dtype == np.float32:
            # near 1e3 a two-pass float32 variance still keeps x_hat to ~1e-4, while a one-pass
            # E[x^2] - E[x]^2 loses everything below ~0.1 of the variance: told apart by far
            offset = min(offset, 1e3)
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
    if piece in BACKWARD:
        gamma, beta = _params(rng, d, dtype)
        eps = [1e-5, 1e-3][i % 2]
        dout = rng.standard_normal((n, d)).astype(dtype)  # random: all ones would hide mistakes
        return Case(label + f", eps={eps:g}, random dout", (dout, forward_cache(x, gamma, beta, eps)))
    if piece == "numerical_gradient":
        return _gradient_case(rng, min(n, 8), min(d, 4), label, i)
    if piece in ("update_running_stats", "update_running_stats_torch"):
        running_mean = (x.mean(0) + rng.normal(0, 1, d)).astype(dtype)
        running_var = (x.var(0) * rng.uniform(0.5, 2.0, d) + rng.uniform(0.1, 1.0, d)).astype(dtype)
        if piece == "update_running_stats":
            kwargs = {"momentum": [0.9, 0.99, 0.5, 0.0][i % 4]} if i % 5 else {}
            mean, var = batch_stats(x)
            return Case(label + _kw(kwargs), (running_mean, running_var, mean, var), kwargs)
        if n < 2:
            x = np.concatenate([x, x + 1])
        kwargs = [{}, {"momentum": 0.5}, {"momentum": None, "batches_seen": [0, 1, 4, 9][i % 4]},
                  {"momentum": 0.1, "batches_seen": 7}][i % 4]
        return Case(label + _kw(kwargs), (running_mean, running_var, x), kwargs)
    if piece == "batchnorm_inference":
        gamma, beta = _params(rng, d, dtype)
        mean, var = batch_stats(x)
        running_mean = (mean + rng.normal(0, 1, d) * np.sqrt(var)).astype(dtype)  # not x's own
        running_var = (var * rng.uniform(0.5, 2.0, d)).astype(dtype)
        kwargs = {"eps": [1e-5, 1e-3, 0.1][i % 3]} if i % 4 else {}
        return Case(label + ", running statistics not x's own" + _kw(kwargs),
                    (x, gamma, beta, running_mean, running_var), kwargs)
    if piece == "init_running_stats":
        kwargs = {"dtype": ["float32", "float64"][i % 2]} if i % 3 else {}
        return Case(f"num_features={d}" + _kw(kwargs), (d,), kwargs)
    if piece == "batchnorm_layer_forward":
        return _steps_case(rng, x, label, i)
    if piece == "layer_norm":
        gamma, beta = _params(rng, d, dtype)
        kwargs = {"eps": [1e-5, 1e-3][i % 2]} if i % 3 else {}
        return Case(label + _kw(kwargs), (x, gamma, beta), kwargs)
    if piece == "group_norm":
        return _group_case(rng, x, label, i)
    if piece == "fold_batchnorm":
        return _fold_case(rng, x, i)
    if piece in MEASURES:
        return _measure_case(piece, rng, x, label, i)
    if piece == "BatchNormFunction":
        gamma, beta = _params(rng, d, dtype)
        dout = rng.standard_normal((n, d)).astype(dtype)
        kwargs = {"eps": [1e-5, 1e-3][i % 2]} if i % 3 else {}
        return Case(label + ", random dout" + _kw(kwargs), (x, gamma, beta, dout), kwargs)
    if piece in MODULES:
        return _module_case(piece, rng, x, i)
    raise KeyError(piece)


def _group_case(rng, x, label, i):
    """x (N, C, ...) with C channels in G groups; 4-D, 3-D and 2-D inputs."""
    n, dtype = x.shape[0], x.dtype
    c, g = [(2, 1), (4, 2), (6, 3), (8, 4), (6, 2), (12, 4), (4, 4)][i % 7]
    spatial = [(3, 3), (5,), (), (2, 4)][i % 4]
    positions = int(np.prod(spatial, dtype=int))
    typical = float(np.median(np.abs(x)))
    offset = 1e4 if typical > 3000 else 1e3 if typical > 100 else 0.0  # keep x's offset
    cols = make_batch(rng, n, c * positions, dtype, offset, constant_cols=int(i % 5 == 0))
    xs = cols.reshape((n, c) + spatial)
    gamma, beta = _params(rng, c, dtype)
    kwargs = {"eps": [1e-5, 1e-3][i % 2]} if i % 3 else {}
    label = (f"{np.dtype(dtype).name} x of shape {xs.shape}, {g} groups"
             + (f", features offset by ~{offset:.0f}" if offset else "") + _kw(kwargs))
    return Case(label, (xs, g, gamma, beta), kwargs)


def _fold_case(rng, x, i):
    """A Linear or Conv2d layer (bias or not), a BatchNorm's parameters and running statistics,
    and a batch to compare the folded layer's outputs on."""
    dtype = x.dtype
    conv = i % 3 == 2
    n = max(x.shape[0] % 9, 2)
    c_in, c_out = int(rng.integers(1, 5)), int(rng.integers(1, 6))
    if conv:
        k = [1, 3][i % 2]
        xs = rng.normal(0, 1, (n, c_in, 5, 4)).astype(dtype)
        weight = rng.normal(0, 1 / np.sqrt(c_in * k * k), (c_out, c_in, k, k)).astype(dtype)
    else:
        xs = (rng.normal(0, 1, (n, c_in)) + rng.normal(0, 3, c_in)).astype(dtype)
        weight = rng.normal(0, 1 / np.sqrt(c_in), (c_out, c_in)).astype(dtype)
    bias = rng.normal(0, 1, c_out).astype(dtype) if i % 4 else np.zeros(0, dtype)  # (0,): no bias
    gamma, beta = _params(rng, c_out, dtype)
    running_mean = rng.normal(0, 2, c_out).astype(dtype)
    running_var = (10.0 ** rng.uniform(-2, 1, c_out)).astype(dtype)
    kwargs = {"eps": [1e-5, 1e-3][i % 2]} if i % 3 else {}
    kind = (f"Conv2d({c_in}, {c_out}, kernel {weight.shape[-1]}) + BatchNorm2d" if conv
            else f"Linear({c_in}, {c_out}) + BatchNorm1d")
    label = (f"{np.dtype(dtype).name} {kind}" + ("" if bias.size else ", no bias before BN")
             + f", x of shape {xs.shape}" + _kw(kwargs))
    return Case(label, (xs, weight, bias, gamma, beta, running_mean, running_var), kwargs)


def torch_layers(weight, bias, gamma, beta, running_mean, running_var, eps=1e-5):
    """The Linear (or Conv2d, for a 4-D weight) and the eval-mode BatchNorm these arrays describe;
    an empty bias means a layer without one."""
    import torch
    t = torch.as_tensor
    conv = weight.ndim == 4
    c_out, c_in = weight.shape[:2]
    dtype = t(weight).dtype
    if conv:
        layer = torch.nn.Conv2d(c_in, c_out, weight.shape[-1], padding=weight.shape[-1] // 2,
                                bias=bias.size > 0, dtype=dtype)
        bn = torch.nn.BatchNorm2d(c_out, eps=eps, dtype=dtype)
    else:
        layer = torch.nn.Linear(c_in, c_out, bias=bias.size > 0, dtype=dtype)
        bn = torch.nn.BatchNorm1d(c_out, eps=eps, dtype=dtype)
    with torch.no_grad():
        layer.weight.copy_(t(weight))
        if bias.size:
            layer.bias.copy_(t(bias))
        for name, value in (("weight", gamma), ("bias", beta), ("running_mean", running_mean),
                            ("running_var", running_var)):
            getattr(bn, name).copy_(t(value))
    bn.eval()
    return layer, bn


def run_fold(fold):
    """fold_batchnorm as a function of arrays: build the layer and its BatchNorm, fold them
    with `fold`, and return what the folded layer outputs for x."""
    def folded_outputs(x, weight, bias, gamma, beta, running_mean, running_var, eps=1e-5):
        import torch
        layer, bn = torch_layers(weight, bias, gamma, beta, running_mean, running_var, eps)
        folded = fold(layer, bn)
        if not isinstance(folded, torch.nn.Module):
            raise TypeError(f"fold_batchnorm must return a torch.nn.Linear or Conv2d; got "
                            f"{type(folded).__name__}")
        with torch.no_grad():
            return folded(torch.as_tensor(x)).numpy()
    folded_outputs.__name__ = getattr(fold, "__name__", "fold_batchnorm")
    return folded_outputs


def _kw(kwargs):
    return "".join(f", {k}={v}" for k, v in kwargs.items())


def forward_cache(x, gamma, beta, eps):
    """The cache of a training-mode forward pass, exact in float64, stored in x's dtype."""
    mean, var = _exact_mean(x), _exact_variance(x)
    x_hat = _exact_normalise(x, mean, var, eps)
    dtype = x.dtype
    return {"x": x, "mean": mean.astype(dtype), "var": var.astype(dtype), "eps": eps,
            "x_hat": x_hat.astype(dtype), "gamma": gamma, "beta": beta}


def _gradient_case(rng, n, d, label, i):
    """A small float64 x, a formula f and a random dout shaped like f(x)."""
    n = max(n, 2)
    x = rng.standard_normal((n, d)) * rng.uniform(0.5, 2.0, d) + rng.normal(0, 1, d)
    if i % 2:
        f = Formula("tanh_layer", W=rng.normal(0, 1 / np.sqrt(d), (d, 3)), b=rng.normal(0, 0.5, 3))
    else:
        f = Formula("batchnorm", gamma=rng.normal(1, 0.5, d), beta=rng.normal(0, 1, d))
    dout = rng.standard_normal(f(x).shape)
    kwargs = {"h": [1e-5, 1e-4, 1e-6][i % 3]} if i % 4 else {}
    return Case(f"float64 x of shape {x.shape}, {f!r}, random dout" + _kw(kwargs), (f, x, dout), kwargs)


STEPS = 6  # forward passes in one sequence of batchnorm_layer_forward


def _steps_case(rng, x, label, i):
    """A sequence of batches (S, N, D) around x's feature means, and which steps train."""
    (n, d), dtype = x.shape, x.dtype
    n = max(n, 2)
    centre = x[0].astype(np.float64)  # x's offsets (up to 1e4), new spreads
    spread = 10.0 ** rng.uniform(-1, 1, d)
    drift = rng.normal(0, 0.3, (STEPS, 1, d)) * spread
    xs = (centre + drift + spread * rng.standard_normal((STEPS, n, d))).astype(dtype)
    training = np.array([True, True, False, True, False, False]) if i % 2 else rng.random(STEPS) < 0.6
    training[0] = True
    gamma, beta = _params(rng, d, dtype)
    kwargs = [{}, {"momentum": 0.5}, {"momentum": None}, {"momentum": 0.1, "eps": 1e-3}][i % 4]
    label = (f"{np.dtype(dtype).name} batches of shape {(n, d)}, steps "
             + "".join("T" if t else "E" for t in training) + " (T train, E eval)" + _kw(kwargs))
    return Case(label, (xs, training, gamma, beta), kwargs)


def run_steps(layer_forward):
    """batchnorm_layer_forward as a pure function of a whole sequence of steps, so it can be
    recorded and compared like the other pieces: a fresh state (torch's initial values),
    then one call per step; returns (ys (S, N, D), running_means (S, D), running_vars (S, D),
    num_batches_tracked (S,)) as they are after each step."""
    def steps(xs, training, gamma, beta, **kwargs):
        d = xs.shape[2]
        state = {"running_mean": np.zeros(d, xs.dtype), "running_var": np.ones(d, xs.dtype),
                 "num_batches_tracked": 0}
        ys, means, variances, counts = [], [], [], []
        for x, train in zip(xs, training):
            ys.append(np.asarray(layer_forward(np.array(x), gamma.copy(), beta.copy(), state,
                                               bool(train), **kwargs)))
            means.append(np.array(state["running_mean"]))
            variances.append(np.array(state["running_var"]))
            counts.append(int(state["num_batches_tracked"]))
        return np.stack(ys), np.stack(means), np.stack(variances), np.array(counts)
    steps.__name__ = getattr(layer_forward, "__name__", "batchnorm_layer_forward")
    return steps


def pure(piece, fn):
    """What is recorded and judged for a piece: fn itself, or a function of arrays built
    around it: a stateful piece run over a whole sequence of steps, fold_batchnorm's result
    applied to a batch."""
    wrap = {"batchnorm_layer_forward": run_steps, "fold_batchnorm": run_fold,
            "record_layer_inputs": run_recorder, "gradient_norms": run_gradient_norms,
            "BatchNormFunction": run_function, "BatchNorm1d": run_module, "BatchNorm2d": run_module}.get(piece)
    return wrap(fn) if wrap else fn


# ---------------------------------------------------------------- tolerances

def _f64(a):
    return np.asarray(a, dtype=np.float64)


def _eps_of(case, position=3):
    return case.kwargs.get("eps", case.args[position] if len(case.args) > position else 1e-5)


def allowed_error(piece, case, exact, what="out", exact_all=None):
    """Largest |answer - exact| a correct implementation may show, element-wise. what: which
    output (for pieces with several); exact_all: all the exact outputs."""
    unit = UNIT[np.dtype(case.dtype)]
    a = [_f64(v) if isinstance(v, (np.ndarray, float, int)) else v for v in case.args]
    if what in ("mean", "var"):  # cache entries of batchnorm_forward
        piece = {"mean": "batch_mean", "var": "batch_variance"}[what]
    if piece == "batch_mean":
        roundoff = np.abs(a[0]).max(axis=0)
    elif piece == "batch_variance":
        # two-pass error: the mean's rounding error enters squared; the sum of n squares errs by
        # up to (n + 2) eps/2 relative (n - 1 additions in any order, the square, the difference,
        # the division): more than the dtype's unit once n passes ~14 in float32
        relative = max(unit, (a[0].shape[0] + 2) * float(np.finfo(case.dtype).eps) / 2)
        return relative * np.abs(exact) + (unit * np.abs(a[0]).max(axis=0)) ** 2
    elif piece == "normalise":
        x, mean, var = a[:3]
        roundoff = np.maximum(np.abs(x), np.abs(mean)) / np.sqrt(var + _eps_of(case))
    elif piece == "scale_and_shift":
        x_hat, gamma, beta = a
        roundoff = np.abs(gamma * x_hat) + np.abs(beta)
    elif piece == "batchnorm_forward":
        x, gamma, beta = a
        roundoff = _x_hat_error(np.abs(x).max(axis=0), x.var(axis=0), _eps_of(case), unit)
        if what == "out":
            roundoff = np.abs(gamma) * roundoff + np.abs(beta)
    elif piece in BACKWARD:
        return unit * (np.abs(exact) + _backward_roundoff(case, what))
    elif piece == "numerical_gradient":
        return _central_difference_error(*case.args, case.kwargs.get("h", 1e-5), exact)
    elif piece == "update_running_stats":
        old, new = (a[0], a[2]) if what == "new running_mean" else (a[1], a[3])
        roundoff = np.abs(old) + np.abs(new)
    elif piece == "update_running_stats_torch":
        x = a[2]
        if what == "new running_var":  # a two-pass variance of the batch, then the blend
            return unit * (np.abs(exact) + np.abs(a[1])) + (unit * np.abs(x).max(axis=0)) ** 2
        roundoff = np.abs(a[0]) + np.abs(x).max(axis=0)
    elif piece == "batchnorm_inference":
        x, gamma, beta, mean, var = a
        roundoff = np.abs(gamma) * np.maximum(np.abs(x), np.abs(mean)) / np.sqrt(var + _eps_of(case, 5)) \
            + np.abs(beta)
    elif piece == "init_running_stats":
        return 0.0
    elif piece == "layer_norm":
        x, gamma, beta = a
        roundoff = _norm_roundoff(x, gamma, beta, _eps_of(case), unit)
    elif piece == "group_norm":
        x, groups, gamma, beta = a
        shape = (1, -1) + (1,) * (x.ndim - 2)
        n = x.shape[0]
        per_group = _norm_roundoff(x.reshape(n, int(groups), -1), 1.0, 0.0, _eps_of(case, 4), unit)
        roundoff = np.abs(gamma.reshape(shape)) * per_group.reshape(x.shape) + np.abs(beta.reshape(shape))
    elif piece == "fold_batchnorm":
        roundoff = _fold_roundoff(case)
    elif piece == "batchnorm_layer_forward":
        return _steps_allowed(case, exact, what, unit, exact_all)
    elif piece in MEASURES or piece == "record_layer_inputs":
        return _measure_allowed(piece, case, exact, what, unit)
    elif piece == "BatchNormFunction":
        x, gamma, beta, dout = case.args
        if what == "y":
            forward = Case(case.label, (x, gamma, beta), case.kwargs)
            return allowed_error("batchnorm_forward", forward, exact)
        cache = forward_cache(x, gamma, beta, case.kwargs.get("eps", 1e-5))
        name = {"dweight": "dgamma", "dbias": "dbeta"}.get(what, what)
        return allowed_error("batchnorm_backward", Case(case.label, (dout, cache)), exact, name)
    elif piece in MODULES:
        return _module_allowed(case, exact, what, unit, exact_all)
    else:
        raise KeyError(piece)
    return unit * (np.abs(exact) + roundoff)


def _central_difference_error(f, x, dout, h, exact):
    """How far a correct centred difference (L(x + h e_i) - L(x - h e_i)) / 2h, L = sum(f(x) * dout),
    computed in float64, may land from the exact gradient (torch.autograd), element-wise.

    truncation: with phi(s) = L(x + s e_i), Taylor's remainder of the centred difference is
      h^2/12 (phi3(s1) + phi3(s2)), s1 in (0, h), s2 in (-h, 0), phi3 the third derivative:
      at most h^2/6 max|phi3| over [-h, h] (Formula.third_derivatives, at s = -h, 0, h: the
      cases' f bend on the scale of sqrt(var + 1e-5) >= 3e-3 or of 1/|W|, >= 30 h, so these
      samples give the maximum to a fraction of a per cent). A correct answer shows this term
      in full (it is h^2/6 phi3(0) + O(h^4)), so it is counted three times: correct answers are
      to stay well under their allowance (the key sweep asks for half at most).
    rounding: each float64 L carries ~eps * sum|dout| * (|f| + the size f's own rounding scales
      with); the difference of two of them is divided by 2h. The steps x_i +- h are rounded
      too: the step taken is 2h to within eps |x_i|, a relative eps |x_i| / 2h.
    A one-sided difference is off by h/2 |phi''|, orders of magnitude more than h^2/3 |phi3|
    on most inputs; dividing by h instead of 2h doubles the answer."""
    eps = float(np.finfo(np.float64).eps)
    x, dout = _f64(x), _f64(dout)
    fx = f(x)
    if f.kind == "batchnorm":  # (x - mean) / std: the mean's and the variance's rounding
        std = np.sqrt(x.var(axis=0) + 1e-5)
        size = np.abs(f.params["gamma"]) * np.abs(x).max(axis=0) / std * (1 + np.abs(x - x.mean(axis=0)) / std) \
            + np.abs(f.params["beta"])
    else:  # tanh(x @ W + b): the sum's rounding, times tanh's slope
        size = (1 - fx ** 2) * (np.abs(x) @ np.abs(f.params["W"]) + np.abs(f.params["b"]))
    rounding_of_l = TOLERANCE_K * eps * (np.abs(dout) * (np.abs(fx) + size)).sum()
    rounding = rounding_of_l / h + TOLERANCE_K * eps * np.abs(x) / (2 * h) * np.abs(exact)
    third = np.max([np.abs(f.third_derivatives(x, dout, s)) for s in (-h, 0.0, h)], axis=0)
    return 3 * h ** 2 / 6 * third + rounding


def _x_hat_error(biggest, var, eps, unit):
    """x_hat's rounding error, in units of `unit`: the mean's error (~unit * max|x|) shifts every
    x_hat by ~that / std, and the variance's (a squared term) changes its scale."""
    std = np.sqrt(var + eps)
    return biggest * (1 + unit * biggest / std) / std


def _norm_roundoff(x, gamma, beta, eps, unit):
    """Normalising over the last axis of x (gamma, beta broadcast over it): the error a correct
    float answer carries scales with the group's largest |x| over its standard deviation."""
    x_hat_err = _x_hat_error(np.abs(x).max(axis=-1, keepdims=True), x.var(axis=-1, keepdims=True),
                             eps, unit)
    return np.abs(gamma) * np.broadcast_to(x_hat_err, x.shape) + np.abs(beta)


def _fold_roundoff(case):
    """The folded layer sums |x| * |weight| terms, each scaled by |gamma| / std."""
    import torch
    x, weight, bias, gamma, beta, mean, var = (torch.as_tensor(_f64(a)) for a in case.args)
    scale = (gamma / torch.sqrt(var + case.kwargs.get("eps", 1e-5))).abs()
    if weight.dim() == 4:
        sums = torch.nn.functional.conv2d(x.abs(), weight.abs(), padding=weight.shape[-1] // 2)
        shape = (1, -1, 1, 1)
    else:
        sums, shape = x.abs() @ weight.abs().T, (1, -1)
    b = bias.abs() if bias.numel() else torch.zeros_like(mean)
    return ((sums + (b + mean.abs()).reshape(shape)) * scale.reshape(shape) + beta.abs().reshape(shape)).numpy()


def _backward_roundoff(case, what):
    """Sizes the rounding error of a correct backward pass scales with, per output."""
    dout, cache = (_f64(case.args[0]), {k: _f64(v) for k, v in case.args[1].items()})
    x, x_hat, gamma = cache["x"], cache["x_hat"], cache["gamma"]
    n = dout.shape[0]
    if what == "dbeta":
        return np.abs(dout).sum(axis=0)
    inv_std = 1 / np.sqrt(cache["var"] + cache["eps"])
    # x - mean recomputed from the cache carries ~unit * max|x| of error, i.e. in x_hat units:
    x_hat_err = np.abs(x).max(axis=0) * inv_std
    if what == "dgamma":
        return (np.abs(dout) * (np.abs(x_hat) + x_hat_err)).sum(axis=0)
    # dx = gamma * inv_std * (dout - mean(dout) - x_hat * mean(dout * x_hat)): an error e in x_hat
    # reaches it as e * mean(dout * x_hat), as x_hat * mean(dout * e) and as e * mean(dout * e); the
    # last one rules where x_hat ~ 0 (a feature whose values are equal in float32, at an offset)
    e = UNIT[np.dtype(case.dtype)] * x_hat_err
    terms = np.abs(dout) + np.abs(dout).mean(axis=0) \
        + (np.abs(x_hat) + x_hat_err) * np.abs(dout * x_hat).sum(axis=0) / n \
        + (np.abs(x_hat) + e) * x_hat_err * np.abs(dout).mean(axis=0)
    return np.abs(gamma) * inv_std * terms


def _steps_allowed(case, exact, what, unit, exact_all):
    xs, training, gamma, beta = (_f64(a) for a in case.args)
    eps = case.kwargs.get("eps", 1e-5)
    biggest = np.abs(xs).max(axis=(0, 1))
    if what == "num_batches_tracked":
        return 0.0
    if what == "running_mean":
        return unit * (np.abs(exact) + 1 + STEPS * biggest)
    if what == "running_var":
        return unit * (np.abs(exact) + 1) * STEPS + STEPS * (unit * biggest) ** 2
    # y: each step normalises with the batch's statistics (train) or the running ones (eval)
    variances = _f64(exact_all[2])
    allowed = []
    for s, (x, train) in enumerate(zip(xs, training)):
        if train:
            var = x.var(axis=0)
        else:
            var = variances[s - 1] if s else np.ones_like(biggest)
        x_hat_err = _x_hat_error(biggest, var, eps, unit)
        allowed.append(unit * (np.abs(exact[s]) + np.abs(gamma) * x_hat_err * (1 + STEPS * (not train))
                               + np.abs(beta)))
    return np.stack(allowed)


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


def compare(name, got, exact, allowed, case):
    """Raise Failure unless `got` matches `exact` (float64) within `allowed`."""
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
    before = case.fresh_args()
    out, error = run(fn, args, case.kwargs)
    if error is not None:
        raise Failure(error[1], case, error[0])
    for i, key in changed_inputs(args, before):
        what = f"argument {i + 1}" + (f" (its entry '{key}')" if key else "")
        raise Failure(f"{_name(fn)} changed its input {what} in place (e.g. `x -= mean`); "
                      "write results into new arrays instead: the caller still needs its inputs",
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
    if piece in MODULES:
        _judge_module(piece, out, exact, case)
        return
    if piece == "record_layer_inputs":
        _judge_recorded(out, exact, case)
        return
    if piece in OUTPUTS:
        names = OUTPUTS[piece]
        if not (isinstance(out, (tuple, list)) and len(out) == len(names)):
            raise Failure(f"{piece} must return a tuple ({', '.join(names)}); got {_describe(out)}",
                          case, "type")
        for name, got, want in zip(names, out, exact):
            compare(name, got, want, allowed_error(piece, case, want, name, exact), case)
        return
    if piece == "init_running_stats":
        _judge_state(out, exact, case)
        return
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


def _describe(out):
    if isinstance(out, (tuple, list)):
        return f"a {type_name(out)} of {len(out)}"
    return type_name(out)


def _judge_state(out, exact, case):
    if not isinstance(out, dict):
        raise Failure(f"init_running_stats must return a dict; got {type_name(out)}", case, "type")
    missing = [k for k in STATE_KEYS if k not in out]
    if missing:
        raise Failure(f"the state is missing the key(s) {missing}; it needs exactly {list(STATE_KEYS)}",
                      case, "state_keys")
    for key in STATE_KEYS:
        compare(f"state['{key}']", out[key], exact[key], 0.0, case)
    for key in ("running_mean", "running_var"):
        got = np.dtype(getattr(out[key], "dtype", None) or type(out[key]))
        if got != case.dtype:
            raise Failure(f"state['{key}'] has dtype {got}, expected {case.dtype}: create it with "
                          "the dtype argument", case, "dtype")


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


def _exact_inference(x, gamma, beta, running_mean, running_var, eps=1e-5):
    return _exact_scale_and_shift(_exact_normalise(x, running_mean, running_var, eps), gamma, beta)


def _exact_torch_update(running_mean, running_var, x, momentum=0.1, batches_seen=0):
    w = 1.0 / (batches_seen + 1) if momentum is None else momentum
    x = _f64(x)
    unbiased = x.var(axis=0, ddof=1)
    return ((1 - w) * _f64(running_mean) + w * x.mean(axis=0),
            (1 - w) * _f64(running_var) + w * unbiased)


# The earlier pieces in float64 numpy: the trusted parts while a piece is recorded in the
# grading sandbox, where torch's BatchNorm kernels are switched off (bncourse.tripwire).
EXACT_STEPS = type("ExactSteps", (), {
    "batch_mean": staticmethod(_exact_mean), "batch_variance": staticmethod(_exact_variance),
    "normalise": staticmethod(_exact_normalise), "scale_and_shift": staticmethod(_exact_scale_and_shift),
    "batchnorm_inference": staticmethod(_exact_inference),
    "update_running_stats_torch": staticmethod(_exact_torch_update)})


def _keep_dtype(trusted, name):
    """Trusted maths computes in float64; hand back the input's dtype, as a learner's would."""
    def part(*args, **kwargs):
        dtype = np.asarray(args[0]).dtype
        out = trusted(*args, **kwargs)
        if isinstance(out, tuple):
            return tuple(np.asarray(o).astype(dtype) for o in out)
        return np.asarray(out).astype(dtype)
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
            namespace[n] = TRUSTED_CLASSES[n]() if n in TRUSTED_CLASSES else _keep_dtype(getattr(trusted, n), n)
        yield
    finally:
        if namespace is not None:
            namespace.update(saved)


# ---------------------------------------------------------------- lessons 00 and 06: measurements

# Pieces that measure something: plain functions of arrays (record_layer_inputs and
# gradient_norms take a torch model, built from arrays by run_recorder / run_gradient_norms).
MEASURES = ("activation_summary", "shift_per_step", "largest_stable_lr", "gradient_norms",
            "effective_smoothness", "batch_mean_noise", "record_layer_inputs")


def _mlp_params(rng, widths, dtype):
    """Weights (out, in) and biases of an MLP with these layer widths, as torch.nn.Linear keeps them."""
    params = {}
    for k, (w_in, w_out) in enumerate(zip(widths[:-1], widths[1:])):
        params[f"w{k}"] = rng.normal(0, 1.5 / np.sqrt(w_in), (w_out, w_in)).astype(dtype)
        params[f"b{k}"] = rng.normal(0, 0.5, w_out).astype(dtype)
    return params


def _measure_case(piece, rng, x, label, i):
    (n, d), dtype = x.shape, x.dtype
    if piece == "activation_summary":
        return Case(label.replace(" x ", " a "), (x,))
    if piece == "shift_per_step":
        stds = (10.0 ** rng.uniform(-2, 1, (n, d))).astype(dtype)
        return Case(f"{np.dtype(dtype).name} means and stds of shape {(n, d)}", (x, stds))
    if piece == "largest_stable_lr":
        k = int(rng.integers(1, 10))
        lrs = 10.0 ** np.linspace(-3, 1, k) * rng.uniform(0.5, 2.0)
        start = float(rng.uniform(1.5, 3.0))
        final = start * rng.uniform(0.05, 0.9, k)
        diverge = int(rng.integers(0, k + 1))  # rates from here on diverge...
        final[diverge:] = rng.choice([np.nan, np.inf, start * 1.5, start], k - diverge)
        if i % 3 == 0 and k - diverge > 2:
            final[k - 1] = start * 0.5  # ...except, by luck, the largest one
        if i % 5 == 4:
            final[:] = np.nan  # nothing trained
        order = rng.permutation(k) if i % 2 else np.arange(k)
        return Case(f"{k} rates" + (", shuffled" if i % 2 else ", ascending")
                    + ("" if i % 5 != 4 else ", none trained"), (lrs[order], final[order], start))
    if piece == "effective_smoothness":
        p, k = d * 3, int(rng.integers(1, 6))
        g0 = (x.reshape(-1)[:p] if x.size >= p else rng.normal(0, 1, p)).astype(dtype)
        g0 = (g0 + rng.normal(0, 1, p)).astype(dtype)  # never all zero
        etas = (10.0 ** rng.uniform(-3, 0, k)).astype(dtype)
        gs = (g0 + rng.normal(0, 1, (k, p)) * etas[:, None] * rng.uniform(0.1, 10, (k, 1))).astype(dtype)
        return Case(f"{np.dtype(dtype).name} gradients of {p} weights, {k} step sizes", (g0, gs, etas))
    if piece == "batch_mean_noise":
        b = int(rng.integers(1, max(n // 2, 1) + 1))
        return Case(label + f", batch_size={b}", (x, b))
    depth = [1, 2, 3, 5][i % 4]  # record_layer_inputs, gradient_norms: an MLP on x
    n = max(n, 2)
    widths = [d] + [int(rng.integers(2, 9)) for _ in range(depth)] + [int(rng.integers(2, 6))]
    x = rng.normal(0, 1, (n, d)).astype(dtype) * rng.uniform(0.5, 2.0, d).astype(dtype)
    params = _mlp_params(rng, widths, dtype)
    batchnorm = bool(i % 2 == 0 or dtype == np.float64 and i % 3 == 0)
    kwargs = {"batchnorm": batchnorm} if batchnorm else {}
    what = (f"{np.dtype(dtype).name} MLP with layer widths {widths}" + (" and BatchNorm in train mode"
            if batchnorm else "") + f", x of shape {x.shape}")
    if piece == "record_layer_inputs":
        return Case(what, (x, params), kwargs)
    labels = rng.integers(0, widths[-1], n).astype(np.int64)
    return Case(what, (x, labels, params), kwargs)


def torch_mlp(params, batchnorm=False, activation="tanh"):
    """The MLP these arrays describe, nested so hooks must reach inside blocks:
    Sequential(Sequential(Sequential(Linear, [BatchNorm1d], act), ...), Linear)."""
    import torch
    from torch import nn
    count = len([k for k in params if k.startswith("w")])
    act = {"tanh": nn.Tanh, "relu": nn.ReLU}[activation]
    layers = []
    with torch.random.fork_rng(devices=[]):  # Linear's random init: leave the caller's generator alone
        for k in range(count):
            w = torch.as_tensor(params[f"w{k}"])
            linear = nn.Linear(w.shape[1], w.shape[0], dtype=w.dtype)
            with torch.no_grad():
                linear.weight.copy_(w)
                linear.bias.copy_(torch.as_tensor(params[f"b{k}"]))
            norm = [nn.BatchNorm1d(w.shape[0], dtype=w.dtype)] if batchnorm else []
            layers.append(nn.Sequential(linear, *norm, act()) if k < count - 1 else linear)
    return nn.Sequential(nn.Sequential(*layers[:-1]), layers[-1]).train()


def run_recorder(record):
    """record_layer_inputs as a function of arrays: what it returns for the MLP `params`
    describes, preceded by how many forward hooks it left behind."""
    def recorded(x, params, batchnorm=False):
        import torch
        model = torch_mlp(params, batchnorm)
        got = record(model, torch.as_tensor(x))
        if not isinstance(got, (list, tuple)):
            raise TypeError(f"record_layer_inputs must return a list of arrays; got {type(got).__name__}")
        left = sum(len(m._forward_hooks) for m in model.modules())
        return (np.array(left),) + tuple(got)
    recorded.__name__ = getattr(record, "__name__", "record_layer_inputs")
    return recorded


def run_gradient_norms(norms_fn):
    """gradient_norms as a function of arrays: its answer for the MLP `params` describes, whose
    .grad fields hold stale gradients (as after a training step), and the largest change it made
    to a parameter."""
    def measured(x, labels, params, batchnorm=False):
        import torch
        model = torch_mlp(params, batchnorm, activation="relu")
        stale = torch.Generator().manual_seed(0)
        for p in model.parameters():
            p.grad = torch.randn(p.shape, generator=stale, dtype=p.dtype)
        before = [p.detach().clone() for p in model.parameters()]
        got = norms_fn(model, torch.as_tensor(x), torch.as_tensor(labels))
        moved = max(float((p.detach() - b).abs().max()) for p, b in zip(model.parameters(), before))
        return got, np.array(moved)
    measured.__name__ = getattr(norms_fn, "__name__", "gradient_norms")
    return measured


def _mlp_roundoff(x, params, batchnorm, unit):
    """Per Linear input, the size its rounding error scales with: |x| through |W| @ . + |b|,
    divided by the spread wherever BatchNorm normalises (tanh and ReLU do not amplify)."""
    h, r, out = _f64(x), np.abs(_f64(x)), []
    count = len([k for k in params if k.startswith("w")])
    for k in range(count):
        out.append(r)
        w, b = _f64(params[f"w{k}"]), _f64(params[f"b{k}"])
        z = h @ w.T + b
        r = r @ np.abs(w).T + np.abs(b)
        if batchnorm and k < count - 1:
            var = z.var(axis=0)
            r = _x_hat_error(r.max(axis=0), var, 1e-5, unit) * np.ones_like(z)
            z = (z - z.mean(axis=0)) / np.sqrt(var + 1e-5)
        h = np.tanh(z)
    return out


def _measure_allowed(piece, case, exact, what, unit):
    a = [_f64(v) if isinstance(v, np.ndarray) else v for v in case.args]
    if piece == "activation_summary":
        big = np.abs(a[0]).max()
        var_err = unit * exact[1] ** 2 + (unit * big) ** 2
        std_err = min(var_err / (2 * exact[1]), np.sqrt(var_err)) if exact[1] > 0 else np.sqrt(var_err)
        allowed = unit * (np.abs(exact) + big)
        allowed[1] = unit * exact[1] + std_err
        return allowed
    if piece == "shift_per_step":
        means, stds = a
        return unit * (np.abs(exact) + (np.abs(means[1:]) + np.abs(means[:-1])) / stds[:-1])
    if piece == "largest_stable_lr":
        return unit * np.abs(exact)
    if piece == "effective_smoothness":
        g0, gs, etas = a
        g_norm = np.linalg.norm(g0)
        return unit * (np.abs(exact) + np.max((np.linalg.norm(gs, axis=1) + g_norm) / (etas * g_norm)))
    if piece == "batch_mean_noise":
        return unit * (np.abs(exact) + np.abs(a[0]).max())
    if piece == "gradient_norms":
        if what != "the gradient norms":
            return 0.0
        return unit * np.abs(exact) + _gradient_norms_error(*case.args, case.kwargs.get("batchnorm", False), unit)
    # record_layer_inputs: `what` is the layer's position
    return unit * (np.abs(exact) + _mlp_roundoff(case.args[0], case.args[1],
                                                 case.kwargs.get("batchnorm", False), unit)[what])


def _gradient_norms_error(x, labels, params, batchnorm, unit):
    """The rounding error a correct gradient_norms may carry, per Linear: a first-order error
    bound carried through the computation as it runs, each step adding `unit` times the sizes
    it sums and passing on what it received, amplified as the step amplifies it.

    forward: z = h W^T + b errs by e_h |W|^T + unit (|h| |W|^T + |b|); BatchNorm's x_hat by
      (the centred error) / std plus |x_hat| times half the variance's relative error; ReLU
      passes its input's error, and where |its input| is within that error it may switch (a
      correct answer may take either side: the whole upstream gradient there is allowed).
    loss: d logits = (softmax - onehot) / N errs by p (e_z + sum p e_z) / N.
    backward: dW = dz^T h errs by |dz|^T e_h + e_dz^T |h| (+ rounding); dh = dz W likewise;
      BatchNorm's dx = (d - mean(d) - x_hat mean(d x_hat)) / std passes on e_d through the same
      three terms, plus x_hat's own error times the terms it multiplies. That dx is a
      difference of nearly equal terms (with N = 2 it is (d1 - d2)/2 times eps / (var + eps)):
      its error, not its size, is what the terms' sizes set.
    A norm errs by at most the Frobenius norm of its matrix's error, plus its own rounding.
    The values (activations, upstream gradients) are torch's float64 forward and autograd on
    the same model."""
    import torch
    import torch.nn.functional as F

    from bncourse import tripwire
    params = {k: _f64(v) for k, v in params.items()}
    last = len([k for k in params if k.startswith("w")]) - 1
    with tripwire.allowed():  # the model torch_mlp builds, in torch's functional form
        inputs, outputs, normed = [torch.tensor(_f64(x), requires_grad=True)], [], []
        for k in range(last + 1):
            outputs.append(F.linear(inputs[k], torch.as_tensor(params[f"w{k}"]), torch.as_tensor(params[f"b{k}"])))
            if k == last:
                break
            if batchnorm:
                normed.append(F.batch_norm(outputs[k], None, None, training=True, eps=1e-5))
            inputs.append(F.relu(normed[k] if batchnorm else outputs[k]))
        for t in inputs[1:] + outputs + normed:
            t.retain_grad()
        F.cross_entropy(outputs[last], torch.as_tensor(labels)).backward()

    def value(t):
        return np.zeros(0) if t is None else t.detach().numpy()
    h, z = [value(t) for t in inputs], [value(t) for t in outputs]  # each Linear's input and output
    dz = [value(t.grad) for t in outputs]
    dh = [None] + [value(t.grad) for t in inputs[1:]]
    d_norm = [value(t.grad) for t in normed]  # upstream of each BatchNorm
    weights = [np.abs(params[f"w{k}"]) for k in range(last + 1)]

    e_h, forward = [np.zeros_like(h[0])], []
    for k in range(last + 1):
        e_z = e_h[k] @ weights[k].T + unit * (np.abs(h[k]) @ weights[k].T + np.abs(params[f"b{k}"]))
        if k == last:
            break
        if batchnorm:
            var = z[k].var(axis=0)
            std = np.sqrt(var + 1e-5)
            x_hat = (z[k] - z[k].mean(axis=0)) / std
            e_c = e_z + e_z.mean(axis=0) + unit * np.abs(z[k]).max(axis=0)
            rel_var = (2 * (np.abs(z[k] - z[k].mean(axis=0)) * e_c).mean(axis=0) + e_c.max(axis=0) ** 2) \
                / (var + 1e-5) + unit
            e_pre = e_c / std + np.abs(x_hat) * rel_var / 2 + unit * np.abs(x_hat)
            pre = x_hat
            forward.append((pre, e_pre, x_hat, std, rel_var))
        else:
            pre, e_pre = z[k], e_z
            forward.append((pre, e_pre, None, None, None))
        either = np.abs(pre) <= e_pre  # ReLU may switch
        e_h.append(e_pre * ((pre > 0) | either))
    n = z[last].shape[0]
    p = np.exp(z[last] - z[last].max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    onehot = np.eye(p.shape[1])[np.asarray(labels)]
    e_dz = (p * (e_z + (p * e_z).sum(axis=1, keepdims=True)) + unit * (p + onehot)) / n

    allowed = np.zeros(last + 1)
    for k in range(last, -1, -1):
        g = np.abs(dz[k])
        e_dw = g.T @ e_h[k] + e_dz.T @ np.abs(h[k]) + unit * g.T @ np.abs(h[k])
        allowed[k] = np.sqrt((e_dw ** 2).sum()) + unit * np.sqrt(((g.T @ np.abs(h[k])) ** 2).sum())
        if k == 0:
            break
        e_up = e_dz @ weights[k] + unit * g @ weights[k]
        pre, e_pre, x_hat, std, rel_var = forward[k - 1]
        either = np.abs(pre) <= e_pre
        e_d = e_up * ((pre > 0) | either) + np.abs(dh[k]) * either
        if x_hat is None:
            e_dz = e_d
            continue
        d, a = np.abs(d_norm[k - 1]), np.abs(x_hat)
        e_dz = (e_d + e_d.mean(axis=0) + a * (a * e_d).mean(axis=0)
                + e_pre * np.abs((d_norm[k - 1] * x_hat).mean(axis=0)) + a * (d * e_pre).mean(axis=0)
                + unit * (d + d.mean(axis=0) + a * (d * a).mean(axis=0))) / std \
            + np.abs(dz[k - 1]) * rel_var / 2
    return allowed


def _judge_recorded(out, exact, case):
    """record_layer_inputs: no hooks left behind, then one right input per Linear call."""
    if not isinstance(out, (tuple, list)) or len(out) < 1:
        raise Failure(f"record_layer_inputs must return a list of arrays; got {_describe(out)}", case, "type")
    left = int(np.asarray(out[0]))
    if left:
        raise Failure(f"{left} forward hook(s) were still registered on the model after the call: "
                      "keep each handle register_forward_hook returns and call handle.remove()", case,
                      "hooks_left")
    got, want = list(out[1:]), list(exact[1:])
    if len(got) != len(want):
        raise Failure(f"record_layer_inputs returned {len(got)} arrays; the model ran {len(want)} "
                      "nn.Linear layers (some sit inside nested blocks: use model.modules())", case, "count")
    for k, (g, w) in enumerate(zip(got, want)):
        compare(f"the input of nn.Linear #{k + 1}", g, w, allowed_error("record_layer_inputs", case, w, k), case)


# ---------------------------------------------------------------- lesson 05: torch modules

MODULES = ("BatchNorm1d", "BatchNorm2d")
MODULE_STEPS = 4
MODULE_OUTPUTS = ("layout", "errors", "initial weight and bias", "y", "dx", "dweight", "dbias", "running_mean",
                  "running_var",
                  "num_batches_tracked", "after reset_running_stats()", "state_dict loaded into torch's module",
                  "eval output after loading torch's state_dict")


def _module_case(piece, rng, x, i):
    """A matrix of configurations: affine on/off, tracking on/off, momentum 0.1 / 0.5 / None, 2-D,
    3-D and 4-D inputs, float32 and float64 with offsets, few and many values per channel, an
    empty batch; each run over MODULE_STEPS train/eval steps with random upstream gradients."""
    dtype = x.dtype
    typical = float(np.median(np.abs(x)))
    offset = 1e4 if typical > 3000 else 1e3 if typical > 100 else 0.0  # keep x's offset
    n = 0 if i == 5 else max(x.shape[0] % 9, 2)  # case 5: an empty batch
    c = int(rng.integers(1, 6))
    spatial = ([(2, 3), (1, 1), (16, 16), (3, 1)] if piece == "BatchNorm2d" else [(), (5,), (), (1,)])[i % 4]
    config = {"affine": (i // 2) % 2 == 0, "track_running_stats": (i // 4) % 3 != 2,
              "momentum": [0.1, 0.5, None][i % 3]}
    if i % 5 == 3:
        config["eps"] = 1e-3
    if config["affine"] and i % 5 == 4:
        config["bias"] = False  # torch 2.13's keyword-only bias=: a weight, no bias parameter
    training = np.array([[1, 1, 0, 1], [1, 0, 1, 0], [1, 1, 1, 0], [0, 1, 0, 1]][i % 4], bool)
    positions = int(np.prod(spatial, dtype=int))
    rows = make_batch(rng, MODULE_STEPS * n * positions, c, dtype, offset, constant_cols=int(i % 7 == 0 and c > 1))
    xs = np.moveaxis(rows.reshape((MODULE_STEPS, n) + spatial + (c,)), -1, 2)
    douts = rng.standard_normal(xs.shape).astype(dtype)
    loaded = config["affine"] and i % 3 != 1  # else weight and bias keep their initial 1 and 0
    weight, bias = _params(rng, c, dtype) if loaded else (np.zeros(0, dtype),) * 2
    state = {}  # a torch module's state_dict to load: this configuration's keys
    if config["affine"]:
        state["weight"], state["bias"] = _params(rng, c, dtype)
    if not config.get("bias", True):  # (drawn all the same: the other cases stay as they were)
        bias = np.zeros(0, dtype)
        del state["bias"]
    if config["track_running_stats"]:
        state["running_mean"] = rng.normal(0, 1, c).astype(dtype) * np.abs(rows).max(initial=1)
        state["running_var"] = (rows.var(axis=0) if n else np.ones(c)) * rng.uniform(0.5, 2, c).astype(dtype)
        state["running_var"] = state["running_var"].astype(dtype) + dtype.type(0.1)
        state["num_batches_tracked"] = np.array(int(rng.integers(0, 50)))
    label = (f"{piece}({c}{_kw(config)}), {np.dtype(dtype).name} batches of shape {xs.shape[1:]}"
             + (f" offset by ~{offset:g}" if offset else "")
             + (", parameters at their initial values" if config["affine"] and not loaded else "") + ", steps "
             + "".join("T" if t else "E" for t in training) + " (T train, E eval)")
    return Case(label, (xs, training, douts, weight, bias, state), config)


# A module's text answers (its layout, its errors) travel as uint8 arrays, like every other
# answer; no numeric answer is ever uint8.
def encode_text(s):
    return np.frombuffer(s.encode(), dtype=np.uint8).copy()


def is_text(a):
    return np.asarray(a).dtype == np.uint8


def decode_text(a):
    return bytes(np.asarray(a, np.uint8)).decode(errors="replace")


def _layout(module):
    """Names, shapes and dtypes of a module's parameters and buffers, and its state_dict keys."""
    def listing(pairs):
        return ", ".join(sorted(f"{n} {tuple(v.shape)} {str(v.dtype).replace('torch.', '')}" for n, v in pairs))
    none = [n for n in ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")
            if n in module._parameters and module._parameters[n] is None
            or n in module._buffers and module._buffers[n] is None]
    return (f"parameters: {listing(module.named_parameters()) or 'none'}; "
            f"buffers: {listing(module.named_buffers()) or 'none'}; "
            f"registered as None: {', '.join(sorted(none)) or 'none'}; "
            f"state_dict keys: {', '.join(sorted(module.state_dict())) or 'none'}")


def _bad_inputs(piece, c):
    """(what, shape, training, constructor changes) of inputs torch refuses (or accepts) with a
    clear error."""
    if piece == "BatchNorm2d":
        dims = [("3-D input", (2, c, 3)), ("5-D input", (2, c, 2, 2, 2))]
        single, fine = (1, c, 1, 1), (2, c, 2, 2)
    else:
        dims = [("1-D input", (c,)), ("4-D input", (2, c, 2, 2))]
        single, fine = (1, c), (4, c)
    return [(what, shape, True, {}) for what, shape in dims] + [
        ("one value per channel in training", single, True, {}),
        ("one value per channel in eval", single, False, {}),
        ("eps=0 in training", fine, True, {"eps": 0.0}),
        ("eps=-1e-5 in training", fine, True, {"eps": -1e-5})]


def _errors(piece, build, c, dtype):
    import torch
    found = []
    for what, shape, train, changes in _bad_inputs(piece, c):
        module = build(dtype, **changes).train(train)
        try:
            module(torch.ones(shape, dtype=dtype))
            found.append(f"{what}: no error")
        except Exception as e:
            found.append(f"{what}: {type(e).__name__}")
    return "; ".join(found)


def _flat_state(module):
    return np.concatenate([np.asarray(v.detach(), np.float64).reshape(-1) for v in module.state_dict().values()]
                          or [np.zeros(0)])


def torch_module_class(piece):
    import torch
    return {"BatchNorm1d": torch.nn.BatchNorm1d, "BatchNorm2d": torch.nn.BatchNorm2d}[piece]


def run_module(cls, exact=False, piece=None):
    """A BatchNorm module class as a function of arrays: build it with `config`, load the
    initial weight and bias, run the steps (train or eval, forward, backward with dout) and
    return what it gives at each step, its layout and errors, and two state_dict round trips
    through torch's own class. exact: compute in float64 (the layout still in the case's dtype)."""
    piece = piece or getattr(cls, "__name__", "BatchNorm1d")
    piece = piece if piece in MODULES else "BatchNorm1d"

    def module_steps(xs, training, douts, start_weight, start_bias, state, **config):
        # (start_*: the values to load; config's own bias= is the constructor's switch)
        import torch
        c, dtype = xs.shape[2], torch.as_tensor(xs).dtype
        compute = torch.float64 if exact else dtype

        def build(dt, **changes):
            return cls(c, dtype=dt, **{**config, **changes})

        def grad_of(module, name):
            p = getattr(module, name, None)
            if p is None:
                return np.zeros(0)
            return np.full(c, np.nan) if p.grad is None else p.grad.detach().numpy().copy()

        def buffer_of(module, name):
            b = getattr(module, name, None)
            return np.zeros(0) if b is None else np.asarray(b.detach(), np.float64).copy()

        new = build(dtype)
        out = {"layout": encode_text(_layout(new)), "errors": encode_text(_errors(piece, build, c, dtype)),
               "initial weight and bias": np.concatenate(
                   [np.asarray(p.detach(), np.float64)
                    for p in (getattr(new, "weight", None), getattr(new, "bias", None))
                    if p is not None] or [np.zeros(0)])}
        module = build(compute)
        with torch.no_grad():
            if start_weight.size:
                module.weight.copy_(torch.as_tensor(start_weight))
            if start_bias.size:
                module.bias.copy_(torch.as_tensor(start_bias))
        steps = {k: [] for k in ("y", "dx", "dweight", "dbias", "running_mean", "running_var",
                                 "num_batches_tracked")}
        for x, dout, train in zip(xs, douts, training):
            module.train(bool(train))
            x = torch.tensor(x, dtype=compute, requires_grad=True)
            y = module(x)
            y.backward(torch.as_tensor(dout).to(compute))
            steps["y"].append(y.detach().numpy().copy())
            steps["dx"].append(np.full(x.shape, np.nan) if x.grad is None else x.grad.numpy().copy())
            steps["dweight"].append(grad_of(module, "weight"))
            steps["dbias"].append(grad_of(module, "bias"))
            for p in module.parameters():
                p.grad = None
            for name in ("running_mean", "running_var", "num_batches_tracked"):
                steps[name].append(buffer_of(module, name))
        out.update({k: np.stack(v) for k, v in steps.items()})
        twin = torch_module_class(piece)(c, dtype=compute, **config)
        try:
            twin.load_state_dict(module.state_dict())
            out["state_dict loaded into torch's module"] = _flat_state(twin)
        except Exception as e:
            out["state_dict loaded into torch's module"] = encode_text(f"{type(e).__name__}: {e}")
        module.reset_running_stats()
        out["after reset_running_stats()"] = np.concatenate(
            [buffer_of(module, n).reshape(-1) for n in ("running_mean", "running_var", "num_batches_tracked")])
        fresh = build(compute)
        try:
            fresh.load_state_dict({k: torch.as_tensor(v).to(compute if v.dtype.kind == "f" else torch.int64)
                                   for k, v in state.items()})
            with torch.no_grad():
                loaded = fresh.eval()(torch.tensor(xs[-1], dtype=compute))
            out["eval output after loading torch's state_dict"] = loaded.numpy().copy()
        except Exception as e:
            out["eval output after loading torch's state_dict"] = encode_text(f"{type(e).__name__}: {e}")
        return out
    module_steps.__name__ = piece
    return module_steps


def run_function(fn_cls, exact=False):
    """BatchNormFunction as a function of arrays: y = fn_cls.apply(x, weight, bias, eps), then
    y.backward(dout); returns (y, dx, dweight, dbias)."""
    def function_outputs(x, weight, bias, dout, eps=1e-5):
        import torch
        dt = torch.float64 if exact else torch.as_tensor(x).dtype
        inputs = [torch.tensor(a, dtype=dt, requires_grad=True) for a in (x, weight, bias)]
        y = fn_cls.apply(*inputs, eps)
        if not isinstance(y, torch.Tensor):
            raise TypeError(f"forward must return a tensor; got {type(y).__name__}")
        y.backward(torch.as_tensor(dout).to(dt))
        for name, t in zip(("x", "weight", "bias"), inputs):
            if t.grad is None:
                raise TypeError(f"backward returned no gradient for {name} (None): it must return "
                                "(dx, dweight, dbias, None)")
        return tuple(t.detach().numpy().copy() for t in [y] + [t.grad for t in inputs])
    function_outputs.__name__ = "BatchNormFunction"
    return function_outputs


def _module_rows(a):
    """(S, N, C, *) -> (S, M, C): each step's values, one column per channel."""
    a = np.moveaxis(_f64(a), 2, -1)
    return a.reshape(a.shape[0], -1, a.shape[-1])


def _module_allowed(case, exact, what, unit, exact_all):
    xs, training, douts, weight, bias, state = case.args
    config = case.kwargs
    if what in ("num_batches_tracked", "after reset_running_stats()", "initial weight and bias") \
            or np.size(exact) == 0:
        return 0.0
    rows, drows = _module_rows(xs), _module_rows(douts)
    steps, m, c = rows.shape
    eps, track = config.get("eps", 1e-5), config.get("track_running_stats", True)
    affine = config.get("affine", True)
    gamma = _f64(weight) if weight.size else np.ones(c)
    beta = _f64(bias) if bias.size else np.zeros(c)
    biggest = np.abs(rows).max(axis=(0, 1)) if m else np.zeros(c)
    if what == "running_mean":
        return unit * (np.abs(exact) + 1 + steps * biggest)
    if what == "running_var":
        return unit * (np.abs(exact) + 1) * steps + steps * (unit * biggest) ** 2
    if what == "state_dict loaded into torch's module":
        parts = [np.zeros(c)] * (affine + (affine and config.get("bias", True)))
        if track:
            parts += [_module_allowed(case, exact_all["running_mean"][-1], "running_mean", unit, exact_all),
                      _module_allowed(case, exact_all["running_var"][-1], "running_var", unit, exact_all), [0.0]]
        return np.concatenate(parts) if parts else 0.0
    if what == "eval output after loading torch's state_dict":
        x = rows[-1]
        g = _f64(state["weight"]) if "weight" in state else np.ones(c)
        b = _f64(state["bias"]) if "bias" in state else np.zeros(c)
        var = _f64(state["running_var"]) if track else (x.var(axis=0) if m else np.ones(c))
        err = unit * (np.abs(g) * _x_hat_error(np.abs(x).max(axis=0, initial=0) + (
            np.abs(_f64(state["running_mean"])) if track else 0), var, eps, unit) + np.abs(b))
        return _unrows(unit * np.abs(_module_rows(exact[None])[0]) + err, xs.shape[1:])
    allowed = []  # absolute errors, per step
    for s in range(steps):
        x, d = rows[s], drows[s]
        if bool(training[s]) or not track:  # the batch's own statistics
            mean, var = (x.mean(axis=0), x.var(axis=0)) if m else (np.zeros(c), np.ones(c))
            inv_std = 1 / np.sqrt(var + eps)
            x_hat = (x - mean) * inv_std
            x_hat_err = unit * _x_hat_error(biggest, var, eps, unit)
            bounds = {"y": np.abs(gamma) * x_hat_err + unit * np.abs(beta) + 0 * x,
                      "dx": unit * np.abs(gamma) * inv_std * (np.abs(d) + np.abs(d).sum(axis=0) / max(m, 1) + (
                          np.abs(x_hat) + x_hat_err / unit) * np.abs(d * x_hat).sum(axis=0) / max(m, 1))}
        else:  # the running statistics, which carry the rounding of every earlier step
            mean = _f64(exact_all["running_mean"][s - 1]) if s else np.zeros(c)
            var = _f64(exact_all["running_var"][s - 1]) if s else np.ones(c)
            inv_std = 1 / np.sqrt(var + eps)
            x_hat = (x - mean) * inv_std
            mean_err = unit * (np.abs(mean) + 1 + steps * biggest)
            var_err = unit * (np.abs(var) + 1) * steps + steps * (unit * biggest) ** 2
            relative = var_err / (var + eps)  # of the variance; the std's is half that
            x_hat_err = mean_err * inv_std + np.abs(x_hat) * relative + unit * _x_hat_error(biggest, var, eps, unit)
            bounds = {"y": np.abs(gamma) * x_hat_err + unit * np.abs(beta),
                      "dx": np.abs(gamma) * inv_std * np.abs(d) * (relative + unit * steps)}
        if what in bounds:
            allowed.append(bounds[what])
        elif what == "dweight":
            allowed.append((np.abs(d) * (unit * np.abs(x_hat) + x_hat_err)).sum(axis=0) if affine else np.zeros(0))
        else:  # dbias
            has_bias = affine and config.get("bias", True)
            allowed.append(unit * np.abs(d).sum(axis=0) if has_bias else np.zeros(0))
    allowed = np.stack(allowed)
    if what in ("y", "dx"):
        return unit * np.abs(exact) + _unrows(allowed, xs.shape[1:], steps=True)
    return unit * np.abs(exact) + allowed


def _unrows(a, shape, steps=False):
    """Inverse of _module_rows for one step (shape (N, C, *)), or for all steps."""
    n, c, spatial = shape[0], shape[1], tuple(shape[2:])
    lead = (a.shape[0],) if steps else ()
    return np.moveaxis(np.asarray(a).reshape(lead + (n,) + spatial + (c,)), -1, len(lead) + 1)


def _judge_module(piece, out, exact, case):
    torch_name = f"torch.nn.{piece}"
    if not isinstance(out, dict) or any(k not in out for k in MODULE_OUTPUTS):
        raise Failure(f"{piece}'s answers are incomplete; got {_describe(out)}", case, "type")
    exact_all = {k: v if is_text(v) else _f64(v) for k, v in exact.items()}
    for name in MODULE_OUTPUTS:
        got, want = out[name], exact[name]
        if is_text(got) or is_text(want):
            mine = decode_text(got) if is_text(got) else "a result"
            theirs = decode_text(want) if is_text(want) else "a result"
            if mine != theirs:
                what = {"layout": "parameters and buffers", "errors": "errors for bad input"}.get(name, name)
                raise Failure(f"your module's {what} differ from {torch_name}'s:\n  yours:   {mine}\n"
                              f"  torch's: {theirs}", case, name)
            continue
        compare(name, got, want, _module_allowed(case, _f64(want), name, UNIT[np.dtype(case.dtype)], exact_all),
                case)


def _trusted_function():
    """BatchNormFunction in torch ops, trusted: a module is judged with it in place of the
    learner's own, so a mistake in the Function does not cost the modules their points."""
    import torch

    class BatchNormFunction(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x, weight, bias, eps):
            x64 = x.double()
            mean = x64.mean(dim=0)
            inv_std = 1 / torch.sqrt(((x64 - mean) ** 2).mean(dim=0) + eps)
            x_hat = (x64 - mean) * inv_std
            ctx.save_for_backward(x_hat, weight.double(), inv_std)
            ctx.dtype = x.dtype
            return (weight.double() * x_hat + bias.double()).to(x.dtype)

        @staticmethod
        def backward(ctx, dy):
            x_hat, weight, inv_std = ctx.saved_tensors
            dy = dy.double()
            dx = weight * inv_std * (dy - dy.mean(dim=0) - x_hat * (dy * x_hat).mean(dim=0))
            return (dx.to(ctx.dtype), (dy * x_hat).sum(dim=0).to(ctx.dtype), dy.sum(dim=0).to(ctx.dtype), None)
    return BatchNormFunction


TRUSTED_CLASSES = {"BatchNormFunction": _trusted_function}
