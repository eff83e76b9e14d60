"""Every statement of the one-page sheet (docs/batchnorm_on_one_page.md) holds in torch 2.13,
in float64 to ~1e-12, and the sheets render as printable HTML (autograder/sheets.py)."""
import re
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from autograder import sheets

REPO = Path(__file__).resolve().parent.parent
SHEET = " ".join((REPO / "docs" / "batchnorm_on_one_page.md").read_text(encoding="utf-8").split())  # one line

TOL = 1e-12


@pytest.fixture
def batch():
    rng = np.random.default_rng(7)
    n, d = 6, 4
    x = 3.0 + rng.standard_normal((n, d)) * np.array([0.01, 1.0, 5.0, 0.1])  # one tiny variance
    return x, rng.normal(1, 0.5, d), rng.normal(0, 1, d), rng.standard_normal((n, d))


def test_the_formulas_tested_here_are_the_sheets():
    for formula in ("μ = (1/N) Σᵢ xᵢ", "σ² = (1/N) Σᵢ (xᵢ − μ)²", "x̂ᵢ = (xᵢ − μ) / s, with s = √(σ² + ε)",
                    "yᵢ = γ ⊙ x̂ᵢ + β", "dβ = Σᵢ dyᵢ", "dγ = Σᵢ dyᵢ ⊙ x̂ᵢ",
                    "dxᵢ = (γ / (N · s)) ⊙ (N · dyᵢ − Σₗ dyₗ − x̂ᵢ ⊙ Σₗ dyₗ ⊙ x̂ₗ)",
                    "k = γ / √(σ²_run + ε), then W′ = k ⊙ W (row by row) and b′ = k ⊙ (b − μ_run) + β",
                    "μ_run ← ρ · μ_run + (1 − ρ) · μ", "μ_run ← (1 − momentum) · μ_run + momentum · μ"):
        assert formula in SHEET, formula


def four_steps(x, gamma, beta, eps=1e-5):
    mu = x.sum(axis=0) / len(x)
    var = ((x - mu) ** 2).sum(axis=0) / len(x)
    s = np.sqrt(var + eps)
    x_hat = (x - mu) / s
    return gamma * x_hat + beta, x_hat, var, s


def t(a):
    return torch.tensor(a, dtype=torch.float64)


def test_the_sheet_quotes_torchs_defaults():
    layer = torch.nn.BatchNorm1d(3)
    assert layer.eps == 1e-5 and "PyTorch's default is ε = 1e-5" in SHEET
    assert layer.momentum == 0.1 and "default 0.1 = 1 − ρ" in SHEET and "ρ = 0.9" in SHEET
    assert layer.running_mean.tolist() == [0, 0, 0] and layer.running_var.tolist() == [1, 1, 1]
    assert "`running_mean` starts at 0, `running_var` at 1" in SHEET


def test_the_four_steps_are_torchs_training_forward(batch):
    x, gamma, beta, _ = batch
    y, x_hat, var, _ = four_steps(x, gamma, beta)
    torch_y = F.batch_norm(t(x), None, None, t(gamma), t(beta), training=True, eps=1e-5).numpy()
    np.testing.assert_allclose(y, torch_y, rtol=0, atol=TOL)
    np.testing.assert_allclose(x_hat.var(axis=0), var / (var + 1e-5), rtol=TOL)  # "just under 1"
    assert (x_hat.var(axis=0) < 1).all() and "variance σ²/(σ² + ε), just under 1" in SHEET


def test_running_averages_mix_the_unbiased_variance_and_momentum_none_averages(batch):
    x = batch[0]
    n = len(x)
    layer = torch.nn.BatchNorm1d(x.shape[1], dtype=torch.float64, momentum=0.1)
    layer(t(x))
    mu, var_u = x.mean(axis=0), x.var(axis=0, ddof=1)
    rho = 0.9
    np.testing.assert_allclose(layer.running_mean.numpy(), rho * 0 + (1 - rho) * mu, rtol=TOL)
    np.testing.assert_allclose(layer.running_var.numpy(), rho * 1 + (1 - rho) * var_u, rtol=TOL)
    assert np.allclose(var_u, n / (n - 1) * x.var(axis=0), rtol=TOL) and "σ²_u = N/(N − 1) · σ²" in SHEET

    cumulative = torch.nn.BatchNorm1d(x.shape[1], dtype=torch.float64, momentum=None)
    halves = (x[:3], x[3:])
    for half in halves:
        cumulative(t(half))
    np.testing.assert_allclose(cumulative.running_mean.numpy(), np.mean([h.mean(axis=0) for h in halves], axis=0),
                               rtol=TOL)
    assert "`momentum=None` gives the plain average of all batches so far" in SHEET


def test_eval_mode_uses_the_running_averages_and_leaves_them(batch):
    x = batch[0]
    layer = torch.nn.BatchNorm1d(x.shape[1], dtype=torch.float64).eval()
    layer.running_mean.fill_(2.0)
    layer.running_var.fill_(4.0)
    out = layer(t(x)).detach().numpy()
    np.testing.assert_allclose(out, (x - 2.0) / np.sqrt(4.0 + 1e-5), rtol=TOL)
    assert (layer.running_mean == 2.0).all() and (layer.running_var == 4.0).all()
    one = layer(t(x[:1])).detach().numpy()  # an example's output depends on that example alone
    np.testing.assert_array_equal(one, out[:1])


def test_the_backward_formulas_are_autograds(batch):
    x, gamma, beta, dy = batch
    n = len(x)
    _, x_hat, var, s = four_steps(x, gamma, beta)
    dbeta = dy.sum(axis=0)
    dgamma = (dy * x_hat).sum(axis=0)
    dx = gamma / (n * s) * (n * dy - dy.sum(axis=0) - x_hat * (dy * x_hat).sum(axis=0))
    xs = [t(a).requires_grad_() for a in (x, gamma, beta)]
    F.batch_norm(xs[0], None, None, xs[1], xs[2], training=True, eps=1e-5).backward(t(dy))
    for mine, theirs in zip((dx, dgamma, dbeta), xs):
        np.testing.assert_allclose(mine, theirs.grad.numpy(), rtol=0, atol=TOL * np.abs(mine).max())
    rounding = TOL * n * np.abs(dx).max()  # sums of n terms as large as dx's largest
    np.testing.assert_allclose(dx.sum(axis=0), 0, atol=rounding)
    np.testing.assert_allclose((dx * x_hat).sum(axis=0),  # orthogonal up to eps/(var + eps)
                               gamma / s * 1e-5 / (var + 1e-5) * dgamma, atol=rounding)
    assert np.abs(gamma / s * 1e-5 / (var + 1e-5) * dgamma).max() > 100 * rounding  # the term is real


def test_folding_into_the_layer_before(batch):
    x, gamma, beta, _ = batch
    torch.manual_seed(0)
    linear = torch.nn.Linear(4, 4, dtype=torch.float64)
    bn = torch.nn.BatchNorm1d(4, dtype=torch.float64)
    bn.weight.data, bn.bias.data = t(gamma), t(beta)
    bn.running_mean.uniform_(-1, 1)
    bn.running_var.uniform_(0.5, 2)
    bn.eval()
    expected = bn(linear(t(x))).detach().numpy()
    w, b = linear.weight.detach().numpy(), linear.bias.detach().numpy()
    mu_run, var_run = bn.running_mean.numpy(), bn.running_var.numpy()
    k = gamma / np.sqrt(var_run + 1e-5)
    w_folded, b_folded = k[:, None] * w, k * (b - mu_run) + beta
    np.testing.assert_allclose(x @ w_folded.T + b_folded, expected, rtol=0, atol=TOL * np.abs(expected).max())


def test_a_batch_of_one_is_refused_only_when_a_channel_has_a_single_value():
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        torch.nn.BatchNorm1d(3)(torch.randn(1, 3))
    torch.nn.BatchNorm2d(3)(torch.randn(1, 3, 2, 2))  # four values per channel: fine
    assert "PyTorch raises an error when a channel has a single value" in SHEET


def test_the_sheets_render_as_printable_html(tmp_path):
    written = sheets.write(tmp_path)
    assert sorted(p.name for p in written) == ["batchnorm_on_one_page.html", "batchnorm_on_one_page.md",
                                               "notation.html", "notation.md"]
    page = (tmp_path / "batchnorm_on_one_page.html").read_text(encoding="utf-8")
    assert page.count("<table>") == 2 and 'href="notation.html"' in page and "@media print" in page
    folds = page.split("<details>")[1:]  # the backward (lesson 03) and the folding (lesson 07)
    assert len(folds) == 2 and "dxᵢ = (γ / (N · s))" in folds[0] and "W′ = k ⊙ W" in folds[1]
    assert not re.search(r"https?://", page)  # nothing fetched when printed offline
    assert "<td>K</td>" in (tmp_path / "notation.html").read_text(encoding="utf-8")
