"""Lesson 05: BatchNorm as PyTorch builds it: an autograd.Function, the module's four steps
(parameters and buffers, the training forward with the running statistics, the eval forward, the
input errors), each judged on its own, then drop-in BatchNorm1d and BatchNorm2d modules built from
them, judged against torch's own over train/eval steps, configurations, state_dict round trips and
bad inputs (with torch's versions of the steps in place of the learner's)."""
import numpy as np

from bncourse import oracle
from bncourse.adapters import (
    SET,
    STEP_OUTPUTS,
    adapt_eval,
    adapt_function,
    adapt_input_check,
    adapt_module,
    adapt_parameters,
    adapt_training,
    decode_text,
    is_text,
    torch_eval_forward,
    torch_function,
    torch_input_check,
    torch_parameters,
    torch_training_forward,
)
from bncourse.cases import Case, kw, make_batch, params
from bncourse.pieces.lesson02 import forward_allowed
from bncourse.pieces.lesson03 import backward_allowed, dx_terms, forward_cache, name_the_term
from bncourse.pieces.spec import Spec
from bncourse.rounding import UNIT, f64, x_hat_error
from bncourse.verdicts import Failure, compare, describe

LESSON = "05_batchnorm_module"
FUNCTION_OUTPUTS = ("y", "dx", "dweight", "dbias")


def _function_case(rng, x, label, i):
    n, d = x.shape
    gamma, beta = params(rng, d, x.dtype)
    dout = rng.standard_normal((n, d)).astype(x.dtype)
    kwargs = {"eps": [1e-5, 1e-3][i % 2]} if i % 3 else {}
    return Case(label + ", random dout" + kw(kwargs), (x, gamma, beta, dout), kwargs)


def _function_explain(what, index, got, exact, case):
    if what != "dx":
        return None
    x, gamma, beta, dout = case.args
    eps = case.kwargs.get("eps", 1e-5)
    cache = forward_cache(x, gamma, beta, eps)
    return name_the_term(dx_terms(dout, cache["x_hat"], gamma, cache["var"], eps), got, exact)


def _module_explain(case, what, index):
    """Which step of the module's life, and which channel, an index of a stepwise answer is."""
    xs, training = case.args[:2]
    if what in ("y", "dx", "dweight", "dbias", "running_mean", "running_var", "num_batches_tracked"):
        step = index[0]
        words = f"at step {step + 1} of {len(training)} ({'train' if training[step] else 'eval'} mode"
        if what in ("y", "dx") and len(index) > 2:
            words += f", channel {index[2]}"
        elif what in ("dweight", "dbias", "running_mean", "running_var") and len(index) > 1:
            words += f", channel {index[1]}"
        if not [k for k in case.kwargs if not k.startswith(SET)]:  # (make_cases left out every
            # constructor argument equal to its default)
            words += "; every constructor argument at its default"
        return f"({words})"
    return None


def _function_allowed(case, exact, what, exact_all=None):
    x, gamma, beta, dout = case.args
    if what == "y":
        return forward_allowed(Case(case.label, (x, gamma, beta), case.kwargs), exact)
    cache = forward_cache(x, gamma, beta, case.kwargs.get("eps", 1e-5))
    name = {"dweight": "dgamma", "dbias": "dbeta"}.get(what, what)
    return backward_allowed(Case(case.label, (dout, cache)), exact, name)


MODULE_STEPS = 4
MODULE_OUTPUTS = ("layout", "errors", "initial weight and bias", "initial buffers", "y", "dx", "dweight", "dbias",
                  "running_mean", "running_var", "num_batches_tracked", "after reset_running_stats()",
                  "state_dict loaded into torch's module", "eval output after loading torch's state_dict",
                  "state after each step")


def _module_case(piece, rng, x, label, i):
    """A matrix of configurations: affine on/off, tracking on/off, momentum 0.1 / 0.5 / None, 2-D,
    3-D and 4-D inputs, float32 and float64 with offsets, few and many values per channel, an
    empty batch; each run over MODULE_STEPS train/eval steps with random upstream gradients."""
    dtype = x.dtype
    typical = float(np.median(np.abs(x)))
    offset = 1e4 if typical > 3000 else 1e3 if typical > 100 else 0.0  # keep x's offset
    n = 0 if i == 5 else max(x.shape[0] % 9, 2)  # case 5: an empty batch
    c = int(rng.integers(1, 6))
    spatial = ([(2, 3), (1, 1), (16, 16), (3, 1)] if piece == "BatchNorm2d" else [(), (5,), (), (1,)])[i % 4]
    config = {"affine": (i // 2) % 2 == 0, "track_running_stats": (i // 4) % 3 != 2,
              "momentum": [0.1, 0.5, None][i % 3]}
    if i % 5 == 3:
        config["eps"] = 1e-3
    if config["affine"] and i % 5 == 4:
        config["bias"] = False  # torch 2.13's keyword-only bias=: a weight, no bias parameter
    after = {}  # attributes a user changes after construction (the module must read them at each call)
    if i % 5 == 1:  # (case 0 keeps every argument at its default)
        after["track_running_stats"] = not config["track_running_stats"]
    if i % 7 == 2:
        after.update(momentum=[0.3, None][i % 2], eps=[1e-3, 1e-2][i % 2])
    training = np.array([[1, 1, 0, 1], [1, 0, 1, 0], [1, 1, 1, 0], [0, 1, 0, 1]][i % 4], bool)
    positions = int(np.prod(spatial, dtype=int))
    rows = make_batch(rng, MODULE_STEPS * n * positions, c, dtype, offset, constant_cols=int(i % 7 == 0 and c > 1))
    xs = np.moveaxis(rows.reshape((MODULE_STEPS, n) + spatial + (c,)), -1, 2)
    douts = rng.standard_normal(xs.shape).astype(dtype)
    loaded = config["affine"] and i % 3 != 1  # else weight and bias keep their initial 1 and 0
    weight, bias = params(rng, c, dtype) if loaded else (np.zeros(0, dtype),) * 2
    state = {}  # a torch module's state_dict to load: this configuration's keys
    if config["affine"]:
        state["weight"], state["bias"] = params(rng, c, dtype)
    if not config.get("bias", True):  # (drawn all the same: the other cases stay as they were)
        bias = np.zeros(0, dtype)
        del state["bias"]
    if config["track_running_stats"]:
        state["running_mean"] = rng.normal(0, 1, c).astype(dtype) * np.abs(rows).max(initial=1)
        state["running_var"] = (rows.var(axis=0) if n else np.ones(c)) * rng.uniform(0.5, 2, c).astype(dtype)
        state["running_var"] = state["running_var"].astype(dtype) + dtype.type(0.1)
        state["num_batches_tracked"] = np.array(int(rng.integers(0, 50)))
    label = (f"{piece}({c}{kw(config)}), {np.dtype(dtype).name} batches of shape {xs.shape[1:]}"
             + (f" offset by ~{offset:g}" if offset else "")
             + (", parameters at their initial values" if config["affine"] and not loaded else "")
             + "".join(f", then m.{k} = {v}" for k, v in after.items()) + ", steps "
             + "".join("T" if t else "E" for t in training) + " (T train, E eval)")
    return Case(label, (xs, training, douts, weight, bias, state), {**config, **{SET + k: v for k, v in after.items()}})



def _module_rows(a):
    """(S, N, C, *) -> (S, M, C): each step's values, one column per channel."""
    a = np.moveaxis(f64(a), 2, -1)
    return a.reshape(a.shape[0], -1, a.shape[-1])


def _module_allowed(case, exact, what, exact_all):
    unit = UNIT[np.dtype(case.dtype)]
    xs, training, douts, weight, bias, state = case.args
    config = case.kwargs
    if what in ("num_batches_tracked", "after reset_running_stats()", "initial weight and bias", "initial buffers") \
            or np.size(exact) == 0:
        return 0.0
    rows, drows = _module_rows(xs), _module_rows(douts)
    steps, m, c = rows.shape
    eps = config.get(SET + "eps", config.get("eps", 1e-5))  # (the one the steps use)
    track = config.get("track_running_stats", True)  # (at construction: whether there are buffers)
    affine = config.get("affine", True)
    gamma = f64(weight) if weight.size else np.ones(c)
    beta = f64(bias) if bias.size else np.zeros(c)
    biggest = np.abs(rows).max(axis=(0, 1)) if m else np.zeros(c)
    if what == "running_mean":
        return unit * (np.abs(exact) + 1 + steps * biggest)
    if what == "running_var":
        return unit * (np.abs(exact) + 1) * steps + steps * (unit * biggest) ** 2
    if what == "state_dict loaded into torch's module":
        parts = [np.zeros(c)] * (affine + (affine and config.get("bias", True)))
        if track:
            parts += [_module_allowed(case, exact_all["running_mean"][-1], "running_mean", exact_all),
                      _module_allowed(case, exact_all["running_var"][-1], "running_var", exact_all), [0.0]]
        return np.concatenate(parts) if parts else 0.0
    if what == "eval output after loading torch's state_dict":
        x = rows[-1]
        g = f64(state["weight"]) if "weight" in state else np.ones(c)
        b = f64(state["bias"]) if "bias" in state else np.zeros(c)
        var = f64(state["running_var"]) if track else (x.var(axis=0) if m else np.ones(c))
        built_eps = config.get("eps", 1e-5)  # (a fresh module: the constructor's eps)
        err = unit * (np.abs(g) * x_hat_error(np.abs(x).max(axis=0, initial=0) + (
            np.abs(f64(state["running_mean"])) if track else 0), var, built_eps, unit) + np.abs(b))
        return _unrows(unit * np.abs(_module_rows(exact[None])[0]) + err, xs.shape[1:])
    allowed = []  # absolute errors, per step
    for s in range(steps):
        x, d = rows[s], drows[s]
        if bool(training[s]) or not track:  # the batch's own statistics
            mean, var = (x.mean(axis=0), x.var(axis=0)) if m else (np.zeros(c), np.ones(c))
            inv_std = 1 / np.sqrt(var + eps)
            x_hat = (x - mean) * inv_std
            x_hat_err = unit * x_hat_error(biggest, var, eps, unit)
            bounds = {"y": np.abs(gamma) * x_hat_err + unit * np.abs(beta) + 0 * x,
                      "dx": unit * np.abs(gamma) * inv_std * (np.abs(d) + np.abs(d).sum(axis=0) / max(m, 1) + (
                          np.abs(x_hat) + x_hat_err / unit) * np.abs(d * x_hat).sum(axis=0) / max(m, 1))}
        else:  # the running statistics, which carry the rounding of every earlier step
            mean = f64(exact_all["running_mean"][s - 1]) if s else np.zeros(c)
            var = f64(exact_all["running_var"][s - 1]) if s else np.ones(c)
            inv_std = 1 / np.sqrt(var + eps)
            x_hat = (x - mean) * inv_std
            mean_err = unit * (np.abs(mean) + 1 + steps * biggest)
            var_err = unit * (np.abs(var) + 1) * steps + steps * (unit * biggest) ** 2
            relative = var_err / (var + eps)  # of the variance; the std's is half that
            x_hat_err = mean_err * inv_std + np.abs(x_hat) * relative + unit * x_hat_error(biggest, var, eps, unit)
            bounds = {"y": np.abs(gamma) * x_hat_err + unit * np.abs(beta),
                      "dx": np.abs(gamma) * inv_std * np.abs(d) * (relative + unit * steps)}
        if what in bounds:
            allowed.append(bounds[what])
        elif what == "dweight":
            allowed.append((np.abs(d) * (unit * np.abs(x_hat) + x_hat_err)).sum(axis=0) if affine else np.zeros(0))
        else:  # dbias
            has_bias = affine and config.get("bias", True)
            allowed.append(unit * np.abs(d).sum(axis=0) if has_bias else np.zeros(0))
    allowed = np.stack(allowed)
    if what in ("y", "dx"):
        return unit * np.abs(exact) + _unrows(allowed, xs.shape[1:], steps=True)
    return unit * np.abs(exact) + allowed


def _unrows(a, shape, steps=False):
    """Inverse of _module_rows for one step (shape (N, C, *)), or for all steps."""
    n, c, spatial = shape[0], shape[1], tuple(shape[2:])
    lead = (a.shape[0],) if steps else ()
    return np.moveaxis(np.asarray(a).reshape(lead + (n,) + spatial + (c,)), -1, len(lead) + 1)


def _judge_module(piece, out, exact, case, keys=MODULE_OUTPUTS, torch_name=None, yours="your module's",
                  allowed=None):
    torch_name = torch_name or f"torch.nn.{piece}"
    if not isinstance(out, dict) or any(k not in out for k in keys):
        raise Failure(f"{piece}'s answers are incomplete; got {describe(out)}", case, "type")
    exact_all = {k: v if is_text(v) else f64(v) for k, v in exact.items()}
    for name in keys:
        got, want = out[name], exact[name]
        if is_text(got) or is_text(want):
            mine = decode_text(got) if is_text(got) else "a result"
            theirs = decode_text(want) if is_text(want) else "a result"
            if mine == theirs:
                continue
            if name == "state after each step":
                raise Failure(f"{yours} tensors are not in the state {torch_name}'s are in (parameter or "
                              "buffer, dtype, requires_grad, grad_fn):\n" + _state_differences(mine, theirs),
                              case, name)
            what = {"layout": "parameters and buffers", "errors": "errors for bad input"}.get(name, name)
            raise Failure(f"{yours} {what} differ from {torch_name}'s:\n  yours:   {mine}\n"
                          f"  torch's: {theirs}", case, name)
        compare(name, got, want, (allowed or _module_allowed)(case, f64(want), name, exact_all), case,
                lambda index, got, exact, name=name: _module_explain(case, name, index))




def _state_differences(mine, theirs, most=3):
    """The first tensors whose state (adapters.tensor_state, after each step) differs, as lines."""
    def entries(text):
        found = {}
        for chunk in text.split(" | "):
            step, _, items = chunk.partition(": ")
            for item in items.split("; "):
                tensor, _, state = item.partition(": ")
                found[f"{step}, {tensor}"] = state
        return found
    a, b = entries(mine), entries(theirs)
    lines = [f"  {where}: yours {a.get(where, 'missing')}; torch's {b.get(where, 'missing')}"
             for where in dict.fromkeys(list(b) + list(a)) if a.get(where) != b.get(where)]
    return "\n".join(lines[:most] + ([f"  ... and {len(lines) - most} more"] if len(lines) > most else []))


def _module_spec(piece, dims):
    def make_case(rng, x, label, i):
        return _module_case(piece, rng, x, label, i)

    def verdict(out, exact, case):
        _judge_module(piece, out, exact, case)

    def adapter(cls):
        return adapt_module(cls, piece=piece)
    return Spec(piece, LESSON, f"{piece}(num_features, eps=1e-05, momentum=0.1, affine=True, "
                "track_running_stats=True, device=None, dtype=None, *, bias=True)",
                f"Lesson 05: the module against torch.nn.{piece} over train/eval steps, configurations, "
                "state_dict round trips and bad inputs.",
                make_case=make_case, allowed=_module_allowed, oracle=getattr(oracle, piece),
                oracle_name=f"torch.nn.{piece}", verdict=verdict, adapter=adapter, parts=("BatchNormFunction",) + PARTS,
                native=_native_module(piece),
                visible_count=8, covers=f"{dims} over train/eval steps; affine and tracking on/off; momentum "
                "0.1, 0.5 and None; bias=False; float32 and float64; an empty batch; outputs, gradients, "
                "buffers, state_dict round trips, errors for bad input and eps <= 0")



def _native_function(x, weight, bias, dout, eps=1e-5):
    """F.batch_norm and torch.autograd in the input's dtype, as BatchNormFunction is judged."""
    import torch
    import torch.nn.functional as F
    t = [torch.tensor(a).requires_grad_() for a in (x, weight, bias)]
    y = F.batch_norm(t[0], None, None, t[1], t[2], training=True, eps=eps)
    y.backward(torch.as_tensor(dout))
    return (y.detach().numpy(),) + tuple(a.grad.numpy() for a in t)


def _native_module(piece):
    def native(*args, **kwargs):
        import torch
        return adapt_module(getattr(torch.nn, piece), piece=piece)(*args, **kwargs)
    return native


# ---------------------------------------------------------------- the module's steps

PARTS = ("make_parameters_and_buffers", "training_forward", "eval_forward", "check_input")


def _step_config(i):
    """The module's configurations, as the module's cases draw them."""
    return {"affine": (i // 2) % 2 == 0, "track_running_stats": (i // 4) % 3 != 2}


def _parameters_case(rng, x, label, i):
    config = _step_config(i)
    if config["affine"] and i % 5 == 4:
        config["bias"] = False
    c = x.shape[1]
    return Case(f"make_parameters_and_buffers(module, {c}{kw(config)}, dtype={np.dtype(x.dtype).name})",
                (np.zeros((1, c), x.dtype),), config)


def _exact(case, exact, what, exact_all=None):
    return 0.0


def _judge_parameters(out, exact, case):
    _judge_module("make_parameters_and_buffers", out, exact, case,
                  ("layout", "initial weight and bias", "initial buffers"), "torch.nn.BatchNorm1d", "the module's",
                  allowed=_exact)


def _training_case(rng, x, label, i):
    """MODULE_STEPS training batches of shape (M, C), as the module's rows: momentum 0.1, 0.5 and
    None, tracking on and off, float32 and float64 with offsets, an empty batch."""
    dtype = x.dtype
    typical = float(np.median(np.abs(x)))
    offset = 1e4 if typical > 3000 else 1e3 if typical > 100 else 0.0
    m = 0 if i == 5 else max(x.shape[0] % 9, 2) * (1 + 2 * (i % 2))
    c = int(rng.integers(1, 6))
    config = {"momentum": [0.1, 0.5, None][i % 3], "track_running_stats": (i // 4) % 3 != 2}
    if i % 5 == 3:
        config["eps"] = 1e-3
    rows = make_batch(rng, MODULE_STEPS * m, c, dtype, offset, constant_cols=int(i % 7 == 0 and c > 1))
    xs = rows.reshape(MODULE_STEPS, m, c)
    douts = rng.standard_normal(xs.shape).astype(dtype)
    weight, bias = params(rng, c, dtype) if i % 4 != 1 else (np.ones(c, dtype), np.zeros(c, dtype))
    label = (f"training_forward over {MODULE_STEPS} {np.dtype(dtype).name} batches of shape {(m, c)}"
             + (f" offset by ~{offset:g}" if offset else "") + kw(config)
             + ("" if config["track_running_stats"] else " (running statistics None: not tracking)"))
    return Case(label, (xs, np.ones(MODULE_STEPS, bool), douts, weight, bias, {}), config)


def _judge_training(out, exact, case):
    _judge_module("training_forward", out, exact, case, STEP_OUTPUTS, "torch.nn.functional.batch_norm",
                  "your training_forward's")


def _eval_case(rng, x, label, i):
    n, d = x.shape
    gamma, beta = params(rng, d, x.dtype)
    spread = np.abs(x).max(initial=1.0)
    mean = (x.mean(axis=0) + rng.normal(0, 0.3, d) * (x.std(axis=0) + 1)).astype(x.dtype)
    var = ((x.var(axis=0) + 0.1) * rng.uniform(0.5, 2.0, d)).astype(x.dtype)
    if i % 4 == 2:  # statistics far from this batch's own
        mean = (mean + rng.normal(0, 1, d) * spread / 10).astype(x.dtype)
    dout = rng.standard_normal((n, d)).astype(x.dtype)
    kwargs = {"eps": [1e-5, 1e-3][i % 2]} if i % 3 else {}
    return Case(label + ", given running statistics, random dout" + kw(kwargs),
                (x, gamma, beta, mean, var, dout), kwargs)


def _eval_allowed(case, exact, what, exact_all=None):
    """Each operation rounds once: x - mean (or x * scale - mean * scale, folded), sqrt, the
    division, the product with gamma, + beta; a gradient's sum over M rows adds M - 1 roundings."""
    unit = UNIT[np.dtype(case.dtype)]
    x, gamma, beta, mean, var, dout = (f64(a) for a in case.args)
    inv_std = 1 / np.sqrt(var + case.kwargs.get("eps", 1e-5))
    spread = (np.abs(x) + np.abs(mean)) * inv_std  # what x_hat's rounding scales with
    m = max(x.shape[0] - 1, 1)
    if what == "y":
        return unit * (np.abs(exact) + 4 * np.abs(gamma) * spread + np.abs(beta))
    if what == "dx":
        return unit * (np.abs(exact) + 4 * np.abs(gamma * dout) * inv_std)
    if what == "dweight":
        return unit * (np.abs(exact) + (m + 4) * (np.abs(dout) * spread).sum(axis=0))
    return unit * (np.abs(exact) + m * np.abs(dout).sum(axis=0))  # dbias


def _input_case(rng, x, label, i):
    c = x.shape[1]
    dims = [(2, 3), (4,)][i % 2]
    return Case(f"check_input on the inputs a BatchNorm{1 + (dims == (4,))}d({c}) meets (dims={dims})",
                (np.zeros((1, c), x.dtype), np.array(dims)), {})


def _judge_input(out, exact, case):
    if not is_text(out):
        raise Failure(f"check_input's answers are incomplete; got {describe(out)}", case, "type")
    mine, theirs = decode_text(out).split("; "), decode_text(exact).split("; ")
    wrong = [f"  {a.rsplit(': ', 1)[0]}: yours {a.rsplit(': ', 1)[-1]}, torch's {b.rsplit(': ', 1)[-1]}"
             for a, b in zip(mine, theirs) if a != b]
    if wrong or len(mine) != len(theirs):
        raise Failure("check_input refuses other inputs than torch's BatchNorm does (ValueError, or no error):\n"
                      + "\n".join(wrong[:4]), case, "errors")


STEP_SPECS = [
    Spec("make_parameters_and_buffers", LESSON,
         "make_parameters_and_buffers(module, num_features, affine=True, track_running_stats=True, device=None, "
         "dtype=None, bias=True)",
         "Lesson 05: the parameters and buffers registered on a module, against torch.nn.BatchNorm1d's.",
         make_case=_parameters_case, allowed=_exact, oracle=oracle.make_parameters_and_buffers,
         verdict=_judge_parameters, adapter=adapt_parameters, trusted=torch_parameters, visible_count=8,
         covers="1 to 5 channels; float32 and float64; affine and tracking on/off; bias=False: names, shapes, "
                "dtypes, parameters or buffers or None, state_dict keys, initial values"),
    Spec("training_forward", LESSON,
         "training_forward(rows, weight, bias, running_mean, running_var, num_batches_tracked, momentum=0.1, "
         "eps=1e-05)",
         "Lesson 05: the training forward over several batches (output, gradients, running statistics, count), "
         "against F.batch_norm.",
         make_case=_training_case, allowed=_module_allowed, oracle=oracle.training_forward,
         oracle_name="torch.nn.functional.batch_norm", verdict=_judge_training, adapter=adapt_training,
         parts=("BatchNormFunction",), trusted=torch_training_forward,
         explain=lambda what, index, got, exact, case: _module_explain(case, what, index),
         native=lambda *a, **k: _native_step(adapt_training, "training", *a, **k), visible_count=8,
         covers="4 batches of (M, C) rows; momentum 0.1, 0.5 and None; running statistics None (not tracking); "
                "float32 and float64 with offsets; an empty batch; y, dx, dweight, dbias, running_mean, "
                "running_var, num_batches_tracked after each batch"),
    Spec("eval_forward", LESSON, "eval_forward(rows, weight, bias, running_mean, running_var, eps=1e-05)",
         "Lesson 05: the eval-mode output and gradients with given running statistics, against "
         "F.batch_norm(training=False).",
         make_case=_eval_case, allowed=_eval_allowed, oracle=oracle.eval_forward,
         oracle_name="torch.nn.functional.batch_norm", outputs=FUNCTION_OUTPUTS, adapter=adapt_eval,
         trusted=torch_eval_forward, native=lambda *a, **k: _native_step(adapt_eval, "eval", *a, **k),
         covers="(M, C) rows with running statistics near and far from the batch's own; float32 and float64, "
                "offsets up to 1e4; random dy; y, dx, dweight, dbias; running statistics left as they were"),
    Spec("check_input", LESSON, "check_input(x, dims, use_batch_statistics, eps=1e-05)",
         "Lesson 05: which inputs are refused with ValueError, against torch's BatchNorm1d and BatchNorm2d.",
         make_case=_input_case, allowed=_exact, oracle=oracle.check_input, oracle_name="torch.nn.BatchNorm1d/2d",
         verdict=_judge_input, adapter=adapt_input_check, trusted=torch_input_check, visible_count=2,
         covers="dims (2, 3) and (4,): wrong numbers of dimensions, one value per channel in training and "
                "eval, one example with several values, an empty batch, eps 0, negative and positive"),
]


def _native_step(adapter, kind, *args, **kwargs):
    """F.batch_norm in the input's dtype, as the step is judged (benchmarks/calibrate_tolerances.py)."""
    import torch.nn.functional as F

    def training(rows, weight, bias, running_mean, running_var, num_batches_tracked, momentum=0.1, eps=1e-5):
        factor = 0.0
        if num_batches_tracked is not None:
            num_batches_tracked.add_(1)
            factor = 1.0 / float(num_batches_tracked) if momentum is None else momentum
        return F.batch_norm(rows, running_mean, running_var, weight, bias, training=True, momentum=factor, eps=eps)

    def evaluation(rows, weight, bias, running_mean, running_var, eps=1e-5):
        return F.batch_norm(rows, running_mean, running_var, weight, bias, training=False, eps=eps)
    return adapter(training if kind == "training" else evaluation)(*args, **kwargs)


SPECS = [
    Spec("BatchNormFunction", LESSON, "class BatchNormFunction(torch.autograd.Function)",
         "Lesson 05: the autograd.Function's output and gradients, compared with torch.autograd.",
         make_case=_function_case, allowed=_function_allowed, oracle=oracle.BatchNormFunction,
         oracle_name="torch.autograd", outputs=FUNCTION_OUTPUTS, adapter=adapt_function, trusted=torch_function,
         explain=_function_explain,
         float32_offset=1e3,  # near 1e3 a two-pass float32 variance still keeps x_hat to ~1e-4, while a
         # one-pass E[x^2] - E[x]^2 loses everything below ~0.1 of the variance: told apart by far
         covers="(M, C) inputs of shapes (4, 3), (2, 1), (7, 1), (64, 8), ...; float32 and float64, features "
                "offset by up to 1e3 in float32 and 1e4 in float64; random dy; outputs and the three gradients",
         native=_native_function),
    *STEP_SPECS,
    _module_spec("BatchNorm1d", "(N, C) and (N, C, L) inputs"),
    _module_spec("BatchNorm2d", "(N, C, H, W) inputs from 1x1 to 16x16"),
]
