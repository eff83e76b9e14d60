"""Learner answers the grader must judge right: misconception mutants and correct variants.

Each entry is the source of one solution cell (a whole `def`), as a learner would type it.
A mutant must lose exactly its piece's points and be named by the visible check and the
hidden tests (`expect` is the misconception's name in bncourse.misconceptions.CATALOGUE, or
a literal phrase of the message). A variant is correct and must lose nothing.
"""
from dataclasses import dataclass

from bncourse import pieces

LESSON_OF = {name: spec.lesson for name, spec in pieces.REGISTRY.items()}


@dataclass(frozen=True)
class Mutant:
    name: str
    piece: str
    source: str
    expect: str  # misconception name, or a phrase the message must contain
    also: tuple = ()  # pieces built on the same code, which lose their points too (a shared base class)

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


# ---------------------------------------------------------------- lessons 03 and 04

SIGNATURES = {name: spec.signature for name, spec in pieces.REGISTRY.items()}


def _def(piece, body):
    return f"def {SIGNATURES[piece]}:\n    " + body.strip().replace("\n", "\n    ") + "\n"


STAGED = """
x, mean, var, eps, gamma = (cache[k] for k in ("x", "mean", "var", "eps", "gamma"))
N = x.shape[0]
xc = x - mean
std = np.sqrt(var + eps)
inv_std = 1.0 / std
x_hat = xc * inv_std
dbeta = dout.sum(axis=0)
dgamma = (dout * x_hat).sum(axis=0)
dx_hat = dout * gamma
dinv_std = (dx_hat * xc).sum(axis=0)
dxc = dx_hat * inv_std
dstd = -dinv_std / std ** 2
dvar = dstd * 0.5 / std
dxc = dxc + dvar * 2.0 * xc / N
dmean = -dxc.sum(axis=0)
dx = dxc + dmean / N
return dx, dgamma, dbeta"""

COMPACT = """
x_hat, var, eps, gamma = (cache[k] for k in ("x_hat", "var", "eps", "gamma"))
N = dout.shape[0]
dbeta = dout.sum(axis=0)
dgamma = (dout * x_hat).sum(axis=0)
dx = (gamma / (N * np.sqrt(var + eps))) * (N * dout - dbeta - x_hat * dgamma)
return dx, dgamma, dbeta"""

CHAINED = """
x, mean, var, eps, gamma = (cache[k] for k in ("x", "mean", "var", "eps", "gamma"))
xc = x - mean
s = np.sqrt(var + eps)
r = 1.0 / s
dx_hat, dgamma, dbeta = scale_shift_backward(dout, xc * r, gamma)
dxc, dr = product_backward(dx_hat, xc, r)
dvar = sqrt_backward(reciprocal_backward(dr, s), var, eps)
dx, dmean = centre_backward(dxc + variance_backward(dvar, xc))
return dx + mean_backward(dmean, x), dgamma, dbeta"""

NUMERICAL = """
grad = np.zeros(x.shape)
for i in np.ndindex(x.shape):
    old = x[i]
    x[i] = old + h
    plus = np.sum(f(x) * dout)
    x[i] = old - h
    minus = np.sum(f(x) * dout)
    x[i] = old
    grad[i] = (plus - minus) / (2 * h)
return grad"""

TORCH_UPDATE = """
w = 1.0 / (batches_seen + 1) if momentum is None else momentum
mean = x.mean(axis=0)
var = ((x - mean) ** 2).sum(axis=0) / (x.shape[0] - 1)
return (1 - w) * running_mean + w * mean, (1 - w) * running_var + w * var"""

LAYER = """
if not training:
    return batchnorm_inference(x, gamma, beta, state["running_mean"], state["running_var"], eps)
mean, var = batch_mean(x), batch_variance(x)
state["running_mean"], state["running_var"] = update_running_stats_torch(
    state["running_mean"], state["running_var"], x, momentum, state["num_batches_tracked"])
state["num_batches_tracked"] += 1
return scale_and_shift(normalise(x, mean, var, eps), gamma, beta)"""


def _edit(source, old, new):
    assert old in source, old
    return source.replace(old, new)


MUTANTS += [
    Mutant("staged_dgamma_not_summed", "batchnorm_backward_staged",
           _def("batchnorm_backward_staged", _edit(STAGED, "dgamma = (dout * x_hat).sum(axis=0)",
                                                   "dgamma = dout * x_hat")), "dgamma_not_summed"),
    Mutant("staged_direct_path_only", "batchnorm_backward_staged", _def("batchnorm_backward_staged", """
x_hat, var, eps, gamma = (cache[k] for k in ("x_hat", "var", "eps", "gamma"))
return dout * gamma / np.sqrt(var + eps), (dout * x_hat).sum(axis=0), dout.sum(axis=0)"""),
           "direct_path_only"),
    Mutant("staged_n_minus_1", "batchnorm_backward_staged",
           _def("batchnorm_backward_staged", _edit(STAGED, "dvar * 2.0 * xc / N", "dvar * 2.0 * xc / (N - 1)")),
           "n_minus_1"),
    Mutant("staged_no_gamma", "batchnorm_backward_staged",
           _def("batchnorm_backward_staged", _edit(STAGED, "dx_hat = dout * gamma", "dx_hat = dout")), "no_gamma"),
    # the staged backward's chaining, where a value feeds two nodes: a share left out or overwritten
    Mutant("staged_no_variance_share", "batchnorm_backward_staged", _def("batchnorm_backward_staged", _edit(
        CHAINED, "centre_backward(dxc + variance_backward(dvar, xc))", "centre_backward(dxc)")), "no_variance_term"),
    Mutant("staged_no_mean_share", "batchnorm_backward_staged", _def("batchnorm_backward_staged", _edit(
        CHAINED, "return dx + mean_backward(dmean, x), dgamma, dbeta", "return dx, dgamma, dbeta")), "no_mean_term"),
    Mutant("staged_xc_share_overwritten", "batchnorm_backward_staged", _def("batchnorm_backward_staged", _edit(
        CHAINED, "centre_backward(dxc + variance_backward(dvar, xc))", "centre_backward(variance_backward(dvar, xc))")),
        "xc_share_replaced"),
    Mutant("staged_x_share_overwritten", "batchnorm_backward_staged", _def("batchnorm_backward_staged", _edit(
        CHAINED, "return dx + mean_backward(dmean, x), dgamma, dbeta", "return mean_backward(dmean, x), dgamma, dbeta")),
        "x_share_replaced"),
    Mutant("compact_dgamma_mean", "batchnorm_backward",
           _def("batchnorm_backward", _edit(COMPACT, "dgamma = (dout * x_hat).sum(axis=0)",
                                            "dgamma = (dout * x_hat).mean(axis=0)")), "dgamma_mean"),
    Mutant("compact_dbeta_mean", "batchnorm_backward",
           _def("batchnorm_backward", _edit(COMPACT, "dbeta = dout.sum(axis=0)", "dbeta = dout.mean(axis=0)")),
           "dbeta_mean"),
    Mutant("compact_no_mean_term", "batchnorm_backward",
           _def("batchnorm_backward", _edit(COMPACT, "N * dout - dbeta - x_hat", "N * dout - x_hat")),
           "no_mean_term"),
    Mutant("compact_no_variance_term", "batchnorm_backward",
           _def("batchnorm_backward", _edit(COMPACT, " - x_hat * dgamma)", ")")), "no_variance_term"),
    Mutant("compact_dout_all_ones", "batchnorm_backward",
           _def("batchnorm_backward", "dout = np.ones_like(dout)  # 'the upstream gradient is 1'\n" + COMPACT),
           "ones_not_dout"),
    Mutant("numerical_one_sided", "numerical_gradient", _def("numerical_gradient", """
grad = np.zeros(x.shape)
base = np.sum(f(x) * dout)
for i in np.ndindex(x.shape):
    old = x[i]
    x[i] = old + h
    grad[i] = (np.sum(f(x) * dout) - base) / h
    x[i] = old
return grad"""), "one_sided"),
    Mutant("numerical_over_h", "numerical_gradient",
           _def("numerical_gradient", _edit(NUMERICAL, "/ (2 * h)", "/ h")), "over_h"),
    Mutant("numerical_ignores_dout", "numerical_gradient",
           _def("numerical_gradient", NUMERICAL.replace("np.sum(f(x) * dout)", "np.sum(f(x))")), "ignores_dout"),
    Mutant("numerical_x_not_restored", "numerical_gradient",
           _def("numerical_gradient", _edit(NUMERICAL, "    x[i] = old\n", "")), "changed its input argument 2"),
    Mutant("seed_update_flipped", "update_running_stats", _def("update_running_stats", """
return ((1 - momentum) * running_mean + momentum * batch_mean,
        (1 - momentum) * running_var + momentum * batch_var)"""), "flipped"),
    Mutant("inference_batch_statistics", "batchnorm_inference", _def("batchnorm_inference", """
return gamma * (x - x.mean(axis=0)) / np.sqrt(x.var(axis=0) + eps) + beta"""), "batch_statistics"),
    Mutant("torch_update_flipped", "update_running_stats_torch", _def("update_running_stats_torch",
           _edit(TORCH_UPDATE, "return (1 - w) * running_mean + w * mean, (1 - w) * running_var + w * var",
                 "return w * running_mean + (1 - w) * mean, w * running_var + (1 - w) * var")), "flipped"),
    Mutant("torch_update_biased", "update_running_stats_torch", _def("update_running_stats_torch",
           _edit(TORCH_UPDATE, "/ (x.shape[0] - 1)", "/ x.shape[0]")), "biased"),
    Mutant("torch_update_none_as_default", "update_running_stats_torch", _def("update_running_stats_torch",
           _edit(TORCH_UPDATE, "w = 1.0 / (batches_seen + 1) if momentum is None else momentum",
                 "w = 0.1 if momentum is None else momentum")), "none_as_default"),
    Mutant("torch_update_cumulative_off_by_one", "update_running_stats_torch",
           _def("update_running_stats_torch", _edit(TORCH_UPDATE, "1.0 / (batches_seen + 1)",
                                                    "1.0 / max(batches_seen, 1)")), "cumulative_off_by_one"),
    Mutant("init_var_zero", "init_running_stats", _def("init_running_stats", """
return {"running_mean": np.zeros(num_features, dtype), "running_var": np.zeros(num_features, dtype),
        "num_batches_tracked": 0}"""), "var_zero"),
    Mutant("layer_updates_in_eval", "batchnorm_layer_forward", _def("batchnorm_layer_forward", """
mean, var = batch_mean(x), batch_variance(x)
state["running_mean"], state["running_var"] = update_running_stats_torch(
    state["running_mean"], state["running_var"], x, momentum, state["num_batches_tracked"])
state["num_batches_tracked"] += 1
if not training:
    return batchnorm_inference(x, gamma, beta, state["running_mean"], state["running_var"], eps)
return scale_and_shift(normalise(x, mean, var, eps), gamma, beta)"""), "updates_in_eval"),
    Mutant("layer_batch_stats_in_eval", "batchnorm_layer_forward", _def("batchnorm_layer_forward",
           _edit(LAYER, 'return batchnorm_inference(x, gamma, beta, state["running_mean"], state["running_var"], eps)',
                 "return scale_and_shift(normalise(x, batch_mean(x), batch_variance(x), eps), gamma, beta)")),
           "batch_stats_in_eval"),
    Mutant("layer_never_updates", "batchnorm_layer_forward", _def("batchnorm_layer_forward",
           _edit(LAYER, 'state["running_mean"], state["running_var"] = update_running_stats_torch(',
                 'new_mean, new_var = update_running_stats_torch(')), "never_updates"),
    Mutant("layer_not_counted", "batchnorm_layer_forward", _def("batchnorm_layer_forward",
           _edit(LAYER, 'state["num_batches_tracked"] += 1\n', "")), "not_counted"),
]

# Lesson 03's nodes: each one's local derivative, one small piece per node. Three wrong ones per node,
# graded together in the real pipeline (tests/test_grading.py: NODE_MUTANTS[k] for every node in
# one notebook); each must lose exactly its node's points.
NODE = {  # the correct body of each node's backward
    "scale_shift_backward": "return dy * gamma, (dy * x_hat).sum(axis=0), dy.sum(axis=0)",
    "product_backward": "return dx_hat * r, (dx_hat * xc).sum(axis=0)",
    "reciprocal_backward": "return -dr / s ** 2",
    "sqrt_backward": "return ds / (2 * np.sqrt(var + eps))",
    "variance_backward": "return 2 * xc * dvar / xc.shape[0]",
    "centre_backward": "return dxc, -dxc.sum(axis=0)",
    "mean_backward": "return np.ones_like(x) * dmean / x.shape[0]",
}


def _node(piece, old=None, new=None):
    return _def(piece, NODE[piece] if old is None else _edit(NODE[piece], old, new))


NODE_MUTANTS = [
    [Mutant("node_dgamma_not_summed", "scale_shift_backward",
            _node("scale_shift_backward", "(dy * x_hat).sum(axis=0)", "dy * x_hat"), "dgamma has shape"),
     Mutant("node_product_dr_not_summed", "product_backward",
            _node("product_backward", "(dx_hat * xc).sum(axis=0)", "dx_hat * xc"), "dr has shape"),
     Mutant("node_reciprocal_sign", "reciprocal_backward", _node("reciprocal_backward", "-dr", "dr"),
            "sign"),
     Mutant("node_sqrt_no_half", "sqrt_backward", _node("sqrt_backward", "(2 * np.sqrt(var + eps))",
                                                         "np.sqrt(var + eps)"), "no_half"),
     Mutant("node_variance_n_minus_1", "variance_backward",
            _node("variance_backward", "xc.shape[0]", "(xc.shape[0] - 1)"), "n_minus_1"),
     Mutant("node_centre_dmean_sign", "centre_backward", _node("centre_backward", "-dxc.sum", "dxc.sum"),
            "dmean_sign"),
     Mutant("node_mean_no_1_over_n", "mean_backward", _node("mean_backward", " / x.shape[0]", ""),
            "no_1_over_n")],
    [Mutant("node_dbeta_mean", "scale_shift_backward",
            _node("scale_shift_backward", "dy.sum(axis=0)", "dy.mean(axis=0)"), "dbeta_mean"),
     Mutant("node_product_s_for_r", "product_backward", _node("product_backward", "dx_hat * r,", "dx_hat / r,"),
            "dxc_times_s"),
     Mutant("node_reciprocal_not_squared", "reciprocal_backward", _node("reciprocal_backward", "s ** 2", "s"),
            "power"),
     Mutant("node_sqrt_inverted", "sqrt_backward", _node("sqrt_backward", "ds / (2 * np.sqrt(var + eps))",
                                                         "ds * np.sqrt(var + eps) / 2"), "inverted"),
     Mutant("node_variance_no_2", "variance_backward", _node("variance_backward", "2 * xc", "xc"),
            "no_2"),
     Mutant("node_centre_dmean_not_summed", "centre_backward",
            _node("centre_backward", "-dxc.sum(axis=0)", "-dxc"), "dmean has shape"),
     Mutant("node_mean_not_spread", "mean_backward", _node("mean_backward", "np.ones_like(x) * dmean", "dmean"),
            "has shape")],
    [Mutant("node_dx_hat_no_gamma", "scale_shift_backward", _node("scale_shift_backward", "dy * gamma,", "dy,"),
            "dx_hat_no_gamma"),
     Mutant("node_product_dr_mean", "product_backward",
            _node("product_backward", "(dx_hat * xc).sum(axis=0)", "(dx_hat * xc).mean(axis=0)"), "dr_mean"),
     Mutant("node_reciprocal_no_upstream", "reciprocal_backward", _node("reciprocal_backward", "-dr / s ** 2",
                                                                        "-1 / s ** 2"), "no_upstream"),
     Mutant("node_sqrt_no_eps", "sqrt_backward", _node("sqrt_backward", "np.sqrt(var + eps)", "np.sqrt(var)"),
            "no_eps"),
     Mutant("node_variance_no_1_over_n", "variance_backward", _node("variance_backward", " / xc.shape[0]", ""),
            "no_1_over_n"),
     Mutant("node_centre_dmean_mean", "centre_backward", _node("centre_backward", "-dxc.sum(axis=0)",
                                                               "-dxc.mean(axis=0)"), "dmean_mean"),
     Mutant("node_mean_over_d", "mean_backward", _node("mean_backward", "x.shape[0]", "x.shape[1]"), "over_d")],
]
MUTANTS += [m for together in NODE_MUTANTS for m in together]

_LESSONS_34 = {  # correct answers in the style of each variant
    "einsum": {
        "scale_shift_backward": _def("scale_shift_backward", 'return np.einsum("nd,d->nd", dy, gamma), '
                                     'np.einsum("nd,nd->d", dy, x_hat), np.einsum("nd->d", dy)'),
        "product_backward": _def("product_backward", 'return np.einsum("nd,d->nd", dx_hat, r), '
                                 'np.einsum("nd,nd->d", dx_hat, xc)'),
        "centre_backward": _def("centre_backward", 'return np.einsum("nd->nd", dxc), -np.einsum("nd->d", dxc)'),
        "mean_backward": _def("mean_backward", 'return np.einsum("d,nd->nd", dmean / x.shape[0], np.ones_like(x))'),
        "batchnorm_backward_staged": _def("batchnorm_backward_staged", _edit(_edit(STAGED,
            "dgamma = (dout * x_hat).sum(axis=0)", 'dgamma = np.einsum("nd,nd->d", dout, x_hat)'),
            "dinv_std = (dx_hat * xc).sum(axis=0)", 'dinv_std = np.einsum("nd,nd->d", dx_hat, xc)')),
        "batchnorm_backward": _def("batchnorm_backward", _edit(COMPACT, "dgamma = (dout * x_hat).sum(axis=0)",
                                                               'dgamma = np.einsum("nd,nd->d", dout, x_hat)')),
        "numerical_gradient": _def("numerical_gradient", NUMERICAL.replace(
            "np.sum(f(x) * dout)", 'np.einsum("ij,ij->", f(x), dout)')),
        "batchnorm_inference": _def("batchnorm_inference", """
return np.einsum("nd,d->nd", x - running_mean, gamma / np.sqrt(running_var + eps)) + beta"""),
    },
    "float64_throughout": {
        "reciprocal_backward": _def("reciprocal_backward", "return -np.float64(1) * dr / np.asarray(s, np.float64) ** 2"),
        "sqrt_backward": _def("sqrt_backward", "return np.asarray(ds, np.float64) / (2 * np.sqrt(np.asarray(var, np.float64) + eps))"),
        "variance_backward": _def("variance_backward", "xc = np.asarray(xc, np.float64)\n" + NODE["variance_backward"]),
        "batchnorm_backward": _def("batchnorm_backward", "dout = np.asarray(dout, dtype=np.float64)\n" + COMPACT),
        "batchnorm_backward_staged": _def("batchnorm_backward_staged",
                                          "dout = np.asarray(dout, dtype=np.float64)\n" + STAGED),
        "update_running_stats_torch": _def("update_running_stats_torch", "x = np.asarray(x, dtype=np.float64)\n"
                                           + TORCH_UPDATE),
    },
    "in_place": {
        "scale_shift_backward": _def("scale_shift_backward", """
dx_hat = dy.copy()
dx_hat *= gamma
dgamma = x_hat * dy
dgamma = dgamma.sum(axis=0)
dbeta = dy.sum(axis=0)
return dx_hat, dgamma, dbeta"""),
        "product_backward": _def("product_backward", "dxc = dx_hat.copy()\ndxc *= r\nreturn dxc, (dx_hat * xc).sum(axis=0)"),
        "reciprocal_backward": _def("reciprocal_backward", "ds = dr.copy()\nds /= s\nds /= s\nds *= -1\nreturn ds"),
        "sqrt_backward": _def("sqrt_backward", "dvar = ds / np.sqrt(var + eps)\ndvar *= 0.5\nreturn dvar"),
        "variance_backward": _def("variance_backward", "dxc = xc * dvar\ndxc *= 2 / xc.shape[0]\nreturn dxc"),
        "centre_backward": _def("centre_backward", "dmean = dxc.sum(axis=0)\ndmean *= -1\nreturn dxc.copy(), dmean"),
        "mean_backward": _def("mean_backward", "dx = np.empty_like(x)\ndx[...] = dmean / x.shape[0]\nreturn dx"),
        # the staged backward that calls the node functions, as the lesson's solution does
        "batchnorm_backward_staged": _def("batchnorm_backward_staged", CHAINED),
        "batchnorm_backward": _def("batchnorm_backward", """
x_hat, var, eps, gamma = (cache[k] for k in ("x_hat", "var", "eps", "gamma"))
N = dout.shape[0]
dbeta = dout.sum(axis=0)
dgamma = (dout * x_hat).sum(axis=0)
dx = N * dout
dx -= dbeta
dx -= x_hat * dgamma
dx *= gamma / (N * np.sqrt(var + eps))
return dx, dgamma, dbeta"""),
        "numerical_gradient": _def("numerical_gradient", NUMERICAL),  # writes into x, puts it back
        "update_running_stats": _def("update_running_stats", """
new_mean = running_mean * momentum
new_mean += (1 - momentum) * batch_mean
new_var = running_var * momentum
new_var += (1 - momentum) * batch_var
return new_mean, new_var"""),
        "batchnorm_inference": _def("batchnorm_inference", """
y = x - running_mean
y *= gamma / np.sqrt(running_var + eps)
y += beta
return y"""),
        "update_running_stats_torch": _def("update_running_stats_torch", TORCH_UPDATE),
        "init_running_stats": _def("init_running_stats", """
state = {"running_mean": np.zeros(num_features, dtype=dtype), "running_var": np.zeros(num_features, dtype=dtype)}
state["running_var"] += 1
state["num_batches_tracked"] = 0
return state"""),
        "batchnorm_layer_forward": _def("batchnorm_layer_forward", """
if not training:
    return batchnorm_inference(x, gamma, beta, state["running_mean"], state["running_var"], eps)
new_mean, new_var = update_running_stats_torch(
    state["running_mean"], state["running_var"], x, momentum, state["num_batches_tracked"])
state["running_mean"][...] = new_mean  # in place, as torch updates its buffers
state["running_var"][...] = new_var
state["num_batches_tracked"] += 1
return scale_and_shift(normalise(x, batch_mean(x), batch_variance(x), eps), gamma, beta)"""),
    },
    "swapped_backward": {  # each backward written the other way: both are right
        "batchnorm_backward_staged": _def("batchnorm_backward_staged", COMPACT),
        "batchnorm_backward": _def("batchnorm_backward", STAGED),
    },
}
LAYER_NORM = """
mean = x.mean(axis=1, keepdims=True)
var = ((x - mean) ** 2).mean(axis=1, keepdims=True)
return gamma * (x - mean) / np.sqrt(var + eps) + beta"""

GROUP_NORM = """
n, c = x.shape[:2]
groups = x.reshape(n, num_groups, -1)
mean = groups.mean(axis=2, keepdims=True)
var = ((groups - mean) ** 2).mean(axis=2, keepdims=True)
x_hat = ((groups - mean) / np.sqrt(var + eps)).reshape(x.shape)
shape = (1, c) + (1,) * (x.ndim - 2)
return gamma.reshape(shape) * x_hat + beta.reshape(shape)"""

FOLD = """
import copy
import torch
with torch.no_grad():
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    bias = layer.bias if layer.bias is not None else torch.zeros_like(bn.running_mean)
    folded = copy.deepcopy(layer)
    folded.weight.copy_(layer.weight * scale.reshape(-1, *([1] * (layer.weight.dim() - 1))))
    folded.bias = torch.nn.Parameter((bias - bn.running_mean) * scale + bn.bias)
return folded"""

MUTANTS += [
    Mutant("layer_norm_over_batch", "layer_norm", _def("layer_norm", LAYER_NORM.replace("axis=1", "axis=0")),
           "batch_axis"),
    Mutant("layer_norm_no_keepdims", "layer_norm", _def("layer_norm", LAYER_NORM.replace(", keepdims=True", "")),
           "no_keepdims"),
    Mutant("layer_norm_unbiased", "layer_norm", _def("layer_norm", _edit(
        LAYER_NORM, "((x - mean) ** 2).mean(axis=1, keepdims=True)",
        "((x - mean) ** 2).sum(axis=1, keepdims=True) / (x.shape[1] - 1)")), "unbiased"),
    Mutant("group_norm_strided", "group_norm", _def("group_norm", _edit(
        _edit(GROUP_NORM, "groups = x.reshape(n, num_groups, -1)",
              "groups = x.reshape(n, c // num_groups, num_groups, -1).swapaxes(1, 2).reshape(n, num_groups, -1)"),
        "x_hat = ((groups - mean) / np.sqrt(var + eps)).reshape(x.shape)",
        "x_hat = ((groups - mean) / np.sqrt(var + eps)).reshape(n, num_groups, c // num_groups, -1)"
        ".swapaxes(1, 2).reshape(x.shape)")), "strided_groups"),
    Mutant("group_norm_per_channel", "group_norm", _def("group_norm", _edit(
        GROUP_NORM, "groups = x.reshape(n, num_groups, -1)", "groups = x.reshape(n, c, -1)")), "per_channel"),
    Mutant("group_norm_over_batch", "group_norm", _def("group_norm", """
axes = (0,) + tuple(range(2, x.ndim))
mean = x.mean(axis=axes, keepdims=True)
var = ((x - mean) ** 2).mean(axis=axes, keepdims=True)
shape = (1, x.shape[1]) + (1,) * (x.ndim - 2)
return gamma.reshape(shape) * (x - mean) / np.sqrt(var + eps) + beta.reshape(shape)"""), "batch_statistics"),
    Mutant("fold_without_running_mean", "fold_batchnorm", _def("fold_batchnorm", _edit(
        FOLD, "(bias - bn.running_mean) * scale", "bias * scale")), "no_running_mean"),
    Mutant("fold_without_eps", "fold_batchnorm", _def("fold_batchnorm", _edit(
        FOLD, "torch.sqrt(bn.running_var + bn.eps)", "torch.sqrt(bn.running_var)")), "no_eps"),
    Mutant("fold_ignores_layer_bias", "fold_batchnorm", _def("fold_batchnorm", _edit(
        FOLD, "bias = layer.bias if layer.bias is not None else torch.zeros_like(bn.running_mean)",
        "bias = torch.zeros_like(bn.running_mean)")), "ignores_layer_bias"),
    Mutant("fold_scales_input_axis", "fold_batchnorm", _def("fold_batchnorm", _edit(
        FOLD, "layer.weight * scale.reshape(-1, *([1] * (layer.weight.dim() - 1)))",
        "layer.weight * scale.reshape(1, -1, *([1] * (layer.weight.dim() - 2)))")), "input_axis"),
]

_LESSONS_34["einsum"].update({
    "layer_norm": _def("layer_norm", """
d = x.shape[1]
mean = np.einsum("nd->n", x)[:, None] / d
xc = x - mean
var = np.einsum("nd,nd->n", xc, xc)[:, None] / d
return np.einsum("nd,d->nd", xc / np.sqrt(var + eps), gamma) + beta"""),
})
_LESSONS_34["float64_throughout"].update({
    "layer_norm": _def("layer_norm", "x = np.asarray(x, dtype=np.float64)\n" + LAYER_NORM),
    "group_norm": _def("group_norm", "x = np.asarray(x, dtype=np.float64)\n" + GROUP_NORM),
    "fold_batchnorm": _def("fold_batchnorm", """
import torch
w = layer.weight.detach().double()
b = layer.bias.detach().double() if layer.bias is not None else torch.zeros(w.shape[0], dtype=torch.float64)
scale = bn.weight.double() / torch.sqrt(bn.running_var.double() + bn.eps)
new_w = (w * scale.reshape([-1] + [1] * (w.dim() - 1))).to(layer.weight.dtype)
new_b = ((b - bn.running_mean.double()) * scale + bn.bias.double()).to(layer.weight.dtype)
if isinstance(layer, torch.nn.Conv2d):
    folded = torch.nn.Conv2d(layer.in_channels, layer.out_channels, layer.kernel_size, layer.stride,
                             layer.padding, dtype=layer.weight.dtype)
else:
    folded = torch.nn.Linear(layer.in_features, layer.out_features, dtype=layer.weight.dtype)
with torch.no_grad():
    folded.weight.copy_(new_w)
    folded.bias.copy_(new_b)
return folded"""),
})
_LESSONS_34["in_place"].update({
    "layer_norm": _def("layer_norm", """
y = x - x.mean(axis=1, keepdims=True)
y /= np.sqrt((y ** 2).mean(axis=1, keepdims=True) + eps)
y *= gamma
y += beta
return y"""),
    "group_norm": _def("group_norm", """
n, c = x.shape[:2]
y = x.reshape(n, num_groups, -1).copy()
y -= y.mean(axis=2, keepdims=True)
y /= np.sqrt((y ** 2).mean(axis=2, keepdims=True) + eps)
y = y.reshape(x.shape)
shape = (1, c) + (1,) * (x.ndim - 2)
y *= gamma.reshape(shape)
y += beta.reshape(shape)
return y"""),
    "fold_batchnorm": _def("fold_batchnorm", FOLD),
})
VARIANTS["swapped_backward"] = {}
for _name, _sources in _LESSONS_34.items():
    VARIANTS[_name].update(_sources)


# ---------------------------------------------------------------- lessons 00 and 06

SUMMARY = """
a = np.asarray(a, dtype=np.float64)
return np.array([a.mean(), a.std(), *np.percentile(a, [15, 50, 85])])"""
RECORD = """
import torch
inputs, handles = [], []

def hook(module, args, output):
    inputs.append(args[0].detach().numpy().copy())

for module in model.modules():
    if isinstance(module, torch.nn.Linear):
        handles.append(module.register_forward_hook(hook))
try:
    with torch.no_grad():
        model(x)
finally:
    for handle in handles:
        handle.remove()
return inputs"""
SHIFT = "return np.abs(np.diff(means, axis=0)) / stds[:-1]"
STABLE = """
lrs, final_losses = np.asarray(lrs, dtype=float), np.asarray(final_losses, dtype=float)
trained = np.isfinite(final_losses) & (final_losses < start_loss)
return float(lrs[trained].max()) if trained.any() else 0.0"""
NORMS = """
import torch
import torch.nn.functional as F
linears = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
model.zero_grad()
F.cross_entropy(model(x), y).backward()
return np.array([m.weight.grad.norm().item() for m in linears])"""
SMOOTH = """
distance = np.asarray(etas) * np.linalg.norm(g0)
return float(np.max(np.linalg.norm(gs - g0, axis=1) / distance))"""
NOISE = """
batches = len(x) // batch_size
means = x[:batches * batch_size].reshape(batches, batch_size, -1).mean(axis=1)
return float(means.std(axis=0).mean())"""

MUTANTS += [
    Mutant("summary_unbiased", "activation_summary", _def("activation_summary", _edit(SUMMARY, "a.std()", "a.std(ddof=1)")),
           "unbiased"),
    Mutant("summary_nearest", "activation_summary", _def("activation_summary", _edit(
        SUMMARY, "np.percentile(a, [15, 50, 85])", "np.percentile(a, [15, 50, 85], method='nearest')")),
           "percentile_method"),
    Mutant("summary_median", "activation_summary", _def("activation_summary", _edit(SUMMARY, "a.mean()", "np.median(a)")),
           "median_for_mean"),
    Mutant("record_outputs", "record_layer_inputs", _def("record_layer_inputs", _edit(
        RECORD, "inputs.append(args[0].detach()", "inputs.append(output.detach()")), "outputs"),
    Mutant("record_top_level", "record_layer_inputs", _def("record_layer_inputs", _edit(
        RECORD, "model.modules()", "model.children()")), "top_level"),
    Mutant("record_keeps_hooks", "record_layer_inputs", _def("record_layer_inputs", _edit(
        RECORD, "        handle.remove()", "        pass")), "still registered"),
    Mutant("record_in_eval", "record_layer_inputs", _def("record_layer_inputs", _edit(
        RECORD, "try:\n", "model.eval()\ntry:\n")), "eval_mode"),
    Mutant("shift_later_std", "shift_per_step", _def("shift_per_step", _edit(SHIFT, "stds[:-1]", "stds[1:]")),
           "later_std"),
    Mutant("shift_signed", "shift_per_step", _def("shift_per_step", _edit(SHIFT, "np.abs(np.diff(means, axis=0))",
                                                                         "np.diff(means, axis=0)")), "signed"),
    Mutant("stable_first_failure", "largest_stable_lr", _def("largest_stable_lr", """
best = 0.0
for k in np.argsort(lrs):
    if not final_losses[k] < start_loss:
        break
    best = float(lrs[k])
return best"""), "first_failure"),
    Mutant("stable_ignores_start", "largest_stable_lr", _def("largest_stable_lr", _edit(
        STABLE, " & (final_losses < start_loss)", "")), "ignores_start"),
    Mutant("norms_no_zero_grad", "gradient_norms", _def("gradient_norms", _edit(NORMS, "model.zero_grad()\n", "")),
           "no_zero_grad"),
    Mutant("norms_with_bias", "gradient_norms", _def("gradient_norms", _edit(
        NORMS, "m.weight.grad.norm().item()", "torch.cat([m.weight.grad.flatten(), m.bias.grad]).norm().item()")),
           "includes_bias"),
    Mutant("norms_sum_loss", "gradient_norms", _def("gradient_norms", _edit(
        NORMS, "F.cross_entropy(model(x), y)", "F.cross_entropy(model(x), y, reduction='sum')")), "sum_loss"),
    Mutant("norms_step", "gradient_norms", _def("gradient_norms", _edit(
        NORMS, "return np.array", "torch.optim.SGD(model.parameters(), lr=0.1).step()\nreturn np.array")), "stepped"),
    Mutant("smooth_no_eta", "effective_smoothness", _def("effective_smoothness", _edit(
        SMOOTH, "np.asarray(etas) * np.linalg.norm(g0)", "np.linalg.norm(g0)")), "no_eta"),
    Mutant("smooth_mean", "effective_smoothness", _def("effective_smoothness", _edit(SMOOTH, "np.max(", "np.mean(")),
           "mean_not_max"),
    Mutant("noise_remainder", "batch_mean_noise", _def("batch_mean_noise", """
means = np.array([x[s:s + batch_size].mean(axis=0) for s in range(0, len(x), batch_size)])
return float(means.std(axis=0).mean())"""), "remainder"),
    Mutant("noise_theory", "batch_mean_noise", _def("batch_mean_noise",
                                                    "return float((x.std(axis=0) / np.sqrt(batch_size)).mean())"),
           "theory"),
]
_MEASURE_SOURCES = {"activation_summary": SUMMARY, "record_layer_inputs": RECORD, "shift_per_step": SHIFT,
                    "largest_stable_lr": STABLE, "gradient_norms": NORMS, "effective_smoothness": SMOOTH,
                    "batch_mean_noise": NOISE}
VARIANTS["in_place"].update({p: _def(p, body) for p, body in _MEASURE_SOURCES.items()})
VARIANTS["float64_throughout"].update({
    "shift_per_step": _def("shift_per_step", "means, stds = np.asarray(means, np.float64), np.asarray(stds, np.float64)\n"
                           + SHIFT),
    "effective_smoothness": _def("effective_smoothness", "g0, gs = np.asarray(g0, np.float64), np.asarray(gs, np.float64)\n"
                                 + SMOOTH),
    "batch_mean_noise": _def("batch_mean_noise", "x = np.asarray(x, np.float64)\n" + NOISE),
})
VARIANTS["explicit_loops"].update({
    "largest_stable_lr": _def("largest_stable_lr", """
best = 0.0
for lr, loss in zip(lrs, final_losses):
    if np.isfinite(loss) and loss < start_loss and lr > best:
        best = float(lr)
return best"""),
    "gradient_norms": _def("gradient_norms", """
import torch
import torch.nn.functional as F
linears = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
grads = torch.autograd.grad(F.cross_entropy(model(x), y), [m.weight for m in linears])
return np.array([float(sum(float(v) ** 2 for v in g.flatten()) ** 0.5) for g in grads])"""),
    "record_layer_inputs": _def("record_layer_inputs", """
import torch
seen = []
handles = [m.register_forward_hook(lambda m, args, out: seen.append(args[0].detach().clone()))
           for m in model.modules() if isinstance(m, torch.nn.Linear)]
try:
    with torch.no_grad():
        model(x)
finally:
    for h in handles:
        h.remove()
return [t.numpy() for t in seen]"""),
})

# ---------------------------------------------------------------- lesson 05

FUNCTION = '''import torch


class BatchNormFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, bias, eps):
        mean = x.mean(dim=0)
        var = ((x - mean) ** 2).mean(dim=0)
        inv_std = 1 / torch.sqrt(var + eps)
        x_hat = (x - mean) * inv_std
        ctx.save_for_backward(x_hat, weight, inv_std)
        return weight * x_hat + bias

    @staticmethod
    def backward(ctx, dy):
        x_hat, weight, inv_std = ctx.saved_tensors
        dbias = dy.sum(dim=0)
        dweight = (dy * x_hat).sum(dim=0)
        dx = weight * inv_std * (dy - dy.mean(dim=0) - x_hat * (dy * x_hat).mean(dim=0))
        return dx, dweight, dbias, None
'''
PARAMETERS = '''import torch


def make_parameters_and_buffers(module, num_features, affine=True, track_running_stats=True,
                                device=None, dtype=None, bias=True):
    factory = {"device": device, "dtype": dtype}
    if affine:
        module.weight = torch.nn.Parameter(torch.ones(num_features, **factory))
    else:
        module.register_parameter("weight", None)
    if affine and bias:
        module.bias = torch.nn.Parameter(torch.zeros(num_features, **factory))
    else:
        module.register_parameter("bias", None)
    if track_running_stats:
        module.register_buffer("running_mean", torch.zeros(num_features, **factory))
        module.register_buffer("running_var", torch.ones(num_features, **factory))
        module.register_buffer("num_batches_tracked", torch.tensor(0, dtype=torch.long, device=device))
    else:
        for name in ("running_mean", "running_var", "num_batches_tracked"):
            module.register_buffer(name, None)
'''
TRAINING = '''import torch


def training_forward(rows, weight, bias, running_mean, running_var, num_batches_tracked,
                     momentum=0.1, eps=1e-5):
    if num_batches_tracked is not None:
        num_batches_tracked += 1
        m = 1.0 / float(num_batches_tracked) if momentum is None else momentum
        if rows.shape[0] > 0:
            with torch.no_grad():
                running_mean.mul_(1 - m).add_(m * rows.mean(dim=0))
                running_var.mul_(1 - m).add_(m * rows.var(dim=0, unbiased=True))
    return BatchNormFunction.apply(rows, weight, bias, eps)
'''
EVAL = '''import torch


def eval_forward(rows, weight, bias, running_mean, running_var, eps=1e-5):
    return weight * (rows - running_mean) / torch.sqrt(running_var + eps) + bias
'''
CHECK = '''def check_input(x, dims, use_batch_statistics, eps=1e-5):
    if x.dim() not in dims:
        raise ValueError(f"expected {' or '.join(f'{d}D' for d in dims)} input (got {x.dim()}D input)")
    if use_batch_statistics and x.numel() // x.shape[1] == 1:
        raise ValueError("Expected more than 1 value per channel when training, "
                         f"got input size {tuple(x.shape)}")
    if use_batch_statistics and eps <= 0:
        raise ValueError(f"batch_norm eps must be positive during training, but got {eps}")
'''
MODULE_1D = '''import torch


class _BatchNorm(torch.nn.Module):
    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True,
                 track_running_stats=True, device=None, dtype=None, *, bias=True):
        super().__init__()
        self.num_features, self.eps, self.momentum = num_features, eps, momentum
        self.affine, self.track_running_stats = affine, track_running_stats
        make_parameters_and_buffers(self, num_features, affine, track_running_stats, device, dtype, bias=bias)

    def reset_running_stats(self):
        if self.track_running_stats:
            self.running_mean.zero_()
            self.running_var.fill_(1)
            self.num_batches_tracked.zero_()

    def _input_dims(self):
        raise NotImplementedError

    def forward(self, x):
        use_batch = self.training or (self.running_mean is None and self.running_var is None)
        check_input(x, self._input_dims(), use_batch, self.eps)
        channels_last = x.movedim(1, -1)
        rows = channels_last.reshape(-1, self.num_features)
        ones = torch.ones(self.num_features, dtype=x.dtype, device=x.device)
        weight = self.weight if self.weight is not None else ones
        bias = self.bias if self.bias is not None else torch.zeros_like(ones)
        if use_batch:
            moving = self.training and self.track_running_stats
            out = training_forward(rows, weight, bias, *((self.running_mean, self.running_var,
                                   self.num_batches_tracked) if moving else (None,) * 3), self.momentum, self.eps)
        else:
            out = eval_forward(rows, weight, bias, self.running_mean, self.running_var, self.eps)
        return out.reshape(channels_last.shape).movedim(-1, 1)


class BatchNorm1d(_BatchNorm):
    def _input_dims(self):
        return (2, 3)
'''
MODULE_2D = '''class BatchNorm2d(_BatchNorm):
    def _input_dims(self):
        return (4,)
'''
VARIANTS["in_place"].update({"BatchNormFunction": FUNCTION, "make_parameters_and_buffers": PARAMETERS,
                             "training_forward": TRAINING, "eval_forward": EVAL, "check_input": CHECK,
                             "BatchNorm1d": MODULE_1D, "BatchNorm2d": MODULE_2D})
# cs231n-style: torch.var_mean, lerp, a folded scale and shift, channels swapped with transpose
VARIANTS["fused_and_torch_ops"].update({
    "BatchNormFunction": _edit(_edit(FUNCTION, "        mean = x.mean(dim=0)\n        var = ((x - mean) ** 2).mean(dim=0)\n",
                                     "        var, mean = torch.var_mean(x, dim=0, correction=0)\n"),
                               "x_hat = (x - mean) * inv_std", "x_hat = torch.addcmul(-mean * inv_std, x, inv_std)"),
    "training_forward": _edit(_edit(TRAINING, "running_var.mul_(1 - m).add_(m * rows.var(dim=0, unbiased=True))",
                                    "running_var.lerp_(torch.var(rows, dim=0, correction=1), m)"),
                              "running_mean.mul_(1 - m).add_(m * rows.mean(dim=0))",
                              "running_mean.lerp_(rows.mean(dim=0), m)"),
    "eval_forward": _edit(EVAL, "    return weight * (rows - running_mean) / torch.sqrt(running_var + eps) + bias\n",
                          "    scale = weight * torch.rsqrt(running_var + eps)\n"
                          "    return torch.addcmul(bias - running_mean * scale, rows, scale)\n"),
    "BatchNorm1d": _edit(_edit(MODULE_1D, "        channels_last = x.movedim(1, -1)\n",
                               "        channels_last = x.transpose(1, -1)\n"),
                         "return out.reshape(channels_last.shape).movedim(-1, 1)",
                         "return out.reshape(channels_last.shape).transpose(1, -1)"),
    "BatchNorm2d": MODULE_2D,
})


def _step_mutant(name, piece, old, new, expect, also=()):
    source = {"make_parameters_and_buffers": PARAMETERS, "training_forward": TRAINING, "eval_forward": EVAL,
              "check_input": CHECK, "BatchNorm1d": MODULE_1D, "BatchNorm2d": MODULE_2D}[piece]
    return Mutant(name, piece, _edit(source, old, new), expect, also=also)


def _module_mutant(name, old, new, expect, piece="BatchNorm1d"):
    """A mistake in the BatchNorm1d cell sits in the base class BatchNorm2d shares: both lose."""
    return _step_mutant(name, piece, old, new, expect, also=("BatchNorm2d",) if piece == "BatchNorm1d" else ())


MUTANTS += [
    Mutant("function_no_mean_term", "BatchNormFunction", _edit(FUNCTION, "(dy - dy.mean(dim=0) - ", "(dy - "),
           "no_mean_term"),
    Mutant("function_no_variance_term", "BatchNormFunction", _edit(
        FUNCTION, " - x_hat * (dy * x_hat).mean(dim=0))", ")"), "no_variance_term"),
    Mutant("function_one_pass", "BatchNormFunction", _edit(
        FUNCTION, "var = ((x - mean) ** 2).mean(dim=0)", "var = (x ** 2).mean(dim=0) - mean ** 2"), "one_pass"),
    Mutant("function_unbiased", "BatchNormFunction", _edit(
        FUNCTION, "var = ((x - mean) ** 2).mean(dim=0)", "var = ((x - mean) ** 2).sum(dim=0) / (x.shape[0] - 1)"),
           "unbiased"),
    # step 1: parameters and buffers
    _step_mutant("params_buffers_as_parameters", "make_parameters_and_buffers",
                 'module.register_buffer("running_mean", torch.zeros(num_features, **factory))',
                 "module.running_mean = torch.nn.Parameter(torch.zeros(num_features, **factory), requires_grad=False)",
                 "buffers_as_parameters"),
    _step_mutant("params_weight_init_zero", "make_parameters_and_buffers",
                 "module.weight = torch.nn.Parameter(torch.ones(num_features, **factory))",
                 "module.weight = torch.nn.Parameter(torch.zeros(num_features, **factory))", "initial_params"),
    _step_mutant("params_float_count", "make_parameters_and_buffers",
                 "torch.tensor(0, dtype=torch.long, device=device)", "torch.tensor(0.0, device=device)", "float_count"),
    _step_mutant("params_affine_false", "make_parameters_and_buffers", '''        module.register_parameter("weight", None)
    if affine and bias:
        module.bias = torch.nn.Parameter(torch.zeros(num_features, **factory))''', '''        module.weight = torch.nn.Parameter(torch.ones(num_features, **factory), requires_grad=False)
    if bias:
        module.bias = torch.nn.Parameter(torch.zeros(num_features, **factory), requires_grad=affine)''',
                 "affine_false_params"),
    _step_mutant("params_bias_kw_ignored", "make_parameters_and_buffers", "    if affine and bias:\n",
                 "    if affine:\n", "bias_kw_ignored"),
    _step_mutant("params_plain_attribute", "make_parameters_and_buffers",
                 'module.register_buffer("running_var", torch.ones(num_features, **factory))',
                 "object.__setattr__(module, 'running_var', torch.ones(num_features, **factory))", "plain_attribute"),
    _step_mutant("params_running_var_zeros", "make_parameters_and_buffers",
                 'module.register_buffer("running_var", torch.ones(num_features, **factory))',
                 'module.register_buffer("running_var", torch.zeros(num_features, **factory))', "initial_buffers"),
    _step_mutant("params_running_mean_ones", "make_parameters_and_buffers",
                 'module.register_buffer("running_mean", torch.zeros(num_features, **factory))',
                 'module.register_buffer("running_mean", torch.ones(num_features, **factory))', "initial_buffers"),
    # step 2: the training forward and the running statistics
    _step_mutant("training_not_counted", "training_forward", "        num_batches_tracked += 1\n", "",
                 "not_counted"),
    _step_mutant("training_count_not_in_place", "training_forward", "        num_batches_tracked += 1\n",
                 "        num_batches_tracked = num_batches_tracked + 1\n", "not_counted"),
    _step_mutant("training_momentum_none_as_01", "training_forward",
                 "m = 1.0 / float(num_batches_tracked) if momentum is None else momentum",
                 "m = 0.1 if momentum is None else momentum", "momentum_none_as_01"),
    _step_mutant("training_biased_running_var", "training_forward", "rows.var(dim=0, unbiased=True)",
                 "rows.var(dim=0, unbiased=False)", "biased_running_var"),
    _step_mutant("training_old_weight", "training_forward", '''                running_mean.mul_(1 - m).add_(m * rows.mean(dim=0))
                running_var.mul_(1 - m).add_(m * rows.var(dim=0, unbiased=True))''',
                 '''                running_mean.mul_(m).add_((1 - m) * rows.mean(dim=0))
                running_var.mul_(m).add_((1 - m) * rows.var(dim=0, unbiased=True))''', "momentum_old_weight"),
    _step_mutant("training_stats_in_graph", "training_forward", "            with torch.no_grad():\n",
                 "            if True:  # (no torch.no_grad(): the update joins the autograd graph)\n",
                 "stats_in_graph"),
    # step 3: eval
    _step_mutant("eval_batch_statistics", "eval_forward",
                 "    return weight * (rows - running_mean) / torch.sqrt(running_var + eps) + bias\n",
                 "    return BatchNormFunction.apply(rows, weight, bias, eps)\n", "eval_batch_stats"),
    _step_mutant("eval_eps_outside_sqrt", "eval_forward", "torch.sqrt(running_var + eps)",
                 "(torch.sqrt(running_var) + eps)", "eps_outside_sqrt"),
    # step 4: errors
    _step_mutant("check_no_single_value_error", "check_input", "if use_batch_statistics and x.numel() // x.shape[1] == 1:",
                 "if False:", "no_single_value_error"),
    _step_mutant("check_no_eps_check", "check_input", "if use_batch_statistics and eps <= 0:", "if False:",
                 "no_eps_check"),
    _step_mutant("check_single_example", "check_input", "if use_batch_statistics and x.numel() // x.shape[1] == 1:",
                 "if use_batch_statistics and x.shape[0] == 1:", "single_example"),
    _step_mutant("check_single_value_in_eval", "check_input",
                 "if use_batch_statistics and x.numel() // x.shape[1] == 1:", "if x.numel() // x.shape[1] == 1:",
                 "single_value_in_eval"),
    # the module built from them
    _module_mutant("module_eval_ignores_tracking",
                   "use_batch = self.training or (self.running_mean is None and self.running_var is None)",
                   "use_batch = self.training", "eval_ignores_tracking"),
    # the module before issue 21: tracking decided by the constructor's flag, buffers always handed on
    Mutant("module_tracking_flag_at_construction", "BatchNorm1d", _edit(_edit(
        MODULE_1D, "use_batch = self.training or (self.running_mean is None and self.running_var is None)",
        "use_batch = self.training or not self.track_running_stats"),
        "moving = self.training and self.track_running_stats", "moving = True"),
        "tracking_switched", also=("BatchNorm2d",)),
    _module_mutant("module_reset_keeps_count", "            self.num_batches_tracked.zero_()\n", "", "reset_keeps_count"),
    _module_mutant("module_per_position", "        if use_batch:\n            moving = ",
                   "        if use_batch and x.dim() > 2:  # each (channel, position) over the batch only\n"
                   "            training_forward(rows, weight, bias, self.running_mean, self.running_var,\n"
                   "                             self.num_batches_tracked, self.momentum, self.eps)  # as usual\n"
                   "            per = x.shape[2]\n"
                   "            return training_forward(x.reshape(x.shape[0], -1), weight.repeat_interleave(per),\n"
                   "                                    bias.repeat_interleave(per), None, None, None, self.momentum,\n"
                   "                                    self.eps).reshape(x.shape)\n"
                   "        if use_batch:\n            moving = ",
                   "per_position"),
    Mutant("module_no_bias_argument", "BatchNorm1d", _edit(_edit(MODULE_1D, "device=None, dtype=None, *, bias=True):",
                                                                "device=None, dtype=None):"),
                                                          ", dtype, bias=bias)", ", dtype)"),
           "no_bias_argument", also=("BatchNorm2d",)),
    _module_mutant("module2d_no_dim_check", "        return (4,)", "        return (1, 2, 3, 4, 5)", "no_dim_check",
                   piece="BatchNorm2d"),
    Mutant("module2d_bessel_batch_n", "BatchNorm2d", MODULE_2D + '''
    def forward(self, x):  # running_var with n = N, not N * H * W
        rows = x.movedim(1, -1).reshape(-1, self.num_features)
        if self.training and self.track_running_stats and rows.shape[0] > 1:
            saved = self.running_var.clone()
            out = super().forward(x)
            m = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
            n = x.shape[0]
            with torch.no_grad():
                self.running_var.copy_((1 - m) * saved + m * rows.var(dim=0, unbiased=False) * n / max(n - 1, 1))
            return out
        return super().forward(x)
''', "bessel_batch_n"),
    Mutant("module2d_per_pixel", "BatchNorm2d", MODULE_2D + '''
    def forward(self, x):  # in training, every (channel, pixel) normalised over the batch only
        if not (self.training or not self.track_running_stats) or x.shape[0] < 2 or x.dim() != 4:
            return super().forward(x)
        saved = super().forward(x)  # updates the running statistics as usual
        per = x.shape[2] * x.shape[3]
        w = self.weight if self.affine else torch.ones(self.num_features, dtype=x.dtype)
        b = self.bias if self.bias is not None else torch.zeros(self.num_features, dtype=x.dtype)
        flat = x.reshape(x.shape[0], -1)
        return BatchNormFunction.apply(flat, w.repeat_interleave(per), b.repeat_interleave(per), self.eps).reshape(x.shape)
''', "per_pixel"),
]


# ---------------------------------------------------------------- the generic checks every spec gets
# (bncourse.judge: inputs left as they were, a model judged in train and in eval mode, the
# documented defaults, and a wrong answer's part named in the learner's terms), each proven by
# a mistake that only it catches.
MUTANTS += [
    Mutant("fold_in_place", "fold_batchnorm", _def("fold_batchnorm", _edit(
        FOLD, "    folded = copy.deepcopy(layer)\n", "    folded = layer  # the caller's layer, changed\n")),
        "changed what it was given"),
    Mutant("function_dy_in_place", "BatchNormFunction", _edit(
        FUNCTION, "        dbias = dy.sum(dim=0)\n", "        dbias = dy.sum(dim=0)\n        dy -= dy.mean(dim=0)\n"),
        "changed what it was given"),
    Mutant("record_freezes_parameters", "record_layer_inputs", _def("record_layer_inputs", _edit(
        RECORD, "try:\n", "for p in model.parameters():\n    p.requires_grad_(False)  # 'no gradients needed'\ntry:\n")),
        "changed what it was given"),
    Mutant("norms_forces_train", "gradient_norms", _def("gradient_norms", _edit(
        NORMS, "model.zero_grad()\nF.cross_entropy(model(x), y).backward()\n",
        "was = model.training\nmodel.train()\nmodel.zero_grad()\nF.cross_entropy(model(x), y).backward()\n"
        "model.train(was)\n")), "a model with BatchNorm, in eval mode"),
    _module_mutant("module_default_momentum", "momentum=0.1, affine=True", "momentum=0.01, affine=True",
                   "every constructor argument at its default"),
    Mutant("compact_half_variance_term", "batchnorm_backward",
           _def("batchnorm_backward", _edit(COMPACT, " - x_hat * dgamma)", " - x_hat * dgamma / 2)")),
           "the path through the variance from y back to x: that path is 0.5 times"),
    _step_mutant("training_running_mean_half_step", "training_forward", "add_(m * rows.mean(dim=0))",
                 "add_(m / 2 * rows.mean(dim=0))", "at step"),
]


# lesson 05's step mutants, graded together in the real pipeline (tests/test_grading.py: each
# row in one notebook, at most one mistake per piece; the training step and the modules, judged with
# torch's versions of the parts they call, keep their points)
STEP_ROWS = [
    ["function_no_mean_term", "params_float_count", "eval_batch_statistics", "check_no_eps_check"],
    ["params_buffers_as_parameters", "training_not_counted", "eval_eps_outside_sqrt", "check_no_single_value_error"],
    ["params_weight_init_zero", "training_count_not_in_place", "check_single_example"],
    ["params_affine_false", "training_momentum_none_as_01", "check_single_value_in_eval"],
    ["params_bias_kw_ignored", "training_biased_running_var"],
    ["params_plain_attribute", "training_old_weight"],
    ["params_running_var_zeros", "training_stats_in_graph"],
    ["params_running_mean_ones"],
]
STEP_MUTANTS = [[next(m for m in MUTANTS if m.name == name) for name in row] for row in STEP_ROWS]

def compile_piece(source, namespace=None):
    """Define the function in `source` in a namespace that has numpy (as a notebook has)."""
    import numpy as np
    ns = {} if namespace is None else namespace
    ns.setdefault("np", np)
    exec(source, ns)
    return ns
