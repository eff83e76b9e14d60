"""The classic mistakes of each piece, and how to recognise them.

When a learner's function gives a wrong answer, `diagnose(piece, fn)` runs it on inputs
crafted so that each known mistake produces a clearly different answer, and returns the
mistakes whose answer it reproduces. Their `message` is what the learner reads.

The crafted inputs and each mistake's answer to them are data (probes.npz, beside this file),
written by the grading side: this module runs the learner's function and compares, and holds
no formula of its own, right or wrong.
"""
import functools
import hashlib
import io
import json
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources

import numpy as np

from bncourse.adapters import decode_text, is_text
from bncourse.cases import decode_input, encode_input

PROBE_DATA = "probes.npz"  # in this package


@dataclass(frozen=True)
class Misconception:
    name: str
    message: str
    probe: Callable  # probe(fn) -> True when fn behaves like this mistake


def _same(out, wrong):
    """True when out matches the wrong answer (shape and values, loosely)."""
    try:
        if hasattr(out, "detach"):
            out = out.detach().numpy()
        out = np.asarray(out, dtype=np.float64)
        wrong = np.asarray(wrong, dtype=np.float64)
        return out.shape == wrong.shape and bool(np.allclose(out, wrong, rtol=1e-6, atol=1e-9))
    except Exception:
        return False


def _copies(args):
    return [np.array(a, copy=True) if isinstance(a, np.ndarray) else a for a in args]


def _run(fn, *args, **kwargs):
    """Call fn on copies of args; None if it crashes (a crash matches no mistake)."""
    try:
        return fn(*_copies(args), **kwargs)
    except Exception:
        return None


# ---------------------------------------------------------------- the stored probes

def _content_key(a):
    h = hashlib.sha256(f"{a.dtype.str}{a.shape}".encode())
    h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()[:20]


def _share(desc, found, arrays):
    """Store the arrays of an encoded input under keys made from their contents (the probes
    share most of their inputs)."""
    if "dict" in desc:
        for d in desc["dict"].values():
            _share(d, found, arrays)
    elif "formula" in desc:
        _share(desc["params"], found, arrays)
    else:
        a = found[desc["array"]]
        desc["array"] = _content_key(a)
        arrays[desc["array"]] = a


def pack(entries):
    """The bytes of a probe data file: entries {"piece/name": {"calls": [(args, kwargs)],
    "wrong": array, "exact": array}} ("wrong" and "exact" where the probe needs them). Inputs
    are arrays, numbers, dicts of those or a cases.Formula (bncourse.cases.encode_input,
    as the grader writes its calls); the same bytes for the same entries."""
    arrays, meta = {}, {}
    for key, entry in entries.items():
        found, calls = {}, []
        for i, (args, kwargs) in enumerate(entry["calls"]):
            calls.append({"args": [encode_input(a, found, f"c{i}a{j}") for j, a in enumerate(args)],
                          "kwargs": kwargs})
        for c in calls:
            for d in c["args"]:
                _share(d, found, arrays)
        meta[key] = {"calls": calls}
        for part in ("wrong", "exact"):
            if part in entry:
                a = np.asarray(entry[part])
                meta[key][part] = _content_key(a)
                arrays[meta[key][part]] = a
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    blob = io.BytesIO()
    with zipfile.ZipFile(blob, "w", zipfile.ZIP_DEFLATED) as z:
        for name in sorted(arrays):
            data = io.BytesIO()
            np.lib.format.write_array(data, np.asarray(arrays[name]), allow_pickle=False)
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            z.writestr(info, data.getvalue())
    return blob.getvalue()


def unpack(blob):
    """The entries of a probe data file (see pack)."""
    with np.load(io.BytesIO(blob), allow_pickle=False) as data:
        arrays = {k: data[k] for k in data.files}
    meta = json.loads(arrays.pop("meta").tobytes().decode())
    entries = {}
    for key, m in meta.items():
        entries[key] = {"calls": [(tuple(decode_input(d, arrays) for d in c["args"]), c["kwargs"])
                                  for c in m["calls"]]}
        for part in ("wrong", "exact"):
            if part in m:
                entries[key][part] = arrays[m[part]]
    return entries


@functools.cache
def probe_data():
    """Every probe's stored inputs and answers, read once."""
    return unpack(resources.files(__package__).joinpath(PROBE_DATA).read_bytes())


class Probe:
    """Runs the learner's function on a misconception's stored inputs (`calls`: the grader
    records the answers to exactly these) and says whether it shows the mistake."""

    key = None  # "piece/name", set once the catalogue is built

    @property
    def data(self):
        try:
            return probe_data()[self.key]
        except KeyError:
            raise KeyError(f"{PROBE_DATA} has no probe for {self.key} (run `make probe-data`)") from None

    @property
    def calls(self):
        return self.data["calls"]

    def __call__(self, fn):
        return self.shows(fn, self.data)

    def __repr__(self):
        return f"<{type(self).__name__} probe of {self.key}>"


class like(Probe):
    """Does fn answer the call as the mistake does (the part `output` picks from fn's answer)?"""

    def __init__(self, output=lambda out: out):
        self.output = output

    def shows(self, fn, data):
        (args, kwargs), = data["calls"]
        return _same(self.output(_run(fn, *args, **kwargs)), data["wrong"])


class precision(Probe):
    """Right in float64 (the first call), far off in float32 (the second): e.g. a one-pass
    variance, E[x^2] - E[x]^2, on features far from 0."""

    def __init__(self, far, output=lambda out: out):
        self.far, self.output = far, output

    def shows(self, fn, data):
        (good_args, good_kw), (bad_args, bad_kw) = data["calls"]
        exact = data["exact"]
        good = self.output(_run(fn, *good_args, **good_kw))
        bad = self.output(_run(fn, *bad_args, **bad_kw))
        if good is None or bad is None or not _same(good, exact):
            return False
        try:
            return bool(np.max(np.abs(np.asarray(bad, np.float64) - exact)) > self.far)
        except Exception:
            return False


class moved_parameters(Probe):
    """Did fn change the model's parameters (e.g. an optimiser step)? gradient_norms' second
    answer is the largest change."""

    def shows(self, fn, data):
        (args, kwargs), = data["calls"]
        out = _run(fn, *args, **kwargs)
        try:
            return float(np.asarray(out[1])) > 0
        except Exception:
            return False


def _y(out):
    return out[0] if isinstance(out, tuple) and out else None


def _cache(key):
    return lambda out: (out[1].get(key) if isinstance(out, tuple) and len(out) == 2
                        and isinstance(out[1], dict) else None)


def _out(i):
    return lambda out: out[i] if isinstance(out, (tuple, list)) and len(out) > i else None


CATALOGUE = {
    "batch_mean": [
        Misconception("wrong_axis", "you averaged across the features of each example (axis=1); "
                      "BatchNorm averages each feature over the batch: axis=0, one mean per feature", like()),
        Misconception("whole_array", "you averaged the whole array into one number; "
                      "BatchNorm keeps one mean per feature: average over axis 0 only", like()),
        Misconception("keepdims", "your mean has shape (1, D); return shape (D,) "
                      "(drop keepdims=True or index [0])", like()),
        Misconception("sum_not_mean", "you summed over the batch but did not divide by N", like()),
        Misconception("n_minus_1_mean", "you divided the sum by N-1; a mean divides by N", like()),
    ],
    "batch_variance": [
        Misconception("unbiased", "you divided by N-1 (the unbiased variance, ddof=1); BatchNorm "
                      "normalises with the biased variance of the batch itself: divide by N", like()),
        Misconception("one_pass", "your variance is right in float64 but loses all precision in "
                      "float32 when features sit far from zero (around 1e4): the one-pass formula "
                      "E[x^2] - E[x]^2 cancels catastrophically. Subtract the mean first, then "
                      "average the squared deviations (two passes)", precision(far=1e-2)),
        Misconception("std_not_var", "you returned the standard deviation; step 2 returns the "
                      "variance (no square root)", like()),
        Misconception("not_centred", "you averaged x**2 without subtracting the mean first; the "
                      "variance is the mean of (x - mean)**2", like()),
        Misconception("wrong_axis", "you computed the variance across features (axis=1); "
                      "BatchNorm needs each feature's variance over the batch: axis=0", like()),
        Misconception("keepdims", "your variance has shape (1, D); return shape (D,)", like()),
    ],
    "normalise": [
        Misconception("eps_outside_sqrt", "you added eps outside the square root, "
                      "(x - mean) / (sqrt(var) + eps); BatchNorm puts it inside: sqrt(var + eps)", like()),
        Misconception("no_eps", "you left out eps: a constant feature (var = 0) would divide by "
                      "zero. Divide by sqrt(var + eps)", like()),
        Misconception("var_not_std", "you divided by the variance; divide by the standard "
                      "deviation sqrt(var + eps)", like()),
        Misconception("not_centred", "you did not subtract the mean before dividing", like()),
        Misconception("own_statistics", "you recomputed the mean and variance from x instead of "
                      "using the mean and var arguments (at inference, lesson 04, they are "
                      "running statistics, not x's own)", like()),
        Misconception("fixed_eps", "you ignored the eps argument and used a fixed value; use the "
                      "eps passed in", like()),
    ],
    "scale_and_shift": [
        Misconception("swapped", "you swapped gamma and beta: gamma scales (multiplies) and beta "
                      "shifts (adds): y = gamma * x_hat + beta", like()),
        Misconception("shift_then_scale", "you shifted before scaling, gamma * (x_hat + beta); "
                      "step 4 is gamma * x_hat + beta", like()),
        Misconception("no_beta", "you forgot to add beta", like()),
        Misconception("no_gamma", "you forgot to multiply by gamma", like()),
        Misconception("per_row", "you applied gamma and beta per example (row) instead of per "
                      "feature (column); they have shape (D,) and broadcast along the last axis", like()),
    ],
    "batchnorm_forward": [
        Misconception("unbiased", "your forward pass normalises with the unbiased variance (N-1); "
                      "BatchNorm uses the biased batch variance (divide by N)", like(_y)),
        Misconception("eps_outside_sqrt", "your forward pass adds eps outside the square root; "
                      "use sqrt(var + eps)", like(_y)),
        Misconception("no_scale_shift", "y equals x_hat: you forgot step 4, y = gamma * x_hat + beta", like(_y)),
        Misconception("swapped", "your forward pass swaps gamma and beta: y = gamma * x_hat + beta", like(_y)),
        Misconception("cache_std", "cache['var'] holds the standard deviation; store the variance",
                      like(_cache("var"))),
        Misconception("cache_y_as_x_hat", "cache['x_hat'] holds y; store the normalised x_hat "
                      "(before gamma and beta)", like(_cache("x_hat"))),
    ],
}


# ---------------------------------------------------------------- lessons 03 and 04

def _backward_mistakes(where, staged=False):
    """The backward's mistakes. The staged backward's missing paths are shares its chaining lost where
    a value feeds two nodes (x_c: nodes 2 and 5; x: nodes 6 and 7); the message names the share, not
    what to do with it, which is the learner's to find."""
    if staged:
        no_mean = Misconception("no_mean_term", f"{where} dx lacks a share: x gets a gradient from node 6 and "
                                "one from node 7 (the path through the mean), and node 7's is not in your dx",
                                like(_out(0)))
        no_variance = Misconception("no_variance_term", f"{where} dx lacks a share: x_c gets a gradient from "
                                    "node 2 and one from node 5 (the path through the variance), and node 5's "
                                    "never reaches x", like(_out(0)))
        lost = [
            Misconception("xc_share_replaced", f"{where} dx lacks a share: x_c gets a gradient from node 2 (the "
                          "direct path through x_hat) and one from node 5, and only node 5's reaches x (was node "
                          "2's overwritten?)", like(_out(0))),
            Misconception("x_share_replaced", f"{where} dx lacks a share: x gets a gradient from node 6 and one "
                          "from node 7 (the path through the mean), and your dx is node 7's alone (was node 6's "
                          "overwritten?)", like(_out(0))),
        ]
    else:
        no_mean = Misconception("no_mean_term", f"{where} dx ignores that the batch mean depends on x: follow "
                                "the path through the mean as well", like(_out(0)))
        no_variance = Misconception("no_variance_term", f"{where} dx ignores that the batch variance depends on "
                                    "x: follow the path through the variance as well", like(_out(0)))
        lost = []
    return [
        Misconception("dgamma_not_summed", f"{where} dgamma has one row per example: sum dout * x_hat "
                      "over the batch (axis 0), one value per feature, shape (D,)", like(_out(1))),
        Misconception("dbeta_not_summed", f"{where} dbeta has one row per example: beta is shared by "
                      "every example, so its gradient sums dout over the batch (axis 0)", like(_out(2))),
        Misconception("dgamma_mean", f"{where} dgamma is divided by N: gamma is used by all N examples, "
                      "so the gradients add up, sum(dout * x_hat) over the batch, not their mean", like(_out(1))),
        Misconception("dbeta_mean", f"{where} dbeta is divided by N: sum dout over the batch, "
                      "not its mean", like(_out(2))),
        Misconception("direct_path_only", f"{where} dx treats the batch mean and variance as "
                      "constants (dx = gamma * dout / sqrt(var + eps)); they depend on every x in the "
                      "batch, so two more paths carry gradient back to x", like(_out(0))),
        no_mean,
        no_variance,
        *lost,
        Misconception("n_minus_1", f"{where} dx uses N-1 where the variance's derivative has N: the "
                      "forward pass divides by N (biased variance), so its gradient does too", like(_out(0))),
        Misconception("no_gamma", f"{where} dx is missing the factor gamma: y = gamma * x_hat + beta, "
                      "so every path from y back to x passes through gamma", like(_out(0))),
        Misconception("ones_not_dout", f"{where} gradients do not depend on dout, as if the upstream "
                      "gradient were all ones (then dx is 0 for every input, which is why a check with "
                      "ones proves nothing): multiply by the dout you are given", like(_out(2))),
    ]


def _sum_as_mean(name, at, output):
    """A node's gradient summed over the batch taken as a mean instead (output: its index)."""
    return Misconception(name, f"the gradient at {at} is divided by N: a sum over the batch taken as a mean "
                         "(every example's share counts in full)", like(_out(output)))


CATALOGUE.update({
    # lesson 03's nodes: the slips of deriving a node by hand; any other wrong gradient is named by its
    # node and input (the spec's explain)
    "scale_shift_backward": [
        Misconception("dx_hat_no_gamma", "the gradient at x_hat is missing the factor gamma: a change in "
                      "x_hat moves y gamma times as much", like(_out(0))),
        _sum_as_mean("dgamma_mean", "gamma", 1),
        _sum_as_mean("dbeta_mean", "beta", 2),
    ],
    "product_backward": [
        Misconception("dxc_times_s", "the gradient at xc is multiplied by s where x_hat = xc * r multiplies "
                      "by r: you divided by r instead", like(_out(0))),
        _sum_as_mean("dr_mean", "r", 1),
    ],
    "reciprocal_backward": [
        Misconception("sign", "the gradient at s has the wrong sign: 1/s falls as s grows", like()),
        Misconception("power", "the gradient at s has the wrong power of s (it is off by a factor s): "
                      "differentiate s ** -1, and the power drops by one", like()),
        Misconception("no_upstream", "the gradient at s does not depend on dr: the chain rule multiplies the "
                      "local derivative by the gradient that arrives", like()),
    ],
    "sqrt_backward": [
        Misconception("no_half", "the gradient at var is twice the right one: the derivative of a square "
                      "root has a factor 1/2", like()),
        Misconception("inverted", "the gradient at var has the wrong power of sqrt(var + eps): you multiplied "
                      "by it where the derivative of u ** (1/2) has u ** (-1/2)", like()),
        Misconception("no_eps", "you left eps out of the derivative: s = sqrt(var + eps), so what is under "
                      "the root stays var + eps", like()),
    ],
    "variance_backward": [
        Misconception("n_minus_1", "you divided by N-1: this variance divides by N (the biased variance), "
                      "and so does its derivative", like()),
        Misconception("no_2", "the gradient at xc is half the right one: the derivative of xc ** 2 has a "
                      "factor 2", like()),
        Misconception("no_1_over_n", "the gradient at xc is N times too large: the variance is a mean, so "
                      "each xc ** 2 enters it with weight 1/N", like()),
    ],
    "centre_backward": [
        Misconception("dmean_sign", "the gradient at mean has the wrong sign: xc = x - mean falls as the mean "
                      "grows", like(_out(1))),
        _sum_as_mean("dmean_mean", "mean", 1),
    ],
    "mean_backward": [
        Misconception("no_1_over_n", "the gradient at x is N times too large: each x enters its column's "
                      "mean with weight 1/N", like()),
        Misconception("over_d", "you divided by the number of features D (x.shape[1]); the mean is over "
                      "the N examples of each column (x.shape[0])", like()),
    ],
    "batchnorm_backward_staged": _backward_mistakes("your staged backward pass:", staged=True),
    "batchnorm_backward": _backward_mistakes("your closed-form backward pass:"),
    "numerical_gradient": [
        Misconception("one_sided", "you used a one-sided difference (L(x + h) - L(x)) / h, whose error "
                      "shrinks only like h; the centred difference (L(x + h) - L(x - h)) / (2h) is "
                      "accurate to h**2", like()),
        Misconception("over_h", "you divided the centred difference by h; the two points are 2h apart: "
                      "divide by 2 * h", like()),
        Misconception("ignores_dout", "you differentiated sum(f(x)), as if dout were all ones; the "
                      "gradient of L = sum(f(x) * dout) weighs each output by its dout", like()),
    ],
    "update_running_stats": [
        Misconception("flipped", "you weighed the new batch by momentum: in this convention "
                      "(this course's first, and Keras') momentum weighs the OLD running value, "
                      "r = momentum * r + (1 - momentum) * batch", like()),
        Misconception("batch_only", "you returned the batch statistics: the running averages must "
                      "keep momentum * the old value", like()),
        Misconception("unchanged", "your running statistics do not move: add (1 - momentum) * the "
                      "batch statistics", like()),
    ],
    "batchnorm_inference": [
        Misconception("batch_statistics", "you normalised with the batch's own mean and variance; at "
                      "inference use running_mean and running_var, so each example's output does not "
                      "depend on the rest of the batch", like()),
        Misconception("eps_outside_sqrt", "you added eps outside the square root; use "
                      "sqrt(running_var + eps), as in training", like()),
        Misconception("no_scale_shift", "you forgot gamma and beta: inference applies the same "
                      "y = gamma * x_hat + beta as training", like()),
    ],
    "update_running_stats_torch": [
        Misconception("flipped", "you used this course's first convention (momentum weighs the old value); in "
                      "PyTorch's, momentum is the weight of the NEW batch: r = (1 - momentum) * r + "
                      "momentum * batch", like()),
        Misconception("biased", "your running variance takes the biased batch variance; PyTorch "
                      "stores the unbiased one (divide by N - 1) in running_var, while the forward pass "
                      "normalises with the biased one", like(_out(1))),
        Misconception("none_as_default", "with momentum=None PyTorch keeps a cumulative average: the "
                      "new batch weighs 1 / (batches_seen + 1), not 0.1", like()),
        Misconception("cumulative_off_by_one", "your cumulative average (momentum=None) weighs the new "
                      "batch by 1 / batches_seen; it is the (batches_seen + 1)-th batch, so its weight "
                      "is 1 / (batches_seen + 1)", like()),
    ],
    "init_running_stats": [
        Misconception("var_zero", "running_var starts at 1, not 0: before any batch the layer should "
                      "leave inputs as they are, x / sqrt(1 + eps), not divide by sqrt(eps)",
                      like(lambda out: out.get("running_var") if isinstance(out, dict) else None)),
    ],
    "batchnorm_layer_forward": [
        Misconception("updates_in_eval", "your layer updates the running statistics in eval mode; "
                      "evaluation must leave the state unchanged", like(_out(1))),
        Misconception("batch_stats_in_eval", "in eval mode your layer normalises with the batch's "
                      "statistics; use the running statistics (batchnorm_inference)", like(_out(0))),
        Misconception("never_updates", "your layer never updates running_mean and running_var in "
                      "training: assign the new values back into the state dict", like(_out(1))),
        Misconception("not_counted", "num_batches_tracked does not count the training batches: add 1 "
                      "after each one (momentum=None needs the count)", like(_out(3))),
        Misconception("running_in_training", "in training mode your layer normalises with the running "
                      "statistics; training uses the batch's own statistics", like(_out(0))),
    ],
})


# ---------------------------------------------------------------- lesson 07

CATALOGUE.update({
    "layer_norm": [
        Misconception("batch_axis", "you normalised each feature over the batch (axis 0): that is "
                      "BatchNorm. LayerNorm normalises each example over its own features: axis 1, "
                      "one mean and one variance per row", like()),
        Misconception("no_keepdims", "you subtracted the per-example means without keeping their axis: "
                      "a (N,) vector broadcasts along the last axis, so example j's mean was subtracted "
                      "from feature j. Use keepdims=True (or [:, None])", like()),
        Misconception("unbiased", "you divided by D-1: LayerNorm, like BatchNorm, normalises with the "
                      "biased variance (divide by the number of values averaged)", like()),
        Misconception("eps_outside_sqrt", "you added eps outside the square root; use sqrt(var + eps)", like()),
    ],
    "group_norm": [
        Misconception("strided_groups", "your groups take every G-th channel (channel j in group j % G); "
                      "GroupNorm's groups are runs of C/G neighbouring channels: reshape to "
                      "(N, G, C/G * positions), channels first", like()),
        Misconception("per_channel", "you normalised every channel on its own (that is InstanceNorm, "
                      "G = C); a group holds C/G channels normalised together", like()),
        Misconception("whole_example", "you normalised each example as a whole (that is LayerNorm over "
                      "C, H, W, G = 1); split the channels into num_groups groups first", like()),
        Misconception("batch_statistics", "you took each channel's statistics over the batch (that is "
                      "BatchNorm2d); GroupNorm never mixes examples: its statistics are per example", like()),
        Misconception("unbiased", "you divided by the group's size minus 1: GroupNorm uses the biased "
                      "variance", like()),
    ],
    "fold_batchnorm": [
        Misconception("no_running_mean", "your folded bias leaves out the running mean: BatchNorm "
                      "subtracts it, so new bias = (bias - running_mean) * scale + beta", like()),
        Misconception("no_eps", "your scale is gamma / sqrt(running_var): BatchNorm divides by "
                      "sqrt(running_var + eps)", like()),
        Misconception("ignores_layer_bias", "your folded bias ignores the layer's own bias: it passes "
                      "through the BatchNorm too, (bias - running_mean) * scale + beta", like()),
        Misconception("no_beta", "your folded bias forgets BatchNorm's beta (bn.bias)", like()),
        Misconception("input_axis", "you scaled the weight's input axis (dim 1); BatchNorm scales each "
                      "OUTPUT channel, i.e. each row of the weight (dim 0)", like()),
    ],
})


# ---------------------------------------------------------------- lessons 00 and 06

def _first_three_of_15(out):
    return np.asarray(out).reshape(-1)[:3] if out is not None and np.size(out) == 15 else None


CATALOGUE.update({
    "activation_summary": [
        Misconception("unbiased", "your standard deviation divides by n-1 (ddof=1); summarise the values "
                      "you have as they are: the biased std, np.std's default", like()),
        Misconception("per_feature", "you summarised each feature (column) separately; the summary is over "
                      "all the layer's values at once: five numbers", like(_first_three_of_15)),
        Misconception("percentile_method", "your percentiles are not np.percentile's default linear "
                      "interpolation (e.g. nearest value, or a fraction like 0.15 where percentiles take 15)",
                      like()),
        Misconception("median_for_mean", "the first number is the median; it should be the mean", like()),
    ],
    "record_layer_inputs": [
        Misconception("outputs", "you recorded each Linear's output; the hook's second argument holds "
                      "its inputs (a tuple: args[0] is x)", like(_out(1))),
        Misconception("top_level", "you only looked at the model's top-level children; the Linear layers "
                      "sit inside nested blocks: iterate over model.modules()",
                      like(lambda out: out[1] if isinstance(out, (tuple, list)) and len(out) == 2 else None)),
        Misconception("eval_mode", "you switched the model to eval mode; record it in the mode it is in "
                      "(with BatchNorm in train mode, eval mode changes what the later layers receive)",
                      like(_out(2))),
    ],
    "shift_per_step": [
        Misconception("later_std", "you divided by the later checkpoint's std; measure the move in units "
                      "of the spread before it, stds[t] (stds[:-1])", like()),
        Misconception("signed", "your shifts keep their sign; take the absolute value of the change", like()),
        Misconception("not_scaled", "you did not divide by the std: the shift is measured in units of the "
                      "layer's own spread", like()),
    ],
    "largest_stable_lr": [
        Misconception("first_failure", "you stopped at the first rate that failed; a larger rate can still "
                      "train (training is noisy), so keep every rate whose loss is finite and below the "
                      "start and take the largest", like()),
        Misconception("best_loss", "you returned the rate with the lowest final loss; the question is the "
                      "largest rate that still trained", like()),
        Misconception("assumes_sorted", "you took the last rate that trained in the order given; the rates "
                      "come in any order: take the largest", like()),
        Misconception("ignores_start", "you only checked that the loss is finite; a rate trained only if "
                      "its final loss is below the starting loss", like()),
    ],
    "effective_smoothness": [
        Misconception("no_eta", "you did not divide by the step size eta: the change of gradient is per "
                      "unit of distance moved, eta * ||g0||", like()),
        Misconception("no_g_norm", "you divided by eta but not by ||g0||: the step w - eta * g0 moves a "
                      "distance eta * ||g0||", like()),
        Misconception("mean_not_max", "you averaged over the step sizes; take the largest ratio (max)", like()),
        Misconception("squared", "you used the squared norm of the gradient change; use the norm itself", like()),
    ],
    "batch_mean_noise": [
        Misconception("remainder", "you kept the last, smaller batch; drop the remainder (only full "
                      "batches of N rows)", like()),
        Misconception("unbiased", "you used the unbiased std (ddof=1) of the batch means; use ddof=0", like()),
        Misconception("theory", "you returned the textbook value std(x) / sqrt(N); measure it: split x into "
                      "batches and take the std of their means", like()),
        Misconception("max_not_mean", "you took the largest std over the features; average it over them", like()),
    ],
    "gradient_norms": [
        Misconception("no_zero_grad", "the gradients already in .grad leaked into yours: call model.zero_grad() "
                      "before backward() (backward adds to .grad)", like(_out(0))),
        Misconception("includes_bias", "you included the bias in each layer's norm; measure the weight's "
                      "gradient only (m.weight.grad)", like(_out(0))),
        Misconception("sum_loss", "your loss sums over the batch; F.cross_entropy's default is the mean",
                      like(_out(0))),
        Misconception("squared", "you returned squared norms; return the norm itself", like(_out(0))),
        Misconception("eval_mode", "you switched the model to eval mode; measure it in the mode it is in "
                      "(BatchNorm in train mode normalises with the batch's statistics)", like(_out(0))),
        Misconception("stepped", "you changed the model's parameters (an optimiser step?); only measure the "
                      "gradients", moved_parameters()),
    ],
})


# ---------------------------------------------------------------- lesson 05

CATALOGUE["BatchNormFunction"] = [
    Misconception("one_pass", "your forward pass computes the variance in one pass, E[x^2] - E[x]^2: in "
                  "float32, with features far from 0, the two nearly equal terms cancel and leave rounding "
                  "noise; subtract the mean first, then average the squares (two passes)",
                  precision(far=0.05, output=_out(0))),
    Misconception("unbiased", "your forward pass normalises with the unbiased variance (N-1); BatchNorm "
                  "uses the biased batch variance", like(_out(0))),
    Misconception("direct_path_only", "your backward treats the batch mean and variance as constants "
                  "(dx = weight * dy / sqrt(var + eps)); add the paths through the mean and the variance",
                  like(_out(1))),
    Misconception("no_mean_term", "your backward's dx drops the mean term: subtract dy.mean(dim=0)", like(_out(1))),
    Misconception("no_variance_term", "your backward's dx drops the variance term: subtract "
                  "x_hat * (dy * x_hat).mean(dim=0)", like(_out(1))),
    Misconception("n_minus_1", "your backward uses N-1 where the biased variance's derivative has N", like(_out(1))),
    Misconception("no_gamma", "your backward's dx is missing the factor weight (gamma)", like(_out(1))),
]


def _answer(out, key):
    """A module's recorded answer `key`: text, an array, or None when there is none."""
    if not isinstance(out, dict) or key not in out:
        return None
    return decode_text(out[key]) if is_text(out[key]) else np.asarray(out[key])


class module_like(Probe):
    """Does the module give answer `key` (text or numbers) as the module with the mistake does?"""

    def __init__(self, key):
        self.answer_key = key

    def shows(self, fn, data):
        (args, config), = data["calls"]
        got = _answer(_run(fn, *args, **config), self.answer_key)
        bad = _answer({self.answer_key: data["wrong"]}, self.answer_key)
        if isinstance(bad, str) or isinstance(got, str):
            return got == bad
        return _same(got, bad)


class module_answer(Probe):
    """Does the module's answer `key` (text or array) show the mistake? predicate(answer, data)."""

    def __init__(self, key, predicate):
        self.answer_key, self.predicate = key, predicate

    def shows(self, fn, data):
        (args, kwargs), = data["calls"]
        answer = _answer(_run(fn, *args, **kwargs), self.answer_key)
        return answer is not None and bool(self.predicate(answer, data))


class crashes(Probe):
    """Does the module crash with `phrase` in the error (on the stored configuration)?"""

    def __init__(self, phrase):
        self.phrase = phrase

    def shows(self, fn, data):
        (args, config), = data["calls"]
        try:
            fn(*_copies(args), **config)
        except Exception as e:
            return self.phrase in str(e)
        return False


def _running_stats_as_parameters(layout, data):
    return "running_" in layout.split(";")[0]  # the layout's parameters part


def _parameters_without_affine(layout, data):
    """(probed with affine=False) any parameter at all, trainable or not"""
    return layout.split(";")[0].strip() != "parameters: none"


def _wrong_initial_params(answer, data):
    return answer.shape == data["exact"].shape and not np.array_equal(answer, data["exact"])


def _in_graph(state, data):
    return "grad_fn=set" in state


IN_GRAPH = ("your running statistics are updated inside the autograd graph: afterwards they require grad "
            "and carry a grad_fn, and the next backward through them fails (it would go through the graph a "
            "second time); update them under torch.no_grad(), or from detached batch statistics")


def _module_mistakes(piece):
    m = [
        Misconception("buffers_as_parameters", "running statistics are parameters in your module; they are "
                      "state, not learned: register_buffer them (optimisers must not see them, state_dict and "
                      ".to() must)", module_answer("layout", _running_stats_as_parameters)),
        Misconception("float_count", "num_batches_tracked must be an int64 tensor, torch.tensor(0, "
                      "dtype=torch.long), whatever the module's dtype", module_like("layout")),
        Misconception("affine_false_params", "with affine=False torch has no weight and bias: "
                      "register_parameter('weight', None) (and 'bias'), do not create fixed ones",
                      module_answer("layout", _parameters_without_affine)),
        Misconception("ignores_tracking", "with track_running_stats=False there are no running statistics: "
                      "register the three buffers as None, and normalise with the batch's statistics in "
                      "eval mode too", module_like("layout")),
        Misconception("initial_params", "a new module's weight must start at 1 and its bias at 0 (torch's "
                      "reset_parameters): then the layer starts as a pure normalisation",
                      module_answer("initial weight and bias", _wrong_initial_params)),
        Misconception("not_counted", "num_batches_tracked does not count the training batches: add 1 for "
                      "each one", module_like("num_batches_tracked")),
        Misconception("momentum_none_as_01", "with momentum=None your running statistics still use 0.1; "
                      "None means a cumulative average, weight 1 / num_batches_tracked (counted first)",
                      module_like("running_mean")),
        Misconception("updates_in_eval", "your module updates the running statistics in eval mode; "
                      "evaluation must leave them alone", module_like("running_mean")),
        Misconception("eval_batch_stats", "in eval mode your module normalises with the batch's statistics; "
                      "with tracking on, eval uses running_mean and running_var", module_like("y")),
        Misconception("biased_running_var", "running_var takes the *unbiased* batch variance in torch "
                      "(divide by n - 1, n the values per channel)", module_like("running_var")),
        Misconception("var_init_zero", "running_var starts at 1, not 0", module_like("running_var")),
        Misconception("stats_in_graph", IN_GRAPH, module_answer("state after each step", _in_graph)),
        Misconception("eval_ignores_tracking", "with track_running_stats=False the running statistics are "
                      "None, so eval mode cannot use them: normalise with the batch's statistics when training "
                      "or when there are no running statistics", crashes("NoneType")),
        Misconception("tracking_switched", "torch reads track_running_stats at every call, not only in the "
                      "constructor: the running statistics move only in training mode while it is True (set "
                      "to False after construction, they stay as they are), and eval mode uses them whenever "
                      "they exist", module_like("running_mean")),
        Misconception("reset_keeps_count", "reset_running_stats() must also set num_batches_tracked back to 0",
                      module_like("after reset_running_stats()")),
        Misconception("no_single_value_error", "a batch with one value per channel cannot be normalised in "
                      "training: raise ValueError('Expected more than 1 value per channel when training, ...') "
                      "as torch does", module_like("errors")),
        Misconception("no_dim_check", "your module accepts inputs of the wrong number of dimensions: "
                      "BatchNorm1d takes 2-D and 3-D input, BatchNorm2d 4-D only", module_like("errors")),
        Misconception("no_bias_argument", "torch's constructor has a keyword-only argument bias=True after "
                      "dtype (`*, bias=True`): with bias=False the layer learns a weight but no bias",
                      crashes("unexpected keyword argument 'bias'")),
        Misconception("bias_kw_ignored", "with bias=False torch registers no bias parameter "
                      "(register_parameter('bias', None)); the weight stays", module_like("layout")),
        Misconception("no_eps_check", "torch refuses eps <= 0 whenever it normalises with the batch's "
                      "statistics: raise ValueError('batch_norm eps must be positive during training, but "
                      "got ...')", module_like("errors")),
    ]
    if piece == "BatchNorm2d":
        m.insert(0, Misconception("per_pixel", "you normalised every (channel, pixel) position on its own, "
                                  "over the batch only; BatchNorm2d keeps one mean and variance per channel, "
                                  "over N * H * W values", module_like("y")))
        m.insert(1, Misconception("bessel_batch_n", "your unbiased running_var uses n = N (the batch size); "
                                  "each channel's statistics come from n = N * H * W values, so the factor is "
                                  "n / (n - 1) with that n", module_like("running_var")))
    else:
        m.insert(0, Misconception("per_position", "for (N, C, L) input you normalised every (channel, position) "
                                  "on its own; BatchNorm1d keeps one mean and variance per channel over N * L",
                                  module_like("y")))
    return m


# the module's steps (their answers carry the module's keys: "layout", "running_mean", ...)
_by_name = {m.name: m.message for m in _module_mistakes("BatchNorm1d")}
CATALOGUE["make_parameters_and_buffers"] = [
    Misconception("buffers_as_parameters", _by_name["buffers_as_parameters"],
                  module_answer("layout", _running_stats_as_parameters)),
    Misconception("plain_attribute", "a running statistic is a plain tensor attribute: the module does not "
                  "know it (not in state_dict, left behind by .to() and .double()); register_buffer it",
                  module_like("layout")),
    Misconception("float_count", _by_name["float_count"], module_like("layout")),
    Misconception("affine_false_params", _by_name["affine_false_params"],
                  module_answer("layout", _parameters_without_affine)),
    Misconception("ignores_tracking", "with track_running_stats=False there are no running statistics: "
                  "register the three buffers as None", module_like("layout")),
    Misconception("initial_params", _by_name["initial_params"],
                  module_answer("initial weight and bias", _wrong_initial_params)),
    Misconception("bias_kw_ignored", _by_name["bias_kw_ignored"], module_like("layout")),
    Misconception("initial_buffers", "a new module's running_mean starts at 0, running_var at 1 and "
                  "num_batches_tracked at 0 (torch's reset_running_stats): statistics of a standard normal, "
                  "which eval mode uses until training has moved them",
                  module_answer("initial buffers", _wrong_initial_params)),
]
CATALOGUE["training_forward"] = [
    Misconception("not_counted", "num_batches_tracked does not count the batches: add 1 to the tensor you "
                  "were given, in place (num_batches_tracked += 1 or .add_(1); a new tensor is lost on return)",
                  module_like("num_batches_tracked")),
    Misconception("momentum_none_as_01", _by_name["momentum_none_as_01"], module_like("running_mean")),
    Misconception("biased_running_var", _by_name["biased_running_var"], module_like("running_var")),
    Misconception("momentum_old_weight", "your update gives the old value the weight momentum; in torch "
                  "momentum (0.1) is the weight of the new batch: (1 - m) * running + m * batch",
                  module_like("running_mean")),
    Misconception("stats_in_graph", IN_GRAPH, module_answer("state after each step", _in_graph)),
]
CATALOGUE["eval_forward"] = [
    Misconception("eval_batch_stats", "in eval mode BatchNorm normalises with running_mean and running_var, "
                  "not with the batch's own statistics", like(_out(0))),
    Misconception("eps_outside_sqrt", "eps goes inside the square root: sqrt(running_var + eps)", like(_out(0))),
]
CATALOGUE["check_input"] = [
    Misconception("no_single_value_error", _by_name["no_single_value_error"], like()),
    Misconception("single_example", "what BatchNorm needs is more than one value per channel, not more than "
                  "one example: a single sequence of length 3 has 3 values per channel", like()),
    Misconception("single_value_in_eval", "with running statistics (use_batch_statistics False) one value per "
                  "channel is fine: raise only when the batch's statistics would be used", like()),
    Misconception("no_eps_check", _by_name["no_eps_check"], like()),
    Misconception("no_dim_check", "check x.dim() against dims: torch raises ValueError for any other number "
                  "of dimensions", like()),
]
CATALOGUE["BatchNorm1d"] = _module_mistakes("BatchNorm1d")
CATALOGUE["BatchNorm2d"] = _module_mistakes("BatchNorm2d")

for _piece, _known in CATALOGUE.items():  # each probe reads its misconception's stored inputs and answers
    for _m in _known:
        if _m.probe.key is not None:
            raise ValueError(f"{_piece}/{_m.name} shares its probe with {_m.probe.key}")
        _m.probe.key = f"{_piece}/{_m.name}"


def diagnose(piece, fn):
    """The known mistakes that fn reproduces, most specific first."""
    return [m for m in CATALOGUE.get(piece, []) if m.probe(fn)]
