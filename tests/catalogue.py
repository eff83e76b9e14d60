"""Learner answers the grader must judge right: misconception mutants and correct variants.

Each entry is the source of one solution cell (a whole `def`), as a learner would type it.
A mutant must lose exactly its piece's points and be named by the visible check and the
hidden tests (`expect` is the misconception's name in bncourse.misconceptions.CATALOGUE, or
a literal phrase of the message). A variant is correct and must lose nothing.
"""
from dataclasses import dataclass

LESSON_OF = {
    "batch_mean": "01_batch_statistics",
    "batch_variance": "01_batch_statistics",
    "normalise": "02_normalise_and_scale",
    "scale_and_shift": "02_normalise_and_scale",
    "batchnorm_forward": "02_normalise_and_scale",
}


@dataclass(frozen=True)
class Mutant:
    name: str
    piece: str
    source: str
    expect: str  # misconception name, or a phrase the message must contain

    @property
    def lesson(self):
        return LESSON_OF[self.piece]


def _mean(body):
    return "def batch_mean(x):\n    " + body + "\n"


def _var(body):
    return "def batch_variance(x):\n    " + body + "\n"


def _norm(body):
    return "def normalise(x, mean, var, eps=1e-5):\n    " + body + "\n"


def _ss(body):
    return "def scale_and_shift(x_hat, gamma, beta):\n    " + body + "\n"


def _fwd(body):
    return "def batchnorm_forward(x, gamma, beta, eps=1e-5):\n    " + body.strip().replace("\n", "\n    ") + "\n"


_CACHE = ('cache = {"x": x, "mean": mean, "var": var, "eps": eps, "x_hat": x_hat, '
          '"gamma": gamma, "beta": beta}')

MUTANTS = [
    Mutant("mean_over_features", "batch_mean", _mean("return x.mean(axis=1)"), "wrong_axis"),
    Mutant("mean_of_everything", "batch_mean", _mean("return x.mean()"), "whole_array"),
    Mutant("mean_keepdims", "batch_mean", _mean("return x.mean(axis=0, keepdims=True)"), "keepdims"),
    Mutant("mean_is_sum", "batch_mean", _mean("return x.sum(axis=0)"), "sum_not_mean"),
    Mutant("var_unbiased", "batch_variance", _var("return x.var(axis=0, ddof=1)"), "unbiased"),
    Mutant("var_one_pass", "batch_variance",
           _var("return (x ** 2).mean(axis=0) - x.mean(axis=0) ** 2"), "one_pass"),
    Mutant("var_is_std", "batch_variance",
           _var("return np.sqrt(((x - x.mean(axis=0)) ** 2).mean(axis=0))"), "std_not_var"),
    Mutant("var_not_centred", "batch_variance", _var("return (x ** 2).mean(axis=0)"), "not_centred"),
    Mutant("var_over_features", "batch_variance", _var("return x.var(axis=1)"), "wrong_axis"),
    Mutant("eps_outside_sqrt", "normalise",
           _norm("return (x - mean) / (np.sqrt(var) + eps)"), "eps_outside_sqrt"),
    Mutant("eps_missing", "normalise", _norm("return (x - mean) / np.sqrt(var)"), "no_eps"),
    Mutant("divide_by_var", "normalise", _norm("return (x - mean) / (var + eps)"), "var_not_std"),
    Mutant("own_statistics", "normalise",
           _norm("return (x - x.mean(axis=0)) / np.sqrt(x.var(axis=0) + eps)"), "own_statistics"),
    Mutant("eps_hard_coded", "normalise", _norm("return (x - mean) / np.sqrt(var + 1e-5)"), "fixed_eps"),
    Mutant("gamma_beta_swapped", "scale_and_shift", _ss("return beta * x_hat + gamma"), "swapped"),
    Mutant("gamma_beta_per_row", "scale_and_shift",
           _ss("return gamma[:, None] * x_hat + beta[:, None]"), "per_row"),
    Mutant("forgot_beta", "scale_and_shift", _ss("return gamma * x_hat"), "no_beta"),
    Mutant("forward_no_scale_shift", "batchnorm_forward", _fwd(f"""
mean = batch_mean(x)
var = batch_variance(x)
x_hat = normalise(x, mean, var, eps)
{_CACHE}
return x_hat, cache"""), "no_scale_shift"),
    Mutant("forward_unbiased", "batchnorm_forward", _fwd(f"""
mean = batch_mean(x)
var = x.var(axis=0, ddof=1)
x_hat = normalise(x, mean, var, eps)
{_CACHE}
return scale_and_shift(x_hat, gamma, beta), cache"""), "unbiased"),
    Mutant("forward_overwrites_x", "batchnorm_forward", _fwd(f"""
mean = batch_mean(x)
var = batch_variance(x)
x -= mean
x_hat = x / np.sqrt(var + eps)
{_CACHE}
return scale_and_shift(x_hat, gamma, beta), cache"""), "in place"),
    Mutant("forward_caches_std", "batchnorm_forward", _fwd("""
mean = batch_mean(x)
var = np.sqrt(batch_variance(x) + eps)
x_hat = (x - mean) / var
cache = {"x": x, "mean": mean, "var": var, "eps": eps, "x_hat": x_hat, "gamma": gamma, "beta": beta}
return scale_and_shift(x_hat, gamma, beta), cache"""), "cache_std"),
    Mutant("forward_cache_incomplete", "batchnorm_forward", _fwd("""
mean = batch_mean(x)
var = batch_variance(x)
x_hat = normalise(x, mean, var, eps)
return scale_and_shift(x_hat, gamma, beta), {"x_hat": x_hat, "gamma": gamma}"""), "missing the key"),
]

# Correct answers written differently: each must score full marks.
VARIANTS = {
    "einsum": {
        "batch_mean": _mean('return np.einsum("nd->d", x) / x.shape[0]'),
        "batch_variance": _var('xc = x - np.einsum("nd->d", x) / x.shape[0]\n'
                               '    return np.einsum("nd,nd->d", xc, xc) / x.shape[0]'),
        "normalise": _norm('return np.einsum("nd,d->nd", x - mean, 1.0 / np.sqrt(var + eps))'),
        "scale_and_shift": _ss('return np.einsum("nd,d->nd", x_hat, gamma) + beta'),
        "batchnorm_forward": _fwd(f"""
n = x.shape[0]
mean = np.einsum("nd->d", x) / n
xc = x - mean
var = np.einsum("nd,nd->d", xc, xc) / n
x_hat = np.einsum("nd,d->nd", xc, 1.0 / np.sqrt(var + eps))
{_CACHE}
return np.einsum("nd,d->nd", x_hat, gamma) + beta, cache"""),
    },
    "explicit_loops": {  # plain Python loops: float64 accumulation, element by element
        "batch_mean": _mean("""n, d = x.shape
    mu = np.zeros(d)
    for j in range(d):
        total = 0.0
        for i in range(n):
            total += x[i, j]
        mu[j] = total / n
    return mu"""),
        "batch_variance": _var("""n, d = x.shape
    var = np.zeros(d)
    for j in range(d):
        mu = sum(x[i, j] for i in range(n)) / n
        var[j] = sum((x[i, j] - mu) ** 2 for i in range(n)) / n
    return var"""),
        "normalise": _norm("""import math
    out = np.empty(x.shape)
    for i in range(x.shape[0]):
        for j in range(x.shape[1]):
            out[i, j] = (x[i, j] - mean[j]) / math.sqrt(var[j] + eps)
    return out"""),
        "scale_and_shift": _ss("""out = np.empty(x_hat.shape)
    for i in range(x_hat.shape[0]):
        for j in range(x_hat.shape[1]):
            out[i, j] = gamma[j] * x_hat[i, j] + beta[j]
    return out"""),
        "batchnorm_forward": _fwd(f"""
mean = batch_mean(x)
var = batch_variance(x)
x_hat = np.empty(x.shape)
for i in range(x.shape[0]):
    x_hat[i] = (x[i] - mean) / np.sqrt(var + eps)
{_CACHE}
return scale_and_shift(x_hat, gamma, beta), cache"""),
    },
    "float64_throughout": {
        "batch_mean": _mean("return np.asarray(x, dtype=np.float64).mean(axis=0)"),
        "batch_variance": _var("x = np.asarray(x, dtype=np.float64)\n"
                               "    return ((x - x.mean(axis=0)) ** 2).mean(axis=0)"),
        "normalise": _norm("x, mean, var = (np.asarray(a, dtype=np.float64) for a in (x, mean, var))\n"
                           "    return (x - mean) / np.sqrt(var + eps)"),
        "scale_and_shift": _ss("return np.float64(1) * gamma * x_hat + beta"),
        "batchnorm_forward": _fwd(f"""
x64 = np.asarray(x, dtype=np.float64)
mean = x64.mean(axis=0)
var = ((x64 - mean) ** 2).mean(axis=0)
x_hat = (x64 - mean) / np.sqrt(var + eps)
{_CACHE}
return gamma * x_hat + beta, cache"""),
    },
    "in_place": {  # in-place arithmetic on the function's own temporaries, never on inputs
        "batch_mean": _mean("m = x.sum(axis=0)\n    m /= x.shape[0]\n    return m"),
        "batch_variance": _var("xc = x - x.mean(axis=0)\n    np.square(xc, out=xc)\n"
                               "    v = xc.sum(axis=0)\n    v /= x.shape[0]\n    return v"),
        "normalise": _norm("out = x - mean\n    out /= np.sqrt(var + eps)\n    return out"),
        "scale_and_shift": _ss("y = x_hat * gamma\n    y += beta\n    return y"),
        "batchnorm_forward": _fwd(f"""
mean = batch_mean(x)
var = batch_variance(x)
x_hat = x - mean
x_hat /= np.sqrt(var + eps)
y = x_hat * gamma
y += beta
{_CACHE}
return y, cache"""),
    },
    "fused_and_torch_ops": {  # x * a + b forms (as fused kernels compute) and torch primitives
        "batch_mean": _mean("import torch\n    return torch.as_tensor(x).mean(dim=0).numpy()"),
        "batch_variance": _var("import torch\n    t = torch.as_tensor(x)\n"
                               "    return ((t - t.mean(dim=0)) ** 2).mean(dim=0).numpy()"),
        "normalise": _norm("inv_std = 1.0 / np.sqrt(var + eps)\n    return x * inv_std - mean * inv_std"),
        "scale_and_shift": _ss("return np.multiply(x_hat, gamma) + beta"),
        "batchnorm_forward": _fwd(f"""
mean = batch_mean(x)
var = batch_variance(x)
inv_std = 1.0 / np.sqrt(var + eps)
x_hat = x * inv_std - mean * inv_std
{_CACHE}
return x * (gamma * inv_std) + (beta - mean * gamma * inv_std), cache"""),
    },
}


def compile_piece(source, namespace=None):
    """Define the function in `source` in a namespace that has numpy (as a notebook has)."""
    import numpy as np
    ns = {} if namespace is None else namespace
    ns.setdefault("np", np)
    exec(source, ns)
    return ns
