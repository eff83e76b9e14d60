"""Small plotting helpers for the lesson notebooks.

Every function builds its own figure and returns it (works with any backend,
Agg included). The figure is closed in pyplot straight away, so Jupyter shows it
exactly once: make the call the last line of a notebook cell to display it
(``plt.show()`` does not show it; ``fig.savefig(...)`` saves it).
"""
import matplotlib.pyplot as plt
import numpy as np

BLUE, ORANGE, GREEN, GREY = "#1f77b4", "#ff7f0e", "#2ca02c", "#7f7f7f"
COLOURS = (BLUE, ORANGE, GREEN, "#d62728", "#9467bd", "#8c564b")


def _figure(ncols=1, width=4.0, height=3.2, sharex=False):
    """A figure with ``ncols`` side-by-side axes (always returned as a list)."""
    fig = plt.figure(figsize=(width * ncols, height), layout="constrained")
    plt.close(fig)  # returned, not left in pyplot: displayed once, never leaked
    axes = fig.subplots(1, ncols, squeeze=False, sharex=sharex)[0]
    return fig, list(axes)


def _hist(ax, values, colour, title, xlabel, bins=30):
    """One histogram annotated with its mean and standard deviation."""
    values = np.asarray(values, dtype=np.float64)
    mean, std = values.mean(), values.std()
    mean = 0.0 if abs(mean) < 1e-9 * max(std, 1e-300) else mean  # hide round-off
    ax.hist(values, bins=bins, color=colour, alpha=0.8)
    ax.axvline(mean, color="black", linestyle="--", linewidth=1, zorder=0)
    ax.set(title=title, xlabel=xlabel, ylabel="count")
    ax.text(0.97, 0.95, f"mean {mean:.3g}\nstd {std:.3g}",
            transform=ax.transAxes, ha="right", va="top", fontsize=9,
            bbox=dict(facecolor="white", alpha=0.8, edgecolor=GREY))


def feature_histograms(x, titles=None, bins=60, sharex=True):
    """Histograms of every feature (column) of an (N, D) array, side by side.

    With ``sharex`` all panels use one x-axis and the same bins, so features of
    one batch that live on very different scales look very different (a narrow
    feature becomes a single spike); each panel's box gives its mean and std.
    """
    x = np.asarray(x, dtype=np.float64)
    titles = titles or [f"feature {j}" for j in range(x.shape[1])]
    bins = np.linspace(x.min(), x.max(), bins + 1) if sharex else bins
    fig, axes = _figure(x.shape[1], width=3.4, sharex=sharex)
    for j, ax in enumerate(axes):
        _hist(ax, x[:, j], COLOURS[j % len(COLOURS)], titles[j], "value", bins)
        ax.tick_params(labelbottom=True)
    return fig


def before_after_normalise(x, x_hat, feature=0, bins=30):
    """One feature's histogram before (x) and after (x_hat) normalising."""
    fig, (ax0, ax1) = _figure(2)
    _hist(ax0, np.asarray(x)[:, feature], BLUE, f"feature {feature}: x", "x", bins)
    _hist(ax1, np.asarray(x_hat)[:, feature], ORANGE,
          f"feature {feature}: x_hat", "x_hat", bins)
    return fig


def gamma_beta_effect(x_hat_column, settings=((1, 0), (2, 0), (0.5, 3)), bins=40):
    """Distribution of y = gamma * x_hat + beta for several (gamma, beta) pairs.

    The output has mean beta and standard deviation |gamma|: the shape of the
    normalised feature is kept, only its centre and width change.
    """
    x_hat_column = np.asarray(x_hat_column, dtype=np.float64).ravel()
    fig, (ax,) = _figure(1, width=6.5, height=3.4)
    ys = [g * x_hat_column + b for g, b in settings]
    edges = np.linspace(min(map(np.min, ys)), max(map(np.max, ys)), bins + 1)
    for k, ((gamma, beta), y) in enumerate(zip(settings, ys)):
        mean = round(y.mean(), 2) + 0  # + 0 turns -0.0 into 0.0
        ax.hist(y, bins=edges, histtype="step", linewidth=2, color=COLOURS[k],
                label=f"γ={gamma:g}, β={beta:g}: mean {mean:.2f}, std {y.std():.2f}")
    ax.set(title="y = γ·x_hat + β", xlabel="y", ylabel="count")
    ax.legend(fontsize=8, loc="upper left")
    return fig


def variance_errors(offsets, n=1000, d=20, dtype=np.float32, seed=0):
    """Relative error of the one-pass and two-pass variance formulas.

    For each offset c, the batch is c + standard normal noise, stored in
    ``dtype``. Each formula is evaluated in ``dtype`` and compared with the exact
    (float64) variance of the same stored numbers. Returns two arrays, one mean
    relative error per offset: (one_pass, two_pass).
    """
    rng = np.random.default_rng(seed)
    noise = rng.standard_normal((n, d))
    one, two = [], []
    for c in offsets:
        x = (c + noise).astype(dtype)
        exact = np.var(x.astype(np.float64), axis=0)
        one_pass = (x ** 2).mean(axis=0) - x.mean(axis=0) ** 2    # E[x^2] - E[x]^2
        two_pass = ((x - x.mean(axis=0)) ** 2).mean(axis=0)      # E[(x - E[x])^2]
        one.append(np.mean(np.abs(one_pass - exact) / exact))
        two.append(np.mean(np.abs(two_pass - exact) / exact))
    return np.array(one), np.array(two)


def variance_precision(offsets=None, n=1000, dtype=np.float32, seed=0):
    """Log-log plot: relative error of the variance vs the feature's offset.

    The one-pass formula E[x^2] - E[x]^2 subtracts two huge, nearly equal
    numbers and loses every significant digit once the offset is large; the
    two-pass formula stays accurate. Errors below 1e-9 are drawn at 1e-9.
    """
    offsets = np.logspace(0, 5, 21) if offsets is None else np.asarray(offsets)
    one, two = variance_errors(offsets, n=n, dtype=dtype, seed=seed)
    fig, (ax,) = _figure(1, width=6.5, height=3.8)
    ax.loglog(offsets, np.maximum(one, 1e-9), "o-", color=ORANGE,
              label="one-pass: mean(x²) − mean(x)²")
    ax.loglog(offsets, np.maximum(two, 1e-9), "s-", color=BLUE,
              label="two-pass: mean((x − mean(x))²)")
    ax.axhline(1.0, color=GREY, linestyle=":", linewidth=1)
    ax.text(offsets[0], 1.3, "100% error: no correct digit left", color=GREY, fontsize=8)
    ax.set(title=f"Variance of (offset + noise with std 1) in {np.dtype(dtype).name}",
           xlabel="offset (mean of the feature)", ylabel="relative error of the variance")
    ax.legend(fontsize=8, loc="center left")
    return fig


def eps_effect(eps=1e-5):
    """How much normalising amplifies a feature, 1/sqrt(var + eps), vs its variance.

    Without eps the gain grows without bound as var -> 0 (and is infinite for a
    constant feature); with eps inside the square root it is capped at
    1/sqrt(eps). Putting eps outside, 1/(sqrt(var) + eps), is a different
    function with a much higher cap.
    """
    var = np.logspace(-12, 2, 200)
    fig, (ax,) = _figure(1, width=6.5, height=3.8)
    ax.loglog(var, 1 / np.sqrt(var), color=GREY, linestyle="--", label="no eps: 1/√var")
    ax.loglog(var, 1 / np.sqrt(var + eps), color=BLUE, linewidth=2,
              label=f"eps inside: 1/√(var + eps), eps={eps:g}")
    ax.loglog(var, 1 / (np.sqrt(var) + eps), color=ORANGE, linestyle="-.",
              label="eps outside: 1/(√var + eps)")
    ax.axvline(eps, color=GREY, linestyle=":", linewidth=1)
    ax.set(title="Gain applied by normalising", xlabel="batch variance of the feature",
           ylabel="gain 1/std")
    ax.legend(fontsize=8)
    return fig


def sigmoid_regime(x_hat_column, gamma=3.0, beta=2.0, bins=40):
    """Where a feature lands on a sigmoid before and after scale-and-shift.

    A normalised feature mostly lies in [-2, 2], where the sigmoid is almost a
    straight line; gamma and beta let the network move it into the curved part.
    """
    x_hat_column = np.asarray(x_hat_column, dtype=np.float64).ravel()
    fig, (ax,) = _figure(1, width=6.5, height=3.6)
    z = np.linspace(-8, 8, 400)
    twin = ax.twinx()
    edges = np.linspace(-8, 8, bins + 1)
    twin.hist(x_hat_column, bins=edges, color=BLUE, alpha=0.35, label="x_hat (γ=1, β=0)")
    twin.hist(gamma * x_hat_column + beta, bins=edges, color=ORANGE, alpha=0.35,
              label=f"γ·x_hat + β (γ={gamma:g}, β={beta:g})")
    ax.plot(z, 1 / (1 + np.exp(-z)), color="black", label="sigmoid(z)")
    zt = z[np.abs(z) <= 2.5]
    ax.plot(zt, 0.5 + zt / 4, color=GREY, linestyle=":", label="its tangent at 0")
    ax.set_zorder(twin.get_zorder() + 1)  # draw the curve above the histograms
    ax.patch.set_visible(False)
    ax.set(ylim=(-0.05, 1.05), title="Sigmoid input: normalised vs scaled and shifted",
           xlabel="input to the sigmoid", ylabel="sigmoid output")
    twin.set_ylabel("count")
    handles = ax.get_legend_handles_labels()
    extra = twin.get_legend_handles_labels()
    ax.legend(handles[0] + extra[0], handles[1] + extra[1], fontsize=8, loc="upper left")
    return fig


# ---------------------------------------------------------------- lesson 03: the backward pass

RED = "#d62728"


def _graph_node(ax, xy, label, colour):
    return ax.text(*xy, label, ha="center", va="center", fontsize=11, zorder=3,
                   bbox=dict(boxstyle="round,pad=0.45", facecolor=colour, edgecolor="black"))


def _graph_edge(ax, start, end, start_at=(1.0, 0.5), end_at=(0.0, 0.5)):
    """A forward arrow from one node's box to another's (points given in box coordinates)."""
    ax.annotate("", xy=end_at, xycoords=end, xytext=start_at, textcoords=start, zorder=2,
                arrowprops=dict(arrowstyle="-|>", color="black", linewidth=1.3,
                                shrinkA=2, shrinkB=2))


def backward_graph():
    """The computational graph of BatchNorm's forward pass, and the way back.

    Black arrows: the forward pass, left to right; each node computes one small thing. Red:
    the gradient dv = dL/dv that each value collects on the way back (the local derivatives are
    the lesson's exercise: the figure does not give them). dy is the upstream gradient dout;
    s = sqrt(var + eps), r = 1/s. Each node carries the number of its heading in lesson 03,
    1 (y) to 7 (the mean): the order the backward pass visits them.
    """
    fig, (ax,) = _figure(1, width=12.5, height=4.6)
    ax.set(xlim=(-0.9, 12.6), ylim=(-2.0, 3.4))
    ax.axis("off")
    ax.set_title("BatchNorm as a graph: forward left to right (black), "
                 "gradients right to left (red)")
    nodes = {  # name: (position, forward label, gradient label, gradient above the box?)
        "x": ((0.0, 1.0), r"$x$", r"$dx$", False),
        "mu": ((1.9, 2.6), r"$\mu = \dfrac{1}{N}\sum_i x_i$", r"$d\mu$", True),
        "xc": ((3.6, 1.0), r"$x_c = x - \mu$", r"$dx_c$", False),
        "var": ((5.4, 2.6), r"$\sigma^2 = \dfrac{1}{N}\sum_i x_{c,i}^2$", r"$d\sigma^2$", True),
        "std": ((7.5, 2.6), r"$s = \sqrt{\sigma^2 + \varepsilon}$", r"$ds$", True),
        "inv": ((9.4, 2.6), r"$r = 1/s$", r"$dr$", True),
        "xhat": ((9.4, 1.0), r"$\hat{x} = x_c\, r$", r"$d\hat{x}$", False),
        "y": ((11.4, 1.0), r"$y = \gamma \hat{x} + \beta$", None, False),
        "gamma": ((10.6, -0.6), r"$\gamma$", r"$d\gamma$", False),
        "beta": ((12.2, -0.6), r"$\beta$", r"$d\beta$", False),
    }
    colours = {"x": "#dbe9f6", "gamma": "#fde3c8", "beta": "#fde3c8", "y": "#d9f0d3"}
    box = {name: _graph_node(ax, pos, label, colours.get(name, "white"))
           for name, (pos, label, _, _) in nodes.items()}
    for number, name in enumerate(("y", "xhat", "inv", "std", "var", "xc", "mu"), start=1):
        ax.annotate(str(number), xy=(0.0, 1.0), xycoords=box[name], xytext=(-3, 3), textcoords="offset points",
                    ha="right", va="bottom", fontsize=9, fontweight="bold", zorder=4,
                    bbox=dict(boxstyle="circle,pad=0.2", facecolor="white", edgecolor="black"))
    for (px, py), _, grad, above in nodes.values():
        if grad:
            ax.text(px, py + (0.5 if above else -0.5), grad, ha="center",
                    va="bottom" if above else "top", color=RED, fontsize=12)
    edges = [  # start, end, attach points
        ("x", "mu", (1.0, 0.7), (0.0, 0.5)),
        ("x", "xc", (1.0, 0.5), (0.0, 0.5)),
        ("mu", "xc", (0.6, 0.0), (0.5, 1.0)),
        ("xc", "var", (0.75, 1.0), (0.2, 0.0)),
        ("var", "std", (1.0, 0.5), (0.0, 0.5)),
        ("std", "inv", (1.0, 0.5), (0.0, 0.5)),
        ("xc", "xhat", (1.0, 0.5), (0.0, 0.5)),
        ("inv", "xhat", (0.5, 0.0), (0.5, 1.0)),
        ("xhat", "y", (1.0, 0.5), (0.0, 0.5)),
        ("gamma", "y", (0.5, 1.0), (0.3, 0.0)),
        ("beta", "y", (0.5, 1.0), (0.75, 0.0)),
    ]
    for start, end, start_at, end_at in edges:
        _graph_edge(ax, box[start], box[end], start_at, end_at)
    ax.annotate(r"$dy$ = dout", xy=(1.0, 0.5), xycoords=box["y"], xytext=(12.45, 2.0),
                textcoords="data", color=RED, fontsize=10, ha="center",
                arrowprops=dict(arrowstyle="-|>", color=RED, linewidth=1.3))
    ax.annotate("", xy=(-0.6, -1.75), xytext=(12.3, -1.75),
                arrowprops=dict(arrowstyle="-|>", color=RED, linewidth=2))
    ax.text(6.0, -1.65, "backward: node 1 to node 7, each node turns the gradient at its output into one "
            "for each of its inputs", color=RED, fontsize=9, ha="center", va="bottom")
    return fig


def _bn_loss(x, gamma, beta, dout, eps=1e-5):
    """L = sum(BatchNorm(x) * dout), written with plain array operations (NumPy or torch)."""
    mean = x.mean(0)
    var = ((x - mean) ** 2).mean(0)
    return ((gamma * (x - mean) / (var + eps) ** 0.5 + beta) * dout).sum()


def finite_difference_error(hs=None, shape=(6, 3), seed=0):
    """Log-log plot: error of finite-difference gradients of BatchNorm vs the step h.

    L(x) = sum(BatchNorm(x) * dout) for a random batch and a random dout. Each estimate of
    dL/dx (one-sided in float64, centred in float64, centred in float32) is compared with
    the exact gradient from torch.autograd in float64; the error is max |estimate - exact|
    relative to max |exact|. Large h: the truncation error, slope 1 (one-sided) or 2
    (centred); small h: rounding error, which grows like 1/h.
    """
    import torch  # only this plot needs it

    hs = np.logspace(-13, -1, 25) if hs is None else np.asarray(hs, dtype=np.float64)
    rng = np.random.default_rng(seed)
    x = rng.normal(1.0, 2.0, shape)
    gamma, beta = rng.normal(1.0, 0.5, shape[1]), rng.normal(0.0, 1.0, shape[1])
    dout = rng.standard_normal(shape)
    x_t = torch.tensor(x, requires_grad=True)
    _bn_loss(x_t, *(torch.tensor(a) for a in (gamma, beta, dout))).backward()
    exact = x_t.grad.numpy()

    def estimate(h, dtype, centred):
        xs, args = x.astype(dtype), [a.astype(dtype) for a in (gamma, beta, dout)]
        h, grad = dtype(h), np.zeros(shape)
        base = _bn_loss(xs, *args)
        for i in np.ndindex(shape):
            plus, minus = xs.copy(), xs.copy()
            plus[i] += h
            minus[i] -= h
            if centred:
                grad[i] = (_bn_loss(plus, *args) - _bn_loss(minus, *args)) / (2 * h)
            else:
                grad[i] = (_bn_loss(plus, *args) - base) / h
        return grad

    def error(h, dtype, centred):
        return np.max(np.abs(estimate(h, dtype, centred) - exact)) / np.max(np.abs(exact))

    fig, (ax,) = _figure(1, width=6.5, height=3.9)
    curves = [("one-sided, float64", np.float64, False, ORANGE, "o-"),
              ("centred, float64", np.float64, True, BLUE, "s-"),
              ("centred, float32", np.float32, True, GREEN, "^--")]
    with np.errstate(all="ignore"):  # float32 steps below its resolution divide by zero
        for label, dtype, centred, colour, style in curves:
            errors = np.array([error(h, dtype, centred) for h in hs])
            ax.loglog(hs, np.clip(np.nan_to_num(errors, nan=1e3, posinf=1e3), 1e-13, 1e3),
                      style, color=colour, markersize=4, label=label)
    ax.axvline(1e-5, color=GREY, linestyle=":", linewidth=1)
    ax.text(1.3e-5, 2e-12, "h = 1e-5", color=GREY, fontsize=8)
    ax.set(title="Finite-difference gradient of BatchNorm: error vs step h",
           xlabel="step h", ylabel="relative error of dx", ylim=(1e-13, 1e3))
    ax.legend(fontsize=8, loc="lower left")
    return fig
