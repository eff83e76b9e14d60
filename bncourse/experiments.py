"""Lesson 07's models, experiments and figures: where BatchNorm goes in a network, what to use
instead when batches are small, and how BatchNorm disappears at inference.

    r = experiments.placement_study()        # Linear-BN-ReLU vs Linear-ReLU-BN on the digits
    experiments.plot_placement(r)
    experiments.redundant_bias()             # a bias before BatchNorm cancels; its gradient is 0
    r = experiments.output_layer_study()     # BatchNorm on the logits caps the confidence
    r = experiments.batch_noise()            # the noise of a batch mean is sigma / sqrt(N)
    experiments.plot_norm_axes()             # which entries each normalisation averages over
    r = experiments.batch_size_study()       # BN, LN, GN (and none) across batch sizes
    r = experiments.token_statistics()       # a pre-norm block: LayerNorm vs BatchNorm on tokens
    r = experiments.folding_study(fold_fn)   # a trained CNN with its BatchNorms folded away
    experiments.time_folding(fold_fn)        # and the time it saves (the only timing here)
    experiments.folded_vs_modes(fold_fn)     # folding is exact in eval mode only

Every experiment takes a seed and returns a frozen dataclass of plain Python numbers (floats,
tuples), so that two runs can be compared with ``==``; ``check_<experiment>(result)`` returns
``(ok, message)``, saying whether the effect points the way the lesson expects. ``EXPERIMENTS``
lists the pairs. Everything runs on the CPU, on one thread (restored afterwards), with fixed
seeds and the digits shipped in ``datasets/``: two runs on the same machine give bitwise
identical numbers (another CPU may differ in the last digits).

Calls into torch's normalisation layers sit inside ``tripwire.allowed()``: while the lesson is
graded they are switched off for the learner's code, not for these demos. A learner's function
passed in (``layer_norm``, ``group_norm``, ``fold_fn``) is always called outside that block.
Figures are built as in ``bncourse.plots``: make the call the last line of a cell.
"""
import copy
import functools
import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from bncourse import data, tripwire
from bncourse.plots import BLUE, COLOURS, GREEN, GREY, ORANGE, _figure
from bncourse.timing import best_time, one_thread

RED, PURPLE = COLOURS[3], COLOURS[4]


# ---------------------------------------------------------------- shared pieces

def on_one_thread(fn):
    """Decorator: the whole function runs inside one_thread()."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with one_thread():
            return fn(*args, **kwargs)
    return wrapper


@functools.lru_cache(maxsize=1)
def _digits():
    """(x, y, x_val, y_val) as torch tensors: (1438, 64) float32 images and their labels,
    (359, 64) and labels."""
    x, y = data.load_digits("train")
    xv, yv = data.load_digits("validation")
    return tuple(torch.from_numpy(a) for a in (x, y, xv, yv))


def _seeded(build, seed):
    """build() with torch's generator seeded, without disturbing the caller's generator."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build()


def _norm(kind, width):
    """The normalisation layer of a hidden layer of `width` units: "bn", "ln", "gn" (4 groups)
    or "none"."""
    return {"bn": lambda: nn.BatchNorm1d(width), "ln": lambda: nn.LayerNorm(width),
            "gn": lambda: nn.GroupNorm(4, width), "none": nn.Identity}[kind]()


def mlp(norm="bn", placement="before", head=None, hidden=64, depth=2, seed=0):
    """A digits classifier: `depth` hidden layers of `hidden` units, then a Linear layer to 10
    logits.

    placement "before": Linear -> norm -> ReLU (the usual order);
              "after" : Linear -> ReLU -> norm.
    head: None (the logits are the Linear's output), "bn" (a BatchNorm1d on the logits) or
      "bn_fixed" (a BatchNorm1d(affine=False) on the logits: no gamma, no beta).
    """
    def build():
        layers, width = [], 64
        for _ in range(depth):
            layers.append(nn.Linear(width, hidden))
            pair = [_norm(norm, hidden), nn.ReLU()]
            layers += pair if placement == "before" else pair[::-1]
            width = hidden
        layers.append(nn.Linear(width, 10))
        if head is not None:
            layers.append(nn.BatchNorm1d(10, affine=(head == "bn")))
        return nn.Sequential(*layers)
    return _seeded(build, seed)


def _optimiser(name, params, lr=None):
    """"sgd": SGD with momentum 0.9, lr 0.05; "adam": Adam, lr 0.001 (unless lr is given).
    Both use torch's fused CPU kernels, which take a third less time per step for these tiny
    models than the default loop over parameters."""
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr or 0.05, momentum=0.9, fused=True)
    return torch.optim.Adam(params, lr=lr or 1e-3, fused=True)


def evaluate(model, x, y):
    """(loss, accuracy, confidence) of `model` in eval mode on (x, y): the mean cross-entropy,
    the fraction classified correctly, and the mean probability given to the true class."""
    model.eval()
    with tripwire.allowed(), torch.no_grad():
        logits = model(x)
    p_true = logits.softmax(dim=1)[torch.arange(len(y)), y]
    return (F.cross_entropy(logits, y).item(), (logits.argmax(dim=1) == y).float().mean().item(),
            p_true.mean().item())


def train(model, epochs, batch_size=32, optimiser="sgd", lr=None, seed=0, on_epoch=None):
    """Train `model` on the digits' training split with cross-entropy, in shuffled batches
    (a fixed order from `seed`; a last batch of one example is skipped: BatchNorm cannot
    train on it). After each epoch on_epoch(model), if given. Returns the mean training loss
    of each epoch."""
    x, y, _, _ = _digits()
    opt = _optimiser(optimiser, model.parameters(), lr)
    order = torch.Generator().manual_seed(seed)
    losses = []
    with one_thread(), tripwire.allowed():
        for _ in range(epochs):
            model.train()
            total, count = 0.0, 0
            for idx in torch.randperm(len(x), generator=order).split(batch_size):
                if len(idx) < 2:
                    continue
                loss = F.cross_entropy(model(x[idx]), y[idx])
                opt.zero_grad()
                loss.backward()
                opt.step()
                total, count = total + loss.item() * len(idx), count + len(idx)
            losses.append(total / count)
            if on_epoch is not None:
                on_epoch(model)
    return losses


# ---------------------------------------------------------------- placement

@dataclass(frozen=True)
class PlacementResult:
    """Validation loss and accuracy after every epoch: loss[(optimiser, placement)] and
    accuracy[(optimiser, placement)] are tuples over seeds of tuples over epochs; placement is
    "before" (Linear -> BN -> ReLU) or "after" (Linear -> ReLU -> BN)."""
    seeds: tuple
    epochs: int
    loss: dict
    accuracy: dict


@on_one_thread
def placement_study(seeds=(0, 1, 2, 3), epochs=8, batch_size=32, optimisers=("sgd", "adam")):
    """Train the same MLP (2 hidden layers of 64, BatchNorm) with the two placements,
    Linear -> BN -> ReLU ("before") and Linear -> ReLU -> BN ("after"), from the same
    initial weights and batch order for each seed (BatchNorm's initialisation draws no
    random numbers), with each optimiser; score the validation split after every epoch."""
    loss, acc = {}, {}
    runs = [(o, p, s) for o in optimisers for p in ("before", "after") for s in seeds]
    for opt, placement, seed in tqdm(runs, desc="placement study", leave=False):
        model = mlp("bn", placement, seed=seed)
        curve = []
        x_val, y_val = _digits()[2:]
        train(model, epochs, batch_size, opt, seed=seed,
              on_epoch=lambda m: curve.append(evaluate(m, x_val, y_val)[:2]))  # noqa: B023 (called in this pass)
        loss.setdefault((opt, placement), []).append(tuple(c[0] for c in curve))
        acc.setdefault((opt, placement), []).append(tuple(c[1] for c in curve))
    freeze = lambda d: {k: tuple(v) for k, v in d.items()}  # noqa: E731
    return PlacementResult(tuple(seeds), epochs, freeze(loss), freeze(acc))


def placement_summary(result):
    """{(optimiser, placement): (mean final loss, std over seeds, mean final accuracy)}."""
    out = {}
    for key, curves in result.loss.items():
        final = np.array([c[-1] for c in curves])
        accuracy = np.array([c[-1] for c in result.accuracy[key]])
        out[key] = (final.mean(), final.std(), accuracy.mean())
    return out


def check_placement(result):
    """ok when Linear -> BN -> ReLU ends with the lower mean validation loss for every
    optimiser; the message gives the numbers and whether the gap exceeds the seed spread."""
    summary, lines, ok = placement_summary(result), [], True
    for opt in dict.fromkeys(k[0] for k in summary):
        (b, b_sd, b_acc), (a, a_sd, a_acc) = summary[(opt, "before")], summary[(opt, "after")]
        ok &= b <= a
        clear = abs(a - b) > max(b_sd, a_sd)
        wins = sum(cb[-1] < ca[-1] for cb, ca in zip(result.loss[(opt, "before")],
                                                     result.loss[(opt, "after")]))
        lines.append(f"{opt}: final validation loss BN->ReLU {b:.3f} (±{b_sd:.3f}), "
                     f"ReLU->BN {a:.3f} (±{a_sd:.3f}); accuracy {b_acc:.1%} vs {a_acc:.1%}: "
                     f"{'BN->ReLU' if b <= a else 'ReLU->BN'} ahead, by "
                     f"{'more' if clear else 'less'} than the spread between seeds; "
                     f"BN->ReLU lower with {wins} of {len(result.seeds)} seeds")
    head = ("BN before ReLU ends ahead with every optimiser" if ok
            else "BN before ReLU does NOT end ahead with every optimiser")
    return bool(ok), head + "\n" + "\n".join(lines)


def plot_placement(result):
    """Figure: validation loss per epoch for each placement (mean over seeds, band from the
    best to the worst seed), one panel per optimiser."""
    optimisers = list(dict.fromkeys(k[0] for k in result.loss))
    fig, axes = _figure(len(optimisers), width=4.6, height=3.5)
    names = {"before": "Linear → BN → ReLU", "after": "Linear → ReLU → BN"}
    epochs = np.arange(1, result.epochs + 1)
    titles = {"sgd": "SGD, momentum 0.9, lr 0.05", "adam": "Adam, lr 0.001"}
    for opt, ax in zip(optimisers, axes):
        for placement, colour in (("before", BLUE), ("after", ORANGE)):
            curves = np.array(result.loss[(opt, placement)])
            ax.fill_between(epochs, curves.min(0), curves.max(0), color=colour, alpha=0.2)
            ax.plot(epochs, curves.mean(0), "o-", color=colour, markersize=3,
                    label=names[placement])
        ax.set(title=titles.get(opt, opt), xlabel="epoch", ylabel="validation loss",
               yscale="log")
        ax.legend(fontsize=8)
    fig.suptitle(f"Placement of BatchNorm: mean of {len(result.seeds)} seeds, band = best to worst",
                 fontsize=10)
    return fig


# ---------------------------------------------------------------- a bias before BatchNorm

@dataclass(frozen=True)
class BiasResult:
    output_change: float     # max |BN(W x + b) - BN(W x)| over a batch
    bias_gradient: float     # max |dL/db|
    weight_gradient: float   # max |dL/dW|, for scale
    bias_size: float         # max |b|


@on_one_thread
def redundant_bias(seed=0, batch=32, width=16):
    """Linear(64, width) with a large random bias, then BatchNorm1d in training mode, in
    float64 on a batch of digits: compare the output with the bias and with the bias set to
    zero, and back-propagate a random loss to get the bias's gradient."""
    x = _digits()[0][:batch].double()
    rng = np.random.default_rng(seed)
    layer = _seeded(lambda: nn.Linear(64, width).double(), seed)
    with torch.no_grad():
        layer.bias.copy_(torch.from_numpy(rng.normal(0.0, 3.0, width)))
    bn = nn.BatchNorm1d(width, dtype=torch.float64)
    dout = torch.from_numpy(rng.standard_normal((batch, width)))
    with tripwire.allowed():
        y = bn(layer(x))
        (y * dout).sum().backward()
        with torch.no_grad():
            y0 = bn(F.linear(x, layer.weight))  # the same layer without its bias
    y = y.detach()
    return BiasResult(float((y - y0).abs().max()), float(layer.bias.grad.abs().max()),
                      float(layer.weight.grad.abs().max()), float(layer.bias.detach().abs().max()))


def check_redundant_bias(result):
    """ok when the bias changes the output, and gets a gradient, only at rounding level."""
    ok = result.output_change < 1e-12 * result.bias_size and \
        result.bias_gradient < 1e-12 * result.weight_gradient
    return ok, (f"a bias of up to {result.bias_size:.2f} changes BatchNorm's output by at most "
                f"{result.output_change:.1e}; its gradient is at most {result.bias_gradient:.1e} "
                f"(the weights' reaches {result.weight_gradient:.2f})")


# ---------------------------------------------------------------- BatchNorm on the output layer

HEADS = {None: "no BatchNorm on the logits", "bn": "BatchNorm1d on the logits",
         "bn_fixed": "BatchNorm1d(affine=False) on the logits"}


def confidence_cap(classes=10):
    """The best a logit can do when BatchNorm forces its batch mean to 0 and its batch variance
    to 1, in a batch where each class makes up 1/classes of the examples.

    Put every example of class k at logit value a and every other example at b: mean 0 and
    variance 1 give b = -a / (classes - 1) and a = sqrt(classes - 1). Returns (a, b, p, loss):
    the probability p that softmax then gives the true class, and the loss -ln p.
    """
    a = math.sqrt(classes - 1)
    b = -a / (classes - 1)
    p = math.exp(a) / (math.exp(a) + (classes - 1) * math.exp(b))
    return a, b, p, -math.log(p)


@dataclass(frozen=True)
class OutputResult:
    heads: tuple                 # keys of HEADS, in order
    train_loss: tuple            # per head: mean training loss of each epoch
    val_loss: tuple              # per head, after training (eval mode)
    val_accuracy: tuple
    confidence: tuple            # mean probability given to the true class (validation)
    gamma: float                 # mean |gamma| of the "bn" head after training


@on_one_thread
def output_layer_study(seed=0, epochs=10, batch_size=32, optimiser="sgd"):
    """The same MLP (Linear-BN-ReLU twice, then Linear to 10 logits) trained three times from
    the same weights: without BatchNorm on the logits, with BatchNorm1d on them, and with
    BatchNorm1d(affine=False) on them."""
    heads = tuple(HEADS)
    x_val, y_val = _digits()[2:]
    train_loss, scores, gamma = [], [], 0.0
    for head in tqdm(heads, desc="output-layer study", leave=False):
        model = mlp("bn", "before", head=head, seed=seed)
        train_loss.append(tuple(train(model, epochs, batch_size, optimiser, seed=seed)))
        scores.append(evaluate(model, x_val, y_val))
        if head == "bn":
            gamma = float(model[-1].weight.detach().abs().mean())
    loss, acc, conf = zip(*scores)
    return OutputResult(heads, tuple(train_loss), loss, acc, conf, gamma)


def check_output_layer(result):
    """ok when the plain head reaches a lower validation loss and a higher confidence than both
    BatchNorm heads."""
    plain = result.heads.index(None)
    others = [i for i in range(len(result.heads)) if i != plain]
    ok = all(result.val_loss[plain] < result.val_loss[i] and
             result.confidence[plain] > result.confidence[i] for i in others)
    lines = [f"{HEADS[h]:42s} validation loss {result.val_loss[i]:.3f}, accuracy "
             f"{result.val_accuracy[i]:.1%}, mean probability of the true class "
             f"{result.confidence[i]:.3f}" for i, h in enumerate(result.heads)]
    head = ("without BatchNorm on the logits the model is the most confident and has the lowest "
            "loss" if ok else "the expected effect (a plain output layer is more confident) "
            "does NOT show here")
    return ok, head + "\n" + "\n".join(lines)


def plot_output_layer(result):
    """Figure: training loss per epoch for the three output layers, with the floor that a
    BatchNorm without gamma and beta puts under it."""
    fig, (ax,) = _figure(1, width=6.5, height=3.6)
    epochs = np.arange(1, len(result.train_loss[0]) + 1)
    for head, losses, colour in zip(result.heads, result.train_loss, (BLUE, ORANGE, RED)):
        ax.plot(epochs, losses, "o-", color=colour, markersize=3, label=HEADS[head])
    floor = confidence_cap()[3]
    ax.axhline(floor, color="black", linestyle=":", linewidth=1)
    ax.text(epochs[-1], floor * 0.9, f"best case with mean 0, variance 1 per logit: {floor:.3f}",
            fontsize=8, va="top", ha="right")
    ax.set(title="Training loss with and without BatchNorm on the logits", xlabel="epoch",
           ylabel="training loss (cross-entropy)", yscale="log")
    ax.legend(fontsize=8)
    return fig


# ---------------------------------------------------------------- small batches: noise

def _feature(seed=0):
    """A realistic BatchNorm input: one unit of a randomly initialised Linear(64, 1) applied to
    every training digit, as a float64 NumPy vector (1438,)."""
    layer = _seeded(lambda: nn.Linear(64, 1), seed)
    with torch.no_grad():
        return layer(_digits()[0]).double().numpy()[:, 0]


@dataclass(frozen=True)
class NoiseResult:
    sizes: tuple
    sigma: float             # std of the feature over the whole training split
    mean_spread: tuple       # std of the batch mean over random batches, per size
    predicted: tuple         # sigma / sqrt(N), per size
    x_hat_spread: tuple      # std of one fixed example's x_hat over random batches, per size
    x_hat_population: float  # that example's x_hat with the statistics of the whole split


def _random_batches(values, size, batches, rng, keep=None):
    """(batches, size) random batches drawn without replacement; if `keep` (an index) is
    given it is the first member of every batch."""
    n = len(values)
    out = np.empty((batches, size))
    for b in range(batches):
        if keep is None:
            idx = rng.choice(n, size, replace=False)
        else:
            others = rng.choice(n - 1, size - 1, replace=False)
            idx = np.concatenate([[keep], others + (others >= keep)])
        out[b] = values[idx]
    return out


def x_hat_in_batches(size, batches=2000, seed=0, example=0, eps=1e-5):
    """x_hat of one fixed training example (normalised with the statistics of a random batch
    of `size` that contains it), for `batches` random batches: (batches,)."""
    values = _feature(seed)
    b = _random_batches(values, size, batches, np.random.default_rng(seed), keep=example)
    mean = b.mean(axis=1)
    var = ((b - mean[:, None]) ** 2).mean(axis=1)
    return (b[:, 0] - mean) / np.sqrt(var + eps)


@on_one_thread
def batch_noise(sizes=(2, 4, 8, 16, 32, 64), batches=2000, seed=0):
    """How far a batch's statistics stray from the whole data's, for random batches of each
    size: the spread of the batch mean, against sigma / sqrt(N), and the spread of one fixed
    example's normalised value x_hat."""
    values = _feature(seed)
    sigma = values.std()
    rng = np.random.default_rng(seed)
    spread = tuple(float(_random_batches(values, n, batches, rng).mean(axis=1).std())
                   for n in sizes)
    x_hat = tuple(float(x_hat_in_batches(n, batches, seed).std()) for n in sizes)
    population = (values[0] - values.mean()) / np.sqrt(values.var() + 1e-5)  # example 0
    return NoiseResult(tuple(sizes), float(sigma), spread,
                       tuple(float(sigma / np.sqrt(n)) for n in sizes), x_hat, float(population))


def check_batch_noise(result):
    """ok when the measured spread of the batch mean is within 10 % of sigma / sqrt(N)."""
    ratios = [m / p for m, p in zip(result.mean_spread, result.predicted)]
    ok = all(abs(r - 1) < 0.1 for r in ratios)
    return ok, ("spread of the batch mean / (sigma / sqrt(N)): " +
                ", ".join(f"N={n}: {r:.2f}" for n, r in zip(result.sizes, ratios)) +
                f"\nthe example's x_hat with the statistics of all the training digits: "
                f"{result.x_hat_population:.2f}; its spread over random batches: " +
                ", ".join(f"N={n}: {s:.2f}" for n, s in zip(result.sizes, result.x_hat_spread)))


@on_one_thread
def x_hat_samples(sizes=(2, 8, 64), batches=2000, seed=0):
    """(samples (batches, len(sizes)), titles) for plots.feature_histograms: one column per
    batch size, the same example's x_hat in each of `batches` random batches."""
    columns = [x_hat_in_batches(n, batches, seed) for n in sizes]
    return np.column_stack(columns), [f"one example's x_hat, batches of {n}" for n in sizes]


def plot_batch_noise(result):
    """Figure: spread of the batch mean vs batch size, measured and sigma / sqrt(N)."""
    fig, (ax,) = _figure(1, width=6.0, height=3.6)
    n = np.array(result.sizes)
    ax.loglog(n, result.mean_spread, "o", color=BLUE, label="measured: std of the batch mean")
    ax.loglog(n, result.predicted, "-", color=BLUE, alpha=0.6, label="σ / √N")
    ax.loglog(n, result.x_hat_spread, "s--", color=ORANGE,
              label="measured: std of one example's x_hat")
    ax.set_xticks(n, [str(v) for v in n])
    ax.minorticks_off()
    ax.set(title=f"Batch statistics are noisy when N is small (σ = {result.sigma:.2f})",
           xlabel="batch size N", ylabel="standard deviation over random batches")
    ax.legend(fontsize=8)
    return fig


# ---------------------------------------------------------------- which axes each norm uses

def plot_norm_axes(n=4, c=6, hw=3, groups=2):
    """Figure: for BatchNorm, LayerNorm, InstanceNorm and GroupNorm, which entries of an
    (N, C, H, W) activation share one mean and one variance.

    Each panel is a grid: one row per example, one block per channel, and inside each block
    the H x W positions. The entries coloured in a panel give ONE pair (mean, variance); the
    layer computes one such pair for every block of the same kind (the title counts them).
    """
    kinds = [("BatchNorm", lambda i, j: j == 0, c, "per channel: over N, H, W"),
             ("LayerNorm", lambda i, j: i == 0, n, "per example: over C, H, W"),
             ("InstanceNorm", lambda i, j: i == 0 and j == 0, n * c,
              "per example and channel: over H, W"),
             ("GroupNorm", lambda i, j: i == 0 and j < c // groups, n * groups,
              f"per example and group of {c // groups} channels")]
    fig, axes = _figure(4, width=3.5, height=3.2)
    step = hw + 1
    for (name, chosen, count, rule), colour, ax in zip(kinds, (BLUE, ORANGE, GREEN, PURPLE), axes):
        image = np.ones((n * step - 1, c * step - 1, 3))
        pale, strong = np.array([0.85, 0.85, 0.85]), np.array(_rgb(colour))
        for i in range(n):
            for j in range(c):
                block = (slice(i * step, i * step + hw), slice(j * step, j * step + hw))
                image[block] = strong if chosen(i, j) else pale
        ax.imshow(image, interpolation="nearest")
        height, width = image.shape[:2]
        for k in range(1, width):  # thin white lines between the positions of a block
            if k % step:
                ax.axvline(k - 0.5, color="white", linewidth=0.6)
        for k in range(1, height):
            if k % step:
                ax.axhline(k - 0.5, color="white", linewidth=0.6)
        ax.set(xlim=(-0.5, width - 0.5), ylim=(height - 0.5, -0.5))
        if name == "GroupNorm":
            for g in range(1, groups):
                ax.axvline(g * (c // groups) * step - 1, color="black", linewidth=1.5)
        ax.set_xticks([j * step + hw / 2 - 0.5 for j in range(c)], [str(j) for j in range(c)])
        ax.set_yticks([i * step + hw / 2 - 0.5 for i in range(n)], [str(i) for i in range(n)])
        ax.tick_params(length=0)
        for side in ax.spines.values():
            side.set_visible(False)
        ax.set_title(f"{name}\n{rule}\n{count} (mean, variance) pairs", fontsize=9)
        ax.set(xlabel=f"channel (each block: {hw}×{hw} positions)", ylabel="example in the batch")
    return fig


def _rgb(hex_colour):
    return [int(hex_colour[k:k + 2], 16) / 255 for k in (1, 3, 5)]


# ---------------------------------------------------------------- LayerNorm / GroupNorm vs torch

def _hidden_activations(seed=0, batch=32):
    """Pre-normalisation activations of a randomly initialised Linear(64, 64) on a batch of
    digits, float64 (batch, 64): what a LayerNorm in an MLP would receive."""
    layer = _seeded(lambda: nn.Linear(64, 64).double(), seed)
    with torch.no_grad():
        return layer(_digits()[0][:batch].double())


def _conv_activations(seed=0, batch=16, channels=16):
    """Pre-normalisation activations of a randomly initialised 3x3 convolution on a batch of
    8x8 digits, float64 (batch, channels, 8, 8)."""
    conv = _seeded(lambda: nn.Conv2d(1, channels, 3, padding=1).double(), seed)
    with torch.no_grad():
        return conv(_digits()[0][:batch].double().reshape(-1, 1, 8, 8))


def _affine(module, seed):
    """Give a norm layer random (non-trivial) gamma and beta; return them as NumPy arrays."""
    rng = np.random.default_rng(seed)
    with torch.no_grad():
        module.weight.copy_(torch.from_numpy(rng.uniform(0.5, 2.0, module.weight.shape)))
        module.bias.copy_(torch.from_numpy(rng.normal(0.0, 1.0, module.bias.shape)))
    return module.weight.detach().numpy().copy(), module.bias.detach().numpy().copy()


@on_one_thread
def compare_layer_norm(layer_norm, seed=0):
    """Your layer_norm vs torch.nn.LayerNorm on the hidden activations of a batch of digits
    (float64, random gamma and beta). Prints the largest difference and returns it."""
    h = _hidden_activations(seed)
    module = nn.LayerNorm(h.shape[1], dtype=torch.float64)
    gamma, beta = _affine(module, seed)
    yours = np.asarray(layer_norm(h.numpy().copy(), gamma, beta))
    with tripwire.allowed(), torch.no_grad():
        theirs = module(h).numpy()
    gap = float(np.abs(yours - theirs).max())
    print(f"layer_norm on activations {tuple(h.shape)}: "
          f"largest |yours - torch.nn.LayerNorm| = {gap:.1e}")
    return gap


@on_one_thread
def compare_group_norm(group_norm, seed=0, groups=(1, 4, 16)):
    """Your group_norm vs torch.nn.GroupNorm on convolution outputs (N, 16, 8, 8) of digits,
    for several numbers of groups (1 and 16 are LayerNorm- and InstanceNorm-like). Prints the
    largest difference for each and returns them as a dict."""
    a = _conv_activations(seed)
    gaps = {}
    for g in groups:
        module = nn.GroupNorm(g, a.shape[1], dtype=torch.float64)
        gamma, beta = _affine(module, seed + g)
        yours = np.asarray(group_norm(a.numpy().copy(), g, gamma, beta))
        with tripwire.allowed(), torch.no_grad():
            theirs = module(a).numpy()
        gaps[g] = float(np.abs(yours - theirs).max())
        print(f"group_norm, {g:2d} groups, on {tuple(a.shape)}: "
              f"largest |yours - torch.nn.GroupNorm| = {gaps[g]:.1e}")
    return gaps


# ---------------------------------------------------------------- the batch-size study

NORM_NAMES = {"bn": "BatchNorm", "ln": "LayerNorm", "gn": "GroupNorm (4 groups)",
              "none": "no normalisation"}


@dataclass(frozen=True)
class BatchSizeResult:
    sizes: tuple
    norms: tuple
    accuracy: dict           # norm -> tuple over sizes: validation accuracy (eval mode)
    loss: dict               # norm -> tuple over sizes: validation loss


@on_one_thread
def batch_size_study(sizes=(2, 4, 8, 16, 64), norms=("bn", "ln", "gn", "none"), epochs=3,
                     seed=0, optimiser="adam", lr=3e-3):
    """For every normalisation and batch size, train the MLP (Linear -> norm -> ReLU, twice)
    from the same initial weights for `epochs` epochs (the same number of examples seen, so
    small batches take more, smaller steps), then score the validation split in eval mode."""
    x_val, y_val = _digits()[2:]
    accuracy, loss = {}, {}
    for norm, size in tqdm([(m, s) for m in norms for s in sizes], desc="batch-size study",
                           leave=False):
        model = mlp(norm, "before", seed=seed)
        train(model, epochs, size, optimiser, lr, seed=seed)
        val_loss, val_acc, _ = evaluate(model, x_val, y_val)
        accuracy.setdefault(norm, []).append(val_acc)
        loss.setdefault(norm, []).append(val_loss)
    freeze = lambda d: {k: tuple(v) for k, v in d.items()}  # noqa: E731
    return BatchSizeResult(tuple(sizes), tuple(norms), freeze(accuracy), freeze(loss))


def check_batch_size(result):
    """ok when, at the smallest batch size, LayerNorm and GroupNorm both beat BatchNorm's
    validation accuracy."""
    acc, n = result.accuracy, result.sizes[0]
    ok = acc["ln"][0] > acc["bn"][0] and acc["gn"][0] > acc["bn"][0]
    rows = [f"{NORM_NAMES[m]:22s} " + "  ".join(f"{a:6.1%}" for a in acc[m]) for m in result.norms]
    head = (f"at batch size {n}, LayerNorm and GroupNorm beat BatchNorm" if ok
            else f"at batch size {n}, LayerNorm and GroupNorm do NOT both beat BatchNorm")
    return ok, "\n".join([head, "validation accuracy, batch size " +
                          " ".join(f"{s:>7d}" for s in result.sizes)] + rows)


def plot_batch_size(result):
    """Figure: validation accuracy vs batch size, one line per normalisation."""
    fig, (ax,) = _figure(1, width=6.5, height=3.8)
    styles = {"bn": (BLUE, "o-"), "ln": (ORANGE, "s-"), "gn": (GREEN, "^-"), "none": (GREY, "x--")}
    for norm in result.norms:
        colour, style = styles[norm]
        ax.plot(result.sizes, result.accuracy[norm], style, color=colour, label=NORM_NAMES[norm])
    ax.set_xscale("log", base=2)
    ax.set_xticks(result.sizes, [str(s) for s in result.sizes])
    ax.minorticks_off()
    ax.set(title="Digits, MLP, same number of epochs for every batch size",
           xlabel="batch size during training", ylabel="validation accuracy (eval mode)")
    ax.legend(fontsize=8)
    return fig


# ---------------------------------------------------------------- Transformers: pre-norm

class PreNormBlock(nn.Module):
    """x + f(norm(x)) for a batch of token sequences x (batch, tokens, d): the residual block of
    a pre-norm Transformer, with a two-layer feed-forward network as f (attention left out)."""

    def __init__(self, d, hidden, norm=nn.LayerNorm):
        super().__init__()
        self.norm = norm(d)
        self.f = nn.Sequential(nn.Linear(d, hidden), nn.GELU(), nn.Linear(hidden, d))

    def forward(self, x):
        return x + self.f(self.norm(x))


class TokenBatchNorm(nn.BatchNorm1d):
    """BatchNorm for token sequences (batch, tokens, d): statistics of each of the d features
    over every token of every sequence in the batch, padding included."""

    def forward(self, x):
        return super().forward(x.reshape(-1, x.shape[-1])).reshape(x.shape)


@dataclass(frozen=True)
class TokenResult:
    layer_norm_change: float   # max change of sequence A's output when B joins its batch
    batch_norm_change: float
    layer_norm_padding: float  # max change of B's real tokens' output: padded batch vs B alone
    batch_norm_padding: float


@on_one_thread
def token_statistics(seed=0, d=16, hidden=32, length_a=6, length_b=3):
    """Two sequences of token vectors, A (length_a tokens) and B (length_b tokens, padded with
    zero vectors to length_a). The same block, with LayerNorm or with TokenBatchNorm (in
    training mode), run on A alone, on B alone, and on the padded batch [A, B]: how much do
    A's outputs, and B's real tokens' outputs, change with the company they keep?"""
    rng = np.random.default_rng(seed)
    a = torch.from_numpy(rng.normal(0.0, 1.0, (1, length_a, d)))
    b = torch.from_numpy(rng.normal(0.5, 2.0, (1, length_b, d)))
    batch = torch.cat([a, F.pad(b, (0, 0, 0, length_a - length_b))])  # B padded with zeros
    changes = []
    for norm in (nn.LayerNorm, TokenBatchNorm):
        block = _seeded(lambda norm=norm: PreNormBlock(d, hidden, norm).double(), seed)
        with tripwire.allowed(), torch.no_grad():
            alone_a, alone_b, both = block(a), block(b), block(batch)
        changes.append((float((both[:1] - alone_a).abs().max()),
                        float((both[1:, :length_b] - alone_b).abs().max())))
    (ln_a, ln_b), (bn_a, bn_b) = changes
    return TokenResult(ln_a, bn_a, ln_b, bn_b)


def check_token_statistics(result):
    """ok when LayerNorm's outputs do not depend on the batch (rounding only) and BatchNorm's
    clearly do."""
    ok = max(result.layer_norm_change, result.layer_norm_padding) < 1e-12 and \
        min(result.batch_norm_change, result.batch_norm_padding) > 1e-2
    return ok, (f"sequence A's output changes by {result.layer_norm_change:.1e} with LayerNorm "
                f"and by {result.batch_norm_change:.2f} with BatchNorm when B joins the batch; "
                f"B's real tokens change by {result.layer_norm_padding:.1e} (LayerNorm) and "
                f"{result.batch_norm_padding:.2f} (BatchNorm) once padded and batched")


# ---------------------------------------------------------------- folding BatchNorm at inference

def small_cnn(seed=0):
    """Conv(1->16) -> BN -> ReLU -> max-pool -> Conv(16->32) -> BN -> ReLU -> average-pool ->
    Linear(32->64) -> BN -> ReLU -> Linear(64->10), for (N, 64) digits (reshaped to 8x8).
    The convolutions have no bias (a bias before BatchNorm is useless); the Linear layer keeps
    PyTorch's default bias, so folding has both cases to handle."""
    return _seeded(lambda: nn.Sequential(
        nn.Unflatten(1, (1, 8, 8)),
        nn.Conv2d(1, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1, bias=False), nn.BatchNorm2d(32), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        nn.Linear(32, 64), nn.BatchNorm1d(64), nn.ReLU(), nn.Linear(64, 10)), seed)


@functools.lru_cache(maxsize=4)
def _trained_cnn(seed=0, epochs=3):
    model = small_cnn(seed)
    train(model, epochs, 32, "sgd", seed=seed)
    return model.eval()


def trained_cnn(seed=0, epochs=3):
    """small_cnn trained for a few epochs on the digits (SGD), in eval mode: a fresh copy."""
    return copy.deepcopy(_trained_cnn(seed, epochs))


def fold_model(model, fold_fn):
    """A copy of the Sequential `model` in which every Linear or Conv2d followed by a
    BatchNorm1d/2d is replaced by fold_fn(layer, bn) and the BatchNorm is dropped."""
    layers, modules = [], list(model)
    i = 0
    while i < len(modules):
        layer = modules[i]
        nxt = modules[i + 1] if i + 1 < len(modules) else None
        if isinstance(layer, (nn.Linear, nn.Conv2d)) and \
                isinstance(nxt, (nn.BatchNorm1d, nn.BatchNorm2d)):
            layers.append(fold_fn(copy.deepcopy(layer), copy.deepcopy(nxt).eval()))
            i += 2
        else:
            layers.append(copy.deepcopy(layer))
            i += 1
    return nn.Sequential(*layers).eval()


@dataclass(frozen=True)
class FoldResult:
    layers_before: int
    layers_after: int
    max_difference: float       # max |logits of the folded model - eval-mode model|
    logit_scale: float          # max |logits|, for scale
    same_predictions: int       # validation images with the same predicted class
    images: int


@on_one_thread
def folding_study(fold_fn, seed=0):
    """Fold every BatchNorm of the trained small_cnn with fold_fn and compare the folded
    model's logits with the eval-mode model's on the 359 validation digits."""
    model = trained_cnn(seed)
    folded = fold_model(model, fold_fn)          # the learner's code: outside allowed()
    x_val = _digits()[2]
    with one_thread(), torch.no_grad():
        with tripwire.allowed():
            reference = model(x_val)
        out = folded(x_val)
    return FoldResult(len(model), len(folded), float((out - reference).abs().max()),
                      float(reference.abs().max()),
                      int((out.argmax(1) == reference.argmax(1)).sum()), len(x_val))


def check_folding(result):
    """ok when the folded model gives the eval-mode model's logits up to float32 rounding."""
    ok = result.max_difference < 1e-4 * max(1.0, result.logit_scale) and \
        result.same_predictions == result.images
    return ok, (f"{result.layers_before} layers -> {result.layers_after}; largest |folded - "
                f"original| logit difference {result.max_difference:.1e} (logits up to "
                f"{result.logit_scale:.1f}); same prediction on {result.same_predictions} of "
                f"{result.images} validation images")


def time_folding(fold_fn, seed=0, repeats=20):
    """Time the trained small_cnn before and after folding, on all 1438 training digits as one
    batch, on one thread (restored afterwards). The two networks take turns, `repeats` runs
    each after a warm-up, and each keeps its fastest run: turns make both see the same
    conditions, the minimum drops runs that something else slowed down. Prints a small table
    and returns {"original": s, "folded": s}. Timings vary between runs and machines; they are
    not part of any checked result."""
    model = trained_cnn(seed)
    folded = fold_model(model, fold_fn)
    x = _digits()[0]
    with one_thread(), torch.no_grad(), tripwire.allowed():
        runs = {"original": lambda: model(x), "folded": lambda: folded(x)}
        best = {name: best_time(fn, repeats=1, warmup=3) for name, fn in runs.items()}
        for _ in range(repeats - 1):
            for name, fn in runs.items():
                best[name] = min(best[name], best_time(fn, repeats=1, warmup=0))
    print(f"forward pass on {len(x)} digits, fastest of {repeats} runs each, 1 thread:")
    print(f"  with BatchNorm layers ({len(model)} modules): {best['original'] * 1e3:6.2f} ms")
    print(f"  folded ({len(folded)} modules):               {best['folded'] * 1e3:6.2f} ms   "
          f"({best['original'] / best['folded']:.2f} x as fast)")
    return best


def toy_linear_bn():
    """The hand example: Linear(1, 1) with w = 2, b = 1, and a BatchNorm1d(1) in eval mode
    with running mean 3, running variance 4, gamma 0.5, beta 1. Returns (layer, bn)."""
    layer, bn = nn.Linear(1, 1), nn.BatchNorm1d(1)
    with torch.no_grad():
        layer.weight.fill_(2.0)
        layer.bias.fill_(1.0)
        bn.running_mean.fill_(3.0)
        bn.running_var.fill_(4.0)
        bn.weight.fill_(0.5)
        bn.bias.fill_(1.0)
    return layer, bn.eval()


@on_one_thread
def folded_vs_modes(fold_fn, seed=0, batch=8):
    """The first Conv2d and BatchNorm2d of the trained small_cnn, folded with fold_fn, against
    the original pair on `batch` training digits, with the pair in training mode and in eval
    mode (on copies: the model's running statistics are not touched). Prints and returns the
    largest differences {"train": ..., "eval": ...}."""
    model = trained_cnn(seed)
    conv, bn = model[1], model[2]
    folded = fold_fn(copy.deepcopy(conv), copy.deepcopy(bn).eval())
    x = _digits()[0][:batch].reshape(-1, 1, 8, 8)
    gaps = {}
    with torch.no_grad():
        out = folded(x)
        for mode in ("train", "eval"):
            pair = copy.deepcopy(nn.Sequential(conv, bn)).train(mode == "train")
            with tripwire.allowed():
                gaps[mode] = float((out - pair(x)).abs().max())
    print(f"largest |folded - conv followed by BatchNorm2d|, on {batch} digits:")
    print(f"  BatchNorm in training mode (batch statistics)  : {gaps['train']:.1e}")
    print(f"  BatchNorm in eval mode (running statistics)    : {gaps['eval']:.1e}")
    return gaps


# ---------------------------------------------------------------- the list, for tests

EXPERIMENTS = {  # name -> (run(seed) -> result, check(result) -> (ok, message)), for tests
    "placement": (lambda seed=0: placement_study(seeds=(seed, seed + 1, seed + 2, seed + 3)),
                  check_placement),
    "redundant_bias": (redundant_bias, check_redundant_bias),
    "output_layer": (output_layer_study, check_output_layer),
    "batch_noise": (batch_noise, check_batch_noise),
    "batch_size": (batch_size_study, check_batch_size),
    "token_statistics": (token_statistics, check_token_statistics),
}
# folding_study(fold_fn, seed) needs a learner's fold_batchnorm: the answer is not shipped here.
