"""Checking and timing a BatchNorm backward pass (lesson 03).

    timing.relative_error(a, b)                        # one number: how far a is from b
    timing.torch_backward(x, gamma, beta, dout)        # (dx, dgamma, dbeta) from torch.autograd
    timing.gradcheck_numpy_backward(forward, backward) # torch.autograd.gradcheck on NumPy code
    timing.compare_backward(staged, compact)           # a small timing table, returned as a dict

Everything torch computes here runs in float64 except the timing, which uses float32 like a
real training step. Calls into torch's own BatchNorm kernels sit inside `tripwire.allowed()`:
they are the course's reference, not the learner's answer.
"""
import contextlib
import functools
import time

import numpy as np

from bncourse import lazy, tripwire

torch = lazy.Module("torch")  # lesson 03 is a NumPy lesson: torch only when a demonstration asks
F = lazy.Module("torch.nn.functional")


def relative_error(a, b):
    """max |a - b|, relative to the largest entry of a or b (0 when both are all zero).

    For float64 gradients checked with finite differences, 1e-7 or less means "the same up to
    rounding", 1e-2 or more a mistake; anything in between calls for a closer look.
    """
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    scale = max(np.max(np.abs(a)), np.max(np.abs(b)))
    return 0.0 if scale == 0 else float(np.max(np.abs(a - b)) / scale)


def _as_tensor(a, requires_grad=False):
    return torch.tensor(np.asarray(a, dtype=np.float64), requires_grad=requires_grad)


def torch_backward(x, gamma, beta, dout, eps=1e-5):
    """(dx, dgamma, dbeta) as NumPy float64 arrays, by torch.autograd through F.batch_norm.

    The forward runs in training mode (batch statistics, biased variance), then autograd
    pushes `dout` back: the same quantities as the lesson's backward functions.
    """
    x_t, g_t, b_t = (_as_tensor(a, requires_grad=True) for a in (x, gamma, beta))
    with tripwire.allowed():
        y = F.batch_norm(x_t, None, None, g_t, b_t, training=True, eps=eps)
        grads = torch.autograd.grad(y, (x_t, g_t, b_t), _as_tensor(dout))
    return tuple(g.numpy() for g in grads)


@functools.cache
def _numpy_batchnorm():
    """A torch operation whose forward and backward are NumPy functions (float64)."""

    class NumpyBatchNorm(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x, gamma, beta, forward, backward, eps):
            # copies: gradcheck nudges its inputs in place, the cache must keep what it saw
            y, ctx.cache = forward(*(t.detach().numpy().copy() for t in (x, gamma, beta)), eps)
            ctx.backward = backward
            return torch.from_numpy(np.array(y, dtype=np.float64))

        @staticmethod
        def backward(ctx, dout):
            grads = ctx.backward(dout.detach().numpy().copy(), ctx.cache)
            return (*(torch.from_numpy(np.array(g, dtype=np.float64)) for g in grads),
                    None, None, None)

    return NumpyBatchNorm


def gradcheck_numpy_backward(forward, backward, shape=(5, 3), eps=1e-5, seed=0):
    """Run torch.autograd.gradcheck on a NumPy forward/backward pair, in float64.

    forward(x, gamma, beta, eps) -> (y, cache); backward(dout, cache) -> (dx, dgamma, dbeta).
    gradcheck builds the whole Jacobian of y with respect to x, gamma and beta twice, once
    from `backward` (one call per output entry) and once by centred differences of
    `forward`, and compares every entry. Returns True or False.
    """
    rng = np.random.default_rng(seed)
    x = _as_tensor(rng.normal(2.0, 3.0, shape), requires_grad=True)
    gamma = _as_tensor(rng.normal(1.0, 0.5, shape[1]), requires_grad=True)
    beta = _as_tensor(rng.normal(0.0, 1.0, shape[1]), requires_grad=True)
    # one direct call first, so that an unfinished backward says so plainly
    backward(rng.standard_normal(shape), forward(x.detach().numpy(), gamma.detach().numpy(),
                                                  beta.detach().numpy(), eps)[1])
    return torch.autograd.gradcheck(
        lambda x, g, b: _numpy_batchnorm().apply(x, g, b, forward, backward, eps),
        (x, gamma, beta), raise_exception=False)


def _forward_cache(x, gamma, beta, eps):
    """The cache lesson 02's forward pass leaves, for the timed backward functions to read.

    torch's kernel computes it: the course's reference, not an answer shipped to learners.
    """
    with tripwire.allowed():
        x_t = torch.from_numpy(x)
        var, mean = torch.var_mean(x_t, dim=0, unbiased=False)
        x_hat = F.batch_norm(x_t, None, None, training=True, eps=float(eps))
    return {"x": x, "mean": mean.numpy(), "var": var.numpy(), "eps": eps, "x_hat": x_hat.numpy(),
            "gamma": gamma, "beta": beta}


@contextlib.contextmanager
def one_thread():
    """Run torch on a single thread inside the block (the same arithmetic however many cores
    the machine has, and timings about the work, not the core count); the previous setting is
    restored afterwards."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def best_time(fn, repeats=5, warmup=3):
    """The fastest of `repeats` runs of fn(), in seconds, after `warmup` untimed runs.

    The minimum, not the mean: every run does the same work, so the slower ones are slower
    only because something else (the OS, another program) got in the way. The warm-up runs
    let one-off costs pass first: memory that the process has not used yet, torch starting
    its autograd engine.
    """
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def compare_backward(staged, compact, shape=(256, 4096), repeats=5, dtype=np.float32,
                     seed=0, verbose=True):
    """Time two NumPy backward functions and torch's CPU kernel on one (N, D) batch.

    All three get the same float32 batch, gamma, beta and random dout. torch runs on one
    thread (restored afterwards) so that the comparison is about the work done, not about
    the number of cores; NumPy's element-wise operations use one thread anyway. For torch
    only the backward is timed: the forward runs once, with requires_grad, outside the
    clock. Prints a table unless verbose=False; returns {name: seconds}.
    """
    rng = np.random.default_rng(seed)
    n, d = shape
    x = (3.0 + 2.0 * rng.standard_normal(shape)).astype(dtype)
    gamma = rng.normal(1.0, 0.5, d).astype(dtype)
    beta = rng.normal(0.0, 1.0, d).astype(dtype)
    dout = rng.standard_normal(shape).astype(dtype)
    cache = _forward_cache(x, gamma, beta, dtype(1e-5))

    times = {"staged": best_time(lambda: staged(dout, cache), repeats),
             "compact": best_time(lambda: compact(dout, cache), repeats)}

    with one_thread(), tripwire.allowed():
        x_t, g_t, b_t = (torch.from_numpy(a).requires_grad_() for a in (x, gamma, beta))
        y = F.batch_norm(x_t, None, None, g_t, b_t, training=True, eps=1e-5)
        times["torch"] = best_time(
            lambda: torch.autograd.grad(y, (x_t, g_t, b_t), torch.from_numpy(dout), retain_graph=True),
            repeats)

    if verbose:
        print(f"backward of a ({n}, {d}) {np.dtype(dtype).name} batch, fastest of {repeats} runs")
        labels = {"staged": "staged (node by node)", "compact": "compact (closed form)",
                  "torch": "torch CPU kernel, 1 thread"}
        for name, seconds in times.items():
            print(f"  {labels[name]:28s} {seconds * 1e3:7.2f} ms   "
                  f"{seconds / times['compact']:5.2f} x compact")
    return times
