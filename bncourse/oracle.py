"""Expected answers taken from PyTorch's own BatchNorm, in float64.

Each function takes the same arguments as the learner's piece and returns the exact
float64 answer, computed by torch.nn.BatchNorm1d / torch.nn.functional.batch_norm:
  - momentum=1.0 makes running_mean the batch mean (running_var is the *unbiased* variance);
  - affine=False exposes x_hat;
  - eval mode with given statistics computes (x - mean) / sqrt(var + eps);
  - gradients come from torch.autograd through F.batch_norm;
  - running statistics come from a BatchNorm1d's buffers after the same steps.
"""
import functools
import sys

import numpy as np
import torch
import torch.nn.functional as F

from bncourse import judge, tripwire


def _uses_torch_kernels(fn):
    """The oracle is the course's own code: it may use torch's kernels while grading."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with tripwire.allowed():
            return fn(*args, **kwargs)
    return wrapper


def _t(a):
    return torch.as_tensor(np.asarray(a, dtype=np.float64))


def _stats_layer(x):
    """A BatchNorm1d that has seen the batch x once with momentum 1."""
    x = _t(x)
    layer = torch.nn.BatchNorm1d(x.shape[1], momentum=1.0, affine=False, dtype=torch.float64)
    layer.train()
    with torch.no_grad():
        layer(x)
    return layer, x.shape[0]


@_uses_torch_kernels
def batch_mean(x):
    layer, _ = _stats_layer(x)
    return layer.running_mean.numpy()


@_uses_torch_kernels
def batch_variance(x):
    layer, n = _stats_layer(x)
    return (layer.running_var * (n - 1) / n).numpy()  # torch stores the unbiased one


@_uses_torch_kernels
def normalise(x, mean, var, eps=1e-5):
    return F.batch_norm(_t(x), _t(mean), _t(var), training=False, eps=eps).numpy()


@_uses_torch_kernels
def scale_and_shift(x_hat, gamma, beta):
    zeros, ones = torch.zeros(len(gamma), dtype=torch.float64), torch.ones(len(gamma), dtype=torch.float64)
    return F.batch_norm(_t(x_hat), zeros, ones, _t(gamma), _t(beta), training=False, eps=0.0).numpy()


@_uses_torch_kernels
def batchnorm_forward(x, gamma, beta, eps=1e-5):
    x64 = _t(x)
    x_hat = F.batch_norm(x64, None, None, training=True, eps=eps)
    y = F.batch_norm(x64, None, None, _t(gamma), _t(beta), training=True, eps=eps)
    cache = {"x": x, "mean": batch_mean(x), "var": batch_variance(x), "eps": eps,
             "x_hat": x_hat.numpy(), "gamma": gamma, "beta": beta}
    return y.numpy(), cache


def _grads(dout, cache):
    x = _t(cache["x"]).requires_grad_()
    gamma, beta = _t(cache["gamma"]).requires_grad_(), _t(cache["beta"]).requires_grad_()
    y = F.batch_norm(x, None, None, gamma, beta, training=True, eps=float(cache["eps"]))
    y.backward(_t(dout))
    return x.grad.numpy(), gamma.grad.numpy(), beta.grad.numpy()


@_uses_torch_kernels
def batchnorm_backward(dout, cache):
    return _grads(dout, cache)


@_uses_torch_kernels
def batchnorm_backward_staged(dout, cache):
    return _grads(dout, cache)


def numerical_gradient(f, x, dout, h=1e-5):
    """The exact gradient (torch.autograd) that centred differences approximate to O(h^2)."""
    x = _t(x).requires_grad_()
    (f(x, xp=torch) * _t(dout)).sum().backward()
    return x.grad.numpy()


def _layer(d, momentum=0.1, eps=1e-5, running_mean=None, running_var=None, batches_seen=0):
    layer = torch.nn.BatchNorm1d(d, eps=eps, momentum=momentum, dtype=torch.float64)
    with torch.no_grad():
        if running_mean is not None:
            layer.running_mean.copy_(_t(running_mean))
            layer.running_var.copy_(_t(running_var))
        layer.num_batches_tracked.fill_(batches_seen)
    return layer


def _buffers(layer):
    return layer.running_mean.detach().numpy().copy(), layer.running_var.detach().numpy().copy()


@_uses_torch_kernels
def update_running_stats(running_mean, running_var, batch_mean, batch_var, momentum=0.9):
    """The seed's momentum m is torch's 1 - m. A batch of two examples, mean -+ sqrt(var / 2),
    has exactly this mean and *unbiased* variance, which is what torch's running_var takes in."""
    spread = np.sqrt(np.asarray(batch_var, np.float64) / 2)
    batch = np.stack([batch_mean - spread, batch_mean + spread])
    layer = _layer(len(batch_mean), 1.0 - momentum, running_mean=running_mean, running_var=running_var)
    with torch.no_grad():
        layer(_t(batch))
    return _buffers(layer)


@_uses_torch_kernels
def batchnorm_inference(x, gamma, beta, running_mean, running_var, eps=1e-5):
    return F.batch_norm(_t(x), _t(running_mean), _t(running_var), _t(gamma), _t(beta),
                        training=False, eps=eps).numpy()


@_uses_torch_kernels
def update_running_stats_torch(running_mean, running_var, x, momentum=0.1, batches_seen=0):
    layer = _layer(x.shape[1], momentum, running_mean=running_mean, running_var=running_var,
                   batches_seen=batches_seen)
    with torch.no_grad():
        layer(_t(x))
    return _buffers(layer)


def init_running_stats(num_features, dtype=np.float64):
    layer = torch.nn.BatchNorm1d(num_features, dtype=getattr(torch, np.dtype(dtype).name))
    return {"running_mean": layer.running_mean.numpy(), "running_var": layer.running_var.numpy(),
            "num_batches_tracked": int(layer.num_batches_tracked)}


@_uses_torch_kernels
def batchnorm_layer_forward(xs, training, gamma, beta, momentum=0.1, eps=1e-5):
    """torch.nn.BatchNorm1d through the same steps (see bncourse.judge.run_steps)."""
    layer = _layer(xs.shape[2], momentum, eps)
    with torch.no_grad():
        layer.weight.copy_(_t(gamma))
        layer.bias.copy_(_t(beta))
    ys, means, variances, counts = [], [], [], []
    for x, train in zip(xs, training):
        layer.train(bool(train))
        with torch.no_grad():
            ys.append(layer(_t(x)).numpy())
        mean, var = _buffers(layer)
        means.append(mean)
        variances.append(var)
        counts.append(int(layer.num_batches_tracked))
    return np.stack(ys), np.stack(means), np.stack(variances), np.array(counts)


@_uses_torch_kernels
def layer_norm(x, gamma, beta, eps=1e-5):
    return F.layer_norm(_t(x), (x.shape[1],), _t(gamma), _t(beta), eps=eps).numpy()


@_uses_torch_kernels
def group_norm(x, num_groups, gamma, beta, eps=1e-5):
    return F.group_norm(_t(x), num_groups, _t(gamma), _t(beta), eps=eps).numpy()


@_uses_torch_kernels
def fold_batchnorm(x, weight, bias, gamma, beta, running_mean, running_var, eps=1e-5):
    """The layer followed by its BatchNorm in eval mode, unfolded, as torch computes it."""
    layer, bn = judge.torch_layers(*(np.asarray(a, np.float64) for a in
                                     (weight, bias, gamma, beta, running_mean, running_var)), eps=eps)
    with torch.no_grad():
        return bn(layer(_t(x))).numpy()


# ---------------------------------------------------------------- lessons 00 and 06

def _t64(a):
    return torch.as_tensor(np.asarray(a, np.float64))


def activation_summary(a):
    t = _t64(a).reshape(-1)
    quantiles = torch.quantile(t, torch.tensor([0.15, 0.5, 0.85], dtype=torch.float64))  # linear, as numpy
    return torch.cat([t.mean()[None], t.std(correction=0)[None], quantiles]).numpy()


def shift_per_step(means, stds):
    return (torch.diff(_t64(means), dim=0).abs() / _t64(stds)[:-1]).numpy()


def largest_stable_lr(lrs, final_losses, start_loss):
    lrs, losses = _t64(lrs), _t64(final_losses)
    trained = torch.isfinite(losses) & (losses < start_loss)
    return float(lrs[trained].max()) if bool(trained.any()) else 0.0


def effective_smoothness(g0, gs, etas):
    g0, gs = _t64(g0), _t64(gs)
    return float((torch.linalg.vector_norm(gs - g0, dim=1) / (_t64(etas) * torch.linalg.vector_norm(g0))).max())


def batch_mean_noise(x, batch_size):
    x = _t64(x)
    count = x.shape[0] // batch_size
    means = x[:count * batch_size].reshape(count, batch_size, -1).mean(dim=1)
    return float(means.std(dim=0, correction=0).mean())


def _float64_params(params):
    return {k: np.asarray(v, np.float64) for k, v in params.items()}


def _inputs_by_hooks(model, x):
    inputs = []
    handles = [m.register_forward_hook(lambda m, args, out: inputs.append(args[0].detach().numpy().copy()))
               for m in model.modules() if isinstance(m, torch.nn.Linear)]
    with torch.no_grad():
        model(x)
    for h in handles:
        h.remove()
    return inputs


@_uses_torch_kernels
def record_layer_inputs(x, params, batchnorm=False):
    return judge.run_recorder(_inputs_by_hooks)(np.asarray(x, np.float64), _float64_params(params), batchnorm)


def _autograd_norms(model, x, y):
    linears = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    grads = torch.autograd.grad(F.cross_entropy(model(x), y), [m.weight for m in linears])
    return np.array([float(torch.linalg.matrix_norm(g)) for g in grads])


@_uses_torch_kernels
def gradient_norms(x, labels, params, batchnorm=False):
    return judge.run_gradient_norms(_autograd_norms)(np.asarray(x, np.float64), labels,
                                                     _float64_params(params), batchnorm)


# ---------------------------------------------------------------- lesson 05

@_uses_torch_kernels
def BatchNormFunction(x, weight, bias, dout, eps=1e-5):
    x, weight, bias = (_t(a).requires_grad_() for a in (x, weight, bias))
    y = F.batch_norm(x, None, None, weight, bias, training=True, eps=eps)
    y.backward(_t(dout))
    return y.detach().numpy(), x.grad.numpy(), weight.grad.numpy(), bias.grad.numpy()


@_uses_torch_kernels
def BatchNorm1d(*args, **kwargs):
    return judge.run_module(torch.nn.BatchNorm1d, exact=True, piece="BatchNorm1d")(*args, **kwargs)


@_uses_torch_kernels
def BatchNorm2d(*args, **kwargs):
    return judge.run_module(torch.nn.BatchNorm2d, exact=True, piece="BatchNorm2d")(*args, **kwargs)


PIECES = {f.__name__: f for f in (
    activation_summary, record_layer_inputs, shift_per_step,
    batch_mean, batch_variance, normalise, scale_and_shift, batchnorm_forward,
    batchnorm_backward_staged, batchnorm_backward, numerical_gradient,
    update_running_stats, batchnorm_inference, update_running_stats_torch, init_running_stats,
    batchnorm_layer_forward, BatchNormFunction, BatchNorm1d, BatchNorm2d,
    largest_stable_lr, gradient_norms, effective_smoothness, batch_mean_noise,
    layer_norm, group_norm, fold_batchnorm)}
# What each piece's answers are compared with, as the messages say it.
NAMES = {piece: "torch.autograd" if piece in judge.BACKWARD + ("numerical_gradient", "BatchNormFunction",
                                                                "gradient_norms")
         else "torch.nn.BatchNorm1d" for piece in PIECES}
NAMES.update(layer_norm="torch.nn.LayerNorm", group_norm="torch.nn.GroupNorm",
             fold_batchnorm="torch's layer followed by its BatchNorm in eval mode",
             BatchNorm1d="torch.nn.BatchNorm1d", BatchNorm2d="torch.nn.BatchNorm2d",
             activation_summary="torch (mean, std, quantile)", record_layer_inputs="torch forward hooks",
             shift_per_step="torch", largest_stable_lr="torch", effective_smoothness="torch.linalg",
             batch_mean_noise="torch")


def expected(piece):
    """`expected(case)` callable for bncourse.judge.judge_case."""
    return judge.expected_from(sys.modules[__name__], piece)
