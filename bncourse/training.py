"""The torch side of the lessons' demos: torch's BatchNorm1d output (lesson 02), running
averages and BatchNorm1d's buffers, and a small model that shows what ``model.eval()`` is
for (lesson 04).

Everything here runs on the CPU in a few seconds, with fixed seeds and no download. Every call
into torch's BatchNorm sits inside ``tripwire.allowed()``: while a lesson is graded, torch's
normalisation kernels are switched off for the learner's code, not for the course's helpers.
Figures are built and returned as in ``bncourse.plots`` (make the call the last line of a cell).

    training.torch_batchnorm1d(x)                        # a fresh BatchNorm1d's output for x
    training.running_average_demo()                      # figure: momenta following a drift
    training.buffers_vs_torch(update_running_stats_torch) # your buffers vs BatchNorm1d's
    training.layer_vs_torch(batchnorm_layer_forward, init_running_stats)
    run = training.train_moons()                          # the model, validated three ways
    training.plot_validation(run)
"""
from __future__ import annotations  # Run's fields name torch's types without importing torch

import copy
import time
from dataclasses import dataclass, field

import numpy as np

from bncourse import lazy, tripwire
from bncourse.plots import BLUE, COLOURS, GREY, ORANGE, _figure

torch = lazy.Module("torch")  # lesson 04 is a NumPy lesson: torch only when a demonstration asks
F = lazy.Module("torch.nn.functional")

RED = COLOURS[3]


def torch_batchnorm1d(x):
    """What a fresh torch.nn.BatchNorm1d (training mode, gamma 1, beta 0, eps 1e-5) outputs for
    the batch x (N, D), computed in x's dtype."""
    x = torch.as_tensor(x)
    layer = torch.nn.BatchNorm1d(x.shape[1], dtype=x.dtype)
    with tripwire.allowed(), torch.no_grad():
        return layer(x).numpy()


# ---------------------------------------------------------------- running averages

def running_average(values, momentum, start=0.0):
    """PyTorch's running average of a sequence, r <- (1 - momentum) * r + momentum * value,
    starting from r = start. Returns r after each value (same length as values)."""
    r, trace = start, []
    for v in values:
        r = (1 - momentum) * r + momentum * v
        trace.append(r)
    return np.array(trace)


def drifting_batch_means(steps=300, noise=0.3, seed=0):
    """One feature's batch mean over training, as (true_level, batch_means), both (steps,).

    The feature's true mean is 2 for 100 batches, drifts linearly to 4 over the next 100 (the
    layers below are learning), then stays at 4; each batch sees it with sampling noise.
    """
    t = np.arange(steps)
    level = 2.0 + 2.0 * np.clip((t - 100) / 100, 0.0, 1.0)
    return level, level + noise * np.random.default_rng(seed).standard_normal(steps)


def running_average_demo(momenta=(0.5, 0.1, 0.01), steps=300, seed=0):
    """Figure: running means with several momenta (PyTorch's convention, the weight of the new
    batch) following a drifting, noisy batch mean. Each starts at 0, as running_mean does."""
    level, means = drifting_batch_means(steps, seed=seed)
    fig, (ax,) = _figure(1, width=7.5, height=3.8)
    ax.plot(means, ".", color=GREY, markersize=3, label="batch mean (one dot per batch)")
    ax.plot(level, "--", color="black", linewidth=1, label="true mean of the feature")
    for k, m in enumerate(momenta):
        colour = (BLUE, ORANGE, RED, COLOURS[4])[k % 4]
        ax.plot(running_average(means, m), color=colour, linewidth=2,
                label=f"torch momentum {m:g} (ρ = {1 - m:g}): remembers ~{1 / m:.0f} batches")
    ax.set(title="A running mean following a drifting batch mean", xlabel="training step (batch)",
           ylabel="mean of the feature", ylim=(-0.2, 5.2))
    ax.legend(fontsize=8, loc="upper left")
    return fig


# ---------------------------------------------------------------- buffers and layer vs torch

def drifting_batches(steps=50, n=16, seed=0):
    """`steps` float64 batches of shape (n, 3) whose feature means drift during training."""
    rng = np.random.default_rng(seed)
    start, drift = np.array([2.0, -1.0, 10.0]), np.array([0.05, -0.02, 0.0])
    spread = np.array([2.0, 0.5, 3.0])
    return [start + drift * t + spread * rng.standard_normal((n, 3)) for t in range(steps)]


def _torch_buffers(layer):
    return layer.running_mean.numpy().copy(), layer.running_var.numpy().copy()


def buffers_vs_torch(update_fn, steps=50, momenta=(0.1, None), seed=0):
    """Feed the same `steps` batches to torch.nn.BatchNorm1d (training mode) and to
    ``update_fn(running_mean, running_var, x, momentum, batches_seen)``, starting both from
    running_mean = 0, running_var = 1. Prints the largest difference between the two sets of
    buffers for each momentum and returns a figure of feature 0's buffers."""
    batches = drifting_batches(steps, seed=seed)
    d = batches[0].shape[1]
    fig, axes = _figure(len(momenta), width=4.2, height=3.4)
    for m, ax in zip(momenta, axes):
        layer = torch.nn.BatchNorm1d(d, momentum=m, dtype=torch.float64)
        mean, var = np.zeros(d), np.ones(d)
        torch_trace, your_trace = [], []
        for t, x in enumerate(batches):
            with tripwire.allowed(), torch.no_grad():
                layer(torch.from_numpy(x))
            mean, var = update_fn(mean, var, x.copy(), momentum=m, batches_seen=t)
            torch_trace.append(_torch_buffers(layer))
            your_trace.append((np.asarray(mean, np.float64), np.asarray(var, np.float64)))
        torch_trace, your_trace = np.array(torch_trace), np.array(your_trace)  # (steps, 2, d)
        gap = np.abs(torch_trace - your_trace).max(axis=(0, 2))
        print(f"momentum={m}: after {steps} batches, largest |yours - torch| "
              f"running_mean {gap[0]:.1e}, running_var {gap[1]:.1e}")
        steps_axis = np.arange(1, steps + 1)
        for k, (name, colour) in enumerate((("running_mean", BLUE), ("running_var", ORANGE))):
            ax.plot(steps_axis, torch_trace[:, k, 0], color=colour, linewidth=2,
                    label=f"torch {name}")
            ax.plot(steps_axis, your_trace[:, k, 0], "o", color="black", markersize=2.5,
                    label="yours" if k == 0 else None)
        ax.set(title=f"feature 0, momentum={m}", xlabel="batches seen", ylabel="buffer value")
        ax.legend(fontsize=8)
    return fig


def layer_vs_torch(layer_forward, init_state, train_steps=4, eval_steps=2, n=8, seed=0):
    """Run ``layer_forward`` (with a state from ``init_state``) and torch.nn.BatchNorm1d on the
    same batches: `train_steps` in training mode, then `eval_steps` in eval mode. Prints, per
    step, the largest differences of the outputs and of the buffers, and the batch count."""
    rng = np.random.default_rng(seed)
    d = 3
    gamma, beta = rng.uniform(0.5, 2.0, d), rng.normal(0.0, 1.0, d)
    layer = torch.nn.BatchNorm1d(d, dtype=torch.float64)
    with torch.no_grad():
        layer.weight.copy_(torch.from_numpy(gamma))
        layer.bias.copy_(torch.from_numpy(beta))
    state = init_state(d)
    print("step  mode   max|y - torch|  max|running_mean - torch|  max|running_var - torch|"
          "  batches (yours/torch)")
    for step in range(1, train_steps + eval_steps + 1):
        training = step <= train_steps
        x = 5.0 + 2.0 * rng.standard_normal((n, d)) + step
        layer.train(training)
        with tripwire.allowed(), torch.no_grad():
            y_torch = layer(torch.from_numpy(x)).numpy()
        y = layer_forward(x.copy(), gamma, beta, state, training)
        torch_mean, torch_var = _torch_buffers(layer)
        mode = "train" if training else "eval "
        print(f"{step:>4}  {mode}  {np.abs(y - y_torch).max():14.1e}  "
              f"{np.abs(state['running_mean'] - torch_mean).max():25.1e}  "
              f"{np.abs(state['running_var'] - torch_var).max():24.1e}  "
              f"{state['num_batches_tracked']:>6} / {int(layer.num_batches_tracked)}")


# ---------------------------------------------------------------- the model and its data

def make_moons(n_per_class, noise=0.2, seed=0):
    """Two interleaving half-moons in 2-D: x (2n, 2) float32, labels (2n,) int64.

    The examples are stored class by class (all of class 0, then all of class 1), as many
    datasets are on disk.
    """
    rng = np.random.default_rng(seed)
    a, b = np.pi * rng.random(n_per_class), np.pi * rng.random(n_per_class)
    upper = np.column_stack([np.cos(a), np.sin(a)])
    lower = np.column_stack([1.0 - np.cos(b), 0.5 - np.sin(b)])
    x = np.vstack([upper, lower]) + noise * rng.standard_normal((2 * n_per_class, 2))
    y = np.repeat([0, 1], n_per_class)
    return x.astype(np.float32), y.astype(np.int64)


def make_model(hidden=32, seed=0):
    """Linear-BatchNorm1d-ReLU, twice, then a Linear output layer for 2 classes (no BatchNorm
    on the output layer). Initialised from `seed` without touching torch's global generator."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return torch.nn.Sequential(
            torch.nn.Linear(2, hidden), torch.nn.BatchNorm1d(hidden), torch.nn.ReLU(),
            torch.nn.Linear(hidden, hidden), torch.nn.BatchNorm1d(hidden), torch.nn.ReLU(),
            torch.nn.Linear(hidden, 2))


def validation_loss(model, x, y, batch_size, training, order=None):
    """Mean cross-entropy of `model` over (x, y), read in batches of `batch_size` (in `order`,
    default as stored), with the model in training mode or in eval mode. Runs on a copy of the
    model, so the model's running statistics are never touched."""
    model = copy.deepcopy(model).train(training)
    order = np.arange(len(x)) if order is None else order
    total = 0.0
    with tripwire.allowed(), torch.no_grad():
        for i in range(0, len(x), batch_size):
            idx = torch.from_numpy(order[i:i + batch_size])
            total += F.cross_entropy(model(x[idx]), y[idx], reduction="sum").item()
    return total / len(x)


CURVES = ("eval mode", "train mode, shuffled batches", "train mode, batches in stored order")


@dataclass
class Run:
    """What train_moons returns: the trained model, the data, and one value per epoch."""

    model: torch.nn.Module
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    val_batch: int
    curves: dict = field(default_factory=dict)  # name -> list of validation losses
    seconds: float = 0.0


def train_moons(epochs=25, batch_size=32, val_batch=50, lr=0.01, seed=0):
    """Train make_model() on 2 x 256 moons with Adam (fixed seeds, about a second on a CPU).

    After every epoch the validation set (2 x 250 moons, stored class by class) is scored
    three ways: with model.eval() (the right way); in training mode with batches of
    `val_batch` drawn in a fixed random order; and in training mode read in stored order,
    as a validation loader with shuffle=False does, so every batch holds one class only.
    """
    start = time.perf_counter()
    x, y = make_moons(256, seed=seed)
    xv, yv = make_moons(250, seed=seed + 1)
    run = Run(make_model(seed=seed), torch.from_numpy(x), torch.from_numpy(y),
              torch.from_numpy(xv), torch.from_numpy(yv), val_batch,
              {name: [] for name in CURVES})
    shuffled = np.random.default_rng(seed).permutation(len(xv))
    generator = torch.Generator().manual_seed(seed)
    optimiser = torch.optim.Adam(run.model.parameters(), lr=lr)
    with tripwire.allowed():  # the whole loop: forward and backward through torch's BatchNorm
        for _ in range(epochs):
            run.model.train()
            for idx in torch.randperm(len(x), generator=generator).split(batch_size):
                if len(idx) < 2:
                    continue  # BatchNorm cannot train on a batch of one
                loss = F.cross_entropy(run.model(run.x_train[idx]), run.y_train[idx])
                optimiser.zero_grad()
                loss.backward()
                optimiser.step()
            run.model.eval()
            ways = ((False, None), (True, shuffled), (True, None))  # (training, order) per curve
            for name, (training, order) in zip(CURVES, ways):
                run.curves[name].append(
                    validation_loss(run.model, run.x_val, run.y_val, val_batch, training, order))
    run.seconds = time.perf_counter() - start
    return run


def plot_validation(run):
    """Figure: the validation set, and its loss over training scored the three ways."""
    fig, (ax0, ax1) = _figure(2, width=4.6, height=3.6)
    xv, yv = run.x_val.numpy(), run.y_val.numpy()
    for c, colour in enumerate((BLUE, ORANGE)):
        ax0.plot(xv[yv == c, 0], xv[yv == c, 1], ".", color=colour, markersize=4,
                 label=f"class {c}")
    ax0.set(title="Validation set (two moons)", xlabel="$x_1$", ylabel="$x_2$")
    ax0.legend(fontsize=8)
    epochs = np.arange(1, len(run.curves["eval mode"]) + 1)
    for (name, losses), colour in zip(run.curves.items(), (BLUE, GREY, RED)):
        ax1.plot(epochs, losses, "o-", color=colour, markersize=3, label=name)
    ax1.axhline(np.log(2), color="black", linestyle=":", linewidth=1)
    ax1.text(epochs[-1], np.log(2), "chance: ln 2", ha="right", va="bottom", fontsize=8)
    ax1.set(title=f"Validation loss (batches of {run.val_batch})", xlabel="epoch",
            ylabel="cross-entropy", yscale="log")
    ax1.legend(fontsize=8, loc="center right", bbox_to_anchor=(1.0, 0.42))
    return fig


def accuracy(model, x, y):
    """Fraction of (x, y) that `model`, switched to eval mode, classifies correctly."""
    model.eval()
    with tripwire.allowed(), torch.no_grad():
        return (model(x).argmax(dim=1) == y).float().mean().item()


def validate_in_train_mode(run):
    """The silent bug: a copy of the trained model scores the validation set in training mode,
    under torch.no_grad(), batches in stored order. Prints what that did to the first BatchNorm
    layer's buffers, and to the model's loss and accuracy once it is put in eval mode."""
    model = copy.deepcopy(run.model)
    bn = model[1]
    mean_before, count_before = bn.running_mean.clone(), int(bn.num_batches_tracked)
    before = _scores(model, run)
    model.train()
    with tripwire.allowed(), torch.no_grad():  # no_grad stops gradients, not buffer updates
        for i in range(0, len(run.x_val), run.val_batch):
            model(run.x_val[i:i + run.val_batch])
    after = _scores(model, run)
    print(f"first BatchNorm layer, num_batches_tracked: {count_before} -> "
          f"{int(bn.num_batches_tracked)}")
    print(f"  running_mean[:4] before: {np.round(mean_before[:4].numpy(), 3)}")
    print(f"  running_mean[:4] after : {np.round(bn.running_mean[:4].numpy(), 3)}")
    print("the same copy, scored (correctly) in eval mode:")
    print(f"  validation loss     {before[0]:.4f} before, {after[0]:.4f} after")
    print(f"  validation accuracy {before[1]:.1%} before, {after[1]:.1%} after")


def _scores(model, run):
    """(loss, accuracy) of `model` on the validation set, in eval mode."""
    loss = validation_loss(model, run.x_val, run.y_val, run.val_batch, training=False)
    return loss, accuracy(copy.deepcopy(model), run.x_val, run.y_val)


def one_example(run, i=0):
    """Ask the trained model about a single validation example in training mode and in eval mode."""
    model = copy.deepcopy(run.model)
    x_one = run.x_val[i:i + 1]
    model.train()
    try:
        with tripwire.allowed(), torch.no_grad():
            model(x_one)
    except ValueError as error:
        print(f"training mode: ValueError: {error}")
    model.eval()
    with tripwire.allowed(), torch.no_grad():
        p = torch.softmax(model(x_one), dim=1)[0]
    print(f"eval mode    : P(class 0) = {p[0]:.3f}, P(class 1) = {p[1]:.3f}; "
          f"true class {int(run.y_val[i])}")
