"""Lesson 00's models, experiment and figures: internal covariate shift made visible.

    covariate_shift.plot_digits()                     # the data: 8x8 handwritten digits
    model = covariate_shift.deep_mlp(batchnorm=True)  # 8 hidden tanh layers, with or without BN
    covariate_shift.layer_table(record_layer_inputs, activation_summary)  # at initialisation
    r = covariate_shift.drift_study(activation_summary=activation_summary,
                                    record_layer_inputs=record_layer_inputs,
                                    shift_per_step=shift_per_step)
    covariate_shift.check_drift(r)                    # (ok, message): did BN calm the inputs?
    covariate_shift.check_training(r)                 # (ok, message): did BN train faster?
    covariate_shift.report(r)                         # prints both messages
    covariate_shift.plot_percentiles(r)               # 15/50/85th percentiles over training
    covariate_shift.plot_histograms(r)                # one deep layer's inputs at 4 checkpoints
    covariate_shift.plot_shift(r)                     # shift per step, layer by layer
    covariate_shift.plot_training(r)                  # the training curves
    covariate_shift.pooled_shift(r, shift_per_step)   # the shift of the pooled inputs instead

The experiment trains the same deep MLP twice, without and with BatchNorm, and at every
checkpoint records what each ``nn.Linear`` receives on one fixed probe batch. It needs the
three functions the learner writes in the lesson, because ``bncourse`` does not ship the
answers. Calling convention (the one ``EXPERIMENTS`` and a test use):

    helpers = {"activation_summary": f1, "record_layer_inputs": f2, "shift_per_step": f3}
    run, check = covariate_shift.EXPERIMENTS["drift"]   # the only entry
    result = run(seed=0, **helpers)                     # helpers by keyword; seed too
    ok, message = check(result)                         # check_study: both claims below

``HELPERS`` lists the three names. A helper's solution source needs ``np`` (numpy) and
``torch`` in its namespace. There is one experiment, ``drift_study``; its check,
``check_study``, requires both claims: the layers' inputs move less with BatchNorm
(``check_drift``) and the BatchNorm network trains faster (``check_training``).

Every experiment takes a seed and returns a frozen dataclass of plain Python numbers (floats,
ints, tuples), so that two runs can be compared with ``==``. Training runs on the CPU, on one
thread (restored afterwards), with fixed seeds and the digits shipped in ``datasets/``: two
runs on the same machine give identical numbers. The BatchNorm layers are torch's own, run
inside ``tripwire.allowed()``; the learner's ``record_layer_inputs`` is called inside that
block too, since it runs this module's model (and with it those layers), not an answer's
BatchNorm. Figures are built as in ``bncourse.plots``: make the call the last line of a cell.
The figure functions accept ``None`` for the result (the study could not run because a helper
is not written yet): they print a reminder instead of a traceback.
"""
import copy
import functools
from dataclasses import dataclass

import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from bncourse import tripwire
from bncourse.experiments import _digits, _optimiser, _seeded, evaluate, on_one_thread
from bncourse.plots import BLUE, GREY, ORANGE, _figure

HELPERS = ("activation_summary", "record_layer_inputs", "shift_per_step")
MODELS = ("plain", "bn")
NAMES = {"plain": "without BatchNorm", "bn": "with BatchNorm"}
MODEL_COLOURS = {"plain": ORANGE, "bn": BLUE}
HIST_BINS = 40                      # histogram bins over [-1, 1], the range of tanh


def _needs_result(plot):
    """Decorator: with result None, print a reminder and return None instead of failing."""
    @functools.wraps(plot)
    def wrapper(result, *args, **kwargs):
        if result is None:
            print("No study to show yet: write the three functions above, then run the study.")
            return None
        return plot(result, *args, **kwargs)
    return wrapper


# ---------------------------------------------------------------- the data and the model

def plot_digits(count=10, split="train"):
    """Figure: the first image of each digit 0..count-1 in the split, with its label."""
    x, y = (t.numpy() for t in (_digits()[:2] if split == "train" else _digits()[2:]))
    fig, axes = _figure(count, width=1.1, height=1.5)
    for digit, ax in enumerate(axes):
        ax.imshow(x[np.flatnonzero(y == digit)[0]].reshape(8, 8), cmap="gray_r", vmin=0, vmax=1)
        ax.set(title=f"label {digit}", xticks=[], yticks=[])
    fig.suptitle("Handwritten digits: 8 x 8 pixels each, 64 numbers in [0, 1]", fontsize=10)
    return fig


def deep_mlp(batchnorm=False, depth=8, width=64, seed=0):
    """A deep digits classifier: `depth` hidden layers of `width` tanh units, then a Linear
    layer to 10 logits.

    batchnorm=False: Linear -> tanh, repeated;  batchnorm=True: Linear -> BatchNorm1d -> tanh.
    The Linear layers get the same initial weights for the same seed either way (BatchNorm's
    own initialisation, gamma = 1 and beta = 0, draws no random numbers). Linear layer k
    (k = 1 .. depth + 1) receives the pixels for k = 1, and the output of hidden block k - 1
    otherwise: values in [-1, 1].
    """
    def build():
        layers, fan_in = [], 64
        for _ in range(depth):
            layers.append(nn.Linear(fan_in, width))
            if batchnorm:
                layers.append(nn.BatchNorm1d(width))
            layers.append(nn.Tanh())
            fan_in = width
        layers.append(nn.Linear(fan_in, 10))
        return nn.Sequential(*layers)
    return _seeded(build, seed)


def layer_table(record_layer_inputs, activation_summary, probe_size=256, depth=8, seed=0):
    """Print the mean and standard deviation of every Linear layer's input, for fresh
    (untrained) deep_mlp networks without and with BatchNorm, on the first `probe_size`
    training digits. Returns {"plain": (L+1, 5), "bn": (L+1, 5)} summaries."""
    probe = _digits()[0][:probe_size]
    out = {}
    for name in MODELS:
        inputs = _record(deep_mlp(name == "bn", depth, seed=seed), probe, record_layer_inputs)
        out[name] = np.array([activation_summary(a) for a in inputs])
    print(f"what each Linear layer of an untrained network receives, on {probe_size} digits")
    print(f"{'':21s}{'without BatchNorm':>19s}{'with BatchNorm':>19s}")
    print(f"{'':21s}" + f"{'mean':>9s}{'std':>8s}  " * 2)
    for k, (p, b) in enumerate(zip(out["plain"], out["bn"]), start=1):
        label = f"Linear {k}" + (" (the pixels)" if k == 1 else "")
        print(f"{label:21s}{p[0]:9.3f}{p[1]:8.3f}  {b[0]:9.3f}{b[1]:8.3f}")
    return out


def _batch_order(n, steps, batch_size, seed):
    """(steps, batch_size) indices: shuffled epochs, one after the other, cut into batches."""
    generator = torch.Generator().manual_seed(seed)
    epochs = -(-steps * batch_size // n)
    order = torch.cat([torch.randperm(n, generator=generator) for _ in range(epochs)])
    return order[:steps * batch_size].reshape(steps, batch_size)


# ---------------------------------------------------------------- the experiment

@dataclass(frozen=True)
class DriftResult:
    """What drift_study measured. Layer index l = 0 .. L-1 is the input of Linear layer l + 2,
    i.e. the output of hidden block l + 1 (Linear layer 1 receives the pixels, which never
    change, and is left out). Dicts are keyed by "plain" and "bn"."""
    steps: tuple          # (T,) training steps at the checkpoints
    layers: tuple         # (L,) the Linear layer each row describes: 2 .. depth + 1
    summary: dict         # model -> (T, L, 5): activation_summary of all of the layer's inputs
    shift: dict           # model -> (L,): per-unit shift per step, mean over units and steps
    shift_curve: dict     # model -> (L, T - 1): per-unit shift, mean over units, per step
    hist_steps: tuple     # checkpoints whose histograms are kept
    histograms: dict      # model -> (len(hist_steps), L, HIST_BINS): counts over [-1, 1]
    train_loss: dict      # model -> (steps,): the loss of every training batch
    val_loss: dict        # model -> (T,): validation loss at each checkpoint (eval mode)
    val_accuracy: dict    # model -> (T,)
    gamma_change: tuple   # (L,) mean |gamma - 1| of each BatchNorm after training
    beta_change: tuple    # (L,) mean |beta| of each BatchNorm after training


def _nested(a):
    """A numpy array as nested tuples of Python floats (or ints)."""
    return tuple(_nested(v) for v in a) if np.ndim(a) else a.item()


def _record(model, probe, record_layer_inputs):
    """The inputs of every Linear layer for the probe batch, from a copy of the model in
    training mode: BatchNorm normalises with the probe batch's own statistics, as it does
    with every training batch, and the model's running statistics are left untouched."""
    snapshot = copy.deepcopy(model).train()
    with tripwire.allowed():
        return record_layer_inputs(snapshot, probe)


def _unit_shift(inputs, activation_summary, shift_per_step, units):
    """inputs: (T, N, D) one layer's inputs at every checkpoint. Summarise the column of each
    of the first `units` units with activation_summary, then shift_per_step on the (T, units)
    means and stds: (T - 1, units)."""
    stats = np.array([[activation_summary(a[:, j]) for j in range(units)] for a in inputs])
    return np.asarray(shift_per_step(stats[:, :, 0], stats[:, :, 1]), dtype=np.float64)


@on_one_thread
def drift_study(activation_summary, record_layer_inputs, shift_per_step, seed=0, depth=8,
                width=64, steps=400, every=10, batch_size=32, probe_size=256, lr=0.05, units=16,
                hist_steps=(0, 40, 120, 400)):
    """Train deep_mlp without and with BatchNorm from the same initial weights, on the same
    batches (SGD, momentum 0.9, learning rate `lr`, `steps` batches of `batch_size` digits).
    Every `every` steps (and before the first), record the input of every Linear layer on a
    fixed probe batch (the first `probe_size` training digits) with record_layer_inputs, and
    score the validation split.

    Then, per layer: activation_summary of all its inputs (for the plots), and the shift of
    a unit's input between checkpoints: shift_per_step(means, stds) on the (T, units) means
    and standard deviations of the layer's first `units` units (each summarised on its own
    with activation_summary), averaged over those units. BatchNorm works unit by unit, so the
    shift is measured unit by unit; a quarter of the units keeps the study quick.
    """
    x, y, x_val, y_val = _digits()
    probe = x[:probe_size]
    batches = _batch_order(len(x), steps, batch_size, seed)
    checkpoints = tuple(range(0, steps + 1, every))
    out = {k: {} for k in ("summary", "shift", "shift_curve", "histograms", "train_loss",
                           "val_loss", "val_accuracy")}
    gamma_change = beta_change = ()
    bins = np.linspace(-1.0, 1.0, HIST_BINS + 1)
    for name in tqdm(MODELS, desc="training both networks", leave=False):
        model = deep_mlp(name == "bn", depth, width, seed)
        opt = _optimiser("sgd", model.parameters(), lr)
        recorded, losses, scores = [], [], []
        with tripwire.allowed():
            for step in range(steps + 1):
                if step in checkpoints:
                    recorded.append(_record(model, probe, record_layer_inputs)[1:])
                    scores.append(evaluate(model, x_val, y_val)[:2])
                    model.train()
                if step == steps:
                    break
                idx = batches[step]
                loss = F.cross_entropy(model(x[idx]), y[idx])
                opt.zero_grad()
                loss.backward()
                opt.step()
                losses.append(loss.item())
        per_layer = [np.stack([r[k] for r in recorded]) for k in range(depth)]   # (T, N, D)
        summary = np.array([[activation_summary(a) for a in layer] for layer in per_layer])
        curves = np.array([_unit_shift(layer, activation_summary, shift_per_step, units).mean(1)
                           for layer in per_layer])                                # (L, T-1)
        hist = np.array([[np.histogram(layer[checkpoints.index(s)], bins)[0]
                          for layer in per_layer] for s in hist_steps])
        out["summary"][name] = _nested(summary.transpose(1, 0, 2))
        out["shift"][name] = _nested(curves.mean(axis=1))
        out["shift_curve"][name] = _nested(curves)
        out["histograms"][name] = _nested(hist)
        out["train_loss"][name] = tuple(losses)
        out["val_loss"][name] = tuple(s[0] for s in scores)
        out["val_accuracy"][name] = tuple(s[1] for s in scores)
        if name == "bn":
            norms = [m for m in model.modules() if isinstance(m, nn.BatchNorm1d)]
            gamma_change = tuple((m.weight.detach() - 1).abs().mean().item() for m in norms)
            beta_change = tuple(m.bias.detach().abs().mean().item() for m in norms)
    return DriftResult(checkpoints, tuple(range(2, depth + 2)), hist_steps=tuple(hist_steps),
                       gamma_change=gamma_change, beta_change=beta_change, **out)


def _deep(result):
    """Indices of the deeper half of the recorded layers."""
    return range(len(result.layers) // 2, len(result.layers))


def check_drift(result):
    """ok when every layer's inputs shift less per step with BatchNorm than without it, and
    the deeper half of the layers by a factor of at least 3 on average."""
    plain, bn = np.array(result.shift["plain"]), np.array(result.shift["bn"])
    deep = list(_deep(result))
    ratio = plain[deep].mean() / bn[deep].mean()
    ok = bool(np.all(bn < plain) and ratio >= 3)
    every = result.steps[1] - result.steps[0]
    head = (f"with BatchNorm the layers' inputs move much less: in the deeper half, a unit's "
            f"input moved {ratio:.0f} times less" if ok else
            "the expected effect (BatchNorm's network has calmer layer inputs) does NOT show here")
    lines = [f"mean shift of a unit's input per {every} steps, in units of its std "
             f"(Linear layers {result.layers[deep[0]]}-{result.layers[-1]}): "
             f"{plain[deep].mean():.3f} without BatchNorm, {bn[deep].mean():.3f} with it",
             "layer " + " ".join(f"{k:6d}" for k in result.layers),
             "plain " + " ".join(f"{v:6.3f}" for v in plain),
             "BN    " + " ".join(f"{v:6.3f}" for v in bn)]
    return ok, head + "\n" + "\n".join(lines)


def check_study(result):
    """Both claims at once: ok when check_drift and check_training are both ok; the message
    joins theirs."""
    verdicts = [check(result) for check in (check_drift, check_training)]
    return all(ok for ok, _ in verdicts), "\n\n".join(message for _, message in verdicts)


@_needs_result
def report(result):
    """Print what check_drift and check_training say about the result."""
    print(check_study(result)[1])


@_needs_result
def affine_drift(result):
    """Print how far gamma and beta of every BatchNorm layer moved from their starting values
    (1 and 0) during training."""
    print(f"{'BatchNorm feeding Linear layer':31s}" + "".join(f"{k:7d}" for k in result.layers))
    print("mean |gamma - 1| after training" + "".join(f"{v:7.3f}" for v in result.gamma_change))
    print("mean |beta|      after training" + "".join(f"{v:7.3f}" for v in result.beta_change))


def steps_to_loss(result, name, target):
    """The first step after which the mean loss over the last 20 training batches is below
    target, or None if it never is."""
    loss = np.array(result.train_loss[name])
    smooth = np.convolve(loss, np.ones(20) / 20, mode="valid")
    below = np.flatnonzero(smooth < target)
    return int(below[0]) + 20 if len(below) else None


def check_training(result, target=0.5):
    """ok when the BatchNorm network gets its training loss below `target` in fewer steps and
    ends with the higher validation accuracy."""
    reach = {m: steps_to_loss(result, m, target) for m in MODELS}
    acc = {m: result.val_accuracy[m][-1] for m in MODELS}
    loss = {m: result.val_loss[m][-1] for m in MODELS}
    faster = reach["bn"] is not None and (reach["plain"] is None or reach["bn"] < reach["plain"])
    ok = bool(faster and acc["bn"] > acc["plain"])
    said = {m: (f"after {reach[m]} steps" if reach[m] is not None else
                f"not within {len(result.train_loss[m])} steps") for m in MODELS}
    head = ("with BatchNorm the network trains faster" if ok else
            "the expected effect (BatchNorm's network trains faster) does NOT show here")
    lines = [f"{NAMES[m]:18s}: training loss below {target} {said[m]}; after "
             f"{result.steps[-1]} steps validation loss {loss[m]:.3f}, accuracy {acc[m]:.1%}"
             for m in MODELS]
    return ok, head + "\n" + "\n".join(lines)


@_needs_result
def pooled_shift(result, shift_per_step):
    """Print and return {model: (L,)}: the shift per step of the POOLED inputs of each layer
    (one mean and one std over all units and examples, from result.summary), averaged over
    training, next to the per-unit shift that drift_study measured."""
    pooled = {}
    for name in MODELS:
        s = np.array(result.summary[name])                               # (T, L, 5)
        pooled[name] = np.asarray(shift_per_step(s[:, :, 0], s[:, :, 1])).mean(axis=0)
    print("mean shift per checkpoint, in units of the std, averaged over training")
    print(f"{'input of Linear layer':>33s}" + "".join(f"{k:7d}" for k in result.layers))
    for name in MODELS:
        for label, values in (("pooled", pooled[name]), ("unit by unit", result.shift[name])):
            print(f"{NAMES[name] + ', ' + label:33s}" + "".join(f"{v:7.3f}" for v in values))
    return pooled


# ---------------------------------------------------------------- figures

def _grid(rows, cols, width, height):
    """A figure with a rows x cols grid of axes sharing x and y (read them from fig.axes)."""
    fig = plt.figure(figsize=(width * cols, height * rows), layout="constrained")
    plt.close(fig)  # returned, not left in pyplot: displayed once, as in bncourse.plots
    fig.subplots(rows, cols, sharex=True, sharey=True)
    return fig


@_needs_result
def plot_percentiles(result, layers=(2, 5, 9)):
    """Figure: the 15th, 50th and 85th percentiles of the inputs of a few Linear layers over
    training, without BatchNorm (top row) and with it (bottom row)."""
    steps = np.array(result.steps)
    fig = _grid(2, len(layers), width=3.3, height=2.6)
    for row, name in enumerate(MODELS):
        s = np.array(result.summary[name])                           # (T, L, 5)
        for col, layer in enumerate(layers):
            ax = fig.axes[row * len(layers) + col]
            k = result.layers.index(layer)
            colour = MODEL_COLOURS[name]
            ax.fill_between(steps, s[:, k, 2], s[:, k, 4], color=colour, alpha=0.25,
                            label="15th to 85th percentile")
            ax.plot(steps, s[:, k, 3], color=colour, label="median")
            ax.set(ylim=(-1.05, 1.05), title=f"input of Linear {layer}, {NAMES[name]}",
                   xlabel="training step" if row == 1 else None,
                   ylabel="value" if col == 0 else None)
            ax.title.set_fontsize(9)
    fig.axes[0].legend(fontsize=7, loc="lower left")
    fig.suptitle("What a layer receives, on the same probe batch of digits, during training",
                 fontsize=10)
    return fig


@_needs_result
def plot_histograms(result, layer=None):
    """Figure: histograms of one Linear layer's inputs (default: the last) at the checkpoints
    in result.hist_steps, without BatchNorm (top row) and with it (bottom row)."""
    layer = result.layers[-1] if layer is None else layer
    k = result.layers.index(layer)
    bins = np.linspace(-1.0, 1.0, HIST_BINS + 1)
    fig = _grid(2, len(result.hist_steps), width=2.6, height=2.4)
    for row, name in enumerate(MODELS):
        counts = np.array(result.histograms[name])[:, k]            # (checkpoints, bins)
        for col, step in enumerate(result.hist_steps):
            ax = fig.axes[row * len(result.hist_steps) + col]
            share = counts[col] / counts[col].sum()
            ax.stairs(share, bins, fill=True, color=MODEL_COLOURS[name], alpha=0.85)
            ax.set(title=f"step {step}, {'no BN' if name == 'plain' else 'BN'}",
                   xlabel="value" if row == 1 else None,
                   ylabel="share of values" if col == 0 else None)
            ax.title.set_fontsize(9)
    fig.suptitle(f"Input of Linear {layer} (the output of hidden block {layer - 1}) on the "
                 f"probe batch", fontsize=10)
    return fig


@_needs_result
def plot_shift(result):
    """Figure: left, each layer's mean shift per checkpoint interval (per unit, in units of its
    std), without and with BatchNorm; right, the shift of the last layer's inputs over
    training. Both on a log scale."""
    fig, (ax0, ax1) = _figure(2, width=4.8, height=3.5)
    layers = np.array(result.layers)
    every = result.steps[1] - result.steps[0]
    for offset, name in ((-0.2, "plain"), (0.2, "bn")):
        ax0.bar(layers + offset, result.shift[name], width=0.4, color=MODEL_COLOURS[name],
                label=NAMES[name])
        ax1.plot(result.steps[1:], result.shift_curve[name][-1], color=MODEL_COLOURS[name],
                 label=NAMES[name])
    ax0.set(yscale="log", xticks=layers, xlabel="Linear layer whose input is measured",
            ylabel=f"shift per {every} steps (std units)", title="Mean over training")
    ax1.set(yscale="log", xlabel="training step", ylabel=f"shift per {every} steps (std units)",
            title=f"Input of Linear {result.layers[-1]}, during training")
    ax0.legend(fontsize=8)
    ax1.legend(fontsize=8)
    fig.suptitle("How far each unit's input mean moves between checkpoints, "
                 "in units of its spread", fontsize=10)
    return fig


@_needs_result
def plot_training(result, window=20):
    """Figure: training loss (mean over the last `window` batches) and validation accuracy
    during training, without and with BatchNorm."""
    fig, (ax0, ax1) = _figure(2, width=4.6, height=3.4)
    for name in MODELS:
        loss = np.array(result.train_loss[name])
        smooth = np.convolve(loss, np.ones(window) / window, mode="valid")
        ax0.plot(np.arange(window, len(loss) + 1), smooth, color=MODEL_COLOURS[name],
                 label=NAMES[name])
        ax1.plot(result.steps, result.val_accuracy[name], color=MODEL_COLOURS[name],
                 label=NAMES[name])
    ax0.axhline(np.log(10), color=GREY, linestyle=":", linewidth=1)
    ax0.text(len(result.train_loss["plain"]) / 2, np.log(10) * 0.97, "ln 10: guessing at random",
             fontsize=8, ha="center", va="top", color=GREY)
    ax0.set(title=f"Training loss (mean of {window} batches)", xlabel="training step",
            ylabel="cross-entropy")
    ax1.set(title="Validation accuracy (eval mode)", xlabel="training step",
            ylabel="accuracy", ylim=(0, 1))
    ax0.legend(fontsize=8, loc="center right")
    return fig


# ---------------------------------------------------------------- the list, for tests

EXPERIMENTS = {  # name -> (run(seed=0, **helpers) -> result, check(result) -> (ok, message))
    "drift": (drift_study, check_study),
}
# helpers: activation_summary=..., record_layer_inputs=..., shift_per_step=... (see HELPERS)
