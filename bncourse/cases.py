"""A graded piece's inputs: one `Case` per call, and the batches, parameters and models they hold."""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field

import numpy as np


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
        """f(x); xp=torch: on a tensor, differentiable (torch.autograd gives the exact gradient)."""
        p = {k: (xp.as_tensor(v) if xp is not np else v) for k, v in self.params.items()}
        if self.kind == "tanh_layer":
            return xp.tanh(x @ p["W"] + p["b"])
        # batchnorm: torch's own forward pass, the decomposition of aten's native_batch_norm that
        # ships with torch (elementwise ops: no kernel the grading tripwire switches off, and
        # torch.func can take its forward-mode derivatives)
        import torch
        from torch._decomp import decomposition_table
        native_batch_norm = decomposition_table[torch.ops.aten.native_batch_norm.default]
        t = x if xp is not np else torch.as_tensor(np.asarray(x, np.float64))
        gamma, beta = (torch.as_tensor(self.params[k]) for k in ("gamma", "beta"))
        y = native_batch_norm(t, gamma, beta, None, None, True, 0.0, 1e-5)[0]
        return y if xp is not np else y.numpy()

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


def shape_grid(rng, count):
    """Varied shapes; N != D mostly, so a transposed answer shows up as a shape error."""
    fixed = [(4, 3), (2, 1), (2, 5), (7, 1), (64, 8), (5, 5)]
    extra = [(int(rng.integers(2, 65)), int(rng.integers(1, 13))) for _ in range(count)]
    return fixed + extra



def params(rng, d, dtype):
    gamma = rng.normal(1.0, 0.5, d).astype(dtype)
    beta = rng.normal(0.0, 1.0, d).astype(dtype)
    return gamma, beta



def kw(kwargs):
    return "".join(f", {k}={v}" for k, v in kwargs.items())


def mlp_params(rng, widths, dtype):
    """Weights (out, in) and biases of an MLP with these layer widths, as torch.nn.Linear keeps them."""
    params = {}
    for k, (w_in, w_out) in enumerate(zip(widths[:-1], widths[1:])):
        params[f"w{k}"] = rng.normal(0, 1.5 / np.sqrt(w_in), (w_out, w_in)).astype(dtype)
        params[f"b{k}"] = rng.normal(0, 0.5, w_out).astype(dtype)
    return params


def mlp_case(rng, x, i, labels):
    """An MLP's parameters and a batch for it (record_layer_inputs, gradient_norms): 1 to 5
    hidden layers, BatchNorm in about half the cases, the model in train or eval mode; labels:
    add class labels."""
    (n, d), dtype = x.shape, x.dtype
    depth = [1, 2, 3, 5][i % 4]
    n = max(n, 2)
    widths = [d] + [int(rng.integers(2, 9)) for _ in range(depth)] + [int(rng.integers(2, 6))]
    x = rng.normal(0, 1, (n, d)).astype(dtype) * rng.uniform(0.5, 2.0, d).astype(dtype)
    weights = mlp_params(rng, widths, dtype)
    batchnorm = bool(i % 2 == 0 or dtype == np.float64 and i % 3 == 0)
    kwargs = {"batchnorm": batchnorm} if batchnorm else {}
    if batchnorm and i % 4 == 2:  # a model in eval mode: its BatchNorm uses the running statistics
        kwargs["train"] = False
    what = (f"{np.dtype(dtype).name} MLP with layer widths {widths}"
            + (f" and BatchNorm, the model in {'eval' if i % 4 == 2 else 'train'} mode" if batchnorm else "")
            + f", x of shape {x.shape}")
    if not labels:
        return Case(what, (x, weights), kwargs)
    labels = rng.integers(0, widths[-1], n).astype(np.int64)
    return Case(what, (x, labels, weights), kwargs)


def digest(args, kwargs):
    """Identifies one call by its inputs' dtypes, shapes and bytes."""
    h = hashlib.sha256()

    def feed(a):
        if isinstance(a, dict):
            for k in sorted(a):
                h.update(f"[{k}]".encode())
                feed(a[k])
        elif isinstance(a, Formula):
            h.update(f"<{a.kind}>".encode())
            feed(a.params)
        else:
            a = np.asarray(a)
            h.update(f"{a.dtype.str}{a.shape}".encode())
            h.update(np.ascontiguousarray(a).tobytes())
    for a in args:
        feed(a)
    h.update(json.dumps(sorted(kwargs.items())).encode())
    return h.hexdigest()


def encode_input(a, arrays, key):
    """An input as JSON, its arrays into `arrays` under keys starting with `key`: an array, a
    number, a dict of those (a cache), or a Formula (numerical_gradient's f). What the grader
    writes for the sandbox to answer and probes.npz holds are written this way."""
    if isinstance(a, dict):
        return {"dict": {k: encode_input(v, arrays, f"{key}_{n}") for n, (k, v) in enumerate(a.items())}}
    if isinstance(a, Formula):
        return {"formula": a.kind, "params": encode_input(a.params, arrays, key)}
    arrays[key] = np.asarray(a)
    return {"array": key, "scalar": not isinstance(a, np.ndarray)}


def decode_input(desc, arrays):
    """The input that encode_input described."""
    if "dict" in desc:
        return {k: decode_input(v, arrays) for k, v in desc["dict"].items()}
    if "formula" in desc:
        return Formula(desc["formula"], **decode_input(desc["params"], arrays))
    a = arrays[desc["array"]]
    return a.item() if desc["scalar"] else a
