"""Lesson 07: where BatchNorm goes, its alternatives (LayerNorm, GroupNorm), and folding it
into the layer before it for inference."""
import numpy as np

from bncourse import oracle
from bncourse.adapters import adapt_fold, torch_layers
from bncourse.cases import Case, kw, make_batch, params
from bncourse.pieces.spec import Spec
from bncourse.rounding import eps_of, f64, norm_roundoff, unit_of

LESSON = "07_placement_and_alternatives"


def _layer_norm_case(rng, x, label, i):
    gamma, beta = params(rng, x.shape[1], x.dtype)
    kwargs = {"eps": [1e-5, 1e-3][i % 2]} if i % 3 else {}
    return Case(label + kw(kwargs), (x, gamma, beta), kwargs)


def _layer_norm_allowed(case, exact, what="out", exact_all=None):
    x, gamma, beta = (f64(a) for a in case.args)
    unit = unit_of(case)
    return unit * (np.abs(exact) + norm_roundoff(x, gamma, beta, eps_of(case), unit))


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
    gamma, beta = params(rng, c, dtype)
    kwargs = {"eps": [1e-5, 1e-3][i % 2]} if i % 3 else {}
    label = (f"{np.dtype(dtype).name} x of shape {xs.shape}, {g} groups"
             + (f", features offset by ~{offset:.0f}" if offset else "") + kw(kwargs))
    return Case(label, (xs, g, gamma, beta), kwargs)



def _group_allowed(case, exact, what="out", exact_all=None):
    x, groups, gamma, beta = (f64(a) if isinstance(a, np.ndarray) else a for a in case.args)
    unit = unit_of(case)
    shape = (1, -1) + (1,) * (x.ndim - 2)
    per_group = norm_roundoff(x.reshape(x.shape[0], int(groups), -1), 1.0, 0.0, eps_of(case, 4), unit)
    roundoff = np.abs(gamma.reshape(shape)) * per_group.reshape(x.shape) + np.abs(beta.reshape(shape))
    return unit * (np.abs(exact) + roundoff)


def _fold_case(rng, x, label, i):
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
    gamma, beta = params(rng, c_out, dtype)
    running_mean = rng.normal(0, 2, c_out).astype(dtype)
    running_var = (10.0 ** rng.uniform(-2, 1, c_out)).astype(dtype)
    kwargs = {"eps": [1e-5, 1e-3][i % 2]} if i % 3 else {}
    kind = (f"Conv2d({c_in}, {c_out}, kernel {weight.shape[-1]}) + BatchNorm2d" if conv
            else f"Linear({c_in}, {c_out}) + BatchNorm1d")
    label = (f"{np.dtype(dtype).name} {kind}" + ("" if bias.size else ", no bias before BN")
             + f", x of shape {xs.shape}" + kw(kwargs))
    return Case(label, (xs, weight, bias, gamma, beta, running_mean, running_var), kwargs)



def _fold_allowed(case, exact, what="out", exact_all=None):
    """The folded layer sums |x| * |weight| terms, each scaled by |gamma| / std."""
    import torch
    x, weight, bias, gamma, beta, mean, var = (torch.as_tensor(f64(a)) for a in case.args)
    scale = (gamma / torch.sqrt(var + case.kwargs.get("eps", 1e-5))).abs()
    if weight.dim() == 4:
        sums = torch.nn.functional.conv2d(x.abs(), weight.abs(), padding=weight.shape[-1] // 2)
        shape = (1, -1, 1, 1)
    else:
        sums, shape = x.abs() @ weight.abs().T, (1, -1)
    b = bias.abs() if bias.numel() else torch.zeros_like(mean)
    roundoff = ((sums + (b + mean.abs()).reshape(shape)) * scale.reshape(shape) + beta.abs().reshape(shape)).numpy()

    return unit_of(case) * (np.abs(exact) + roundoff)



def _native_layer_norm(x, gamma, beta, eps=1e-5):
    import torch
    import torch.nn.functional as F
    t = torch.as_tensor
    return F.layer_norm(t(x), (x.shape[1],), t(gamma), t(beta), eps=eps).numpy()


def _native_group_norm(x, num_groups, gamma, beta, eps=1e-5):
    import torch
    import torch.nn.functional as F
    t = torch.as_tensor
    return F.group_norm(t(x), num_groups, t(gamma), t(beta), eps=eps).numpy()


def _native_unfolded(x, weight, bias, gamma, beta, running_mean, running_var, eps=1e-5):
    """The layer, then its BatchNorm in eval mode, in the input's dtype (no folding)."""
    import torch
    layer, bn = torch_layers(weight, bias, gamma, beta, running_mean, running_var, eps)
    with torch.no_grad():
        return bn(layer(torch.as_tensor(x))).numpy()


SPECS = [
    Spec("layer_norm", LESSON, "layer_norm(x, gamma, beta, eps=1e-5)",
         "Lesson 07: each example normalised over its features, compared with torch.nn.LayerNorm.",
         make_case=_layer_norm_case, allowed=_layer_norm_allowed, oracle=oracle.layer_norm,
         oracle_name="torch.nn.LayerNorm", native=_native_layer_norm),
    Spec("group_norm", LESSON, "group_norm(x, num_groups, gamma, beta, eps=1e-5)",
         "Lesson 07: groups of channels normalised per example, compared with torch.nn.GroupNorm.",
         make_case=_group_case, allowed=_group_allowed, oracle=oracle.group_norm, oracle_name="torch.nn.GroupNorm",
         covers="4-D, 3-D and 2-D inputs; 1 to 4 groups, and one group per channel; float32 and float64; "
                "offsets up to 1e4", native=_native_group_norm),
    Spec("fold_batchnorm", LESSON, "fold_batchnorm(layer, bn)",
         "Lesson 07: the folded layer's outputs against the layer followed by its BatchNorm.",
         make_case=_fold_case, allowed=_fold_allowed, oracle=oracle.fold_batchnorm,
         oracle_name="torch's layer followed by its BatchNorm in eval mode", adapter=adapt_fold,
         covers="Linear and Conv2d layers (kernel 1 and 3), with and without a bias; float32 and float64; "
                "several eps", native=_native_unfolded),
]
