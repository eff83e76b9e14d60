"""Print how close correct answers come to the float32/float64 tolerance, and how far
known mistakes land from it: the evidence behind bncourse.judge.TOLERANCE_K.

For each piece: the worst ratio error/allowed over many randomised cases, for torch's own
float32 kernels and every correct variant in tests/catalogue.py (must stay < 1), and for
every mutant the ratio on the case that catches it (must be > 1; the larger the better).
    python benchmarks/calibrate_tolerances.py [seeds] [piece ...]
"""
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bncourse import judge, oracle  # noqa: E402
from tests.catalogue import MUTANTS, VARIANTS, compile_piece  # noqa: E402

PIECES = list(oracle.PIECES)


def torch_float32():
    """torch's native kernels in the input's dtype: the bar a correct answer must clear."""
    def layer(x):
        bn = torch.nn.BatchNorm1d(x.shape[1], momentum=1.0, affine=False, dtype=torch.as_tensor(x).dtype)
        with torch.no_grad():
            bn(torch.as_tensor(x))
        return bn
    t = torch.as_tensor
    return {
        "batch_mean": lambda x: layer(x).running_mean.numpy(),
        "batch_variance": lambda x: (layer(x).running_var * ((len(x) - 1) / len(x))).numpy(),
        "normalise": lambda x, m, v, eps=1e-5: F.batch_norm(t(x), t(m), t(v), training=False, eps=eps).numpy(),
        "scale_and_shift": lambda h, g, b: F.batch_norm(
            t(h), torch.zeros_like(t(g)), torch.ones_like(t(g)), t(g), t(b), training=False, eps=0.0).numpy(),
        "batchnorm_backward": _torch_backward,
        "batchnorm_backward_staged": _torch_backward,
        "batchnorm_inference": lambda x, g, b, m, v, eps=1e-5: F.batch_norm(
            t(x), t(m), t(v), t(g), t(b), training=False, eps=eps).numpy(),
        "update_running_stats_torch": _torch_buffers,
        "layer_norm": lambda x, g, b, eps=1e-5: F.layer_norm(t(x), (x.shape[1],), t(g), t(b), eps=eps).numpy(),
        "group_norm": lambda x, G, g, b, eps=1e-5: F.group_norm(t(x), G, t(g), t(b), eps=eps).numpy(),
        "fold_batchnorm": _torch_unfolded,
        "BatchNormFunction": _torch_function,
        "BatchNorm1d": judge.run_module(torch.nn.BatchNorm1d, piece="BatchNorm1d"),
        "BatchNorm2d": judge.run_module(torch.nn.BatchNorm2d, piece="BatchNorm2d"),
        "batchnorm_forward": lambda x, g, b, eps=1e-5: (
            F.batch_norm(t(x), None, None, t(g), t(b), training=True, eps=eps).numpy(),
            {"x": x, "mean": x.astype(np.float64).mean(0), "var": x.astype(np.float64).var(0), "eps": eps,
             "x_hat": F.batch_norm(t(x), None, None, training=True, eps=eps).numpy(), "gamma": g, "beta": b}),
    }


def _torch_backward(dout, cache):
    """torch.autograd through F.batch_norm in the input's dtype."""
    t = [torch.tensor(np.asarray(cache[k])).requires_grad_() for k in ("x", "gamma", "beta")]
    y = F.batch_norm(t[0], None, None, t[1], t[2], training=True, eps=float(cache["eps"]))
    y.backward(torch.as_tensor(dout))
    return tuple(a.grad.numpy() for a in t)


def _torch_function(x, weight, bias, dout, eps=1e-5):
    """F.batch_norm and torch.autograd in the input's dtype, as BatchNormFunction is judged."""
    t = [torch.tensor(a).requires_grad_() for a in (x, weight, bias)]
    y = F.batch_norm(t[0], None, None, t[1], t[2], training=True, eps=eps)
    y.backward(torch.as_tensor(dout))
    return (y.detach().numpy(),) + tuple(a.grad.numpy() for a in t)


def _structure_differs(piece, out, exact):
    """A module's layout or errors, or hooks left behind: judged exactly, not with a tolerance."""
    if piece in judge.MODULES:
        return any(not np.array_equal(out[k], exact[k]) for k in judge.MODULE_OUTPUTS
                   if judge.is_text(exact[k]) or judge.is_text(out[k]))
    if piece == "record_layer_inputs":
        return int(np.asarray(out[0])) != 0
    return False


def _pairs(piece, out, exact):
    """(name, answer, exact) for every numeric output of a piece."""
    if piece == "batchnorm_forward":
        return [("out", out[0], exact[0])]
    if piece in judge.MODULES:
        return [(k, out[k], exact[k]) for k in judge.MODULE_OUTPUTS if not judge.is_text(exact[k])]
    if piece == "record_layer_inputs":
        return list(zip(range(len(exact) - 1), out[1:], exact[1:]))
    names = judge.OUTPUTS.get(piece)
    return list(zip(names, out, exact)) if names else [("out", out, exact)]


def _torch_buffers(running_mean, running_var, x, momentum=0.1, batches_seen=0):
    layer = torch.nn.BatchNorm1d(x.shape[1], momentum=momentum, dtype=torch.as_tensor(x).dtype)
    with torch.no_grad():
        layer.running_mean.copy_(torch.as_tensor(running_mean))
        layer.running_var.copy_(torch.as_tensor(running_var))
        layer.num_batches_tracked.fill_(batches_seen)
        layer(torch.as_tensor(x))
    return layer.running_mean.numpy(), layer.running_var.numpy()


def _torch_unfolded(x, weight, bias, gamma, beta, running_mean, running_var, eps=1e-5):
    """The layer, then its BatchNorm in eval mode, in the input's dtype (no folding)."""
    layer, bn = judge.torch_layers(weight, bias, gamma, beta, running_mean, running_var, eps)
    with torch.no_grad():
        return bn(layer(torch.as_tensor(x))).numpy()


def worst_ratio(piece, fn, cases, learner=True, namespace=None):
    """max over cases and outputs of max(error / allowed) (for batchnorm_forward: y).
    learner: fn has the learner's signature (else it already takes the judged arrays).
    namespace: where a module finds its BatchNormFunction; the trusted one is swapped in, as
    while grading."""
    with judge.trusted_parts(piece, namespace if isinstance(fn, type) else None, judge.EXACT_STEPS):
        return _worst_ratio(piece, judge.pure(piece, fn) if learner else fn, cases)


def _worst_ratio(piece, fn, cases):
    worst = 0.0
    for case in cases:
        exact = oracle.PIECES[piece](*case.args, **case.kwargs)
        try:
            out = fn(*case.fresh_args(), **case.kwargs)
        except Exception:
            return float("inf")
        if _structure_differs(piece, out, exact):
            return float("inf")  # caught exactly, before any tolerance
        for name, got, want in _pairs(piece, out, exact):
            got = np.asarray(got, np.float64)
            if got.shape != np.shape(want) or not np.all(np.isfinite(got)):
                return float("inf")
            allowed = judge.allowed_error(piece, case, want, name, exact)
            with np.errstate(divide="ignore", invalid="ignore"):
                r = np.where(allowed > 0, np.abs(got - want) / allowed, np.abs(got - want) * np.inf)
            worst = max(worst, float(np.nan_to_num(r, nan=0.0).max(initial=0.0)))
    return worst


def main(seeds=20, pieces=PIECES):
    print(f"TOLERANCE_K = {judge.TOLERANCE_K}; unit float32 = {judge.UNIT[np.dtype(np.float32)]:.2g}, "
          f"float64 = {judge.UNIT[np.dtype(np.float64)]:.2g}; {seeds} seeds x 46 cases per piece\n")
    answers = {"torch float32 kernels": torch_float32()}
    for name, sources in VARIANTS.items():
        ns = {}
        for src in sources.values():
            compile_piece(src, ns)
        answers[name] = ns
    for piece in pieces:
        if piece == "init_running_stats":
            continue  # compared exactly: nothing to calibrate
        cases = [c for s in range(seeds) for c in judge.make_cases(piece, seed=10_000 + s, count=40)]
        print(f"{piece}:")
        for name, ns in answers.items():
            if piece not in (VARIANTS[name] if name in VARIANTS else ns):
                continue  # (ns may hold other variants' pieces, copied in for a PARTS piece)
            fn = ns[piece]
            if piece in judge.PARTS and name != "torch float32 kernels" and hasattr(fn, "__globals__"):
                base = dict(answers["in_place"]) | ns  # the pieces it calls, if the variant lacks them
                fn.__globals__.update({k: v for k, v in base.items() if callable(v)})
            ratio = worst_ratio(piece, fn, cases, learner=name != "torch float32 kernels", namespace=ns)
            print(f"  correct  {name:24s} worst error/allowed = {ratio:9.3g}")
        for m in (m for m in MUTANTS if m.piece == piece):
            ns = compile_piece(m.source, dict(answers["in_place"]) | {"np": np})
            print(f"  mutant   {m.name:24s} worst error/allowed = "
                  f"{worst_ratio(piece, ns[piece], cases, namespace=ns):9.3g}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 20, sys.argv[2:] or PIECES)
