"""Expected answers taken from PyTorch's own BatchNorm, in float64.

Each function takes the same arguments as the learner's piece and returns the exact
float64 answer, computed by torch.nn.BatchNorm1d / torch.nn.functional.batch_norm:
  - momentum=1.0 makes running_mean the batch mean (running_var is the *unbiased* variance);
  - affine=False exposes x_hat;
  - eval mode with given statistics computes (x - mean) / sqrt(var + eps).
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


PIECES = {f.__name__: f for f in (batch_mean, batch_variance, normalise, scale_and_shift,
                                  batchnorm_forward)}


def expected(piece):
    """`expected(case)` callable for bncourse.judge.judge_case."""
    return judge.expected_from(sys.modules[__name__], piece)
