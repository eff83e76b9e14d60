"""Lesson 05's demos: your BatchNorm modules next to torch's, and a real network whose BatchNorm
layers are swapped for yours.

    drop_in.gradcheck_function(BatchNormFunction)     # gradcheck (float64), and vs F.batch_norm
    drop_in.plot_shared_statistics()                   # which values share a mean and a variance
    drop_in.describe(torch.nn.BatchNorm2d(3))          # parameters, buffers, state_dict keys
    drop_in.compare_modules(BatchNorm1d, BatchNorm2d)  # yours vs torch's, per configuration
    drop_in.state_dict_round_trip(BatchNorm2d)         # torch's state_dict into yours, and back
    drop_in.edge_cases(BatchNorm1d, BatchNorm2d)       # bad shapes, one value per channel, N = 0
    drop_in.swap_batchnorm(model, BatchNorm1d, BatchNorm2d)
    r32 = drop_in.train_side_by_side(BatchNorm1d, BatchNorm2d)  # torch's layers vs yours
    r64 = drop_in.train_side_by_side(BatchNorm1d, BatchNorm2d, dtype=torch.float64)
    print(drop_in.summary(r32))
    drop_in.plot_side_by_side(r32, r64)

Every call into torch's BatchNorm (torch.nn.BatchNorm1d/2d, F.batch_norm) sits inside
``tripwire.allowed()``: while the lesson is graded torch's normalisation kernels are switched off
for the learner's code, not for these demos. The learner's classes always run outside that block.
Figures are built as in ``bncourse.plots``: make the call the last line of a cell.
"""
import copy
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from bncourse import experiments, tripwire
from bncourse.plots import BLUE, COLOURS, GREEN, GREY, ORANGE, _figure
from bncourse.timing import one_thread

RED = COLOURS[3]


# ---------------------------------------------------------------- the autograd Function

def gradcheck_function(function, shape=(6, 3), eps=1e-5, seed=0):
    """torch.autograd.gradcheck on function.apply(x, weight, bias, eps), in float64, and the same
    forward and backward against torch's F.batch_norm (training mode) through autograd.

    gradcheck builds the whole Jacobian of the output with respect to x, weight and bias twice:
    from your backward, and by centred differences of your forward. Prints both verdicts and
    returns gradcheck's (True or False).
    """
    g = torch.Generator().manual_seed(seed)
    x = (2.0 + 3.0 * torch.randn(shape, generator=g, dtype=torch.float64)).requires_grad_()
    weight = (1.0 + 0.5 * torch.randn(shape[1], generator=g, dtype=torch.float64)).requires_grad_()
    bias = torch.randn(shape[1], generator=g, dtype=torch.float64).requires_grad_()
    dy = torch.randn(shape, generator=g, dtype=torch.float64)
    # one direct call first, so that an unfinished forward or backward says so plainly
    y = function.apply(x, weight, bias, eps)
    yours = (y.detach(), *torch.autograd.grad(y, (x, weight, bias), dy))
    ok = torch.autograd.gradcheck(lambda a, w, b: function.apply(a, w, b, eps), (x, weight, bias),
                                  raise_exception=False)
    with tripwire.allowed():
        y_t = F.batch_norm(x, None, None, weight, bias, training=True, eps=eps)
        theirs = (y_t.detach(), *torch.autograd.grad(y_t, (x, weight, bias), dy))
    gaps = [float((a - b).abs().max()) for a, b in zip(yours, theirs)]
    verdict = "passed" if ok else "FAILED"
    print(f"gradcheck on x {tuple(shape)}, weight and bias (float64): {verdict}")
    print("largest |yours - torch's F.batch_norm through autograd|: "
          + ", ".join(f"{n} {v:.1e}" for n, v in zip(("output", "dx", "dweight", "dbias"), gaps)))
    return ok


# ---------------------------------------------------------------- which values share statistics

def plot_shared_statistics(n=3, c=4, length=6, hw=3):
    """Figure: for inputs of shape (N, C), (N, C, L) and (N, C, H, W), which entries BatchNorm
    averages together. Each panel has one row per example and one block per channel (inside it,
    the channel's positions); entries of one colour share one mean and one variance."""
    shapes = [((n, c), (1, 1), "(N, C)"), ((n, c, length), (1, length), "(N, C, L)"),
              ((n, c, hw, hw), (hw, hw), "(N, C, H, W)")]
    fig, axes = _figure(3, width=4.2, height=3.3)
    palette = [np.array([int(h[k:k + 2], 16) / 255 for k in (1, 3, 5)])
               for h in (BLUE, ORANGE, GREEN, RED, COLOURS[4], COLOURS[5])]
    for (shape, (bh, bw), name), ax in zip(shapes, axes):
        row_h, col_w = bh + 1, bw + 1               # a one-cell white gap around every block
        image = np.ones((n * row_h - 1, c * col_w - 1, 3))
        for i in range(n):
            for j in range(c):
                image[i * row_h:i * row_h + bh, j * col_w:j * col_w + bw] = palette[j % 6]
        ax.imshow(image, interpolation="nearest")
        height, width = image.shape[:2]
        for k in range(1, width):                   # thin lines between positions of a block
            if (k % col_w) and bw > 1:
                ax.axvline(k - 0.5, color="white", linewidth=0.6)
        for k in range(1, height):
            if (k % row_h) and bh > 1:
                ax.axhline(k - 0.5, color="white", linewidth=0.6)
        ax.set_xticks([j * col_w + bw / 2 - 0.5 for j in range(c)], [str(j) for j in range(c)])
        ax.set_yticks([i * row_h + bh / 2 - 0.5 for i in range(n)], [str(i) for i in range(n)])
        ax.tick_params(length=0)
        for side in ax.spines.values():
            side.set_visible(False)
        per = int(np.prod(shape)) // c
        counted = {2: "N", 3: "N·L", 4: "N·H·W"}[len(shape)]
        ax.set_title(f"{name} = {shape}\n{c} (mean, variance) pairs, one per channel,\n"
                     f"each over {counted} = {per} values", fontsize=9)
        positions = {2: "(no positions)", 3: f"(each block: L = {length} positions)",
                     4: f"(each block: {hw}×{hw} positions)"}[len(shape)]
        ax.set(xlabel=f"channel {positions}", ylabel="example in the batch")
    fig.suptitle("BatchNorm's statistics: entries of one colour share one mean and one variance",
                 fontsize=10)
    return fig


# ---------------------------------------------------------------- a module, described

def _entry(module, name):
    """One line about module.<name>: parameter or buffer, shape, dtype and small values."""
    value = getattr(module, name, "missing")
    if value is None or isinstance(value, str):
        return str(value)
    kind = "Parameter" if isinstance(value, nn.Parameter) else \
        "buffer" if name in dict(module.named_buffers()) else "plain tensor"
    shown = np.array2string(value.detach().cpu().numpy(), precision=3, separator=", ")
    return f"{kind} {tuple(value.shape)} {str(value.dtype).replace('torch.', '')} {shown}"


NAMES = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")


def describe(module):
    """Print a BatchNorm module's settings, parameters, buffers and state_dict keys."""
    print(f"{type(module).__name__}: num_features={module.num_features}, eps={module.eps}, "
          f"momentum={module.momentum}, affine={module.affine}, "
          f"track_running_stats={module.track_running_stats}, training={module.training}")
    for name in NAMES:
        print(f"  {name:20s} {_entry(module, name)}")
    print(f"  {'state_dict keys':20s} {list(module.state_dict())}")


# ---------------------------------------------------------------- yours vs torch, step by step

CONFIGS = (  # (label, "1d" or "2d", constructor keywords, input shape)
    ("BatchNorm1d(3), input (N, C)", "1d", {}, (8, 3)),
    ("BatchNorm1d(3), input (N, C, L)", "1d", {}, (4, 3, 5)),
    ("BatchNorm2d(3), input (N, C, H, W)", "2d", {}, (4, 3, 5, 5)),
    ("BatchNorm2d(3, momentum=None)", "2d", {"momentum": None}, (4, 3, 5, 5)),
    ("BatchNorm2d(3, affine=False)", "2d", {"affine": False}, (4, 3, 5, 5)),
    ("BatchNorm2d(3, track_running_stats=False)", "2d", {"track_running_stats": False},
     (4, 3, 5, 5)),
)
SCHEDULE = "tttteett e"  # t: a training step, e: an eval step ("t e" = train, eval)


def _randomise(module, seed):
    """Give a module's weight and bias non-trivial values (when it has them)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        if module.weight is not None:
            shape = module.weight.shape
            module.weight.copy_(torch.rand(shape, generator=g, dtype=torch.float64) + 0.5)
            module.bias.copy_(torch.randn(shape, generator=g, dtype=torch.float64))
    return module


def _step(module, x, dy, torch_side):
    """Forward x, backward dy; returns (output, dx, [parameter gradients]) detached."""
    x = x.clone().requires_grad_()
    params = [p for p in module.parameters()]
    for p in params:
        p.grad = None
    if torch_side:
        with tripwire.allowed():
            y = module(x)
            grads = torch.autograd.grad(y, [x] + params, dy)
    else:
        y = module(x)
        grads = torch.autograd.grad(y, [x] + params, dy)
    return y.detach(), grads[0], list(grads[1:])


def _buffers(module):
    return [b.detach().double() for _, b in module.named_buffers()]


def _max_gap(a, b):
    return max((float((u.double() - v.double()).abs().max()) for u, v in zip(a, b)
                if u.numel()), default=0.0)


def race(yours, theirs, shape, schedule=SCHEDULE, seed=0):
    """Feed the same float64 batches to two modules, training ('t') or eval ('e') steps as in
    `schedule`, each followed by a backward pass of the same random upstream gradient. Returns
    the largest differences seen {"output", "dx", "parameter grads", "buffers"} and the final
    batch counts (yours, torch's)."""
    g = torch.Generator().manual_seed(seed)
    gaps = dict.fromkeys(("output", "dx", "parameter grads", "buffers"), 0.0)
    for step, mode in enumerate(schedule.replace(" ", "")):
        yours.train(mode == "t")
        theirs.train(mode == "t")
        x = 3.0 + step + 2.0 * torch.randn(shape, generator=g, dtype=torch.float64)
        dy = torch.randn(shape, generator=g, dtype=torch.float64)
        a, b = _step(yours, x, dy, False), _step(theirs, x, dy, True)
        for key, u, v in (("output", [a[0]], [b[0]]), ("dx", [a[1]], [b[1]]),
                          ("parameter grads", a[2], b[2]),
                          ("buffers", _buffers(yours), _buffers(theirs))):
            if len(u) != len(v):
                raise AssertionError(f"{key}: yours has {len(u)} tensors, torch's {len(v)}")
            gaps[key] = max(gaps[key], _max_gap(u, v))
    counts = tuple(None if m.num_batches_tracked is None else int(m.num_batches_tracked)
                   for m in (yours, theirs))
    return gaps, counts


def compare_modules(bn1d_cls, bn2d_cls, schedule=SCHEDULE, seed=0):
    """Your classes vs torch.nn.BatchNorm1d/2d in every configuration of CONFIGS: the same
    float64 batches, with training and eval steps as in `schedule`, and a random upstream
    gradient at every step. Prints one line per configuration: the largest difference of the
    outputs, input gradients, parameter gradients and buffers, and the batch counts."""
    classes = {"1d": (bn1d_cls, nn.BatchNorm1d), "2d": (bn2d_cls, nn.BatchNorm2d)}
    lines = []  # printed at the end, so that an unfinished class prints nothing but its error
    for label, kind, kwargs, shape in CONFIGS:
        mine, torchs = classes[kind]
        yours = _randomise(mine(3, dtype=torch.float64, **kwargs), seed)
        theirs = _randomise(torchs(3, dtype=torch.float64, **kwargs), seed)
        gaps, (n_yours, n_torch) = race(yours, theirs, shape, schedule, seed)
        lines.append(f"{label:42s} " + " ".join(f"{v:8.1e}" for v in gaps.values())
                     + f"  {n_yours} / {n_torch}")
    columns = " ".join(f"{name:>8s}" for name in ("output", "dx", "d(w, b)", "buffers"))
    print(f"steps: {schedule!r} (t = train, e = eval); largest |yours - torch| over all steps")
    print(f"{'configuration':42s} {columns}  batches", *lines, sep="\n")


def state_dict_round_trip(bn2d_cls, steps=5, seed=0):
    """A torch.nn.BatchNorm2d trains a few steps; its state_dict is loaded into your BatchNorm2d
    (strictly: every key must match), both run in eval mode on the same batch; then yours trains a
    few more steps and a fresh torch module loads your state_dict. Prints what happened."""
    g = torch.Generator().manual_seed(seed)

    def batch():
        return 1.0 + 2.0 * torch.randn(8, 3, 4, 4, generator=g)

    theirs = _randomise(nn.BatchNorm2d(3), seed)
    with tripwire.allowed(), torch.no_grad():
        for _ in range(steps):
            theirs(batch())
    yours = bn2d_cls(3)
    print("yours.load_state_dict(torch's):", yours.load_state_dict(theirs.state_dict()))
    x = batch()
    yours.eval()
    theirs.eval()
    with torch.no_grad():
        y = yours(x)
        with tripwire.allowed():
            y_t = theirs(x)
    gap = float((y - y_t).abs().max())
    print(f"  eval mode on a new batch: largest |yours - torch| = {gap:.1e}; "
          f"num_batches_tracked {int(yours.num_batches_tracked)}")
    yours.train()
    with torch.no_grad():
        for _ in range(steps):
            yours(batch())
    back = nn.BatchNorm2d(3)
    print("torch.load_state_dict(yours):   ", back.load_state_dict(yours.state_dict()))
    print(f"  after {steps} more steps of yours: torch's copy has num_batches_tracked "
          f"{int(back.num_batches_tracked)}, largest |running_var difference| "
          f"{float((back.running_var - yours.running_var).abs().max()):.1e}")


# ---------------------------------------------------------------- errors and edge cases

def _outcome(module, x, torch_side):
    """What module(x) does: the output's shape, or the error it raises."""
    try:
        with torch.no_grad():
            if torch_side:
                with tripwire.allowed():
                    y = module(x)
            else:
                y = module(x)
        return f"output {tuple(y.shape)}"
    except (ValueError, RuntimeError) as error:
        return f"{type(error).__name__}: {str(error).replace('torch.Size(', '').replace('])', ']')}"


def edge_cases(bn1d_cls, bn2d_cls):
    """Your classes and torch's on awkward inputs: the wrong number of dimensions, a single value
    per channel (in training, in eval, without running statistics) and an empty batch. Prints
    both outcomes for each case, and the buffers after the empty batch."""
    cases = [
        ("BatchNorm1d(3) on (4, 3, 2, 2)", "1d", {}, True, (4, 3, 2, 2)),
        ("BatchNorm2d(3) on (4, 3, 2)", "2d", {}, True, (4, 3, 2)),
        ("BatchNorm1d(3) training on (1, 3)", "1d", {}, True, (1, 3)),
        ("BatchNorm1d(3) training on (1, 3, 4)", "1d", {}, True, (1, 3, 4)),
        ("BatchNorm1d(3) eval on (1, 3)", "1d", {}, False, (1, 3)),
        ("BatchNorm1d(3, track_running_stats=False) eval on (1, 3)", "1d",
         {"track_running_stats": False}, False, (1, 3)),
        ("BatchNorm2d(3) training on (0, 3, 4, 4)", "2d", {}, True, (0, 3, 4, 4)),
    ]
    classes = {"1d": (bn1d_cls, nn.BatchNorm1d), "2d": (bn2d_cls, nn.BatchNorm2d)}
    for label, kind, kwargs, training, shape in cases:
        yours, theirs = (cls(3, **kwargs).train(training) for cls in classes[kind])
        x = torch.randn(shape, generator=torch.Generator().manual_seed(0))
        print(label)
        print(f"  yours: {_outcome(yours, x, False)}")
        print(f"  torch: {_outcome(theirs, x, True)}")
    for name, module in (("yours", yours), ("torch", theirs)):  # the empty batch, last case
        print(f"after the empty batch, {name}: num_batches_tracked "
              f"{int(module.num_batches_tracked)}, running_mean {module.running_mean.tolist()}, "
              f"running_var {module.running_var.tolist()}")


# ---------------------------------------------------------------- a drop-in replacement

def swap_batchnorm(model, bn1d_cls, bn2d_cls):
    """Replace, in place, every torch.nn.BatchNorm1d / BatchNorm2d inside `model` (at any depth)
    by bn1d_cls / bn2d_cls built with the same constructor arguments, holding the same state
    (its state_dict) and in the same mode. Returns `model`."""
    for name, child in model.named_children():
        if isinstance(child, (nn.BatchNorm1d, nn.BatchNorm2d)):
            cls = bn1d_cls if isinstance(child, nn.BatchNorm1d) else bn2d_cls
            like = next((t for t in child.state_dict().values() if t.is_floating_point()), None)
            factory = {} if like is None else {"device": like.device, "dtype": like.dtype}
            new = cls(child.num_features, eps=child.eps, momentum=child.momentum,
                      affine=child.affine, track_running_stats=child.track_running_stats,
                      bias=child.bias is not None, **factory)
            new.load_state_dict(child.state_dict())
            setattr(model, name, new.train(child.training))
        else:
            swap_batchnorm(child, bn1d_cls, bn2d_cls)
    return model


@dataclass(frozen=True)
class SideBySide:
    """Per training step, how far your layers' model is from torch's, relative to the size of
    the values: max |torch's - yours| / max |torch's| over the logits, over every parameter's
    gradient, and over every buffer (after the step's forward pass). Then the two models'
    validation accuracy after training (eval mode) and how many predictions agree."""
    dtype: str
    logits: tuple
    grads: tuple
    buffers: tuple
    accuracy: tuple           # (torch's layers, yours) on the validation digits
    same_predictions: int
    images: int


def _relative_gap(theirs, yours):
    """max |theirs - yours| / max |theirs| over a list of tensors."""
    scale = max(float(t.double().abs().max()) for t in theirs if t.numel())
    return _max_gap(theirs, yours) / scale if scale else _max_gap(theirs, yours)


def _run(model, x, torch_side, y=None):
    """model(x), and the cross-entropy's backward when labels y are given; torch's BatchNorm
    layers (torch_side) run inside tripwire.allowed(), yours outside it."""
    def go():
        out = model(x)
        if y is not None:
            F.cross_entropy(out, y).backward()
        return out.detach()
    if torch_side:
        with tripwire.allowed():
            return go()
    return go()


def train_side_by_side(bn1d_cls, bn2d_cls, epochs=1, batch_size=32, dtype=torch.float32,
                       lr=0.05, seed=0):
    """experiments.small_cnn with torch's BatchNorm layers, and a copy with them swapped for yours
    (swap_batchnorm), trained side by side with SGD (momentum 0.9) on the same batches of
    digits, in `dtype`, on one thread: `epochs` passes over the 1438 training images. Returns a
    SideBySide."""
    reference = experiments.small_cnn(seed).to(dtype)
    yours = swap_batchnorm(copy.deepcopy(reference), bn1d_cls, bn2d_cls)
    models, sides = (reference, yours), (True, False)
    x, y, x_val, y_val = experiments._digits()
    x, x_val = x.to(dtype), x_val.to(dtype)
    opts = [torch.optim.SGD(m.parameters(), lr=lr, momentum=0.9) for m in models]
    order = torch.Generator().manual_seed(seed)
    trace = {"logits": [], "grads": [], "buffers": []}
    with one_thread():
        for _ in range(epochs):
            for idx in torch.randperm(len(x), generator=order).split(batch_size):
                if len(idx) < 2:
                    continue  # BatchNorm cannot train on a batch of one
                for opt in opts:
                    opt.zero_grad()
                logits = [_run(m.train(), x[idx], side, y[idx]) for m, side in zip(models, sides)]
                trace["logits"].append(_relative_gap([logits[0]], [logits[1]]))
                grads = [[p.grad for p in m.parameters()] for m in models]
                trace["grads"].append(_relative_gap(*grads))
                trace["buffers"].append(_relative_gap(*[_buffers(m) for m in models]))
                for opt in opts:
                    opt.step()
        with torch.no_grad():
            predictions = [_run(m.eval(), x_val, side).argmax(dim=1)
                           for m, side in zip(models, sides)]
    accuracy = tuple(float((p == y_val).float().mean()) for p in predictions)
    return SideBySide(str(dtype).replace("torch.", ""), tuple(trace["logits"]),
                      tuple(trace["grads"]), tuple(trace["buffers"]), accuracy,
                      int((predictions[0] == predictions[1]).sum()), len(y_val))


def summary(result):
    """A few lines about a SideBySide: the worst relative differences, and the accuracies."""
    worst = ", ".join(f"{key} {max(getattr(result, key)):.1e}"
                      for key in ("logits", "grads", "buffers"))
    return (f"{result.dtype}, {len(result.logits)} training steps: largest relative difference, "
            f"torch's layers vs yours: {worst}\n"
            f"  validation accuracy after training: torch's layers {result.accuracy[0]:.1%}, "
            f"yours {result.accuracy[1]:.1%}; the same prediction on {result.same_predictions} "
            f"of {result.images} images")


def plot_side_by_side(*results):
    """Figure: one panel per SideBySide, the relative difference between torch's model and yours
    at every training step, for the logits, the parameter gradients and the buffers (log scale),
    with the dtype's machine epsilon for reference."""
    fig, axes = _figure(len(results), width=4.6, height=3.5)
    for result, ax in zip(results, axes):
        steps = np.arange(1, len(result.logits) + 1)
        for key, colour, label in (("logits", BLUE, "logits"),
                                   ("grads", ORANGE, "parameter gradients"),
                                   ("buffers", GREEN, "buffers")):
            values = np.maximum(getattr(result, key), 1e-300)  # an exact 0 cannot go on log axes
            ax.plot(steps, values, "-", color=colour, linewidth=1.2, label=label)
        machine_eps = torch.finfo(getattr(torch, result.dtype)).eps
        ax.axhline(machine_eps, color=GREY, linestyle=":", linewidth=1)
        ax.text(steps[-1], machine_eps * 1.15, f"{result.dtype} machine epsilon {machine_eps:.1e}",
                ha="right", va="bottom", fontsize=8, color=GREY)
        top = max(machine_eps * 1e3, 3 * max(result.logits + result.grads))
        ax.set(title=f"torch's BatchNorm layers vs yours, {result.dtype}", xlabel="training step",
               ylabel="max |torch's - yours| / max |torch's|", yscale="log",
               ylim=(machine_eps / 10, top))
        ax.legend(fontsize=8, loc="upper left")
    return fig
