"""Lesson 06's models, experiments and figures: each of the course's claims about why
BatchNorm works, measured on the digits with and without BatchNorm.

    r = why_it_works.lr_study(largest_stable_lr)          # the largest learning rate that trains
    why_it_works.plot_lr_study(r)
    r = why_it_works.init_study()                          # final accuracy vs the weight scale
    r = why_it_works.regularisation_study(batch_mean_noise)  # train/validation gap; batch noise
    why_it_works.batch_mean_samples()                      # batch means of one unit, 3 batch sizes
    r = why_it_works.smoothness_study(effective_smoothness)  # loss and gradient along the gradient
    r = why_it_works.gradient_flow(gradient_norms)         # per-layer gradient norms, 24 layers

Every study takes ``seed`` and returns a frozen dataclass of plain Python numbers (floats and
nested tuples; a diverged run's loss is stored as ``inf``, never NaN, so that two results compare
with ``==``). A study that averages over several seeds uses ``seeds=(seed, seed + 1, ...)``
unless you pass ``seeds=`` yourself. ``check_<study>(result)`` returns ``(ok, message)``: ``ok``
says whether the effect points the way the claim says, and the message gives the
numbers, including where the claim holds only partly. Everything runs on the CPU, on one thread
(restored afterwards), with fixed seeds and the digits shipped in ``datasets/``: two runs on the
same machine give bitwise identical results.

Where the learner's helper is the natural measuring tool, the study takes it as its first
argument (the course does not ship the answers). ``EXPERIMENTS`` maps a name to
``(run, check)``, with one calling convention for every entry::

    run, check = why_it_works.EXPERIMENTS[name]
    result = run(seed=0, **helpers)     # helpers: the learner's functions, by their names
    ok, message = check(result)

``helpers`` may hold any of the names in ``HELPERS`` (``largest_stable_lr``,
``gradient_norms``, ``effective_smoothness``, ``batch_mean_noise``): each ``run`` takes the
ones its study needs and ignores the rest, so a test can pass all four solutions to every
entry. ``NEEDS[name]`` lists the ones a study needs.

Torch's BatchNorm runs inside ``tripwire.allowed()`` (via ``experiments.train`` and
``evaluate`` and the probes below). A learner's function is called outside that block; this
lesson's answers are not barred from torch's BatchNorm (their specs in
``bncourse.pieces.lesson06`` ban nothing), and ``gradient_norms`` runs the models it is given, BatchNorm included.
Figures are built as in ``bncourse.plots``: make the call the last line of a cell.
"""
import copy
import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from bncourse import tripwire
from bncourse.experiments import _digits, evaluate, mlp, on_one_thread, train
from bncourse.plots import BLUE, COLOURS, GREY, ORANGE, _figure

NORMS = ("none", "bn")
NAMES = {"none": "without BatchNorm", "bn": "with BatchNorm"}
STYLE = {"none": (ORANGE, "o-"), "bn": (BLUE, "s-")}


# ---------------------------------------------------------------- shared pieces

def _seeds(seed, seeds, count):
    """seeds if given, else `count` consecutive seeds starting at seed, as a tuple."""
    return tuple(seeds) if seeds is not None else tuple(range(seed, seed + count))


def _number(v):
    """A plain float; NaN (a diverged run) becomes inf, so that results compare with ==."""
    v = float(v)
    return v if not math.isnan(v) else math.inf


def deep_mlp(norm="bn", depth=6, width=64, scale=1.0, zero_output=False, seed=0):
    """A digits classifier with `depth` hidden layers: Linear -> (BatchNorm) -> ReLU, then a
    Linear layer to 10 logits (experiments.mlp), initialised for ReLU by He et al. (2015):

    every Linear weight has standard deviation scale * sqrt(2 / fan_in) (PyTorch's default
    uniform draw, rescaled), every bias starts at 0. scale=1 keeps the size of the signal from
    layer to layer; scale < 1 shrinks it at every layer, scale > 1 blows it up.
    scale=None keeps PyTorch's default initialisation (weights with standard deviation
    sqrt(1 / (3 fan_in)), biases too). zero_output: the last layer starts at 0, so that every
    network starts from the same loss, ln 10 (every class equally likely).
    """
    model = mlp(norm, "before", hidden=width, depth=depth, seed=seed)
    if scale is not None:
        with torch.no_grad():
            linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
            for layer in linears:
                layer.weight.mul_(scale * math.sqrt(6.0))  # default std 1/sqrt(3 fan_in) -> He
                layer.bias.zero_()
            if zero_output:
                linears[-1].weight.zero_()
    return model


def probe_batch(n=256):
    """(x, y): the first n training digits, (n, 64) float32 and (n,) int64 tensors."""
    x, y = _digits()[:2]
    return x[:n], y[:n]


def batch_loss(model, x, y):
    """The mean cross-entropy of `model` on (x, y), in the mode the model is in, as a float."""
    with tripwire.allowed(), torch.no_grad():
        return F.cross_entropy(model(x), y).item()


# ---------------------------------------------------------------- claim 1: learning rates

LR_GRID = tuple(0.01 * 2 ** k for k in range(9))  # 0.01, 0.02, ..., 2.56


@dataclass(frozen=True)
class LRResult:
    """final_loss[norm][seed][k]: the mean training loss of the last epoch with lrs[k] (inf when
    training diverged); largest[norm][seed]: largest_stable_lr of that row."""
    norms: tuple
    seeds: tuple
    lrs: tuple
    start_loss: float
    final_loss: tuple
    largest: tuple


@on_one_thread
def lr_study(largest_stable_lr, seed=0, seeds=None, lrs=LR_GRID, depth=6, epochs=2,
             batch_size=32):
    """Train the 6-hidden-layer MLP with and without BatchNorm (SGD, momentum 0.9) at every
    learning rate of a log grid (factor 2), from the same initial weights and batch order for
    each seed. The last layer starts at 0, so both start at the loss ln 10. The largest rate
    that still trained is found by the learner's largest_stable_lr."""
    largest_stable_lr(np.array([0.1]), np.array([1.0]), 2.0)  # an unfinished helper says so now
    seeds = _seeds(seed, seeds, 5)
    x, y = _digits()[:2]
    start = evaluate(deep_mlp("none", depth, zero_output=True, seed=seeds[0]), x, y)[0]
    final = {norm: [] for norm in NORMS}
    runs = [(norm, s) for norm in NORMS for s in seeds]
    for norm, s in tqdm(runs, desc="learning-rate sweep", leave=False):
        row = []
        for lr in lrs:
            model = deep_mlp(norm, depth, zero_output=True, seed=s)
            row.append(_number(train(model, epochs, batch_size, "sgd", lr=lr, seed=s)[-1]))
        final[norm].append(tuple(row))
    largest = tuple(tuple(float(largest_stable_lr(np.array(lrs), np.array(row), start))
                          for row in final[norm]) for norm in NORMS)
    return LRResult(NORMS, seeds, tuple(lrs), float(start),
                    tuple(tuple(final[norm]) for norm in NORMS), largest)


def check_lr_study(result):
    """ok when, for every seed, the largest rate that trains is larger with BatchNorm; the
    message gives the ratio for each seed, against the claimed 5-10x."""
    plain, bn = result.largest
    ratios = [b / p if p > 0 else math.inf for p, b in zip(plain, bn)]
    ok = all(r > 1 for r in ratios)
    median = float(np.median(ratios))
    verdict = ("inside" if 5 <= median <= 10 else "below" if median < 5 else "above")
    head = (f"with BatchNorm the largest learning rate that trains is larger for every seed: "
            f"{median:g}x (median), {verdict} the claimed 5-10x" if ok else
            "BatchNorm does NOT allow a larger learning rate for every seed")
    lines = [f"seed {s}: without BN {p:g}, with BN {b:g}  ({r:g}x)"
             for s, p, b, r in zip(result.seeds, plain, bn, ratios)]
    return ok, head + "\n" + "\n".join(lines)


def plot_lr_study(result, cap=3.0):
    """Figure: the last epoch's training loss against the learning rate, one thin line per seed,
    with and without BatchNorm; runs that diverged are drawn as crosses on the top edge."""
    fig, (ax,) = _figure(1, width=6.8, height=3.8)
    lrs = np.array(result.lrs)
    for norm, rows, largest in zip(result.norms, result.final_loss, result.largest):
        colour, style = STYLE[norm]
        for k, row in enumerate(rows):
            row = np.array(row)
            off_scale = ~np.isfinite(row) | (row > cap)
            ax.plot(lrs, np.where(off_scale, np.nan, row), style, color=colour, alpha=0.6,
                    markersize=3, label=NAMES[norm] if k == 0 else None)
            ax.plot(lrs[off_scale], np.full(off_scale.sum(), cap), "x", color=colour)
        ax.axvline(np.median(largest), color=colour, linestyle=":", linewidth=1.2)
    ax.axhline(result.start_loss, color="black", linestyle="--", linewidth=1)
    ax.text(lrs[0], result.start_loss * 1.02,
            f"loss before training (ln 10 = {result.start_loss:.2f})", fontsize=8, va="bottom")
    ax.set_xscale("log")
    ax.set(ylim=(0, cap * 1.04), title=f"Learning-rate sweep, {len(result.seeds)} seeds "
           f"(dotted: median largest rate that trains; x: diverged or above {cap:g})",
           xlabel="learning rate (SGD, momentum 0.9)", ylabel="training loss, last epoch")
    ax.title.set_fontsize(9)
    ax.legend(fontsize=8, loc="lower left")
    return fig


# ---------------------------------------------------------------- claim 2: initialisation

SCALES = (0.1, 0.3, 0.5, 1.0, 2.0, 3.0, 10.0)


@dataclass(frozen=True)
class InitResult:
    """accuracy[norm][seed][k], loss[norm][seed][k]: validation accuracy and loss (eval mode;
    inf for a diverged run) after training from weights of scale scales[k] x He's."""
    norms: tuple
    seeds: tuple
    scales: tuple
    accuracy: tuple
    loss: tuple


@on_one_thread
def init_study(seed=0, seeds=None, scales=SCALES, depth=6, epochs=3, lr=0.02, batch_size=32):
    """Train the 6-hidden-layer MLP with and without BatchNorm (SGD, momentum 0.9, the same
    rate for all) from weights drawn at several multiples of the He scale; score the
    validation split after `epochs` epochs."""
    seeds = _seeds(seed, seeds, 3)
    x_val, y_val = _digits()[2:]
    acc, loss = {n: [] for n in NORMS}, {n: [] for n in NORMS}
    for norm, s in tqdm([(n, s) for n in NORMS for s in seeds], desc="initialisation sweep",
                        leave=False):
        scores = []
        for scale in scales:
            model = deep_mlp(norm, depth, scale=scale, seed=s)
            train(model, epochs, batch_size, "sgd", lr=lr, seed=s)
            scores.append(evaluate(model, x_val, y_val)[:2])
        loss[norm].append(tuple(_number(v) for v, _ in scores))
        acc[norm].append(tuple(float(a) for _, a in scores))
    return InitResult(NORMS, seeds, tuple(scales), tuple(tuple(acc[n]) for n in NORMS),
                      tuple(tuple(loss[n]) for n in NORMS))


def check_init_study(result, good=0.9):
    """ok when BatchNorm trains to `good` validation accuracy at more weight scales than the
    plain network, for every seed, and its worst scale beats the plain network's worst."""
    plain, bn = (np.array(a) for a in result.accuracy)
    ok = bool(np.all((bn >= good).sum(1) > (plain >= good).sum(1)) and
              np.all(bn.min(1) > plain.min(1)))
    lines = [f"{'weight scale (x He)':22s}" + "".join(f"{s:>7g}" for s in result.scales)]
    for norm, a in zip(result.norms, (plain, bn)):
        lines.append(f"{NAMES[norm]:22s}" + "".join(f"{v:7.1%}" for v in a.mean(0)))
    counts = [f"{NAMES[n]}: {int((a >= good).sum(1).min())}-{int((a >= good).sum(1).max())} "
              f"of {len(result.scales)} scales reach {good:.0%}" for n, a in zip(result.norms,
                                                                                (plain, bn))]
    head = ("BatchNorm trains from many more weight scales than the plain network" if ok else
            "BatchNorm does NOT make training less sensitive to the weight scale here")
    return ok, head + " (validation accuracy, mean over " + f"{len(result.seeds)} seeds)\n" + \
        "\n".join(lines + ["; ".join(counts)])


def plot_init_study(result):
    """Figure: validation accuracy against the weight scale, mean over seeds, band from the
    worst to the best seed."""
    fig, (ax,) = _figure(1, width=6.5, height=3.6)
    for norm, acc in zip(result.norms, result.accuracy):
        colour, style = STYLE[norm]
        acc = np.array(acc)
        ax.fill_between(result.scales, acc.min(0), acc.max(0), color=colour, alpha=0.2)
        ax.plot(result.scales, acc.mean(0), style, color=colour, label=NAMES[norm])
    ax.axvline(1.0, color=GREY, linestyle=":", linewidth=1)
    ax.set_xscale("log")
    ax.set_xticks(result.scales, [f"{s:g}" for s in result.scales])
    ax.minorticks_off()
    ax.set(ylim=(0, 1.02), title="6 hidden layers, the same learning rate for all",
           xlabel="initial weight scale c (1 = He initialisation)",
           ylabel="validation accuracy")
    ax.legend(fontsize=8, loc="lower center")
    return fig


# ---------------------------------------------------------------- claim 3: regularisation

BATCH_SIZES = (2, 4, 8, 16, 32, 64, 128, 256)


@dataclass(frozen=True)
class RegularisationResult:
    """train_loss[norm][seed][epoch], val_loss[...] (eval mode, on all the training digits and
    on the validation digits); final accuracies; noise[k] = batch_mean_noise of the
    BatchNorm network's first-layer pre-activations for batch size batch_sizes[k]; sigma: their
    standard deviation over the whole training split (mean over features)."""
    norms: tuple
    seeds: tuple
    train_loss: tuple
    val_loss: tuple
    train_accuracy: tuple
    val_accuracy: tuple
    batch_sizes: tuple
    noise: tuple
    sigma: float


@on_one_thread
def regularisation_study(batch_mean_noise, seed=0, seeds=None, epochs=20, batch_size=32,
                         lr=0.05, batch_sizes=BATCH_SIZES):
    """Train the 2-hidden-layer MLP of lesson 07 with and without BatchNorm far past the point
    where it fits the training digits (SGD, momentum 0.9), scoring the training and validation
    splits after every epoch. Then feed the first layer's pre-activations (the BatchNorm's input,
    after training) over the training digits in a shuffled order to the learner's
    batch_mean_noise for each batch size."""
    batch_mean_noise(np.zeros((4, 1)), 2)                     # an unfinished helper says so now
    seeds = _seeds(seed, seeds, 3)
    x, y, x_val, y_val = _digits()
    curves = {n: ([], [], [], []) for n in NORMS}
    probe = None
    for norm, s in tqdm([(n, s) for n in NORMS for s in seeds], desc="regularisation",
                        leave=False):
        tr, va = [], []
        model = mlp(norm, "before", seed=s)
        train(model, epochs, batch_size, "sgd", lr=lr, seed=s,
              on_epoch=lambda m: (tr.append(evaluate(m, x, y)),  # noqa: B023 (called in this pass)
                                  va.append(evaluate(m, x_val, y_val))))  # noqa: B023
        for store, values in zip(curves[norm], ([t[0] for t in tr], [v[0] for v in va],
                                                 [tr[-1][1]], [va[-1][1]])):
            store.append(tuple(_number(v) for v in values))
        if norm == "bn" and s == seeds[0]:
            probe = model
    # the input of the first BatchNorm (first seed's network), the digits in a shuffled order
    with torch.no_grad():
        order = torch.randperm(len(x), generator=torch.Generator().manual_seed(seeds[0]))
        z = probe[0](x[order]).double().numpy()
    noise = tuple(float(batch_mean_noise(z, b)) for b in batch_sizes)
    pick = lambda i: tuple(tuple(curves[n][i]) for n in NORMS)  # noqa: E731
    flat = lambda i: tuple(tuple(v[0] for v in curves[n][i]) for n in NORMS)  # noqa: E731
    return RegularisationResult(NORMS, seeds, pick(0), pick(1), flat(2), flat(3),
                                tuple(batch_sizes), noise, float(z.std(axis=0).mean()))


@on_one_thread
def batch_mean_samples(sizes=(4, 16, 64), batches=1000, unit=0, seed=0):
    """(samples (batches, len(sizes)), titles) for plots.feature_histograms: the batch mean of
    one unit of a freshly initialised Linear(64, 64) on the digits, for `batches` random batches
    of each size (drawn without replacement within a batch)."""
    layer = mlp("bn", seed=seed)[0]
    with torch.no_grad():
        z = layer(_digits()[0])[:, unit].double().numpy()
    rng = np.random.default_rng(seed)
    columns = [[z[rng.choice(len(z), b, replace=False)].mean() for _ in range(batches)]
               for b in sizes]
    return np.array(columns).T, [f"batch mean, batches of {b}" for b in sizes]


def generalisation_gaps(result):
    """gaps[norm][seed]: final validation loss minus final training loss."""
    return tuple(tuple(v[-1] - t[-1] for t, v in zip(tr, va))
                 for tr, va in zip(result.train_loss, result.val_loss))


def check_regularisation(result):
    """ok when the train/validation loss gap is smaller with BatchNorm for every seed and the
    noise of the batch mean falls with the batch size N, close to sigma / sqrt(N)."""
    plain, bn = (np.array(g) for g in generalisation_gaps(result))
    predicted = result.sigma / np.sqrt(result.batch_sizes)
    ratio = np.array(result.noise) / predicted
    falls = bool(np.all(np.diff(result.noise) < 0))
    ok = bool(np.all(bn < plain)) and falls
    (tp, tb), (vp, vb) = ([np.mean([c[-1] for c in curves]) for curves in losses]
                          for losses in (result.train_loss, result.val_loss))
    accs = [f"{NAMES[n]}: train {np.mean(t):.1%}, validation {np.mean(v):.1%}" for n, t, v in
            zip(result.norms, result.train_accuracy, result.val_accuracy)]
    head = ("the train/validation gap is smaller with BatchNorm for every seed"
            if np.all(bn < plain) else
            "the train/validation gap is NOT smaller with BatchNorm for every seed")
    return ok, "\n".join([
        head + f": {plain.mean():.3f} without, {bn.mean():.3f} with (mean over seeds)",
        f"final training loss {tp:.4f} without, {tb:.4f} with; validation loss {vp:.3f} without, "
        f"{vb:.3f} with", "; ".join(accs),
        "noise of the batch mean / (sigma / sqrt(N)): " +
        ", ".join(f"N={b}: {r:.2f}" for b, r in zip(result.batch_sizes, ratio)) +
        ("" if falls else "  (does NOT fall steadily with B)")])


def plot_regularisation(result):
    """Figure: left, training and validation loss per epoch (mean over seeds) with and without
    BatchNorm; right, the noise of the batch mean against the batch size N, with sigma / sqrt(N)."""
    fig, (ax0, ax1) = _figure(2, width=4.6, height=3.6)
    for norm, tr, va in zip(result.norms, result.train_loss, result.val_loss):
        colour, _ = STYLE[norm]
        epochs = np.arange(1, len(tr[0]) + 1)
        ax0.plot(epochs, np.mean(tr, 0), "--", color=colour, label=f"{NAMES[norm]}: training")
        ax0.plot(epochs, np.mean(va, 0), "-", color=colour, label=f"{NAMES[norm]}: validation")
    ax0.set(yscale="log", title="Loss per epoch (eval mode), mean of seeds", xlabel="epoch",
            ylabel="cross-entropy")
    ax0.legend(fontsize=7)
    b = np.array(result.batch_sizes)
    ax1.loglog(b, result.noise, "o", color=BLUE, label="measured: batch_mean_noise")
    ax1.loglog(b, result.sigma / np.sqrt(b), "-", color=BLUE, alpha=0.6, label="σ / √N")
    ax1.set_xticks(b, [str(v) for v in b])
    ax1.minorticks_off()
    ax1.set(title="Noise of the batch mean (first layer)", xlabel="batch size N",
            ylabel="std of the batch mean, over batches")
    ax1.legend(fontsize=8)
    return fig


# ---------------------------------------------------------------- claim 4: a smoother landscape

ETAS = (0.01, 0.02, 0.05, 0.1, 0.2, 0.4)


def _flat_gradient(model, x, y):
    """(loss, gradient of the mean cross-entropy over all parameters, flattened) at the
    model's current weights, in training mode (BatchNorm uses the statistics of x)."""
    model.train()
    with tripwire.allowed():
        loss = F.cross_entropy(model(x), y)
        grads = torch.autograd.grad(loss, list(model.parameters()))
    return loss.item(), torch.cat([g.reshape(-1) for g in grads]).double().numpy()


def probe_along_gradient(model, x, y, etas=ETAS):
    """Step from the model's weights w along its gradient g0 on (x, y): the losses and the
    gradients at w - eta * g0 for every eta. Works on a copy: the model (weights and
    BatchNorm buffers) is left as it was. Returns (loss at w, g0 (P,), losses (K,), gs (K, P))."""
    probe = copy.deepcopy(model)
    params = list(probe.parameters())
    start = [p.detach().clone() for p in params]
    loss0, g0 = _flat_gradient(probe, x, y)
    direction = torch.from_numpy(g0).float()
    losses, gs = [], []
    for eta in etas:
        with torch.no_grad():
            offset = 0
            for p, w in zip(params, start):
                p.copy_(w - eta * direction[offset:offset + p.numel()].reshape(p.shape))
                offset += p.numel()
        loss, g = _flat_gradient(probe, x, y)
        losses.append(loss)
        gs.append(g)
    return loss0, g0, np.array(losses), np.array(gs)


@dataclass(frozen=True)
class SmoothnessResult:
    """For norm, seed and checkpoint c (before training, then after each epoch):
    loss[norm][seed][c] at w; line[norm][seed][c][k]: the loss at w - etas[k] * g0 (inf if it
    overflowed); beta[norm][seed][c]: effective_smoothness(g0, gs, etas); grad_norm: ||g0||."""
    norms: tuple
    seeds: tuple
    etas: tuple
    loss: tuple
    line: tuple
    beta: tuple
    grad_norm: tuple


@on_one_thread
def smoothness_study(effective_smoothness, seed=0, seeds=None, epochs=5, lr=0.04, depth=6,
                     batch_size=32, probe_size=256, etas=ETAS):
    """Santurkar et al. (2018)'s measurement on the digits: train the 6-hidden-layer MLP with
    and without BatchNorm (same initial weights, batch order and rate); before training and
    after every epoch, take the gradient g0 on a fixed batch of `probe_size` training digits,
    step along it by each eta, and record the loss there and the learner's
    effective_smoothness of the gradients there."""
    effective_smoothness(np.ones(2), np.ones((1, 2)), np.ones(1))  # unfinished: says so now
    seeds = _seeds(seed, seeds, 3)
    x, y = _digits()[:2]
    xb, yb = x[:probe_size], y[:probe_size]
    out = {n: ([], [], [], []) for n in NORMS}
    for norm, s in tqdm([(n, s) for n in NORMS for s in seeds], desc="smoothness", leave=False):
        rows = ([], [], [], [])

        def measure(model):
            loss0, g0, losses, gs = probe_along_gradient(model, xb, yb, etas)
            beta = effective_smoothness(g0, gs, np.array(etas))   # the learner's code
            for store, v in zip(rows, (_number(loss0), tuple(_number(v) for v in losses),  # noqa: B023
                                       _number(beta), _number(np.linalg.norm(g0)))):
                store.append(v)

        model = deep_mlp(norm, depth, zero_output=True, seed=s)
        measure(model)
        train(model, epochs, batch_size, "sgd", lr=lr, seed=s, on_epoch=measure)
        for store, row in zip(out[norm], rows):
            store.append(tuple(row))
    pick = lambda i: tuple(tuple(out[n][i]) for n in NORMS)  # noqa: E731
    return SmoothnessResult(NORMS, seeds, tuple(etas), pick(0), pick(1), pick(2), pick(3))


def loss_ranges(result):
    """ranges[norm][seed][c]: how far the loss moves along the gradient, max - min over the
    line (w itself included)."""
    return tuple(tuple(tuple(max((l0,) + line) - min((l0,) + line) for l0, line in zip(ls, lines))
                       for ls, lines in zip(loss, line_rows))
                 for loss, line_rows in zip(result.loss, result.line))


def check_smoothness(result):
    """ok when, for every seed, the BatchNorm network's effective smoothness and its loss range
    along the gradient are both smaller, in the median over the checkpoints during training
    (the first, before training, is left out)."""
    beta = [np.median(np.array(b)[:, 1:], axis=1) for b in result.beta]
    spread = [np.median(np.array(r)[:, 1:], axis=1) for r in loss_ranges(result)]
    ok = bool(np.all(beta[1] < beta[0]) and np.all(spread[1] < spread[0]))
    head = ("with BatchNorm the landscape is smoother for every seed" if ok else
            "the BatchNorm network is NOT smoother for every seed")
    lines = [f"seed {s}: effective smoothness {p:.1f} without BN, {b:.1f} with "
             f"({p / b:.1f}x); loss range along the gradient {lp:.2f} without, {lb:.2f} with"
             for s, p, b, lp, lb in zip(result.seeds, beta[0], beta[1], spread[0], spread[1])]
    return ok, head + " (median over the checkpoints after each epoch)\n" + "\n".join(lines)


def plot_smoothness(result):
    """Figure: left, the range of the loss along the gradient at each checkpoint (band over the
    step sizes, first seed) and the loss at w; right, the effective smoothness per checkpoint,
    one line per seed."""
    fig, (ax0, ax1) = _figure(2, width=4.6, height=3.6)
    checkpoints = np.arange(len(result.loss[0][0]))
    for norm, loss, line, beta in zip(result.norms, result.loss, result.line, result.beta):
        colour, style = STYLE[norm]
        both = np.column_stack([loss[0], np.array(line[0])])
        both = np.where(np.isfinite(both), both, np.nan)
        ax0.fill_between(checkpoints, np.nanmin(both, 1), np.nanmax(both, 1), color=colour,
                         alpha=0.25, label=f"{NAMES[norm]}: loss along the gradient")
        ax0.plot(checkpoints, loss[0], style, color=colour, markersize=3,
                 label=f"{NAMES[norm]}: loss at w")
        for k, row in enumerate(beta):
            ax1.plot(checkpoints, row, style, color=colour, alpha=0.7, markersize=3,
                     label=NAMES[norm] if k == 0 else None)
    ax0.set(yscale="log",
            title=f"Loss at w - η·g, η from {result.etas[0]:g} to {result.etas[-1]:g}",
            xlabel="epoch (0 = before training)", ylabel="loss on a fixed batch")
    ax0.legend(fontsize=7)
    ax1.set(yscale="log", title="Effective smoothness (smaller = smoother)",
            xlabel="epoch (0 = before training)", ylabel="max ‖g(w - η·g) - g‖ / (η‖g‖)")
    ax1.legend(fontsize=8)
    return fig


# ---------------------------------------------------------------- claim 5: gradients in deep nets

INITS = ("default", 0.5, 1.0, 1.5)
INIT_NAMES = {"default": "PyTorch default", 0.5: "0.5 x He", 1.0: "He", 1.5: "1.5 x He"}


@dataclass(frozen=True)
class GradientFlowResult:
    """norms[norm][seed][i][layer]: the learner's gradient_norms of the net initialised with
    inits[i], at initialisation, on a batch of `batch` training digits (depth + 1 Linear
    layers, input layer first)."""
    norms: tuple
    seeds: tuple
    inits: tuple
    depth: int
    grad_norms: tuple


@on_one_thread
def gradient_flow(gradient_norms, seed=0, seeds=None, depth=24, width=64, inits=INITS, batch=256):
    """Per-layer gradient norms at initialisation of a `depth`-hidden-layer MLP, with and without
    BatchNorm, for PyTorch's default initialisation and for several multiples of He's. The
    BatchNorm networks are in training mode (batch statistics), as during training."""
    seeds = _seeds(seed, seeds, 3)
    x, y = (t[:batch] for t in _digits()[:2])
    out = {n: [] for n in NORMS}
    for norm in NORMS:
        for s in seeds:
            rows = []
            for init in inits:
                model = deep_mlp(norm, depth, width, scale=None if init == "default" else init,
                                 seed=s).train()
                rows.append(tuple(_number(v) for v in gradient_norms(model, x, y)))
            out[norm].append(tuple(rows))
    return GradientFlowResult(NORMS, seeds, tuple(inits), depth,
                              tuple(tuple(out[n]) for n in NORMS))


def check_gradient_flow(result, tolerance=1e3):
    """ok when, for every seed, the first layer's gradient norm spans less than `tolerance`
    (max / min) across the initialisations with BatchNorm and more without. The message also
    gives how much the norms change from the last hidden layer to the first."""
    first = [np.array([[row[0] for row in rows] for rows in seed_rows])
             for seed_rows in result.grad_norms]                      # (seeds, inits)
    span = [f.max(1) / f.min(1) for f in first]
    ok = bool(np.all(span[1] < tolerance) and np.all(span[0] > tolerance))
    lines = []
    for norm, seed_rows in zip(result.norms, result.grad_norms):
        g = np.array(seed_rows[0])                                    # first seed: (inits, L)
        growth = ", ".join(f"{INIT_NAMES[i]} {row[0] / row[-2]:.1e}" for i, row in
                           zip(result.inits, g))
        lines.append(f"{NAMES[norm]}: first-layer norm from {g[:, 0].min():.1e} to "
                     f"{g[:, 0].max():.1e} across the initialisations; first / last hidden "
                     f"layer: {growth}")
    head = ("with BatchNorm the gradients' size no longer depends on the initialisation" if ok
            else "BatchNorm does NOT make the gradients' size independent of the initialisation")
    return ok, head + f" ({result.depth} hidden layers, first seed below)\n" + "\n".join(lines)


def plot_gradient_flow(result):
    """Figure: gradient norm of each Linear layer's weight at initialisation, without and with
    BatchNorm (first seed), one line per initialisation, on one shared log scale."""
    fig, axes = _figure(2, width=4.6, height=3.8)
    values = np.array(result.grad_norms, dtype=float)
    finite = values[np.isfinite(values) & (values > 0)]
    layers = np.arange(1, values.shape[-1] + 1)
    for ax, norm, seed_rows in zip(axes, result.norms, result.grad_norms):
        for k, (init, row) in enumerate(zip(result.inits, seed_rows[0])):
            ax.semilogy(layers, row, "o-", markersize=2.5, color=COLOURS[k],
                        label=INIT_NAMES[init])
        ax.set(ylim=(finite.min() / 3, finite.max() * 3), title=f"{result.depth} hidden layers, "
               f"{NAMES[norm]}", xlabel="Linear layer (1 = input side)",
               ylabel="‖∂loss/∂W‖ at initialisation")
        ax.legend(fontsize=7, loc="center right")
    return fig


# ---------------------------------------------------------------- the list, for tests

HELPERS = ("largest_stable_lr", "gradient_norms", "effective_smoothness", "batch_mean_noise")
NEEDS = {"learning_rate": ("largest_stable_lr",), "initialisation": (),
         "regularisation": ("batch_mean_noise",), "smoothness": ("effective_smoothness",),
         "gradient_flow": ("gradient_norms",)}
_STUDIES = {"learning_rate": (lr_study, check_lr_study),
            "initialisation": (init_study, check_init_study),
            "regularisation": (regularisation_study, check_regularisation),
            "smoothness": (smoothness_study, check_smoothness),
            "gradient_flow": (gradient_flow, check_gradient_flow)}


def _runner(name):
    """run(seed=0, **helpers): the study `name` with the helpers it needs, passed by position."""
    study = _STUDIES[name][0]

    def run(seed=0, **helpers):
        missing = [h for h in NEEDS[name] if h not in helpers]
        if missing:
            raise TypeError(f"experiment {name!r} needs the helper(s) {', '.join(missing)}")
        return study(*(helpers[h] for h in NEEDS[name]), seed=seed)
    run.__name__ = run.__qualname__ = f"run_{name}"
    return run


EXPERIMENTS = {name: (_runner(name), check) for name, (_, check) in _STUDIES.items()}
