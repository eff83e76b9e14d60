"""Lesson 00: measuring what each layer receives while a network trains."""
import numpy as np

from bncourse.adapters import adapt_recorder
from bncourse.cases import Case, mlp_case
from bncourse.pieces.spec import Spec
from bncourse.rounding import f64, unit_of, x_hat_error
from bncourse.verdicts import Failure, compare, describe

LESSON = "00_internal_covariate_shift"


def _summary_case(rng, x, label, i):
    return Case(label.replace(" x ", " a "), (x,))


def _summary_allowed(case, exact, what="out", exact_all=None):
    """mean and quantiles err by ~unit * max|a|; the std by the variance's error over 2 std."""
    unit = unit_of(case)
    big = np.abs(f64(case.args[0])).max()
    var_err = unit * exact[1] ** 2 + (unit * big) ** 2
    std_err = min(var_err / (2 * exact[1]), np.sqrt(var_err)) if exact[1] > 0 else np.sqrt(var_err)
    allowed = unit * (np.abs(exact) + big)
    allowed[1] = unit * exact[1] + std_err
    return allowed


def _recorder_case(rng, x, label, i):
    return mlp_case(rng, x, i, labels=False)


def _mlp_roundoff(x, params, batchnorm, unit):
    """Per Linear input, the size its rounding error scales with: |x| through |W| @ . + |b|,
    divided by the spread wherever BatchNorm normalises (tanh and ReLU do not amplify)."""
    h, r, out = f64(x), np.abs(f64(x)), []
    count = len([k for k in params if k.startswith("w")])
    for k in range(count):
        out.append(r)
        w, b = f64(params[f"w{k}"]), f64(params[f"b{k}"])
        z = h @ w.T + b
        r = r @ np.abs(w).T + np.abs(b)
        if batchnorm and k < count - 1:
            var = z.var(axis=0)
            r = x_hat_error(r.max(axis=0), var, 1e-5, unit) * np.ones_like(z)
            z = (z - z.mean(axis=0)) / np.sqrt(var + 1e-5)
        h = np.tanh(z)
    return out


def _recorded_allowed(case, exact, what, exact_all=None):
    """`what`: the layer's position."""
    unit = unit_of(case)
    batchnorm = case.kwargs.get("batchnorm", False) and case.kwargs.get("train", True)  # (eval: a scale by ~1)
    return unit * (np.abs(exact) + _mlp_roundoff(case.args[0], case.args[1], batchnorm, unit)[what])


def _judge_recorded(out, exact, case):
    """record_layer_inputs: no hooks left behind, then one right input per Linear call."""
    if not isinstance(out, (tuple, list)) or len(out) < 1:
        raise Failure(f"record_layer_inputs must return a list of arrays; got {describe(out)}", case, "type")
    left = int(np.asarray(out[0]))
    if left:
        raise Failure(f"{left} forward hook(s) were still registered on the model after the call: "
                      "keep each handle register_forward_hook returns and call handle.remove()", case,
                      "hooks_left")
    got, want = list(out[1:]), list(exact[1:])
    if len(got) != len(want):
        raise Failure(f"record_layer_inputs returned {len(got)} arrays; the model ran {len(want)} "
                      "nn.Linear layers (some sit inside nested blocks: use model.modules())", case, "count")
    for k, (g, w) in enumerate(zip(got, want)):
        compare(f"the input of nn.Linear #{k + 1}", g, w, _recorded_allowed(case, w, k), case)


def _shift_case(rng, x, label, i):
    n, d = x.shape
    stds = (10.0 ** rng.uniform(-2, 1, (n, d))).astype(x.dtype)
    return Case(f"{np.dtype(x.dtype).name} means and stds of shape {(n, d)}", (x, stds))


def _shift_allowed(case, exact, what="out", exact_all=None):
    means, stds = (f64(a) for a in case.args)
    return unit_of(case) * (np.abs(exact) + (np.abs(means[1:]) + np.abs(means[:-1])) / stds[:-1])


SPECS = [
    Spec("activation_summary", LESSON, "activation_summary(a)",
         "Lesson 00: [mean, std, p15, p50, p85] of all the values a layer receives.",
         make_case=_summary_case, allowed=_summary_allowed, oracle=None,
         oracle_name="torch (mean, std, quantile)", bans=(),
         covers="arrays of shapes (4, 3), (2, 1), (7, 1), (64, 8), ...; float32 and float64; values offset by "
                "up to 1e4"),
    Spec("record_layer_inputs", LESSON, "record_layer_inputs(model, x)",
         "Lesson 00: the input of every nn.Linear, recorded by forward hooks that are removed again.",
         make_case=_recorder_case, allowed=_recorded_allowed, oracle=None,
         oracle_name="torch forward hooks", verdict=_judge_recorded, adapter=adapt_recorder, bans=(),
         may_change=("buffers", "hooks"),  # a forward pass in train mode moves BatchNorm's running
         # statistics; hooks left behind are judged as its first answer
         covers="MLPs of 1 to 5 hidden layers inside nested blocks, with and without BatchNorm, the model in "
                "train and in eval mode; float32 and float64; the model left as it was"),
    Spec("shift_per_step", LESSON, "shift_per_step(means, stds)",
         "Lesson 00: how far each layer's mean moves between checkpoints, in units of its std.",
         make_case=_shift_case, allowed=_shift_allowed, oracle=None, oracle_name="torch", bans=(),
         covers="several numbers of checkpoints and layers; float32 and float64"),
]
