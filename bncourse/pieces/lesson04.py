"""Lesson 04: running statistics, inference, and a layer that keeps its state across steps."""
import numpy as np

from bncourse import oracle
from bncourse.adapters import adapt_steps
from bncourse.cases import Case, batch_stats, kw, params
from bncourse.pieces.spec import Spec
from bncourse.rounding import eps_of, f64, unit_of, x_hat_error
from bncourse.verdicts import Failure, compare, type_name

LESSON = "04_running_statistics"
RUNNING = ("new running_mean", "new running_var")
STATE_KEYS = ("running_mean", "running_var", "num_batches_tracked")
STEPS = 6  # forward passes in one sequence of batchnorm_layer_forward


def _running(rng, x):
    d, dtype = x.shape[1], x.dtype
    running_mean = (x.mean(0) + rng.normal(0, 1, d)).astype(dtype)
    running_var = (x.var(0) * rng.uniform(0.5, 2.0, d) + rng.uniform(0.1, 1.0, d)).astype(dtype)
    return running_mean, running_var


def _update_case(rng, x, label, i):
    running_mean, running_var = _running(rng, x)
    kwargs = {"momentum": [0.9, 0.99, 0.5, 0.0][i % 4]} if i % 5 else {}
    mean, var = batch_stats(x)
    return Case(label + kw(kwargs), (running_mean, running_var, mean, var), kwargs)


def _update_allowed(case, exact, what, exact_all=None):
    a = [f64(v) for v in case.args]
    old, new = (a[0], a[2]) if what == RUNNING[0] else (a[1], a[3])
    return unit_of(case) * (np.abs(exact) + np.abs(old) + np.abs(new))


def _torch_update_case(rng, x, label, i):
    running_mean, running_var = _running(rng, x)
    if x.shape[0] < 2:
        x = np.concatenate([x, x + 1])
    kwargs = [{}, {"momentum": 0.5}, {"momentum": None, "batches_seen": [0, 1, 4, 9][i % 4]},
              {"momentum": 0.1, "batches_seen": 7}][i % 4]
    return Case(label + kw(kwargs), (running_mean, running_var, x), kwargs)


def _torch_update_allowed(case, exact, what, exact_all=None):
    unit = unit_of(case)
    running_mean, running_var, x = (f64(v) for v in case.args)
    if what == RUNNING[1]:  # a two-pass variance of the batch, then the blend
        return unit * (np.abs(exact) + np.abs(running_var)) + (unit * np.abs(x).max(axis=0)) ** 2
    return unit * (np.abs(exact) + np.abs(running_mean) + np.abs(x).max(axis=0))


def _inference_case(rng, x, label, i):
    d, dtype = x.shape[1], x.dtype
    gamma, beta = params(rng, d, dtype)
    mean, var = batch_stats(x)
    running_mean = (mean + rng.normal(0, 1, d) * np.sqrt(var)).astype(dtype)  # not x's own
    running_var = (var * rng.uniform(0.5, 2.0, d)).astype(dtype)
    kwargs = {"eps": [1e-5, 1e-3, 0.1][i % 3]} if i % 4 else {}
    return Case(label + ", running statistics not x's own" + kw(kwargs),
                (x, gamma, beta, running_mean, running_var), kwargs)


def _inference_allowed(case, exact, what="out", exact_all=None):
    x, gamma, beta, mean, var = (f64(a) for a in case.args)
    roundoff = np.abs(gamma) * np.maximum(np.abs(x), np.abs(mean)) / np.sqrt(var + eps_of(case, 5)) \
        + np.abs(beta)
    return unit_of(case) * (np.abs(exact) + roundoff)


def _init_case(rng, x, label, i):
    kwargs = {"dtype": ["float32", "float64"][i % 2]} if i % 3 else {}
    return Case(f"num_features={x.shape[1]}" + kw(kwargs), (x.shape[1],), kwargs)


def _exactly(case, exact, what="out", exact_all=None):
    return 0.0


def _state_verdict(out, exact, case):
    if not isinstance(out, dict):
        raise Failure(f"init_running_stats must return a dict; got {type_name(out)}", case, "type")
    missing = [k for k in STATE_KEYS if k not in out]
    if missing:
        raise Failure(f"the state is missing the key(s) {missing}; it needs exactly {list(STATE_KEYS)}",
                      case, "state_keys")
    for key in STATE_KEYS:
        compare(f"state['{key}']", out[key], exact[key], 0.0, case)
    for key in ("running_mean", "running_var"):
        got = np.dtype(getattr(out[key], "dtype", None) or type(out[key]))
        if got != case.dtype:
            raise Failure(f"state['{key}'] has dtype {got}, expected {case.dtype}: create it with "
                          "the dtype argument", case, "dtype")


def _steps_case(rng, x, label, i):
    """A sequence of batches (S, N, D) around x's feature means, and which steps train."""
    (n, d), dtype = x.shape, x.dtype
    n = max(n, 2)
    centre = x[0].astype(np.float64)  # x's offsets (up to 1e4), new spreads
    spread = 10.0 ** rng.uniform(-1, 1, d)
    drift = rng.normal(0, 0.3, (STEPS, 1, d)) * spread
    xs = (centre + drift + spread * rng.standard_normal((STEPS, n, d))).astype(dtype)
    training = np.array([True, True, False, True, False, False]) if i % 2 else rng.random(STEPS) < 0.6
    training[0] = True
    gamma, beta = params(rng, d, dtype)
    kwargs = [{}, {"momentum": 0.5}, {"momentum": None}, {"momentum": 0.1, "eps": 1e-3}][i % 4]
    label = (f"{np.dtype(dtype).name} batches of shape {(n, d)}, steps "
             + "".join("T" if t else "E" for t in training) + " (T train, E eval)" + kw(kwargs))
    return Case(label, (xs, training, gamma, beta), kwargs)


def _steps_allowed(case, exact, what, exact_all):
    """Each step normalises with the batch's statistics (train) or the running ones (eval); the
    running statistics carry the rounding of every earlier step."""
    unit = unit_of(case)
    xs, training, gamma, beta = (f64(a) for a in case.args)
    eps = case.kwargs.get("eps", 1e-5)
    biggest = np.abs(xs).max(axis=(0, 1))
    if what == "num_batches_tracked":
        return 0.0
    if what == "running_mean":
        return unit * (np.abs(exact) + 1 + STEPS * biggest)
    if what == "running_var":
        return unit * (np.abs(exact) + 1) * STEPS + STEPS * (unit * biggest) ** 2
    variances = f64(exact_all[2])
    allowed = []
    for s, (x, train) in enumerate(zip(xs, training)):
        if train:
            var = x.var(axis=0)
        else:
            var = variances[s - 1] if s else np.ones_like(biggest)
        x_hat_err = x_hat_error(biggest, var, eps, unit)
        allowed.append(unit * (np.abs(exact[s]) + np.abs(gamma) * x_hat_err * (1 + STEPS * (not train))
                               + np.abs(beta)))
    return np.stack(allowed)



def _native_inference(x, gamma, beta, running_mean, running_var, eps=1e-5):
    import torch
    import torch.nn.functional as F
    t = torch.as_tensor
    return F.batch_norm(t(x), t(running_mean), t(running_var), t(gamma), t(beta), training=False, eps=eps).numpy()


def _native_torch_update(running_mean, running_var, x, momentum=0.1, batches_seen=0):
    import torch
    layer = torch.nn.BatchNorm1d(x.shape[1], momentum=momentum, dtype=torch.as_tensor(x).dtype)
    with torch.no_grad():
        layer.running_mean.copy_(torch.as_tensor(running_mean))
        layer.running_var.copy_(torch.as_tensor(running_var))
        layer.num_batches_tracked.fill_(batches_seen)
        layer(torch.as_tensor(x))
    return layer.running_mean.numpy(), layer.running_var.numpy()


def _steps_explain(what, index, got, exact, case):
    """Which step of the sequence (and which feature) an index of a stepwise answer is."""
    training = case.args[1]
    step = index[0]
    words = f"at step {step + 1} of {len(training)} ({'train' if training[step] else 'eval'})"
    if len(index) > 1:
        words += f", feature {index[-1]}"
    return f"({words})"


SPECS = [
    Spec("update_running_stats", LESSON,
         "update_running_stats(running_mean, running_var, batch_mean, batch_var, momentum=0.9)",
         "Lesson 04: running averages with momentum weighing the old value.",
         make_case=_update_case, allowed=_update_allowed, oracle=oracle.update_running_stats, outputs=RUNNING),
    Spec("batchnorm_inference", LESSON, "batchnorm_inference(x, gamma, beta, running_mean, running_var, eps=1e-5)",
         "Lesson 04: normalise with the running statistics.",
         make_case=_inference_case, allowed=_inference_allowed, oracle=oracle.batchnorm_inference,
         native=_native_inference),
    Spec("update_running_stats_torch", LESSON,
         "update_running_stats_torch(running_mean, running_var, x, momentum=0.1, batches_seen=0)",
         "Lesson 04: PyTorch's running averages (momentum weighs the new batch; unbiased variance).",
         make_case=_torch_update_case, allowed=_torch_update_allowed, oracle=oracle.update_running_stats_torch,
         outputs=RUNNING, native=_native_torch_update),
    Spec("init_running_stats", LESSON, "init_running_stats(num_features, dtype=np.float64)",
         "Lesson 04: a new layer's state, as torch.nn.BatchNorm1d starts it.",
         make_case=_init_case, allowed=_exactly, oracle=oracle.init_running_stats, verdict=_state_verdict,
         covers="several sizes; float32 and float64"),
    Spec("batchnorm_layer_forward", LESSON,
         "batchnorm_layer_forward(x, gamma, beta, state, training, momentum=0.1, eps=1e-5)",
         "Lesson 04: train and eval steps of a layer with running statistics, compared with "
         "torch.nn.BatchNorm1d step by step.",
         make_case=_steps_case, allowed=_steps_allowed, oracle=oracle.batchnorm_layer_forward,
         outputs=("y", "running_mean", "running_var", "num_batches_tracked"), adapter=adapt_steps,
         explain=_steps_explain,
         parts=("batch_mean", "batch_variance", "normalise", "scale_and_shift", "update_running_stats_torch",
                "batchnorm_inference"),
         covers="sequences of 6 training and evaluation steps; momentum 0.1, 0.5 and None; float32 and float64"),
]
