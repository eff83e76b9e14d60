"""Hidden reference implementation: the grader's ground truth.

Every function computes in float64, whatever the input dtype, so it can judge a
float32 answer against the exact value of the same float32 inputs.
Never imported by learner-facing code.
"""
import numpy as np


def _f64(a):
    return np.asarray(a, dtype=np.float64)


def batch_mean(x):
    """(N, D) -> (D,): mean over the batch axis."""
    return _f64(x).mean(axis=0)


def batch_variance(x):
    """(N, D) -> (D,): biased, two-pass variance over the batch axis."""
    x = _f64(x)
    return ((x - x.mean(axis=0)) ** 2).mean(axis=0)


def normalise(x, mean, var, eps=1e-5):
    """(N, D), (D,), (D,) -> (N, D): (x - mean) / sqrt(var + eps)."""
    return (_f64(x) - _f64(mean)) / np.sqrt(_f64(var) + eps)


def scale_and_shift(x_hat, gamma, beta):
    """(N, D), (D,), (D,) -> (N, D): gamma * x_hat + beta."""
    return _f64(gamma) * _f64(x_hat) + _f64(beta)


def batchnorm_forward(x, gamma, beta, eps=1e-5):
    """Training-mode forward: returns (y, cache) with the keys in bncourse.pieces.lesson02.CACHE_KEYS."""
    mean, var = batch_mean(x), batch_variance(x)
    x_hat = normalise(x, mean, var, eps)
    y = scale_and_shift(x_hat, gamma, beta)
    cache = {"x": x, "mean": mean, "var": var, "eps": eps, "x_hat": x_hat,
             "gamma": gamma, "beta": beta}
    return y, cache


# lesson 03: each node's backward, given the gradient at its output (dL/d out) and the values its
# forward pass read; a (D,) value used on every row collects the sum over the rows

def scale_shift_backward(dy, x_hat, gamma):
    """y = gamma * x_hat + beta -> (dx_hat (N, D), dgamma (D,), dbeta (D,))."""
    dy = _f64(dy)
    return dy * _f64(gamma), (dy * _f64(x_hat)).sum(axis=0), dy.sum(axis=0)


def product_backward(dx_hat, xc, r):
    """x_hat = xc * r -> (dxc (N, D), dr (D,))."""
    dx_hat = _f64(dx_hat)
    return dx_hat * _f64(r), (dx_hat * _f64(xc)).sum(axis=0)


def reciprocal_backward(dr, s):
    """r = 1 / s -> ds (D,)."""
    return -_f64(dr) / _f64(s) ** 2


def sqrt_backward(ds, var, eps):
    """s = sqrt(var + eps) -> dvar (D,)."""
    return _f64(ds) / (2 * np.sqrt(_f64(var) + eps))


def variance_backward(dvar, xc):
    """var = mean(xc ** 2) over the batch -> dxc (N, D)."""
    xc = _f64(xc)
    return 2 * xc * _f64(dvar) / xc.shape[0]


def centre_backward(dxc):
    """xc = x - mean -> (dx (N, D), dmean (D,))."""
    dxc = _f64(dxc)
    return dxc.copy(), -dxc.sum(axis=0)


def mean_backward(dmean, x):
    """mean = x.mean(axis=0) -> dx (N, D)."""
    n = np.shape(x)[0]
    return np.broadcast_to(_f64(dmean) / n, np.shape(x)).copy()


def batchnorm_backward(dout, cache):
    """(N, D) dout and a forward cache -> (dx (N, D), dgamma (D,), dbeta (D,)), closed form."""
    dout, x_hat, gamma = _f64(dout), _f64(cache["x_hat"]), _f64(cache["gamma"])
    n = dout.shape[0]
    inv_std = 1.0 / np.sqrt(_f64(cache["var"]) + cache["eps"])
    dbeta = dout.sum(axis=0)
    dgamma = (dout * x_hat).sum(axis=0)
    dx = gamma * inv_std / n * (n * dout - dbeta - x_hat * dgamma)
    return dx, dgamma, dbeta


batchnorm_backward_staged = batchnorm_backward  # the same gradients, whichever way derived


def numerical_gradient(f, x, dout, h=1e-5):
    """Centred differences of L(x) = sum(f(x) * dout), one element of x at a time."""
    x = _f64(x).copy()
    grad = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        old = x[i]
        x[i] = old + h
        plus = np.sum(f(x) * dout)
        x[i] = old - h
        minus = np.sum(f(x) * dout)
        x[i] = old
        grad[i] = (plus - minus) / (2 * h)
    return grad


def update_running_stats(running_mean, running_var, batch_mean, batch_var, momentum=0.9):
    """This course's first convention: momentum (rho) weighs the old value."""
    return (momentum * _f64(running_mean) + (1 - momentum) * _f64(batch_mean),
            momentum * _f64(running_var) + (1 - momentum) * _f64(batch_var))


def batchnorm_inference(x, gamma, beta, running_mean, running_var, eps=1e-5):
    return scale_and_shift(normalise(x, running_mean, running_var, eps), gamma, beta)


def update_running_stats_torch(running_mean, running_var, x, momentum=0.1, batches_seen=0):
    """PyTorch's convention: momentum weighs the new batch (None: cumulative average); the
    running variance takes the unbiased batch variance."""
    x = _f64(x)
    w = 1.0 / (batches_seen + 1) if momentum is None else momentum
    unbiased = batch_variance(x) * len(x) / (len(x) - 1)
    return (1 - w) * _f64(running_mean) + w * batch_mean(x), (1 - w) * _f64(running_var) + w * unbiased


def init_running_stats(num_features, dtype=np.float64):
    return {"running_mean": np.zeros(num_features, dtype), "running_var": np.ones(num_features, dtype),
            "num_batches_tracked": 0}


def batchnorm_layer_forward(xs, training, gamma, beta, momentum=0.1, eps=1e-5):
    """A sequence of steps (see bncourse.adapters.adapt_steps): outputs and state after each."""
    state = init_running_stats(xs.shape[2])
    ys, means, variances, counts = [], [], [], []
    for x, train in zip(xs, training):
        if train:
            ys.append(batchnorm_forward(x, gamma, beta, eps)[0])
            state["running_mean"], state["running_var"] = update_running_stats_torch(
                state["running_mean"], state["running_var"], x, momentum, state["num_batches_tracked"])
            state["num_batches_tracked"] += 1
        else:
            ys.append(batchnorm_inference(x, gamma, beta, state["running_mean"], state["running_var"], eps))
        means.append(state["running_mean"])
        variances.append(state["running_var"])
        counts.append(state["num_batches_tracked"])
    return np.stack(ys), np.stack(means), np.stack(variances), np.array(counts)


def layer_norm(x, gamma, beta, eps=1e-5):
    """(N, D): each example normalised over its own features."""
    x = _f64(x)
    mean = x.mean(axis=1, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=1, keepdims=True)
    return _f64(gamma) * (x - mean) / np.sqrt(var + eps) + _f64(beta)


def group_norm(x, num_groups, gamma, beta, eps=1e-5):
    """(N, C, ...): each example's group of C/G channels normalised over channels and positions."""
    x = _f64(x)
    n, c = x.shape[:2]
    groups = x.reshape(n, num_groups, -1)
    mean = groups.mean(axis=2, keepdims=True)
    var = ((groups - mean) ** 2).mean(axis=2, keepdims=True)
    x_hat = ((groups - mean) / np.sqrt(var + eps)).reshape(x.shape)
    shape = (1, c) + (1,) * (x.ndim - 2)
    return _f64(gamma).reshape(shape) * x_hat + _f64(beta).reshape(shape)


def fold_batchnorm(x, weight, bias, gamma, beta, running_mean, running_var, eps=1e-5):
    """What the folded layer outputs for x (see bncourse.adapters.adapt_fold), from the formula
    for its weight and bias."""
    x, weight = _f64(x), _f64(weight)
    scale = _f64(gamma) / np.sqrt(_f64(running_var) + eps)
    b = _f64(bias) if np.size(bias) else np.zeros_like(scale)
    new_bias = (b - _f64(running_mean)) * scale + _f64(beta)
    new_weight = weight * scale.reshape((-1,) + (1,) * (weight.ndim - 1))
    if weight.ndim == 2:
        return x @ new_weight.T + new_bias
    import torch
    out = torch.nn.functional.conv2d(torch.as_tensor(x), torch.as_tensor(new_weight),
                                     padding=weight.shape[-1] // 2).numpy()
    return out + new_bias.reshape(1, -1, 1, 1)


# ---------------------------------------------------------------- lessons 00 and 06

def activation_summary(a):
    """Any shape -> (5,): mean, biased std, 15th / 50th / 85th percentiles (linear)."""
    a = np.sort(_f64(a).reshape(-1))
    positions = np.array([0.15, 0.5, 0.85]) * (a.size - 1)
    low = np.floor(positions).astype(int)
    high = np.minimum(low + 1, a.size - 1)
    percentiles = a[low] + (positions - low) * (a[high] - a[low])
    mean = a.mean()
    return np.concatenate([[mean, np.sqrt(((a - mean) ** 2).mean())], percentiles])


def _mlp_forward(x, params, batchnorm, activation, train=True):
    """The inputs of every Linear of the MLP bncourse.adapters.torch_mlp builds, and what the backward needs."""
    count = len([k for k in params if k.startswith("w")])
    h, inputs, tape = _f64(x), [], []
    for k in range(count):
        inputs.append(h)
        z = h @ _f64(params[f"w{k}"]).T + _f64(params[f"b{k}"])
        if k == count - 1:
            return inputs, tape, z
        cache = None
        if batchnorm and train:
            z, cache = batchnorm_forward(z, np.ones(z.shape[1]), np.zeros(z.shape[1]))
        elif batchnorm:  # eval: a fresh layer's running statistics, mean 0 and variance 1
            z, cache = z / np.sqrt(1 + 1e-5), "eval"
        tape.append((z, cache))
        h = np.tanh(z) if activation == "tanh" else np.maximum(z, 0)


def record_layer_inputs(x, params, batchnorm=False, train=True):
    """(hooks left = 0, the input of each Linear, in order)."""
    inputs, _, _ = _mlp_forward(x, params, batchnorm, "tanh", train)
    return (np.array(0),) + tuple(inputs)


def gradient_norms(x, labels, params, batchnorm=False, train=True):
    """(||dL/dW|| per Linear, 0.0): mean cross-entropy, backpropagated by hand (ReLU MLP)."""
    inputs, tape, logits = _mlp_forward(x, params, batchnorm, "relu", train)
    n = logits.shape[0]
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    dz = p.copy()
    dz[np.arange(n), labels] -= 1
    dz /= n
    norms = []
    for k in range(len(inputs) - 1, -1, -1):
        norms.append(np.linalg.norm(dz.T @ inputs[k]))
        if k == 0:
            break
        dh = dz @ _f64(params[f"w{k}"])
        z, cache = tape[k - 1]
        dz = dh * (z > 0)
        if cache == "eval":
            dz = dz / np.sqrt(1 + 1e-5)
        elif cache is not None:
            dz = batchnorm_backward(dz, cache)[0]
    return np.array(norms[::-1]), 0.0


def shift_per_step(means, stds):
    """(T, L), (T, L) -> (T-1, L): |means[t+1] - means[t]| / stds[t]."""
    means = _f64(means)
    return np.abs(means[1:] - means[:-1]) / _f64(stds)[:-1]


def largest_stable_lr(lrs, final_losses, start_loss):
    """The largest rate whose final loss is finite and below start_loss; 0.0 if none."""
    stable = [lr for lr, loss in zip(_f64(lrs), _f64(final_losses)) if np.isfinite(loss) and loss < start_loss]
    return max(stable, default=0.0)


def effective_smoothness(g0, gs, etas):
    """max_k ||gs[k] - g0|| / (etas[k] ||g0||)."""
    g0, gs = _f64(g0), _f64(gs)
    return max(np.sqrt(((g - g0) ** 2).sum()) / (eta * np.sqrt((g0 ** 2).sum())) for g, eta in zip(gs, _f64(etas)))


def batch_mean_noise(x, batch_size):
    """Mean over features of the (biased) std of consecutive batch means."""
    x = _f64(x)
    means = np.array([x[s:s + batch_size].mean(axis=0)
                      for s in range(0, len(x) - batch_size + 1, batch_size)])
    return np.sqrt(((means - means.mean(axis=0)) ** 2).mean(axis=0)).mean()


# ---------------------------------------------------------------- lesson 05

def BatchNormFunction(x, weight, bias, dout, eps=1e-5):
    """(y, dx, dweight, dbias) of training-mode BatchNorm on (M, C), in numpy."""
    y, cache = batchnorm_forward(x, weight, bias, eps)
    return (y,) + tuple(batchnorm_backward(dout, cache))


def _modules():
    """A reference BatchNorm1d / BatchNorm2d in torch ops (float64 maths), written from torch's
    documentation, independent of the lesson's solution."""
    import torch

    class Reference(torch.nn.Module):
        dims = ()

        def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True, track_running_stats=True,
                     device=None, dtype=None, *, bias=True):
            super().__init__()
            self.num_features, self.eps, self.momentum = num_features, eps, momentum
            self.affine, self.track_running_stats = affine, track_running_stats
            kw = {"device": device, "dtype": dtype}
            self.register_parameter("weight", torch.nn.Parameter(torch.ones(num_features, **kw)) if affine else None)
            self.register_parameter("bias", torch.nn.Parameter(torch.zeros(num_features, **kw))
                                    if affine and bias else None)
            for name, value in (("running_mean", torch.zeros(num_features, **kw)),
                                ("running_var", torch.ones(num_features, **kw)),
                                ("num_batches_tracked", torch.tensor(0, dtype=torch.long))):
                self.register_buffer(name, value if track_running_stats else None)

        def reset_running_stats(self):
            if self.track_running_stats:
                self.running_mean.zero_()
                self.running_var.fill_(1)
                self.num_batches_tracked.zero_()

        def forward(self, x):
            if x.dim() not in self.dims:
                raise ValueError(f"expected {' or '.join(f'{d}D' for d in self.dims)} input (got {x.dim()}D input)")
            shape = [1, -1] + [1] * (x.dim() - 2)
            axes = [0] + list(range(2, x.dim()))
            count = x.numel() // max(x.shape[1], 1)
            # torch reads the attributes at each call: the batch's statistics when training or when
            # there are none; they move only in training with track_running_stats on
            batch = self.training or (self.running_mean is None and self.running_var is None)
            if batch and count == 1:
                raise ValueError("Expected more than 1 value per channel when training")
            if batch and self.eps <= 0:
                raise ValueError(f"batch_norm eps must be positive during training, but got {self.eps}")
            x64 = x.double()
            if batch:
                mean = x64.mean(dim=axes) if count else torch.zeros(self.num_features, dtype=torch.float64)
                var = ((x64 - mean.reshape(shape)) ** 2).mean(dim=axes) if count else torch.ones_like(mean)
                if self.training and self.track_running_stats and self.running_mean is not None:
                    self.num_batches_tracked += 1
                    w = 1 / self.num_batches_tracked.item() if self.momentum is None else self.momentum
                    if count:
                        with torch.no_grad():
                            self.running_mean.copy_((1 - w) * self.running_mean + w * mean)
                            self.running_var.copy_((1 - w) * self.running_var + w * var * count / (count - 1))
            else:
                mean, var = self.running_mean.double(), self.running_var.double()
            y = (x64 - mean.reshape(shape)) / torch.sqrt(var.reshape(shape) + self.eps)
            if self.weight is not None:
                y = y * self.weight.double().reshape(shape)
            if self.bias is not None:
                y = y + self.bias.double().reshape(shape)
            return y.to(x.dtype)

    class BatchNorm1d(Reference):
        dims = (2, 3)

    class BatchNorm2d(Reference):
        dims = (4,)
    return BatchNorm1d, BatchNorm2d


def BatchNorm1d(*args, **kwargs):
    from bncourse.adapters import adapt_module
    return adapt_module(_modules()[0], exact=True, piece="BatchNorm1d")(*args, **kwargs)


def BatchNorm2d(*args, **kwargs):
    from bncourse.adapters import adapt_module
    return adapt_module(_modules()[1], exact=True, piece="BatchNorm2d")(*args, **kwargs)


# lesson 05's steps, written from torch's documentation (float64 maths); each judged through its adapter

def _reference_parameters(module, num_features, affine=True, track_running_stats=True, device=None, dtype=None,
                          bias=True):
    import torch
    kw = {"device": device, "dtype": dtype}
    module.register_parameter("weight", torch.nn.Parameter(torch.ones(num_features, **kw)) if affine else None)
    module.register_parameter("bias", torch.nn.Parameter(torch.zeros(num_features, **kw)) if affine and bias
                              else None)
    for name, value in (("running_mean", torch.zeros(num_features, **kw)),
                        ("running_var", torch.ones(num_features, **kw)),
                        ("num_batches_tracked", torch.tensor(0, dtype=torch.long, device=device))):
        module.register_buffer(name, value if track_running_stats else None)


def make_parameters_and_buffers(*args, **kwargs):
    from bncourse.adapters import adapt_parameters
    return adapt_parameters(_reference_parameters)(*args, **kwargs)


def _reference_training(rows, weight, bias, running_mean, running_var, num_batches_tracked, momentum=0.1, eps=1e-5):
    import torch
    n, c = rows.shape
    x = rows.double()
    mean = x.mean(dim=0) if n else torch.zeros(c, dtype=torch.float64)
    var = ((x - mean) ** 2).mean(dim=0) if n else torch.ones(c, dtype=torch.float64)
    if num_batches_tracked is not None:
        num_batches_tracked += 1
        w = 1 / num_batches_tracked.item() if momentum is None else momentum
        if n:
            with torch.no_grad():
                running_mean.copy_((1 - w) * running_mean + w * mean)
                running_var.copy_((1 - w) * running_var + w * var * n / (n - 1))
    return (weight.double() * (x - mean) / torch.sqrt(var + eps) + bias.double()).to(rows.dtype)


def training_forward(*args, **kwargs):
    from bncourse.adapters import adapt_training
    return adapt_training(_reference_training, exact=True)(*args, **kwargs)


def _reference_eval(rows, weight, bias, running_mean, running_var, eps=1e-5):
    import torch
    return weight * (rows - running_mean) / torch.sqrt(running_var + eps) + bias


def eval_forward(*args, **kwargs):
    from bncourse.adapters import adapt_eval
    return adapt_eval(_reference_eval, exact=True)(*args, **kwargs)


def _reference_check(x, dims, use_batch_statistics, eps=1e-5):
    if x.dim() not in dims:
        raise ValueError(f"expected {' or '.join(f'{d}D' for d in dims)} input (got {x.dim()}D input)")
    if use_batch_statistics and x.numel() // max(x.shape[1], 1) == 1:
        raise ValueError("Expected more than 1 value per channel when training")
    if use_batch_statistics and eps <= 0:
        raise ValueError(f"batch_norm eps must be positive during training, but got {eps}")


def check_input(*args, **kwargs):
    from bncourse.adapters import adapt_input_check
    return adapt_input_check(_reference_check)(*args, **kwargs)
