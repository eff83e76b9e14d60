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
