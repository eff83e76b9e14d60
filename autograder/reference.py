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
    """Training-mode forward: returns (y, cache) with the keys in bncourse.judge.CACHE_KEYS."""
    mean, var = batch_mean(x), batch_variance(x)
    x_hat = normalise(x, mean, var, eps)
    y = scale_and_shift(x_hat, gamma, beta)
    cache = {"x": x, "mean": mean, "var": var, "eps": eps, "x_hat": x_hat,
             "gamma": gamma, "beta": beta}
    return y, cache


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
    """The seed's convention: momentum weighs the old value."""
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
    """A sequence of steps (see bncourse.judge.run_steps): outputs and state after each."""
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
    """What the folded layer outputs for x (see bncourse.judge.run_fold), from the formula
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
