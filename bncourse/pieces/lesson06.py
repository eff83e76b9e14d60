"""Lesson 06: why BatchNorm works: stable learning rates, gradient norms, smoothness, and the
noise of batch statistics."""
import numpy as np

from bncourse.adapters import adapt_gradient_norms
from bncourse.cases import Case, mlp_case
from bncourse.pieces.spec import Spec
from bncourse.rounding import f64, unit_of

LESSON = "06_why_batchnorm_works"
NORMS = ("the gradient norms", "the largest change it made to a parameter")


def _rates_case(rng, x, label, i):
    k = int(rng.integers(1, 10))
    lrs = 10.0 ** np.linspace(-3, 1, k) * rng.uniform(0.5, 2.0)
    start = float(rng.uniform(1.5, 3.0))
    final = start * rng.uniform(0.05, 0.9, k)
    diverge = int(rng.integers(0, k + 1))  # rates from here on diverge...
    final[diverge:] = rng.choice([np.nan, np.inf, start * 1.5, start], k - diverge)
    if i % 3 == 0 and k - diverge > 2:
        final[k - 1] = start * 0.5  # ...except, by luck, the largest one
    if i % 5 == 4:
        final[:] = np.nan  # nothing trained
    order = rng.permutation(k) if i % 2 else np.arange(k)
    return Case(f"{k} rates" + (", shuffled" if i % 2 else ", ascending")
                + ("" if i % 5 != 4 else ", none trained"), (lrs[order], final[order], start))


def _rates_allowed(case, exact, what="out", exact_all=None):
    return unit_of(case) * np.abs(exact)


def _norms_case(rng, x, label, i):
    return mlp_case(rng, x, i, labels=True)


def _norms_allowed(case, exact, what, exact_all=None):
    if what != NORMS[0]:
        return 0.0
    unit = unit_of(case)
    batchnorm = case.kwargs.get("batchnorm", False) and case.kwargs.get("train", True)  # (eval: a scale by ~1)
    return unit * np.abs(exact) + _gradient_norms_error(*case.args, batchnorm, unit)


def _norms_explain(what, index, got, exact, case):
    """Which model it was: the mode a model's BatchNorm layers were in matters."""
    if not case.kwargs.get("batchnorm"):
        return "(a model without BatchNorm)"
    return f"(a model with BatchNorm, in {'train' if case.kwargs.get('train', True) else 'eval'} mode)"


def _gradient_norms_error(x, labels, params, batchnorm, unit):
    """The rounding error a correct gradient_norms may carry, per Linear: a first-order error
    bound carried through the computation as it runs, each step adding `unit` times the sizes
    it sums and passing on what it received, amplified as the step amplifies it.

    forward: z = h W^T + b errs by e_h |W|^T + unit (|h| |W|^T + |b|); BatchNorm's x_hat by
      (the centred error) / std plus |x_hat| times half the variance's relative error; ReLU
      passes its input's error, and where |its input| is within that error it may switch (a
      correct answer may take either side: the whole upstream gradient there is allowed).
    loss: d logits = (softmax - onehot) / N errs by p (e_z + sum p e_z) / N.
    backward: dW = dz^T h errs by |dz|^T e_h + e_dz^T |h| (+ rounding); dh = dz W likewise;
      BatchNorm's dx = (d - mean(d) - x_hat mean(d x_hat)) / std passes on e_d through the same
      three terms, plus x_hat's own error times the terms it multiplies. That dx is a
      difference of nearly equal terms (with N = 2 it is (d1 - d2)/2 times eps / (var + eps)):
      its error, not its size, is what the terms' sizes set.
    A norm errs by at most the Frobenius norm of its matrix's error, plus its own rounding.
    The values (activations, upstream gradients) are torch's float64 forward and autograd on
    the same model."""
    import torch
    import torch.nn.functional as F

    from bncourse import tripwire
    params = {k: f64(v) for k, v in params.items()}
    last = len([k for k in params if k.startswith("w")]) - 1
    with tripwire.allowed():  # the model torch_mlp builds, in torch's functional form
        inputs, outputs, normed = [torch.tensor(f64(x), requires_grad=True)], [], []
        for k in range(last + 1):
            outputs.append(F.linear(inputs[k], torch.as_tensor(params[f"w{k}"]), torch.as_tensor(params[f"b{k}"])))
            if k == last:
                break
            if batchnorm:
                normed.append(F.batch_norm(outputs[k], None, None, training=True, eps=1e-5))
            inputs.append(F.relu(normed[k] if batchnorm else outputs[k]))
        for t in inputs[1:] + outputs + normed:
            t.retain_grad()
        F.cross_entropy(outputs[last], torch.as_tensor(labels)).backward()

    def value(t):
        return np.zeros(0) if t is None else t.detach().numpy()
    h, z = [value(t) for t in inputs], [value(t) for t in outputs]  # each Linear's input and output
    dz = [value(t.grad) for t in outputs]
    dh = [None] + [value(t.grad) for t in inputs[1:]]
    d_norm = [value(t.grad) for t in normed]  # upstream of each BatchNorm
    weights = [np.abs(params[f"w{k}"]) for k in range(last + 1)]

    e_h, forward = [np.zeros_like(h[0])], []
    for k in range(last + 1):
        e_z = e_h[k] @ weights[k].T + unit * (np.abs(h[k]) @ weights[k].T + np.abs(params[f"b{k}"]))
        if k == last:
            break
        if batchnorm:
            var = z[k].var(axis=0)
            std = np.sqrt(var + 1e-5)
            x_hat = (z[k] - z[k].mean(axis=0)) / std
            e_c = e_z + e_z.mean(axis=0) + unit * np.abs(z[k]).max(axis=0)
            rel_var = (2 * (np.abs(z[k] - z[k].mean(axis=0)) * e_c).mean(axis=0) + e_c.max(axis=0) ** 2) \
                / (var + 1e-5) + unit
            e_pre = e_c / std + np.abs(x_hat) * rel_var / 2 + unit * np.abs(x_hat)
            pre = x_hat
            forward.append((pre, e_pre, x_hat, std, rel_var))
        else:
            pre, e_pre = z[k], e_z
            forward.append((pre, e_pre, None, None, None))
        either = np.abs(pre) <= e_pre  # ReLU may switch
        e_h.append(e_pre * ((pre > 0) | either))
    n = z[last].shape[0]
    p = np.exp(z[last] - z[last].max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    onehot = np.eye(p.shape[1])[np.asarray(labels)]
    e_dz = (p * (e_z + (p * e_z).sum(axis=1, keepdims=True)) + unit * (p + onehot)) / n

    allowed = np.zeros(last + 1)
    for k in range(last, -1, -1):
        g = np.abs(dz[k])
        e_dw = g.T @ e_h[k] + e_dz.T @ np.abs(h[k]) + unit * g.T @ np.abs(h[k])
        allowed[k] = np.sqrt((e_dw ** 2).sum()) + unit * np.sqrt(((g.T @ np.abs(h[k])) ** 2).sum())
        if k == 0:
            break
        e_up = e_dz @ weights[k] + unit * g @ weights[k]
        pre, e_pre, x_hat, std, rel_var = forward[k - 1]
        either = np.abs(pre) <= e_pre
        e_d = e_up * ((pre > 0) | either) + np.abs(dh[k]) * either
        if x_hat is None:
            e_dz = e_d
            continue
        d, a = np.abs(d_norm[k - 1]), np.abs(x_hat)
        e_dz = (e_d + e_d.mean(axis=0) + a * (a * e_d).mean(axis=0)
                + e_pre * np.abs((d_norm[k - 1] * x_hat).mean(axis=0)) + a * (d * e_pre).mean(axis=0)
                + unit * (d + d.mean(axis=0) + a * (d * a).mean(axis=0))) / std \
            + np.abs(dz[k - 1]) * rel_var / 2
    return allowed



def _smoothness_case(rng, x, label, i):
    d, dtype = x.shape[1], x.dtype
    p, k = d * 3, int(rng.integers(1, 6))
    g0 = (x.reshape(-1)[:p] if x.size >= p else rng.normal(0, 1, p)).astype(dtype)
    g0 = (g0 + rng.normal(0, 1, p)).astype(dtype)  # never all zero
    etas = (10.0 ** rng.uniform(-3, 0, k)).astype(dtype)
    gs = (g0 + rng.normal(0, 1, (k, p)) * etas[:, None] * rng.uniform(0.1, 10, (k, 1))).astype(dtype)
    return Case(f"{np.dtype(dtype).name} gradients of {p} weights, {k} step sizes", (g0, gs, etas))


def _smoothness_allowed(case, exact, what="out", exact_all=None):
    g0, gs, etas = (f64(a) for a in case.args)
    g_norm = np.linalg.norm(g0)
    return unit_of(case) * (np.abs(exact) + np.max((np.linalg.norm(gs, axis=1) + g_norm) / (etas * g_norm)))


def _noise_case(rng, x, label, i):
    b = int(rng.integers(1, max(x.shape[0] // 2, 1) + 1))
    return Case(label + f", batch_size={b}", (x, b))


def _noise_allowed(case, exact, what="out", exact_all=None):
    return unit_of(case) * (np.abs(exact) + np.abs(f64(case.args[0])).max())


SPECS = [
    Spec("largest_stable_lr", LESSON, "largest_stable_lr(lrs, final_losses, start_loss)",
         "Lesson 06: the largest learning rate whose run ended finite and below the starting loss.",
         make_case=_rates_case, allowed=_rates_allowed, oracle=None, oracle_name="torch",
         bans=(), covers="grids of 1 to 9 rates, ascending and shuffled, with diverged (nan, inf) runs, a large "
         "rate that trained after a smaller one failed, and grids where none trained"),
    Spec("gradient_norms", LESSON, "gradient_norms(model, x, y)",
         "Lesson 06: the norm of each Linear weight's gradient, compared with torch.autograd.",
         make_case=_norms_case, allowed=_norms_allowed, oracle=None, oracle_name="torch.autograd",
         outputs=NORMS, adapter=adapt_gradient_norms, bans=(), explain=_norms_explain,
         may_change=("buffers", "parameters"),  # a forward pass in train mode moves BatchNorm's running
         # statistics (.grad is not tracked); a parameter moved is judged as its second answer
         covers="MLPs of 1 to 5 hidden layers, with and without BatchNorm, the model in train and in eval "
                "mode, stale gradients in .grad; float32 and float64; the model left as it was"),
    Spec("effective_smoothness", LESSON, "effective_smoothness(g0, gs, etas)",
         "Lesson 06: the largest change of the gradient per unit of distance along -g0.",
         make_case=_smoothness_case, allowed=_smoothness_allowed, oracle=None,
         oracle_name="torch.linalg", bans=(), covers="1 to 5 step sizes from 1e-3 to 1; float32 and float64"),
    Spec("batch_mean_noise", LESSON, "batch_mean_noise(x, batch_size)",
         "Lesson 06: the spread of batch means over consecutive batches.",
         make_case=_noise_case, allowed=_noise_allowed, oracle=None, oracle_name="torch",
         bans=(), covers="several batch sizes, with and without a remainder; float32 and float64"),
]
