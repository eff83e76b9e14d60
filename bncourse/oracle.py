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

import numpy as np

from bncourse import adapters, lazy, tripwire

torch = lazy.Module("torch")  # the pieces' specs name these functions: imported at first use
F = lazy.Module("torch.nn.functional")


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


# ---------------------------------------------------------------- lesson 03's nodes: each one's
# vector-Jacobian product, torch.autograd through the node's forward in float64

def _vjp(forward, upstream, *inputs):
    """The gradients that torch.autograd sends from `upstream` (dL/d out) to each input of
    out = forward(*inputs): broadcasting in the forward pass sums over rows on the way back."""
    leaves = [_t(a).requires_grad_() for a in inputs]
    grads = torch.autograd.grad(forward(*leaves), leaves, _t(upstream), allow_unused=True)
    return tuple(torch.zeros_like(t) if g is None else g for g, t in zip(grads, leaves))


def scale_shift_backward(dy, x_hat, gamma):
    beta = np.zeros(np.shape(gamma))
    return tuple(g.numpy() for g in _vjp(lambda xh, g, b: g * xh + b, dy, x_hat, gamma, beta))


def product_backward(dx_hat, xc, r):
    return tuple(g.numpy() for g in _vjp(lambda a, b: a * b, dx_hat, xc, r))


def reciprocal_backward(dr, s):
    return _vjp(lambda v: 1 / v, dr, s)[0].numpy()


def sqrt_backward(ds, var, eps):
    return _vjp(lambda v: torch.sqrt(v + eps), ds, var)[0].numpy()


def variance_backward(dvar, xc):
    return _vjp(lambda v: (v ** 2).mean(dim=0), dvar, xc)[0].numpy()


def centre_backward(dxc):
    n, d = np.shape(dxc)
    return tuple(g.numpy() for g in _vjp(lambda x, m: x - m, dxc, np.zeros((n, d)), np.zeros(d)))


def mean_backward(dmean, x):
    return _vjp(lambda v: v.mean(dim=0), dmean, x)[0].numpy()


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
    """This course's first convention's momentum m is torch's 1 - m. A batch of two examples, mean -+ sqrt(var / 2),
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
    """torch.nn.BatchNorm1d through the same steps (see bncourse.adapters.adapt_steps)."""
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
    layer, bn = adapters.torch_layers(*(np.asarray(a, np.float64) for a in
                                     (weight, bias, gamma, beta, running_mean, running_var)), eps=eps)
    with torch.no_grad():
        return bn(layer(_t(x))).numpy()


# ---------------------------------------------------------------- lesson 05

@_uses_torch_kernels
def BatchNormFunction(x, weight, bias, dout, eps=1e-5):
    x, weight, bias = (_t(a).requires_grad_() for a in (x, weight, bias))
    y = F.batch_norm(x, None, None, weight, bias, training=True, eps=eps)
    y.backward(_t(dout))
    return y.detach().numpy(), x.grad.numpy(), weight.grad.numpy(), bias.grad.numpy()


@_uses_torch_kernels
def BatchNorm1d(*args, **kwargs):
    return adapters.adapt_module(torch.nn.BatchNorm1d, exact=True, piece="BatchNorm1d")(*args, **kwargs)


@_uses_torch_kernels
def BatchNorm2d(*args, **kwargs):
    return adapters.adapt_module(torch.nn.BatchNorm2d, exact=True, piece="BatchNorm2d")(*args, **kwargs)


# lesson 05's steps: each through torch's own module or F.batch_norm (bncourse.adapters adapts them)

@_uses_torch_kernels
def make_parameters_and_buffers(*args, **kwargs):
    def made_by_torch(module, num_features, **config):
        twin = torch.nn.BatchNorm1d(num_features, **config)
        for name in ("weight", "bias"):
            module.register_parameter(name, twin._parameters[name])
        for name in ("running_mean", "running_var", "num_batches_tracked"):
            module.register_buffer(name, twin._buffers[name])
    return adapters.adapt_parameters(made_by_torch)(*args, **kwargs)


@_uses_torch_kernels
def training_forward(*args, **kwargs):
    def step(rows, weight, bias, running_mean, running_var, num_batches_tracked, momentum=0.1, eps=1e-5):
        factor = 0.0
        if num_batches_tracked is not None:  # as torch.nn.BatchNorm1d's forward does it
            num_batches_tracked.add_(1)
            factor = 1.0 / float(num_batches_tracked) if momentum is None else momentum
        return F.batch_norm(rows, running_mean, running_var, weight, bias, training=True, momentum=factor, eps=eps)
    return adapters.adapt_training(step, exact=True)(*args, **kwargs)


@_uses_torch_kernels
def eval_forward(*args, **kwargs):
    def step(rows, weight, bias, running_mean, running_var, eps=1e-5):
        return F.batch_norm(rows, running_mean, running_var, weight, bias, training=False, eps=eps)
    return adapters.adapt_eval(step, exact=True)(*args, **kwargs)


@_uses_torch_kernels
def check_input(x, dims):
    """Which situations torch's own module refuses: BatchNorm1d for dims (2, 3), BatchNorm2d for (4,),
    in training mode for batch statistics, in eval mode (tracking) otherwise."""
    cls = torch.nn.BatchNorm2d if tuple(int(d) for d in dims) == (4,) else torch.nn.BatchNorm1d
    found = []
    for what, shape, use_batch, eps in adapters.input_situations(x.shape[1], dims):
        module = cls(x.shape[1], eps=eps, dtype=torch.as_tensor(x).dtype).train(use_batch)
        try:
            module(torch.ones(shape, dtype=torch.as_tensor(x).dtype))
            found.append(f"{what}: no error")
        except Exception as e:
            found.append(f"{what}: {type(e).__name__}")
    return adapters.encode_text("; ".join(found))
